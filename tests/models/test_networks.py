"""Forward behaviour of the networks: shapes, gradients, periodicity in longitude, formats."""

from __future__ import annotations

import pytest
import torch

from climviz.errors import ConfigError, DataError
from climviz.models import build
from climviz.models.cgnet import CGNetConfig
from climviz.models.deeplabv3plus import DeepLabConfig
from climviz.models.tiramisu import TiramisuConfig


@pytest.mark.parametrize("hw", [(32, 32), (45, 77), (96, 144), (33, 250)])
def test_any_grid_of_at_least_32_cells_gives_logits_of_the_same_grid(tiny_net, make_fields, hw):
    x = make_fields(2, *hw)
    with torch.no_grad():
        y = tiny_net(x)
    assert y.shape == (2, 3, *hw)
    assert torch.isfinite(y).all()


def test_a_sample_does_not_depend_on_the_rest_of_the_batch(tiny_net, make_fields):
    x = make_fields(3, 40, 56)
    with torch.no_grad():
        batch = tiny_net(x)
        single = tiny_net(x[1:2])
    # fresh BatchNorm statistics leave the logits unnormalised: compare relative to their scale
    torch.testing.assert_close(batch[1:2], single, rtol=1e-4, atol=1e-5 * batch.abs().max().item())


@pytest.mark.parametrize(
    "name,preset,hw",
    [
        # the full DeepCAM / ClimateNet grid for the light variant; the reference presets
        # on crops (their 768x1152 output shapes are checked on the meta device)
        ("deeplabv3plus", "resnet50-os16", (768, 1152)),
        ("deeplabv3plus", "paper", (64, 96)),
        ("tiramisu", "paper", (48, 80)),
        ("cgnet", "paper", (45, 77)),
        ("deeplabv3plus", "deepcam", (64, 96)),
    ],
)
def test_paper_presets_forward(name, preset, hw, make_fields):
    net = build(name, preset, seed=0).eval()
    x = make_fields(1, *hw)
    with torch.inference_mode():
        y = net(x)
    assert y.shape == (1, 3, *hw)
    assert torch.isfinite(y).all()


def test_gradients_reach_the_first_layer_and_every_parameter(tiny_name, make_fields):
    net = build(tiny_name, "tiny", seed=0).train()
    x = make_fields(2, 40, 60)
    y = torch.randint(0, 3, (2, 40, 60), generator=torch.Generator().manual_seed(0))
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    first = next(p for p in net.parameters() if p.dim() == 4)
    assert first.shape[1] == 16  # it is the layer that reads the 16 fields
    assert first.grad is not None and first.grad.abs().sum() > 0
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_shifting_the_globe_shifts_the_logits(tiny_net, make_fields):
    # every layer wraps in longitude, so rolling the input by a multiple of the stride
    # rolls the logits by the same amount (exactly, up to float rounding)
    x = make_fields(1, 64, 96)
    shift = tiny_net.multiple * 2
    with torch.no_grad():
        y = tiny_net(x)
        y_rolled = tiny_net(torch.roll(x, shift, dims=-1))
    torch.testing.assert_close(y_rolled, torch.roll(y, shift, dims=-1), rtol=1e-4, atol=1e-4 * y.abs().max().item())


def test_without_wrapping_the_shift_is_not_exact(tiny_name, make_fields):
    net = build(tiny_name, "tiny", seed=0, lon_padding="zero").eval()
    x = make_fields(1, 64, 96)
    shift = net.multiple * 2
    with torch.no_grad():
        diff = (net(torch.roll(x, shift, dims=-1)) - torch.roll(net(x), shift, dims=-1)).abs().max()
    assert diff > 1e-2


@pytest.mark.parametrize("lon_padding,wraps", [("circular", True), ("zero", False)])
def test_east_edge_influences_west_edge_only_when_wrapping(lon_padding, wraps, make_fields):
    # the tiny Tiramisu sees about +-140 columns: on a 256-column grid the west edge
    # can reach the east edge only across the dateline
    net = build("tiramisu", "tiny", seed=0, lon_padding=lon_padding).eval()
    x = make_fields(1, 32, 256).requires_grad_(True)
    net(x)[..., 0].sum().backward()
    influence = x.grad.abs().sum(dim=(0, 1, 2))
    east, middle = influence[-1].item(), influence[128].item()
    assert middle == 0.0
    if wraps:
        assert east > 0.01 * influence[1].item()
    else:
        assert east == 0.0


def test_channels_last_gives_the_same_logits(tiny_net, make_fields):
    x = make_fields(2, 48, 64)
    with torch.no_grad():
        ref = tiny_net(x)
        net_cl = tiny_net.to(memory_format=torch.channels_last)
        got = net_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_batchnorm_converts_to_syncbatchnorm(tiny_net, make_fields):
    x = make_fields(1, 32, 48)
    with torch.no_grad():
        ref = tiny_net(x)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(tiny_net).eval()
    kinds = {type(m) for m in synced.modules()}
    assert torch.nn.SyncBatchNorm in kinds and torch.nn.BatchNorm2d not in kinds
    with torch.no_grad():
        torch.testing.assert_close(synced(x), ref)


def test_bad_inputs_are_data_errors_naming_the_problem(tiny_net, make_fields):
    with pytest.raises(DataError, match="16 input channels, got 15"):
        tiny_net(make_fields(1, 32, 32, c=15))
    with pytest.raises(DataError, match="at least 32x32.*31x64"):
        tiny_net(make_fields(1, 31, 64))
    with pytest.raises(DataError, match="4-d input"):
        tiny_net(torch.zeros(16, 32, 32))


@pytest.mark.parametrize(
    "overrides",
    [
        {"output_stride": 8},
        # the DeepCAM (Xception) code path, narrowed so that it runs in a second
        {"backbone": "xception", "xception_scale": 0.125, "xception_middle_blocks": 2},
        {"backbone": "xception", "xception_scale": 0.125, "xception_middle_blocks": 1, "output_stride": 8},
    ],
)
def test_deeplab_variants_keep_shape_and_wrap(overrides, make_fields):
    net = build("deeplabv3plus", "tiny", seed=0, **overrides).eval()
    with torch.no_grad():
        assert net(make_fields(1, 40, 70)).shape == (1, 3, 40, 70)
        x = make_fields(1, 64, 96)
        y = net(x)
        torch.testing.assert_close(
            net(torch.roll(x, 32, dims=-1)), torch.roll(y, 32, dims=-1), rtol=1e-4, atol=1e-5 * y.abs().max().item()
        )


# ---------------------------------------------------------------- config checks (field metadata)


@pytest.mark.parametrize("cls, changes, message", [
    ("DeepLabConfig", {"backbone": "vgg"},
     r"deeplabv3plus option 'backbone' must be 'resnet_v2', 'xception' or 'resnet', got 'vgg'"),
    ("DeepLabConfig", {"output_stride": 32}, r"deeplabv3plus option 'output_stride' must be 8 or 16, got 32"),
    ("DeepLabConfig", {"blocks": (3, 4)}, r"deeplabv3plus option 'blocks' must be 4 positive integers, got \(3, 4\)"),
    ("DeepLabConfig", {"aspp_rates": (6, 12)}, r"deeplabv3plus option 'aspp_rates' must be 3 dilation rates"),
    ("DeepLabConfig", {"full_res_channels": (64, 0)},
     r"deeplabv3plus option 'full_res_channels' must be 2 positive integers, got \(64, 0\)"),
    ("DeepLabConfig", {"width": "wide"}, r"deeplabv3plus option 'width' must be >= 1, got 'wide'"),
    ("TiramisuConfig", {"style": "unet"}, r"tiramisu option 'style' must be 'sc18' or 'fc-densenet', got 'unet'"),
    ("TiramisuConfig", {"down_layers": ()}, r"tiramisu option 'down_layers' must be positive integers, got \(\)"),
    ("TiramisuConfig", {"up_layers": (2, 2)},
     r"tiramisu option 'up_layers' must be 4 positive integers \(one per down block\), got \(2, 2\)"),
    ("TiramisuConfig", {"kernel_size": 4}, r"tiramisu option 'kernel_size' must be a positive odd integer, got 4"),
    ("TiramisuConfig", {"dropout": 1.0}, r"tiramisu option 'dropout' must be in \[0, 1\), got 1\.0"),
    ("CGNetConfig", {"stage3_blocks": 0}, r"cgnet option 'stage3_blocks' must be >= 1, got 0"),
    ("CGNetConfig", {"dropout": -0.1}, r"cgnet option 'dropout' must be in \[0, 1\), got -0\.1"),
    ("CGNetConfig", {"lon_padding": "wrap"}, r"cgnet option 'lon_padding' must be 'circular' or 'zero', got 'wrap'"),
])
def test_config_checks_name_the_network_option_expected_and_found(cls, changes, message):
    config = {"DeepLabConfig": DeepLabConfig, "TiramisuConfig": TiramisuConfig, "CGNetConfig": CGNetConfig}[cls]
    with pytest.raises(ConfigError, match=message):
        config(**changes)


def test_good_configs_are_normalized():
    cfg = DeepLabConfig(backbone="xception", blocks=[1], aspp_rates=[3.0, 6, 9], activation_checkpointing=1)
    assert cfg.blocks == (1,) and cfg.aspp_rates == (3, 6, 9) and cfg.activation_checkpointing is True
    t = TiramisuConfig(down_layers=[1, 2, 3])
    assert t.up_layers == (3, 2, 1)
