"""Tracking: moving, splitting and merging events built by hand, streaming == in-memory."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from climviz.errors import ConfigError, DataError
from climviz.events import label, table, track
from climviz.events.tracking import TrackConfig, track_masks

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
    # the mean over life (equal areas at every step): hours 0, 3, ..., 15 average to 7.5
    assert row["PSL_mean"] == pytest.approx(101000.0 - 100.0 * 7.5, rel=1e-12)


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
    from climviz.events.tracking import overlaps

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


R_KM = 6371.0


def _row_area(lat_s: float, lat_n: float, dlon: float) -> float:
    """Area (km²) of one cell between two latitudes, dlon degrees wide, written out."""
    return R_KM**2 * math.radians(dlon) * (math.sin(math.radians(lat_n)) - math.sin(math.radians(lat_s)))


def _tracks_of(m: np.ndarray, **kw):
    lat, lon = regular_grid(*m.shape[1:])
    return track_masks(as_dataarray(m, lat, lon), **kw)


def _tid(tr, step: int, lat_i: int, lon_i: int, m: np.ndarray) -> int:
    lab = label(m[step])
    return _track_at(tr, step, lat_i, lon_i, np.broadcast_to(lab, m.shape))


def test_a_split_continues_with_the_body_not_the_fragment_inside_the_parent():
    """A river breaks into a large body moving on and a small fragment left inside its old footprint.

    The fragment overlaps the parent entirely (100 % of the smaller event, the old score), the body
    only in part (140 of its 200 cells) but shares 140 cells against the fragment's 9: the track
    follows the body; the fragment is a branch with the body's track as parent.
    """
    m = np.zeros((4, 36, 72), dtype=np.uint8)  # 5-degree global grid
    m[0, 10:20, 10:30] = 2  # parent: 10 x 20 cells
    m[1, 10:20, 16:36] = 2  # body: moved 6 cells east, overlaps 10 x 14 cells of the parent
    m[1, 12:15, 10:13] = 2  # fragment: 3 x 3 cells, wholly inside the parent's footprint
    m[2, 10:20, 22:42] = 2
    m[2, 12:15, 10:13] = 2
    m[3, 10:20, 28:48] = 2
    tr = _tracks_of(m)
    lab = label(m)
    body = {_track_at(tr, t, 15, 10 + 6 * t + 1, lab) for t in range(4)}
    assert len(body) == 1
    b = tr.tracks.set_index("track_id").loc[body.pop()]
    assert b["n_steps"] == 4 and b["lifetime_h"] == 9.0 and b["origin"] == "genesis"
    # three equal steps of 6 x 5 degrees of longitude along the (constant) centroid latitude
    phi = math.radians(b["genesis_lat"])
    step_km = 2 * R_KM * math.asin(math.cos(phi) * math.sin(math.radians(15.0)))
    assert b["path_length_km"] == pytest.approx(3 * step_km, rel=1e-9)
    frag = tr.tracks.set_index("track_id").loc[_track_at(tr, 1, 13, 11, lab)]
    assert frag["origin"] == "split" and frag["n_steps"] == 2
    assert frag["parent_track"] == b.name
    split = tr.edges[tr.edges["kind"] == "split"]
    assert len(split) == 1 and split["overlap_km2"].iloc[0] == pytest.approx(
        3 * sum(_row_area(-90 + 5 * r, -85 + 5 * r, 5.0) for r in range(12, 15)), rel=1e-12)
    # the summary counts one river (the branch is part of it)
    s = cv_summarize(tr).set_index("class")
    assert s.loc[2, "n_tracks"] == 1 and s.loc[2, "n_branches"] == 1


def cv_summarize(tr):
    from climviz.events import summarize

    return summarize(tr)


def test_continue_by_overlap_area_or_by_overlap_over_union():
    """An event followed by a huge successor sharing 3 of its columns and a small one sharing 1.

    Shared area: the huge one (4 x 3 cells of the same rows) beats the small one (4 x 1); overlap
    over union: the small one (4 / (20 + 8 - 4) = 0.17) beats the huge one (12 / (20 + 360 - 12)
    = 0.03), counted in cells here and just as clear in km².
    """
    m = np.zeros((2, 36, 72), dtype=np.uint8)
    m[0, 16:20, 20:25] = 2  # 4 x 5 cells
    m[1, 6:26, 5:23] = 2  # huge: 20 x 18 cells, columns 5..22
    m[1, 16:20, 24:26] = 2  # small: 4 x 2 cells, columns 24..25 (column 23 free)
    lab = label(m)
    tr = _tracks_of(m)
    assert _track_at(tr, 0, 17, 21, lab) == _track_at(tr, 1, 10, 10, lab) != _track_at(tr, 1, 17, 25, lab)
    tr = _tracks_of(m, continue_by="iou")
    assert _track_at(tr, 0, 17, 21, lab) == _track_at(tr, 1, 17, 25, lab) != _track_at(tr, 1, 10, 10, lab)
    with pytest.raises(ConfigError, match="continue_by"):
        TrackConfig(continue_by="fraction")


def test_look_ahead_links_across_one_missing_step():
    """A river missing at step 2 and a one-cell cyclone missing at step 2, both back at step 3."""
    m = np.zeros((5, 36, 72), dtype=np.uint8)
    for t in (0, 1, 3, 4):
        m[t, 20:23, 10 + t:14 + t] = 2  # drifts one cell a step; steps 1 and 3 share 2 of 4 columns
        m[t, 10, 40 + 2 * t] = 1  # jumps two cells (10 degrees, 881 km at 37.5 S) a step
    lab = label(m)
    plain = _tracks_of(m)
    # without look-ahead: two river tracks, and (881 km > 600 km) four one-step cyclones
    assert plain.tracks.groupby("class").size().to_dict() == {1: 4, 2: 2}
    ahead = _tracks_of(m, max_gap_steps=1, max_distance_km=900.0)
    river = {_track_at(ahead, t, 21, 11 + t, lab) for t in (0, 1, 3, 4)}
    assert len(river) == 1
    row = ahead.tracks.set_index("track_id").loc[river.pop()]
    assert row["n_steps"] == 4 and row["lifetime_h"] == 12.0
    gap = ahead.edges[(ahead.edges["step_from"] == 1) & (ahead.edges["class"] == 2)]
    assert gap["step_to"].tolist() == [3] and gap["link"].tolist() == ["overlap"]
    # 2 x 3 overlap cells in rows 20..22 of the 5-degree grid
    assert gap["overlap_km2"].iloc[0] == pytest.approx(
        2 * sum(_row_area(-90 + 5 * r, -85 + 5 * r, 5.0) for r in range(20, 23)), rel=1e-12)
    # the cyclone: consecutive links by distance (881 km <= 900 km), the gap (1757 km, written out)
    # by distance with the allowance doubled for the two steps spanned
    one = 2 * R_KM * math.asin(math.cos(math.radians(37.5)) * math.sin(math.radians(5.0)))
    two = 2 * R_KM * math.asin(math.cos(math.radians(37.5)) * math.sin(math.radians(10.0)))
    assert 880 < one < 900 and 1750 < two < 1800
    cyc = {_track_at(ahead, t, 10, 40 + 2 * t, lab) for t in (0, 1, 3, 4)}
    assert len(cyc) == 1
    gap = ahead.edges[(ahead.edges["step_from"] == 1) & (ahead.edges["class"] == 1)]
    assert gap["step_to"].tolist() == [3] and gap["link"].tolist() == ["distance"]
    assert gap["distance_km"].iloc[0] == pytest.approx(two, rel=1e-9)
    # an allowance of 880 km links neither the steps nor the gap (1760 km < 1757 km is false)
    assert len(_tracks_of(m, max_gap_steps=1, max_distance_km=878.0).tracks.query("`class` == 1")) == 4
    # in memory, and streamed one step at a time (two steps carried between blocks), alike
    lat, lon = regular_grid(36, 72)
    da = as_dataarray(m, lat, lon)
    tab = table(lab, m, lat=lat, lon=lon, time=da["time"].values)
    mem = track(tab, lab, lat=lat, lon=lon, max_gap_steps=1, max_distance_km=900.0)
    pd.testing.assert_frame_equal(mem.tracks, ahead.tracks)
    pd.testing.assert_frame_equal(mem.edges, ahead.edges)
    for steps in (1, 2):
        streamed = track_masks(da.chunk({"time": steps}), max_gap_steps=1, max_distance_km=900.0)
        pd.testing.assert_frame_equal(streamed.edges, ahead.edges)
    with pytest.raises(ConfigError, match="max_gap_steps"):
        TrackConfig(max_gap_steps=-1)


def test_overlap_thresholds_of_the_earlier_and_the_later_event():
    """A 4 x 5 event inside a 12 x 20 successor: 100 % of the earlier, 20 / 240 of the later event."""
    m = np.zeros((2, 36, 72), dtype=np.uint8)
    m[0, 16:20, 20:25] = 2
    m[1, 12:24, 12:32] = 2
    assert len(_tracks_of(m).tracks) == 1
    assert len(_tracks_of(m, min_overlap_prev=1.0).tracks) == 1
    assert len(_tracks_of(m, min_overlap_next=0.05).tracks) == 1  # 20 of 240 cells, rows differ
    assert len(_tracks_of(m, min_overlap_next=0.2).tracks) == 2
    with pytest.raises(ConfigError, match="min_overlap_next"):
        TrackConfig(min_overlap_next=1.5)


def test_minimum_duration_as_a_time_span(scene):
    labels = label(scene)
    tab = table(labels, scene)
    hours = track(tab, labels, max_distance_km=None, min_lifetime_h=9.0)
    span = track(tab, labels, max_distance_km=None, min_lifetime_h="9h")
    pd.testing.assert_frame_equal(hours.tracks, span.tracks)
    assert TrackConfig(min_lifetime_h="1D").min_lifetime_h == 24.0
    with pytest.raises(ConfigError, match="min_lifetime_h"):
        TrackConfig(min_lifetime_h="soon")


def test_track_columns_aggregate_as_named():
    """X_min / X_max / X_mean / X_sum / X_integral_* over a track, against sums written out.

    A river grows from 1 to 3 rows over three steps; the field is v_t = 10, 20, 60 at step t
    everywhere, except one cell per step holding v_t - 5 (minimum) and one v_t + 7 (maximum).
    """
    lat, lon = regular_grid(36, 72)
    m = np.zeros((3, 36, 72), dtype=np.uint8)
    f = np.zeros((3, 36, 72))
    v = [10.0, 20.0, 60.0]
    for t in range(3):
        m[t, 20:21 + t, 30:34] = 2
        f[t] = v[t]
        f[t, 20, 30] = v[t] - 5
        f[t, 20, 31] = v[t] + 7
    da = as_dataarray(m, lat, lon)
    fld = as_dataarray(f, lat, lon).astype(float)
    labels = label(da)
    tab = table(labels, da, {"F": fld}, stats=["min", "max", "mean", "sum", "integral"])
    tr = track(tab, labels)
    assert len(tr.tracks) == 1
    row = tr.tracks.iloc[0]
    rows = [_row_area(-90 + 5 * r, -85 + 5 * r, 5.0) for r in range(36)]
    areas = [4 * sum(rows[20:21 + t]) for t in range(3)]
    # per-step area-weighted means and sums of cell values, written out
    means, sums, integrals = [], [], []
    for t in range(3):
        vals = {(r, c): f[t, r, c] for r in range(20, 21 + t) for c in range(30, 34)}
        integrals.append(sum(val * rows[r] for (r, _), val in vals.items()))
        means.append(integrals[-1] / areas[t])
        sums.append(sum(vals.values()))
    assert row["F_min"] == 5.0  # step 0: 10 - 5
    assert row["F_max"] == 67.0  # step 2: 60 + 7
    assert row["F_mean"] == pytest.approx(sum(a * x for a, x in zip(areas, means)) / sum(areas), rel=1e-12)
    # the area-weighted mean over the track's steps is the mean over all its cells
    assert row["F_mean"] == pytest.approx(sum(integrals) / sum(areas), rel=1e-12)
    assert row["F_sum"] == pytest.approx(sum(sums), rel=1e-12)
    assert row["F_integral_mean"] == pytest.approx(np.mean(integrals), rel=1e-12)
    assert row["F_integral_max"] == pytest.approx(max(integrals), rel=1e-12)
    assert "F_integral" not in tr.tracks.columns
    from climviz.events.tracking import TRACK_COLUMNS

    assert list(tr.tracks.columns[: len(TRACK_COLUMNS)]) == list(TRACK_COLUMNS)


def test_track_config_is_validated_from_field_metadata():
    """Every TrackConfig field states its check in its metadata (climviz._fields.spec); messages name the field."""
    import dataclasses

    from climviz._fields import validate

    fields = dataclasses.fields(TrackConfig)
    assert all(f.metadata.get("climviz_check") for f in fields), [f.name for f in fields if not f.metadata]
    cfg = TrackConfig()
    cfg.min_steps = 0  # set after construction: the shared validator catches it
    with pytest.raises(ConfigError, match=r"^min_steps: expected >= 1, found 0$"):
        validate(cfg)
    with pytest.raises(ConfigError, match=r"^max_distance_km: expected >= 0 or None, found -5$"):
        TrackConfig(max_distance_km=-5)
    assert TrackConfig(max_gap_steps=2.0, distance_classes=[2, 1.0]).max_gap_steps == 2
    assert TrackConfig(distance_classes=[2, 1.0]).distance_classes == (2, 1)


def test_distance_classes_take_class_names(scene):
    assert TrackConfig(distance_classes="tc").distance_classes == (1,)
    assert TrackConfig(distance_classes=["TC", "ar"]).distance_classes == (1, 2)
    with pytest.raises(ConfigError, match=r"^distance_classes: expected .*found 'hurricane'$"):
        TrackConfig(distance_classes=["hurricane"])
    labels = label(scene)
    tab = table(labels, scene)
    by_name = track(tab, labels, config=TrackConfig(distance_classes="tc"))
    by_number = track(tab, labels, distance_classes=(1,))
    pd.testing.assert_frame_equal(by_name.tracks, by_number.tracks)
    pd.testing.assert_frame_equal(by_name.edges, by_number.edges)
    # the jumping one-cell cyclone is one track only through the distance fallback
    cyclone = by_name.events[by_name.events["class"] == 1]
    assert cyclone["track_id"].nunique() == 1 and len(cyclone) == 6
