"""Statistics plots: frequencies vs numpy, block-bootstrap differences vs closed forms, stippling, histograms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats as sps

import climviz.viz as viz
from climviz.errors import DataError


def masks_pair(nt: int = 40, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    """Two runs on a 6 x 12 grid: cell (2, 3) is TC 80 % of the time in b, 20 % in a; cell (4, 8)
    is TC in both with the same block frequencies; cell (1, 5) is TC at exactly the same steps in
    both runs; cell (0, 0) is TC always in a and never in b."""
    rng = np.random.default_rng(seed)
    a = np.zeros((nt, 6, 12), np.uint8)
    b = np.zeros_like(a)
    a[:, 2, 3] = rng.random(nt) < 0.2
    b[:, 2, 3] = rng.random(nt) < 0.8
    a[:, 4, 8] = rng.random(nt) < 0.5
    b[:, 4, 8] = np.roll(a[:, 4, 8], 4)  # the same steps, shifted by one block: equal block frequencies
    a[:, 1, 5] = b[:, 1, 5] = rng.random(nt) < 0.5  # identical in both runs
    a[:, 0, 0] = 1
    a[:, 5, 11] = 2  # AR, ignored by the TC statistics
    lat = -75.0 + 30.0 * np.arange(6)
    lon = 30.0 * np.arange(12)
    time = pd.date_range("2000-01-01", periods=nt, freq="3h")
    mk = lambda m: xr.DataArray(m, dims=("time", "lat", "lon"), coords={"time": time, "lat": lat, "lon": lon})  # noqa: E731
    return mk(a), mk(b)


def test_class_frequency_is_the_fraction_of_steps():
    a, _ = masks_pair()
    f = viz.class_frequency(a, 1)
    assert f.dims == ("lat", "lon")
    assert f.values[2, 3] == pytest.approx((a.values[:, 2, 3] == 1).sum() / a.sizes["time"])
    assert f.values[0, 0] == 1.0 and f.values[5, 11] == 0.0
    assert viz.class_frequency(a, 2).values[5, 11] == 1.0


def test_frequency_difference_is_a_block_bootstrap_that_separates_clear_from_null_cells():
    a, b = masks_pair(nt=80)
    res = viz.frequency_difference(a, b, 1, block_steps=4, ci=0.95, n_boot=4000, seed=1)
    assert res.attrs["n_blocks_a"] == 20 and res.attrs["n_blocks_b"] == 20
    assert res.attrs["block_steps"] == 4
    # Per-block frequencies of cell (2, 3) by hand; the difference is that of the block means.
    fa = (a.values[:, 2, 3] == 1).reshape(20, 4).mean(axis=1)
    fb = (b.values[:, 2, 3] == 1).reshape(20, 4).mean(axis=1)
    assert res["freq_a"].values[2, 3] == pytest.approx(fa.mean())
    assert res["difference"].values[2, 3] == pytest.approx(fb.mean() - fa.mean())
    # The bootstrap interval of a difference of means of 20 resampled blocks is close to the normal
    # one, b - a +- z * sqrt(var_a / n + var_b / n) (plug-in variances, ddof = 0).
    se = np.sqrt(fa.var() / 20 + fb.var() / 20)
    z = sps.norm.ppf(0.975)
    lo, hi = res["ci_low"].values[2, 3], res["ci_high"].values[2, 3]
    assert (hi - lo) == pytest.approx(2 * z * se, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(fb.mean() - fa.mean(), abs=0.1 * se)
    # 0.2 vs 0.8 of the time: clearly different; always vs never: certain (every replicate is -1).
    assert bool(res["significant"].values[2, 3]) and lo > 0
    assert bool(res["significant"].values[0, 0]) and res["p_value"].values[0, 0] == 0.0
    assert res["ci_low"].values[0, 0] == res["ci_high"].values[0, 0] == -1.0
    # Identical runs, or the same block frequencies in another order: no evidence of a difference.
    for j, i in ((1, 5), (4, 8)):
        assert res["difference"].values[j, i] == 0.0
        assert not bool(res["significant"].values[j, i])
        assert res["ci_low"].values[j, i] < 0 < res["ci_high"].values[j, i]
        assert res["p_value"].values[j, i] > 0.5
    # Never TC in either run: every replicate is 0, nothing to stipple.
    assert res["p_value"].values[3, 3] == 1.0 and not bool(res["significant"].values[3, 3])


def test_frequency_difference_agrees_with_events_compare():
    """One source of truth: the map's numbers are those of the comparison table's maps."""
    import climviz.events as events

    a, b = masks_pair()
    res = viz.frequency_difference(a, b, 1, block_steps=4, ci=0.9, n_boot=300, seed=3)
    maps = events.compare(a, b, classes=(1,), block_steps=4, n_boot=300, ci=0.9, seed=3).maps
    np.testing.assert_array_equal(res["significant"].values, maps["significant_tropical_cyclone"].values == 1)
    np.testing.assert_array_equal(res["difference"].values, maps["difference_tropical_cyclone"].values)
    # the older keyword `block` is the same setting
    old = viz.frequency_difference(a, b, 1, block=4, ci=0.9, n_boot=300, seed=3)
    np.testing.assert_array_equal(old["p_value"].values, res["p_value"].values)


def test_frequency_difference_rejects_too_few_blocks_and_other_grids():
    a, b = masks_pair(nt=6)
    with pytest.raises(DataError, match="need at least 2 blocks per run; a has 6 steps"):
        viz.frequency_difference(a, b, 1, block_steps=4)
    with pytest.raises(DataError, match="mask grid does not match"):
        viz.frequency_difference(a, b.isel(lat=slice(0, 3)), 1, block_steps=2)
    with pytest.raises(DataError, match="block=4 and block_steps=2 disagree"):
        viz.frequency_difference(a, b, 1, block=4, block_steps=2)
    with pytest.raises(DataError, match="class must be"):
        viz.class_frequency(a, 0)


def test_difference_map_stipples_exactly_the_significant_cells(bokeh):
    a, b = masks_pair()
    res = viz.frequency_difference(a, b, 1, block_steps=4, n_boot=200)
    ov = viz.difference_map(a, b, 1, block_steps=4, n_boot=200, labels=("past", "future"))
    els = {e.group: e for e in ov}
    pts = els["Significant"]
    assert len(pts) == int(res["significant"].sum()) >= 2  # (0, 0) and (2, 3) at least
    xy = set(zip(pts.dimension_values("x").round(6), pts.dimension_values("y").round(6)))
    jj, ii = np.nonzero(res["significant"].values)
    expected = {(round((30.0 * i + 180) % 360 - 180, 6), round(-75.0 + 30.0 * j, 6)) for j, i in zip(jj, ii)}
    assert xy == expected
    img = els["Image"]
    clim = img.opts.get("style").kwargs.get("clim") or img.opts.get("plot").kwargs.get("clim")
    lim = 100 * np.abs(res["difference"].values).max()
    assert clim == pytest.approx((-lim, lim))
    assert "future − past" in ov.opts.get("plot").kwargs["title"]
    bokeh.render(ov)


def test_frequency_map_in_percent(bokeh):
    a, _ = masks_pair()
    ov = viz.frequency_map(a, 1)
    img = [e for e in ov if e.group == "Image"][0]
    vals = img.dimension_values(img.vdims[0], flat=False)
    assert np.nanmax(vals) == pytest.approx(100.0)  # cell (0, 0) is always TC
    bokeh.render(ov)


def test_histogram_counts_match_numpy(bokeh):
    table = pd.DataFrame({"class": [1, 1, 1, 2, 2], "area_km2": [1e5, 2e5, 9e5, 1e6, 4e6],
                          "lifetime": pd.to_timedelta([3, 6, 9, 30, 60], unit="h")})
    ov = viz.histogram(table, "area_km2", bins=4)
    edges = np.linspace(1e5, 4e6, 5)
    tc, ar = list(ov)
    assert tc.label == "TC" and ar.label == "AR"
    assert tc.dimension_values("count").tolist() == np.histogram([1e5, 2e5, 9e5], edges)[0].tolist()
    assert ar.dimension_values("count").tolist() == np.histogram([1e6, 4e6], edges)[0].tolist()
    logh = viz.histogram(table, "area_km2", bins=3, log=True)
    e = list(logh)[0].edges
    assert np.allclose(np.diff(np.log10(e)), (np.log10(4e6) - np.log10(1e5)) / 3)
    life = viz.histogram(table, "lifetime", bins=[0, 12, 48, 96], by=None)
    (h,) = list(life)
    assert h.kdims[0].label == "lifetime (h)"
    assert h.dimension_values("count").tolist() == [3, 1, 1]
    bokeh.render(ov)
    with pytest.raises(DataError, match="column 'speed' not in the table"):
        viz.histogram(table, "speed")
