"""Event tracks on a map: paths coloured by class or intensity, genesis points with track statistics.

Input is what :func:`climviz.events.track` produces: either the per-event rows
(``time, track_id, class, centroid_lat, centroid_lon`` [, ``area_km2``...]),
which give each track's path, or one row per track (``track_id, class,
genesis_lat, genesis_lon, lysis_lat, lysis_lon`` ...), which gives genesis and
lysis points joined by a straight line; or both (``tracks(points, summary=...)``).
Paths crossing the map's seam are cut there, with the crossing point
interpolated, so no line streaks across the whole map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from climviz._compat import ClassesLike, class_ids
from climviz.data.schema import AR, TC
from climviz.errors import DataError
from climviz.viz.overlays import lat_tick_formatter, lon_tick_formatter, resolve_projection
from climviz.viz.style import CLASS_COLORS, CLASS_SHORT, format_number, lat_label, lon_label

if TYPE_CHECKING:  # the alias only; coastlines is imported where it draws
    from climviz.viz.coastlines import Resolution

__all__ = ["tracks", "track_paths", "split_at_seam"]

_LAT = ("centroid_lat", "lat", "latitude")
_LON = ("centroid_lon", "lon", "longitude")
_GEN_LAT = ("genesis_lat", "start_lat", "lat_genesis")
_GEN_LON = ("genesis_lon", "start_lon", "lon_genesis")
_LYS_LAT = ("lysis_lat", "end_lat", "lat_lysis")
_LYS_LON = ("lysis_lon", "end_lon", "lon_lysis")


def _col(df: pd.DataFrame, names: Sequence[str], what: str, required: bool = True) -> str | None:
    for n in names:
        if n in df.columns:
            return n
    if required:
        raise DataError(f"track table: expected a {what} column (one of {list(names)}), "
                        f"found columns {list(df.columns)}")
    return None


def _unpack(obj: Any) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(per-event rows with track_id, one row per track) from a DataFrame or a tracks object."""
    if isinstance(obj, pd.DataFrame):
        if "track_id" not in obj.columns:
            raise DataError(f"track table needs a 'track_id' column; found {list(obj.columns)}")
        per_track = obj["track_id"].is_unique and _col(obj, _GEN_LAT, "genesis latitude", required=False)
        return (None, obj) if per_track else (obj, None)
    points = summary = None
    for name in ("points", "events", "table", "rows"):
        v = getattr(obj, name, None)
        if isinstance(v, pd.DataFrame) and "track_id" in v.columns:
            points = v
            break
    for name in ("summary", "tracks", "track_table"):
        v = getattr(obj, name, None)
        if isinstance(v, pd.DataFrame) and "track_id" in v.columns:
            summary = v
            break
    if points is None and summary is None:
        raise DataError(f"cannot read tracks from a {type(obj).__name__}: pass a DataFrame with a 'track_id' column")
    return points, summary


def split_at_seam(lon: np.ndarray, lat: np.ndarray, center: float = 0.0,
                  values: np.ndarray | None = None) -> list[np.ndarray]:
    """Cut a lon/lat path where it crosses the map seam (``center`` ± 180°).

    Longitudes are first made continuous (steps of more than 180° are taken the
    short way round); each crossing point is interpolated linearly and added to
    both pieces.

    Returns
    -------
    list of np.ndarray
        ``(n, 2)`` arrays of ``(x, lat)``, x = longitude relative to ``center`` in [-180, 180];
        ``(n, 3)`` with ``values`` (per point, interpolated at the crossings) as third column.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if lon.size == 0:
        return []
    rel = (lon - center + 180.0) % 360.0 - 180.0
    cont = rel[0] + np.concatenate([[0.0], np.cumsum((np.diff(rel) + 180.0) % 360.0 - 180.0)])
    # Index of the 360-degree "sheet" each point is on; a change of sheet is a seam crossing.
    sheet = np.floor((cont + 180.0) / 360.0)
    pieces: list[np.ndarray] = []
    start = 0
    pts = np.column_stack([cont, lat] + ([np.asarray(values, dtype=float)] if values is not None else []))
    for i in np.flatnonzero(np.diff(sheet) != 0):
        a, b = pts[i], pts[i + 1]
        seam = 360.0 * max(sheet[i], sheet[i + 1]) - 180.0
        f = (seam - a[0]) / (b[0] - a[0])
        cross = a + f * (b - a)
        cross[0] = seam
        piece = np.vstack([pts[start:i + 1], cross[None]])
        pieces.append(piece)
        pts[i] = cross  # the next piece starts at the crossing point
        start = int(i)
    pieces.append(pts[start:])
    out = []
    for p in pieces:
        p = p.copy()
        ref = np.floor((np.median(p[:, 0]) + 180.0) / 360.0)
        p[:, 0] -= 360.0 * ref
        if len(p) >= 2 or len(pieces) == 1:
            out.append(p)
    return out


def track_paths(points: pd.DataFrame, center: float = 0.0, value: str | None = None) -> list[dict[str, Any]]:
    """Per-track path pieces (seam-split) as dicts for a HoloViews Path."""
    lat_c = _col(points, _LAT, "latitude")
    lon_c = _col(points, _LON, "longitude")
    if "class" not in points.columns:
        raise DataError(f"track table needs a 'class' column (1 TC, 2 AR); found {list(points.columns)}")
    sort_cols = ["track_id"] + (["time"] if "time" in points.columns else [])
    out: list[dict[str, Any]] = []
    for tid, g in points.sort_values(sort_cols, kind="stable").groupby("track_id", sort=False):
        cls = int(g["class"].iloc[0])
        vals = None if value is None else g[value].to_numpy(float)
        for piece in split_at_seam(g[lon_c].to_numpy(), g[lat_c].to_numpy(), center, values=vals):
            if len(piece) < 2:  # a one-step track has no path; its genesis point shows it
                continue
            d: dict[str, Any] = {"x": piece[:, 0], "y": piece[:, 1], "track_id": tid, "class": cls}
            if vals is None or value is None:  # both None together
                out.append(d)
                continue
            # One 2-point segment per step, with a scalar value (mean of its ends): colour per segment.
            for k in range(len(piece) - 1):
                out.append({"x": piece[k:k + 2, 0], "y": piece[k:k + 2, 1], "track_id": tid, "class": cls,
                            value: float(piece[k:k + 2, 2].mean())})
    return out


def _summary_from_points(points: pd.DataFrame) -> pd.DataFrame:
    """Genesis/lysis, start/end and lifetime per track from per-event rows."""
    lat_c, lon_c = _col(points, _LAT, "latitude"), _col(points, _LON, "longitude")
    sort_cols = ["track_id"] + (["time"] if "time" in points.columns else [])
    g = points.sort_values(sort_cols, kind="stable").groupby("track_id", sort=False)
    out = pd.DataFrame({
        "class": g["class"].first(),
        "genesis_lat": g[lat_c].first(), "genesis_lon": g[lon_c].first(),
        "lysis_lat": g[lat_c].last(), "lysis_lon": g[lon_c].last(),
        "n_steps": g.size(),
    })
    if "time" in points.columns:
        out["start"], out["end"] = g["time"].first(), g["time"].last()
        if np.issubdtype(np.asarray(out["start"]).dtype, np.datetime64):
            out["lifetime_h"] = (out["end"] - out["start"]) / pd.Timedelta(hours=1)
    if "area_km2" in points.columns:
        out["max_area_km2"] = g["area_km2"].max()
    return out.reset_index()


def _paths_and_summary(points: pd.DataFrame | None, summ: pd.DataFrame | None, keep: set[int], color: str,
                       center: float) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Track paths (split at the map's seam) and one summary row per track, for the classes in ``keep``.

    From per-event rows: centroid paths, the summary completed with statistics derived
    from the rows. From a summary alone: straight genesis-to-lysis lines.
    """
    if points is not None:
        points = points[points["class"].isin(keep)]
        if color != "class":
            if color not in points.columns:
                raise DataError(f"color={color!r}: not a column of the track rows {list(points.columns)}")
            points = points[np.isfinite(pd.to_numeric(points[color], errors="coerce"))]
        paths = track_paths(points, center, value=None if color == "class" else color)
        derived = _summary_from_points(points)
        summ = derived if summ is None else summ.merge(
            derived[["track_id"] + [c for c in derived.columns if c not in summ.columns]], on="track_id", how="left")
    else:
        if summ is None:
            raise DataError("no track rows and no track summary given")
        summ = summ[summ["class"].isin(keep)]
        glat, glon = _col(summ, _GEN_LAT, "genesis latitude"), _col(summ, _GEN_LON, "genesis longitude")
        llat, llon = _col(summ, _LYS_LAT, "lysis latitude"), _col(summ, _LYS_LON, "lysis longitude")
        paths = []
        for r in summ.to_dict("records"):
            for piece in split_at_seam(np.array([r[glon], r[llon]]), np.array([r[glat], r[llat]]), center):
                paths.append({"x": piece[:, 0], "y": piece[:, 1], "track_id": r["track_id"], "class": int(r["class"])})
    return paths, summ[summ["class"].isin(keep)].copy()


def _path_layers(paths: list[dict[str, Any]], keep: set[int], color: str, cmap: str) -> list[Any]:
    """One ``Track`` path element per class (class colours, legend), or one coloured by the column ``color``."""
    import holoviews as hv

    if color != "class":
        return [hv.Path(paths, kdims=["x", "y"], vdims=["track_id", color], group="Track")
                .opts(color=color, cmap=cmap, colorbar=True, line_width=3, clabel=color)]
    layers = []
    for cls in sorted(keep):
        cp = [p for p in paths if p["class"] == cls]
        layers.append(hv.Path(cp, kdims=["x", "y"], vdims=["track_id"], group="Track", label=CLASS_SHORT[cls])
                      .opts(color=CLASS_COLORS[cls], line_width=2, alpha=0.8, show_legend=True))
    return layers


#: Summary columns shown on hover at the genesis points: (tooltip name, unit).
_HOVER_STATS = {"start": ("start", None), "end": ("end", None), "lifetime_h": ("lifetime", "h"),
                "lifetime": ("lifetime", "h"), "n_steps": ("time steps", None),
                "path_length_km": ("path length", "km"), "max_area_km2": ("largest area", "km²")}


def _genesis_points(summ: pd.DataFrame, center: float) -> Any:
    """Genesis points (group ``Genesis``) in the class colours, with the track's statistics on hover."""
    import holoviews as hv
    from bokeh.models import HoverTool

    glat, glon = _col(summ, _GEN_LAT, "genesis latitude"), _col(summ, _GEN_LON, "genesis longitude")
    summ["x"] = (summ[glon].to_numpy(float) - center + 180.0) % 360.0 - 180.0
    summ["y"] = summ[glat].to_numpy(float)
    summ["kind"] = [CLASS_SHORT.get(int(c), str(c)) for c in summ["class"]]
    stat_cols = [c for c in ("start", "end", "lifetime_h", "lifetime", "n_steps", "path_length_km",
                             "max_area_km2") if c in summ.columns]
    for c in ("start", "end"):
        if c in summ.columns and np.issubdtype(np.asarray(summ[c]).dtype, np.datetime64):
            summ[c] = pd.to_datetime(summ[c]).dt.strftime("%Y-%m-%d %H:%M")
    if "lifetime" in summ.columns and pd.api.types.is_timedelta64_dtype(summ["lifetime"]):
        summ["lifetime"] = summ["lifetime"] / pd.Timedelta(hours=1)
    # Hover text as readers write it, in the axes' convention (°E/°W), numbers with fixed decimals
    # and thousands separators (1,213.4 km, not 1.213e+3); the data keep their own convention.
    summ["genesis_text"] = [f"{lat_label(a)} {lon_label(o)}" for a, o in zip(summ[glat], summ[glon])]
    tips = [("track", "@track_id"), ("class", "@kind"), ("genesis", "@genesis_text")]
    text_cols = []
    for c in stat_cols:
        tip, unit = _HOVER_STATS[c]
        if c in ("start", "end"):
            col = c
        else:
            col = f"{c}_text"
            decimals = 0 if c in ("n_steps", "max_area_km2") else 1
            summ[col] = [format_number(v, decimals) + (f" {unit}" if unit else "") for v in summ[c]]
        text_cols.append(col)
        tips.append((tip, f"@{{{col}}}"))
    vdims = ["track_id", "kind", glat, glon, "genesis_text", *stat_cols,
             *[c for c in text_cols if c not in stat_cols]]
    return hv.Points(summ, kdims=["x", "y"], vdims=vdims, group="Genesis").opts(
        color="kind", cmap={CLASS_SHORT[c]: CLASS_COLORS[c] for c in CLASS_SHORT}, size=8, line_color="black",
        tools=[HoverTool(tooltips=tips)], show_legend=False, marker="circle")


def tracks(
    track_table: Any,
    *,
    summary: pd.DataFrame | None = None,
    color: str = "class",
    classes: ClassesLike = (TC, AR),
    projection: Any = None,
    cmap: str = "plasma",
    coastline_resolution: Resolution = "c",
    frame_width: int = 720,
    title: str = "Event tracks",
):
    """Event tracks on a map with genesis points and hover statistics.

    Parameters
    ----------
    track_table
        Per-event rows with ``track_id`` (paths), one row per track with
        ``genesis_lat/lon`` (genesis-to-lysis lines), or an object with such
        DataFrames as attributes (``points``/``events`` and ``summary``/``tracks``).
    summary
        One row per track (``track_id`` + statistics) to show on hover at the
        genesis points; default: taken from ``track_table`` or derived from the rows.
    color
        ``"class"`` (TC/AR colours with a legend) or a numeric column of the
        per-event rows (e.g. ``"area_km2"``) to colour the paths by intensity.
    classes
        Classes to show, as numbers (1 TC, 2 AR) or names ("tc", "ar").
    projection
        PlateCarree of any central longitude (default PlateCarree()); other
        projections are not supported for tracks.
    cmap
        Colour map for ``color`` = a column.

    Returns
    -------
    holoviews.Overlay
        Paths (group ``Track``), genesis points (group ``Genesis``) and coastlines.
    """
    import holoviews as hv

    from climviz.viz._backend import ensure_bokeh, fixed_size_hook
    from climviz.viz.coastlines import coastlines

    ensure_bokeh()
    points, summ = _unpack(track_table)
    if summary is not None:
        summ = summary
    crs, fast, center = resolve_projection(projection)
    if not fast:
        raise DataError(f"tracks() draws on PlateCarree maps (any central_longitude); got {type(crs).__name__}")
    keep = set(class_ids(classes))  # numbers or names ("tc", "AR")
    paths, summ = _paths_and_summary(points, summ, keep, color, center)
    layers = [*_path_layers(paths, keep, color, cmap), _genesis_points(summ, center),
              coastlines(coastline_resolution, projection=crs, geo=False)]
    plot_opts = dict(projection=crs, frame_width=frame_width, frame_height=frame_width // 2, data_aspect=1,
                     hooks=[fixed_size_hook],
                     xlim=(-180.0, 180.0),
                     ylim=(-90.0, 90.0), xlabel="longitude", ylabel="latitude", title=title,
                     xformatter=lon_tick_formatter(center), yformatter=lat_tick_formatter(),
                     legend_position="top_left")
    return hv.Overlay(layers).opts(**plot_opts)
