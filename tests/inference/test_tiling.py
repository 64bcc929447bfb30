"""Tiling with overlap equals an untiled pass on a longitude-periodic domain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import climviz as cv
from climviz.inference.tiling import padded_logits, tile_starts, tiled_logits


def test_tile_starts_cover_the_axis_with_touching_cores():
    starts = tile_starts(100, 40, 8)
    assert starts == [0, 24, 48, 60]
    # cores [s + 8, s + 32) (flush at the ends) cover 0..99 without holes
    covered = np.zeros(100, bool)
    for s in starts:
        lo = s if s == 0 else s + 8
        hi = s + 40 if s + 40 == 100 else s + 32
        covered[lo:hi] = True
    assert covered.all()
    assert tile_starts(30, 40, 8) == [0]
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 16, 8)


class TwoConvs(torch.nn.Module):
    """Two 3x3 convolutions: receptive radius 2 cells, zero padding at every edge."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_tiled_equals_untiled_on_a_periodic_domain():
    net = TwoConvs().eval()
    x = torch.randn(2, 3, 37, 90)
    with torch.no_grad():
        # reference: wrap 2 columns on each side (the receptive radius), run, crop
        wrapped = torch.cat([x[..., -2:], x, x[..., :2]], dim=-1)
        ref = net(wrapped)[..., 2:-2]
        tiled = tiled_logits(net, x, tile=(16, 32), overlap=3)
    assert tiled.shape == (2, 2, 37, 90)
    torch.testing.assert_close(tiled, ref, rtol=1e-5, atol=1e-5)
    # the seam matters: an untiled zero-padded pass differs in the first/last columns
    with torch.no_grad():
        plain = net(x)
    assert not torch.allclose(plain[..., 0], ref[..., 0], atol=1e-3)


def test_padded_logits_wraps_longitude_and_replicates_latitude():
    x = torch.arange(2 * 10 * 12, dtype=torch.float32).reshape(1, 2, 10, 12)
    seen = {}

    def fwd(t):
        seen["x"] = t
        return t[:, :1] * 2.0

    y = padded_logits(fwd, x, min_size=32)
    t = seen["x"]
    assert t.shape == (1, 2, 32, 32)
    # columns continue around the globe: column 12 + k is column k
    torch.testing.assert_close(t[:, :, 11:21, 12:24], x)
    torch.testing.assert_close(t[:, :, 11:21, 24:32], x[..., :8])
    # rows above/below repeat the edge rows (11 on top, 11 below)
    torch.testing.assert_close(t[:, :, 0, :12], x[:, :, 0])
    torch.testing.assert_close(t[:, :, 31, :12], x[:, :, -1])
    torch.testing.assert_close(y, x[:, :1] * 2.0)


def test_predict_with_tiles_matches_whole_field_in_the_interior(checkpoint, run):
    """The tiny DeepLabv3+ sees beyond any tile (global pooling), so tiles only
    approximate the whole-field pass; on most cells they agree."""
    sub = run.isel(time=slice(0, 2))
    whole = cv.predict(checkpoint, sub, batch_size=2, progress=False)
    tiled = cv.predict(checkpoint, sub, batch_size=2, progress=False, tile=(32, 48),
                       tile_overlap=8)
    assert list(tiled.attrs["tile"]) == [32, 48]
    agree = (tiled["mask"].values == whole["mask"].values).mean()
    print(f"tiled vs whole-field agreement {agree:.3f}")
    assert agree > 0.8
