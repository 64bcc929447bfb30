"""The reference networks: SC18 DeepLabv3+ and Tiramisu, MLPerf DeepCAM, ClimateNet CGNet.

Parameter counts are checked against hand counts of the reference graphs and the
published figures, FLOPs on the meta device (no memory), DeepCAM and CGNet logits against
the reference PyTorch code itself (copied unchanged under ``references/``).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from climviz.models import build, count_parameters, train_flops_per_sample
from climviz.models.deeplab_sc18 import resnet_v2_units
from climviz.models.deepcam_keys import load_reference_state_dict, reference_key
from climviz.models.layers import TFSameConvTranspose2d, tf_same_max_pool

REF = Path(__file__).parent / "references"
GRID = (768, 1152)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_ref_{name}", REF / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _meta(name, preset, **kw):
    with torch.device("meta"):
        return build(name, preset, **kw)


def conv(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def bn(c):
    return 2 * c


# ------------------------------------------------------------------ SC18 DeepLabv3+


def sc18_deeplab_count(cin=16, classes=3):
    """Hand count of deeplab_model.py with resnet_v2_50 and decoder deconv1x."""
    p = conv(cin, 64, 7, bias=True)  # root conv: no BN, bias
    c = 64
    for base, units in ((64, 3), (128, 4), (256, 6), (512, 3)):
        depth = 4 * base
        for _ in range(units):
            p += bn(c)  # preact
            if c != depth:
                p += conv(c, depth, 1, bias=True)  # shortcut on preact
            p += conv(c, base, 1) + bn(base) + conv(base, base, 3) + bn(base) + conv(base, depth, 1, bias=True)
            c = depth
    aspp = conv(2048, 256, 1) + bn(256) + 3 * (conv(2048, 256, 3) + bn(256))
    aspp += conv(2048, 256, 1) + bn(256) + conv(1280, 256, 1) + bn(256)
    dec = conv(64, 48, 1) + bn(48) + conv(256, 256, 3, bias=True)  # low level, deconv to 1/4
    dec += conv(304, 256, 3) + bn(256) + conv(256, 256, 3) + bn(256)
    dec += 2 * conv(256, 256, 3, bias=True)  # two deconvs to full resolution
    dec += conv(cin, 64, 3, bias=True) + conv(64, 128, 3, bias=True)
    dec += conv(384, 256, 3, bias=True) + conv(256, 256, 3, bias=True) + conv(256, classes, 1, bias=True)
    return p + aspp + dec


def test_sc18_deeplab_parameters_match_the_graph_and_the_paper():
    got = count_parameters(_meta("deeplabv3plus", "paper"))
    assert got == sc18_deeplab_count()
    assert abs(got - 43.7e6) / 43.7e6 < 0.005  # Kurth et al. SC18: 43.7 M


def test_resnet_v2_output_stride_8_puts_rates_in_blocks_3_and_4():
    units = resnet_v2_units((3, 4, 6, 3), 8)
    assert units[0] == [(1, 1), (1, 1), (2, 1)]  # block1's last unit halves (1/4 -> 1/8)
    assert units[1] == [(1, 1)] * 4
    assert units[2] == [(1, 2)] * 6 and units[3] == [(1, 4)] * 3
    assert resnet_v2_units((3, 4, 6, 3), 16)[3] == [(1, 2)] * 3


def test_sc18_deeplab_flops_stride_and_shape_on_the_meta_device():
    net = _meta("deeplabv3plus", "paper")
    assert net.multiple == 8
    x = torch.empty(1, 16, *GRID, device="meta")
    feats, low = net.encoder(x)
    assert tuple(feats.shape) == (1, 2048, 96, 144)  # output stride 8
    assert tuple(low.shape) == (1, 64, 192, 288)  # block1/unit_3/conv1 at 1/4
    assert tuple(net(x).shape) == (1, 3, *GRID)
    train = train_flops_per_sample(net, (16, *GRID))
    assert abs(train - 13.0e12) / 13.0e12 < 0.02


#: the SC18 graph, narrow: same code paths, a second on a CPU
NARROW = {"blocks": (1, 1, 1, 1), "width": 8, "stem_channels": 16, "aspp_channels": 32,
          "low_level_channels": 8, "decoder_channels": 32, "full_res_channels": (8, 16)}


def test_sc18_deeplab_checkpointing_gives_the_same_gradients(make_fields):
    x = make_fields(2, 64, 96)
    grads = []
    for ckpt in (False, True):
        net = build("deeplabv3plus", "paper", seed=0, activation_checkpointing=ckpt, **NARROW).train()
        net(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_sc18_initialisation_follows_the_tensorflow_initialisers():
    net = build("deeplabv3plus", "paper", seed=0, **NARROW)
    # slim conv2d: variance_scaling_initializer() = truncated normal, sigma = sqrt(1.3 * 2 / fan_in),
    # cut at 2 sigma; the truncated distribution's own std is 0.8796 sigma
    w = net.aspp.conv_3x3[0][0].weight
    sigma = math.sqrt(2.6 / w[0].numel())
    assert w.abs().max().item() <= 2 * sigma
    assert abs(w.std().item() - 0.8796 * sigma) / (0.8796 * sigma) < 0.03
    # tf.layers conv2d / conv2d_transpose: he_uniform, bound sqrt(6 / fan_in), fan_in = k*k*filters
    conv_w, deconv_w = net.head.fuse1.weight, net.head.up_to_1.weight  # (out, in, k, k), (in, out, k, k)
    for w, fan_in in ((conv_w, conv_w.shape[1] * 9), (deconv_w, deconv_w.shape[1] * 9)):
        bound = math.sqrt(6.0 / fan_in)
        assert w.abs().max().item() <= bound
        assert abs(w.std().item() - bound / math.sqrt(3)) / (bound / math.sqrt(3)) < 0.03
    assert all(torch.count_nonzero(m.bias) == 0 for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None)


def test_sc18_deeplab_trains_at_batch_one(make_fields):
    # the image-pooling BatchNorm sees one value per channel (TensorFlow allows it)
    net = build("deeplabv3plus", "paper", seed=0, **NARROW).train()
    net(make_fields(1, 32, 48)).sum().backward()
    bn_pool = net.aspp.image_pool[1]
    assert torch.isfinite(bn_pool.running_var).all() and bn_pool.num_batches_tracked.item() == 1


# ------------------------------------------------------------------ SC18 Tiramisu


def sc18_tiramisu_count(cin=16, classes=3, blocks=(2, 2, 2, 4, 5), g=32, k=5, first=64):
    p = conv(cin, first, k, bias=True)
    c, skips = first, []
    for n in blocks:  # down path incl. the last block, each followed by a transition
        p += sum(conv(c + i * g, g, k, bias=True) for i in range(n))
        c += n * g
        skips.append(c)
        p += conv(c, c, 1, bias=True)
    new = blocks[-1] * g
    for n, skip in zip(reversed(blocks[:-1]), reversed(skips[:-1])):
        p += conv(new, new, 3, bias=True)  # transition up keeps the channels
        c = new + skip
        p += sum(conv(c + i * g, g, k, bias=True) for i in range(n))
        new, c = n * g, c + n * g
    return p + conv(c, classes, 1, bias=True)


def test_sc18_tiramisu_parameters_match_the_graph_and_the_paper():
    net = _meta("tiramisu", "paper")
    got = count_parameters(net)
    assert got == sc18_tiramisu_count() == 7_801_315
    assert abs(got - 7.8e6) / 7.8e6 < 0.005  # Kurth et al. SC18: 7.8 M
    # the reference's transition after the last block is a variable that is never used
    dormant = 544 * 544 + 544
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == got - dormant


def test_sc18_tiramisu_flops_stride_and_layers_on_the_meta_device():
    net = _meta("tiramisu", "paper")
    assert net.multiple == 16
    assert tuple(net(torch.empty(1, 16, *GRID, device="meta")).shape) == (1, 3, *GRID)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert {m.kernel_size for m in net.modules() if type(m).__name__ == "GeoConv2d"} == {(5, 5), (1, 1)}
    train = train_flops_per_sample(net, (16, *GRID))
    assert abs(train - 4.19e12) / 4.19e12 < 0.02


# ------------------------------------------------------------------ TensorFlow "SAME" layers


def test_tf_same_transposed_conv_places_input_cell_i_at_2i_plus_tap():
    torch.manual_seed(0)
    layer = TFSameConvTranspose2d(2, 3, 3, 2, bias=False, lon_padding="zero")
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    w = layer.weight.detach().double()
    want = np.zeros((1, 3, 7, 9))
    for i in range(3):
        for j in range(4):
            for a in range(3):
                for b in range(3):
                    want[0, :, 2 * i + a, 2 * j + b] += x[0, :, i, j].numpy() @ w[:, :, a, b].numpy()
    with torch.no_grad():
        got = layer.double()(x).numpy()
    assert got.shape == (1, 3, 6, 8)
    np.testing.assert_allclose(got, want[..., :6, :8], atol=1e-12)


def test_tf_same_max_pool_pads_the_end_of_even_axes():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    got = tf_same_max_pool(x, lon_padding="zero")
    # windows rows/cols {0,1,2} and {2,3}: the maxima sit at (2,2), (2,3), (3,2), (3,3)
    assert got.tolist() == [[[[10.0, 11.0], [14.0, 15.0]]]]


# ------------------------------------------------------------------ MLPerf DeepCAM


@pytest.fixture(scope="module")
def deepcam_pair():
    ref_mod = _load("mlperf_deeplab_xception")
    torch.manual_seed(0)
    ref = ref_mod.DeepLabv3_plus(n_input=16, n_classes=3, os=16, _print=False)
    ours = build("deeplabv3plus", "deepcam", seed=1, lon_padding="zero")
    return ref, ours


def test_deepcam_has_the_reference_parameters_and_logits(deepcam_pair, make_fields):
    ref, ours = deepcam_pair
    assert count_parameters(ours) == count_parameters(ref) == 56_454_720
    load_reference_state_dict(ours, ref.state_dict())
    x = make_fields(2, 64, 96)
    ref.bottleneck.tiles = (1, 1, 4, 6)  # the reference hard-codes 768x1152 / 16
    ref.train()
    ours.train()
    with torch.no_grad():
        want, got = ref(x), ours(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    assert reference_key("module.xception_features.block20.skipbn.bn.weight") == "encoder.exit.0.shortcut.1.weight"


def test_deepcam_low_level_skip_is_rectified(make_fields):
    net = build("deeplabv3plus", "deepcam", seed=0, lon_padding="zero").eval()
    seen = {}
    net.low_level.register_forward_hook(lambda m, inp, out: seen.update(skip=inp[0].clone()))
    x = make_fields(1, 64, 96)
    with torch.no_grad():
        net(x)
        raw = net.encoder.block1(net.encoder.stem(x))  # block1's output before the ReLU
    assert raw.min() < 0  # the unrectified features have negative values ...
    torch.testing.assert_close(seen["skip"], raw.clamp_min(0))  # ... the decoder sees max(0, .)


def test_deepcam_initialisation_follows_the_reference_rules():
    net = build("deeplabv3plus", "deepcam", seed=0)
    # encoder and ASPP branches: kaiming_normal_ defaults, std = sqrt(2 / fan_in)
    for w in (net.aspp.branches[1][0].weight, net.encoder.middle[0].body[0][1].weight,
              net.encoder.middle[0].body[0][0].weight):
        fan_in = w[0].numel()
        std = math.sqrt(2.0 / fan_in)
        assert abs(w.std().item() - std) / std < 0.05
    # decoder and projection: PyTorch's default, uniform within +-1/sqrt(fan_in)
    for w in (net.fuse[0][0].weight, net.aspp.project[0].weight, net.low_level[0].weight):
        bound = 1.0 / math.sqrt(w[0].numel())
        assert w.abs().max().item() <= bound
        assert abs(w.std().item() - bound / math.sqrt(3)) / (bound / math.sqrt(3)) < 0.05
    assert net.classifier.bias is None
    assert torch.equal(net.aspp.pool[2].weights, torch.ones(256, 1, 1))


# ------------------------------------------------------------------ ClimateNet CGNet


@pytest.mark.parametrize("channels,expected", [(16, 518_496), (4, 494_232)])
def test_cgnet_parameter_counts(channels, expected):
    assert count_parameters(_meta("cgnet", "paper", in_channels=channels)) == expected


def test_cgnet_flops_and_shape_on_the_meta_device():
    net = _meta("cgnet", "paper")
    assert tuple(net(torch.empty(1, 16, *GRID, device="meta")).shape) == (1, 3, *GRID)
    train = train_flops_per_sample(net, (16, *GRID))
    assert abs(train - 75e9) / 75e9 < 0.03


def test_cgnet_loads_climatenet_weights_and_gives_its_logits(make_fields):
    ref_mod = _load("climatenet_cgnet")
    torch.manual_seed(0)
    ref = ref_mod.CGNetModule(classes=3, channels=4).train()
    ours = build("cgnet", "paper", in_channels=4, lat_wrap=True, periodic_upsample=False).train()
    ours.load_state_dict(ref.state_dict(), strict=True)  # same keys, no mapping needed
    x = make_fields(2, 64, 96, c=4)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())
