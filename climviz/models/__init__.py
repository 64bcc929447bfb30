"""Segmentation networks of Kurth et al. (SC18) in plain PyTorch, with FLOP counts.

``import climviz.models`` is light; torch is imported on first use of a name below.

Public names
------------
build(name, preset="paper", in_channels=16, num_classes=3, *, seed=None, **overrides)
    ``"deeplabv3plus"`` (presets ``paper``, ``deepcam``, ``tiny``) or ``"tiramisu"``
    (``paper``, ``tiny``). Input ``(N, C, H, W)``, logits ``(N, num_classes, H, W)``,
    any H, W >= 32 (padded internally to the network's stride and cropped back).
list_models()
    DataFrame: name, preset, params, multiple, description.
count_flops(model, input_shape), train_flops_per_sample(model, (C, H, W)),
matmul_peak_flops(dtype, device, n)
    FLOPs (1 multiply-add = 2 FLOPs) and the measured matmul baseline.
DeepLabConfig, TiramisuConfig
    The architecture options that ``**overrides`` may change.

README: the networks
--------------------
Both networks see the globe as periodic: every convolution pads longitude (the last
dimension) by wrapping around and latitude with zeros; transposed convolutions wrap as
well, so shifting the input by a multiple of the stride in longitude shifts the logits
by the same amount. The input is padded to the network's stride (circular in longitude,
reflective in latitude) and the logits are cropped back. Pass ``lon_padding="zero"`` for
limited-area grids.

Weights: convolutions Kaiming-normal (fan-out, ReLU gain), BatchNorm 1/0, as in the
DeepCAM reference. ``build(..., seed=s)`` or ``torch.manual_seed(s)`` before ``build``
give identical weights. BatchNorm layers are plain ``nn.BatchNorm2d`` so
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` converts them for distributed runs.

Sizes at 16 input channels, 3 classes, 768x1152 grid (forward FLOPs from
:func:`count_flops`; training = forward + backward from :func:`train_flops_per_sample`)
compared with the published figures:

=====================  =========  ==============  ===============  ==================================
network / preset       params     fwd TFLOP/smp   train TFLOP/smp  published
=====================  =========  ==============  ===============  ==================================
deeplabv3plus paper    43.6 M     4.28            12.9             43.7 M params, 14.4 TF/sample
                                                                   (Kurth et al. SC18, Table 1)
deeplabv3plus deepcam  56.5 M     5.12            15.4             reference code: 56.5 M params
tiramisu paper         see below  see below       see below        7.8 M params, 4.2 TF/sample
                                                                   (Kurth et al. SC18, Table 1)
deeplabv3plus tiny     ~0.2 M                                      (ours, for CPUs)
tiramisu tiny          ~0.05 M                                     (ours, for CPUs)
=====================  =========  ==============  ===============  ==================================

(The exact numbers of this build are in the docstrings of the presets and checked by
``tests/models``; the published figures are from the paper's Table 1 as recalled by
the authors of this module, since the paper itself could not be consulted from the
build machine: treat them as approximate.)
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "build",
    "list_models",
    "preset_config",
    "count_parameters",
    "count_flops",
    "train_flops_per_sample",
    "matmul_peak_flops",
    "DeepLabConfig",
    "DeepLabV3Plus",
    "TiramisuConfig",
    "Tiramisu",
    "SegmentationNet",
]

_LAZY = {
    "build": "climviz.models.registry",
    "list_models": "climviz.models.registry",
    "preset_config": "climviz.models.registry",
    "count_parameters": "climviz.models.registry",
    "count_flops": "climviz.models.flops",
    "train_flops_per_sample": "climviz.models.flops",
    "matmul_peak_flops": "climviz.models.flops",
    "DeepLabConfig": "climviz.models.deeplabv3plus",
    "DeepLabV3Plus": "climviz.models.deeplabv3plus",
    "TiramisuConfig": "climviz.models.tiramisu",
    "Tiramisu": "climviz.models.tiramisu",
    "SegmentationNet": "climviz.models.base",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'climviz.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
