"""build() / list_models(): presets, parameter counts against published and hand counts, errors."""

from __future__ import annotations

import io

import pytest
import torch

from climviz.errors import ConfigError
from climviz.models import build, count_parameters, list_models


def _meta_params(name, preset, **kw) -> int:
    with torch.device("meta"):
        return count_parameters(build(name, preset, **kw))


# ---------------------------------------------------------------- hand counts


def bn(c):
    return 2 * c


def conv(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def deeplab_head(cin_high, cin_low, classes, aspp=256, low=48, dec=256, deepcam=False):
    """ASPP + decoder of the climviz DeepLabv3+ (image pooling conv with bias, no BN; the
    DeepCAM reference: pooling conv without bias + per-channel affine, no classifier bias)."""
    aspp_p = conv(cin_high, aspp, 1) + bn(aspp) + 3 * (conv(cin_high, aspp, 3) + bn(aspp))
    pool = conv(cin_high, aspp, 1) + 2 * aspp if deepcam else conv(cin_high, aspp, 1, bias=True)
    aspp_p += pool + conv(5 * aspp, aspp, 1) + bn(aspp)
    low_p = conv(cin_low, low, 1) + bn(low)
    dec_p = 2 * (conv(aspp, dec, 3) + bn(dec))  # two x2 transposed convs to 1/4
    dec_p += conv(dec + low, dec, 3) + bn(dec) + conv(dec, dec, 3) + bn(dec) + conv(dec, dec, 1, bias=True)
    dec_p += conv(dec, dec, 3) + bn(dec) + conv(dec, classes, 3, bias=not deepcam)
    return aspp_p + low_p + dec_p


def test_deeplab_resnet50_os16_is_resnet50_plus_head():
    # torchvision's ResNet-50 has 25,557,032 parameters; without its 2048x1000 classifier
    # that is 23,508,032 for 3 input channels, + 13 * 64 * 7 * 7 for 16 channels.
    resnet50_encoder = 25_557_032 - (2048 * 1000 + 1000) + 13 * 64 * 7 * 7
    expected = resnet50_encoder + deeplab_head(2048, 256, 3)
    got = _meta_params("deeplabv3plus", "resnet50-os16")
    assert got == expected


def sep(cin, cout):
    return cin * 9 + cin * cout


def xblock(cin, cout, reps, stride=1, grow_first=True, is_last=False):
    """Aligned-Xception block of the DeepCAM reference, counted by hand."""
    if grow_first:
        chans = [cin] + [cout] * reps
    else:
        chans = [cin] * reps + [cout]
    p = sum(sep(a, b) + bn(b) for a, b in zip(chans[:-1], chans[1:]))
    if stride != 1 or is_last:
        p += sep(cout, cout)
    if cin != cout or stride != 1:
        p += cin * cout + bn(cout)
    return p


def test_deeplab_deepcam_matches_a_hand_count_of_the_mlperf_reference_layout():
    enc = conv(16, 32, 3) + bn(32) + conv(32, 64, 3) + bn(64)
    enc += xblock(64, 128, 2, 2) + xblock(128, 256, 2, 2) + xblock(256, 728, 2, 2, is_last=True)
    enc += 16 * xblock(728, 728, 3)
    enc += xblock(728, 1024, 2, grow_first=False, is_last=True)
    enc += sep(1024, 1536) + bn(1536) + sep(1536, 1536) + bn(1536) + sep(1536, 2048) + bn(2048)
    expected = enc + deeplab_head(2048, 128, 3, deepcam=True)
    got = _meta_params("deeplabv3plus", "deepcam")
    assert got == expected
    assert got == 56_454_720  # the MLPerf reference model's count at 16 inputs, 3 classes


def tiramisu_count(cin, classes, down, bottleneck, up, g, first):
    p = conv(cin, first, 3, bias=True)
    c, skips = first, []
    for n in down:
        for i in range(n):
            p += bn(c + i * g) + conv(c + i * g, g, 3, bias=True)
        c += n * g
        skips.append(c)
        p += bn(c) + conv(c, c, 1, bias=True)
    for i in range(bottleneck):
        p += bn(c + i * g) + conv(c + i * g, g, 3, bias=True)
    new = bottleneck * g
    for n, skip in zip(up, reversed(skips)):
        p += conv(new, new, 3, bias=True)
        c = new + skip
        for i in range(n):
            p += bn(c + i * g) + conv(c + i * g, g, 3, bias=True)
        new, c = n * g, c + n * g
    return p + conv(c, classes, 1, bias=True)


def test_tiramisu_fcdensenet_os32_matches_a_hand_count():
    expected = tiramisu_count(16, 3, (2, 2, 2, 4, 5), 5, (5, 4, 2, 2, 2), 32, 48)
    assert _meta_params("tiramisu", "fcdensenet-os32") == expected


@pytest.mark.parametrize(
    "down,bottleneck,growth,published",
    [
        ((4, 4, 4, 4, 4), 4, 12, 1.5e6),  # FC-DenseNet56
        ((5, 5, 5, 5, 5), 5, 16, 3.5e6),  # FC-DenseNet67
        ((4, 5, 7, 10, 12), 15, 16, 9.4e6),  # FC-DenseNet103
    ],
)
def test_tiramisu_reproduces_the_published_fc_densenet_sizes(down, bottleneck, growth, published):
    # Jegou et al. (2017), Table 2: CamVid (3 input channels, 11 classes)
    got = _meta_params(
        "tiramisu", "fcdensenet-os32", in_channels=3, num_classes=11,
        down_layers=down, bottleneck_layers=bottleneck, growth_rate=growth,
    )
    assert abs(got - published) / published < 0.1


def test_list_models_lists_every_preset_with_its_parameter_count():
    table = list_models()
    assert list(table.columns) == ["name", "preset", "params", "multiple", "description"]
    pairs = set(zip(table["name"], table["preset"]))
    assert pairs == {
        ("deeplabv3plus", "paper"), ("deeplabv3plus", "deepcam"), ("deeplabv3plus", "resnet50-os16"),
        ("deeplabv3plus", "tiny"), ("tiramisu", "paper"), ("tiramisu", "fcdensenet-os32"),
        ("tiramisu", "tiny"), ("cgnet", "paper"), ("cgnet", "tiny"),
    }
    row = table.set_index(["name", "preset"]).loc[("tiramisu", "tiny")]
    assert row["params"] == tiramisu_count(16, 3, (2, 2, 2, 2), 2, (2, 2, 2, 2), 8, 16)
    assert row["multiple"] == 16
    # tiny presets are tiny, paper presets are not
    tiny = table[table.preset == "tiny"]["params"]
    assert (tiny < 1_000_000).all()
    big = table[(table.preset != "tiny") & (table.name != "cgnet")]["params"]
    assert (big > 5_000_000).all()
    strides = table.set_index(["name", "preset"])["multiple"]
    assert strides[("deeplabv3plus", "paper")] == 8 and strides[("tiramisu", "paper")] == 16
    assert strides[("cgnet", "paper")] == 8 and strides[("tiramisu", "fcdensenet-os32")] == 32


# ---------------------------------------------------------------- errors


def test_unknown_name_preset_or_option_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="unet"):
        build("unet")
    with pytest.raises(ConfigError, match="'huge'.*deepcam"):
        build("deeplabv3plus", "huge")
    with pytest.raises(ConfigError, match="deepcam"):
        build("tiramisu", "deepcam")
    with pytest.raises(ConfigError, match="grwoth_rate"):
        build("tiramisu", "tiny", grwoth_rate=4)
    with pytest.raises(ConfigError, match="output_stride"):
        build("deeplabv3plus", "tiny", output_stride=32)
    with pytest.raises(ConfigError, match="in_channels"):
        build("tiramisu", "tiny", in_channels=0)


@pytest.mark.parametrize("name, width_option", [("deeplabv3plus", "decoder_channels"),
                                                ("tiramisu", "growth_rate")])
def test_bad_padding_or_width_names_the_network_the_option_and_the_value(name, width_option):
    with pytest.raises(ConfigError, match=rf"{name} option 'lon_padding' must be 'circular' or 'zero', got 'wrap'"):
        build(name, "tiny", lon_padding="wrap")
    with pytest.raises(ConfigError, match=rf"{name} option 'lat_padding' must be 'reflect' or 'zero', got 'edge'"):
        build(name, "tiny", lat_padding="edge")
    with pytest.raises(ConfigError, match=rf"{name} option '{width_option}' must be >= 1, got 0"):
        build(name, "tiny", **{width_option: 0})


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("name", ["deeplabv3plus", "tiramisu"])
def test_weights_are_deterministic_for_a_seed(name):
    a = build(name, "tiny", seed=3).state_dict()
    b = build(name, "tiny", seed=3).state_dict()
    c = build(name, "tiny", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # the global RNG works too, and seed= leaves it alone
    torch.manual_seed(11)
    d = build(name, "tiny").state_dict()
    second = build(name, "tiny").state_dict()  # the global RNG has moved on
    torch.manual_seed(11)
    build(name, "tiny", seed=99)  # forks the RNG: the global state is untouched
    e = build(name, "tiny").state_dict()
    assert all(torch.equal(d[k], e[k]) for k in d)
    assert not all(torch.equal(d[k], second[k]) for k in d)


def test_init_is_kaiming_normal_fan_out():
    net = build("deeplabv3plus", "resnet50-os16", seed=0)
    w = net.aspp.branches[1][0].weight  # 3x3 conv 2048 -> 256
    std_expected = (2.0 / (256 * 9)) ** 0.5
    assert abs(w.std().item() - std_expected) / std_expected < 0.02
    assert abs(w.mean().item()) < 0.05 * std_expected


@pytest.mark.parametrize("name", ["deeplabv3plus", "tiramisu"])
def test_state_dict_round_trips_between_builds(name, make_fields):
    src = build(name, "tiny", seed=1).eval()
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    buf.seek(0)
    dst = build(name, "tiny", seed=2).eval()
    dst.load_state_dict(torch.load(buf, weights_only=True))
    x = make_fields(1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


def test_build_kwargs_rebuild_the_same_architecture():
    net = build("tiramisu", "tiny", in_channels=4, num_classes=2, growth_rate=4, seed=0)
    kw = net.build_kwargs()
    assert kw == {
        "name": "tiramisu", "preset": "tiny", "in_channels": 4, "num_classes": 2,
        "overrides": {"growth_rate": 4},
    }
    again = build(kw["name"], kw["preset"], kw["in_channels"], kw["num_classes"], **kw["overrides"])
    again.load_state_dict(net.state_dict())  # strict: same keys and shapes


def test_the_bundled_checkpoint_still_loads_into_the_tiny_preset(make_fields):
    from pathlib import Path

    from climviz.training.checkpoint import load_checkpoint

    path = Path(__file__).resolve().parents[2] / "data_samples" / "checkpoint" / "checkpoint.pt"
    ck = load_checkpoint(path)
    assert (ck["model"], ck["preset"]) == ("deeplabv3plus", "tiny")
    kw = ck["model_kwargs"]
    net = build(ck["model"], ck["preset"], kw["in_channels"], kw["num_classes"], **kw["overrides"]).eval()
    net.load_state_dict(ck["model_state"], strict=True)  # same keys and shapes as when it was trained
    with torch.no_grad():
        assert torch.isfinite(net(make_fields(1, 32, 48))).all()


def test_build_with_a_normalizer_normalizes_inside_and_checks_the_channels(make_fields):
    import numpy as np

    from climviz.errors import DataError

    stats = {"channels": ["A", "B", "C", "D"], "mean": [1.0, 2.0, 3.0, 4.0], "std": [2.0, 4.0, 8.0, 16.0]}
    net = build("tiramisu", "tiny", in_channels=4, seed=0, normalizer=stats).eval()
    bare = build("tiramisu", "tiny", in_channels=4, seed=0).eval()
    x = make_fields(1, 32, 48)[:, :4]
    z = (x.double() - torch.tensor(stats["mean"]).double()[:, None, None]) / torch.tensor(
        stats["std"]).double()[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(net(x), bare(z.float()), rtol=1e-5, atol=1e-5)
    assert net.build_kwargs() == bare.build_kwargs()       # the architecture is the same
    assert count_parameters(net) == count_parameters(bare)  # the statistics are buffers
    np.testing.assert_array_equal(net.input_norm.inv_std.numpy(), 1 / np.array(stats["std"], np.float32))
    with pytest.raises(DataError, match="normalization for 4 channels, but the network takes 16"):
        build("tiramisu", "tiny", in_channels=16, normalizer=stats)


def test_the_base_class_imports_no_network_module():
    """Issue 20: base.py -> registry.py -> networks -> base.py was dodged by a function-local
    import; the base now reads the torch-free presets, at module level or anywhere."""
    import ast
    from pathlib import Path

    import climviz.models.base as base

    imported = set()
    for node in ast.walk(ast.parse(Path(base.__file__).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    networks = {f"climviz.models.{m}" for m in ("registry", "deeplabv3plus", "tiramisu", "cgnet",
                                                "deeplab_sc18", "tiramisu_sc18")}
    assert "climviz.models.presets" in imported and not imported & networks
    presets = ast.parse(Path(base.__file__).with_name("presets.py").read_text())
    assert not [n for n in ast.walk(presets) if isinstance(n, (ast.Import, ast.ImportFrom))
                and (getattr(n, "module", None) or "").startswith(("torch", "climviz"))]
