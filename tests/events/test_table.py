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


def test_cartesian_and_circular_centroids_against_written_out_sums():
    """A meridional strip of 10-degree cells from 5N to 55N at 0E, and a polar cap."""
    lat, lon = regular_grid(18, 36)
    mask = np.zeros((18, 36), dtype=np.uint8)
    mask[9:15, 0] = 2  # centres 5, 15, ..., 55 N at 0 E
    lab = label(mask)
    phi = [5.0 + 10.0 * k for k in range(6)]
    areas = [band_area(p - 5.0, p + 5.0, 10.0) for p in phi]
    circ = table(lab, mask, lat=lat, lon=lon).iloc[0]
    cart = table(lab, mask, lat=lat, lon=lon, centroid="cartesian").iloc[0]
    assert circ["centroid_lat"] == pytest.approx(np.average(phi, weights=areas), rel=1e-12)
    sz = sum(a * math.sin(math.radians(p)) for a, p in zip(areas, phi))
    cz = sum(a * math.cos(math.radians(p)) for a, p in zip(areas, phi))
    assert cart["centroid_lat"] == pytest.approx(math.degrees(math.atan2(sz, cz)), rel=1e-12)
    assert abs(cart["centroid_lat"] - circ["centroid_lat"]) < 0.1  # along a meridian they nearly agree
    # a zonal strip at 65 N from 0 to 80 E (nine equal cells): the parallel curves around the pole,
    # so the 3-D centroid lies poleward of the circular one: atan2(sin 65°, cos 65° |mean e^{iλ}|)
    zon = np.zeros((18, 36), dtype=np.uint8)
    zon[15, 0:9] = 2
    lz = label(zon)
    z_circ = table(lz, zon, lat=lat, lon=lon).iloc[0]
    z_cart = table(lz, zon, lat=lat, lon=lon, centroid="cartesian").iloc[0]
    lam = np.radians(10.0 * np.arange(9))
    resultant = abs(np.exp(1j * lam).mean())
    expected = math.degrees(math.atan2(math.sin(math.radians(65)), math.cos(math.radians(65)) * resultant))
    assert z_circ["centroid_lat"] == pytest.approx(65.0, rel=1e-12)
    assert z_cart["centroid_lat"] == pytest.approx(expected, rel=1e-12)
    assert z_cart["centroid_lat"] > 67.0
    assert z_circ["centroid_lon"] == pytest.approx(40.0) and z_cart["centroid_lon"] == pytest.approx(40.0)
    assert cart["centroid_lon"] == pytest.approx(0.0, abs=1e-9) or cart["centroid_lon"] == pytest.approx(360.0)
    # a cap north of 60 N: the 3-D centroid is the pole, the circular one the mean latitude (no longitude)
    cap = np.zeros((18, 36), dtype=np.uint8)
    cap[15:, :] = 1
    lab = label(cap)
    c_circ = table(lab, cap, lat=lat, lon=lon).iloc[0]
    c_cart = table(lab, cap, lat=lat, lon=lon, centroid="cartesian").iloc[0]
    ring_lat = [65.0, 75.0, 85.0]
    assert c_circ["centroid_lat"] == pytest.approx(
        np.average(ring_lat, weights=[band_area(p - 5, p + 5) for p in ring_lat]), rel=1e-12)
    assert c_cart["centroid_lat"] == pytest.approx(90.0, abs=1e-9)
    assert np.isnan(c_circ["centroid_lon"]) and np.isnan(c_cart["centroid_lon"])
    with pytest.raises(DataError, match="centroid"):
        table(lab, cap, lat=lat, lon=lon, centroid="mean")


def test_length_and_width_of_lat_lon_rectangles_on_the_sphere():
    """Principal axes (km) against arc lengths written out, on a 0.5-degree grid.

    An equatorial rectangle 40 degrees long and 10 wide: length R * 40°, width R * 10°
    (the off-equator rows are shorter by at most cos 5°; the area-weighted rms of cos over
    +-5° differs from 1 by 0.13 %). A meridional rectangle from 0 to 40 N, 10 degrees wide:
    length from the cos φ-weighted spread of latitude (the strip narrows poleward); width
    R * 10° * sqrt(mean cos² φ) with area weights cos φ: sqrt(∫cos³φ / ∫cos φ) over 0..40°.
    """
    lat, lon = regular_grid(360, 720)
    mask = np.zeros((2, 360, 720), dtype=np.uint8)
    mask[0, 170:190, 0:80] = 2  # -5..5 N, -0.25..39.75 E
    mask[1, 180:260, 100:120] = 2  # 0..40 N, 49.75..59.75 E
    tab = table(label(mask), mask, lat=lat, lon=lon)
    eq, mer = tab.iloc[0], tab.iloc[1]
    arc = R * math.radians(40.0)  # 4447.8 km
    assert eq["length_km"] == pytest.approx(arc, rel=2e-3)
    # the azimuthal equidistant plane is true to distances from the centre only: across the long
    # axis, 20° from the centre, it stretches by d / sin d (up to 2.2 %; 0.5 % in the rms width)
    assert eq["width_km"] == pytest.approx(R * math.radians(10.0), rel=1e-2)
    assert eq["width_km"] >= R * math.radians(10.0)
    # along the meridian the cells' areas shrink as cos φ, so the spread is that of φ weighted by
    # cos φ over 0..40°: moments ∫cos φ, ∫φ cos φ = [φ sin φ + cos φ], ∫φ² cos φ = [φ² sin φ + 2φ cos φ - 2 sin φ]
    b_ = math.radians(40.0)
    m0 = math.sin(b_)
    m1 = b_ * math.sin(b_) + math.cos(b_) - 1.0
    m2 = b_**2 * math.sin(b_) + 2 * b_ * math.cos(b_) - 2 * math.sin(b_)
    var = m2 / m0 - (m1 / m0) ** 2
    assert mer["length_km"] == pytest.approx(R * math.sqrt(12 * var), rel=2e-3)  # 4398.6 km, not 4447.8
    s40 = math.sin(math.radians(40.0))
    rms_cos = math.sqrt((s40 - s40**3 / 3) / s40)
    assert mer["width_km"] == pytest.approx(R * math.radians(10.0) * rms_cos, rel=1e-2)
    # a disc-like event: a single cell is tiny; a square's two axes are equal
    assert eq["length_km"] > 3.9 * eq["width_km"]
    sq = np.zeros((360, 720), dtype=np.uint8)
    sq[176:184, 300:308] = 1
    row = table(label(sq), sq, lat=lat, lon=lon).iloc[0]
    assert row["length_km"] == pytest.approx(row["width_km"], rel=2e-3)
    assert row["length_km"] == pytest.approx(R * math.radians(4.0), rel=2e-3)
    # one 10-degree cell centred at 5 N: its own sides, R·10° north-south and R·10°·cos 5° east-west
    lat10, lon10 = regular_grid(18, 36)
    one = np.zeros((18, 36), dtype=np.uint8)
    one[9, 3] = 1
    cell = table(label(one), one, lat=lat10, lon=lon10).iloc[0]
    assert cell["length_km"] == pytest.approx(R * math.radians(10.0), rel=1e-12)
    assert cell["width_km"] == pytest.approx(R * math.radians(10.0) * math.cos(math.radians(5.0)), rel=1e-12)


def test_fields_in_other_units_give_the_same_table_in_canonical_units():
    """PSL in hPa and TS in degC are tabulated as PSL in Pa and TS in K."""
    import xarray as xr

    from climviz.events.tracking import track_masks

    from .conftest import as_dataarray

    lat, lon = regular_grid(18, 36)
    rng = np.random.default_rng(3)
    m = np.zeros((3, 18, 36), dtype=np.uint8)
    m[:, 8:11, 5:9] = 1
    m[:, 3:5, 20:30] = 2
    mask = as_dataarray(m, lat, lon)
    psl_pa = xr.DataArray(rng.uniform(95000.0, 103000.0, m.shape), dims=mask.dims, coords=mask.coords,
                          attrs={"units": "Pa"})
    ts_k = xr.DataArray(rng.uniform(250.0, 305.0, m.shape), dims=mask.dims, coords=mask.coords,
                        attrs={"units": "K"})
    psl_hpa = (psl_pa / 100.0).assign_attrs(units="hPa")
    ts_c = (ts_k - 273.15).assign_attrs(units="degC")
    _, ref = label_table(mask, {"PSL": psl_pa, "TS": ts_k})
    _, got = label_table(mask, {"PSL": psl_hpa, "TS": ts_c})
    pd.testing.assert_frame_equal(got, ref, rtol=1e-12)
    assert ref["PSL_min"].min() > 90000.0  # in Pa
    labels = label(mask)
    pd.testing.assert_frame_equal(table(labels, mask, xr.Dataset({"PSL": psl_hpa})),
                                  table(labels, mask, {"PSL": psl_pa}), rtol=1e-12)
    pd.testing.assert_frame_equal(track_masks(mask, {"PSL": psl_hpa}).tracks,
                                  track_masks(mask, {"PSL": psl_pa}).tracks, rtol=1e-12)
    # a field that is not a channel, or has no units, is used as given
    _, other = label_table(mask, {"WIND": psl_hpa})
    assert other["WIND_min"].max() < 1100.0
    bad = psl_pa.assign_attrs(units="kg m-2")
    with pytest.raises(DataError, match="PSL"):
        label_table(mask, {"PSL": bad})
