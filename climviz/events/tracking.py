"""Tracking events through time: overlap links, a centroid-distance fallback, and a track graph.

Events of the same class in consecutive time steps are linked when they
overlap by at least ``min_overlap`` of the smaller event's area (and, if set,
``min_overlap_prev`` / ``min_overlap_next`` of the earlier / later event's
area, as TempestExtremes StitchBlobs). Small fast cyclones that moved off
their previous footprint are linked by the distance between centroids
(``max_distance_km``, one-to-one, nearest first). With ``max_gap_steps`` an
event that vanishes for a step is linked across the gap (ClimateNet's
look-ahead).

A track continues through a link when each end is the other's strongest
link: by default the one sharing the most area (km²), so where an event
splits the track follows the larger body, not a fragment that happens to lie
wholly inside the parent's footprint (``continue_by="iou"`` uses overlap over
union instead). All other links are kept in the graph as ``split`` (one
event feeds several) or ``merge`` (several feed one) edges, so merges and
splits are explicit, never silently dropped; a track born from a split
records its ``parent_track``.

Labels are read one time block at a time (dask chunks or in-memory blocks),
keeping only the last step of the previous block, so memory stays bounded
for long runs; :func:`track_masks` labels, tabulates and links in that one
streaming pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd

from climviz._compat import class_id, is_one_class
from climviz._fields import spec, validate
from climviz.errors import ConfigError, DataError
from climviz.events.geometry import EARTH_RADIUS_KM, great_circle_km
from climviz.events.labelling import Geo, LabelOptions, Runs, _label_block, find_runs, resolve_periodic

__all__ = ["TrackConfig", "Tracks", "track", "track_masks", "overlaps", "TRACK_COLUMNS", "TRACK_FIELD_COLUMNS"]

#: How a track continues where events split or merge (see :class:`TrackConfig`).
ContinueBy = Literal["overlap_km2", "iou"]

EDGE_COLUMNS = ("step_from", "event_from", "step_to", "event_to", "class", "overlap_km2",
                "overlap_frac", "overlap_iou", "distance_km", "link", "kind", "track_from", "track_to")


@dataclass(frozen=True)
class _Check:
    """A :class:`TrackConfig` field check: ``"<field>: expected <expected>, found <value>"`` unless ``ok(value)``.

    ``convert`` (e.g. ``int``) is applied to the value once it passed; ``show``
    formats the value in the message (``str`` or ``repr``).
    """

    expected: str
    ok: Callable[[Any], bool]
    convert: Callable[[Any], Any] | None = None
    show: Callable[[Any], str] = str

    def __call__(self, obj: Any, name: str) -> None:
        v = getattr(obj, name)
        try:
            good = bool(self.ok(v))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ConfigError(f"{name}: expected {self.expected}, found {self.show(v)}")
        if self.convert is not None:
            setattr(obj, name, self.convert(v))


def _span_hours(obj: Any, name: str) -> None:
    """A number of hours, or a time span (``"24h"``, ``"2D"``, a timedelta) converted to hours (float)."""
    v = getattr(obj, name)
    if not isinstance(v, (int, float, np.integer, np.floating)):
        try:
            v = pd.Timedelta(v).total_seconds() / 3600.0
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name}: expected hours or a time span such as '24h', found {v!r}") from exc
    setattr(obj, name, float(v))


def _int_tuple(obj: Any, name: str) -> None:
    """Stored as a tuple of ints; one class or several, as numbers or names (``"tc"``)."""
    v = getattr(obj, name)
    if is_one_class(v):
        v = (v,)
    setattr(obj, name, tuple(class_id(c, name) if isinstance(c, str) else int(c) for c in v))


@dataclass
class TrackConfig:
    """How events are linked into tracks.

    Attributes
    ----------
    min_overlap
        Link two events if their overlap area is at least this fraction of the
        smaller event's area (0 < value <= 1).
    min_overlap_prev, min_overlap_next
        Also require the overlap to be at least this fraction of the earlier
        (``prev``) / later (``next``) event's area (0 <= value <= 1; 0 = no
        condition). These are TempestExtremes StitchBlobs' ``--min_overlap_prev``
        and ``--min_overlap_next`` (given there in percent).
    continue_by
        Which link continues a track where an event splits or merges:
        ``"overlap_km2"`` (default: the piece sharing the most area with its
        predecessor, so a body continues and a small fragment inside the
        parent's footprint branches off) or ``"iou"`` (the largest overlap over
        union, which also penalises a successor much larger than its
        predecessor). A link continues when each end is the other's best link
        by this score (mutual best); overlap links always beat distance links.
    max_distance_km
        Centroid-distance fallback (km) for events of ``distance_classes`` that
        found no overlap link; None disables it. Across a missing step (see
        ``max_gap_steps``) the allowance grows with the steps spanned.
    distance_classes
        Classes that may use the distance fallback (default: tropical cyclones),
        as numbers or names (``"tc"``).
    max_gap_steps
        Look-ahead: link an event that has no successor to one ``gap + 1``
        steps later that has no predecessor, for gaps of 1..``max_gap_steps``
        missing steps (by overlap, else by distance for ``distance_classes``).
        0 (default) links consecutive steps only; 1 is ClimateNet's
        ``future_lookup_range=2``-style bridging of one missing step.
    min_steps
        Drop tracks present in fewer time steps.
    min_lifetime_h
        Minimum duration: drop tracks whose ``lifetime_h`` (end - start, hours)
        is shorter. A number of hours, or a time span such as ``"24h"``,
        ``"2D"`` or a ``datetime.timedelta`` (converted to hours).

    Examples
    --------
    >>> from climviz.events import TrackConfig
    >>> cfg = TrackConfig(min_lifetime_h="1D", distance_classes="tc", max_gap_steps=1)
    >>> cfg.min_lifetime_h, cfg.distance_classes
    (24.0, (1,))
    >>> TrackConfig(min_overlap=0)
    Traceback (most recent call last):
        ...
    climviz.errors.ConfigError: min_overlap: expected a fraction in (0, 1], found 0
    """

    min_overlap: float = field(default=0.1, metadata=spec(_Check("a fraction in (0, 1]", lambda v: 0 < v <= 1)))
    max_distance_km: float | None = field(default=600.0, metadata=spec(
        _Check(">= 0 or None", lambda v: v is None or not v < 0)))
    distance_classes: tuple[int, ...] = field(default=(1,), metadata=spec(_int_tuple))
    min_steps: int = field(default=1, metadata=spec(_Check(">= 1", lambda v: not v < 1)))
    min_lifetime_h: float = field(default=0.0, metadata=spec(_span_hours, _Check(">= 0", lambda v: v >= 0)))
    min_overlap_prev: float = field(default=0.0, metadata=spec(_Check("a fraction in [0, 1]", lambda v: 0 <= v <= 1)))
    min_overlap_next: float = field(default=0.0, metadata=spec(_Check("a fraction in [0, 1]", lambda v: 0 <= v <= 1)))
    continue_by: ContinueBy = field(default="overlap_km2", metadata=spec(
        _Check("'overlap_km2' or 'iou'", lambda v: v in ("overlap_km2", "iou"), show=repr)))
    max_gap_steps: int = field(default=0, metadata=spec(
        _Check("an integer >= 0", lambda v: int(v) == v and v >= 0, convert=int)))

    def __post_init__(self) -> None:
        validate(self)  # the checks in the fields' metadata, in field order (climviz._fields)


@dataclass
class Tracks:
    """Result of :func:`track`.

    Attributes
    ----------
    tracks
        One row per track: the columns of :data:`TRACK_COLUMNS` (``track_id,
        class, start, end, start_step, end_step, n_steps, lifetime_h,
        genesis_lat, genesis_lon, lysis_lat, lysis_lon, path_length_km,
        max_area_km2, mean_area_km2, origin ("genesis" | "split"), fate
        ("lysis" | "merge"), n_merges_in, n_splits_out, parent_track``), then
        the event table's field statistics aggregated over the track as
        their names say (:data:`TRACK_FIELD_COLUMNS`): ``X_min`` is the
        minimum over the track, ``X_max`` the maximum, ``X_mean`` the mean
        over the track's steps weighted by event area (so the area-weighted
        mean over all the track's cells), ``X_sum`` the sum over the steps,
        ``X_integral_mean`` / ``X_integral_max`` the mean / maximum over the
        steps of the per-step area integral.
    events
        The event table with a ``track_id`` column (events of dropped tracks removed).
    edges
        The track graph: every link between events of consecutive steps (or
        across missing steps, ``step_to - step_from > 1``): ``overlap_km2``,
        ``overlap_frac`` (of the smaller event), ``overlap_iou`` (overlap over
        union), centroid ``distance_km``, ``link`` ("overlap" | "distance"),
        ``kind`` ("continue" | "split" | "merge") and the tracks at both ends.
    config
        The :class:`TrackConfig` used.
    """

    tracks: pd.DataFrame
    events: pd.DataFrame
    edges: pd.DataFrame
    config: TrackConfig = field(default_factory=TrackConfig)

    def __len__(self) -> int:
        return len(self.tracks)

    def __repr__(self) -> str:
        return (f"Tracks({len(self.tracks)} tracks, {len(self.events)} events, "
                f"{len(self.edges)} edges)")


# --------------------------------------------------------------------------- overlaps

def _empty_overlaps(with_step_to: bool = False) -> dict[str, np.ndarray]:
    z = np.zeros(0, dtype=np.int64)
    out: dict[str, np.ndarray] = {"step_from": z, "event_from": z.astype(np.int32),
                                  "event_to": z.astype(np.int32), "overlap_km2": np.zeros(0)}
    if with_step_to:
        out["step_to"] = z.copy()
    return out


def _run_overlaps(step: np.ndarray, pos: np.ndarray, length: np.ndarray, ids: np.ndarray,
                  HW: int, W: int, geo: Geo, lag: int = 1, first_to: int | None = None
                  ) -> dict[str, np.ndarray]:
    """Overlap areas between events ``lag`` steps apart, from runs sorted by (step, pos).

    A run of step t covers cells ``pos .. pos + length - 1`` of its row; the
    runs of step t + lag meeting the same cells are found with two
    ``np.searchsorted`` calls on the global keys ``step * HW + pos``; the overlap
    of two runs is an interval intersection within one row, whose area is a
    difference of cumulative column widths. Cost O(runs), not O(cells).
    Only pairs whose later step is ``>= first_to`` are kept (when given).
    """
    if step.size == 0:
        return _empty_overlaps(True)
    key = step * HW + pos
    key_end = key + length
    lo = key + lag * HW
    hi = key_end + lag * HW - 1
    jlo = np.searchsorted(key_end, lo, side="right")
    jhi = np.searchsorted(key, hi, side="right")
    cnt = np.maximum(jhi - jlo, 0)
    total = int(cnt.sum())
    if total == 0:
        return _empty_overlaps(True)
    i = np.repeat(np.arange(step.size), cnt)
    j = np.repeat(jlo, cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    if first_to is not None:
        sel = step[j] >= first_to
        i, j = i[sel], j[sel]
        if i.size == 0:
            return _empty_overlaps(True)
    row = pos[i] // W
    c0 = np.maximum(pos[i], pos[j]) - row * W
    c1 = np.minimum(pos[i] + length[i], pos[j] + length[j]) - row * W
    area = geo.rows[row] * (geo.cw[c1] - geo.cw[c0])
    K = int(ids.max()) + 1
    pair = (step[i] * K + ids[i]) * K + ids[j]
    uniq, inv = np.unique(pair, return_inverse=True)
    tot = np.bincount(inv, weights=area)
    st = uniq // (K * K)
    rem = uniq - st * K * K
    return {"step_from": st, "event_from": (rem // K).astype(np.int32), "event_to": (rem % K).astype(np.int32),
            "overlap_km2": tot, "step_to": st + lag}


class _OverlapStream:
    """Feeds runs of labelled blocks in time order; collects overlaps of steps 1..max_lag apart.

    Only the runs of the last ``max_lag`` steps before the block are carried over.
    """

    def __init__(self, geo: Geo, max_lag: int = 1) -> None:
        self.geo = geo
        self.max_lag = int(max_lag)
        self.carry: tuple[np.ndarray, ...] | None = None
        self.parts: list[dict[str, np.ndarray]] = []

    def add_runs(self, runs: Runs, step0: int) -> None:
        T, H, W = runs.shape
        if T == 0:
            return
        HW = H * W
        local = runs.start // HW
        step = local + step0
        pos = runs.start - local * HW
        arrays = (step, pos, runs.length.astype(np.int64), runs.ids.astype(np.int64))
        if self.carry is not None:
            c_step, c_pos, c_len, c_ids = (np.concatenate([c, a]) for c, a in zip(self.carry, arrays))
            arrays = (c_step, c_pos, c_len, c_ids)
        for lag in range(1, self.max_lag + 1):
            self.parts.append(_run_overlaps(*arrays, HW=HW, W=W, geo=self.geo, lag=lag, first_to=step0))
        last = step0 + T - 1
        keep = arrays[0] > last - self.max_lag
        self.carry = tuple(a[keep] for a in arrays)

    def add_labels(self, block: np.ndarray, step0: int) -> None:
        flat = block.reshape(-1)
        self.add_runs(find_runs(flat, flat, block.shape[2], block.shape, labels_follow_mask=True), step0)

    def frame(self) -> pd.DataFrame:
        parts = [p for p in self.parts if p["step_from"].size] or [_empty_overlaps(True)]
        df = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
        df = df.sort_values(["step_from", "step_to", "event_from", "event_to"], kind="stable")
        cols = ["step_from", "event_from", "event_to", "overlap_km2"]
        if self.max_lag > 1:
            cols.insert(1, "step_to")
        return df[cols].reset_index(drop=True)


def overlaps(labels: Any, *, lat: Any = None, lon: Any = None, radius_km: float = EARTH_RADIUS_KM,
             block_steps: int | None = None, max_lag: int = 1) -> pd.DataFrame:
    """Overlap areas (km²) between events of consecutive time steps.

    Parameters
    ----------
    labels
        Event ids (time, lat, lon) from :func:`climviz.events.label`: numpy
        (then give ``lat``/``lon``) or an xarray DataArray (numpy or dask; read
        one time block at a time).
    max_lag
        Also pair events up to this many steps apart (2: across one missing step).

    Returns
    -------
    pandas.DataFrame
        ``step_from, event_from, event_to, overlap_km2``; ``step_to = step_from + 1``
        (with ``max_lag > 1`` a ``step_to`` column says which step).

    Examples
    --------
    A 2 x 2-cell event moving one cell east shares half its area with its successor:

    >>> import numpy as np
    >>> from climviz.events import label, overlaps
    >>> lat, lon = np.linspace(-85, 85, 18), np.arange(0, 360, 10.0)
    >>> masks = np.zeros((2, 18, 36), dtype=np.uint8)
    >>> masks[0, 8:10, 5:7] = masks[1, 8:10, 6:8] = 1
    >>> ov = overlaps(label(masks, lat=lat, lon=lon), lat=lat, lon=lon)
    >>> ov[["step_from", "event_from", "event_to"]].values.tolist()
    [[0, 1, 1]]
    >>> from climviz.events import cell_areas
    >>> bool(np.isclose(ov["overlap_km2"].iloc[0], cell_areas(lat, lon)[8:10, 6].sum()))
    True
    """
    from climviz.events._source import MaskSource

    src = MaskSource.from_any(labels, None, lat=lat, lon=lon, name="labels")
    geo = Geo.of(src.lat, src.lon, radius_km)
    if int(max_lag) < 1:
        raise ConfigError(f"max_lag: expected an integer >= 1, found {max_lag}")
    stream = _OverlapStream(geo, int(max_lag))
    for sl in src.slices(block_steps):
        block = np.asarray(src._get(src.mask, sl))
        if not np.issubdtype(block.dtype, np.integer):
            raise DataError(f"labels: expected integer event ids, found dtype {block.dtype}")
        stream.add_labels(block, sl.start)
    return stream.frame()


# --------------------------------------------------------------------------- linking

def _hours(times: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_datetime64_any_dtype(times):
        return (times - times.iloc[0]).dt.total_seconds().to_numpy() / 3600.0 if len(times) else np.zeros(0)
    try:  # cftime objects
        import cftime  # noqa: F401

        if len(times) and hasattr(times.iloc[0], "calendar"):
            t0 = times.iloc[0]
            return np.array([(t - t0).total_seconds() / 3600.0 for t in times])
    except ImportError:  # pragma: no cover - cftime comes with netCDF4
        pass
    return None


def _distance_links(ea: pd.DataFrame, eb: pd.DataFrame, free_a: np.ndarray, free_b: np.ndarray, lag: int,
                    max_km: float, radius_km: float) -> pd.DataFrame:
    """One-to-one, nearest-first centroid-distance links from ``ea`` rows to ``eb`` rows ``lag`` steps later."""
    fa = ea.loc[free_a]
    fb = eb.loc[free_b]
    pairs = fa.assign(step_to=fa["step"] + lag).rename(
        columns={"step": "step_from", "event": "event_from"}).merge(
        fb.rename(columns={"step": "step_to", "event": "event_to"}), on="step_to")
    pairs = pairs[pairs["class_a"] == pairs["class_b"]]
    if not len(pairs):
        return pairs.assign(distance_km=np.zeros(0))
    d = great_circle_km(pairs["centroid_lat_a"].to_numpy(), pairs["centroid_lon_a"].to_numpy(),
                        pairs["centroid_lat_b"].to_numpy(), pairs["centroid_lon_b"].to_numpy(), radius_km)
    pairs = pairs.assign(distance_km=d)
    pairs = pairs[pairs["distance_km"] <= max_km].sort_values(
        ["distance_km", "step_from", "event_from", "event_to"], kind="stable")
    used_a: set[tuple[int, int]] = set()
    used_b: set[tuple[int, int]] = set()
    keep = []
    for i, sa, a, b in zip(pairs.index, pairs["step_from"], pairs["event_from"], pairs["event_to"]):
        ka, kb = (int(sa), int(a)), (int(sa) + lag, int(b))
        if ka in used_a or kb in used_b:
            continue
        used_a.add(ka)
        used_b.add(kb)
        keep.append(i)
    return pairs.loc[keep]


def _overlap_links(ov: pd.DataFrame, ea: pd.DataFrame, eb: pd.DataFrame, cfg: TrackConfig) -> pd.DataFrame:
    """Overlaps between events of one class that pass ``min_overlap``, ``min_overlap_prev`` and ``_next``."""
    if "step_to" not in ov.columns:
        ov = ov.assign(step_to=ov["step_from"] + 1)
    e = ov.merge(ea.rename(columns={"step": "step_from", "event": "event_from"}), on=["step_from", "event_from"])
    e = e.merge(eb.rename(columns={"step": "step_to", "event": "event_to"}), on=["step_to", "event_to"])
    e = e[e["class_a"] == e["class_b"]]
    a_area, b_area, ovl = e["area_km2_a"], e["area_km2_b"], e["overlap_km2"]
    e = e.assign(overlap_frac=ovl / np.minimum(a_area, b_area), overlap_iou=ovl / (a_area + b_area - ovl))
    tol = 1e-12
    ok = ((e["overlap_frac"] >= cfg.min_overlap - tol) & (ovl >= cfg.min_overlap_prev * a_area * (1 - tol))
          & (ovl >= cfg.min_overlap_next * b_area * (1 - tol)))
    return e[ok].assign(link="overlap")


def _link(events: pd.DataFrame, ov: pd.DataFrame, cfg: TrackConfig, radius_km: float) -> pd.DataFrame:
    """Edges between events (overlap links + distance fallback, then links across missing steps).

    1. Overlap links between consecutive steps that pass the thresholds
       (``min_overlap`` of the smaller, ``min_overlap_prev`` of the earlier and
       ``min_overlap_next`` of the later event).
    2. Distance links (one-to-one, nearest first) between consecutive events
       of ``distance_classes`` left without an overlap link on that side.
    3. With ``max_gap_steps``: for gaps of 1, 2, ... missing steps, events
       still without a successor are linked to events without a predecessor
       ``gap + 1`` steps later, by overlap (same thresholds), else by distance
       (``max_distance_km`` times the steps spanned).
    """
    ev = events[["step", "event", "class", "area_km2", "centroid_lat", "centroid_lon"]]
    ea = ev.rename(columns=lambda c: c + "_a" if c not in ("step", "event") else c)
    eb = ev.rename(columns=lambda c: c + "_b" if c not in ("step", "event") else c)
    e = _overlap_links(ov, ea, eb, cfg)
    lag = e["step_to"] - e["step_from"]
    gap_edges = e[lag > 1]
    e = e[lag == 1]
    cols = ["step_from", "event_from", "step_to", "event_to", "class_a", "overlap_km2", "overlap_frac",
            "overlap_iou", "distance_km", "link", "centroid_lat_a", "centroid_lon_a", "centroid_lat_b",
            "centroid_lon_b"]
    e = e.assign(distance_km=np.nan)
    parts = [e[cols]]
    node_idx = pd.MultiIndex.from_arrays([ev["step"], ev["event"]])
    dist_ok = ev["class"].isin(cfg.distance_classes).to_numpy()

    def linked(frames: list[pd.DataFrame], side: str) -> np.ndarray:
        if side == "from":
            keys = [pd.MultiIndex.from_arrays([f["step_from"], f["event_from"]]) for f in frames if len(f)]
        else:
            keys = [pd.MultiIndex.from_arrays([f["step_to"], f["event_to"]]) for f in frames if len(f)]
        if not keys:
            return np.zeros(len(ev), dtype=bool)
        return np.asarray(node_idx.isin(keys[0].append(keys[1:]) if len(keys) > 1 else keys[0]))

    def add_distance(lag: int) -> None:
        if cfg.max_distance_km is None or not cfg.distance_classes or not len(ev):
            return
        free_a = ev.index[dist_ok & ~linked(parts, "from")]
        free_b = ev.index[dist_ok & ~linked(parts, "to")]
        d = _distance_links(ea, eb, free_a, free_b, lag, cfg.max_distance_km * lag, radius_km)
        if len(d):
            parts.append(d.assign(overlap_km2=0.0, overlap_frac=0.0, overlap_iou=0.0, link="distance")[cols])

    add_distance(1)
    for gap in range(1, cfg.max_gap_steps + 1):
        g = gap_edges[(gap_edges["step_to"] - gap_edges["step_from"]) == gap + 1]
        if len(g):
            no_out = ~linked(parts, "from")
            no_in = ~linked(parts, "to")
            ka = pd.MultiIndex.from_arrays([g["step_from"], g["event_from"]])
            kb = pd.MultiIndex.from_arrays([g["step_to"], g["event_to"]])
            sel = ka.isin(node_idx[no_out]) & kb.isin(node_idx[no_in])
            parts.append(g[sel].assign(distance_km=np.nan)[cols])
        add_distance(gap + 1)

    e = pd.concat(parts, ignore_index=True)
    miss = e["distance_km"].isna()
    if miss.any():
        e.loc[miss, "distance_km"] = great_circle_km(
            e.loc[miss, "centroid_lat_a"].to_numpy(), e.loc[miss, "centroid_lon_a"].to_numpy(),
            e.loc[miss, "centroid_lat_b"].to_numpy(), e.loc[miss, "centroid_lon_b"].to_numpy(), radius_km)
    e = e.rename(columns={"class_a": "class"})
    e = e.sort_values(["step_from", "step_to", "event_from", "event_to"], kind="stable")
    return e[["step_from", "event_from", "step_to", "event_to", "class", "overlap_km2", "overlap_frac",
              "overlap_iou", "distance_km", "link"]].reset_index(drop=True)


#: Columns of ``Tracks.tracks`` before the field columns, with what each holds.
TRACK_COLUMNS: dict[str, str] = {
    "track_id": "track number, 0.. in order of first appearance",
    "class": "class of the track's events (1 = TC, 2 = AR)",
    "start": "time of the first event",
    "end": "time of the last event",
    "start_step": "time step index of the first event",
    "end_step": "time step index of the last event",
    "n_steps": "number of time steps with an event of the track",
    "lifetime_h": "end - start (hours); 0 for a one-step track",
    "genesis_lat": "centroid latitude of the first event (degrees)",
    "genesis_lon": "centroid longitude of the first event (degrees)",
    "lysis_lat": "centroid latitude of the last event (degrees)",
    "lysis_lon": "centroid longitude of the last event (degrees)",
    "path_length_km": "sum of great-circle distances between consecutive centroids (km)",
    "max_area_km2": "largest event area over the track (km2)",
    "mean_area_km2": "mean event area over the track's steps (km2)",
    "max_length_km": "largest event length (principal axis) over the track (km)",
    "max_width_km": "largest event width (minor principal axis) over the track (km)",
    "origin": "'genesis', or 'split' for a branch that split off (or merged out of) other tracks",
    "fate": "'lysis', or 'merge' when the last event feeds a continuing track",
    "n_merges_in": "number of merge links into the track",
    "n_splits_out": "number of split links out of the track",
    "parent_track": "for a split branch, the track it split from; -1 otherwise",
}

#: How a per-event field statistic ``<field>_<stat>`` becomes track columns.
TRACK_FIELD_COLUMNS: dict[str, str] = {
    "<field>_min": "minimum over the track's steps of the per-event minimum: the lifetime minimum",
    "<field>_max": "maximum over the track's steps of the per-event maximum: the lifetime maximum",
    "<field>_mean": ("mean over the track's steps of the per-event area-weighted mean, weighted by event "
                     "area: the area-weighted mean over every cell of the track's life"),
    "<field>_sum": "sum over the track's steps of the per-event sums",
    "<field>_integral_mean": "mean over the track's steps of the per-event area integral",
    "<field>_integral_max": "maximum over the track's steps of the per-event area integral",
    "max_<column>, mean_<column>": "any other numeric event column: its maximum and plain mean over the steps",
}

_EVENT_BASE = {"time", "step", "event", "class", "n_cells", "area_km2", "centroid_lat", "centroid_lon",
               "lat_min", "lat_max", "track_id", "length_km", "width_km"}


def _track_field_columns(ev: pd.DataFrame, g: Any) -> dict[str, np.ndarray]:
    """Track columns for the event table's field statistics (see :data:`TRACK_FIELD_COLUMNS`)."""
    out: dict[str, np.ndarray] = {}
    tid = ev["track_id"].to_numpy()
    ntr = int(tid.max()) + 1 if tid.size else 0
    area = ev["area_km2"].to_numpy(dtype=np.float64)
    for col in [c for c in ev.columns if c not in _EVENT_BASE and pd.api.types.is_numeric_dtype(ev[c])]:
        stat = col.rsplit("_", 1)[-1] if "_" in col else ""
        if stat == "min":
            out[col] = g[col].min().to_numpy()
        elif stat == "max":
            out[col] = g[col].max().to_numpy()
        elif stat == "mean":
            v = ev[col].to_numpy(dtype=np.float64)
            ok = np.isfinite(v)
            num = np.bincount(tid[ok], weights=v[ok] * area[ok], minlength=ntr)
            den = np.bincount(tid[ok], weights=area[ok], minlength=ntr)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[col] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        elif stat == "sum":
            out[col] = g[col].sum(min_count=1).to_numpy()
        elif stat == "integral":
            out[f"{col}_mean"] = g[col].mean().to_numpy()
            out[f"{col}_max"] = g[col].max().to_numpy()
        else:
            out[f"max_{col}"] = g[col].max().to_numpy()
            out[f"mean_{col}"] = g[col].mean().to_numpy()
    return out


@dataclass
class _Graph:
    """State of :func:`_build_tracks`: events as graph nodes (sorted by step, event) and the edges.

    Each stage adds to it: node ids on the edges, the edge kinds, track ids, the
    per-track table.
    """

    events: pd.DataFrame
    edges: pd.DataFrame
    node: pd.Series                  # node number by (step, event)
    tracks: pd.DataFrame = field(default_factory=pd.DataFrame)
    first_i: Any = None              # per track, the row of its first / last event
    last_i: Any = None

    @property
    def n(self) -> int:
        return len(self.events)


def _graph(events: pd.DataFrame, edges: pd.DataFrame) -> _Graph:
    """Stage 1: number the events (sorted by step, event) and put node numbers on the edges."""
    events = events.sort_values(["step", "event"], kind="stable").reset_index(drop=True)
    node = pd.Series(np.arange(len(events)), index=pd.MultiIndex.from_arrays([events["step"], events["event"]]))
    edges = edges.copy()
    na = node.reindex(pd.MultiIndex.from_arrays([edges["step_from"], edges["event_from"]])).to_numpy()
    nb = node.reindex(pd.MultiIndex.from_arrays([edges["step_to"], edges["event_to"]])).to_numpy()
    edges["node_from"] = na.astype(np.int64)
    edges["node_to"] = nb.astype(np.int64)
    return _Graph(events=events, edges=edges, node=node)


def _classify_edges(gr: _Graph, cfg: TrackConfig) -> np.ndarray:
    """Stage 2: ``kind`` of each edge (continue | split | merge); returns the continuing ones.

    Continuation score: overlap links (by shared area, or by overlap over union)
    beat distance links (nearest first); an edge continues when each end is the
    other's best. Links across missing steps only touch events without other links.
    """
    edges = gr.edges
    is_ov = edges["link"].to_numpy() == "overlap"
    score = edges["overlap_km2" if cfg.continue_by == "overlap_km2" else "overlap_iou"].to_numpy()
    edges["_r"] = is_ov.astype(np.int8)
    edges["_s"] = np.where(is_ov, score, -edges["distance_km"].to_numpy())
    best_out = edges.sort_values(["node_from", "_r", "_s", "node_to"], ascending=[True, False, False, True],
                                 kind="stable").drop_duplicates("node_from")
    best_in = edges.sort_values(["node_to", "_r", "_s", "node_from"], ascending=[True, False, False, True],
                                kind="stable").drop_duplicates("node_to")
    mutual = best_out.merge(best_in, on=["node_from", "node_to"])[["node_from", "node_to"]]
    cont = pd.MultiIndex.from_frame(edges[["node_from", "node_to"]]).isin(pd.MultiIndex.from_frame(mutual))
    indeg = np.bincount(edges["node_to"], minlength=gr.n)
    edges["kind"] = np.where(cont, "continue", np.where(indeg[edges["node_to"]] > 1, "merge", "split"))
    return np.asarray(cont)


def _number_tracks(gr: _Graph, cont: np.ndarray) -> None:
    """Stage 3: ``track_id`` = connected component of continuing edges, numbered by first appearance."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = gr.n
    if n:
        c = gr.edges[cont]
        g = coo_matrix((np.ones(len(c)), (c["node_from"].to_numpy(), c["node_to"].to_numpy())), shape=(n, n))
        _, comp = connected_components(g, directed=False)
    else:
        comp = np.zeros(0, dtype=np.int64)
    _, first = np.unique(comp, return_index=True)   # events are sorted by (step, event)
    order = np.argsort(first, kind="stable")
    renum = np.empty(order.size, dtype=np.int64)
    renum[order] = np.arange(order.size)
    gr.events = gr.events.assign(track_id=renum[comp] if n else comp)


def _path_length(ev: pd.DataFrame, n_tracks: int, radius_km: float) -> np.ndarray:
    """Sum of great-circle steps between consecutive centroids of each track (km)."""
    srt = ev.sort_values(["track_id", "step"], kind="stable")
    same = srt["track_id"].to_numpy()[1:] == srt["track_id"].to_numpy()[:-1]
    lat_s, lon_s = srt["centroid_lat"].to_numpy(), srt["centroid_lon"].to_numpy()
    seg = great_circle_km(lat_s[:-1], lon_s[:-1], lat_s[1:], lon_s[1:], radius_km) * same
    seg = np.nan_to_num(seg)
    path = np.bincount(srt["track_id"].to_numpy()[1:], weights=seg, minlength=n_tracks) if len(srt) > 1 \
        else np.zeros(n_tracks)
    return path[:n_tracks]


def _summarize_tracks(gr: _Graph, radius_km: float) -> Any:
    """Stage 4: one row per track (times, genesis/lysis, path, areas); returns the groupby."""
    ev = gr.events
    g = ev.groupby("track_id", sort=True)
    first_i, last_i = g["step"].idxmin(), g["step"].idxmax()
    t = pd.DataFrame({"track_id": first_i.index.to_numpy()})
    t["class"] = ev.loc[first_i, "class"].to_numpy()
    t["start"] = ev.loc[first_i, "time"].to_numpy()
    t["end"] = ev.loc[last_i, "time"].to_numpy()
    t["start_step"] = ev.loc[first_i, "step"].to_numpy()
    t["end_step"] = ev.loc[last_i, "step"].to_numpy()
    t["n_steps"] = g.size().to_numpy()
    hours = _hours(ev["time"])
    if hours is not None:
        h = pd.Series(hours, index=ev.index)
        t["lifetime_h"] = (h.loc[last_i].to_numpy() - h.loc[first_i].to_numpy())
    else:
        t["lifetime_h"] = np.nan
    for end, rows in (("genesis", first_i), ("lysis", last_i)):
        t[f"{end}_lat"] = ev.loc[rows, "centroid_lat"].to_numpy()
        t[f"{end}_lon"] = ev.loc[rows, "centroid_lon"].to_numpy()
    t["path_length_km"] = _path_length(ev, len(t), radius_km)
    t["max_area_km2"] = g["area_km2"].max().to_numpy()
    t["mean_area_km2"] = g["area_km2"].mean().to_numpy()
    for col in ("length_km", "width_km"):
        t[f"max_{col}"] = g[col].max().to_numpy() if col in ev.columns else np.nan
    gr.tracks, gr.first_i, gr.last_i = t, first_i, last_i
    return g


def _branching(gr: _Graph) -> None:
    """Stage 5: origin, fate, parent track and merge/split counts of each track; tracks on the edges."""
    t, edges, ev = gr.tracks, gr.edges, gr.events
    tn = ev["track_id"].to_numpy()
    t["origin"] = "genesis"
    t["fate"] = "lysis"
    if not len(edges):
        edges["track_from"] = np.zeros(0, np.int64)
        edges["track_to"] = np.zeros(0, np.int64)
        t["n_merges_in"] = 0
        t["n_splits_out"] = 0
        t["parent_track"] = np.full(len(t), -1, dtype=np.int64)
        return
    edges["track_from"] = tn[edges["node_from"].to_numpy()]
    edges["track_to"] = tn[edges["node_to"].to_numpy()]
    other = edges[edges["kind"] != "continue"]
    # a track born from a split starts at the target of a non-continuing edge;
    # a track that merges ends at the source of one
    first_nodes = set(gr.node.reindex(pd.MultiIndex.from_arrays(
        [t["start_step"], ev.loc[gr.first_i, "event"]])).to_numpy().tolist())
    last_nodes = set(gr.node.reindex(pd.MultiIndex.from_arrays(
        [t["end_step"], ev.loc[gr.last_i, "event"]])).to_numpy().tolist())
    into_first = other[other["node_to"].isin(first_nodes)]
    born = into_first["track_to"].unique()
    dies = other[other["node_from"].isin(last_nodes)]["track_from"].unique()
    t.loc[t["track_id"].isin(born), "origin"] = "split"
    # the track a branch came from: its strongest non-continuing link into the branch's first event
    par = into_first.sort_values(["track_to", "_r", "_s", "track_from"], ascending=[True, False, False, True],
                                 kind="stable").drop_duplicates("track_to")
    parent = np.full(len(t), -1, dtype=np.int64)
    parent[par["track_to"].to_numpy()] = par["track_from"].to_numpy()
    t["parent_track"] = parent
    t.loc[t["track_id"].isin(dies), "fate"] = "merge"
    t["n_merges_in"] = np.bincount(other[other["kind"] == "merge"]["track_to"], minlength=len(t))[: len(t)]
    t["n_splits_out"] = np.bincount(other[other["kind"] == "split"]["track_from"], minlength=len(t))[: len(t)]


def _keep_tracks(gr: _Graph, cfg: TrackConfig) -> Tracks:
    """Stage 6: drop tracks shorter than ``min_steps`` / ``min_lifetime_h``, with their events and edges."""
    t = gr.tracks
    keep = (t["n_steps"] >= cfg.min_steps)
    if cfg.min_lifetime_h > 0:
        keep &= t["lifetime_h"].fillna(-1) >= cfg.min_lifetime_h
    kept_ids = t.loc[keep, "track_id"].to_numpy()
    t = t[keep].reset_index(drop=True)
    t.loc[~t["parent_track"].isin(kept_ids), "parent_track"] = -1
    events = gr.events[gr.events["track_id"].isin(kept_ids)].reset_index(drop=True)
    edges = gr.edges[gr.edges["track_from"].isin(kept_ids) & gr.edges["track_to"].isin(kept_ids)]
    edges = edges[list(EDGE_COLUMNS)].sort_values(["step_from", "event_from", "event_to"], kind="stable")
    return Tracks(tracks=t, events=events, edges=edges.reset_index(drop=True), config=cfg)


def _build_tracks(events: pd.DataFrame, edges: pd.DataFrame, cfg: TrackConfig, radius_km: float) -> Tracks:
    """Tracks from events and their links: the stages above, in order."""
    gr = _graph(events, edges)
    cont = _classify_edges(gr, cfg)
    _number_tracks(gr, cont)
    g = _summarize_tracks(gr, radius_km)
    _branching(gr)
    gr.tracks = gr.tracks[list(TRACK_COLUMNS)].copy()
    for name, values in _track_field_columns(gr.events, g).items():
        gr.tracks[name] = values
    return _keep_tracks(gr, cfg)


def _config(config: TrackConfig | None, kw: dict[str, Any]) -> TrackConfig:
    if config is None:
        return TrackConfig(**kw)
    if kw:
        return TrackConfig(**{**asdict(config), **kw})
    return config


def track(
    table: pd.DataFrame,
    labels: Any = None,
    *,
    config: TrackConfig | None = None,
    lat: Any = None,
    lon: Any = None,
    radius_km: float = EARTH_RADIUS_KM,
    block_steps: int | None = None,
    **kw: Any,
) -> Tracks:
    """Link events of consecutive time steps into tracks.

    Parameters
    ----------
    table
        Event table from :func:`climviz.events.table` (needs ``time, step,
        event, class, area_km2, centroid_lat, centroid_lon``).
    labels
        The labels the table was made from (numpy with ``lat``/``lon``, or a
        DataArray, possibly dask-backed: read block by block). Without labels,
        events are linked by centroid distance only (all classes).
    config
        A :class:`TrackConfig`; keyword arguments (``min_overlap=...``,
        ``max_distance_km=...``, ``min_steps=...``, ``min_lifetime_h=...``,
        ``distance_classes=...``) override its fields.
    lat, lon
        Coordinates (degrees) for numpy labels.
    radius_km
        Sphere radius (km).
    block_steps
        Time steps read per block (default: the dask chunks or ~16 M cells).

    Returns
    -------
    Tracks
        ``.tracks`` (one row per track), ``.events`` (the table with
        ``track_id``), ``.edges`` (the track graph with merges and splits).

    Examples
    --------
    A 2 x 2-cell cyclone moving 10° east every 3 hours is one track of three steps:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from climviz.events import label_table, track
    >>> lat, lon = np.linspace(-85, 85, 18), np.arange(0, 360, 10.0)
    >>> masks = np.zeros((3, 18, 36), dtype=np.uint8)
    >>> for t in range(3):
    ...     masks[t, 10:12, 5 + t:7 + t] = 1
    >>> times = pd.date_range("2000-01-01", periods=3, freq="3h")
    >>> labels, tab = label_table(masks, lat=lat, lon=lon, time=times)
    >>> trk = track(tab, labels, lat=lat, lon=lon)
    >>> trk.tracks[["track_id", "class", "n_steps", "lifetime_h"]]
       track_id  class  n_steps  lifetime_h
    0         0      1        3         6.0
    >>> trk.events["track_id"].tolist()
    [0, 0, 0]
    """
    cfg = _config(config, kw)
    need = {"time", "step", "event", "class", "area_km2", "centroid_lat", "centroid_lon"}
    missing = need - set(table.columns)
    if missing:
        raise DataError(f"event table: expected columns {sorted(need)}, missing {sorted(missing)}")
    if labels is None:
        cfg = TrackConfig(**{**asdict(cfg), "distance_classes": tuple(int(c) for c in table["class"].unique())})
        ov = pd.DataFrame(_empty_overlaps())
    else:
        ov = overlaps(labels, lat=lat, lon=lon, radius_km=radius_km, block_steps=block_steps,
                      max_lag=cfg.max_gap_steps + 1)
    edges = _link(table, ov, cfg, radius_km)
    return _build_tracks(table, edges, cfg, radius_km)


def track_masks(
    mask: Any,
    fields: Any = None,
    *,
    config: TrackConfig | None = None,
    stats: Any = ("min", "max", "mean"),
    min_area_km2: float = 0.0,
    min_cells: int = 1,
    periodic: bool | None = None,
    connectivity: int = 8,
    lat: Any = None,
    lon: Any = None,
    time: Any = None,
    radius_km: float = EARTH_RADIUS_KM,
    block_steps: int | None = None,
    progress: Any = None,
    centroid: Literal["circular", "cartesian"] = "circular",
    **kw: Any,
) -> Tracks:
    """Label, tabulate and track a long run of masks in one streaming pass.

    Only one block of time steps (and the last step of the previous block) is
    in memory at a time; the result holds the event table, the tracks and the
    graph, not the labels.

    Parameters
    ----------
    mask
        Class mask (time, lat, lon): numpy (with ``lat``/``lon``), or an
        xarray DataArray/Dataset (numpy or dask; blocks follow the dask chunks).
    fields, stats
        Fields and statistics for the event table (see :func:`climviz.events.table`).
    config, kw
        Tracking options (see :func:`track`).
    min_area_km2, min_cells, periodic, connectivity
        Labelling options (see :func:`climviz.events.label`; ``periodic=None``:
        only on a global grid, detected from the longitudes).
    progress
        Optional callable ``progress(steps_done, steps_total)`` called after each block.
    centroid
        ``"circular"`` or ``"cartesian"`` (see :func:`climviz.events.table`).

    Returns
    -------
    Tracks

    Examples
    --------
    >>> import climviz as cv
    >>> run = cv.synthetic_run(4, shape=(32, 48))
    >>> trk = cv.events.track_masks(run["LABELS"], run[["PSL"]])
    >>> trk
    Tracks(7 tracks, 22 events, 17 edges)
    >>> trk.tracks[["track_id", "class", "n_steps"]].head(3)
       track_id  class  n_steps
    0         0      2        4
    1         1      1        4
    2         2      1        4
    """
    from climviz.events._source import MaskSource
    from climviz.events.tables import (
        _Accumulator,
        _check_centroid,
        _frame,
        _names,
        _stat_spec,
        canonical_fields,
        table_runs,
    )

    cfg = _config(config, kw)
    fields = canonical_fields(fields)
    src = MaskSource.from_any(mask, fields, lat=lat, lon=lon, time=time)
    opts = LabelOptions(float(min_area_km2), int(min_cells), resolve_periodic(periodic, src.lon), int(connectivity))
    geo = Geo.of(src.lat, src.lon, radius_km)
    spec = _stat_spec(list(src.fields), stats)
    acc = _Accumulator()
    stream = _OverlapStream(geo, cfg.max_gap_steps + 1)
    total = src.shape[0]
    for sl, m, f in src.blocks(block_steps):
        _, _, runs = _label_block(m, geo=geo, opts=opts, want_labels=False)
        acc.add(table_runs(runs, f, spec, geo, sl.start, _check_centroid(centroid)))
        stream.add_runs(runs, sl.start)
        del runs
        if progress is not None:
            progress(sl.stop, total)
    tab = _frame(acc.cols, _names(list(src.fields), spec), src.times)
    edges = _link(tab, stream.frame(), cfg, radius_km)
    return _build_tracks(tab, edges, cfg, radius_km)
