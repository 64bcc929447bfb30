"""Build networks by name and preset; list what is available."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import torch
from torch import nn

from climviz.errors import ConfigError
from climviz.models.base import SegmentationNet
from climviz.models.cgnet import CGNet, CGNetConfig
from climviz.models.deeplab_sc18 import DeepLabSC18
from climviz.models.deeplabv3plus import DeepLabConfig, DeepLabV3Plus
from climviz.models.presets import PRESETS
from climviz.models.tiramisu import Tiramisu, TiramisuConfig
from climviz.models.tiramisu_sc18 import TiramisuSC18

__all__ = ["build", "list_models", "preset_config", "MODELS", "PRESETS"]

def build_deeplab(in_channels: int = 16, num_classes: int = 3, config: DeepLabConfig | None = None) -> SegmentationNet:
    """The DeepLabv3+ class that ``config.backbone`` asks for: the SC18 graph for ``"resnet_v2"``."""
    cfg = config or DeepLabConfig()
    cls = DeepLabSC18 if cfg.backbone == "resnet_v2" else DeepLabV3Plus
    return cls(in_channels=in_channels, num_classes=num_classes, config=cfg)


def build_tiramisu(in_channels: int = 16, num_classes: int = 3,
                   config: TiramisuConfig | None = None) -> SegmentationNet:
    """The Tiramisu class that ``config.style`` asks for: the SC18 graph for ``"sc18"``."""
    cfg = config or TiramisuConfig()
    cls = TiramisuSC18 if cfg.style == "sc18" else Tiramisu
    return cls(in_channels=in_channels, num_classes=num_classes, config=cfg)


#: name -> (network factory ``f(in_channels=, num_classes=, config=)``, config class)
MODELS: dict[str, tuple[Callable[..., SegmentationNet], type]] = {
    "deeplabv3plus": (build_deeplab, DeepLabConfig),
    "tiramisu": (build_tiramisu, TiramisuConfig),
    "cgnet": (CGNet, CGNetConfig),
}


def _check_name_preset(name: str, preset: str) -> None:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    if preset not in PRESETS[name]:
        raise ConfigError(f"unknown preset {preset!r} for model {name!r}; available: {sorted(PRESETS[name])}")


def preset_config(name: str, preset: str, **overrides: Any) -> Any:
    """The config dataclass of ``name``/``preset`` with ``overrides`` applied.

    Raises
    ------
    ConfigError
        Unknown name, preset or override key, or an invalid value.

    Examples
    --------
    >>> cfg = cv.models.preset_config("tiramisu", "tiny")
    >>> cfg.style, cfg.down_layers, cfg.growth_rate, cfg.up_layers  # up_layers mirrors down_layers
    ('fc-densenet', (2, 2, 2, 2), 8, (2, 2, 2, 2))
    >>> cv.models.preset_config("deeplabv3plus", "tiny", output_stride=8).output_stride
    8
    >>> cv.models.preset_config("cgnet", "tiny", depth=3)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: unknown option(s) ['depth'] for model 'cgnet'; valid options: \
['dropout', 'lat_padding', 'lat_wrap', 'lon_padding', 'periodic_upsample', 'stage2_blocks', 'stage3_blocks']
    """
    _check_name_preset(name, preset)
    cls = MODELS[name][1]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for model {name!r}; valid options: {sorted(fields)}"
        )
    kwargs = {**PRESETS[name][preset][0], **overrides}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"invalid option for model {name!r} preset {preset!r}: {exc}") from exc


def build(
    name: str,
    preset: str = "paper",
    in_channels: int = 16,
    num_classes: int = 3,
    *,
    seed: int | None = None,
    normalizer: Any = None,
    **overrides: Any,
) -> SegmentationNet:
    """Build a segmentation network by name and preset.

    Parameters
    ----------
    name
        ``"deeplabv3plus"``, ``"tiramisu"`` or ``"cgnet"``.
    preset
        ``"paper"`` (the published network: Kurth et al.'s TensorFlow graphs, ClimateNet's
        CGNet), ``"deepcam"`` (DeepLabv3+: the MLPerf HPC DeepCAM reference),
        ``"resnet50-os16"`` / ``"fcdensenet-os32"`` (climviz's lighter variants) or
        ``"tiny"`` (CPU-sized); see :data:`PRESETS` or :func:`list_models`.
    in_channels
        Number of input fields (16 = the ClimateNet / DeepCAM channels).
    num_classes
        Number of classes (3 = background, tropical cyclone, atmospheric river).
    seed
        If given, weights are initialised from ``torch.manual_seed(seed)`` inside a
        forked RNG (the global RNG state is left untouched). Without it the global
        RNG is used, so ``torch.manual_seed(s); build(...)`` is reproducible too.
    normalizer
        A :class:`~climviz.data.Normalizer` (or its dict) for ``in_channels`` channels:
        the network then takes raw fields and normalizes them itself, as a frozen first
        operation saved in its ``state_dict`` (see
        :meth:`~climviz.models.base.SegmentationNet.set_normalization`).
    **overrides
        Fields of :class:`~climviz.models.deeplabv3plus.DeepLabConfig` /
        :class:`~climviz.models.tiramisu.TiramisuConfig` to change, e.g.
        ``output_stride=8``, ``growth_rate=16``, ``lon_padding="zero"``.

    Returns
    -------
    torch.nn.Module
        A :class:`~climviz.models.base.SegmentationNet`: ``(N, in_channels, H, W)`` float
        in, logits ``(N, num_classes, H, W)`` out, for any H, W >= 32.
        ``net.build_kwargs()`` gives the arguments to rebuild it.

    Raises
    ------
    ConfigError
        Unknown name / preset / option, or an invalid value.

    Examples
    --------
    >>> import torch
    >>> net = cv.models.build("deeplabv3plus", "tiny", seed=0)
    >>> sum(p.numel() for p in net.parameters())
    436611
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> x = torch.from_numpy(ds[list(cv.data.CHANNELS)].to_array("channel").transpose("time", "channel", ...).values)
    >>> tuple(x.shape)
    (4, 16, 32, 48)
    >>> with torch.no_grad():
    ...     logits = net.eval()(x)
    >>> tuple(logits.shape)  # (N, num_classes, H, W)
    (4, 3, 32, 48)
    >>> net.build_kwargs()
    {'name': 'deeplabv3plus', 'preset': 'tiny', 'in_channels': 16, 'num_classes': 3, 'overrides': {}}

    Fewer input fields, other options:

    >>> cgnet = cv.models.build("cgnet", "paper", in_channels=4, seed=0)
    >>> sum(p.numel() for p in cgnet.parameters())
    494232
    >>> cv.models.build("deeplabv3plus", "tiny", output_stride=12)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: deeplabv3plus option 'output_stride' must be 8 or 16, got 12
    """
    for key, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"build() argument {key!r} must be a positive integer, got {value!r}")
    cfg = preset_config(name, preset, **overrides)
    factory = MODELS[name][0]

    def make() -> SegmentationNet:
        return factory(in_channels=in_channels, num_classes=num_classes, config=cfg)

    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = make()
    else:
        net = make()
    net.name = name
    net.preset = preset
    if normalizer is not None:
        net.set_normalization(normalizer)
    return net


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``.

    Examples
    --------
    A 1x1 convolution from 16 fields to 3 classes: 16 x 3 weights + 3 biases:

    >>> import torch
    >>> cv.models.count_parameters(torch.nn.Conv2d(16, 3, kernel_size=1))
    51
    >>> [cv.models.count_parameters(cv.models.build(name, "tiny"))
    ...  for name in ("deeplabv3plus", "tiramisu", "cgnet")]
    [436611, 109907, 300624]
    """
    return sum(p.numel() for p in module.parameters())


@functools.cache
def _params_on_meta(name: str, preset: str, in_channels: int, num_classes: int) -> int:
    with torch.device("meta"):
        net = build(name, preset, in_channels, num_classes)
    return count_parameters(net)


@functools.cache
def _multiple_on_meta(name: str, preset: str) -> int:
    with torch.device("meta"):
        return int(build(name, preset).multiple)


def list_models(in_channels: int = 16, num_classes: int = 3) -> "Any":
    """Table of the available networks and presets with their parameter counts.

    Returns
    -------
    pandas.DataFrame
        Columns ``name, preset, params, multiple, description``; ``multiple`` is the
        factor the grid is padded to internally.

    Examples
    --------
    >>> models = cv.models.list_models()
    >>> models.loc[models["preset"] == "paper", ["name", "params"]].values.tolist()
    [['deeplabv3plus', 43714787], ['tiramisu', 7801315], ['cgnet', 518496]]
    """
    import pandas as pd

    rows = []
    for name, presets in PRESETS.items():
        for preset, (_, desc) in presets.items():
            multiple = _multiple_on_meta(name, preset)
            rows.append(
                {
                    "name": name,
                    "preset": preset,
                    "params": _params_on_meta(name, preset, in_channels, num_classes),
                    "multiple": multiple,
                    "description": desc,
                }
            )
    return pd.DataFrame(rows)

