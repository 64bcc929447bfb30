"""The Tiramisu of Kurth et al. (SC18), layer for layer as the authors' TensorFlow graph.

Reference: ``azrael417/ClimDeepLearn``, ``semanticsegm/tiramisu-tf/tiramisu_model.py``
(``create_tiramisu``), run with ``--blocks 2 2 2 4 5 --growth 32 --filter-sz 5`` and
without ``--use_batchnorm``; ``nb_filter=64`` and ``p=0.2`` are fixed by the training
script. Written in PyTorch from the graph's description.

::

    fields ─ 5x5 conv 64 ─ ReLU ─ dropout
      ─ DB(2) ─ TD ─ DB(2) ─ TD ─ DB(2) ─ TD ─ DB(4) ─ TD ─ DB(5)   (1/16, the bottleneck)
      ─ TU ─ concat skip 4 ─ DB(4) ─ TU ─ skip 3 ─ DB(2) ─ TU ─ skip 2 ─ DB(2)
      ─ TU ─ skip 1 ─ DB(2) ─ 1x1 conv (classes) ─ dropout = logits

* dense layer: 5x5 conv (growth 32, bias) ─ ReLU ─ dropout 0.2, *no* BatchNorm; a dense
  block concatenates each layer's output to its input; the skip is the block's full output;
* transition down (TD): 1x1 conv with stride 2 keeping the channels (bias) ─ ReLU ─ dropout;
* transition up (TU): 3x3 stride-2 transposed convolution (bias, TensorFlow ``"SAME"``
  alignment, :class:`~climviz.models.layers.TFSameConvTranspose2d`) of the *new* maps of
  the block below, keeping their number;
* the logits pass through dropout in training, as in the reference.

The reference's ``down_path`` also builds a transition after the fifth block; its output is
never used (TensorFlow prunes the convolution), but its 544x544 kernel and bias are
trainable variables and are in the paper's parameter count. :attr:`TiramisuSC18.dormant_transition`
holds them (``requires_grad=False``, never run) so that the parameter count is the
reference's: 7,801,315 at 16 input channels and 3 classes (Kurth et al.: 7.8 M; 7,504,835
take part in the computation). Training FLOPs per 768x1152 sample (forward + backward,
:func:`climviz.models.train_flops_per_sample`): 4.14 TF (the paper: 4.19 TF); 1.40 TF forward. Total stride 16.

Initialisation as the reference: He-uniform (fan-in) kernels, zero biases. Dropout is
element-wise (``tf.layers.dropout``). With ``lon_padding="zero"`` it is the reference graph;
by default every layer wraps around in longitude.
"""

from __future__ import annotations

import torch
from torch import nn

from climviz.models.base import SegmentationNet
from climviz.models.layers import GeoConv2d, LonPadding, TFSameConvTranspose2d
from climviz.models.tiramisu import DenseBlock, TiramisuConfig, dense_features

__all__ = ["TiramisuSC18"]


class ConvReLUDropout(nn.Sequential):
    """``tf.layers.conv2d`` ("same", bias) ─ ReLU ─ dropout (the reference's ``conv_relu``)."""

    def __init__(self, cin: int, cout: int, k: int, p: float, lon: LonPadding, stride: int = 1) -> None:
        layers: list[nn.Module] = [GeoConv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=True,
                                             lon_padding=lon), nn.ReLU(inplace=True)]
        if p > 0:
            layers.append(nn.Dropout(p))
        super().__init__(*layers)


class DenseBlockSC18(DenseBlock):
    """``n`` conv-ReLU-dropout layers; returns (input ++ new maps, new maps)."""

    def __init__(self, cin: int, n: int, growth: int, k: int, p: float, lon: LonPadding) -> None:
        super().__init__(cin, n, growth, p, lon, k, layer=lambda c, g: ConvReLUDropout(c, g, k, p, lon))


class TiramisuSC18(SegmentationNet):
    """Tiramisu of Kurth et al. (SC18) (see the module docstring).

    Parameters
    ----------
    in_channels
        Number of input fields.
    num_classes
        Number of classes.
    config
        :class:`~climviz.models.tiramisu.TiramisuConfig` with ``style="sc18"``: the down
        blocks are ``down_layers`` followed by the ``bottleneck_layers`` block (the
        reference's ``--blocks`` are ``down_layers + (bottleneck_layers,)``), up blocks
        ``up_layers``; ``growth_rate``, ``kernel_size``, ``first_channels``, ``dropout``.
    """

    def __init__(self, in_channels: int = 16, num_classes: int = 3, config=None) -> None:
        cfg = config or TiramisuConfig()
        super().__init__(cfg, in_channels, num_classes, multiple=2 ** len(cfg.down_layers))
        lon, g, p, k = cfg.lon_padding, cfg.growth_rate, float(cfg.dropout), int(cfg.kernel_size)
        self.first = ConvReLUDropout(in_channels, cfg.first_channels, k, p, lon)
        c = cfg.first_channels
        self.down_blocks = nn.ModuleList()
        self.transitions_down = nn.ModuleList()
        skips = []
        for n in cfg.down_layers:
            block = DenseBlockSC18(c, n, g, k, p, lon)
            self.down_blocks.append(block)
            c = block.out_channels
            skips.append(c)
            self.transitions_down.append(ConvReLUDropout(c, c, 1, p, lon, stride=2))
        self.bottleneck = DenseBlockSC18(c, cfg.bottleneck_layers, g, k, p, lon)
        # the reference's transition after the last block: a variable, never computed
        self.dormant_transition = GeoConv2d(self.bottleneck.out_channels, self.bottleneck.out_channels, 1,
                                            stride=2, bias=True, lon_padding=lon)
        up_in = self.bottleneck.new_channels
        self.transitions_up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        assert cfg.up_layers is not None  # filled in by TiramisuConfig.__post_init__
        for n, skip in zip(cfg.up_layers, reversed(skips)):
            self.transitions_up.append(TFSameConvTranspose2d(up_in, up_in, 3, 2, bias=True, lon_padding=lon))
            block = DenseBlockSC18(up_in + skip, n, g, k, p, lon)
            self.up_blocks.append(block)
            up_in = block.new_channels
        self.classifier = GeoConv2d(block.out_channels, num_classes, 1, bias=True, lon_padding=lon)
        self.logit_dropout = nn.Dropout(p) if p > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                assert m.bias is not None  # every convolution here is built with bias=True
                nn.init.zeros_(m.bias)
        self.dormant_transition.requires_grad_(False)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for an input whose height and width are multiples of ``2**len(down_layers)``."""
        return self.logit_dropout(self.classifier(dense_features(self, x)))
