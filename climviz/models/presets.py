"""Presets of the climviz networks: torch-free data (config overrides and descriptions).

Kept apart from :mod:`climviz.models.registry` so that the network base class can
compare a config with its preset without importing the networks (no import cycle).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

#: name -> preset -> (config overrides, one-line description). Sizes at 16 input fields,
#: 3 classes; training FLOPs (forward + backward) per 768x1152 sample from
#: :func:`climviz.models.train_flops_per_sample`.
PRESETS: dict[str, dict[str, tuple[dict[str, Any], str]]] = {
    "deeplabv3plus": {
        "paper": (
            {},
            "Kurth et al. SC18 graph: ResNet-50 v2, output stride 8, ASPP 12/24/36, deconv1x decoder "
            "with full-resolution branch; 43.71 M params, 12.99 TF/sample",
        ),
        "deepcam": (
            {"backbone": "xception", "output_stride": 16},
            "MLPerf HPC DeepCAM reference: aligned Xception, output stride 16, deconv decoder; "
            "56.45 M params, 1.96 TF/sample",
        ),
        "resnet50-os16": (
            {"backbone": "resnet", "output_stride": 16},
            "climviz's lighter variant: ResNet-50 v1 (torchvision layout), output stride 16, "
            "learned-upsampling decoder at 1/4..1/2; 42.23 M params, 1.72 TF/sample",
        ),
        "tiny": (
            {
                "backbone": "resnet",
                "output_stride": 16,
                "blocks": (1, 1, 1, 1),
                "width": 8,
                "stem_channels": 16,
                "aspp_channels": 32,
                "low_level_channels": 16,
                "decoder_channels": 32,
            },
            "resnet50-os16 layout, one bottleneck per stage, width 8: for CPUs and teaching",
        ),
    },
    "tiramisu": {
        "paper": (
            {},
            "Kurth et al. SC18 graph: 5x5 kernels, blocks 2-2-2-4-5 growth 32, conv-ReLU-dropout "
            "without BatchNorm, stride 16; 7.80 M params, 4.14 TF/sample",
        ),
        "fcdensenet-os32": (
            {"style": "fc-densenet", "down_layers": (2, 2, 2, 4, 5), "kernel_size": 3, "first_channels": 48},
            "climviz's lighter variant: FC-DenseNet layers (BN-ReLU-3x3 conv), blocks 2-2-2-4-5 "
            "+ 5, growth 32, stride 32; 5.49 M params, 1.56 TF/sample",
        ),
        "tiny": (
            {
                "style": "fc-densenet",
                "kernel_size": 3,
                "down_layers": (2, 2, 2, 2),
                "bottleneck_layers": 2,
                "growth_rate": 8,
                "first_channels": 16,
                "dropout": 0.0,
            },
            "four FC-DenseNet blocks of 2 layers, growth rate 8: for CPUs and teaching",
        ),
    },
    "cgnet": {
        "paper": (
            {},
            "ClimateNet CGNet (Kashinath et al. 2021), M=3, N=21: 0.518 M params (0.494 M at 4 fields), "
            "0.075 TF/sample",
        ),
        "tiny": (
            {"stage3_blocks": 3},
            "CGNet with 2 stage-3 context-guided blocks instead of 20: for CPUs and teaching",
        ),
    },
}
