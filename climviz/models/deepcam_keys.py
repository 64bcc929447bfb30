"""State-dict key mapping between the MLPerf HPC DeepCAM reference and the ``deepcam`` preset.

The reference (``mlcommons/hpc``, ``deepcam/src/deepCam/architecture/deeplab_xception.py``,
``DeepLabv3_plus(n_input, n_classes, os=16)``) and ``build("deeplabv3plus", "deepcam")``
have the same 529 tensors with the same shapes (56,454,720 parameters at 16 inputs and
3 classes); only the names differ. With ``lon_padding="zero"`` a reference state dict
loaded through :func:`load_reference_state_dict` gives the reference's logits.

Rules (applied to the reference name after dropping a DDP ``module.`` prefix and the
``.bn`` level of its ``GBN`` BatchNorm wrapper):

==============================================  ===========================================
reference                                        climviz ``deepcam``
==============================================  ===========================================
``xception_features.conv1`` / ``bn1``           ``encoder.stem.0.0`` / ``encoder.stem.0.1``
``xception_features.conv2`` / ``bn2``           ``encoder.stem.1.0`` / ``encoder.stem.1.1``
``xception_features.block1``                    ``encoder.block1``
``xception_features.block{2,3}``                ``encoder.entry.{0,1}``
``xception_features.block{4..19}``              ``encoder.middle.{0..15}``
``xception_features.block20``                   ``encoder.exit.0``
  ``….skip`` / ``….skipbn``                     ``….shortcut.0`` / ``….shortcut.1``
  ``….rep.{i}.conv1`` / ``.pointwise``          ``….body.{i}.0`` / ``….body.{i}.1``
  ``….rep.{i}`` (BatchNorm)                     ``….body.{i}``
``xception_features.conv{3,4,5}``               ``encoder.exit.{1,4,7}`` (``conv1``→``0``,
                                                 ``pointwise``→``1``)
``xception_features.bn{3,4,5}``                 ``encoder.exit.{2,5,8}``
``bottleneck.aspp{1..4}.atrous_convolution``    ``aspp.branches.{0..3}.0``
``bottleneck.aspp{1..4}.bn``                    ``aspp.branches.{0..3}.1``
``bottleneck.global_avg_pool.global_average_pool``  ``aspp.pool``
``bottleneck.conv`` / ``bottleneck.bn``         ``aspp.project.0`` / ``aspp.project.1``
``conv2`` / ``bn2``                             ``low_level.0`` / ``low_level.1``
``upsample.deconv1.{0,1,3,4}``                  ``up_to_4.{0.0,0.1,1.0,1.1}``
``upsample.conv1.{0,1,3,4,6}``                  ``fuse.{0.0,0.1,1.0,1.1,2}``
``upsample.deconv2.{0,1}``                      ``up_to_2.{0,1}``
``upsample.last_deconv.0``                      ``classifier``
==============================================  ===========================================
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from climviz.errors import ConfigError

__all__ = ["reference_key", "from_reference_state_dict", "load_reference_state_dict"]

_SEP = {"conv1": "0", "pointwise": "1"}
_EXIT_CONV = {"3": "1", "4": "4", "5": "7"}
_EXIT_BN = {"3": "2", "4": "5", "5": "8"}


def _block(k: int) -> str:
    if k == 1:
        return "encoder.block1"
    if k in (2, 3):
        return f"encoder.entry.{k - 2}"
    if 4 <= k <= 19:
        return f"encoder.middle.{k - 4}"
    if k == 20:
        return "encoder.exit.0"
    raise KeyError(k)


def reference_key(name: str) -> str:
    """The climviz ``deepcam`` key of the reference's state-dict key ``name``.

    Raises
    ------
    KeyError
        ``name`` is not a key of the reference network.
    """
    key = name[len("module."):] if name.startswith("module.") else name
    # every reference BatchNorm sits in a GBN wrapper as its ``bn`` attribute
    key = re.sub(r"(^|\.)bn\.(weight|bias|running_mean|running_var|num_batches_tracked)$", r"\1\2", key)
    rules: list[tuple[str, object]] = [
        (r"^xception_features\.conv([12])\.(.*)$", lambda m: f"encoder.stem.{int(m[1]) - 1}.0.{m[2]}"),
        (r"^xception_features\.bn([12])\.(.*)$", lambda m: f"encoder.stem.{int(m[1]) - 1}.1.{m[2]}"),
        (r"^xception_features\.block(\d+)\.skip\.(.*)$", lambda m: f"{_block(int(m[1]))}.shortcut.0.{m[2]}"),
        (r"^xception_features\.block(\d+)\.skipbn\.(.*)$", lambda m: f"{_block(int(m[1]))}.shortcut.1.{m[2]}"),
        (r"^xception_features\.block(\d+)\.rep\.(\d+)\.(conv1|pointwise)\.(.*)$",
         lambda m: f"{_block(int(m[1]))}.body.{m[2]}.{_SEP[m[3]]}.{m[4]}"),
        (r"^xception_features\.block(\d+)\.rep\.(\d+)\.([a-z_]+)$",
         lambda m: f"{_block(int(m[1]))}.body.{m[2]}.{m[3]}"),
        (r"^xception_features\.conv([345])\.(conv1|pointwise)\.(.*)$",
         lambda m: f"encoder.exit.{_EXIT_CONV[m[1]]}.{_SEP[m[2]]}.{m[3]}"),
        (r"^xception_features\.bn([345])\.(.*)$", lambda m: f"encoder.exit.{_EXIT_BN[m[1]]}.{m[2]}"),
        (r"^bottleneck\.aspp([1-4])\.atrous_convolution\.(.*)$", lambda m: f"aspp.branches.{int(m[1]) - 1}.0.{m[2]}"),
        (r"^bottleneck\.aspp([1-4])\.bn\.(.*)$", lambda m: f"aspp.branches.{int(m[1]) - 1}.1.{m[2]}"),
        (r"^bottleneck\.global_avg_pool\.global_average_pool\.(.*)$", lambda m: f"aspp.pool.{m[1]}"),
        (r"^bottleneck\.conv\.(.*)$", lambda m: f"aspp.project.0.{m[1]}"),
        (r"^bottleneck\.bn\.(.*)$", lambda m: f"aspp.project.1.{m[1]}"),
        (r"^conv2\.(.*)$", lambda m: f"low_level.0.{m[1]}"),
        (r"^bn2\.(.*)$", lambda m: f"low_level.1.{m[1]}"),
        (r"^upsample\.deconv1\.([0134])\.(.*)$",
         lambda m: f"up_to_4.{ {'0': '0.0', '1': '0.1', '3': '1.0', '4': '1.1'}[m[1]] }.{m[2]}"),
        (r"^upsample\.conv1\.([01346])\.(.*)$",
         lambda m: f"fuse.{ {'0': '0.0', '1': '0.1', '3': '1.0', '4': '1.1', '6': '2'}[m[1]] }.{m[2]}"),
        (r"^upsample\.deconv2\.([01])\.(.*)$", lambda m: f"up_to_2.{m[1]}.{m[2]}"),
        (r"^upsample\.last_deconv\.0\.(.*)$", lambda m: f"classifier.{m[1]}"),
    ]
    for pattern, fn in rules:
        m = re.match(pattern, key)
        if m:
            try:
                return fn(m)  # type: ignore[operator]
            except KeyError:
                break
    raise KeyError(f"{name!r} is not a key of the MLPerf DeepCAM reference network")


def from_reference_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's state dict renamed for ``build("deeplabv3plus", "deepcam")``."""
    return {reference_key(k): v for k, v in state.items()}


def load_reference_state_dict(net: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load a DeepCAM reference state dict (e.g. an MLPerf checkpoint's ``model``) into ``net``.

    Raises
    ------
    ConfigError
        ``net`` is not a ``deepcam`` DeepLabv3+, a key is unknown, or shapes differ
        (the message names the tensor, the expected and the found shape).
    """
    if getattr(getattr(net, "config", None), "backbone", None) != "xception":
        raise ConfigError("load_reference_state_dict needs build('deeplabv3plus', 'deepcam'), "
                          f"got {type(net).__name__} with backbone {getattr(net.config, 'backbone', None)!r}")
    try:
        mapped = from_reference_state_dict(state)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    own = net.state_dict()
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise ConfigError(f"DeepCAM reference state dict lacks {len(missing)} tensors, e.g. {missing[:3]}")
    for k, v in mapped.items():
        if k not in own or own[k].shape != v.shape:
            raise ConfigError(f"DeepCAM reference tensor for {k!r}: expected shape "
                              f"{tuple(own[k].shape) if k in own else None}, found {tuple(v.shape)}")
    net.load_state_dict(mapped, strict=True)
