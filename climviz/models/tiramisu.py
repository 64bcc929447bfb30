"""Tiramisu (fully convolutional DenseNet, Jégou et al. 2017) for climate segmentation.

This module holds Jegou et al.'s FC-DenseNet layers (climviz's ``fcdensenet-os32`` and
``tiny`` presets) and :class:`TiramisuConfig`, which also configures the SC18 graph of
Kurth et al. (:mod:`climviz.models.tiramisu_sc18`, ``style="sc18"``, the ``paper`` preset).

::

    fields ─ 3x3 conv (first_channels) ─┬─ DB(2) ─ TD ─ DB(2) ─ TD ─ ... DB(5) ─ TD ─ bottleneck DB
                                         │   │skip         │skip          │skip          │ new maps
                                         └── logits ◀ 1x1 ◀ DB(2) ◀ TU ... ◀ DB(5) ◀ TU ◀┘

* dense layer: BatchNorm - ReLU - 3x3 conv (growth channels) - dropout; a dense block
  concatenates the outputs of all its layers to its input;
* transition down (TD): BatchNorm - ReLU - 1x1 conv - dropout - 2x2 max-pool;
* transition up (TU): 3x3 transposed convolution, stride 2, on the *new* feature maps of
  the block below only (as in FC-DenseNet), concatenated with the skip connection;
* the last up block passes its full concatenation to the 1x1 classifier.

All convolutions wrap around in longitude (:mod:`climviz.models.layers`).

Presets (see :func:`climviz.models.build`):

``paper``
    Not this class: the SC18 graph (5x5 conv-ReLU-dropout layers, strided transitions,
    stride 16), :class:`climviz.models.tiramisu_sc18.TiramisuSC18` (``style="sc18"``);
    7,801,315 parameters, 4.14 TFLOP per 768x1152 training sample.
``fcdensenet-os32``
    climviz's lighter variant (formerly called ``paper``): this FC-DenseNet with down blocks
    (2, 2, 2, 4, 5), bottleneck block of 5 layers, up blocks (5, 4, 2, 2, 2), growth rate 32,
    3x3 kernels, 48 channels after the first convolution, dropout 0.2; total stride 32.
    5,493,683 parameters; 0.52 TFLOP forward, 1.56 TFLOP forward + backward per 768x1152
    sample. The same code with FC-DenseNet103's layout reproduces its published 9.4 M
    parameters (9.32 M).
``tiny``
    four down blocks of 2 layers, growth rate 8, 16 first channels, no dropout
    (total stride 16), for laptops and teaching: 0.11 M parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from climviz._fields import OneOf, Rule, bad_value, spec, validate
from climviz.models._options import AT_LEAST_ONE, DROPOUT, LAT_PADDING, LON_PADDING, NetworkOptions
from climviz.models.base import SegmentationNet
from climviz.models.layers import GeoConv2d, GeoConvTranspose2d, LatPadding, LonPadding, init_weights

__all__ = ["TiramisuConfig", "Tiramisu"]


def _check_up_layers(cfg: TiramisuConfig, name: str) -> None:
    """One dense block on the way up per block on the way down, each of at least one layer."""
    up = cfg.up_layers or ()
    if len(up) != len(cfg.down_layers) or min(up) < 1:
        raise bad_value(cfg, name, f"{len(cfg.down_layers)} positive integers (one per down block)")


@dataclass
class TiramisuConfig(NetworkOptions):
    """Architecture options of :class:`Tiramisu`.

    Attributes
    ----------
    style
        ``"sc18"``: the graph of Kurth et al. (conv-ReLU-dropout dense layers without
        BatchNorm, strided 1x1 transitions, :class:`~climviz.models.tiramisu_sc18.TiramisuSC18`);
        ``"fc-densenet"``: Jegou et al.'s FC-DenseNet (BatchNorm-ReLU-conv-dropout layers,
        1x1 conv + max-pool transitions, :class:`Tiramisu`).
    down_layers
        Layers of each dense block on the way down (one 2x downsampling after each).
    bottleneck_layers
        Layers of the dense block at the lowest resolution.
    up_layers
        Layers of each dense block on the way up; ``None`` mirrors ``down_layers``.
    growth_rate
        Feature maps added by each dense layer.
    kernel_size
        Kernel size of the dense-layer convolutions (odd; 3 in FC-DenseNet).
    first_channels
        Output channels of the first 3x3 convolution.
    dropout
        Dropout probability after each dense-layer / transition-down convolution.
    lon_padding
        ``"circular"`` (the globe wraps) or ``"zero"``.
    lat_padding
        Padding of the input rows to a multiple of the stride: ``"reflect"`` or ``"zero"``.

    Examples
    --------
    >>> cfg = cv.models.TiramisuConfig(down_layers=(2, 3), growth_rate=8)
    >>> cfg.up_layers, cfg.style  # None mirrors down_layers: the way up in reverse order
    ((3, 2), 'sc18')
    >>> cv.models.TiramisuConfig(kernel_size=4)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: tiramisu option 'kernel_size' must be a positive odd integer, got 4
    """

    _network: ClassVar[str] = "tiramisu"

    style: str = field(default="sc18", metadata=spec(OneOf(("sc18", "fc-densenet"))))
    down_layers: tuple[int, ...] = field(default=(2, 2, 2, 4), metadata=spec(
        Rule(lambda v: len(v) > 0 and min(v) >= 1, "positive integers")))
    bottleneck_layers: int = field(default=5, metadata=spec(AT_LEAST_ONE))
    up_layers: tuple[int, ...] | None = field(default=None, metadata=spec(_check_up_layers))
    growth_rate: int = field(default=32, metadata=spec(AT_LEAST_ONE))
    kernel_size: int = field(default=5, metadata=spec(
        Rule(lambda v: int(v) >= 1 and int(v) % 2 == 1, "a positive odd integer")))
    first_channels: int = field(default=64, metadata=spec(AT_LEAST_ONE))
    dropout: float = field(default=0.2, metadata=spec(DROPOUT))
    lon_padding: LonPadding = field(default="circular", metadata=spec(LON_PADDING))
    lat_padding: LatPadding = field(default="reflect", metadata=spec(LAT_PADDING))

    def __post_init__(self) -> None:
        self.down_layers = tuple(int(n) for n in self.down_layers)
        if self.up_layers is None:
            self.up_layers = tuple(reversed(self.down_layers))
        self.up_layers = tuple(int(n) for n in self.up_layers)
        validate(self)


class DenseLayer(nn.Sequential):
    """BatchNorm - ReLU - kxk conv - dropout, producing ``growth`` feature maps."""

    def __init__(self, cin: int, growth: int, dropout: float, lon: LonPadding, k: int = 3) -> None:
        layers: list[nn.Module] = [
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
            GeoConv2d(cin, growth, k, padding=k // 2, bias=True, lon_padding=lon),
        ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class DenseBlock(nn.Module):
    """``n`` dense layers; returns (input ++ new maps, new maps).

    ``layer(cin, growth)`` builds one layer (default: BN-ReLU-conv-dropout,
    :class:`DenseLayer`); the SC18 graph passes its conv-ReLU-dropout layer.
    """

    def __init__(self, cin: int, n: int, growth: int, dropout: float, lon: LonPadding, k: int = 3,
                 layer: Callable[[int, int], nn.Module] | None = None) -> None:
        super().__init__()
        make = layer or (lambda c, g: DenseLayer(c, g, dropout, lon, k))
        self.layers = nn.ModuleList([make(cin + i * growth, growth) for i in range(n)])
        self.out_channels = cin + n * growth
        self.new_channels = n * growth

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        new = []
        for layer in self.layers:
            y = layer(x)
            new.append(y)
            x = torch.cat([x, y], dim=1)
        return x, torch.cat(new, dim=1) if len(new) > 1 else new[0]


class TransitionDown(nn.Sequential):
    """BatchNorm - ReLU - 1x1 conv - dropout - 2x2 max-pool."""

    def __init__(self, c: int, dropout: float, lon: LonPadding) -> None:
        layers: list[nn.Module] = [nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                   GeoConv2d(c, c, 1, bias=True, lon_padding=lon)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class Tiramisu(SegmentationNet):
    """FC-DenseNet (Tiramisu) segmentation network (see the module docstring).

    Parameters
    ----------
    in_channels
        Number of input fields (16 for the ClimateNet / DeepCAM variables).
    num_classes
        Number of output classes (3: background, TC, AR).
    config
        :class:`TiramisuConfig`; defaults to the ``paper`` layout.
    """

    def __init__(self, in_channels: int = 16, num_classes: int = 3, config: TiramisuConfig | None = None) -> None:
        cfg = config or TiramisuConfig(style="fc-densenet")
        super().__init__(cfg, in_channels, num_classes, multiple=2 ** len(cfg.down_layers))
        lon, g, p, k = cfg.lon_padding, cfg.growth_rate, float(cfg.dropout), int(cfg.kernel_size)
        self.first = GeoConv2d(in_channels, cfg.first_channels, 3, padding=1, bias=True, lon_padding=lon)
        c = cfg.first_channels
        self.down_blocks = nn.ModuleList()
        self.transitions_down = nn.ModuleList()
        skips = []
        for n in cfg.down_layers:
            block = DenseBlock(c, n, g, p, lon, k)
            self.down_blocks.append(block)
            c = block.out_channels
            skips.append(c)
            self.transitions_down.append(TransitionDown(c, p, lon))
        self.bottleneck = DenseBlock(c, cfg.bottleneck_layers, g, p, lon, k)
        up_in = self.bottleneck.new_channels
        self.transitions_up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        assert cfg.up_layers is not None  # filled in by TiramisuConfig.__post_init__
        for n, skip in zip(cfg.up_layers, reversed(skips)):
            self.transitions_up.append(
                GeoConvTranspose2d(up_in, up_in, 3, stride=2, padding=1, output_padding=1, bias=True, lon_padding=lon)
            )
            block = DenseBlock(up_in + skip, n, g, p, lon, k)
            self.up_blocks.append(block)
            up_in = block.new_channels
        self.classifier = nn.Conv2d(block.out_channels, num_classes, 1, bias=True)
        init_weights(self)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of ``2**len(down_layers)``."""
        return self.classifier(dense_features(self, x))



def dense_features(net: Any, x: torch.Tensor) -> torch.Tensor:
    """Features before the classifier of an FC-DenseNet (this Tiramisu or the SC18 one).

    ``net`` has ``first``, ``down_blocks``, ``transitions_down``, ``bottleneck``,
    ``transitions_up`` and ``up_blocks``: the down path keeps each block's output as a
    skip; the up path concatenates the upsampled new maps with the skip, and passes on
    only a block's new maps, except after the last block (all of its maps).
    """
    x = net.first(x)
    skips = []
    for block, td in zip(net.down_blocks, net.transitions_down):
        x, _ = block(x)
        skips.append(x)
        x = td(x)
    _, x = net.bottleneck(x)
    last = len(net.up_blocks) - 1
    for i, (tu, block) in enumerate(zip(net.transitions_up, net.up_blocks)):
        full, new = block(torch.cat([tu(x), skips[-1 - i]], dim=1))
        x = full if i == last else new
    return x
