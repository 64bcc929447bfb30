"""An explorer app (Panel): pick variable, time and class; click an event to see its row and track.

>>> ds = cv.synthetic_run(4, shape=(32, 48))
>>> _, table = cv.events.label_table(ds["LABELS"])  # one row per event and time step
>>> app = cv.viz.explore(ds, events=table)          # masks: the run's LABELS; in a notebook: display `app`
>>> app.variable.value, len(app.times)
('TMQ', 4)
>>> app.classes.value = cv.data.TC                  # TCs only
>>> len(app.current_events())
3
>>> _ = app.servable()                               # or `panel serve` a script ending like this

The map is :func:`climviz.viz.map` for the chosen step, with the events of
that step drawn as clickable centroid markers. Clicking a marker (or a row of
the table below the map) shows the event's row and, when the table has a
``track_id`` column, draws the whole track on the map. Callbacks run in
Python, so the app needs a live kernel or ``panel serve``; :func:`save_html`
exports a static snapshot of the current view.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.schema import AR, TC
from climviz.errors import DataError
from climviz.viz import _grid
from climviz.viz.maps import DEFAULT_MAX_SHAPE, _time_label
from climviz.viz.style import CLASS_SHORT, STYLES, lat_label, lon_label

if TYPE_CHECKING:  # the alias only; coastlines is imported where it draws
    from climviz.viz.coastlines import Resolution

__all__ = ["explore", "Explorer"]

_CLASS_OPTIONS = {"all": 0, "TC": TC, "AR": AR}


def _lazy_viewer_base():
    import panel as pn

    return pn.viewable.Viewer


def _drawable_variables(run: xr.Dataset, variables: Sequence[str] | None) -> list[Hashable]:
    """The variables the explorer offers: ``variables``, else every lat/lon field (a mask dataset: its masks)."""
    def drawable(v: Hashable) -> bool:
        dims = set(run[v].dims)
        return any(d in dims for d in _grid.LAT_NAMES) and any(d in dims for d in _grid.LON_NAMES) \
            and dims <= {"time", *_grid.LAT_NAMES, *_grid.LON_NAMES}

    if variables is None:
        candidates: list[Hashable] = [v for v in run.data_vars if v not in _grid.MASK_NAMES and drawable(v)]
        if not candidates:  # a mask dataset alone: draw the classes themselves
            candidates = [v for v in run.data_vars if v in _grid.MASK_NAMES and drawable(v)]
    else:
        candidates = list(variables)
    for v in candidates:
        if v not in run.data_vars:
            raise DataError(f"explore: variable {v!r} not in the run; available: {list(run.data_vars)}")
    if not candidates:
        raise DataError(f"explore: the run has no lat/lon variable to draw; variables: {list(run.data_vars)}")
    return candidates


class Explorer:
    """Panel app combining map, mask, events table and tracks. Build it with :func:`explore`.

    Attributes
    ----------
    variable, time, classes
        The Panel widgets (Select, DiscreteSlider, RadioButtonGroup). ``cls`` is the
        old, deprecated name of ``classes``.
    map_pane
        ``pn.pane.HoloViews`` with the current map.
    table
        ``pn.widgets.Tabulator`` of the events at the current step and class.
    detail
        ``pn.pane.DataFrame`` with the selected event's row (and its track summary).
    selected
        The selected event's row (a pandas Series) or None.
    """

    def __init__(self, run: xr.Dataset | xr.DataArray, masks: Any = None, events: pd.DataFrame | None = None,
                 *, variables: Sequence[str] | None = None, max_shape: tuple[int, int] | None = DEFAULT_MAX_SHAPE,
                 coastline_resolution: Resolution = "c", frame_width: int = 720, cmap: str | None = None):
        import panel as pn

        from climviz.viz._backend import ensure_bokeh

        ensure_bokeh()
        if isinstance(run, xr.DataArray):
            run = run.to_dataset(name=str(run.name or "field"))
        if not isinstance(run, xr.Dataset):
            raise DataError(f"explore: run must be an xarray Dataset, found {type(run).__name__}")
        candidates = _drawable_variables(run, variables)
        self.run = run
        self.mask = _grid.pick_mask(masks, run)
        if self.mask is None and _grid.LABEL_VAR in run.data_vars:
            self.mask = run[_grid.LABEL_VAR]
        if "time" not in run.dims:
            raise DataError("explore: the run needs a time dimension")
        self.times = run["time"].values
        self.events = self._check_events(events)
        self._map_kwargs: dict[str, Any] = dict(max_shape=max_shape, coastline_resolution=coastline_resolution,
                                frame_width=frame_width, cmap=cmap)
        self.selected: pd.Series | None = None
        self._selection: Any = None
        self._clims: dict[str, tuple[float, float] | None] = {}

        self._build_widgets(candidates)
        self.variable.param.watch(self._refresh, "value")
        self.time.param.watch(self._refresh, "value")
        self.classes.param.watch(self._refresh, "value")
        self.table.param.watch(self._on_table_select, "selection")
        self._refresh()
        self.layout = pn.Row(
            pn.Column("### climviz explorer", self.variable, self.time, self.classes, width=300),
            pn.Column(self.map_pane, self.table, self.detail),
        )

    def _build_widgets(self, candidates: list[Hashable]) -> None:
        """Variable list, time slider, class buttons, map pane, events table and detail pane."""
        import panel as pn

        default_var = "TMQ" if "TMQ" in candidates else candidates[0]
        self.variable = pn.widgets.Select(label="variable", options=candidates, value=default_var)
        labels = [_time_label(t) for t in self.times]
        # DiscreteSlider needs unique labels; fall back to the index if two steps print alike.
        if len(set(labels)) != len(labels):
            labels = [f"{i}: {lab}" for i, lab in enumerate(labels)]
        self._time_labels = labels
        self.time = pn.widgets.DiscreteSlider(label="time", options=dict(zip(labels, range(len(labels)))),
                                              value=0)
        self.classes = pn.widgets.RadioButtonGroup(label="class", options=_CLASS_OPTIONS, value=0)
        self.map_pane = pn.pane.HoloViews(None, linked_axes=False)
        self.table = pn.widgets.Tabulator(pd.DataFrame(), selectable=1, disabled=True, height=220,
                                          show_index=False, sizing_mode="stretch_width")
        self.detail = pn.pane.DataFrame(pd.DataFrame(), index=True, sizing_mode="stretch_width")

    # ------------------------------------------------------------------ data
    def _check_events(self, events: pd.DataFrame | None) -> pd.DataFrame | None:
        if events is None:
            return None
        if not isinstance(events, pd.DataFrame):
            raise DataError("explore: events must be a pandas DataFrame (an event table), "
                            f"found {type(events).__name__}")
        need = ["time", "class", "centroid_lat", "centroid_lon"]
        missing = [c for c in need if c not in events.columns]
        if missing:
            raise DataError(f"explore: event table lacks columns {missing}; found {list(events.columns)}")
        return events.reset_index(drop=True)

    @property
    def cls(self) -> Any:
        """Old name of the class widget :attr:`classes` (deprecated; kept for one release)."""
        warnings.warn("Explorer.cls is deprecated, use 'classes' instead (the old name will be removed in the "
                      "next release)", DeprecationWarning, stacklevel=2)
        return self.classes

    @property
    def current_time(self) -> Any:
        """The time value of the selected step."""
        return self.times[int(self.time.value)]

    def current_events(self) -> pd.DataFrame:
        """Events at the current step and class (all columns, original index kept)."""
        if self.events is None:
            return pd.DataFrame()
        ev = self.events[self.events["time"].to_numpy() == self.current_time]
        if self.classes.value:
            ev = ev[ev["class"] == self.classes.value]
        return ev

    # ------------------------------------------------------------------ plots
    def _plot(self):
        import holoviews as hv

        from climviz.viz.maps import map as map_

        classes = (TC, AR) if not self.classes.value else (self.classes.value,)
        base = map_(self.run, self.mask, time=int(self.time.value), variable=self.variable.value,
                    classes=classes, clim=self._clim(self.variable.value), **self._map_kwargs)
        layers = list(base)
        ev = self.current_events()
        if self.events is not None:
            x = (ev["centroid_lon"].to_numpy(float) + 180.0) % 360.0 - 180.0
            # Hollow white rings: the mask under an event stays visible. Tap only, no hover of their
            # own: the map's hover already reads lon/lat/value/class there (no two stacked tooltips).
            pts = hv.Points(pd.DataFrame({"x": x, "y": ev["centroid_lat"].to_numpy(float),
                                          "row": ev.index.to_numpy(), "class": ev["class"].to_numpy()}),
                            kdims=["x", "y"], vdims=["row", "class"], group="Events").opts(
                marker="circle", size=14, fill_alpha=0.0, line_color="white", line_width=2.5, tools=["tap"],
                nonselection_alpha=0.8, selection_line_color="black", selection_fill_alpha=0.0)
            self._selection = hv.streams.Selection1D(source=pts)
            self._selection.add_subscriber(self._on_map_select)
            self._points = pts
            layers.append(pts)
            if self.selected is not None:
                layers.append(self._track_path(self.selected))
        opts = base.opts.get().kwargs
        return hv.Overlay(layers).opts(**{k: v for k, v in opts.items() if k != "title"},
                                       title=base.opts.get().kwargs.get("title", ""))

    def _clim(self, variable: str) -> tuple[float, float] | None:
        """Colour limits of a variable over the run (up to 24 steps sampled), the same at every step."""
        if variable not in self._clims:
            from climviz.viz.maps import field_clim

            self._clims[variable] = field_clim(self.run[variable])  # display units (hPa, mm/day...)
        return self._clims[variable]

    def _track_path(self, row: pd.Series):
        """The selected event's track (all rows with its track_id) or just its centroid."""
        import holoviews as hv

        from climviz.viz.track_maps import split_at_seam

        assert self.events is not None  # rows are selected from the event table only
        if "track_id" in self.events.columns and pd.notna(row.get("track_id")):
            tr = self.events[self.events["track_id"] == row["track_id"]].sort_values("time")
        else:
            tr = pd.DataFrame([row])
        pieces = split_at_seam(tr["centroid_lon"].to_numpy(float), tr["centroid_lat"].to_numpy(float))
        return hv.Path([{"x": p[:, 0], "y": p[:, 1]} for p in pieces], kdims=["x", "y"],
                       group="SelectedTrack").opts(color="black", line_width=4, line_dash="solid")

    # ------------------------------------------------------------------ callbacks
    def _refresh(self, *_: Any) -> None:
        ev = self.current_events()
        if self.selected is not None and self.selected.name not in ev.index:
            self.selected = None
        self.table.value = display_table(ev.reset_index().rename(columns={"index": "row"})) if len(ev) \
            else pd.DataFrame()
        self._show_detail()
        self.map_pane.object = self._plot()

    def select_event(self, row: int | None) -> None:
        """Select an event by its row number in the event table (None clears the selection)."""
        if row is None:
            self.selected = None
        else:
            if self.events is None or row not in self.events.index:
                raise DataError(f"explore: no event row {row!r}")
            self.selected = self.events.loc[row]
            t_index = int(np.flatnonzero(self.times == self.selected["time"])[0])
            if t_index != int(self.time.value):
                self.time.value = t_index  # triggers _refresh
                return
        self._show_detail()
        self.map_pane.object = self._plot()

    def _on_map_select(self, index: list[int]) -> None:
        if index:
            self.select_event(int(self._points.data["row"].iloc[index[0]]))

    def _on_table_select(self, event: Any) -> None:
        sel = event.new
        if sel and len(self.table.value):
            self.select_event(int(self.table.value["row"].iloc[sel[0]]))

    def _show_detail(self) -> None:
        if self.selected is None:
            self.detail.object = pd.DataFrame()
            return
        assert self.events is not None  # rows are selected from the event table only
        d = display_table(self.selected.to_frame().T).iloc[0].to_frame(name="selected event")
        if "track_id" in self.events.columns and pd.notna(self.selected.get("track_id")):
            tr = self.events[self.events["track_id"] == self.selected["track_id"]]
            d.loc["track: steps"] = len(tr)
            d.loc["track: start"] = tr["time"].min()
            d.loc["track: end"] = tr["time"].max()
        self.detail.object = d

    # ------------------------------------------------------------------ display
    def snapshot(self):
        """A static Panel layout of the current view (for :func:`~climviz.viz.save_html`)."""
        import panel as pn

        return pn.Column(f"### {self.variable.value} — {self._time_labels[int(self.time.value)]}",
                         pn.pane.HoloViews(self._plot()), pn.pane.DataFrame(self.table.value, index=False),
                         pn.pane.DataFrame(self.detail.object))

    def __panel__(self):
        return self.layout

    def servable(self, title: str = "climviz explorer"):
        """Mark the app for ``panel serve``."""
        return self.layout.servable(title=title)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.layout._repr_mimebundle_(include, exclude)


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """An event table as readers see it: class names, °N/°E-W positions, hPa, mm/day, rounded numbers.

    A display copy for the explorer's table; the event table itself is not changed.
    Columns ``<VAR>_min/_max/_mean`` of a known variable (:mod:`climviz.viz.style`)
    are converted to its display units and renamed ``<VAR>_mean (hPa)``.
    """
    out = df.copy()
    if "time" in out.columns and np.issubdtype(np.asarray(out["time"]).dtype, np.datetime64):
        out["time"] = pd.to_datetime(out["time"]).dt.strftime("%Y-%m-%d %H:%M")
    if "class" in out.columns:
        out["class"] = [CLASS_SHORT.get(int(c), str(c)) if pd.notna(c) else "" for c in out["class"]]
    if "centroid_lat" in out.columns and "centroid_lon" in out.columns:
        out.insert(list(out.columns).index("centroid_lat"), "centroid",
                   [f"{lat_label(a)} {lon_label(o)}" for a, o in zip(out["centroid_lat"], out["centroid_lon"])])
        out = out.drop(columns=["centroid_lat", "centroid_lon"])
    for c in list(out.columns):
        if not pd.api.types.is_float_dtype(out[c]):
            continue
        var, _, stat = str(c).rpartition("_")
        style = STYLES.get(var.upper()) if stat in ("min", "max", "mean", "sum", "std") else None
        if style is not None:
            v = out[c] * style.scale + style.offset if style.from_units else out[c]
            out[c] = v.round(1)
            out = out.rename(columns={c: f"{c} ({style.units})"})
        elif c in ("area_km2", "max_area_km2", "path_length_km"):
            out[c] = out[c].round(0)
        else:
            out[c] = out[c].round(2)
    return out


def explore(run: xr.Dataset | xr.DataArray, masks: Any = None, events: pd.DataFrame | None = None,
            **kwargs: Any) -> Explorer:
    """Build the explorer app for a run, its class masks and its event table.

    Parameters
    ----------
    run
        Dataset with ``time, lat, lon`` variables (e.g. from :func:`climviz.open_run`).
    masks
        Class mask (DataArray), mask Dataset (``mask``), or None to use the run's
        ``LABELS`` if present.
    events
        Event table (:func:`climviz.events.table`): ``time, class, centroid_lat,
        centroid_lon`` (+ ``event``, ``area_km2``..., and ``track_id`` to draw tracks).
    **kwargs
        ``variables``, ``max_shape``, ``coastline_resolution``, ``frame_width``, ``cmap``.

    Returns
    -------
    Explorer
        Display it in a notebook, or call ``.servable()`` in a ``panel serve`` script.
    """
    return Explorer(run, masks, events, **kwargs)
