"""DeepLabv3+ for climate segmentation (Kurth et al., SC18; MLPerf HPC DeepCAM).

Structure (Chen et al. 2018, "Encoder-Decoder with Atrous Separable Convolution")
with the change Kurth et al. made for thin atmospheric rivers: the decoder
upsamples with *learned* transposed convolutions all the way back to full
resolution instead of two bilinear 4x steps.

::

    fields (N, C, H, W)
      └─ encoder: ResNet-style bottlenecks ("resnet") or aligned Xception ("xception"),
         atrous (dilated) in the last stage(s) so the features stay at 1/output_stride
           ├─ low-level features at 1/4 ──1x1 conv──▶ low_level_channels ─────────┐
           └─ ASPP: 1x1, three 3x3 atrous (rates 6/12/18 at stride 16), image pool │
                 └─ 1x1 projection ─▶ transposed convs (x2 each) to 1/4 ──concat──┘
                       └─ 2 x (3x3 conv) + 1x1 ─▶ transposed conv to 1/2 ─▶ transposed conv
                          to full resolution with num_classes outputs = logits (N, K, H, W)

All convolutions wrap around in longitude (:mod:`climviz.models.layers`).

Presets (see :func:`climviz.models.build`):

``paper``
    Not this class: the SC18 graph (ResNet-50 v2, output stride 8, ``deconv1x`` decoder),
    :class:`climviz.models.deeplab_sc18.DeepLabSC18` (``backbone="resnet_v2"``);
    43,714,787 parameters, 12.99 TFLOP per 768x1152 training sample.
``deepcam``
    The MLPerf HPC DeepCAM reference, function for function (``backbone="xception"``):
    modified aligned Xception encoder (entry flow 32-64-128-256-728, 16 middle-flow blocks
    of 728 channels, exit flow 1024-1536-1536-2048, separable convolutions), output stride
    16; the low-level skip is block 1's output *after* the ReLU (the reference rectifies it
    in place), the image-pooling branch is a bias-free 1x1 conv + per-channel affine map,
    the last transposed convolution has no bias, initialisation as the reference
    (:func:`init_deepcam`). 56,454,720 parameters = the reference's; 0.655 TFLOP forward,
    1.96 TFLOP forward + backward per 768x1152 sample. Reference state dicts load with
    :func:`climviz.models.deepcam_keys.load_reference_state_dict`.
``resnet50-os16``
    climviz's lighter variant (formerly called ``paper``): torchvision's ResNet-50 v1
    layout (bottleneck blocks 3-4-6-3, 7x7 stem), output stride 16, ASPP with 256 channels,
    48 low-level channels, 256-channel learned-upsampling decoder ending at 1/2 resolution
    with a transposed conv to the classes. 42,231,011 parameters; 0.58 TFLOP forward,
    1.72 TFLOP forward + backward per 768x1152 sample. Initialisation Kaiming-normal fan-out.
``tiny``
    The ``resnet50-os16`` architecture, narrow (bottleneck width 8) and shallow (one block
    per stage), for laptops and teaching: 0.44 M parameters, 13 GFLOP forward per 768x1152
    sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from climviz.errors import ConfigError
from climviz._fields import OneOf, Rule, bad_value, spec, validate
from climviz.models._options import AT_LEAST_ONE, LAT_PADDING, LON_PADDING, NetworkOptions
from climviz.models.base import SegmentationNet
from climviz.models.layers import (
    GeoConv2d,
    GeoConvTranspose2d,
    LatPadding,
    LonPadding,
    conv_bn_relu,
    init_weights,
    wrap_lon,
)

__all__ = ["DeepLabConfig", "DeepLabV3Plus"]


def _check_blocks(cfg: DeepLabConfig, name: str) -> None:
    """ResNet backbones: 4 stages of at least one bottleneck block (Xception ignores ``blocks``)."""
    if cfg.backbone in ("resnet", "resnet_v2") and (len(cfg.blocks) != 4 or min(cfg.blocks) < 1):
        raise bad_value(cfg, name, "4 positive integers")


@dataclass
class DeepLabConfig(NetworkOptions):
    """Architecture options of :class:`DeepLabV3Plus`.

    Attributes
    ----------
    backbone
        ``"resnet_v2"`` (slim's pre-activation ResNet v2 with the ``deconv1x`` decoder: the
        SC18 graph, :class:`~climviz.models.deeplab_sc18.DeepLabSC18`), ``"xception"``
        (the MLPerf HPC DeepCAM reference, function for function) or ``"resnet"``
        (climviz's lighter torchvision-style ResNet v1 with a learned-upsampling decoder,
        presets ``resnet50-os16`` and ``tiny``).
    blocks
        ResNet: bottleneck blocks per stage (4 stages). Xception: ignored.
    width
        ResNet: bottleneck width of stage 1 (doubles per stage; output channels are
        ``width * expansion * 2**stage``). Xception: ignored.
    expansion
        ResNet bottleneck expansion factor.
    stem_channels
        Channels of the stem convolution (ResNet 7x7 stride 2 + 3x3 max-pool).
    xception_middle_blocks
        Xception: number of middle-flow blocks (16 in the reference).
    xception_scale
        Xception: all channel numbers are multiplied by this (1.0 in the reference).
    output_stride
        Encoder output stride, 16 or 8 (dilated convolutions replace the strides).
    aspp_channels
        Channels of each ASPP branch and of the projection.
    aspp_rates
        Dilation rates of the three 3x3 ASPP branches at output stride 16 (doubled at 8).
    low_level_channels
        Channels of the 1x1 reduction of the stride-4 features.
    decoder_channels
        Channels of the decoder convolutions and transposed convolutions.
    full_res_channels
        ``resnet_v2`` only: widths of the two full-resolution 3x3 convolutions on the raw
        fields (64, 128 in the reference).
    activation_checkpointing
        ``resnet_v2`` only: recompute the full-resolution head in the backward pass instead
        of keeping its activations (same gradients, 0.58x the activation memory, 24% more
        FLOPs: the head does 3.1 of the 4.3 forward TFLOP per 768x1152 sample).
    lon_padding
        ``"circular"`` (the globe wraps) or ``"zero"``.
    lat_padding
        Padding of the input rows to a multiple of the stride: ``"reflect"`` or ``"zero"``.

    Examples
    --------
    >>> cfg = cv.models.preset_config("deeplabv3plus", "tiny")
    >>> cfg.backbone, cfg.blocks, cfg.output_stride
    ('resnet', (1, 1, 1, 1), 16)
    >>> cv.models.DeepLabConfig(output_stride=12)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: deeplabv3plus option 'output_stride' must be 8 or 16, got 12
    """

    _network: ClassVar[str] = "deeplabv3plus"

    backbone: str = field(default="resnet_v2", metadata=spec(OneOf(("resnet_v2", "xception", "resnet"))))
    blocks: tuple[int, ...] = field(default=(3, 4, 6, 3), metadata=spec(_check_blocks))
    width: int = field(default=64, metadata=spec(AT_LEAST_ONE))
    expansion: int = field(default=4, metadata=spec(AT_LEAST_ONE))
    stem_channels: int = field(default=64, metadata=spec(AT_LEAST_ONE))
    xception_middle_blocks: int = field(default=16, metadata=spec(AT_LEAST_ONE))
    xception_scale: float = 1.0
    output_stride: int = field(default=8, metadata=spec(OneOf((8, 16))))
    aspp_channels: int = field(default=256, metadata=spec(AT_LEAST_ONE))
    aspp_rates: tuple[int, ...] = field(default=(6, 12, 18), metadata=spec(
        Rule(lambda v: len(v) == 3, "3 dilation rates")))
    low_level_channels: int = field(default=48, metadata=spec(AT_LEAST_ONE))
    decoder_channels: int = field(default=256, metadata=spec(AT_LEAST_ONE))
    full_res_channels: tuple[int, ...] = field(default=(64, 128), metadata=spec(
        Rule(lambda v: len(v) == 2 and min(v) >= 1, "2 positive integers")))
    activation_checkpointing: bool = False
    lon_padding: LonPadding = field(default="circular", metadata=spec(LON_PADDING))
    lat_padding: LatPadding = field(default="reflect", metadata=spec(LAT_PADDING))

    def __post_init__(self) -> None:
        self.blocks = tuple(int(b) for b in self.blocks)
        self.aspp_rates = tuple(int(r) for r in self.aspp_rates)
        self.full_res_channels = tuple(int(c) for c in self.full_res_channels)
        self.activation_checkpointing = bool(self.activation_checkpointing)
        validate(self)


class GeoMaxPool2d(nn.Module):
    """3x3 stride-2 max-pool with padding 1, periodic in longitude."""

    def __init__(self, lon_padding: LonPadding) -> None:
        super().__init__()
        self.circular = lon_padding == "circular"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.circular:
            return F.max_pool2d(wrap_lon(x, 1, 1), 3, stride=2, padding=(1, 0))
        return F.max_pool2d(x, 3, stride=2, padding=1)


# --------------------------------------------------------------------------- ResNet


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce, 3x3 (strided / dilated), 1x1 expand, + shortcut."""

    def __init__(self, cin: int, width: int, cout: int, stride: int, dilation: int, lon: LonPadding) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(cin, width, 1, lon_padding=lon)
        self.conv = conv_bn_relu(width, width, 3, stride=stride, dilation=dilation, lon_padding=lon)
        self.expand = conv_bn_relu(width, cout, 1, lon_padding=lon, relu=False)
        self.shortcut = (
            conv_bn_relu(cin, cout, 1, stride=stride, lon_padding=lon, relu=False)
            if (stride != 1 or cin != cout)
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.relu(self.expand(self.conv(self.reduce(x))) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet-style encoder returning (features at 1/output_stride, features at 1/4)."""

    def __init__(self, cin: int, cfg: DeepLabConfig) -> None:
        super().__init__()
        lon = cfg.lon_padding
        self.stem = nn.Sequential(
            conv_bn_relu(cin, cfg.stem_channels, 7, stride=2, lon_padding=lon),
            GeoMaxPool2d(lon),
        )
        # strides / dilations of the 4 stages (torchvision "replace_stride_with_dilation")
        if cfg.output_stride == 16:
            strides, dilations = (1, 2, 2, 1), (1, 1, 1, 2)
        else:
            strides, dilations = (1, 2, 1, 1), (1, 1, 2, 4)
        stages = []
        c = cfg.stem_channels
        for i, (n, s, d) in enumerate(zip(cfg.blocks, strides, dilations)):
            width = cfg.width * 2**i
            cout = width * cfg.expansion
            # the first block of a dilated stage uses the previous dilation (as torchvision)
            first_d = max(1, d // 2) if (s == 1 and d > 1) else d
            blocks = [Bottleneck(c, width, cout, s, first_d, lon)]
            blocks += [Bottleneck(cout, width, cout, 1, d, lon) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            c = cout
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.out_channels = c
        self.low_channels = cfg.width * cfg.expansion

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        x = self.stem(x)
        low = self.stage1(x)
        x = self.stage4(self.stage3(self.stage2(low)))
        return x, low


# --------------------------------------------------------------------------- Xception


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (strided / dilated, "same" padding) followed by a pointwise 1x1."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int, lon: LonPadding) -> None:
        super().__init__(
            GeoConv2d(cin, cin, 3, stride=stride, padding=dilation, dilation=dilation, groups=cin,
                      bias=False, lon_padding=lon),
            GeoConv2d(cin, cout, 1, bias=False, lon_padding=lon),
        )


class XceptionBlock(nn.Module):
    """Residual block of separable convolutions (aligned Xception as in DeepCAM).

    ``reps`` separable convs (each + BN, ReLU between them), then a strided separable
    conv if ``stride > 1`` (or an extra unstrided one for the last block of a flow),
    plus a 1x1 projection shortcut when the shape changes.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        reps: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        grow_first: bool = True,
        end_with_relu: bool = True,
        is_last: bool = False,
        lon: LonPadding = "circular",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans = [cin] + [cout if grow_first else cin] * (reps - 1) + [cout]
        for i in range(reps):
            layers += [SeparableConv(chans[i], chans[i + 1], 1, dilation, lon), nn.BatchNorm2d(chans[i + 1])]
            if i < reps - 1:
                layers.append(nn.ReLU(inplace=True))
        if stride != 1:
            layers.append(SeparableConv(cout, cout, stride, 1, lon))
        elif is_last:
            layers.append(SeparableConv(cout, cout, 1, 1, lon))
        self.body = nn.Sequential(*layers)
        self.shortcut = (
            conv_bn_relu(cin, cout, 1, stride=stride, lon_padding=lon, relu=False)
            if (cin != cout or stride != 1)
            else nn.Identity()
        )
        self.end_relu = nn.ReLU(inplace=True) if end_with_relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.end_relu(self.body(x) + self.shortcut(x))


class XceptionEncoder(nn.Module):
    """Modified aligned Xception (DeepCAM reference layout)."""

    def __init__(self, cin: int, cfg: DeepLabConfig) -> None:
        super().__init__()
        lon = cfg.lon_padding

        def ch(c: int) -> int:
            return max(1, int(round(c * cfg.xception_scale)))

        if cfg.output_stride == 16:
            entry3_stride, middle_rate, exit_rates = 2, 1, (1, 2)
        else:
            entry3_stride, middle_rate, exit_rates = 1, 2, (2, 4)
        self.stem = nn.Sequential(
            conv_bn_relu(cin, ch(32), 3, stride=2, lon_padding=lon),
            conv_bn_relu(ch(32), ch(64), 3, lon_padding=lon),
        )
        self.block1 = XceptionBlock(ch(64), ch(128), 2, stride=2, end_with_relu=False, lon=lon)
        self.relu = nn.ReLU()
        self.entry = nn.Sequential(
            XceptionBlock(ch(128), ch(256), 2, stride=2, lon=lon),
            XceptionBlock(ch(256), ch(728), 2, stride=entry3_stride, is_last=True, lon=lon),
        )
        self.middle = nn.Sequential(
            *[XceptionBlock(ch(728), ch(728), 3, dilation=middle_rate, lon=lon)
              for _ in range(cfg.xception_middle_blocks)]
        )
        r = exit_rates[1]
        self.exit = nn.Sequential(
            XceptionBlock(ch(728), ch(1024), 2, dilation=exit_rates[0], grow_first=False,
                          end_with_relu=False, is_last=True, lon=lon),
            SeparableConv(ch(1024), ch(1536), 1, r, lon), nn.BatchNorm2d(ch(1536)), nn.ReLU(inplace=True),
            SeparableConv(ch(1536), ch(1536), 1, r, lon), nn.BatchNorm2d(ch(1536)), nn.ReLU(inplace=True),
            SeparableConv(ch(1536), ch(2048), 1, r, lon), nn.BatchNorm2d(ch(2048)), nn.ReLU(inplace=True),
        )
        self.out_channels = ch(2048)
        self.low_channels = ch(128)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        # the reference keeps a reference to block1's output and then applies an in-place
        # ReLU to it: the low-level skip the decoder sees is rectified
        low = self.relu(self.block1(self.stem(x)))
        x = self.exit(self.middle(self.entry(low)))
        return x, low


# --------------------------------------------------------------------------- head


class ChannelAffine(nn.Module):
    """``weights * x + bias`` per channel (the DeepCAM reference's ``TrainableAffine``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.weights * x + self.bias


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3, image-level pooling.

    The image-level branch has no BatchNorm (a 1x1 map has no spatial statistics at
    batch 1): a 1x1 convolution with bias (``pool_affine=False``) or, as in the DeepCAM
    reference, without bias followed by a per-channel affine map (``pool_affine=True``).
    """

    def __init__(self, cin: int, cout: int, rates: tuple[int, ...], lon: LonPadding,
                 pool_affine: bool = False) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout, 1, lon_padding=lon)]
            + [conv_bn_relu(cin, cout, 3, dilation=r, lon_padding=lon) for r in rates]
        )
        if pool_affine:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False),
                                      ChannelAffine(cout), nn.ReLU(inplace=True))
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=True),
                                      nn.ReLU(inplace=True))
        self.project = conv_bn_relu(cout * (len(rates) + 2), cout, 1, lon_padding=lon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        feats = [b(x) for b in self.branches]
        feats.append(self.pool(x).expand(-1, -1, x.shape[-2], x.shape[-1]))
        return self.project(torch.cat(feats, dim=1))


def _deconv_bn_relu(cin: int, cout: int, lon: LonPadding) -> nn.Sequential:
    return nn.Sequential(
        GeoConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False, lon_padding=lon),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DeepLabV3Plus(SegmentationNet):
    """DeepLabv3+ with learned upsampling (see the module docstring for the layout).

    Parameters
    ----------
    in_channels
        Number of input fields (16 for the ClimateNet / DeepCAM variables).
    num_classes
        Number of output classes (3: background, TC, AR).
    config
        :class:`DeepLabConfig`; defaults to the ``paper`` layout.
    """

    def __init__(self, in_channels: int = 16, num_classes: int = 3, config: DeepLabConfig | None = None) -> None:
        cfg = config or DeepLabConfig(backbone="resnet")
        if cfg.backbone == "resnet_v2":
            raise ConfigError("DeepLabV3Plus builds backbone 'resnet' or 'xception'; "
                              "'resnet_v2' is climviz.models.deeplab_sc18.DeepLabSC18 (use build())")
        super().__init__(cfg, in_channels, num_classes, multiple=max(16, cfg.output_stride))
        lon = cfg.lon_padding
        deepcam = cfg.backbone == "xception"
        self.encoder = ResNetEncoder(in_channels, cfg) if not deepcam else XceptionEncoder(in_channels, cfg)
        rates = tuple(r * 16 // cfg.output_stride for r in cfg.aspp_rates)
        self.aspp = ASPP(self.encoder.out_channels, cfg.aspp_channels, rates, lon, pool_affine=deepcam)
        self.low_level = conv_bn_relu(self.encoder.low_channels, cfg.low_level_channels, 1, lon_padding=lon)
        dc = cfg.decoder_channels
        n_up = {16: 2, 8: 1}[cfg.output_stride]  # x2 steps from 1/output_stride to 1/4
        ups = [_deconv_bn_relu(cfg.aspp_channels, dc, lon)] + [_deconv_bn_relu(dc, dc, lon) for _ in range(n_up - 1)]
        self.up_to_4 = nn.Sequential(*ups)
        self.fuse = nn.Sequential(
            conv_bn_relu(dc + cfg.low_level_channels, dc, 3, lon_padding=lon),
            conv_bn_relu(dc, dc, 3, lon_padding=lon),
            GeoConv2d(dc, dc, 1, bias=True, lon_padding=lon),
        )
        self.up_to_2 = _deconv_bn_relu(dc, dc, lon)
        # the DeepCAM reference's last transposed convolution has no bias
        self.classifier = GeoConvTranspose2d(dc, num_classes, 3, stride=2, padding=1, output_padding=1,
                                             bias=not deepcam, lon_padding=lon)
        if deepcam:
            init_deepcam(self)
        else:
            init_weights(self)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of 16."""
        feats, low = self.encoder(x)
        y = self.up_to_4(self.aspp(feats))
        y = self.fuse(torch.cat([y, self.low_level(low)], dim=1))
        return self.classifier(self.up_to_2(y))


def init_deepcam(net: DeepLabV3Plus) -> None:
    """Initialise as the MLPerf HPC DeepCAM reference does.

    ``torch.nn.init.kaiming_normal_`` with its defaults (fan-in, gain sqrt(2): standard
    deviation ``sqrt(2 / (C_in/groups * k * k))``) for every convolution of the encoder and
    of the four ASPP branches, BatchNorm weight 1 / bias 0 there; everything else (the
    image-pooling convolution and affine map, the ASPP projection, the low-level 1x1
    convolution and the whole decoder) keeps PyTorch's default initialisation, because the
    reference never calls its decoder's ``__init_weight``.
    """
    for part in (net.encoder, net.aspp.branches):
        for m in part.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
