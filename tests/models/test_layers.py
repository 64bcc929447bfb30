"""Longitude-periodic building blocks, checked against plain numpy / scipy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from climviz.errors import ConfigError
from climviz.models.layers import GeoConv2d, GeoConvTranspose2d, pad_to_multiple, wrap_lon


@pytest.mark.parametrize("left,right", [(0, 0), (2, 3), (7, 9)])
def test_wrap_lon_matches_numpy_wrap_padding(left, right):
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (left, right)), mode="wrap")
    np.testing.assert_array_equal(wrap_lon(x, left, right).numpy(), expected)


def _periodic_conv_numpy(x, w, b, dilation=1):
    """Cross-correlation, zero padding in lat, wrap-around in lon ('same' size), stride 1."""
    n, cin, h, wd = x.shape
    cout, _, k, _ = w.shape
    pad = dilation * (k - 1) // 2
    # dilate the kernel by inserting zeros
    kd = dilation * (k - 1) + 1
    out = np.zeros((n, cout, h, wd))
    for i in range(n):
        xp = np.pad(x[i], ((0, 0), (pad, pad), (0, 0)), mode="constant")
        xp = np.pad(xp, ((0, 0), (0, 0), (pad, pad)), mode="wrap")
        for o in range(cout):
            acc = np.full((h, wd), b[o])
            for c in range(cin):
                kern = np.zeros((kd, kd))
                kern[::dilation, ::dilation] = w[o, c]
                acc += correlate2d(xp[c], kern, mode="valid")
            out[i, o] = acc
    return out


@pytest.mark.parametrize("dilation", [1, 3])
def test_geo_conv_is_periodic_in_lon_and_zero_padded_in_lat(dilation):
    torch.manual_seed(0)
    conv = GeoConv2d(3, 4, 3, padding=dilation, dilation=dilation, bias=True)
    x = torch.randn(2, 3, 6, 8)
    with torch.no_grad():
        got = conv(x).numpy()
    want = _periodic_conv_numpy(
        x.double().numpy(), conv.weight.double().detach().numpy(), conv.bias.double().detach().numpy(), dilation
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_geo_conv_with_zero_lon_padding_is_a_plain_conv():
    torch.manual_seed(0)
    geo = GeoConv2d(3, 4, 3, padding=1, lon_padding="zero")
    plain = torch.nn.Conv2d(3, 4, 3, padding=1)
    plain.load_state_dict(geo.state_dict())
    x = torch.randn(1, 3, 7, 9)
    torch.testing.assert_close(geo(x), plain(x))


def _periodic_deconv_numpy(x, w, stride, padding, output_padding):
    """Transposed conv by scattering: zero-padded / cropped in lat, periodic in lon."""
    n, cin, h, wd = x.shape
    _, cout, k, _ = w.shape
    full_h = (h - 1) * stride + k
    out_h = (h - 1) * stride - 2 * padding + k + output_padding
    out_w = wd * stride
    full = np.zeros((n, cout, full_h + output_padding, out_w))
    for i in range(h):
        for j in range(wd):
            for a in range(k):
                for b in range(k):
                    col = (j * stride + b - padding) % out_w
                    full[:, :, i * stride + a, col] += np.einsum("nc,cd->nd", x[:, :, i, j], w[:, :, a, b])
    return full[:, :, padding : padding + out_h, :]


def test_geo_conv_transpose_wraps_contributions_around_the_globe():
    torch.manual_seed(0)
    deconv = GeoConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, bias=False)
    x = torch.randn(2, 3, 4, 5)
    with torch.no_grad():
        got = deconv(x).numpy()
    assert got.shape == (2, 2, 8, 10)
    want = _periodic_deconv_numpy(x.double().numpy(), deconv.weight.double().detach().numpy(), 2, 1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_geo_conv_transpose_with_zero_lon_padding_is_plain():
    torch.manual_seed(0)
    geo = GeoConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, lon_padding="zero")
    plain = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)
    plain.load_state_dict(geo.state_dict())
    x = torch.randn(1, 3, 4, 6)
    torch.testing.assert_close(geo(x), plain(x))


def test_pad_to_multiple_reflects_lat_and_wraps_lon():
    x = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)
    padded, (top, bottom, left, right) = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 8, 8)
    assert (top, bottom, left, right) == (1, 2, 0, 1)
    want = np.pad(x.numpy()[0, 0], ((1, 2), (0, 0)), mode="reflect")
    want = np.pad(want, ((0, 0), (0, 1)), mode="wrap")
    np.testing.assert_array_equal(padded.numpy()[0, 0], want)
    # the original grid sits at [top:top+H, :W]
    np.testing.assert_array_equal(padded[..., 1:6, :7].numpy(), x.numpy())


def test_pad_to_multiple_zero_modes():
    x = torch.ones(1, 1, 5, 7)
    padded, _ = pad_to_multiple(x, 4, lat_padding="zero", lon_padding="zero")
    assert padded.sum().item() == 35.0


def test_bad_padding_option_is_a_config_error():
    with pytest.raises(ConfigError, match="lon_padding"):
        GeoConv2d(1, 1, 3, padding=1, lon_padding="mirror")
