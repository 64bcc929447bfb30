"""The DeepLabv3+ of Kurth et al. (SC18), layer for layer as the authors' TensorFlow graph.

Reference: ``azrael417/ClimDeepLearn``, ``semanticsegm/deeplab-tf/deeplab_model.py``, run
with ``--model=resnet_v2_50 --decoder=deconv1x`` (output stride 8), on TF-slim's
``resnet_v2_50``. Written in PyTorch from the graph's description; nothing is imported
from the reference.

::

    fields (N, C, H, W)
      ├─ ResNet-50 v2 (pre-activation), output stride 8:
      │    root 7x7/2 conv (64, bias, no BN) ─ 3x3/2 max-pool ("SAME") ─
      │    block1 (3 units, 256, last unit strided) ─ block2 (4 units, 512) ─
      │    block3 (6 units, 1024, rate 2) ─ block4 (3 units, 2048, rate 4)
      │    [low level: ReLU(BN(1x1 conv)) of block1/unit_3 = 64 channels at 1/4]
      ├─ ASPP on block4 (no post-norm): 1x1, 3x3 rates 12/24/36, image pooling (each
      │    conv-BN-ReLU, 256) ─ concat ─ 1x1 conv-BN-ReLU (256)          [1/8]
      ├─ decoder "deconv1x":
      │    3x3/2 transposed conv 256 (bias, linear)                      [1/4]
      │    concat low level reduced to 48 (1x1 conv-BN-ReLU) ─ 2 x 3x3 conv-BN-ReLU 256
      │    3x3/2 transposed conv 256 ─ 3x3/2 transposed conv 256 (bias, linear)  [1]
      │    full resolution: 3x3 conv C->64 ─ 3x3 conv 64->128 on the raw fields (bias,
      │    linear) ─ concat (384) ─ 3x3 conv 384->256 ─ 3x3 conv 256->256 (bias, linear)
      └─ 1x1 conv 256 -> classes (bias) = logits (N, K, H, W)

As in the reference, the layers made with ``tf.layers`` (transposed convolutions and the
full-resolution convolutions) have biases and *no* activation: the last five layers
before the logits are linear. TensorFlow's ``"SAME"`` alignment of the root max-pool and
the stride-2 transposed convolutions is kept (:func:`~climviz.models.layers.tf_same_max_pool`,
:class:`~climviz.models.layers.TFSameConvTranspose2d`); with ``lon_padding="zero"`` the
network is the reference graph (up to TensorFlow-to-PyTorch weight layout), with the
default ``"circular"`` every layer wraps around in longitude.

Sizes at 16 input channels and 3 classes: 43,714,787 parameters (Kurth et al.: 43.7 M;
slim's unused ``postnorm`` BatchNorm after block 4, 4,096 parameters, is left out);
4.34 TFLOP forward, 12.99 TFLOP per 768x1152 training sample counted by :func:`climviz.models.train_flops_per_sample`
(forward + backward; the paper's 14.41 TF also counts the zero-padded inputs of the dilated
convolutions as TensorFlow 1 ran them).

Initialisation as the reference: slim convolutions truncated-normal with standard deviation
``sqrt(1.3 * 2 / fan_in)`` cut at 2 sigma (``variance_scaling_initializer()``),
``tf.layers`` convolutions He-uniform (fan-in), biases 0, BatchNorm scale 1 / offset 0,
epsilon 1e-5.

Memory: the full-resolution part keeps about 1,300 channels of activations per pixel for
the backward pass. A training step keeps about 7.8 GiB of activations per 768x1152 sample
in fp32 (measured at 48x72 and 96x144 crops with saved-tensor hooks and extrapolated along
the straight line through both; ``benchmarks/bench_models.py``, ``results/models.json``,
``figures.memory``). ``activation_checkpointing=True`` recomputes the full-resolution part
in the backward pass instead (it has no BatchNorm, so gradients and running statistics are
unchanged): 4.4 GiB per sample, 0.58x, for 24% more arithmetic (the head is 3.1 of the 4.3
forward TFLOP; :func:`~climviz.models.train_flops_per_sample` then counts 16.07 TF, the
recomputation included).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from climviz.models.base import SegmentationNet
from climviz.models.deeplabv3plus import DeepLabConfig
from climviz.models.layers import GeoConv2d, LonPadding, TFSameConvTranspose2d, tf_same_max_pool

__all__ = ["DeepLabSC18", "resnet_v2_units", "init_sc18"]


def _slim_conv(cin: int, cout: int, k: int = 1, *, stride: int = 1, rate: int = 1, lon: LonPadding,
               bias: bool = False) -> GeoConv2d:
    conv = GeoConv2d(cin, cout, k, stride=stride, padding=rate * (k - 1) // 2, dilation=rate, bias=bias,
                     lon_padding=lon)
    conv._init = "slim"  # type: ignore[assignment]  # plain tag for init_sc18; Module.__setattr__ is typed for tensors/modules
    return conv


def _tf_conv(cin: int, cout: int, k: int, *, lon: LonPadding) -> GeoConv2d:
    conv = GeoConv2d(cin, cout, k, padding=(k - 1) // 2, bias=True, lon_padding=lon)
    conv._init = "he_uniform"  # type: ignore[assignment]  # plain tag for init_sc18 (see _slim_conv)
    return conv


def _tf_deconv(cin: int, cout: int, *, lon: LonPadding) -> TFSameConvTranspose2d:
    deconv = TFSameConvTranspose2d(cin, cout, 3, 2, bias=True, lon_padding=lon)
    deconv._init = "he_uniform"  # type: ignore[assignment]  # plain tag for init_sc18 (see _slim_conv)
    return deconv


class ConvBNReLU(nn.Sequential):
    """slim ``conv2d`` under ``resnet_arg_scope``: convolution (no bias), BatchNorm, ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 1, *, stride: int = 1, rate: int = 1,
                 lon: LonPadding) -> None:
        super().__init__(_slim_conv(cin, cout, k, stride=stride, rate=rate, lon=lon),
                         nn.BatchNorm2d(cout, eps=1e-5), nn.ReLU(inplace=True))


class PoolBatchNorm(nn.BatchNorm2d):
    """BatchNorm of the image-pooling branch, which sees one value per channel and sample.

    TensorFlow normalises a batch of one 1x1 map to 0 (output = offset); PyTorch's
    BatchNorm refuses a single value per channel. With one value per channel in training
    this layer returns the offset and moves the running mean towards the value and the
    running variance towards 0 (the biased variance), as TensorFlow does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.training and x.numel() // x.shape[1] == 1:
            if self.track_running_stats and self.running_mean is not None:
                assert self.running_var is not None and self.num_batches_tracked is not None  # set with running_mean
                with torch.no_grad():
                    m = self.momentum if self.momentum is not None else 0.1
                    self.running_mean.mul_(1 - m).add_(m * x.detach().reshape(-1).to(self.running_mean.dtype))
                    self.running_var.mul_(1 - m)
                    self.num_batches_tracked.add_(1)
            out = 0 * x  # normalised value; keeps the graph connected to x
            return out + self.bias.view(1, -1, 1, 1) if self.affine else out
        return super().forward(x)


class PreActBottleneck(nn.Module):
    """slim ``resnet_v2.bottleneck``: pre-activation unit.

    ``preact = ReLU(BN(x))``; shortcut = ``x`` subsampled (same depth) or a 1x1 conv with
    bias of ``preact``; residual = 1x1 conv-BN-ReLU, 3x3 conv-BN-ReLU (stride / rate),
    1x1 conv with bias. ``conv1`` (the first residual layer's activation) is kept as
    :attr:`last_conv1` when :attr:`keep_conv1` is set (the decoder's low-level features).
    """

    def __init__(self, cin: int, depth: int, bottleneck: int, stride: int, rate: int, lon: LonPadding) -> None:
        super().__init__()
        self.stride = stride
        self.preact = nn.Sequential(nn.BatchNorm2d(cin, eps=1e-5), nn.ReLU(inplace=False))
        self.shortcut = None if depth == cin else _slim_conv(cin, depth, 1, stride=stride, lon=lon, bias=True)
        self.conv1 = ConvBNReLU(cin, bottleneck, 1, lon=lon)
        self.conv2 = ConvBNReLU(bottleneck, bottleneck, 3, stride=stride, rate=rate, lon=lon)
        self.conv3 = _slim_conv(bottleneck, depth, 1, lon=lon, bias=True)
        self.keep_conv1 = False
        self.last_conv1: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        pre = self.preact(x)
        if self.shortcut is None:
            short = x[..., :: self.stride, :: self.stride] if self.stride > 1 else x
        else:
            short = self.shortcut(pre)
        c1 = self.conv1(pre)
        if self.keep_conv1:
            self.last_conv1 = c1
        return short + self.conv3(self.conv2(c1))


def resnet_v2_units(blocks: tuple[int, ...], output_stride: int) -> list[list[tuple[int, int]]]:
    """(stride, rate) of every unit of slim's ResNet v2 at ``output_stride``.

    slim puts each block's stride in its *last* unit (block 4 has none) and, once the
    target stride is reached, replaces strides by atrous rates
    (``resnet_utils.stack_blocks_dense``). The root (7x7/2 conv + 3x3/2 pool) counts 4.

    Examples
    --------
    >>> resnet_v2_units((3, 4, 6, 3), 8)[2][0], resnet_v2_units((3, 4, 6, 3), 8)[3][0]
    ((1, 2), (1, 4))
    """
    target = output_stride // 4
    current, rate = 1, 1
    out = []
    for i, n in enumerate(blocks):
        block_stride = 2 if i < len(blocks) - 1 else 1
        units = []
        for u in range(n):
            s = block_stride if u == n - 1 else 1
            if current == target:
                units.append((1, rate))
                rate *= s
            else:
                units.append((s, 1))
                current *= s
        out.append(units)
    return out


class ResNetV2Encoder(nn.Module):
    """slim ``resnet_v2_50`` without logits and global pooling: (block4 output, low level)."""

    def __init__(self, cin: int, blocks: tuple[int, ...], width: int, expansion: int, stem: int,
                 output_stride: int, lon: LonPadding) -> None:
        super().__init__()
        self.lon = lon
        self.root = _slim_conv(cin, stem, 7, stride=2, lon=lon, bias=True)  # no BN, no activation in v2
        c = stem
        stages = []
        for i, units in enumerate(resnet_v2_units(tuple(blocks), output_stride)):
            base = width * 2**i
            mods = []
            for s, r in units:
                mods.append(PreActBottleneck(c, base * expansion, base, s, r, lon))
                c = base * expansion
            stages.append(nn.Sequential(*mods))
        self.block1, self.block2, self.block3, self.block4 = stages
        unit = self.block1[-1]
        assert isinstance(unit, PreActBottleneck)
        unit.keep_conv1 = True  # block1/unit_3/bottleneck_v2/conv1
        self.out_channels = c
        self.low_channels = width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        x = tf_same_max_pool(self.root(x), 3, 2, lon_padding=self.lon)
        x = self.block1(x)
        unit = self.block1[-1]
        assert isinstance(unit, PreActBottleneck)
        low = unit.last_conv1
        assert low is not None  # keep_conv1 is set in __init__
        unit.last_conv1 = None
        x = self.block4(self.block3(self.block2(x)))
        return x, low


class ASPPSC18(nn.Module):
    """ASPP of the reference.

    1x1 and three atrous 3x3 conv-BN-ReLU, image pooling (mean, 1x1 conv-BN-ReLU, broadcast),
    concat, 1x1 conv-BN-ReLU.
    """

    def __init__(self, cin: int, depth: int, rates: tuple[int, ...], lon: LonPadding) -> None:
        super().__init__()
        self.conv_1x1 = ConvBNReLU(cin, depth, 1, lon=lon)
        self.conv_3x3 = nn.ModuleList([ConvBNReLU(cin, depth, 3, rate=r, lon=lon) for r in rates])
        self.image_pool = nn.Sequential(_slim_conv(cin, depth, 1, lon=lon), PoolBatchNorm(depth, eps=1e-5),
                                        nn.ReLU(inplace=True))
        self.project = ConvBNReLU(depth * (len(rates) + 2), depth, 1, lon=lon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        feats = [self.conv_1x1(x)] + [b(x) for b in self.conv_3x3]
        pooled = self.image_pool(x.mean(dim=(2, 3), keepdim=True))
        # bilinear resize of a 1x1 map = broadcast
        feats.append(pooled.expand(-1, -1, x.shape[-2], x.shape[-1]))
        return self.project(torch.cat(feats, dim=1))


class FullResolutionHead(nn.Module):
    """``deconv1x`` tail of the reference.

    Two transposed convs to full resolution, the raw-input branch (3x3 convs C->64->128),
    concat, two 3x3 convs, 1x1 logits; all with bias, linear.
    """

    def __init__(self, cin: int, in_fields: int, dec: int, skip: tuple[int, int], classes: int,
                 lon: LonPadding) -> None:
        super().__init__()
        self.up_to_2 = _tf_deconv(dec, dec, lon=lon)
        self.up_to_1 = _tf_deconv(dec, dec, lon=lon)
        self.skip1 = _tf_conv(in_fields, skip[0], 3, lon=lon)
        self.skip2 = _tf_conv(skip[0], skip[1], 3, lon=lon)
        self.fuse1 = _tf_conv(dec + skip[1], dec, 3, lon=lon)
        self.fuse2 = _tf_conv(dec, dec, 3, lon=lon)
        self.logits = _slim_conv(dec, classes, 1, lon=lon, bias=True)

    def forward(self, y: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.up_to_1(self.up_to_2(y))
        skip = self.skip2(self.skip1(fields))
        y = self.fuse2(self.fuse1(torch.cat([y, skip], dim=1)))
        return self.logits(y)


def init_sc18(module: nn.Module) -> None:
    """Initialise like the reference (see the module docstring)."""
    for m in module.modules():
        kind = getattr(m, "_init", None)
        if kind in ("slim", "he_uniform"):
            assert isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))  # only convolutions carry the tag
            if kind == "slim":
                fan_in = m.weight[0].numel()
                std = math.sqrt(1.3 * 2.0 / fan_in)
                nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
            else:
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class DeepLabSC18(SegmentationNet):
    """DeepLabv3+ of Kurth et al. (SC18), ``resnet_v2_50`` + ``deconv1x`` (module docstring).

    Parameters
    ----------
    in_channels
        Number of input fields.
    num_classes
        Number of classes.
    config
        :class:`~climviz.models.deeplabv3plus.DeepLabConfig` with ``backbone="resnet_v2"``;
        uses ``blocks, width, expansion, stem_channels, output_stride, aspp_channels,
        aspp_rates, low_level_channels, decoder_channels, full_res_channels,
        activation_checkpointing, lon_padding, lat_padding``.
    """

    def __init__(self, in_channels: int = 16, num_classes: int = 3, config=None) -> None:
        cfg = config or DeepLabConfig(backbone="resnet_v2", output_stride=8)
        super().__init__(cfg, in_channels, num_classes, multiple=cfg.output_stride)
        lon = cfg.lon_padding
        self.encoder = ResNetV2Encoder(in_channels, cfg.blocks, cfg.width, cfg.expansion, cfg.stem_channels,
                                       cfg.output_stride, lon)
        rates = tuple(r * 16 // cfg.output_stride for r in cfg.aspp_rates)
        self.aspp = ASPPSC18(self.encoder.out_channels, cfg.aspp_channels, rates, lon)
        self.low_level = ConvBNReLU(self.encoder.low_channels, cfg.low_level_channels, 1, lon=lon)
        dc = cfg.decoder_channels
        # 1/output_stride -> 1/4: transposed convs keeping the ASPP depth (one at stride 8)
        n_up = {8: 1, 16: 2}[cfg.output_stride]
        self.up_to_4 = nn.Sequential(*[_tf_deconv(cfg.aspp_channels, cfg.aspp_channels, lon=lon)
                                       for _ in range(n_up)])
        self.fuse = nn.Sequential(
            ConvBNReLU(cfg.aspp_channels + cfg.low_level_channels, dc, 3, lon=lon),
            ConvBNReLU(dc, dc, 3, lon=lon),
        )
        self.head = FullResolutionHead(dc, in_channels, dc, tuple(cfg.full_res_channels), num_classes, lon)
        init_sc18(self)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of the output stride."""
        feats, low = self.encoder(x)
        y = self.up_to_4(self.aspp(feats))
        y = self.fuse(torch.cat([y, self.low_level(low)], dim=1))
        if self.config.activation_checkpointing and torch.is_grad_enabled() and self.training:
            return checkpoint(self.head, y, x, use_reentrant=False)
        return self.head(y, x)
