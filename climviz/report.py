"""The report folder of ``climviz demo`` and ``climviz report``: a scorecard first, then maps and tables.

:func:`report` writes, for a mask dataset (from :func:`climviz.predict` or
:func:`climviz.labels.label_run`) and optionally the run it was computed from:

* ``index.html`` -- the page to open first: the skill scorecard (the masks against the
  run's ``LABELS``, next to the heuristic detectors on the same steps), maps, training
  curves, event counts and links to everything else; plain HTML, no JavaScript.
* ``explorer.html`` -- an interactive, self-contained map (time slider, variable
  choice, class check boxes) with the events of the step shown.
* ``scorecard.csv`` -- IoU per class and event-level POD / FAR / CSI, model and heuristic.
* ``events.csv``, ``tracks.csv``, ``event_counts.csv`` -- events, tracks, and counts and mean
  areas per class.
* PNGs: ``map_first_step.png``, ``panel_maps.png`` (labels | model | heuristic),
  ``frequency_tc.png``, ``frequency_ar.png``, ``tracks_map.png``, ``training_curves.png``.

Without labels the skill section is left out and the page says so.
"""

from __future__ import annotations

import html
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from climviz._compat import class_id, renamed_kwargs
from climviz.errors import DataError, OutputExistsError
from climviz.utils.atomic import atomic_path

log = logging.getLogger(__name__)

#: Class values and names used in the report.
CLASS_NAMES = {0: "background", 1: "TC", 2: "AR"}
#: The skill the demo promises on its held-out steps (issue 21).
SKILL_BAR = {"miou": 0.6, "iou_tc": 0.5, "iou_ar": 0.5, "tc_event_ratio": 2.0}
QUICK_SKILL_BAR = {"miou": 0.45}


@dataclass
class DemoReport:
    """What the demo or report wrote: the report folder, its files and the printed summary."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- skill


def pixel_iou(pred: np.ndarray, truth: np.ndarray, classes: Sequence[int] = (0, 1, 2)) -> dict[int, float]:
    """Intersection over union of each class value over all cells of ``pred`` and ``truth``.

    A class present in neither mask gets NaN.
    """
    out = {}
    for c in classes:
        p, t = pred == c, truth == c
        union = int(np.logical_or(p, t).sum())
        out[int(c)] = float(np.logical_and(p, t).sum() / union) if union else float("nan")
    return out


def scorecard(pred: Any, truth: Any, *, heuristic: Any = None, lat: Any = None, lon: Any = None) -> pd.DataFrame:
    """Skill of the model masks (and of the heuristic masks) against the labels, one row per source and class.

    Parameters
    ----------
    pred, truth, heuristic
        Class masks (time, lat, lon) on the same grid and steps: DataArrays or numpy arrays
        (then ``lat``/``lon`` in degrees are needed for event areas).

    Returns
    -------
    pandas.DataFrame
        Columns ``source`` ("model" / "heuristic"), ``class`` (0, 1, 2 and "mean" for mIoU),
        ``name``, ``iou`` (pixel IoU over all steps), ``n_true``, ``n_pred`` (events over all
        steps), ``pod``, ``far``, ``csi`` (event-level, matched at IoU >= 0.1 by
        :func:`climviz.events.skill`).
    """
    from climviz.events import skill

    rows = []
    for source, masks in (("model", pred), ("heuristic", heuristic)):
        if masks is None:
            continue
        p = np.asarray(getattr(masks, "values", masks))
        t = np.asarray(getattr(truth, "values", truth))
        if p.shape != t.shape:
            raise DataError(f"scorecard: {source} masks have shape {p.shape}, the labels {t.shape}; "
                            f"expected the same steps on the same grid")
        ious = pixel_iou(p, t)
        kw = {} if hasattr(masks, "dims") and hasattr(truth, "dims") else {"lat": lat, "lon": lon}
        ev = skill(masks, truth, **kw).set_index("class")
        for c in (0, 1, 2):
            row = {"source": source, "class": c, "name": CLASS_NAMES[c], "iou": ious[c]}
            if c in ev.index:
                row.update({k: ev.loc[c, k] for k in ("n_true", "n_pred", "pod", "far", "csi")})
            rows.append(row)
        rows.append({"source": source, "class": "mean", "name": "mIoU", "iou": float(np.nanmean(list(ious.values())))})
    return pd.DataFrame(rows, columns=["source", "class", "name", "iou", "n_true", "n_pred", "pod", "far", "csi"])


def skill_verdict(card: pd.DataFrame, bar: dict[str, float]) -> tuple[bool, list[str]]:
    """Whether the model rows of ``card`` meet ``bar`` (keys of :data:`SKILL_BAR`), and what falls short."""
    model = card[card["source"] == "model"].set_index("name")
    got = {"miou": model.loc["mIoU", "iou"], "iou_tc": model.loc["TC", "iou"], "iou_ar": model.loc["AR", "iou"]}
    n_true = model.loc["TC", "n_true"]
    got["tc_event_ratio"] = model.loc["TC", "n_pred"] / n_true if n_true and not np.isnan(n_true) else float("nan")
    short = []
    for key, need in bar.items():
        value = got[key]
        ok = value <= need if key == "tc_event_ratio" else value >= need
        if not ok or np.isnan(value):
            what = "at most" if key == "tc_event_ratio" else "at least"
            short.append(f"{key} {value:.3g} (needs {what} {need:g})")
    return not short, short


# --------------------------------------------------------------------------- drawing


def _gridlines(ax) -> None:
    """Labelled lon/lat gridlines (once per axes)."""
    if getattr(ax, "_gridliners", None):
        return
    gl = ax.gridlines(draw_labels=True, linewidth=0.4, color="0.4", alpha=0.6, linestyle="--")
    gl.top_labels = gl.right_labels = False
    gl.xlabel_style = gl.ylabel_style = {"size": 7}


def _time_title(t: Any) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M UTC")


def _class_axes(ax, mask2d, lat, lon, title: str) -> None:
    """A categorical class mask on a map: TC and AR cells in the class colours, land grey, gridlines."""
    import cartopy.crs as ccrs
    from matplotlib.colors import ListedColormap

    from climviz.viz import CLASS_COLORS
    from climviz.viz.coastlines import coastline_feature, land_feature

    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    m = np.asarray(mask2d)
    order = np.argsort(((lon + 180.0) % 360.0) - 180.0)
    lon_c = (((lon + 180.0) % 360.0) - 180.0)[order]
    m = m[:, order]
    ax.add_feature(land_feature("c"))
    shown = np.ma.masked_where(m == 0, m.astype(float))
    ax.pcolormesh(_edges(lon_c), _edges(lat), shown, cmap=ListedColormap([CLASS_COLORS[1], CLASS_COLORS[2]]),
                  vmin=0.5, vmax=2.5, transform=ccrs.PlateCarree(), shading="flat", rasterized=True)
    ax.add_feature(coastline_feature("c"))
    ax.set_global()
    _gridlines(ax)
    ax.set_title(title, fontsize=9)


def _edges(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=float)
    if c.size < 2:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _class_legend(fig) -> None:
    from matplotlib.patches import Patch

    from climviz.viz import CLASS_COLORS, CLASS_LONG

    fig.legend(handles=[Patch(facecolor=CLASS_COLORS[c], label=CLASS_LONG[c]) for c in (1, 2)],
               loc="lower center", ncol=2, frameon=False)


def _save_fig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def panel_maps(columns: dict[str, Any], times: Sequence[Any], path: Path) -> Path:
    """Rows = time steps, columns = masks (e.g. labels | model | heuristic), in the same class colours."""
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    names = list(columns)
    fig, axes = plt.subplots(len(times), len(names), figsize=(4.2 * len(names), 2.5 * len(times) + 0.6),
                             subplot_kw={"projection": ccrs.PlateCarree()}, squeeze=False, layout="constrained")
    for i, t in enumerate(times):
        for j, name in enumerate(names):
            m = columns[name].sel(time=t)
            _class_axes(axes[i, j], m.values, m["lat"].values, m["lon"].values, f"{name} — {_time_title(t)}")
    _class_legend(fig)
    return _save_fig(fig, path)


def training_curves(metrics: pd.DataFrame, path: Path, bar: dict[str, float] | None = None) -> Path:
    """Loss and validation IoU per class per epoch (PNG)."""
    import matplotlib.pyplot as plt

    from climviz.viz import CLASS_COLORS

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    e = metrics["epoch"]
    a1.plot(e, metrics["train_loss"], "o-", ms=3, label="training loss")
    a1.plot(e, metrics["val_loss"], "s-", ms=3, label="validation loss (held-out steps)")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss (weighted cross entropy + Dice)")
    a1.set_title("loss per epoch")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8)
    a2.plot(e, metrics["iou_background"], "-", color="0.5", label="background")
    a2.plot(e, metrics["iou_tc"], "o-", ms=3, color=CLASS_COLORS[1], label="TC")
    a2.plot(e, metrics["iou_ar"], "o-", ms=3, color=CLASS_COLORS[2], label="AR")
    a2.plot(e, metrics["miou"], "k-", lw=2, label="mean (mIoU)")
    if bar:
        a2.axhline(bar.get("iou_tc", 0.5), color="0.3", ls=":", lw=1, label="TC/AR bar")
        a2.axhline(bar.get("miou", 0.6), color="k", ls="--", lw=1, label="mIoU bar")
    a2.set_ylim(0, 1)
    a2.set_xlabel("epoch")
    a2.set_ylabel("IoU on held-out steps")
    a2.set_title("validation IoU per class per epoch")
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8, loc="lower right")
    return _save_fig(fig, path)


def tracks_map(tracks, path: Path, title: str = "event tracks") -> Path:
    """Static map of the tracks: one line per track from its events' centroids, genesis dots."""
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    from climviz.viz import CLASS_COLORS, CLASS_LONG
    from climviz.viz.coastlines import coastline_feature, land_feature

    fig = plt.figure(figsize=(10, 5.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1, projection=ccrs.PlateCarree())
    ax.add_feature(land_feature("c"))
    ax.add_feature(coastline_feature("c"))
    ev = tracks.events
    seen: set[int] = set()
    for _, g in ev.sort_values("time").groupby("track_id"):
        cls = int(g["class"].iloc[0])
        lon = ((g["centroid_lon"].to_numpy() + 180.0) % 360.0) - 180.0
        lat = g["centroid_lat"].to_numpy()
        lon = np.degrees(np.unwrap(np.radians(lon)))  # no line across the whole map at the date line
        ax.plot(lon, lat, "-", color=CLASS_COLORS[cls], lw=1.4, transform=ccrs.PlateCarree(),
                label=CLASS_LONG[cls] if cls not in seen else None)
        ax.plot(lon[:1], lat[:1], "o", color=CLASS_COLORS[cls], ms=4, transform=ccrs.PlateCarree())
        seen.add(cls)
    ax.set_global()
    _gridlines(ax)
    n = tracks.tracks["class"].value_counts()
    ax.set_title(f"{title}: {int(n.get(1, 0))} TC and {int(n.get(2, 0))} AR tracks (dots: first step)")
    if seen:
        ax.legend(loc="lower left", fontsize=8)
    return _save_fig(fig, path)


def field_map(field, path: Path, *, mask=None, time=0, title: str | None = None, cmap: str | None = None,
              clim=None) -> Path:
    """:func:`climviz.viz.static_map` with labelled gridlines, saved as PNG."""
    from climviz.viz import static_map

    fig = static_map(field, mask, time=time, title=title, cmap=cmap, clim=clim, coastline_resolution="c")
    _gridlines(fig.axes[0])
    return _save_fig(fig, path)


@renamed_kwargs(cls="classes")
def class_frequency_percent(mask: Any, classes: int | str) -> Any:
    """Percent of time steps each cell is in one class, named with a CF long_name and units.

    Parameters
    ----------
    mask
        Class mask DataArray ``(time, lat, lon)``.
    classes
        One class: 1 or ``"tc"`` (TC), 2 or ``"ar"`` (AR). (``cls=`` is the old,
        deprecated spelling.)

    Returns
    -------
    xarray.DataArray
        ``(lat, lon)`` in percent of time steps, named ``frequency_tc`` or ``frequency_ar``.

    Examples
    --------
    >>> from climviz.report import class_frequency_percent
    >>> masks = cv.synthetic_run(4, shape=(32, 48))["LABELS"]
    >>> f = class_frequency_percent(masks, cv.data.TC)
    >>> f.name, f.attrs["units"], bool(f.max() <= 100)
    ('frequency_tc', '%', True)
    """
    from climviz.events import frequency

    c = class_id(classes)
    if c not in (1, 2):
        raise DataError(f"classes: expected 1 (TC) or 2 (AR), found {classes!r}")
    f = frequency(mask, c) * 100.0
    long = {1: "tropical cyclone frequency", 2: "atmospheric river frequency"}[c]
    f.name = f"frequency_{CLASS_NAMES[c].lower()}"
    f.attrs = {"long_name": long, "units": "%"}
    return f


# --------------------------------------------------------------------------- explorer


READABLE = {"time": "time (UTC)", "event": "event", "class": "class", "n_cells": "grid cells",
            "area_km2": "area (km²)", "centroid_lat": "centre lat (°N)", "centroid_lon": "centre lon (°E)",
            "lat_min": "southmost lat (°N)", "lat_max": "northmost lat (°N)", "track_id": "track",
            "PSL_min": "min sea-level pressure (hPa)", "PSL_mean": "mean sea-level pressure (hPa)",
            "TMQ_max": "max water vapour (kg m⁻²)", "TMQ_mean": "mean water vapour (kg m⁻²)",
            "PRECT_max": "max precipitation (mm/day)", "PRECT_mean": "mean precipitation (mm/day)"}


def readable_events(tab: pd.DataFrame) -> pd.DataFrame:
    """The events table with units people read: named classes, hPa, mm/day, rounded numbers."""
    t = tab.copy()
    if "time" in t:
        t["time"] = pd.to_datetime(t["time"]).dt.strftime("%Y-%m-%d %H:%M")
    if "class" in t:
        t["class"] = t["class"].map(lambda c: CLASS_NAMES.get(int(c), str(c)))
    for c in ("PSL_min", "PSL_mean"):
        if c in t:
            t[c] = t[c] / 100.0
    for c in ("PRECT_max", "PRECT_mean"):
        if c in t:
            t[c] = t[c] * 86400.0 * 1000.0
    keep = [c for c in READABLE if c in t]
    t = t[keep].rename(columns=READABLE)
    for c in t.columns:
        if t[c].dtype.kind == "f":
            t[c] = t[c].round(0 if "km²" in c else 1)
    return t


def _to_pm180(da):
    """``da`` with longitudes in [-180, 180), ascending, and latitude ascending (for drawing)."""
    lon = ((da["lon"] + 180.0) % 360.0) - 180.0
    da = da.assign_coords(lon=lon).sortby("lon")
    return da.sortby("lat") if "lat" in da.dims else da


def _palette(cmap: str) -> list[str]:
    import matplotlib
    from matplotlib.colors import to_hex

    cm = matplotlib.colormaps[cmap]
    return [to_hex(cm(i / 255.0)) for i in range(256)]


def _class_rgba(mask2d: np.ndarray, cls: int) -> np.ndarray:
    """An RGBA image (uint32, little-endian ABGR as Bokeh wants) of the cells of class ``cls``."""
    from matplotlib.colors import to_rgb

    from climviz.viz import CLASS_COLORS

    r, g, b = (int(255 * c) for c in to_rgb(CLASS_COLORS[cls]))
    img = np.zeros(mask2d.shape, dtype=np.uint32)
    img[mask2d == cls] = (170 << 24) | (b << 16) | (g << 8) | r
    return img


@dataclass
class _Frames:
    """The pictures an explorer page switches between: per variable, one array per time step."""

    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    clims: dict[str, list[float]] = field(default_factory=dict)
    palettes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def first(self) -> str:
        return next(iter(self.frames))


def _explorer_frames(run: Any, masks: Any, mask: Any, variables: Sequence[str]) -> _Frames:
    """Every frame of every variable in display units with its colour limits and palette (masks only: blank)."""
    from climviz.viz.style import display_field

    fr = _Frames()
    for v in variables:
        if run is None or v not in run:
            continue
        shown, _name, label, style = display_field(run[v])
        da = _to_pm180(shown.sel(time=masks["mask"]["time"]).load()).astype("float32")
        fr.frames[v] = [da.isel(time=i).values for i in range(da.sizes["time"])]
        lo, hi = np.nanpercentile(da.values, [1, 99])
        if getattr(style, "kind", "") == "diverging":
            c = float(getattr(style, "center", 0.0) or 0.0)
            half = max(abs(hi - c), abs(lo - c))
            lo, hi = c - half, c + half
        fr.clims[v], fr.labels[v] = [float(lo), float(hi)], label
        fr.palettes[v] = _palette(style.cmap if isinstance(style.cmap, str) else "viridis")
    if not fr.frames:  # masks only: draw the classes on a blank map
        fr.frames["mask"] = [np.zeros(mask.shape[1:], dtype="float32") for _ in range(mask.sizes["time"])]
        fr.clims["mask"], fr.labels["mask"], fr.palettes["mask"] = [0.0, 1.0], "no run given: classes only", \
            ["#ffffff"] * 2
    return fr


def _explorer_figure(mask: Any, fr: _Frames, stamp: str) -> dict[str, Any]:
    """The Bokeh map: field image with hover, TC and AR images, coastlines, grid and colour bar.

    Returns the models the page's JavaScript updates (``fig``, ``mapper``, ``cbar``, ``img_src``,
    ``class_renderers``, ``class_frames``).
    """
    from bokeh.models import (  # type: ignore[attr-defined]  # bokeh's stub lacks the lazily built names
        ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, Range1d)
    from bokeh.plotting import figure

    from climviz.viz.coastlines import coastline_lines

    lon, lat = mask["lon"].values.astype(float), mask["lat"].values.astype(float)
    dlon = float(np.diff(lon).mean()) if lon.size > 1 else 1.0
    dlat = float(np.diff(lat).mean()) if lat.size > 1 else 1.0
    place = {"x": lon[0] - dlon / 2, "y": lat[0] - dlat / 2, "dw": dlon * lon.size, "dh": dlat * lat.size}
    first = fr.first
    fig = figure(width=900, height=470, x_range=Range1d(start=-180, end=180), y_range=Range1d(start=-90, end=90),
                 match_aspect=True,
                 title=f"{fr.labels[first]} — {stamp}", tools="pan,wheel_zoom,box_zoom,reset,save",
                 active_scroll="wheel_zoom", x_axis_label="longitude (°E)", y_axis_label="latitude (°N)")
    mapper = LinearColorMapper(palette=fr.palettes[first], low=fr.clims[first][0], high=fr.clims[first][1],
                               nan_color="#dddddd")
    img_src = ColumnDataSource({"image": [fr.frames[first][0]]})
    img = fig.image(image="image", source=img_src, color_mapper=mapper, **place)  # type: ignore[call-arg]
    fig.add_tools(HoverTool(renderers=[img], tooltips=[("lon", "$x{0.0}°E"), ("lat", "$y{0.0}°N"),
                                                       ("value", "@image{0.00}")]))
    class_renderers = []
    class_frames = {}
    for cls in (1, 2):
        class_frames[cls] = [_class_rgba(mask.isel(time=i).values, cls) for i in range(mask.sizes["time"])]
        src = ColumnDataSource({"image": [class_frames[cls][0]]})
        class_renderers.append(fig.image_rgba(image="image", source=src, name=f"class_{cls}", **place))
    lines = coastline_lines("c")
    fig.multi_line([ln[:, 0].tolist() for ln in lines], [ln[:, 1].tolist() for ln in lines],
                   line_color="black", line_width=0.7)
    fig.xgrid.grid_line_color = fig.ygrid.grid_line_color = "#555555"
    fig.xgrid.grid_line_alpha = fig.ygrid.grid_line_alpha = 0.35
    fig.xgrid.grid_line_dash = fig.ygrid.grid_line_dash = [4, 4]
    cbar = ColorBar(color_mapper=mapper, title=fr.labels[first], orientation="horizontal", height=12)
    fig.add_layout(cbar, "below")
    return {"fig": fig, "mapper": mapper, "cbar": cbar, "img_src": img_src, "class_renderers": class_renderers,
            "class_frames": class_frames}


def _explorer_events(tab: pd.DataFrame, times: pd.DatetimeIndex) -> dict[str, Any]:
    """The events table under the map (first step shown) and every event with its step index, for the JavaScript."""
    from bokeh.models import ColumnDataSource, DataTable, Div, TableColumn  # type: ignore[attr-defined]

    t = readable_events(tab) if len(tab) else pd.DataFrame({"time (UTC)": []})
    step_of = (pd.to_datetime(tab["time"]).map({tt: i for i, tt in enumerate(times)}).to_numpy()
               if len(tab) else np.array([], dtype=int))
    all_events = {str(c): t[c].tolist() for c in t.columns}
    all_events["_step"] = [int(s) for s in step_of]
    ev_src = ColumnDataSource({k: [x for x, s in zip(v, all_events["_step"]) if s == 0]
                               for k, v in all_events.items()})
    widths = {"time (UTC)": 130, "class": 50, "event": 50, "track": 50}
    table = DataTable(source=ev_src, columns=[TableColumn(field=str(c), title=str(c), width=widths.get(str(c), 110))
                                              for c in t.columns],
                      width=1250, height=230, index_position=None, sortable=True, autosize_mode="none")
    ev_head = Div(text=f"<b>Events at this step</b> ({int((step_of == 0).sum())} of {len(tab)} in the run; "
                       f"all in events.csv)")
    return {"ev_src": ev_src, "all_events": all_events, "ev_head": ev_head, "table": table}


#: The explorer page's JavaScript: show step ``slider.value`` of variable ``select.value``.
_EXPLORER_UPDATE_JS = """
        const i = slider.value, v = select.value;
        img_src.data = {image: [frames[v][i]]};
        tc_src.data = {image: [tc_frames[i]]};
        ar_src.data = {image: [ar_frames[i]]};
        mapper.palette = palettes[v]; mapper.low = clims[v][0]; mapper.high = clims[v][1];
        cbar.title = labels[v];
        fig.title.text = labels[v] + ' — ' + stamps[i];
        when.text = '<b>' + stamps[i] + '</b>';
        const keep = [];
        all_events['_step'].forEach((s, k) => { if (s === i) keep.push(k); });
        const d = {};
        for (const c of Object.keys(all_events)) d[c] = keep.map(k => all_events[c][k]);
        ev_src.data = d;
        ev_head.text = '<b>Events at this step</b> (' + keep.length + ' of ' + n_total
                       + ' in the run; all in events.csv)';
    """


def _explorer_layout(fr: _Frames, stamps: list[str], view: dict[str, Any], ev: dict[str, Any], n_total: int,
                     title: str) -> Any:
    """Slider, variable list and class check boxes wired to the map and table by JavaScript; the page layout."""
    from bokeh.layouts import column, row
    from bokeh.models import CheckboxGroup, CustomJS, Div, Select, Slider  # type: ignore[attr-defined]

    from climviz.viz import CLASS_COLORS, CLASS_LONG

    slider = Slider(start=0, end=max(1, len(stamps) - 1), value=0, step=1, title="time step", width=600,
                    disabled=len(stamps) < 2)
    when = Div(text=f"<b>{stamps[0]}</b>")
    select = Select(title="variable", value=fr.first, options=[(k, fr.labels[k]) for k in fr.frames], width=280)
    toggles = CheckboxGroup(labels=[CLASS_LONG[1], CLASS_LONG[2]], active=[0, 1], inline=True)
    key = Div(text=" ".join(f"<span style='color:{CLASS_COLORS[c]};font-size:1.3em'>&#9632;</span> {CLASS_LONG[c]}"
                            for c in (1, 2)))
    renderers = view["class_renderers"]
    args = {"slider": slider, "select": select, "img_src": view["img_src"], "mapper": view["mapper"],
            "cbar": view["cbar"], "fig": view["fig"], "when": when,
            "frames": fr.frames, "clims": fr.clims, "labels": fr.labels, "palettes": fr.palettes, "stamps": stamps,
            "tc_src": renderers[0].data_source, "ar_src": renderers[1].data_source,
            "tc_frames": view["class_frames"][1], "ar_frames": view["class_frames"][2], "ev_src": ev["ev_src"],
            "all_events": ev["all_events"], "ev_head": ev["ev_head"], "n_total": n_total}
    update = CustomJS(args=args, code=_EXPLORER_UPDATE_JS)
    slider.js_on_change("value", update)
    select.js_on_change("value", update)
    toggles.js_on_change("active", CustomJS(args={"r": renderers, "toggles": toggles}, code="""
        r[0].visible = toggles.active.includes(0); r[1].visible = toggles.active.includes(1);"""))
    intro = Div(text=f"<h2>{html.escape(title)}</h2><p>Move the <b>time step</b> slider, pick a <b>variable</b>, "
                     "tick the <b>classes</b> to show. Everything is embedded: "
                     "this page works offline.</p>", width=1000)
    return column(intro, row(select, column(Div(text="classes shown"), toggles, key)), row(slider, when),
                  view["fig"], ev["ev_head"], ev["table"])


def explorer_page(run, masks, tab: pd.DataFrame, path: Path, *, variables: Sequence[str] = ("TMQ", "PSL", "PRECT"),
                  title: str = "climviz explorer") -> Path:
    """A self-contained page to explore a run offline: map, time slider, variable choice, class toggles, events.

    Every frame (variable x time step) and mask is embedded in the page and switched
    by JavaScript, so the slider, the variable list and the class check boxes work
    without Python or a network. The events table below the map lists the events of
    the step shown, with readable column names and units.

    Parameters
    ----------
    run
        The run (fields ``variables`` are offered where present), or None (mask only).
    masks
        Mask dataset (``mask`` variable).
    tab
        Event table (:func:`climviz.events.table`, optionally with ``track_id``).
    path
        Output ``.html`` file (written atomically).
    """
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    mask = _to_pm180(masks["mask"].load())
    times = pd.to_datetime(mask["time"].values)
    stamps = [t.strftime("%Y-%m-%d %H:%M UTC") for t in times]
    fr = _explorer_frames(run, masks, mask, variables)
    view = _explorer_figure(mask, fr, stamps[0])
    ev = _explorer_events(tab, times)
    layout = _explorer_layout(fr, stamps, view, ev, len(tab), title)
    page = file_html(layout, INLINE, title=title)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path



# --------------------------------------------------------------------------- index page


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        return f"{v:,.0f}" if abs(float(v)) >= 1000 else f"{v:.3f}"
    return html.escape(str(v))


def _df_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def scorecard_table(card: pd.DataFrame) -> pd.DataFrame:
    """Model and heuristic side by side, one row per class (for the page and the summary)."""
    rows = []
    for name in ("mIoU", "background", "TC", "AR"):
        row: dict[str, Any] = {"class": name}
        for source in ("model", "heuristic"):
            r = card[(card["source"] == source) & (card["name"] == name)]
            if r.empty:
                continue
            r = r.iloc[0]
            row[f"{source} IoU"] = r["iou"]
            if name in ("TC", "AR"):
                row[f"{source} events (labelled)"] = f"{int(r['n_pred'])} ({int(r['n_true'])})"
                row[f"{source} POD"] = r["pod"]
                row[f"{source} FAR"] = r["far"]
                row[f"{source} CSI"] = r["csi"]
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def index_page(path: Path, *, title: str, verdict: str | None, facts: list[tuple[str, str]],
               card: pd.DataFrame | None, no_skill_reason: str | None, counts: pd.DataFrame,
               images: list[tuple[str, str]], links: list[tuple[str, str]]) -> Path:
    """Write ``index.html``: verdict, scorecard, images, counts, links (plain HTML, relative links)."""
    css = ("body{font:14px/1.45 system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;"
           "text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
           ".facts td{text-align:left}img{max-width:100%;border:1px solid #ddd;margin:.3em 0}"
           ".ok{color:#1a7f37}.bad{color:#b42318}"
           ".verdict{font-size:1.15em;font-weight:600;padding:.6em;border-radius:6px;background:#f6f8fa}")
    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>")]
    if verdict:
        cls = "ok" if verdict.startswith("PASS") else "bad"
        parts.append(f"<p class='verdict {cls}'>{html.escape(verdict)}</p>")
    parts.append("<table class='facts'>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                                      for k, v in facts) + "</table>")
    parts.append("<h2>Skill against the labels</h2>")
    if card is not None:
        parts.append("<p>Pixel IoU per class and event-level probability of detection (POD), false-alarm "
                     "ratio (FAR) and critical success index (CSI; events matched at IoU ≥ 0.1), of the "
                     "model's masks and of the heuristic detectors (<code>climviz.labels.label_run</code>) "
                     "on the same time steps.</p>")
        parts.append(_df_html(scorecard_table(card)))
    else:
        parts.append(f"<p class='bad'>No skill section: {html.escape(no_skill_reason or 'no labels')}.</p>")
    for caption, src in images:
        parts.append(f"<h2>{html.escape(caption)}</h2><img src='{html.escape(src)}' alt='{html.escape(caption)}'>")
    parts.append("<h2>Events and tracks per class</h2>" + _df_html(counts))
    parts.append("<h2>Files</h2><ul>" + "".join(
        f"<li><a href='{html.escape(href)}'>{html.escape(href)}</a> — {html.escape(what)}</li>" for href, what in links)
        + "</ul></body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the report


def check_out(out: str | Path, overwrite: bool) -> Path:
    """The report folder; OutputExistsError if it holds files and ``overwrite`` is False."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; expected a report folder to create")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: a report (or other files) is already there; "
                                f"pass --overwrite (overwrite=True) to replace it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def event_counts(tab: pd.DataFrame, tracks) -> pd.DataFrame:
    """Counts and mean areas per class: event rows, tracks, mean event area, mean track lifetime."""
    rows = []
    for c in (1, 2):
        e = tab[tab["class"] == c] if len(tab) else tab
        tr = tracks.tracks[tracks.tracks["class"] == c] if len(tracks.tracks) else tracks.tracks
        rows.append({"class": CLASS_NAMES[c], "events (step, region)": len(e),
                     "events per step": float(len(e) / max(1, tab["time"].nunique())) if len(tab) else 0.0,
                     "mean area (km²)": float(e["area_km2"].mean()) if len(e) else float("nan"),
                     "tracks": len(tr),
                     "mean track lifetime (h)": float(tr["lifetime_h"].mean()) if len(tr) else float("nan")})
    return pd.DataFrame(rows)


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


@dataclass
class _ReportState:
    """What the stages of :func:`report` share: inputs, then what each stage adds."""

    out: Path
    mask: Any  # the model's class mask, loaded
    run: Any = None
    truth: Any = None  # labels to score against (loaded where scored), or None
    heur: Any = None  # the heuristic detectors' mask, or None
    times: Any = None  # the time steps scored
    card: pd.DataFrame | None = None
    no_skill: str | None = None  # why there is no skill section
    verdict: str | None = None
    tab: pd.DataFrame | None = None  # events
    trk: Any = None  # tracks
    counts: pd.DataFrame | None = None
    images: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def write_csv(self, key: str, frame: pd.DataFrame, name: str) -> None:
        self.files[key] = _write_csv(frame, self.out / name)


def _truth_of(run: Any, labels: Any) -> Any:
    """The labels to score against: ``labels`` (DataArray or mask dataset), else the run's ``LABELS``."""
    if labels is not None:
        return labels["mask"] if hasattr(labels, "data_vars") and "mask" in labels else labels
    if run is not None and "LABELS" in run:
        return run["LABELS"]
    return None


def _heuristic_of(run: Any, heuristic: Any) -> Any:
    """The heuristic mask: computed from ``run`` (``heuristic=True``), given, or None."""
    heur = None
    if heuristic is True and run is not None:
        from climviz.labels import label_run

        try:
            heur = label_run(run)["mask"]
        except DataError as exc:  # e.g. a run without the fields the detectors need
            log.warning("heuristic detectors not run: %s", exc)
    elif heuristic is not None and heuristic is not False and heuristic is not True:
        heur = heuristic["mask"] if hasattr(heuristic, "data_vars") else heuristic
    return None if heur is None else heur.load()


def _score_stage(st: _ReportState, eval_times: Any, skill_bar: dict[str, float] | None) -> None:
    """Scorecard of the model (and heuristic) against the labels, its summary lines and the verdict."""
    st.times = st.mask["time"].values if eval_times is None else np.asarray(eval_times)
    if st.truth is None:
        st.no_skill = "the run has no LABELS and no labels were given, so the masks cannot be scored"
    else:
        st.truth = st.truth.load()
        sel = {"time": st.times}
        st.card = scorecard(st.mask.sel(**sel), st.truth.sel(**sel),
                            heuristic=None if st.heur is None else st.heur.sel(**sel))
        st.write_csv("scorecard", st.card, "scorecard.csv")
        scope = "all steps" if eval_times is None else f"{len(st.times)} held-out steps"
        st.summary.update(_skill_summary(st.card, scope, with_heuristic=st.heur is not None))
    if st.card is not None and skill_bar:
        ok, short = skill_verdict(st.card, skill_bar)
        bar_txt = ", ".join(f"{k} {'<=' if k == 'tc_event_ratio' else '>='} {v:g}" for k, v in skill_bar.items())
        st.verdict = (f"PASS: the model meets the skill bar ({bar_txt})" if ok else
                      f"BELOW THE BAR: {'; '.join(short)}. These masks are not a usable result; "
                      f"train longer (more epochs) or on more data.")
        st.summary = {"verdict": st.verdict, **st.summary}
    elif st.card is None:
        st.summary["skill"] = f"not scored: {st.no_skill}"


def _skill_summary(card: pd.DataFrame, scope: str, *, with_heuristic: bool) -> dict[str, str]:
    """The summary lines of a scorecard: IoU, event counts and POD / FAR / CSI (``model | heuristic``)."""
    m = card[card["source"] == "model"].set_index("name")
    h = card[card["source"] == "heuristic"].set_index("name") if with_heuristic else None
    lines = {f"skill ({scope})": "model vs labels" + (" | heuristic vs labels" if with_heuristic else "")}
    for name, key in (("mIoU", "mIoU"), ("TC", "IoU TC"), ("AR", "IoU AR")):
        lines[key] = _pair(m.loc[name, "iou"], None if h is None else h.loc[name, "iou"])
    for name in ("TC", "AR"):
        lines[f"{name} events found/labelled"] = (
            f"{int(m.loc[name, 'n_pred'])}/{int(m.loc[name, 'n_true'])}"
            + ("" if h is None else f" | {int(h.loc[name, 'n_pred'])}/{int(h.loc[name, 'n_true'])}"))
        lines[f"{name} POD / FAR / CSI"] = (
            f"{m.loc[name, 'pod']:.2f} / {m.loc[name, 'far']:.2f} / {m.loc[name, 'csi']:.2f}"
            + ("" if h is None else
               f" | {h.loc[name, 'pod']:.2f} / {h.loc[name, 'far']:.2f} / {h.loc[name, 'csi']:.2f}"))
    return lines


def _events_stage(st: _ReportState) -> None:
    """Events, tracks and per-class counts of the model's masks (CSV files and summary lines)."""
    from climviz import events

    fields = None
    if st.run is not None:
        fields = {k: st.run[k] for k in ("PSL", "TMQ", "PRECT") if k in st.run}
    lab = events.label(st.mask)
    tab = st.tab = events.table(lab, st.mask, fields=fields)
    st.write_csv("events", tab, "events.csv")
    trk = st.trk = events.track(tab, lab)
    st.write_csv("tracks", trk.tracks, "tracks.csv")
    st.counts = event_counts(tab, trk)
    st.write_csv("event_counts", st.counts, "event_counts.csv")
    st.summary["TC events"] = int((tab["class"] == 1).sum()) if len(tab) else 0
    st.summary["AR events"] = int((tab["class"] == 2).sum()) if len(tab) else 0
    st.summary["tracks (TC, AR)"] = (f"{int((trk.tracks['class'] == 1).sum())}, "
                                     f"{int((trk.tracks['class'] == 2).sum())}")


def _first_step_picture(st: _ReportState) -> None:
    """``map_first_step.png``: the run's TMQ with the masks, or the masks alone on a blank map."""
    mask, out = st.mask, st.out
    if st.run is not None and "TMQ" in st.run:
        field_map(st.run["TMQ"], out / "map_first_step.png", mask=mask, time=0)
    else:
        import cartopy.crs as ccrs
        import matplotlib.pyplot as plt

        t0 = mask["time"].values[0]
        fig = plt.figure(figsize=(10, 5.2), layout="constrained")
        ax = fig.add_subplot(1, 1, 1, projection=ccrs.PlateCarree())
        _class_axes(ax, mask.isel(time=0).values, mask["lat"].values, mask["lon"].values,
                    f"predicted classes — {_time_title(t0)} (no run given: masks only)")
        _class_legend(fig)
        _save_fig(fig, out / "map_first_step.png")
    st.files["map"] = out / "map_first_step.png"
    st.images.append(("First time step", "map_first_step.png"))


def _pictures_stage(st: _ReportState, training_metrics: pd.DataFrame | None,
                    skill_bar: dict[str, float] | None) -> None:
    """The PNGs of the page: first step, labels | model | heuristic panels, training curves, frequencies, tracks."""
    mask, out = st.mask, st.out
    _first_step_picture(st)
    if st.truth is not None or st.heur is not None:
        cols = {}
        if st.truth is not None:
            cols["labels"] = st.truth
        cols["model"] = mask
        if st.heur is not None:
            cols["heuristic"] = st.heur
        times = np.asarray(st.times)
        pick = times[np.linspace(0, len(times) - 1, min(3, len(times))).round().astype(int)]
        st.files["panel_maps"] = panel_maps(cols, list(pick), out / "panel_maps.png")
        st.images.insert(0, (" | ".join(cols) + " (same colours)", "panel_maps.png"))
    if training_metrics is not None and len(training_metrics):
        st.files["training_curves"] = training_curves(training_metrics, out / "training_curves.png", bar=skill_bar)
        st.images.insert(1 if "panel_maps" in st.files else 0, ("Training curves", "training_curves.png"))
    span = f"{_time_title(mask['time'].values[0])} to {_time_title(mask['time'].values[-1])}"
    for cls, key in ((1, "tc"), (2, "ar")):
        freq = class_frequency_percent(mask, cls)
        top = float(freq.max()) if float(freq.max()) > 0 else 1.0
        field_map(freq, out / f"frequency_{key}.png", cmap="magma_r", clim=(0.0, top),
                  title=f"{freq.attrs['long_name']} (% of {mask.sizes['time']} steps, {span})")
        st.files[f"frequency_{key}"] = out / f"frequency_{key}.png"
        st.images.append((freq.attrs["long_name"], f"frequency_{key}.png"))
    st.files["tracks_map"] = tracks_map(st.trk, out / "tracks_map.png")
    st.images.append(("Tracks (table: tracks.csv)", "tracks_map.png"))


def _index_stage(st: _ReportState, *, title: str, facts: list[tuple[str, str]] | None,
                 training_metrics: pd.DataFrame | None) -> None:
    """``index.html``, linking only the files that are in the report folder."""
    links = [("explorer.html", "interactive map: time slider, variables, class toggles, events table"),
             ("events.csv", "one row per event (time step, connected region)"),
             ("tracks.csv", "one row per track (events linked in time)"),
             ("event_counts.csv", "counts and mean areas per class")]
    if st.card is not None:
        links.insert(1, ("scorecard.csv", "skill per class, model and heuristic"))
    links += [("training_metrics.csv", "per-epoch training metrics"), ("masks.nc", "the masks (CF netCDF)")]
    if training_metrics is not None:
        links.append(("summary.json", "the printed summary"))
    present = {p.name for p in st.out.iterdir()} | {"summary.json"}
    assert st.counts is not None  # _events_stage ran
    st.files["index"] = index_page(st.out / "index.html", title=title, verdict=st.verdict, facts=facts or [],
                                   card=st.card, no_skill_reason=st.no_skill, counts=st.counts,
                                   images=st.images, links=[lk for lk in links if lk[0] in present])


def report(masks, *, run=None, out: str | Path = "climviz_report", overwrite: bool = False, labels: Any = None,
           heuristic: Any = True, eval_times: Any = None, training_metrics: pd.DataFrame | None = None,
           skill_bar: dict[str, float] | None = None, title: str = "climviz report",
           facts: list[tuple[str, str]] | None = None) -> DemoReport:
    """Write the report folder for a mask dataset: scorecard, maps, tables and explorer.

    The stages, in order: inputs (labels and heuristic masks), scorecard and verdict,
    events and tracks, pictures, explorer page, index page; they share a small
    state object.

    Parameters
    ----------
    masks
        Mask dataset (``mask`` variable, 0 background, 1 TC, 2 AR) from :func:`climviz.predict`
        or :func:`climviz.labels.label_run`.
    run
        The run the masks were computed from: fields for the maps and the explorer, its
        ``LABELS`` (if any) as the truth, and the input of the heuristic detectors.
    out
        Report folder; it must not hold files unless ``overwrite``.
    overwrite
        Replace the files of an existing report.
    labels
        Truth masks instead of ``run["LABELS"]`` (DataArray or mask dataset on the same grid).
    heuristic
        True: run :func:`climviz.labels.label_run` on ``run`` for comparison; a mask dataset
        or DataArray: use it; False: no heuristic column.
    eval_times
        Time steps to score (default all; the demo scores its held-out steps).
    training_metrics
        Per-epoch metrics of the training run (draws ``training_curves.png``).
    skill_bar
        Skill the model must reach (keys of :data:`SKILL_BAR`); the page and summary say
        plainly whether it did.
    title, facts
        Page title and extra (name, value) lines for the top of ``index.html``.

    Returns
    -------
    DemoReport
        Files written and the summary (skill first).
    """
    out = check_out(out, overwrite)
    if "mask" not in masks:
        raise DataError("report: expected a mask dataset with a 'mask' variable (from `climviz predict` "
                        f"or `climviz label`), found variables {sorted(masks.data_vars)}")
    st = _ReportState(out=out, mask=masks["mask"].load(), run=run, truth=_truth_of(run, labels),
                      heur=_heuristic_of(run, heuristic))
    _score_stage(st, eval_times, skill_bar)
    _events_stage(st)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib/cartopy chatter about shapes on an empty map
        _pictures_stage(st, training_metrics, skill_bar)
    assert st.tab is not None and st.trk is not None  # _events_stage ran
    explorer_page(run, masks, st.trk.events if len(st.trk.events) == len(st.tab) else st.tab, out / "explorer.html")
    st.files["explorer"] = out / "explorer.html"
    _index_stage(st, title=title, facts=facts, training_metrics=training_metrics)
    return DemoReport(out=out, files=st.files, summary=st.summary)


def _pair(a: float, b: float | None) -> str:
    return f"{a:.3f}" if b is None else f"{a:.3f} | {b:.3f}"
