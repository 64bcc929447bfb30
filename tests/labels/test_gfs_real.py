"""The TC detector on a real forecast: GFS 2.5°, valid 2011-10-11 00Z, scored against IBTrACS.

At that time IBTrACS lists Hurricane Jova (2011279N10257, 16.8N 106.2W, 105 kt), Tropical
Storm Irwin (2011278N12248, 15.1N 116.5W, 35 kt), an East Pacific low (2011280N10268, 25 kt)
and a West Pacific depression (2011282N08136, 30 kt);
the vorticity test runs on 850 hPa absolute vorticity minus f (VORT850).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import climviz as cv
from climviz.events.best_track import match_best_track, read_ibtracs

ROOT = Path(__file__).resolve().parents[2]


def _real(name: str) -> Path:
    return ROOT / "data_samples" / "real" / name


@pytest.fixture(scope="module")
def gfs():
    return cv.open_run(_real("gfs_2011100800_f072_2p5deg.grb"), channels="available")


@pytest.fixture(scope="module")
def scored(gfs):
    nodes = cv.labels.detect_tc_nodes(gfs)
    best = read_ibtracs(_real("ibtracs_jtwc_2011-10.csv"))
    return nodes, match_best_track(nodes, best, radius_km=300.0, times=gfs["time"].values)


def test_jova_and_irwin_are_found_within_300_km(scored):
    nodes, m = scored
    hits = m.hits.set_index("track_id")
    assert {"2011279N10257", "2011278N12248"} <= set(hits.index)
    assert (hits["error_km"] <= 300.0).all()
    # Jova's forecast low (990 hPa) lies at 17.5N 255E on the 2.5 degree grid: from 16.8N 253.8E that is
    # 2 R asin(sqrt(sin^2(0.35 deg) + cos(16.8) cos(17.5) sin^2(0.6 deg))) = 149.4 km
    jova = hits.loc["2011279N10257"]
    assert (jova["det_lat"], jova["det_lon"]) == (17.5, 255.0)
    assert jova["error_km"] == pytest.approx(149.4, abs=0.5)
    assert jova["det_psl_pa"] < 99100.0


def test_nothing_poleward_of_35_degrees_that_ibtracs_does_not_list(scored):
    nodes, m = scored
    fa = m.false_alarms
    assert not (np.abs(fa["lat"]) > 35.0).any(), fa
    assert (np.abs(nodes["lat"]) <= 35.0).all()


def test_the_run_records_which_criteria_ran(gfs, scored):
    nodes, _ = scored
    crit = " | ".join(nodes.attrs["criteria"])
    assert "_CYC(VORT850)" in crit  # 850 hPa relative vorticity (VORT850 = absolute vorticity - f)
    assert "closed contour: PSL rises by 200" in crit
    assert "_DIFF(Z200,Z1000) falls by 18.8" in crit  # the coarse-grid warm core (COARSE_GRID)
    # the wind test runs exactly when the run has both 850 hPa wind components (cfgrib finds v in the
    # GRIB2 messages that pack u and v together)
    wind_ran = "threshold: max of _VECMAG(U850,V850)" in crit
    assert wind_ran == ("V850" in gfs.data_vars)
    assert wind_ran != any(s.startswith("wind speed") for s in nodes.attrs["skipped"])


def test_tc_events_of_the_label_run_mask_score_the_same(gfs):
    # the mask route: label_run's TC discs -> event table centroids -> the same two hits
    masks = cv.labels.label_run(gfs, ar=False)
    _, events = cv.events.label_table(masks["mask"])
    m = match_best_track(events, read_ibtracs(_real("ibtracs_jtwc_2011-10.csv")), times=gfs["time"].values)
    assert sorted(m.hits["track_id"]) == ["2011278N12248", "2011279N10257"]
    assert len(m.false_alarms) == 0 and (m.hits["error_km"] < 300.0).all()
