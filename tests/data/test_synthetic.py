"""synthetic_run: plausible fields, features where they were built, labels from the features.

Checks use independent computations: haversine distances, finite-difference vorticity,
the hypsometric equation written out here, zonal means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.data.synthetic import synthetic_run
from climviz.errors import ConfigError

R_EARTH_KM = 6371.0


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlam = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlam / 2) ** 2
    return 2 * R_EARTH_KM * np.arcsin(np.sqrt(a))


def test_structure_coords_and_synthetic_attributes(small_run):
    ds = small_run
    assert list(ds.data_vars) == [*CHANNELS, LABEL_VAR]
    for c in CHANNELS:
        assert ds[c].dims == ("time", "lat", "lon") and ds[c].dtype == np.float32
        assert ds[c].attrs["units"]
        assert np.isfinite(ds[c].values).all()
    assert ds[LABEL_VAR].dtype == np.uint8
    assert set(np.unique(ds[LABEL_VAR].values)) == {0, 1, 2}
    lat, lon = ds.lat.values, ds.lon.values
    assert np.all(np.diff(lat) > 0) and lat[0] > -90 and lat[-1] < 90
    np.testing.assert_allclose(lat[0], -90 + 0.5 * 180 / 96)
    assert lon.min() >= 0 and lon.max() < 360 and np.all(np.diff(lon) > 0)
    assert ds.sizes == {"time": 12, "lat": 96, "lon": 144}
    assert (np.diff(ds.time.values) == np.timedelta64(3, "h")).all()
    assert ds.attrs["synthetic"] == "yes"
    assert "synthetic" in ds.attrs["source"].lower() and ds.attrs["comment"]


def test_same_seed_same_run_other_seed_other_run():
    a = synthetic_run(2, shape=(24, 36), seed=5)
    b = synthetic_run(2, shape=(24, 36), seed=5)
    c = synthetic_run(2, shape=(24, 36), seed=6)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)
    assert not np.array_equal(a["PSL"].values, c["PSL"].values)


def test_same_seed_same_storms_on_every_grid():
    _, f1 = synthetic_run(3, shape=(24, 36), seed=2, return_features=True)
    _, f2 = synthetic_run(3, shape=(96, 144), seed=2, return_features=True)
    pd.testing.assert_frame_equal(f1, f2)


def test_background_is_plausible(small_run):
    ds = small_run
    zonal = ds.mean(("time", "lon"))
    lat = ds.lat.values
    trop, pole = np.abs(lat) < 10, np.abs(lat) > 75
    assert zonal.TS.values[trop].mean() > 295 and zonal.TS.values[pole].mean() < 265
    assert zonal.TMQ.values[trop].mean() > 40 and zonal.TMQ.values[pole].mean() < 8
    assert zonal.QREFHT.values[trop].mean() > 0.012 and zonal.QREFHT.values[pole].mean() < 0.002
    # global area-weighted mean sea-level pressure close to 1013 hPa
    w = np.cos(np.radians(lat))
    psl_mean = float((zonal.PSL.values * w).sum() / w.sum())
    assert 100_500 < psl_mean < 102_000
    # temperature decreases upward
    assert (ds.TS > ds.T500).all() and (ds.T500 > ds.T200).all()
    # precipitation in m/s: tropical mean of a few mm/day
    assert 2 < zonal.PRECT.values[trop].mean() * 86400e3 < 20


def test_heights_follow_the_hypsometric_equation(small_run):
    ds = small_run
    rd_over_g = 287.04 / 9.80665
    z1000 = rd_over_g * ds.TREFHT.values.astype(float) * np.log(ds.PSL.values.astype(float) / 1e5)
    np.testing.assert_allclose(ds.Z1000.values, z1000, atol=0.5)
    # 1000-200 hPa thickness: ln(1000/200) * Rd/g * (layer-mean T) with layer mean T between T200 and TREFHT
    thick = (ds.Z200 - ds.Z1000).values
    tbar = thick / (rd_over_g * np.log(1000 / 200))
    assert (tbar > ds.T200.values).all() and (tbar < ds.TREFHT.values).all()
    # warmer column -> thicker: strongly correlated with the mean of the three temperatures
    tm = ((ds.TREFHT + ds.T500 + ds.T200) / 3).values.ravel()
    assert np.corrcoef(tm, thick.ravel())[0, 1] > 0.95
    assert 10_500 < float(ds.Z200.mean()) < 12_800


def _vorticity(ds, t):
    """Relative vorticity (s-1) by centred finite differences on the sphere."""
    u = ds.U850.isel(time=t).values.astype(float)
    v = ds.V850.isel(time=t).values.astype(float)
    lat = np.radians(ds.lat.values)[:, None]
    dlon = np.radians(360 / ds.sizes["lon"])
    dlat = np.radians(180 / ds.sizes["lat"])
    r = R_EARTH_KM * 1e3
    dvdx = (np.roll(v, -1, 1) - np.roll(v, 1, 1)) / (2 * dlon * r * np.cos(lat))
    ucos = u * np.cos(lat)
    ducos = np.gradient(ucos, axis=0) / dlat
    return dvdx - ducos / (r * np.cos(lat))


def test_tropical_cyclones_have_the_built_structure(small_run_and_features):
    ds, feats = small_run_and_features
    tcs = feats[feats.kind == "tc"]
    assert len(tcs) >= 3 * ds.sizes["time"] - 1
    assert tcs.lat.abs().between(5, 35).all()
    assert tcs.radius_km.between(0.8 * 600 * 0.9, 1.2 * 600).all()
    lat, lon = ds.lat.values, ds.lon.values
    nh = sh = 0
    for _, f in tcs.iterrows():
        t = int(np.nonzero(ds.time.values == np.datetime64(f.time))[0][0])
        d = haversine_km(lat[:, None], lon[None, :], f.lat, f.lon)
        inside = d <= f.radius_km
        psl = ds.PSL.isel(time=t).values
        # deepest pressure near the centre, well below the zonal background
        iy, ix = np.unravel_index(np.argmin(np.where(inside, psl, np.inf)), psl.shape)
        assert d[iy, ix] < 0.35 * f.radius_km
        ring = (d > 2.5 * f.radius_km) & (d < 3.0 * f.radius_km)
        assert psl[inside].min() < psl[ring].mean() - 0.4 * f.pressure_deficit_pa
        # cyclonic: vorticity positive in NH, negative in SH near the centre
        zeta = _vorticity(ds, t)
        core = d < 0.6 * f.radius_km
        mean_zeta = zeta[core].mean()
        if f.lat > 0:
            assert mean_zeta > 1e-5
            nh += 1
        else:
            assert mean_zeta < -1e-5
            sh += 1
        # warm core aloft, heavy rain, moist
        for var, excess in (("T200", 3.0), ("T500", 2.0)):
            field = ds[var].isel(time=t).values
            assert field[core].max() > field[ring].mean() + excess * f.intensity
        prect = ds.PRECT.isel(time=t).values
        assert prect[inside].max() > 1e-6  # > 3.6 mm/h
        tmq = ds.TMQ.isel(time=t).values
        assert tmq[core].max() > tmq[ring].mean() + 12 * f.intensity
    assert nh > 0 and sh > 0


def test_labels_are_the_constructed_tc_discs(small_run_and_features):
    ds, feats = small_run_and_features
    lat, lon = ds.lat.values, ds.lon.values
    for t, ts in enumerate(ds.time.values):
        f = feats[(feats.time == ts) & (feats.kind == "tc")]
        d = haversine_km(lat[:, None, None], lon[None, :, None], f.lat.values, f.lon.values)
        within = (d <= f.radius_km.values).any(-1)
        lab = ds[LABEL_VAR].isel(time=t).values
        np.testing.assert_array_equal(lab == 1, within)


def test_labels_cross_the_longitude_seam():
    # look (deterministically) for a storm whose disc covers both the first and last columns
    found = None
    for seed in range(40):
        ds, feats = synthetic_run(8, shape=(48, 72), seed=seed, n_tc=6, n_ar=0, return_features=True)
        for _, f in feats[feats.kind == "tc"].iterrows():
            d = haversine_km(ds.lat.values[:, None], ds.lon.values[None, :], f.lat, f.lon)
            inside = d <= f.radius_km
            if inside[:, 0].sum() >= 2 and inside[:, -1].sum() >= 2:
                found = f
                break
        if found is not None:
            break
    else:  # pragma: no cover - would mean the generator never puts storms near 0 E
        pytest.fail("no storm on the seam in 40 seeds")
    f = found
    t = int(np.nonzero(ds.time.values == np.datetime64(f.time))[0][0])
    lab = ds[LABEL_VAR].isel(time=t).values
    assert (lab[inside] == 1).all()
    assert (lab[:, 0] == 1).any() and (lab[:, -1] == 1).any()
    # vortex continuous across the seam: winds in the first and last columns agree with neighbours
    u = ds.U850.isel(time=t).values
    rows = inside[:, 0]
    jump_seam = np.abs(u[rows, 0] - u[rows, -1]).mean()
    jump_inner = np.abs(u[rows, 1] - u[rows, 0]).mean()
    assert jump_seam < 3 * jump_inner + 1.0


def test_atmospheric_rivers_are_long_moist_filaments_with_wind_along(small_run_and_features):
    from scipy import ndimage

    ds, feats = small_run_and_features
    ars = feats[feats.kind == "ar"]
    assert ars.length_km.between(3000, 6000).all() and ars.width_km.between(300, 800).all()
    lat, lon = ds.lat.values, ds.lon.values
    lat2 = np.broadcast_to(lat[:, None], (lat.size, lon.size))
    lon2 = np.broadcast_to(lon[None, :], (lat.size, lon.size))
    zonal_tmq = ds.TMQ.mean("lon")
    checked = 0
    for _, f in ars.iterrows():
        t = int(np.nonzero(ds.time.values == np.datetime64(f.time))[0][0])
        lab = ds[LABEL_VAR].isel(time=t).values == 2
        comp, _ = ndimage.label(np.concatenate([lab, lab], axis=1))  # doubled to see across the seam
        comp = comp[:, : lon.size]
        # the component containing the cell nearest to the midpoint
        d = haversine_km(lat2, lon2, f.lat, f.lon)
        cand = np.where(lab, d, np.inf)
        iy, ix = np.unravel_index(np.argmin(cand), lab.shape)
        if not np.isfinite(cand[iy, ix]) or cand[iy, ix] > f.width_km:
            continue  # midpoint under a TC (TC labels win)
        cells = comp == comp[iy, ix]
        la, lo = lat2[cells], lon2[cells]
        span = haversine_km(la[:, None], lo[:, None], la[None, :], lo[None, :]).max()
        assert 0.7 * f.length_km < span < 1.3 * f.length_km
        assert la.min() * np.sign(f.lat) < 30 and np.abs(la).max() > 35 and np.abs(la).max() < 60
        tmq = ds.TMQ.isel(time=t).values
        assert (tmq[cells] - zonal_tmq.isel(time=t).values[:, None].repeat(lon.size, 1)[cells]).mean() > 8
        u = ds.U850.isel(time=t).values[cells].mean()
        v = ds.V850.isel(time=t).values[cells].mean()
        assert u > 3  # eastward and poleward: NH north-east, SH south-east
        assert v * np.sign(f.lat) > 3
        checked += 1
    assert checked >= len(ars) // 2


def test_features_move_smoothly_so_tracking_can_follow(small_run_and_features):
    ds, feats = small_run_and_features
    for _, g in feats.groupby("feature_id"):
        g = g.sort_values("time")
        if len(g) < 2:
            continue
        step = haversine_km(g.lat.values[:-1], g.lon.values[:-1], g.lat.values[1:], g.lon.values[1:])
        assert (step > 5).all() and (step < 250).all()  # moving, but less than a radius per 3 h
    tc_ids = feats[feats.kind == "tc"].feature_id.unique()
    assert len(tc_ids) >= 3


def test_storm_activity_is_a_parameter():
    quiet = synthetic_run(4, shape=(48, 72), seed=0, n_tc=1, n_ar=0)
    busy = synthetic_run(4, shape=(48, 72), seed=0, n_tc=6, n_ar=3)
    assert (quiet[LABEL_VAR] == 2).sum() == 0
    assert (busy[LABEL_VAR] == 1).sum() > 3 * (quiet[LABEL_VAR] == 1).sum()
    assert (busy[LABEL_VAR] == 2).sum() > 0
    none = synthetic_run(2, shape=(24, 36), n_tc=0, n_ar=0, return_features=True)
    assert (none[0][LABEL_VAR] == 0).all() and len(none[1]) == 0


def test_paper_grid():
    ds = synthetic_run(1, shape=(768, 1152), seed=0)
    assert ds.sizes == {"time": 1, "lat": 768, "lon": 1152}
    assert (ds[LABEL_VAR] == 1).sum() > 100 and (ds[LABEL_VAR] == 2).sum() > 100


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"n_times": 0}, "n_times"),
        ({"n_times": 2, "shape": (4, 36)}, "shape"),
        ({"n_times": 2, "n_tc": -1}, "n_tc"),
        ({"n_times": 2, "tc_radius_km": 0}, "tc_radius_km"),
        ({"n_times": 2, "freq": "every now and then"}, "freq"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        synthetic_run(**kwargs)
