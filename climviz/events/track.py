"""Tracking events through time: overlap links, a centroid-distance fallback, and a track graph.

Events of the same class in consecutive time steps are linked when they
overlap by at least ``min_overlap`` of the smaller event's area. Small fast
cyclones that moved off their previous footprint are linked by the distance
between centroids (``max_distance_km``, one-to-one, nearest first).

A track continues through a link when each end is the other's strongest
link (mutual best overlap). All other links are kept in the graph as
``split`` (one event feeds several) or ``merge`` (several feed one) edges,
so merges and splits are explicit, never silently dropped.

Labels are read one time block at a time (dask chunks or in-memory blocks),
keeping only the last step of the previous block, so memory stays bounded
for long runs; :func:`track_masks` labels, tabulates and links in that one
streaming pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from climviz.errors import ConfigError, DataError
from climviz.events.geometry import EARTH_RADIUS_KM, great_circle_km
from climviz.events.label import Geo, LabelOptions, Runs, _label_block, find_runs

__all__ = ["TrackConfig", "Tracks", "track", "track_masks", "overlaps"]

EDGE_COLUMNS = ("step_from", "event_from", "step_to", "event_to", "class", "overlap_km2",
                "overlap_frac", "distance_km", "link", "kind", "track_from", "track_to")


@dataclass
class TrackConfig:
    """How events are linked into tracks.

    Attributes
    ----------
    min_overlap
        Link two events of consecutive steps if their overlap area is at least
        this fraction of the smaller event's area (0 < value <= 1).
    max_distance_km
        Centroid-distance fallback (km) for events of ``distance_classes`` that
        found no overlap link; None disables it.
    distance_classes
        Classes that may use the distance fallback (default: tropical cyclones).
    min_steps
        Drop tracks present in fewer time steps.
    min_lifetime_h
        Drop tracks whose ``lifetime_h`` (end - start, hours) is shorter.
    """

    min_overlap: float = 0.1
    max_distance_km: float | None = 600.0
    distance_classes: tuple[int, ...] = (1,)
    min_steps: int = 1
    min_lifetime_h: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.min_overlap <= 1:
            raise ConfigError(f"min_overlap: expected a fraction in (0, 1], found {self.min_overlap}")
        if self.max_distance_km is not None and self.max_distance_km < 0:
            raise ConfigError(f"max_distance_km: expected >= 0 or None, found {self.max_distance_km}")
        if self.min_steps < 1:
            raise ConfigError(f"min_steps: expected >= 1, found {self.min_steps}")
        if self.min_lifetime_h < 0:
            raise ConfigError(f"min_lifetime_h: expected >= 0, found {self.min_lifetime_h}")
        self.distance_classes = tuple(int(c) for c in self.distance_classes)


@dataclass
class Tracks:
    """Result of :func:`track`.

    Attributes
    ----------
    tracks
        One row per track: ``track_id, class, start, end, start_step,
        end_step, n_steps, lifetime_h, genesis_lat, genesis_lon, lysis_lat,
        lysis_lon, path_length_km, max_area_km2, mean_area_km2, origin
        ("genesis" | "split"), fate ("lysis" | "merge"), n_merges_in,
        n_splits_out`` and the field extremes over the track's life (``X_min``
        columns: minimum; every other field statistic: maximum).
    events
        The event table with a ``track_id`` column (events of dropped tracks removed).
    edges
        The track graph: every link between events of consecutive steps,
        with ``kind`` "continue", "split" or "merge" and the tracks at both ends.
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

def _empty_overlaps() -> dict[str, np.ndarray]:
    z = np.zeros(0, dtype=np.int64)
    return {"step_from": z, "event_from": z.astype(np.int32), "event_to": z.astype(np.int32),
            "overlap_km2": np.zeros(0)}


def _run_overlaps(step: np.ndarray, pos: np.ndarray, length: np.ndarray, ids: np.ndarray,
                  HW: int, W: int, geo: Geo) -> dict[str, np.ndarray]:
    """Overlap areas between events of consecutive steps, from runs sorted by (step, pos).

    A run of step t covers cells ``pos .. pos + length - 1`` of its row; the
    runs of step t + 1 meeting the same cells are found with two
    ``np.searchsorted`` calls on the global keys ``step * HW + pos``; the overlap
    of two runs is an interval intersection within one row, whose area is a
    difference of cumulative column widths. Cost O(runs), not O(cells).
    """
    if step.size == 0:
        return _empty_overlaps()
    key = step * HW + pos
    key_end = key + length
    lo = key + HW
    hi = key_end + HW - 1
    jlo = np.searchsorted(key_end, lo, side="right")
    jhi = np.searchsorted(key, hi, side="right")
    cnt = np.maximum(jhi - jlo, 0)
    total = int(cnt.sum())
    if total == 0:
        return _empty_overlaps()
    i = np.repeat(np.arange(step.size), cnt)
    j = np.repeat(jlo, cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt))
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
            "overlap_km2": tot}


class _OverlapStream:
    """Feeds runs of labelled blocks in time order; collects overlaps of consecutive steps.

    Only the runs of the last step of the previous block are carried over.
    """

    def __init__(self, geo: Geo) -> None:
        self.geo = geo
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
            arrays = tuple(np.concatenate([c, a]) for c, a in zip(self.carry, arrays))
        self.parts.append(_run_overlaps(*arrays, HW=HW, W=W, geo=self.geo))
        last = step0 + T - 1
        keep = arrays[0] == last
        self.carry = tuple(a[keep] for a in arrays)

    def add_labels(self, block: np.ndarray, step0: int) -> None:
        flat = block.reshape(-1)
        self.add_runs(find_runs(flat, flat, block.shape[2], block.shape, labels_follow_mask=True), step0)

    def frame(self) -> pd.DataFrame:
        parts = [p for p in self.parts if p["step_from"].size] or [_empty_overlaps()]
        return pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


def overlaps(labels: Any, *, lat: Any = None, lon: Any = None, radius_km: float = EARTH_RADIUS_KM,
             block_steps: int | None = None) -> pd.DataFrame:
    """Overlap areas (km²) between events of consecutive time steps.

    Parameters
    ----------
    labels
        Event ids (time, lat, lon) from :func:`climviz.events.label`: numpy
        (then give ``lat``/``lon``) or an xarray DataArray (numpy or dask; read
        one time block at a time).

    Returns
    -------
    pandas.DataFrame
        ``step_from, event_from, event_to, overlap_km2``; ``step_to = step_from + 1``.
    """
    from climviz.events._source import MaskSource

    src = MaskSource.from_any(labels, None, lat=lat, lon=lon, name="labels")
    geo = Geo.of(src.lat, src.lon, radius_km)
    stream = _OverlapStream(geo)
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


def _link(events: pd.DataFrame, ov: pd.DataFrame, cfg: TrackConfig, radius_km: float) -> pd.DataFrame:
    """Edges between events of consecutive steps (overlap links + distance fallback)."""
    ev = events[["step", "event", "class", "area_km2", "centroid_lat", "centroid_lon"]]
    ea = ev.rename(columns=lambda c: c + "_a" if c not in ("step", "event") else c)
    eb = ev.rename(columns=lambda c: c + "_b" if c not in ("step", "event") else c)
    e = ov.merge(ea.rename(columns={"step": "step_from", "event": "event_from"}), on=["step_from", "event_from"])
    e["step_to"] = e["step_from"] + 1
    e = e.merge(eb.rename(columns={"step": "step_to", "event": "event_to"}), on=["step_to", "event_to"])
    e = e[e["class_a"] == e["class_b"]]
    e = e.assign(overlap_frac=e["overlap_km2"] / np.minimum(e["area_km2_a"], e["area_km2_b"]))
    e = e[e["overlap_frac"] >= cfg.min_overlap - 1e-12]
    e = e.assign(link="overlap")

    if cfg.max_distance_km is not None and cfg.distance_classes and len(ev):
        cand = ev[ev["class"].isin(cfg.distance_classes)]
        linked_a = pd.MultiIndex.from_arrays([e["step_from"], e["event_from"]])
        linked_b = pd.MultiIndex.from_arrays([e["step_to"], e["event_to"]])
        idx = pd.MultiIndex.from_arrays([cand["step"], cand["event"]])
        free_a = ea.loc[cand.index[~idx.isin(linked_a)]]
        free_b = eb.loc[cand.index[~idx.isin(linked_b)]]
        pairs = free_a.assign(step_to=free_a["step"] + 1).rename(
            columns={"step": "step_from", "event": "event_from"}).merge(
            free_b.rename(columns={"step": "step_to", "event": "event_to"}), on="step_to")
        pairs = pairs[pairs["class_a"] == pairs["class_b"]]
        if len(pairs):
            d = great_circle_km(pairs["centroid_lat_a"].to_numpy(), pairs["centroid_lon_a"].to_numpy(),
                                pairs["centroid_lat_b"].to_numpy(), pairs["centroid_lon_b"].to_numpy(),
                                radius_km)
            pairs = pairs.assign(distance_km=d)
            pairs = pairs[pairs["distance_km"] <= cfg.max_distance_km].sort_values(
                ["distance_km", "step_from", "event_from", "event_to"], kind="stable")
            used_a: set[tuple[int, int]] = set()
            used_b: set[tuple[int, int]] = set()
            keep = []
            for i, sa, a, b in zip(pairs.index, pairs["step_from"], pairs["event_from"], pairs["event_to"]):
                ka, kb = (int(sa), int(a)), (int(sa) + 1, int(b))
                if ka in used_a or kb in used_b:
                    continue
                used_a.add(ka)
                used_b.add(kb)
                keep.append(i)
            dist = pairs.loc[keep].assign(overlap_km2=0.0, overlap_frac=0.0, link="distance")
            e = pd.concat([e, dist[e.columns.intersection(dist.columns).tolist() + ["distance_km"]]],
                          ignore_index=True)
    if "distance_km" not in e.columns:
        e["distance_km"] = np.nan
    # centroid distance of every edge
    miss = e["distance_km"].isna()
    if miss.any():
        e.loc[miss, "distance_km"] = great_circle_km(
            e.loc[miss, "centroid_lat_a"].to_numpy(), e.loc[miss, "centroid_lon_a"].to_numpy(),
            e.loc[miss, "centroid_lat_b"].to_numpy(), e.loc[miss, "centroid_lon_b"].to_numpy(), radius_km)
    e = e.rename(columns={"class_a": "class"})
    return e[["step_from", "event_from", "step_to", "event_to", "class", "overlap_km2", "overlap_frac",
              "distance_km", "link"]].reset_index(drop=True)


def _build_tracks(events: pd.DataFrame, edges: pd.DataFrame, cfg: TrackConfig, radius_km: float) -> Tracks:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    events = events.sort_values(["step", "event"], kind="stable").reset_index(drop=True)
    n = len(events)
    node = pd.Series(np.arange(n), index=pd.MultiIndex.from_arrays([events["step"], events["event"]]))
    edges = edges.copy()
    na = node.reindex(pd.MultiIndex.from_arrays([edges["step_from"], edges["event_from"]])).to_numpy()
    nb = node.reindex(pd.MultiIndex.from_arrays([edges["step_to"], edges["event_to"]])).to_numpy()
    edges["node_from"] = na.astype(np.int64)
    edges["node_to"] = nb.astype(np.int64)
    # strength: overlap fraction for overlap links; distance links are weaker than any overlap
    strength = np.where(edges["link"].to_numpy() == "overlap", 1.0 + edges["overlap_frac"].to_numpy(),
                        1.0 / (1.0 + edges["distance_km"].to_numpy()))
    edges["_s"] = strength
    best_out = edges.sort_values(["node_from", "_s", "node_to"], ascending=[True, False, True]).drop_duplicates(
        "node_from")
    best_in = edges.sort_values(["node_to", "_s", "node_from"], ascending=[True, False, True]).drop_duplicates(
        "node_to")
    mutual = best_out.merge(best_in, on=["node_from", "node_to"])[["node_from", "node_to"]]
    cont = pd.MultiIndex.from_frame(edges[["node_from", "node_to"]]).isin(pd.MultiIndex.from_frame(mutual))
    outdeg = np.bincount(edges["node_from"], minlength=n)
    indeg = np.bincount(edges["node_to"], minlength=n)
    kind = np.where(cont, "continue", np.where(indeg[edges["node_to"]] > 1, "merge", "split"))
    edges["kind"] = kind

    if n:
        c = edges[cont]
        g = coo_matrix((np.ones(len(c)), (c["node_from"].to_numpy(), c["node_to"].to_numpy())), shape=(n, n))
        _, comp = connected_components(g, directed=False)
    else:
        comp = np.zeros(0, dtype=np.int64)
    # number tracks by first appearance (events are sorted by step, event)
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(first, kind="stable")
    renum = np.empty(order.size, dtype=np.int64)
    renum[order] = np.arange(order.size)
    tid = renum[comp] if n else comp
    events = events.assign(track_id=tid)

    # per-track summary
    ev = events
    g = ev.groupby("track_id", sort=True)
    first_i = g["step"].idxmin()
    last_i = g["step"].idxmax()
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
    t["genesis_lat"] = ev.loc[first_i, "centroid_lat"].to_numpy()
    t["genesis_lon"] = ev.loc[first_i, "centroid_lon"].to_numpy()
    t["lysis_lat"] = ev.loc[last_i, "centroid_lat"].to_numpy()
    t["lysis_lon"] = ev.loc[last_i, "centroid_lon"].to_numpy()
    # path length: great-circle steps between consecutive centroids of the same track
    srt = ev.sort_values(["track_id", "step"], kind="stable")
    same = srt["track_id"].to_numpy()[1:] == srt["track_id"].to_numpy()[:-1]
    lat_s, lon_s = srt["centroid_lat"].to_numpy(), srt["centroid_lon"].to_numpy()
    seg = great_circle_km(lat_s[:-1], lon_s[:-1], lat_s[1:], lon_s[1:], radius_km) * same
    seg = np.nan_to_num(seg)
    path = np.bincount(srt["track_id"].to_numpy()[1:], weights=seg, minlength=len(t)) if len(srt) > 1 \
        else np.zeros(len(t))
    t["path_length_km"] = path[: len(t)]
    t["max_area_km2"] = g["area_km2"].max().to_numpy()
    t["mean_area_km2"] = g["area_km2"].mean().to_numpy()
    tn = tid
    t["origin"] = "genesis"
    t["fate"] = "lysis"
    if len(edges):
        nf, nt_ = edges["node_from"].to_numpy(), edges["node_to"].to_numpy()
        edges["track_from"] = tn[nf]
        edges["track_to"] = tn[nt_]
        other = edges[edges["kind"] != "continue"]
        # a track born from a split starts at the target of a non-continuing edge;
        # a track that merges ends at the source of one
        first_nodes = set(node.reindex(pd.MultiIndex.from_arrays([t["start_step"], ev.loc[first_i, "event"]]))
                          .to_numpy().tolist())
        last_nodes = set(node.reindex(pd.MultiIndex.from_arrays([t["end_step"], ev.loc[last_i, "event"]]))
                         .to_numpy().tolist())
        born = other[other["node_to"].isin(first_nodes)]["track_to"].unique()
        dies = other[other["node_from"].isin(last_nodes)]["track_from"].unique()
        t.loc[t["track_id"].isin(born), "origin"] = "split"
        t.loc[t["track_id"].isin(dies), "fate"] = "merge"
        t["n_merges_in"] = np.bincount(other[other["kind"] == "merge"]["track_to"], minlength=len(t))[: len(t)]
        t["n_splits_out"] = np.bincount(other[other["kind"] == "split"]["track_from"], minlength=len(t))[: len(t)]
    else:
        edges["track_from"] = np.zeros(0, np.int64)
        edges["track_to"] = np.zeros(0, np.int64)
        t["n_merges_in"] = 0
        t["n_splits_out"] = 0
    base = {"time", "step", "event", "class", "n_cells", "area_km2", "centroid_lat", "centroid_lon",
            "lat_min", "lat_max", "track_id"}
    for col in [c for c in ev.columns if c not in base and pd.api.types.is_numeric_dtype(ev[c])]:
        t[col] = (g[col].min() if col.endswith("_min") else g[col].max()).to_numpy()

    # lifetime filter
    keep = (t["n_steps"] >= cfg.min_steps)
    if cfg.min_lifetime_h > 0:
        keep &= t["lifetime_h"].fillna(-1) >= cfg.min_lifetime_h
    kept_ids = t.loc[keep, "track_id"].to_numpy()
    t = t[keep].reset_index(drop=True)
    events = events[events["track_id"].isin(kept_ids)].reset_index(drop=True)
    edges = edges[edges["track_from"].isin(kept_ids) & edges["track_to"].isin(kept_ids)]
    edges = edges[list(EDGE_COLUMNS)].sort_values(["step_from", "event_from", "event_to"], kind="stable")
    edges = edges.reset_index(drop=True)
    return Tracks(tracks=t, events=events, edges=edges, config=cfg)


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
        ov = overlaps(labels, lat=lat, lon=lon, radius_km=radius_km, block_steps=block_steps)
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
    periodic: bool = True,
    lat: Any = None,
    lon: Any = None,
    time: Any = None,
    radius_km: float = EARTH_RADIUS_KM,
    block_steps: int | None = None,
    progress: Any = None,
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
    min_area_km2, min_cells, periodic
        Labelling options (see :func:`climviz.events.label`).
    progress
        Optional callable ``progress(steps_done, steps_total)`` called after each block.

    Returns
    -------
    Tracks
    """
    import xarray as xr

    from climviz.events._source import MaskSource
    from climviz.events.table import _Accumulator, _frame, _names, _stat_spec, table_runs

    cfg = _config(config, kw)
    if isinstance(fields, xr.Dataset):
        fields = dict(fields.data_vars)
    src = MaskSource.from_any(mask, fields, lat=lat, lon=lon, time=time)
    opts = LabelOptions(float(min_area_km2), int(min_cells), bool(periodic))
    geo = Geo.of(src.lat, src.lon, radius_km)
    spec = _stat_spec(list(src.fields), stats)
    acc = _Accumulator()
    stream = _OverlapStream(geo)
    total = src.shape[0]
    for sl, m, f in src.blocks(block_steps):
        _, _, runs = _label_block(m, geo=geo, opts=opts, want_labels=False)
        acc.add(table_runs(runs, f, spec, geo, sl.start))
        stream.add_runs(runs, sl.start)
        del runs
        if progress is not None:
            progress(sl.stop, total)
    tab = _frame(acc.cols, _names(list(src.fields), spec), src.times)
    edges = _link(tab, stream.frame(), cfg, radius_km)
    return _build_tracks(tab, edges, cfg, radius_km)
