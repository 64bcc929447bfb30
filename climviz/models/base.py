"""Common wrapper of the climviz segmentation networks: input checks, padding, cropping."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from climviz.errors import ConfigError, DataError
from climviz.models.layers import pad_to_multiple
from climviz.models.normalization import Normalize, attach
from climviz.models.presets import PRESETS

__all__ = ["SegmentationNet", "MIN_SIZE", "check_options"]

#: smallest accepted height / width of an input grid (cells)
MIN_SIZE = 32


def check_options(network: str, config: Any, positive: tuple[str, ...] = ()) -> None:
    """Checks shared by the network configs: ``positive`` options >= 1, and the paddings.

    Parameters
    ----------
    network
        Registry name used in the messages (``"deeplabv3plus"``, ``"tiramisu"``).
    config
        The config dataclass; it has ``lon_padding`` and ``lat_padding``.
    positive
        Names of integer options that must be at least 1.

    Raises
    ------
    ConfigError
        Naming the network, the option, what it must be and what it is.
    """
    for key in positive:
        if int(getattr(config, key)) < 1:
            raise ConfigError(f"{network} option {key!r} must be >= 1, got {getattr(config, key)!r}")
    if config.lon_padding not in ("circular", "zero"):
        raise ConfigError(
            f"{network} option 'lon_padding' must be 'circular' or 'zero', got {config.lon_padding!r}"
        )
    if config.lat_padding not in ("reflect", "zero"):
        raise ConfigError(
            f"{network} option 'lat_padding' must be 'reflect' or 'zero', got {config.lat_padding!r}"
        )


class SegmentationNet(nn.Module):
    """Base class: ``(N, C, H, W)`` fields in, ``(N, num_classes, H, W)`` logits out.

    Subclasses implement :meth:`forward_padded` for inputs whose height and width are
    multiples of :attr:`multiple`. :meth:`forward` checks the input, pads it to such a
    multiple (circular in longitude, reflect or zero in latitude, following the
    ``lon_padding`` / ``lat_padding`` of the config) and crops the logits back.

    Attributes
    ----------
    name, preset
        Registry name and preset the network was built with (``None`` if built directly).
    config
        The dataclass holding the architecture options.
    in_channels, num_classes
        Input channels and output classes.
    multiple
        Total downsampling factor; padded inputs are multiples of it.
    input_norm
        ``None``, or a frozen :class:`~climviz.models.normalization.Normalize` applied to
        the raw fields before anything else (see :meth:`set_normalization`); its
        statistics are buffers saved in ``state_dict`` (``input_norm.mean`` ...).

    Examples
    --------
    Every registry network is a ``SegmentationNet``; a grid that is not a multiple of
    :attr:`multiple` (33 x 45 here, CGNet's multiple is 8) is padded and cropped back:

    >>> import torch
    >>> net = cv.models.build("cgnet", "tiny", in_channels=2, seed=0).eval()
    >>> isinstance(net, cv.models.SegmentationNet), net.multiple, (net.in_channels, net.num_classes)
    (True, 8, (2, 3))
    >>> with torch.no_grad():
    ...     tuple(net(torch.randn(1, 2, 33, 45)).shape)
    (1, 3, 33, 45)
    """

    name: str | None = None
    preset: str | None = None
    input_norm: Normalize | None

    def __init__(self, config: Any, in_channels: int, num_classes: int, multiple: int) -> None:
        super().__init__()
        self.config = config
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.multiple = int(multiple)
        self.input_norm = None

    def set_normalization(self, normalizer: Any, channels: Any = None, fill: float = 0.0) -> SegmentationNet:
        """Normalize raw inputs inside the network (``None`` removes the normalization).

        Parameters
        ----------
        normalizer
            A :class:`~climviz.data.Normalizer`, its dict, a
            :class:`~climviz.models.normalization.Normalize`, or ``None``.
        channels
            Channels to take from ``normalizer``, in input order (default: all of them).
        fill
            Normalized value given to masked (NaN) inputs (0 = the channel mean).

        Returns
        -------
        SegmentationNet
            ``self``: ``net(x_raw)`` equals the logits of ``net`` without normalization
            on ``(x_raw - mean) / std`` (NaN -> ``fill``).

        Examples
        --------
        >>> import torch
        >>> ds = cv.synthetic_run(2, shape=(32, 48))
        >>> norm = cv.Normalizer.fit(ds)
        >>> x = torch.from_numpy(ds[list(norm.channels)].to_array("channel").transpose("time", ...).values)
        >>> net = cv.models.build("cgnet", "tiny", seed=0).eval()
        >>> with torch.no_grad():
        ...     expected = net(norm.apply(x))
        ...     got = net.set_normalization(norm)(x)
        >>> torch.allclose(got, expected, atol=1e-5), sorted(k for k in net.state_dict() if "input_norm" in k)
        (True, ['input_norm.fill', 'input_norm.inv_std', 'input_norm.mean'])
        """
        previous = self.input_norm
        attach(self, normalizer, channels, fill)
        if self.input_norm is not None and self.input_norm.num_channels != self.in_channels:
            n = self.input_norm.num_channels
            self.input_norm = previous  # refused: the network keeps normalizing as before
            raise DataError(f"{type(self).__name__}: normalization for {n} channels, but the network "
                            f"takes {self.in_channels} input channels")
        return self

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits for an input whose height and width are multiples of :attr:`multiple`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` for fields ``(N, in_channels, H, W)``."""
        if x.dim() != 4:
            raise DataError(
                f"{type(self).__name__} expects a 4-d input (N, C, H, W), got shape {tuple(x.shape)}"
            )
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise DataError(
                f"{type(self).__name__} was built for {self.in_channels} input channels, "
                f"got {c} (input shape {tuple(x.shape)})"
            )
        if h < MIN_SIZE or w < MIN_SIZE:
            raise DataError(
                f"{type(self).__name__} needs a grid of at least {MIN_SIZE}x{MIN_SIZE} cells, "
                f"got {h}x{w}"
            )
        if self.input_norm is not None:  # first, so that padding sees normalized values
            x = self.input_norm(x)
        xp, (top, _, _, _) = pad_to_multiple(
            x,
            self.multiple,
            lat_padding=self.config.lat_padding,
            lon_padding=self.config.lon_padding,
        )
        y = self.forward_padded(xp)
        if y.shape[-2] != h or y.shape[-1] != w:
            y = y[..., top : top + h, :w]
        return y

    def build_kwargs(self) -> dict[str, Any]:
        """Arguments that rebuild this network with :func:`climviz.models.build`.

        ``{"name", "preset", "in_channels", "num_classes", "overrides"}`` where
        ``overrides`` holds the config fields that differ from the preset (JSON-able).
        """
        overrides: dict[str, Any] = {}
        preset = PRESETS.get(self.name or "", {}).get(self.preset or "")
        if preset is not None:
            base = type(self.config)(**preset[0])
            for f in dataclasses.fields(self.config):
                v = getattr(self.config, f.name)
                if v != getattr(base, f.name):
                    overrides[f.name] = list(v) if isinstance(v, tuple) else v
        else:
            overrides = {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self.config).items()
            }
        return {
            "name": self.name,
            "preset": self.preset,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "overrides": overrides,
        }

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f"name={self.name}, preset={self.preset}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, multiple={self.multiple}"
        )
