"""The explorer app: widgets drive the map and table; selecting an event shows its row and track."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import climviz.viz as viz
from climviz.errors import DataError
from tests.viz.conftest import NT


@pytest.fixture
def events(run) -> pd.DataFrame:
    """The fixture run's events by hand: the TC (track 1, moving east) and the AR (track 2) per step."""
    rows = []
    for t, time in enumerate(run.time.values):
        rows.append({"time": time, "event": 1, "class": 1, "centroid_lat": 22.5,
                     "centroid_lon": 82.5 + 7.5 * t, "area_km2": 1.0e6 + t, "track_id": 1})
        rows.append({"time": time, "event": 2, "class": 2, "centroid_lat": 41.25,
                     "centroid_lon": 356.25, "area_km2": 2.0e6, "track_id": 2})
    return pd.DataFrame(rows)


def image_values(app):
    img = [e for e in app.map_pane.object if e.group == "Image"][0]
    return img.dimension_values(img.vdims[0])


def test_widgets_change_map_and_table(run, events, bokeh):
    app = viz.explore(run, events=events)
    assert app.variable.options == ["TMQ", "PSL"]
    assert len(app.time.options) == NT
    assert len(app.table.value) == 2  # the TC and the AR at step 0
    v0 = image_values(app)
    app.time.value = 2
    assert not np.array_equal(v0, image_values(app))
    # TMQ rises by 10 per step in the fixture: the map shows exactly that.
    assert np.nanmean(image_values(app)) == pytest.approx(np.nanmean(v0) + 20.0, rel=1e-5)
    assert set(app.table.value["area_km2"]) == {1.0e6 + 2, 2.0e6}
    app.classes.value = 2
    assert app.table.value["class"].tolist() == ["AR"]  # shown by name, not 2
    assert {e.label for e in app.map_pane.object if e.group == "Mask"} == {"AR"}
    app.variable.value = "PSL"
    img = [e for e in app.map_pane.object if e.group == "Image"][0]
    assert img.vdims[0].name == "PSL"


def test_clicking_an_event_marker_shows_its_row_and_track(run, events, bokeh):
    app = viz.explore(run, events=events)
    app.time.value = 1
    pts = [e for e in app.map_pane.object if e.group == "Events"][0]
    tc_index = int(np.flatnonzero(pts.dimension_values("class") == 1)[0])
    # What a click on the map does: the Selection1D stream of the markers fires.
    app._selection.event(index=[tc_index])
    assert app.selected is not None and app.selected["class"] == 1
    assert app.selected["centroid_lon"] == pytest.approx(90.0)
    detail = app.detail.object
    assert detail.loc["area_km2", "selected event"] == pytest.approx(1.0e6 + 1)
    assert detail.loc["track: steps", "selected event"] == NT
    track = [e for e in app.map_pane.object if e.group == "SelectedTrack"][0]
    assert track.dimension_values("x").tolist() == pytest.approx([82.5, 90.0, 97.5])


def test_selecting_a_table_row_selects_the_event(run, events, bokeh):
    app = viz.explore(run, events=events)
    ar_pos = int(np.flatnonzero(app.table.value["class"].to_numpy() == "AR")[0])
    app.table.selection = [ar_pos]
    assert app.selected["class"] == 2
    track = [e for e in app.map_pane.object if e.group == "SelectedTrack"][0]
    # The AR sits at lon 356.25, i.e. x = -3.75 on the map, for all 3 steps.
    assert np.allclose(track.dimension_values("x"), -3.75)


def test_explorer_snapshot_exports_to_html(run, events, tmp_path, bokeh):
    app = viz.explore(run, events=events)
    app.select_event(0)
    out = viz.save_html(app, tmp_path / "explorer.html")
    html = out.read_text()
    assert "cdn.holoviz.org" not in html and "TMQ" in html


def test_explorer_errors(run, events):
    with pytest.raises(DataError, match="event table lacks columns \\['centroid_lat'\\]"):
        viz.explore(run, events=events.drop(columns="centroid_lat"))
    with pytest.raises(DataError, match="variable 'NOPE' not in the run"):
        viz.explore(run, variables=["NOPE"])
    app = viz.explore(run, events=events)
    with pytest.raises(DataError, match="no event row 99"):
        app.select_event(99)


def test_old_widget_name_cls_warns_and_is_the_classes_widget(run, events, bokeh):
    app = viz.explore(run, events=events)
    with pytest.warns(DeprecationWarning, match="Explorer.cls is deprecated, use 'classes'"):
        widget = app.cls
    assert widget is app.classes
    with pytest.warns(DeprecationWarning):
        app.cls.value = 2
    assert app.table.value["class"].tolist() == ["AR"]
