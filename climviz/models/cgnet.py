"""CGNet as ClimateNet trains it (Kashinath et al. 2021; Wu et al. 2018).

Reference: ``andregraubner/ClimateNet``, ``climatenet/models.py`` (``CGNetModule`` with
``M=3, N=21``) and ``climatenet/modules.py``; written in PyTorch from that description.
Module and parameter names follow the reference, so a ClimateNet ``weights.pth`` loads with
``net.load_state_dict`` unchanged (same keys, same shapes).

::

    fields (N, C, H, W)
      stage 1: 3x3/2 conv-BN-PReLU (32) ─ 2 x 3x3 conv-BN-PReLU (32)          [1/2]
               concat the fields average-pooled to 1/2 ─ BN-PReLU (32 + C)
      stage 2: context-guided down block (64, dilation 2, reduction 8)         [1/4]
               M-1 = 2 context-guided blocks (64) ─ concat (block out, down out,
               fields pooled to 1/4) ─ BN-PReLU (128 + C)
      stage 3: context-guided down block (128, dilation 4, reduction 16)       [1/8]
               N-1 = 20 context-guided blocks (128) ─ concat ─ BN-PReLU (256)
      1x1 conv (classes, no bias) ─ bilinear x8 = logits (N, K, H, W)

Context-guided block: 1x1 conv-BN-PReLU to half the width (the down block: 3x3/2 to the
full width), a depthwise 3x3 ("local") and a depthwise dilated 3x3 ("surrounding")
convolution, concatenated, BN-PReLU (the down block then reduces 2x with a 1x1 conv), then
"global" channel re-weighting (average pool, two linear layers, sigmoid), and a residual
connection in the non-down blocks. BatchNorm epsilon 1e-3.

Sizes at 3 classes: 518,496 parameters with 16 input fields, 494,232 with ClimateNet's four
(TMQ, U850, V850, PSL); 74.8 GFLOP per 768x1152 training sample (forward + backward,
:func:`climviz.models.train_flops_per_sample`, depthwise weight gradients counted once).
ClimateNet trains it with Adam (lr 1e-3) on the Jaccard loss of the softmax
(``TrainConfig(model="cgnet", loss="jaccard", optimizer="adamw", weight_decay=0)``).

Padding: ClimateNet wraps *both* axes (``F.pad(..., mode="circular")``), so its poles are
neighbours, and its final bilinear x8 upsampling does not wrap. climviz wraps longitude
everywhere and zero-pads latitude by default; ``lat_wrap=True, periodic_upsample=False``
reproduces the reference exactly (checked against ClimateNet's code by the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from climviz._fields import spec, validate
from climviz.models._options import AT_LEAST_ONE, DROPOUT, LAT_PADDING, LON_PADDING, NetworkOptions
from climviz.models.base import SegmentationNet
from climviz.models.layers import LatPadding, LonPadding, wrap_lon

__all__ = ["CGNetConfig", "CGNet"]


@dataclass
class CGNetConfig(NetworkOptions):
    """Architecture options of :class:`CGNet`.

    Attributes
    ----------
    stage2_blocks
        ``M``: context-guided blocks of stage 2 including its down block (3).
    stage3_blocks
        ``N``: context-guided blocks of stage 3 including its down block (21).
    dropout
        Dropout2d before the classifier (the reference's ``dropout_flag``: 0.1 or off).
    lat_wrap
        Wrap latitude in the convolutions and input pooling, as ClimateNet does.
    periodic_upsample
        Make the final bilinear x8 upsampling periodic in longitude (with
        ``lon_padding="circular"``); ClimateNet's is not.
    lon_padding
        ``"circular"`` (the globe wraps) or ``"zero"``.
    lat_padding
        Padding of the input rows to a multiple of 8: ``"reflect"`` or ``"zero"``.

    Examples
    --------
    The ``tiny`` preset keeps the paper's stage 2 and shortens stage 3:

    >>> cv.models.CGNetConfig().stage3_blocks, cv.models.preset_config("cgnet", "tiny").stage3_blocks
    (21, 3)
    >>> cv.models.CGNetConfig(lon_padding="reflect")
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: cgnet option 'lon_padding' must be 'circular' or 'zero', got 'reflect'
    """

    _network: ClassVar[str] = "cgnet"

    stage2_blocks: int = field(default=3, metadata=spec(AT_LEAST_ONE))
    stage3_blocks: int = field(default=21, metadata=spec(AT_LEAST_ONE))
    dropout: float = field(default=0.0, metadata=spec(DROPOUT))
    lat_wrap: bool = False
    periodic_upsample: bool = True
    lon_padding: LonPadding = field(default="circular", metadata=spec(LON_PADDING))
    lat_padding: LatPadding = field(default="reflect", metadata=spec(LAT_PADDING))

    def __post_init__(self) -> None:
        self.lat_wrap = bool(self.lat_wrap)
        validate(self)


class _Pad(nn.Module):
    """The reference's ``Wrap``: pads ``p`` cells on every side (wrap or zero per axis)."""

    def __init__(self, p: int, lon: LonPadding, lat_wrap: bool) -> None:
        super().__init__()
        self.p, self.lon, self.lat_wrap = p, lon, lat_wrap

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = self.p
        if not p:
            return x
        if self.lat_wrap:
            x = torch.cat([x[..., -p:, :], x, x[..., :p, :]], dim=-2)
        else:
            x = F.pad(x, (0, 0, p, p))
        return wrap_lon(x, p, p) if self.lon == "circular" else F.pad(x, (p, p, 0, 0))


class _PadKw(TypedDict):
    """The padding keywords every block passes on to its convolutions."""

    lon: LonPadding
    lat_wrap: bool


class _Conv(nn.Module):
    """Padding + ``nn.Conv2d`` without bias.

    The reference's ``Conv`` / ``ChannelWiseConv`` / ``DilatedConv``; the convolution is the
    ``conv`` attribute as there.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, d: int = 1, groups: int = 1, *,
                 lon: LonPadding, lat_wrap: bool) -> None:
        super().__init__()
        self.padding = _Pad((k - 1) // 2 * d, lon, lat_wrap)
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, dilation=d, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.conv(self.padding(x))


class ConvBNPReLU(_Conv):
    """Padded convolution, BatchNorm (eps 1e-3), PReLU per channel."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, *, lon: LonPadding, lat_wrap: bool) -> None:
        super().__init__(cin, cout, k, stride, lon=lon, lat_wrap=lat_wrap)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.bn(super().forward(x)))


class BNPReLU(nn.Module):
    """BatchNorm (eps 1e-3) and PReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(c, eps=1e-3)
        self.act = nn.PReLU(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.bn(x))


class FGlo(nn.Module):
    """Global context: channel weights from average pool, linear, ReLU, linear, sigmoid."""

    def __init__(self, c: int, reduction: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // reduction), nn.ReLU(inplace=True),
                                nn.Linear(c // reduction, c), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.fc(x.mean(dim=(2, 3)))
        return x * y[:, :, None, None]


class CGBlockDown(nn.Module):
    """Context-guided down block: (H, W, C_in) -> (H/2, W/2, C_out)."""

    def __init__(self, cin: int, cout: int, dilation: int, reduction: int, lon: LonPadding, lat_wrap: bool) -> None:
        super().__init__()
        kw: _PadKw = {"lon": lon, "lat_wrap": lat_wrap}
        self.conv1x1 = ConvBNPReLU(cin, cout, 3, 2, **kw)  # (named so in the reference)
        self.F_loc = _Conv(cout, cout, 3, groups=cout, **kw)
        self.F_sur = _Conv(cout, cout, 3, d=dilation, groups=cout, **kw)
        self.bn = nn.BatchNorm2d(2 * cout, eps=1e-3)
        self.act = nn.PReLU(2 * cout)
        self.reduce = _Conv(2 * cout, cout, 1, **kw)
        self.F_glo = FGlo(cout, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.conv1x1(x)
        joint = self.act(self.bn(torch.cat([self.F_loc(y), self.F_sur(y)], dim=1)))
        return self.F_glo(self.reduce(joint))


class CGBlock(nn.Module):
    """Context-guided block with a residual connection (C -> C)."""

    def __init__(self, c: int, dilation: int, reduction: int, lon: LonPadding, lat_wrap: bool) -> None:
        super().__init__()
        kw: _PadKw = {"lon": lon, "lat_wrap": lat_wrap}
        n = c // 2
        self.conv1x1 = ConvBNPReLU(c, n, 1, **kw)
        self.F_loc = _Conv(n, n, 3, groups=n, **kw)
        self.F_sur = _Conv(n, n, 3, d=dilation, groups=n, **kw)
        self.bn_prelu = BNPReLU(c)
        self.F_glo = FGlo(c, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.conv1x1(x)
        y = self.bn_prelu(torch.cat([self.F_loc(y), self.F_sur(y)], dim=1))
        return x + self.F_glo(y)


class InputInjection(nn.Module):
    """The input fields average-pooled (3x3, stride 2, after 1-cell padding) ``times`` times."""

    def __init__(self, times: int, lon: LonPadding, lat_wrap: bool) -> None:
        super().__init__()
        self.pad = _Pad(1, lon, lat_wrap)
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for _ in range(self.times):
            x = F.avg_pool2d(self.pad(x), 3, stride=2)
        return x


class CGNet(SegmentationNet):
    """CGNet of ClimateNet (see the module docstring).

    Parameters
    ----------
    in_channels
        Number of input fields (4 in ClimateNet's configuration, 16 for all DeepCAM fields).
    num_classes
        Number of classes.
    config
        :class:`CGNetConfig`.
    """

    def __init__(self, in_channels: int = 16, num_classes: int = 3, config: CGNetConfig | None = None) -> None:
        cfg = config or CGNetConfig()
        super().__init__(cfg, in_channels, num_classes, multiple=8)
        kw: _PadKw = {"lon": cfg.lon_padding, "lat_wrap": cfg.lat_wrap}
        c = in_channels
        self.level1_0 = ConvBNPReLU(c, 32, 3, 2, **kw)
        self.level1_1 = ConvBNPReLU(32, 32, 3, **kw)
        self.level1_2 = ConvBNPReLU(32, 32, 3, **kw)
        self.sample1 = InputInjection(1, **kw)
        self.sample2 = InputInjection(2, **kw)
        self.b1 = BNPReLU(32 + c)
        self.level2_0 = CGBlockDown(32 + c, 64, 2, 8, **kw)
        self.level2 = nn.ModuleList([CGBlock(64, 2, 8, **kw) for _ in range(cfg.stage2_blocks - 1)])
        self.bn_prelu_2 = BNPReLU(128 + c)
        self.level3_0 = CGBlockDown(128 + c, 128, 4, 16, **kw)
        self.level3 = nn.ModuleList([CGBlock(128, 4, 16, **kw) for _ in range(cfg.stage3_blocks - 1)])
        self.bn_prelu_3 = BNPReLU(256)
        head: list[nn.Module] = [nn.Dropout2d(float(cfg.dropout))] if cfg.dropout > 0 else []
        self.classifier = nn.Sequential(*head, _Conv(256, num_classes, 1, **kw))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # as the reference: Kaiming normal, fan-in
                nn.init.kaiming_normal_(m.weight)

    def _upsample(self, y: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if self.config.lon_padding != "circular" or not self.config.periodic_upsample:
            return F.interpolate(y, (h, w), mode="bilinear", align_corners=False)
        # periodic: one wrapped column on each side, scale 8 kept exactly, crop back
        scale = w // y.shape[-1]
        y = F.interpolate(wrap_lon(y, 1, 1), (h, w + 2 * scale), mode="bilinear", align_corners=False)
        return y[..., scale : scale + w]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of 8."""
        out0 = self.level1_2(self.level1_1(self.level1_0(x)))
        inp1, inp2 = self.sample1(x), self.sample2(x)
        out1_0 = self.level2_0(self.b1(torch.cat([out0, inp1], dim=1)))
        out1 = out1_0
        for layer in self.level2:
            out1 = layer(out1)
        out2_0 = self.level3_0(self.bn_prelu_2(torch.cat([out1, out1_0, inp2], dim=1)))
        out2 = out2_0
        for layer in self.level3:
            out2 = layer(out2)
        y = self.classifier(self.bn_prelu_3(torch.cat([out2_0, out2], dim=1)))
        return self._upsample(y, x.shape[-2], x.shape[-1])
