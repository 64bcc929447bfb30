"""Event tables: areas, centroids and field statistics against written-out spherical sums."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from climviz.errors import DataError
from climviz.events import label, label_table, table

from .conftest import as_dataarray, regular_grid

R = 6371.0


def band_area(south_deg: float, north_deg: float, dlon_deg: float = 360.0) -> float:
    """Exact area of a latitude band (km²): R² · Δλ · (sin φ_north − sin φ_south)."""
    return R**2 * math.radians(dlon_deg) * (math.sin(math.radians(north_deg)) - math.sin(math.radians(south_deg)))


def test_band_around_a_latitude_has_the_closed_form_area():
    lat, lon = regular_grid(36, 72)  # 5-degree cells; rows 20..23 span 10N..30N
    mask = np.zeros((36, 72), dtype=np.uint8)
    mask[20:24, :] = 2
    lab = label(mask)
    tab = table(lab, mask, lat=lat, lon=lon)
    assert len(tab) == 1
    row = tab.iloc[0]
    assert row["class"] == 2 and row["n_cells"] == 4 * 72
    assert row["area_km2"] == pytest.approx(band_area(10.0, 30.0), rel=1e-12)
    weights = [band_area(10 + 5 * k, 15 + 5 * k) for k in range(4)]
    centres = [12.5 + 5 * k for k in range(4)]
    assert row["centroid_lat"] == pytest.approx(np.average(centres, weights=weights), rel=1e-12)
    assert np.isnan(row["centroid_lon"])  # a ring has no mean longitude
    assert (row["lat_min"], row["lat_max"]) == (12.5, 27.5)


def test_rectangle_area_is_the_sum_of_written_out_cells():
    lat, lon = regular_grid(18, 36)
    mask = np.zeros((18, 36), dtype=np.uint8)
    mask[3:6, 4:9] = 1  # rows span -60..-30, five 10-degree columns
    tab = table(label(mask), mask, lat=lat, lon=lon)
    expected = sum(R**2 * math.radians(10) * (math.sin(math.radians(-60 + 10 * (i + 1))) -
                                              math.sin(math.radians(-60 + 10 * i)))
                   for i in range(3)) * 5
    assert tab["area_km2"].iloc[0] == pytest.approx(expected, rel=1e-12)
    assert tab["centroid_lon"].iloc[0] == pytest.approx(60.0)  # columns 40..80


def test_event_across_the_dateline_has_its_centroid_near_zero():
    lat, lon = regular_grid(18, 36)
    mask = np.zeros((18, 36), dtype=np.uint8)
    mask[8:10, [34, 35, 0, 1, 2]] = 1  # 340, 350, 0, 10, 20 degrees
    tab = table(label(mask), mask, lat=lat, lon=lon)
    assert len(tab) == 1
    assert tab["centroid_lon"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert tab["centroid_lat"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_irregular_latitude_spacing():
    lat = np.array([-70.0, -30.0, -10.0, 0.0, 5.0, 20.0, 60.0])
    lon = np.arange(0, 360, 20.0)
    mask = np.zeros((7, 18), dtype=np.uint8)
    mask[2:5, 3] = 1  # centres -10, 0, 5 -> edges -20, -5, 2.5, 12.5
    tab = table(label(mask), mask, lat=lat, lon=lon)
    assert tab["area_km2"].iloc[0] == pytest.approx(band_area(-20.0, 12.5, 20.0), rel=1e-12)
    w = np.array([band_area(-20, -5, 20), band_area(-5, 2.5, 20), band_area(2.5, 12.5, 20)])
    assert tab["centroid_lat"].iloc[0] == pytest.approx(np.average([-10, 0, 5], weights=w), rel=1e-12)


def test_field_statistics_inside_events(random_masks):
    lat, lon = regular_grid(*random_masks.shape[1:])
    rng = np.random.default_rng(1)
    psl = rng.normal(101000, 500, size=random_masks.shape)
    tmq = rng.uniform(0, 60, size=random_masks.shape)
    labels = label(random_masks)
    tab = table(labels, random_masks, {"PSL": psl, "TMQ": tmq}, lat=lat, lon=lon,
                stats={"PSL": ["min"], "TMQ": ["max", "mean", "sum", "integral"]})
    assert list(tab.columns[-5:]) == ["PSL_min", "TMQ_max", "TMQ_mean", "TMQ_sum", "TMQ_integral"]
    # independent: loop over a few events, cell areas written out per row
    dlat = 180.0 / random_masks.shape[1]
    row_area = np.array([R**2 * math.radians(360.0 / random_masks.shape[2]) *
                         (math.sin(math.radians(-90 + dlat * (i + 1))) - math.sin(math.radians(-90 + dlat * i)))
                         for i in range(random_masks.shape[1])])
    areas = np.broadcast_to(row_area[:, None], random_masks.shape[1:])
    for r in tab.sample(8, random_state=0).to_dict("records"):
        sel = labels[r["step"]] == r["event"]
        assert r["n_cells"] == sel.sum()
        assert r["class"] == random_masks[r["step"]][sel][0]
        assert r["area_km2"] == pytest.approx(areas[sel].sum(), rel=1e-10)
        assert r["PSL_min"] == psl[r["step"]][sel].min()
        assert r["TMQ_max"] == tmq[r["step"]][sel].max()
        assert r["TMQ_sum"] == pytest.approx(tmq[r["step"]][sel].sum(), rel=1e-12)
        assert r["TMQ_mean"] == pytest.approx(np.average(tmq[r["step"]][sel], weights=areas[sel]), rel=1e-10)
        assert r["TMQ_integral"] == pytest.approx((tmq[r["step"]][sel] * areas[sel]).sum(), rel=1e-10)
        rows = np.nonzero(sel)[0]
        assert (r["lat_min"], r["lat_max"]) == (lat[rows.min()], lat[rows.max()])
        lonw = np.deg2rad(lon[np.nonzero(sel)[1]])
        expect_lon = math.degrees(math.atan2((areas[sel] * np.sin(lonw)).sum(),
                                             (areas[sel] * np.cos(lonw)).sum())) % 360
        assert r["centroid_lon"] == pytest.approx(expect_lon, abs=1e-8)


def test_one_row_per_step_and_event(random_masks):
    lat, lon = regular_grid(*random_masks.shape[1:])
    labels = label(random_masks)
    tab = table(labels, random_masks, lat=lat, lon=lon)
    expected = sum(int(labels[t].max()) for t in range(random_masks.shape[0]))
    assert len(tab) == expected
    assert not tab.duplicated(["step", "event"]).any()
    assert tab["area_km2"].gt(0).all()
    assert list(tab.columns[:10]) == ["time", "step", "event", "class", "n_cells", "area_km2",
                                      "centroid_lat", "centroid_lon", "lat_min", "lat_max"]


def test_label_table_equals_label_then_table_and_dask_equals_numpy(random_masks):
    lat, lon = regular_grid(*random_masks.shape[1:])
    da = as_dataarray(random_masks, lat, lon)
    field = da.astype(np.float64) * 3.0 + da["lat"]
    lab_np = label(random_masks, min_cells=2)
    tab_np = table(lab_np, random_masks, {"F": field.values}, lat=lat, lon=lon)
    lab_xr, tab_xr = label_table(da.chunk({"time": 4}), {"F": field}, min_cells=2)
    np.testing.assert_array_equal(lab_xr.values, lab_np)
    pd.testing.assert_frame_equal(tab_xr.drop(columns="time"), tab_np.drop(columns="time"))
    assert pd.api.types.is_datetime64_any_dtype(tab_xr["time"])
    assert tab_xr["time"].iloc[-1] == da["time"].values[tab_xr["step"].iloc[-1]]
    lazy = table(label(da.chunk({"time": 2}), min_cells=2), da, {"F": field})
    pd.testing.assert_frame_equal(lazy, tab_xr)


def test_empty_masks_give_an_empty_table_with_columns():
    lat, lon = regular_grid(6, 12)
    mask = np.zeros((2, 6, 12), dtype=np.uint8)
    tab = table(label(mask), mask, {"F": np.ones(mask.shape)}, lat=lat, lon=lon)
    assert len(tab) == 0 and "F_mean" in tab.columns and "area_km2" in tab.columns


def test_bad_inputs_are_clear_errors():
    lat, lon = regular_grid(6, 12)
    mask = np.zeros((6, 12), dtype=np.uint8)
    with pytest.raises(DataError, match="lat and lon"):
        table(mask.astype(np.int32), mask)
    with pytest.raises(DataError, match="shape"):
        table(np.zeros((5, 12), np.int32), mask, lat=lat, lon=lon)
    with pytest.raises(DataError, match="stats"):
        table(mask.astype(np.int32), mask, {"F": np.ones((6, 12))}, lat=lat, lon=lon, stats=["median"])
    with pytest.raises(DataError, match="field 'F'"):
        table(mask.astype(np.int32), mask, {"F": np.ones((6, 13))}, lat=lat, lon=lon)


def test_labels_that_mix_classes_are_refused():
    lat, lon = regular_grid(6, 12)
    mask = np.zeros((6, 12), dtype=np.uint8)
    mask[2, 2:4] = 1
    mask[2, 4:6] = 2
    wrong = (mask > 0).astype(np.int32)  # one id over two classes
    with pytest.raises(DataError, match="covers classes 1 and 2"):
        table(wrong, mask, lat=lat, lon=lon)
