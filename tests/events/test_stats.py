"""Frequency maps and run summaries against counts done by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from climviz.errors import DataError
from climviz.events import frequency, label, run_years, summarize, table, track

from .conftest import as_dataarray, regular_grid


def test_frequency_is_the_fraction_of_steps_in_the_class():
    lat, lon = regular_grid(4, 8)
    m = np.zeros((8, 4, 8), dtype=np.uint8)
    m[[0, 3, 5], 1, 2] = 1
    m[:, 2, 5] = 2
    m[[1, 2], 2, 5] = 1
    da = as_dataarray(m, lat, lon)
    f1 = frequency(da, 1)
    assert f1.dims == ("lat", "lon") and f1.attrs["units"] == "1"
    assert float(f1[1, 2]) == 3 / 8 and float(f1[2, 5]) == 2 / 8 and float(f1.sum()) == 5 / 8
    f2 = frequency(da.chunk({"time": 3}).to_dataset(name="mask"), 2)
    assert float(f2[2, 5].compute()) == 6 / 8


def test_monthly_and_seasonal_frequency():
    lat, lon = regular_grid(2, 4)
    times = pd.date_range("2001-01-01", periods=365, freq="D")
    m = np.zeros((365, 2, 4), dtype=np.uint8)
    month = times.month.to_numpy()
    m[(month == 7) & (times.day.to_numpy() <= 10), 0, 0] = 1  # ten days of July
    m[np.isin(month, [12, 1, 2]), 1, 3] = 2  # all of winter
    da = xr.DataArray(m, dims=("time", "lat", "lon"), coords={"time": times, "lat": lat, "lon": lon})
    monthly = frequency(da, 1, by="month")
    assert float(monthly.sel(month=7)[0, 0]) == pytest.approx(10 / 31)
    assert float(monthly.sel(month=6)[0, 0]) == 0.0
    seasonal = frequency(da, 2, by="season")
    assert float(seasonal.sel(season="DJF")[1, 3]) == 1.0
    assert float(seasonal.sel(season="JJA")[1, 3]) == 0.0
    with pytest.raises(DataError, match="by"):
        frequency(da, 1, by="week")


def test_run_years():
    assert run_years(pd.date_range("2001-01-01", periods=2920, freq="3h")) == pytest.approx(365 / 365.25)
    assert np.isnan(run_years(np.arange(10)))


def test_summarize_counts_tracks_and_landfall():
    lat, lon = regular_grid(36, 72)
    m = np.zeros((8, 36, 72), dtype=np.uint8)
    for t in range(8):
        m[t, 12, 20 + t] = 1  # a cyclone moving east over 8 steps (21 h)
    m[0:2, 25, 50:54] = 2  # a short river, 2 steps
    m[5, 25, 60:64] = 2  # another river, 1 step
    da = as_dataarray(m, lat, lon)
    labels = label(da)
    tr = track(table(labels, da), labels)
    land = xr.DataArray(np.zeros((36, 72)), dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    land[12, 26] = 1.0  # the cyclone passes over this cell at step 6
    s = summarize(tr, land=land).set_index("class")
    assert s.loc[1, "n_tracks"] == 1 and s.loc[2, "n_tracks"] == 2
    assert s.loc[1, "n_events"] == 8 and s.loc[2, "n_events"] == 3
    assert s.loc[1, "lifetime_mean_h"] == 21.0
    assert s.loc[2, "lifetime_mean_h"] == (3.0 + 0.0) / 2
    assert s.loc[1, "landfalling"] == 1 and s.loc[2, "landfalling"] == 0
    years = 8 * 3 / (365.25 * 24)
    assert s.loc[2, "tracks_per_year"] == pytest.approx(2 / years)
    ev = summarize(tr.events).set_index("class")
    assert ev.loc[2, "events_per_step"] == 3 / 8 and "n_tracks" not in ev.columns


def _small_mask():
    lat, lon = regular_grid(4, 8)
    m = np.zeros((8, 4, 8), dtype=np.uint8)
    m[[0, 3, 5], 1, 2] = 1
    m[:, 2, 5] = 2
    m[[1, 2], 2, 5] = 1
    return as_dataarray(m, lat, lon)


@pytest.mark.parametrize("name, value", [("tc", 1), ("TC", 1), ("tropical_cyclone", 1), ("ar", 2), ("AR", 2)])
def test_frequency_takes_class_names(name, value):
    da = _small_mask()
    xr.testing.assert_identical(frequency(da, name), frequency(da, value))
    xr.testing.assert_identical(frequency(da, classes=name), frequency(da, value))


def test_frequency_of_several_classes_stacks_them_along_class():
    da = _small_mask()
    both = frequency(da, ("tc", 2))
    assert both.dims == ("class", "lat", "lon") and both["class"].values.tolist() == [1, 2]
    assert both.name == "frequency" and both.attrs["units"] == "1"
    # hand counts: cell (1, 2) is a TC in 3 of 8 steps; cell (2, 5) an AR in 6 of 8
    assert float(both.sel({"class": 1})[1, 2]) == 3 / 8
    assert float(both.sel({"class": 2})[2, 5]) == 6 / 8
    np.testing.assert_array_equal(both.sel({"class": 2}).values, frequency(da, 2).values)


def test_frequency_old_cls_keyword_warns_and_gives_the_same_map():
    da = _small_mask()
    with pytest.warns(DeprecationWarning, match="classes="):
        old = frequency(da, cls=1)
    xr.testing.assert_identical(old, frequency(da, classes=1))
    assert float(old[1, 2]) == 3 / 8


def test_frequency_rejects_unknown_class():
    from climviz.errors import ConfigError

    with pytest.raises(ConfigError, match="classes: expected .* found 'hurricane'"):
        frequency(_small_mask(), "hurricane")
