"""Segmentation networks of Kurth et al. (SC18), MLPerf DeepCAM and ClimateNet, with FLOP counts.

``import climviz.models`` is light; torch is imported on first use of a name below.

Public names
------------
build(name, preset="paper", in_channels=16, num_classes=3, *, seed=None, **overrides)
    ``"deeplabv3plus"`` (presets ``paper``, ``deepcam``, ``resnet50-os16``, ``tiny``),
    ``"tiramisu"`` (``paper``, ``fcdensenet-os32``, ``tiny``) or ``"cgnet"`` (``paper``,
    ``tiny``). Input ``(N, C, H, W)``, logits ``(N, num_classes, H, W)``, any H, W >= 32
    (padded internally to the network's stride and cropped back).
list_models()
    DataFrame: name, preset, params, multiple, description.
count_flops(model, input_shape), train_flops_per_sample(model, (C, H, W)),
matmul_peak_flops(dtype, device, n)
    FLOPs (1 multiply-add = 2 FLOPs) and the measured matmul baseline.
DeepLabConfig, TiramisuConfig, CGNetConfig
    The architecture options that ``**overrides`` may change.
Normalize, build(..., normalizer=norm), net.set_normalization(norm)
    Per-channel input normalization as the network's frozen first operation (buffers in
    its ``state_dict``): the network then takes raw fields, as training and prediction do.
climviz.models.deepcam_keys.load_reference_state_dict(net, state)
    Load an MLPerf DeepCAM reference state dict into the ``deepcam`` preset.

README: the networks
--------------------
The ``paper`` presets are the published networks, layer for layer:

* ``deeplabv3plus/paper``: the TensorFlow graph of Kurth et al. (``azrael417/ClimDeepLearn``,
  ``semanticsegm/deeplab-tf``, ``--model=resnet_v2_50 --decoder=deconv1x``): ResNet-50 v2
  (pre-activation) at output stride 8, ASPP 12/24/36 + image pooling, a transposed-conv
  decoder with a full-resolution branch on the raw fields
  (:mod:`climviz.models.deeplab_sc18`);
* ``tiramisu/paper``: their Tiramisu (``semanticsegm/tiramisu-tf``, ``--blocks 2 2 2 4 5
  --growth 32 --filter-sz 5``): 5x5 conv-ReLU-dropout dense layers without BatchNorm,
  strided 1x1 transitions, stride 16 (:mod:`climviz.models.tiramisu_sc18`);
* ``deeplabv3plus/deepcam``: the MLPerf HPC DeepCAM reference
  (``mlcommons/hpc``, ``deeplab_xception.py``) function for function, including the ReLU
  its in-place activation applies to the low-level skip and its initialisation; its state
  dict loads with :mod:`climviz.models.deepcam_keys` and gives the reference's logits;
* ``cgnet/paper``: ClimateNet's CGNet (Kashinath et al. 2021, ``andregraubner/ClimateNet``),
  same parameter names as the reference; train it with ``TrainConfig(loss="jaccard")``.

``resnet50-os16`` and ``fcdensenet-os32`` are climviz's earlier, lighter networks (a
torchvision-style ResNet-50 v1 DeepLabv3+ at output stride 16; an FC-DenseNet with 3x3
BN-ReLU-conv layers, stride 32); ``tiny`` presets are for CPUs and teaching.

All networks see the globe as periodic: every convolution pads longitude (the last
dimension) by wrapping around and latitude with zeros; transposed convolutions wrap as
well, so shifting the input by a multiple of the stride in longitude shifts the logits
by the same amount. The input is padded to the network's stride (circular in longitude,
reflective in latitude) and the logits are cropped back. ``lon_padding="zero"`` gives the
references' zero padding (limited-area grids; exact reproduction of the references;
CGNet's reference also wraps latitude: ``lat_wrap=True, periodic_upsample=False``).

Weights are initialised as each reference does (see the modules). ``build(..., seed=s)`` or
``torch.manual_seed(s)`` before ``build`` give identical weights. BatchNorm layers are
plain ``nn.BatchNorm2d`` so ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` converts them.
``net.to(memory_format=torch.channels_last)`` and ``torch.compile(net)`` work.

Speed on a shared CPU: set ``OMP_WAIT_POLICY=PASSIVE`` before torch is imported, or two
OpenMP threads can run 20-30x slower than one while other processes compete for the
cores (measured by the benchmark's wait-policy probe).

Sizes at 16 input channels and 3 classes; FLOPs for one 768x1152 sample from
:func:`count_flops` (forward) and :func:`train_flops_per_sample` (forward + backward,
depthwise weight gradients counted once), on the meta device:

=========================  ==========  =======  ========  ===================================
network / preset           params      fwd TF   train TF  reference
=========================  ==========  =======  ========  ===================================
deeplabv3plus paper        43,714,787  4.341    12.99     SC18: 43.7 M, 14.41 TF (the paper
                                                          also counts the padded inputs of
                                                          dilated convolutions)
tiramisu paper              7,801,315  1.396     4.14     SC18: 7.8 M, 4.19 TF (7,504,835
                                                          parameters take part; the rest is
                                                          the reference's unused transition)
deeplabv3plus deepcam      56,454,720  0.655     1.96     MLPerf reference: 56,454,720
cgnet paper                   518,496  0.0256    0.0748   ClimateNet: 494,232 at 4 fields
deeplabv3plus resnet50-os16 42,231,011  0.581    1.72     ours (ResNet-50 v1 = torchvision)
tiramisu fcdensenet-os32    5,493,683  0.524     1.56     ours (FC-DenseNet layers)
deeplabv3plus tiny            436,611  0.013     0.033    ours, for CPUs
tiramisu tiny                 109,907  0.037     0.107    ours, for CPUs
cgnet tiny                    300,624  0.021     0.061    ours, for CPUs
=========================  ==========  =======  ========  ===================================

Activations a fp32 training step keeps per 768x1152 sample (measured on two crops,
extrapolated): DeepLabv3+ paper 7.8 GiB (4.4 GiB with ``activation_checkpointing=True``),
Tiramisu paper 6.5 GiB, deepcam 5.1 GiB, CGNet 1.8 GiB. Measured speed: see
``benchmarks/results/models.json`` and ``benchmarks/results/train.json``; Kurth et al.
sustained about 0.29 of V100 fp16 peak, ``benchmarks/gpu_check.sh`` measures the ratio on a
CUDA GPU.
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
    "CGNetConfig",
    "CGNet",
    "SegmentationNet",
    "Normalize",
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
    "CGNetConfig": "climviz.models.cgnet",
    "CGNet": "climviz.models.cgnet",
    "SegmentationNet": "climviz.models.base",
    "Normalize": "climviz.models.normalization",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
