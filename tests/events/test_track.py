"""Tracking: moving, splitting and merging events built by hand, streaming == in-memory."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from climviz.errors import ConfigError, DataError
from climviz.events import label, table, track
from climviz.events.track import TrackConfig, track_masks

from .conftest import as_dataarray, regular_grid


@pytest.fixture
def scene():
    """Six 3-hourly steps on a 5-degree grid with four stories told by hand.

    * a river (class 2) drifting east one cell per step (overlaps 3 of 4 columns);
    * a one-cell cyclone (class 1) jumping one cell east per step (never overlaps);
    * two rivers that merge at step 3;
    * one river that splits into two at step 3.
    """
    lat, lon = regular_grid(36, 72)
    m = np.zeros((6, 36, 72), dtype=np.uint8)
    for t in range(6):
        m[t, 20:23, 10 + t:14 + t] = 2
        m[t, 10, 40 + t] = 1
    m[0:3, 5, 60:62] = 2
    m[0:3, 5, 64:66] = 2
    m[3:, 5, 60:66] = 2
    m[0:3, 28:31, 50:58] = 2
    m[3:, 28:31, 50:53] = 2
    m[3:, 28:31, 55:58] = 2
    return as_dataarray(m, lat, lon)


def _track_at(tr, step: int, lat_i: int, lon_i: int, labels) -> int:
    ev = int(labels[step, lat_i, lon_i])
    row = tr.events[(tr.events["step"] == step) & (tr.events["event"] == ev)]
    assert len(row) == 1
    return int(row["track_id"].iloc[0])


def test_moving_splitting_and_merging_events(scene):
    labels = label(scene)
    tab = table(labels, scene)
    tr = track(tab, labels)
    lab = labels.values
    mover = {_track_at(tr, t, 21, 11 + t, lab) for t in range(6)}
    assert len(mover) == 1  # one track, six steps
    cyclone = {_track_at(tr, t, 10, 40 + t, lab) for t in range(6)}
    assert len(cyclone) == 1  # linked by centroid distance, no overlap
    t_mover = tr.tracks.set_index("track_id").loc[mover.pop()]
    assert t_mover["n_steps"] == 6 and t_mover["lifetime_h"] == 15.0
    # independent path length: 5 steps of 5 degrees of longitude along the centroid latitude
    phi = math.radians(t_mover["genesis_lat"])
    step_km = 2 * 6371.0 * math.asin(math.cos(phi) * math.sin(math.radians(2.5)))
    assert t_mover["path_length_km"] == pytest.approx(5 * step_km, rel=1e-9)
    assert t_mover["genesis_lon"] == pytest.approx(57.5) and t_mover["lysis_lon"] == pytest.approx(82.5)

    # merge: two tracks before step 3, one after; the graph has one merge edge
    a, b = _track_at(tr, 2, 5, 60, lab), _track_at(tr, 2, 5, 64, lab)
    after = _track_at(tr, 3, 5, 62, lab)
    assert a != b and after in (a, b)
    merges = tr.edges[tr.edges["kind"] == "merge"]
    assert len(merges) == 1 and merges["step_to"].iloc[0] == 3
    ended = b if after == a else a
    assert tr.tracks.set_index("track_id").loc[ended, "fate"] == "merge"
    assert tr.tracks.set_index("track_id").loc[after, "n_merges_in"] == 1

    # split: one track before, two after; the new branch starts with origin "split"
    before = _track_at(tr, 2, 29, 50, lab)
    left, right = _track_at(tr, 3, 29, 50, lab), _track_at(tr, 3, 29, 56, lab)
    assert before in (left, right) and left != right
    branch = right if before == left else left
    splits = tr.edges[tr.edges["kind"] == "split"]
    assert len(splits) == 1 and splits["track_to"].iloc[0] == branch
    assert tr.tracks.set_index("track_id").loc[branch, "origin"] == "split"
    assert tr.tracks.set_index("track_id").loc[before, "n_splits_out"] == 1
    assert len(tr.tracks) == 6


def test_distance_fallback_can_be_switched_off_and_min_lifetime(scene):
    labels = label(scene)
    tab = table(labels, scene)
    tr = track(tab, labels, max_distance_km=None)
    cyclone_rows = tr.events[tr.events["class"] == 1]
    assert cyclone_rows["track_id"].nunique() == 6  # each step its own track
    long = track(tab, labels, max_distance_km=None, min_lifetime_h=9.0)
    assert (long.tracks["lifetime_h"] >= 9.0).all()
    assert (long.events["class"] == 1).sum() == 0
    assert set(long.events["track_id"]) == set(long.tracks["track_id"])
    assert len(track(tab, labels, min_steps=4).tracks) == 4


def test_fields_extremes_over_life(scene):
    psl = 101000.0 - 100.0 * scene["time"].dt.hour.astype(float) + 0.0 * scene
    labels = label(scene)
    tab = table(labels, scene, {"PSL": psl}, stats={"PSL": ["min", "mean"]})
    tr = track(tab, labels)
    t = tr.tracks.set_index("track_id")
    row = t.loc[_track_at(tr, 0, 21, 11, labels.values)]
    assert row["PSL_min"] == 101000.0 - 100.0 * 15  # the last step, hour 15
    assert row["PSL_mean"] == pytest.approx(101000.0, rel=1e-12)  # the largest mean over life, hour 0


def test_streaming_track_masks_equals_in_memory(scene):
    labels = label(scene)
    tab = table(labels, scene)
    ref = track(tab, labels)
    for chunks in (1, 4):
        streamed = track_masks(scene.chunk({"time": chunks}))
        pd.testing.assert_frame_equal(streamed.tracks, ref.tracks)
        pd.testing.assert_frame_equal(streamed.edges, ref.edges)
    blocks = track_masks(scene.values, lat=scene["lat"].values, lon=scene["lon"].values,
                         time=scene["time"].values, block_steps=2)
    pd.testing.assert_frame_equal(blocks.tracks, ref.tracks)


def test_without_labels_links_by_distance_only(scene):
    labels = label(scene)
    tab = table(labels, scene)
    tr = track(tab, max_distance_km=800.0)
    assert tr.events.loc[tr.events["class"] == 1, "track_id"].nunique() == 1


def test_bad_tracking_inputs():
    with pytest.raises(ConfigError, match="min_overlap"):
        TrackConfig(min_overlap=0.0)
    with pytest.raises(DataError, match="centroid_lat"):
        track(pd.DataFrame({"step": [0]}))


def test_overlap_areas_match_a_cell_by_cell_count(random_masks):
    """Run-interval overlaps against the plain per-cell definition, areas written out."""
    from climviz.events import label
    from climviz.events.track import overlaps

    lat, lon = regular_grid(*random_masks.shape[1:])
    labels = label(random_masks)
    got = overlaps(labels, lat=lat, lon=lon, block_steps=4)  # block edge inside the run
    dphi = 180.0 / random_masks.shape[1]
    row_area = np.array([6371.0**2 * math.radians(360.0 / random_masks.shape[2]) *
                         (math.sin(math.radians(-90 + dphi * (k + 1))) - math.sin(math.radians(-90 + dphi * k)))
                         for k in range(random_masks.shape[1])])
    expected = {}
    for t in range(random_masks.shape[0] - 1):
        a, b = labels[t], labels[t + 1]
        rows, cols = np.nonzero((a > 0) & (b > 0))
        for r, c in zip(rows, cols):
            k = (t, int(a[r, c]), int(b[r, c]))
            expected[k] = expected.get(k, 0.0) + row_area[r]
    assert len(got) == len(expected) > 0
    for r in got.to_dict("records"):
        assert r["overlap_km2"] == pytest.approx(expected[(r["step_from"], r["event_from"], r["event_to"])],
                                                 rel=1e-10)
