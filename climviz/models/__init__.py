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
``net.to(memory_format=torch.channels_last)`` and ``torch.compile(net)`` work (compile is
exercised by ``benchmarks/bench_models.py`` on the tiny presets rather than by the unit
tests: it takes about a minute on two CPU cores).

Speed on a shared CPU: set ``OMP_WAIT_POLICY=PASSIVE`` before torch is imported, or two
OpenMP threads can run 20-30x slower than one while other processes compete for the
cores (measured by the benchmark's wait-policy probe).

Sizes at 16 input channels and 3 classes; FLOPs for one 768x1152 sample from
:func:`count_flops` (forward) and :func:`train_flops_per_sample` (forward + backward):

=====================  ========  =======  =======  =========================================
network / preset       params    fwd TF   train TF reference
=====================  ========  =======  =======  =========================================
deeplabv3plus paper    42.23 M   0.581    1.720    ResNet-50 encoder = torchvision's published
                                                   25.56 M minus its classifier (checked by
                                                   the tests); Kurth et al. report 43.7 M
deeplabv3plus deepcam  56.45 M   0.655    1.964    hand count of the MLPerf HPC reference
                                                   layout (mlcommons/hpc deepcam, 56.45 M;
                                                   ours differs by 253 bias/affine weights)
tiramisu paper          5.49 M   0.524    1.560    FC-DenseNet structure reproduces Jegou et
                                                   al.'s FC-DenseNet56/67/103 sizes (1.4/3.5/
                                                   9.3 M vs 1.5/3.5/9.4 M published)
deeplabv3plus tiny      0.44 M   0.013    0.033    ours, for CPUs
tiramisu tiny           0.11 M   0.037    0.107    ours, for CPUs
=====================  ========  =======  =======  =========================================

Comparison with the SC18 paper. The paper's Table 1 lists (as we recall it; the paper
could not be consulted from the build machine, so treat these as approximate)
DeepLabv3+ at 43.7 M parameters and about 14.4 TFLOP per training sample, Tiramisu at
about 7.8 M parameters and 4.2 TFLOP per training sample. Our DeepLabv3+ ``paper``
matches the parameter count within 4 %, but needs 1.7 TFLOP per training sample: the
paper's count is about 8x larger, which suggests its decoder ran wide convolutions at
full resolution (the published text describes the learned upsampling but not every
width). Our Tiramisu ``paper`` follows the published block layout (2-2-2-4-5, growth
rate 32) with FC-DenseNet's 3x3 kernels; ``kernel_size=5`` gives 13.1 M parameters and
3.9 TFLOP per training sample, close to the paper's FLOPs but not its parameters, so
the 3x3 default is kept. Benchmarks compare achieved FLOP/s, which depend little on
these details; ``benchmarks/results/models.json`` has the measured rates. On the
2-core AMD EPYC build machine (shared with other jobs) a training step reached 0.41
(DeepLabv3+ paper), 0.50 (deepcam) and 0.16 (Tiramisu paper) of the bf16 matmul rate with
bf16 autocast and channels_last, which were the fastest settings there (the CPU has native
bf16); Kurth et al. sustained about 0.29 of V100 fp16 peak.
"""

from __future__ import annotations

from climviz.utils.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
