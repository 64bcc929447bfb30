"""Atmospheric river detector on constructed moisture filaments with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from climviz.errors import ConfigError, DataError
from climviz.labels import ARConfig, detect_ar, integrated_vapour_transport, region_geometry
from climviz.labels._grid import Grid, label_periodic
from tests.labels.conftest import as_run, blob_fields, filament_fields, grid

LAT, LON = grid(1.0, 1.25)


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.deg2rad(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def brute_force_length(mask2d):
    """Largest great-circle distance between any two cells (all pairs)."""
    i, j = np.nonzero(mask2d)
    la, lo = LAT[i], LON[j]
    return haversine_km(la[:, None], lo[:, None], la[None, :], lo[None, :]).max()


def run_of(fields):
    return as_run([fields], LAT, LON)


def test_long_narrow_filament_is_an_ar_with_its_length_and_width():
    res = detect_ar(run_of(filament_fields(LAT, LON, 40.0, 200.0, length_km=3000, width_km=500)))
    regions = res.regions
    assert len(regions) == 1 and bool(regions["is_ar"].iloc[0])
    r = regions.iloc[0]
    m = res.mask.values[0]
    assert r["length_km"] == pytest.approx(brute_force_length(m), rel=1e-6)
    assert r["length_km"] == pytest.approx(3000, rel=0.08)  # cell centres: within a cell of the ends
    assert r["width_km"] == pytest.approx(500, rel=0.2)
    assert r["centroid_lat"] == pytest.approx(40.0, abs=1.0)
    assert r["poleward_ivt"] == pytest.approx(600.0)


def test_short_filament_and_round_blob_are_not_ars():
    short = detect_ar(run_of(filament_fields(LAT, LON, 40.0, 200.0, length_km=1500, width_km=500)))
    assert len(short.regions) == 1 and not short.regions["is_ar"].any()
    assert not short.mask.values.any()
    assert short.regions["length_km"].iloc[0] < 2000 or np.isnan(short.regions["length_km"].iloc[0])
    # a blob 2500 km across is long enough but not narrow: length/width = L^2/area ~ 4/pi < 2
    blob = detect_ar(run_of(blob_fields(LAT, LON, 45.0, 100.0, diameter_km=2500)))
    r = blob.regions.iloc[0]
    assert r["length_km"] > 2000
    assert r["aspect"] == pytest.approx(4 / np.pi, rel=0.15)
    assert not blob.regions["is_ar"].any() and not blob.mask.values.any()


def test_filament_across_the_seam_is_one_ar():
    f = filament_fields(LAT, LON, 45.0, 0.0, length_km=3000, width_km=500, azimuth_deg=90.0)
    res = detect_ar(run_of(f))
    assert len(res.regions) == 1 and bool(res.regions["is_ar"].iloc[0])
    m = res.mask.values[0]
    assert m[:, 0].any() and m[:, -1].any()  # both sides of 0/360
    r = res.regions.iloc[0]
    assert r["length_km"] == pytest.approx(brute_force_length(m), rel=1e-6)
    assert r["length_km"] == pytest.approx(3000, rel=0.08)
    assert min(r["centroid_lon"], 360 - r["centroid_lon"]) < 1.5  # near 0/360, not 180
    # the same filament away from the seam has the same size
    away = detect_ar(run_of(filament_fields(LAT, LON, 45.0, 180.0, length_km=3000, width_km=500, azimuth_deg=90.0)))
    assert away.regions["area_km2"].iloc[0] == pytest.approx(r["area_km2"], rel=0.02)


def test_transport_must_be_poleward():
    along_parallel = filament_fields(LAT, LON, 40.0, 200.0, length_km=3000, width_km=500, wind=(15.0, 0.0))
    assert not detect_ar(run_of(along_parallel)).regions["is_ar"].any()
    assert detect_ar(run_of(along_parallel), config=ARConfig(min_poleward_ivt=None)).regions["is_ar"].all()
    south = filament_fields(LAT, LON, -40.0, 200.0, length_km=3000, width_km=500, wind=(0.0, -15.0))
    assert detect_ar(run_of(south)).regions["is_ar"].all()  # southward is poleward in the south


def test_tropics_can_be_excluded():
    f = filament_fields(LAT, LON, 10.0, 200.0, length_km=3000, width_km=500)  # about -3.5 to 23.5 N
    assert not detect_ar(run_of(f)).mask.values.any()  # only ~950 km lie poleward of 15 N
    assert detect_ar(run_of(f), config=ARConfig(exclude_tropics_deg=None)).mask.values.any()


def test_ivt_estimate_and_given_ivt():
    f = filament_fields(LAT, LON, 40.0, 200.0, length_km=3000, width_km=500, wind=(3.0, 4.0))
    ds = run_of(f)
    ivt = integrated_vapour_transport(ds)
    np.testing.assert_allclose(ivt.values[0], f["TMQ"] * 5.0, rtol=1e-6)
    assert ivt.attrs["units"] == "kg m-1 s-1"
    bot = ds.rename({"U850": "UBOT", "V850": "VBOT"})
    np.testing.assert_allclose(integrated_vapour_transport(bot).values, ivt.values)
    scaled = integrated_vapour_transport(ds, config=ARConfig(ivt_scale=0.5))
    np.testing.assert_allclose(scaled.values, 0.5 * ivt.values, rtol=1e-6)
    # an IVT variable is used as given (here without any wind: the poleward test is skipped)
    given = ds.assign(IVT=ivt * 0 + np.where(f["TMQ"] > 10, 900.0, 0.0)[None]).drop_vars(["TMQ", "U850", "V850"])
    res = detect_ar(given)
    assert res.regions["is_ar"].all() and np.isnan(res.regions["poleward_ivt"]).all()


def test_percentile_thresholds_match_numpy():
    rng = np.random.default_rng(0)
    fields = [{"TMQ": rng.uniform(5, 60, (LAT.size, LON.size)), "U850": np.full((LAT.size, LON.size), 3.0),
               "V850": np.full((LAT.size, LON.size), 4.0)} for _ in range(12)]
    ds = as_run(fields, LAT, LON)
    ivt = np.stack([f["TMQ"].astype(np.float32) * 5.0 for f in fields])
    cell = detect_ar(ds, config=ARConfig(percentile=85, threshold=100.0)).threshold
    np.testing.assert_allclose(cell.values, np.maximum(np.percentile(ivt, 85, axis=0), 100.0), rtol=1e-5)
    glob = detect_ar(ds, config=ARConfig(percentile=85, percentile_scope="global", threshold=100.0)).threshold
    assert glob == pytest.approx(max(np.percentile(ivt, 85), 100.0), rel=1e-5)


def test_region_areas_are_sums_of_spherical_cell_areas():
    mask = np.zeros((1, LAT.size, LON.size), dtype=bool)
    mask[0, 120:130, 10:30] = True  # lat 30..40 N, 20 columns of 1.25 degrees
    lab, _ = label_periodic(mask)
    geo = region_geometry(lab, Grid.from_coords(LAT, LON))
    expected = 6371.0**2 * np.deg2rad(25.0) * (np.sin(np.deg2rad(40.0)) - np.sin(np.deg2rad(30.0)))
    assert geo["area_km2"].iloc[0] == pytest.approx(expected, rel=1e-9)
    assert geo["n_cells"].iloc[0] == 200


def test_bad_settings_and_missing_variables_are_named():
    with pytest.raises(ConfigError, match="percentile"):
        ARConfig(percentile=150)
    with pytest.raises(ConfigError, match="min_length_km"):
        ARConfig(min_length_km=0)
    ds = run_of(filament_fields(LAT, LON, 40.0, 200.0, length_km=3000, width_km=500))
    with pytest.raises(DataError, match="TMQ"):
        detect_ar(ds.drop_vars("TMQ"))
    with pytest.raises(DataError, match="U850"):
        detect_ar(ds.drop_vars("V850"))


def test_dask_backed_runs_give_the_same_answer():
    rng = np.random.default_rng(1)
    fields = [filament_fields(LAT, LON, 40.0 + k, 200.0 + 3 * k, length_km=3000, width_km=500) for k in range(4)]
    for f in fields:
        f["TMQ"] = f["TMQ"] + rng.uniform(0, 2, f["TMQ"].shape)
    ds = as_run(fields, LAT, LON)
    lazy = ds.chunk({"time": 1})
    for cfg in (ARConfig(), ARConfig(percentile=75, threshold=100.0)):
        eager, chunked = detect_ar(ds, config=cfg), detect_ar(lazy, config=cfg)
        np.testing.assert_array_equal(chunked.mask.values, eager.mask.values)
    assert eager.mask.values.any()


def test_regional_grid_edges_are_not_joined_unless_forced():
    from climviz.labels import ARConfig, detect_ar
    from tests.labels.conftest import as_run, filament_fields

    lat = np.arange(10.0, 70.01, 1.0)
    lon = np.arange(100.0, 180.01, 1.0)  # 100-180 E: regional
    west = filament_fields(lat, lon, 40.0, 100.0, length_km=3000.0, width_km=300.0)
    east = filament_fields(lat, lon, 40.0, 180.0, length_km=3000.0, width_km=300.0)
    f = {"TMQ": np.maximum(west["TMQ"], east["TMQ"]), "U850": west["U850"], "V850": west["V850"]}
    ds = as_run([f], lat, lon)
    cfg = {"ivt_var": None, "min_poleward_ivt": None}
    assert len(detect_ar(ds, config=ARConfig(**cfg)).regions) == 2
    assert len(detect_ar(ds, config=ARConfig(**cfg, periodic=True)).regions) == 1  # joined across 100/180 E
