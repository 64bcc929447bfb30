"""Tropical cyclone detector on constructed vortices with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from climviz.errors import ConfigError, DataError
from climviz.labels import TCConfig, detect_tc, detect_tc_nodes, stitch_nodes
from tests.labels.conftest import as_run, grid, vortex_fields

LAT, LON = grid(1.0, 1.25)
ONE_STEP = TCConfig(stitch=False)


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.deg2rad(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def single(lat0, lon0, **kw):
    return as_run([vortex_fields(LAT, LON, lat0, lon0, **kw)], LAT, LON)


@pytest.mark.parametrize(
    ("lat0", "lon0", "rotation"),
    [(20.3, 140.2, +1), (-15.6, 75.9, -1), (12.2, 359.8, +1)],
    ids=["north-counterclockwise", "south-clockwise", "across-the-seam"],
)
def test_warm_core_cyclone_is_found_within_one_cell_of_its_centre(lat0, lon0, rotation):
    nodes = detect_tc_nodes(single(lat0, lon0, rotation=rotation), config=ONE_STEP)
    assert len(nodes) == 1
    row = nodes.iloc[0]
    assert abs(row["lat"] - lat0) <= 1.0
    dlon = (row["lon"] - lon0 + 180) % 360 - 180
    assert abs(dlon) <= 1.25
    assert row["vorticity_per_s"] > 0  # cyclonic, whatever the hemisphere
    assert 1.0 < row["warm_core_k"] < 4.0  # anomaly of a 4 K Gaussian core vs its surroundings
    assert 101325 - 3000 <= row["psl_pa"] < 101325 - 2500


def test_vortex_without_warm_core_is_not_a_tc():
    assert len(detect_tc_nodes(single(20.3, 140.2, warm_k=0.0), config=ONE_STEP)) == 0


def test_cold_core_is_not_a_tc():
    assert len(detect_tc_nodes(single(20.3, 140.2, warm_k=-3.0), config=ONE_STEP)) == 0


@pytest.mark.parametrize(("lat0", "rotation"), [(20.3, -1), (-15.6, +1)], ids=["north-clockwise", "south-ccw"])
def test_anticyclonic_rotation_for_the_hemisphere_is_not_a_tc(lat0, rotation):
    assert len(detect_tc_nodes(single(lat0, 140.2, rotation=rotation), config=ONE_STEP)) == 0


def test_weak_and_poleward_vortices_are_rejected():
    assert len(detect_tc_nodes(single(20.3, 140.2, vmax_ms=6.0), config=ONE_STEP)) == 0  # below min wind/vorticity
    assert len(detect_tc_nodes(single(62.0, 140.2), config=ONE_STEP)) == 0  # beyond max_abs_lat = 50
    assert len(detect_tc_nodes(single(62.0, 140.2), config=TCConfig(stitch=False, max_abs_lat=70))) == 1


def test_pressure_trough_without_a_closed_contour_is_not_a_tc():
    f = vortex_fields(LAT, LON, 20.3, 140.2)
    # a zonal trough 20 hPa deep with only a 100 Pa dip at the vortex: along the trough axis
    # PSL never rises by 200 Pa, so the 200 Pa contour around the centre is open
    x = vortex_fields(LAT, LON, 20.3, 140.2, dp_pa=100.0)["PSL"] - 101325.0
    f["PSL"] = 101325.0 - 2000.0 * np.exp(-(((LAT - 20.3) / 3.0) ** 2))[:, None] + x
    ds = as_run([f], LAT, LON)
    assert len(detect_tc_nodes(ds, config=ONE_STEP)) == 0
    # a 50 Pa contour does close (the dip rises by ~98 Pa within 611 km)
    assert len(detect_tc_nodes(ds, config=TCConfig(stitch=False, closed_contour_dpsl_pa=50.0))) == 1


def test_two_storms_are_two_nodes_and_lowest_level_winds_are_a_fallback():
    f = vortex_fields(LAT, LON, 18.0, 60.0)
    g = vortex_fields(LAT, LON, -22.0, 200.0, rotation=-1)
    base_t500 = (260.0 - 0.3 * np.abs(LAT))[:, None]  # the background of vortex_fields
    both = {
        "PSL": np.minimum(f["PSL"], g["PSL"]),
        "U850": f["U850"] + g["U850"],
        "V850": f["V850"] + g["V850"],
        "T200": f["T200"] + g["T200"] - 220.0,
        "T500": f["T500"] + g["T500"] - base_t500,
    }
    ds = as_run([both], LAT, LON).rename({"U850": "UBOT", "V850": "VBOT"})
    nodes = detect_tc_nodes(ds, config=ONE_STEP)
    assert sorted(np.round(nodes["lat"]).tolist()) == [-22.0, 18.0]


def moving_storm(n_steps, dlon_per_step, lat0=15.0, lon0=150.0, jump_at=None, jump_deg=0.0):
    fields, centres = [], []
    for k in range(n_steps):
        lon_k = lon0 - dlon_per_step * k - (jump_deg if jump_at is not None and k >= jump_at else 0.0)
        fields.append(vortex_fields(LAT, LON, lat0 + 0.2 * k, lon_k % 360))
        centres.append((lat0 + 0.2 * k, lon_k % 360))
    return as_run(fields, LAT, LON, freq="6h"), centres


def test_a_moving_storm_is_one_track_and_its_path_length_is_right():
    ds, centres = moving_storm(12, 1.5)  # 66 h, ~160 km per 6 h
    res = detect_tc(ds)  # default: stitch when the run spans >= 54 h
    assert res.stitched
    assert len(res.tracks) == 1
    trk = res.tracks.iloc[0]
    assert trk["n_nodes"] == 12 and trk["duration_h"] == 66.0
    lat = np.array([c[0] for c in centres])
    lon = np.array([c[1] for c in centres])
    expected = haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:]).sum()
    assert trk["path_km"] == pytest.approx(expected, rel=0.15)  # centres snap to the 1-degree grid
    assert (res.nodes["track_id"] == 0).all()


def test_a_jump_beyond_the_speed_limit_splits_the_track_and_short_pieces_are_dropped():
    ds, _ = moving_storm(12, 1.5, jump_at=6, jump_deg=25.0)  # 25 degrees in 6 h: ~2700 km
    res = detect_tc(ds, config=TCConfig(min_duration_h=24.0))
    assert len(res.tracks) == 2
    assert sorted(res.tracks["n_nodes"]) == [6, 6]
    res = detect_tc(ds, config=TCConfig(min_duration_h=54.0, stitch=True))
    assert len(res.tracks) == 0 and not res.mask.values.any()


def test_gaps_up_to_max_gap_are_bridged():
    nodes = pd.DataFrame({
        "time_index": [0, 1, 4, 5], "time": pd.date_range("2000", periods=4, freq="6h"),
        "lat": [15.0, 15.0, 15.0, 15.0], "lon": [150.0, 149.0, 146.0, 145.0],
        "psl_pa": 1e5, "max_wind_ms": 30.0,
    })
    hours = np.arange(6) * 6.0
    ids, tracks = stitch_nodes(nodes, hours, config=TCConfig(max_gap_h=18.0, min_duration_h=0.0))
    assert ids.tolist() == [0, 0, 0, 0]  # 2 missing steps = 12 h without a node
    ids, tracks = stitch_nodes(nodes, hours, config=TCConfig(max_gap_h=6.0, min_duration_h=0.0))
    assert ids.tolist() == [0, 0, 1, 1]


def test_fixed_radius_mask_is_the_great_circle_disc():
    ds = single(20.3, 140.2)
    res = detect_tc(ds, config=TCConfig(stitch=False, mask_method="fixed", mask_radius_km=450.0))
    node = res.nodes.iloc[0]
    la, lo = np.meshgrid(LAT, LON, indexing="ij")
    expected = haversine_km(node["lat"], node["lon"], la, lo) <= 450.0
    np.testing.assert_array_equal(res.mask.values[0], expected)


def test_wind_and_pressure_mask_radii_follow_the_storm_size():
    # Rankine-like wind v = 35 (80/r)^0.6 drops below 12 m/s at r = 80 (35/12)^(1/0.6) ~ 475 km
    res = detect_tc(single(20.3, 140.2), config=TCConfig(stitch=False, mask_method="wind", mask_wind_ms=12.0))
    assert 350 <= res.nodes["radius_km"].iloc[0] <= 600
    big = detect_tc(single(20.3, 140.2, rmw_km=160.0), config=TCConfig(stitch=False, mask_wind_ms=12.0))
    assert big.nodes["radius_km"].iloc[0] > res.nodes["radius_km"].iloc[0]
    # Gaussian deficit 3000 exp(-(r/300)^2) is within 500 Pa of the environment beyond r ~ 400 km
    res = detect_tc(single(20.3, 140.2), config=TCConfig(stitch=False, mask_method="psl", mask_dpsl_pa=500.0))
    assert 300 <= res.nodes["radius_km"].iloc[0] <= 500


def test_short_run_is_not_stitched_and_says_so():
    with pytest.warns(UserWarning, match="not stitched"):
        res = detect_tc(single(20.3, 140.2))
    assert not res.stitched and res.mask.values.sum() > 0


def test_bad_settings_and_missing_variables_are_named():
    with pytest.raises(ConfigError, match="closed_contour_radius_km"):
        TCConfig(closed_contour_radius_km=-1)
    with pytest.raises(ConfigError, match="mask_method"):
        TCConfig(mask_method="magic")
    with pytest.raises(ConfigError, match="bogus"):
        TCConfig.from_dict({"bogus": 1})
    with pytest.raises(DataError, match="T200"):
        detect_tc_nodes(single(20.3, 140.2).drop_vars("T200"), config=ONE_STEP)
    with pytest.raises(DataError, match="UBOT"):
        detect_tc_nodes(single(20.3, 140.2).drop_vars(["U850"]), config=ONE_STEP)


def test_numeric_time_needs_a_step():
    ds = moving_storm(3, 1.5)[0].assign_coords(time=[0, 1, 2])
    with pytest.raises(DataError, match="time_step_h"):
        detect_tc(ds, config=TCConfig(stitch=True))
    res = detect_tc(ds, config=TCConfig(stitch=True, time_step_h=6.0, min_duration_h=12.0))
    assert len(res.tracks) == 1 and res.tracks["duration_h"].iloc[0] == 12.0


def test_mask_of_given_nodes_snaps_to_the_nearest_cell():
    from climviz.labels import tc_mask

    like = single(20.3, 140.2)
    nodes = pd.DataFrame({"time_index": [0], "lat": [20.4], "lon": [-0.5], "radius_km": [1.0]})
    m = tc_mask(nodes, like).values[0]
    i, j = np.nonzero(m)
    assert (LAT[i].tolist(), LON[j].tolist()) == ([20.5], [0.0])  # -0.5 E is 359.5 E: nearest 0.0


def test_genesis_latitude_bound_drops_tracks_that_start_poleward():
    nodes = pd.DataFrame({
        "time_index": [0, 1, 2, 0, 1, 2], "time": pd.date_range("2000", periods=3, freq="6h").tolist() * 2,
        "lat": [15.0, 16.0, 17.0, 40.0, 39.0, 38.0], "lon": [150.0, 149.0, 148.0, 200.0, 199.0, 198.0],
        "psl_pa": 1e5, "max_wind_ms": 30.0,
    }).sort_values("time_index", kind="stable", ignore_index=True)
    hours = np.arange(3) * 6.0
    ids, tracks = stitch_nodes(nodes, hours, config=TCConfig(min_duration_h=0.0))
    assert len(tracks) == 2
    ids, tracks = stitch_nodes(nodes, hours, config=TCConfig(min_duration_h=0.0, genesis_max_abs_lat=35.0))
    assert len(tracks) == 1 and tracks["lat_start"].iloc[0] == 15.0
    assert (ids[nodes["lat"].to_numpy() > 35] == -1).all()


def test_coarse_grid_defaults_apply_only_to_2_degree_grids_without_a_config():
    from climviz.labels import COARSE_GRID
    from tests.labels.conftest import vortex_fields as vf

    lat, lon = grid(2.5, 2.5)
    f = vf(lat, lon, 18.75, 140.0, r_psl_km=500.0, rmw_km=250.0, r_warm_km=500.0)
    x = np.exp(-((lat[:, None] - 18.75) ** 2 + ((lon[None, :] - 140.0) * np.cos(np.deg2rad(18.75))) ** 2) / 20.0)
    f["Z200"] = 11800.0 + 150.0 * x  # a thick (warm) column over the storm
    f["Z1000"] = 100.0 - 150.0 * x
    ds = as_run([f], lat, lon)
    auto = detect_tc_nodes(ds, stitch=False)
    assert any("_DIFF(Z200,Z1000) falls by 18.8" in c for c in auto.attrs["criteria"])
    assert auto.attrs["config"]["thickness_vars"] == list(COARSE_GRID["thickness_vars"])
    plain = detect_tc_nodes(ds, config=TCConfig(stitch=False))  # a config given: no coarse-grid changes
    assert any("_AVG(T200,T500)" in c for c in plain.attrs["criteria"])
    assert len(auto) == 1 and len(plain) == 1


def test_stitch_nodes_names_missing_columns_and_short_hours():
    nodes = pd.DataFrame({"time_index": [0, 1], "lat": [10.0, 11.0], "lon": [100.0, 101.0]})
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['time', 'psl_pa', 'max_wind_ms'\]"):
        stitch_nodes(nodes, np.arange(2) * 6.0)
    nodes = nodes.assign(time=0, psl_pa=1e5, max_wind_ms=20.0)
    with pytest.raises(DataError, match="time_index values run from 0 to 1, but hours has 1 entries"):
        stitch_nodes(nodes, np.zeros(1))
