"""Track maps: seam splitting by hand, paths per class, genesis points with statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import climviz.viz as viz
from climviz.errors import DataError
from climviz.viz.track_maps import split_at_seam


@pytest.fixture
def track_rows() -> pd.DataFrame:
    """Two tracks: a TC moving west across the dateline, an AR moving east; 3-hourly."""
    t = pd.date_range("2000-01-01", periods=4, freq="3h")
    tc = pd.DataFrame({"time": t, "track_id": 7, "class": 1, "centroid_lat": [10.0, 12.0, 14.0, 16.0],
                       "centroid_lon": [-170.0 + 360, 178.0, 174.0, 170.0], "area_km2": [1e5, 2e5, 3e5, 2e5]})
    ar = pd.DataFrame({"time": t[:3], "track_id": 9, "class": 2, "centroid_lat": [40.0, 41.0, 42.0],
                       "centroid_lon": [200.0, 210.0, 220.0], "area_km2": [2e6, 3e6, 2.5e6]})
    return pd.concat([tc, ar], ignore_index=True)


def test_split_at_seam_interpolates_the_crossing():
    pieces = split_at_seam(np.array([170.0, 178.0, -176.0, -170.0]), np.array([10.0, 12.0, 14.0, 16.0]))
    assert len(pieces) == 2
    # From 178 to 184 (= -176) crosses 180 a third of the way: lat 12 + 2/6 * 2.
    assert pieces[0][-1].tolist() == pytest.approx([180.0, 12.0 + 2.0 / 3.0])
    assert pieces[1][0].tolist() == pytest.approx([-180.0, 12.0 + 2.0 / 3.0])
    assert pieces[1][-1].tolist() == pytest.approx([-170.0, 16.0])
    # Pacific-centred map: 0/360 is the seam; values are interpolated the same way.
    p2 = split_at_seam(np.array([358.0, 4.0]), np.array([0.0, 6.0]), center=180.0, values=np.array([1.0, 4.0]))
    assert p2[0][-1].tolist() == pytest.approx([180.0, 2.0, 2.0])
    # A path that never crosses stays whole.
    assert len(split_at_seam(np.array([10.0, 20.0, 30.0]), np.array([0.0, 1.0, 2.0]))) == 1


def test_tracks_from_rows_draw_paths_per_class_and_genesis_points(track_rows, bokeh):
    ov = viz.tracks(track_rows)
    els = {(e.group, e.label): e for e in ov}
    assert set(els) == {("Track", "TC"), ("Track", "AR"), ("Genesis", ""), ("Coastline", "")}
    tc = els[("Track", "TC")]
    # The TC path crosses the dateline once: two pieces, no segment jumps across the map.
    pieces = tc.split()
    assert len(pieces) == 2
    for p in pieces:
        assert np.all(np.abs(np.diff(p.dimension_values("x"))) < 180)
    gen = els[("Genesis", "")]
    g = gen.dframe().set_index("track_id")
    assert g.loc[7, "x"] == pytest.approx(-170.0) and g.loc[7, "y"] == pytest.approx(10.0)
    assert g.loc[9, "x"] == pytest.approx(-160.0) and g.loc[9, "y"] == pytest.approx(40.0)
    assert g.loc[7, "lifetime_h"] == pytest.approx(9.0)
    assert g.loc[9, "max_area_km2"] == pytest.approx(3e6)
    fig = bokeh.render(ov)
    hover = [t for t in fig.tools if type(t).__name__ == "HoverTool"][0]
    names = [n for n, _ in hover.tooltips]
    assert {"track", "class", "genesis", "lifetime", "largest area"} <= set(names)
    # Hover reads like the axes: °E/°W (track 7 starts at 190°E in the data, drawn at 170°W),
    # numbers with fixed decimals and units, never 1.213e+3.
    assert g.loc[7, "genesis_text"] == "10.0°N 170.0°W"
    assert g.loc[7, "lifetime_h_text"] == "9.0 h"
    assert g.loc[9, "max_area_km2_text"] == "3,000,000 km²"
    tips = dict(hover.tooltips)
    assert tips["genesis"] == "@genesis_text" and tips["lifetime"] == "@{lifetime_h_text}"
    assert [i.label.value for i in fig.legend[0].items] == ["TC", "AR"]
    assert fig.title.text == "Event tracks"


def test_tracks_coloured_by_intensity(track_rows, bokeh):
    ov = viz.tracks(track_rows, color="area_km2")
    path = [e for e in ov if e.group == "Track"][0]
    assert "area_km2" in [d.name for d in path.vdims]
    # One segment per step; its value is the mean of its two ends (AR: 2.5e6 and 2.75e6).
    ar = [p for p in path.split() if p.dimension_values("track_id")[0] == 9]
    assert sorted(p.dimension_values("area_km2")[0] for p in ar) == pytest.approx([2.5e6, 2.75e6])
    fig = bokeh.render(ov)
    assert any(type(r).__name__ == "ColorBar" for r in fig.right)


def test_tracks_from_a_summary_table(bokeh):
    summary = pd.DataFrame({"track_id": [1, 2], "class": [1, 2], "genesis_lat": [10.0, 40.0],
                            "genesis_lon": [140.0, 200.0], "lysis_lat": [30.0, 45.0],
                            "lysis_lon": [120.0, 230.0], "lifetime_h": [48.0, 24.0]})
    ov = viz.tracks(summary)
    paths = [e for e in ov if e.group == "Track"]
    tc = [p for p in paths if p.label == "TC"][0]
    assert tc.dimension_values("x").tolist() == [140.0, 120.0]
    bokeh.render(ov)


def test_bad_track_tables_are_clear_errors(track_rows):
    with pytest.raises(DataError, match="track_id"):
        viz.tracks(track_rows.drop(columns="track_id"))
    with pytest.raises(DataError, match="color='speed'"):
        viz.tracks(track_rows, color="speed")
    with pytest.raises(DataError, match="PlateCarree"):
        viz.tracks(track_rows, projection="Robinson")


def test_tracks_of_climviz_events_output(bokeh):
    # End to end with the events package: labels -> table -> track -> map.
    import climviz as cv
    from tests.viz.conftest import make_run

    run = make_run(nt=3)
    lab = cv.events.label(run["LABELS"])
    tab = cv.events.table(lab, run["LABELS"])
    trk = cv.events.track(tab, lab)
    ov = viz.tracks(trk)
    genesis = [e for e in ov if e.group == "Genesis"][0]
    assert len(genesis) == len(trk.tracks)
    tc = trk.events[trk.events["class"] == 1].sort_values("time")
    path = [e for e in ov if (e.group, e.label) == ("Track", "TC")][0]
    # The fixture TC moves one 7.5-degree cell east per step.
    assert np.allclose(np.diff(path.dimension_values("x")), 7.5)
    assert path.dimension_values("x")[0] == pytest.approx((tc["centroid_lon"].iloc[0] + 180) % 360 - 180)
    bokeh.render(ov)
