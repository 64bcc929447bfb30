"""Run comparison: point estimates by hand, bootstrap intervals that behave."""

from __future__ import annotations

import math

import numpy as np
import pytest

from climviz.errors import DataError
from climviz.events import compare

from .conftest import as_dataarray, regular_grid

R = 6371.0


def make_run(n_blocks_with_ar: int, seed: int, n: int = 96):
    """24 x 48 grid, 96 daily steps: a 2x3-cell river in a random place on some days, a cyclone every day."""
    lat, lon = regular_grid(24, 48)
    rng = np.random.default_rng(seed)
    m = np.zeros((n, 24, 48), dtype=np.uint8)
    days = rng.choice(n, size=n_blocks_with_ar, replace=False)
    for d in days:
        i, j = rng.integers(4, 20), rng.integers(4, 40)
        m[d, i:i + 2, j:j + 3] = 2
    m[:, 12, 10] = 1
    return as_dataarray(m, lat, lon, freq="1D"), lat, lon


def test_point_estimates_match_hand_counts():
    a, lat, lon = make_run(20, 0)
    b, _, _ = make_run(80, 1)
    res = compare(a, b, block_steps=8, n_boot=200, maps=True)
    t = res.table.set_index(["class", "statistic"])
    # events per step: rivers never touch each other or the seam here
    assert t.loc[(2, "events_per_step"), "a"] == pytest.approx(20 / 96)
    assert t.loc[(2, "events_per_step"), "b"] == pytest.approx(80 / 96)
    assert t.loc[(1, "events_per_step"), "difference"] == 0.0
    # coverage: area of the class over the sphere, cell areas written out
    dphi = 180 / 24
    row_area = np.array([R**2 * math.radians(7.5) * (math.sin(math.radians(-90 + dphi * (k + 1))) -
                                                      math.sin(math.radians(-90 + dphi * k))) for k in range(24)])
    cover_a = ((a.values == 2) * row_area[None, :, None]).sum() / (4 * math.pi * R**2) / 96
    assert t.loc[(2, "coverage_fraction"), "a"] == pytest.approx(cover_a, rel=1e-10)
    # a clear increase is significant, the unchanged cyclone is not
    assert t.loc[(2, "events_per_step"), "significant"]
    assert t.loc[(2, "events_per_step"), "ci_low"] > 0
    assert not t.loc[(1, "events_per_step"), "significant"]
    assert t.loc[(2, "mean_event_area_km2"), "ci_low"] <= t.loc[(2, "mean_event_area_km2"), "difference"] \
        <= t.loc[(2, "mean_event_area_km2"), "ci_high"]
    assert "event_steps_per_year" in t.index.get_level_values(1)
    # maps: difference of frequencies, by hand
    diff = (b.values == 2).mean(axis=0) - (a.values == 2).mean(axis=0)
    np.testing.assert_allclose(res.maps["difference_atmospheric_river"].values, diff, atol=1e-6)
    assert int(res.maps["significant_tropical_cyclone"].sum()) == 0


def test_same_run_gives_zero_difference_and_reproducible_intervals():
    a, _, _ = make_run(30, 2)
    r1 = compare(a, a.chunk({"time": 16}), block_steps=8, n_boot=100, maps=False, seed=3)
    r2 = compare(a, a, block_steps=8, n_boot=100, maps=False, seed=3)
    assert (r1.table["difference"] == 0).all()
    assert not r1.table["significant"].any()
    np.testing.assert_array_equal(r1.table["ci_low"].to_numpy(), r2.table["ci_low"].to_numpy())


def test_compare_needs_enough_blocks():
    a, _, _ = make_run(5, 0, n=10)
    with pytest.raises(DataError, match="blocks"):
        compare(a, a, block_steps=8, n_boot=50)


def test_classes_as_a_name_or_names():
    """One class by name gives that class's rows and maps of the full comparison (same draws)."""
    import pandas as pd

    a, _, _ = make_run(20, 0)
    b, _, _ = make_run(80, 1)
    full = compare(a, b, block_steps=8, n_boot=100, seed=4)
    ar = compare(a, b, classes="ar", block_steps=8, n_boot=100, seed=4)
    pd.testing.assert_frame_equal(ar.table, full.table[full.table["class"] == 2].reset_index(drop=True))
    assert set(ar.table["class"]) == {2}
    assert ar.table.set_index("statistic").loc["events_per_step", "a"] == pytest.approx(20 / 96)
    assert not any("tropical_cyclone" in v for v in ar.maps.data_vars)
    np.testing.assert_array_equal(ar.maps["ci_low_atmospheric_river"].values,
                                  full.maps["ci_low_atmospheric_river"].values)
    named = compare(a, b, classes=["TC", "atmospheric_river"], block_steps=8, n_boot=100, seed=4, maps=False)
    pd.testing.assert_frame_equal(named.table, full.table)
