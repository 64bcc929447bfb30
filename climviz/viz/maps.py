"""Interactive maps of climate fields with class masks (HoloViews / GeoViews, Bokeh backend).

>>> import climviz as cv
>>> ds = cv.synthetic_run(4, shape=(32, 48))
>>> m = cv.viz.map(ds, mask="LABELS")          # TMQ, all 4 time steps on a slider
>>> cv.viz.save_html(m, "tmq.html")            # self-contained page, works offline
PosixPath('tmq.html')

Longitude-periodic runs (0..360) are rolled to the map's longitude range and get
one cyclic column, so the seam shows neither a gap nor a smear. Grids larger
than ``max_shape`` are block-averaged before they go to the browser (the mask
keeps any TC/AR cell of a block), so a 768 x 1152 run stays responsive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from climviz._compat import ClassesLike, class_ids
from climviz.data.schema import AR, TC
from climviz.errors import ConfigError, DataError
from climviz.viz import _grid
from climviz.viz.overlays import (
    MaskStyle,
    class_hover_formatter,
    class_overlay,
    lat_tick_formatter,
    lat_hover_formatter,
    lon_hover_formatter,
    lon_tick_formatter,
    resolve_projection,
)
from climviz.viz.style import MASK_ALPHA, display_field

if TYPE_CHECKING:  # the alias only; coastlines is imported where it draws
    from climviz.viz.coastlines import Resolution

__all__ = ["map", "field_image", "DEFAULT_MAX_SHAPE"]

#: Largest grid (lat, lon) sent to the browser per frame; larger grids are block-averaged.
DEFAULT_MAX_SHAPE: tuple[int, int] = (360, 576)
#: More time steps than this become a DynamicMap (computed on demand) instead of a HoloMap.
DEFAULT_MAX_FRAMES = 60


def _label_of(da: xr.DataArray) -> tuple[str, str]:
    """(name, label) of a field: label from ``long_name`` (else the name) and units."""
    _, name, label, _ = display_field(da)
    return name, label


def _time_label(t: Any) -> str:
    try:
        return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(t)


def field_image(prep: _grid.Prepared, *, name: str, label: str, crs: Any, cmap: str,
                clim: tuple[float, float] | None, fast: bool, center: float, with_class: bool,
                nx: int | None = None, fmt: str = "0.00"):
    """One GeoViews image of a prepared grid, with hover showing lon, lat, value (and class).

    Hover text reads as the axes do: longitude in °E/°W (the data stay in their
    own convention), latitude in °N/°S, the value with the ``fmt`` number format
    (Bokeh/numbro, e.g. ``"0.0"``) and the class by name (TC, AR, none).

    With ``fast`` (PlateCarree) the grid is used as is, in ``crs``; otherwise it is
    resampled (nearest neighbour) onto a regular grid of the projection ``crs`` and
    the longitude/latitude of each cell travel with it for the hover.
    """
    import holoviews as hv
    from bokeh.models import HoverTool

    vdims = [hv.Dimension(name, label=label)]
    tips = []
    if fast:
        x, y = prep.lon, prep.lat
        arrays: list[np.ndarray] = [prep.values]
        classes = prep.classes
        tips += [("lon", "$x{custom}"), ("lat", "$y{custom}")]
    else:
        x, y, out = _grid.regrid_to_projection(prep, crs, nx=nx)
        arrays = [out["values"]]
        classes = out.get("classes")
    tips.append((label, f"@image{{{fmt}}}"))
    formatters: dict[str, Any] = {}
    if with_class:
        cls = classes.astype(np.float64) if classes is not None else np.zeros_like(arrays[0])
        vdims.append(hv.Dimension("class", label="class"))
        arrays.append(cls)
        tips.append(("class", "@{class}{custom}"))
        formatters["@{class}"] = class_hover_formatter()
    if not fast:
        vdims += [hv.Dimension("lon_deg", label="longitude"), hv.Dimension("lat_deg", label="latitude")]
        arrays += [out["lon"], out["lat"]]
        tips = [("lon", "@{lon_deg}{custom}"), ("lat", "@{lat_deg}{custom}")] + tips
        formatters["@{lon_deg}"] = lon_hover_formatter(0.0)
        formatters["@{lat_deg}"] = lat_hover_formatter()
    else:
        formatters["$x"] = lon_hover_formatter(center)
        formatters["$y"] = lat_hover_formatter()
    # A plain HoloViews image is placed in map coordinates as is: GeoViews would otherwise warp
    # it again (and clip the cyclic column) although it is already in the map's projection.
    img = hv.Image((x, y, *arrays), kdims=["x", "y"] if not fast else ["lon", "lat"], vdims=vdims)
    hover = HoverTool(tooltips=tips, formatters=formatters)
    # The colour bar lies under the map: its title (long_name and units) then has the map's
    # whole width and is never cut off at the figure's right edge.
    opts: dict[str, Any] = dict(cmap=cmap, colorbar=True, tools=[hover], clabel=label,
                                colorbar_position="bottom")
    if clim is not None:
        opts["clim"] = clim
    return img.opts(**opts)


def _step(c: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(c)))) if c.size > 1 else 1.0


def frame_height_for(frame_width: int, xspan: float, yspan: float) -> int:
    """Plot height (pixels) that gives equal x and y scales for a ``xspan`` x ``yspan`` extent.

    Setting it (with the width) fixes the figure's size, so Bokeh neither has to
    guess a height nor warns ``W-1005 FIXED_SIZING_MODE`` when the map is saved.
    """
    if xspan <= 0 or yspan <= 0:
        return int(frame_width // 2)
    return int(max(120, round(frame_width * yspan / xspan)))


def _robust_clim(field: xr.DataArray, max_steps: int = 24, *, diverging: bool = False,
                 center: float = 0.0) -> tuple[float, float] | None:
    """Colour limits of a (possibly long, large, dask-backed) field: see :func:`_grid.robust_limits`.

    At most ``max_steps`` evenly spaced time steps are read, and every 4th cell of
    grids above 50 M values, so a year-long run is not loaded to pick colours.
    With ``diverging`` the limits are made symmetric about ``center`` (e.g. 0 m/s
    for winds, 1013.25 hPa for sea-level pressure), so the neutral colour means
    the neutral value.
    """
    sub = field
    if "time" in sub.dims and sub.sizes["time"] > max_steps:
        sub = sub.isel(time=np.unique(np.linspace(0, sub.sizes["time"] - 1, max_steps).round().astype(int)))
    if sub.size > 50_000_000:
        sub = sub[..., ::4, ::4]
    lim = _grid.robust_limits(np.asarray(sub.values, dtype=float))
    if lim is None or not diverging:
        return lim
    half = max(center - lim[0], lim[1] - center)
    return (center - half, center + half) if half > 0 else lim


def field_clim(field: xr.DataArray) -> tuple[float, float] | None:
    """Colour limits of a field in display units, using the variable's style (see :mod:`climviz.viz.style`)."""
    shown, _, _, style = display_field(field)
    return _robust_clim(shown, diverging=style.kind == "diverging", center=style.center)


def _shown_classes(classes: ClassesLike) -> Sequence[Any]:
    """Class numbers of ``classes`` given as numbers or names; as given when they are not classes.

    What is not a class is left for :func:`_map_inputs` to refuse with its own message.
    """
    try:
        return class_ids(classes)
    except ConfigError:
        return tuple(classes) if isinstance(classes, (list, tuple)) else (classes,)


def _map_inputs(data: xr.Dataset | xr.DataArray, mask: Any, variable: str | None, classes: Sequence[int],
                time: Any) -> tuple[xr.DataArray, xr.DataArray | None, str, str, Any]:
    """The field in display units and its mask on the same grid, both at the selected time steps.

    Returns ``(field, mask, name, label, style)``; raises DataError for a missing or
    mismatched grid, an unknown class or time.
    """
    raw = _grid.pick_field(data, variable)
    shown, name, label, style = display_field(raw)
    field = _grid.standardize(shown, label=f"variable {name!r}")
    mask_da = _grid.pick_mask(mask, data if isinstance(data, xr.Dataset) else None)
    if mask_da is not None:
        mask_da = _grid.standardize(mask_da, label="mask")
        _grid.check_same_grid(field, mask_da)
        if "time" in field.dims and "time" not in mask_da.dims:
            raise DataError("the field has a time dimension but the mask does not; pass one mask per time step")
    for c in classes:
        if c not in (TC, AR):
            raise DataError(f"classes must be among {TC} (TC) and {AR} (AR), found {c!r}")

    field = _grid.select_time(field, time, f"variable {name!r}")
    if mask_da is not None:
        if "time" in mask_da.dims and "time" in field.dims:
            mask_da = mask_da.sel(time=field["time"])
        elif "time" in mask_da.dims:  # a single step was selected from the field
            mask_da = mask_da.sel(time=field["time"]) if "time" in field.coords else mask_da.isel(time=0)
    return field, mask_da, name, label, style


@dataclass
class _FrameLayers:
    """How one frame is drawn: field image, class polygons and coastlines (what every time step shares)."""

    name: str
    label: str
    crs: Any
    fast: bool  # PlateCarree: drawn without re-gridding
    center: float
    cmap: Any
    clim: tuple[float, float] | None
    fmt: str
    classes: Sequence[int]
    mask_style: MaskStyle
    mask_alpha: float
    max_shape: tuple[int, int] | None
    frame_width: int
    with_class: bool
    periodic: bool
    coast: Any

    def __call__(self, f2d: xr.DataArray, m2d: xr.DataArray | None, frame_title: str) -> Any:
        import cartopy.crs as ccrs
        import holoviews as hv

        data_crs = self.crs if self.fast else ccrs.PlateCarree()
        prep = _grid.prepare(f2d, m2d, center=self.center if self.fast else 0.0, max_shape=self.max_shape)
        img = field_image(prep, name=self.name, label=self.label, crs=self.crs, cmap=self.cmap, clim=self.clim,
                          fast=self.fast, center=self.center, with_class=self.with_class, nx=self.frame_width,
                          fmt=self.fmt)
        layers = [img]
        if self.with_class:
            layers.extend(class_overlay(prep.lon, prep.lat, prep.classes, data_crs, classes_shown=self.classes,
                                        style=self.mask_style, alpha=self.mask_alpha,
                                        clip_x=(-180.0, 180.0) if self.periodic else None, projection=self.crs))
        return hv.Overlay([*layers, self.coast]).opts(title=frame_title)


def _map_plot_opts(field: xr.DataArray, crs: Any, fast: bool, center: float, periodic: bool,
                   frame_width: int) -> dict[str, Any]:
    """Plot options of the map: equal-scale frame size, axes in degrees (PlateCarree) or hidden (projected)."""
    from climviz.viz._backend import fixed_size_hook

    plot_opts: dict[str, Any] = dict(projection=crs, frame_width=frame_width, legend_position="top_left",
                                     show_grid=False, hooks=[fixed_size_hook])
    if fast:
        lon_v, lat_v = field["lon"].values.astype(float), field["lat"].values.astype(float)
        xspan = 360.0 if periodic else float(np.ptp((lon_v - center + 180.0) % 360.0)) + _step(lon_v)
        yspan = min(180.0, float(np.ptp(lat_v)) + _step(lat_v))
        plot_opts.update(data_aspect=1, frame_height=frame_height_for(frame_width, xspan, yspan))
        if periodic:
            plot_opts["xlim"] = (-180.0, 180.0)
        plot_opts["xlabel"], plot_opts["ylabel"] = "longitude", "latitude"
        plot_opts["xformatter"] = lon_tick_formatter(center)
        plot_opts["yformatter"] = lat_tick_formatter()
    else:
        # Projected coordinates are metres: keep shapes (equal aspect), hide meaningless axes.
        (x0, x1), (y0, y1) = crs.x_limits, crs.y_limits
        plot_opts.update(data_aspect=1, xaxis=None, yaxis=None,
                         frame_height=frame_height_for(frame_width, x1 - x0, y1 - y0))
    return plot_opts


def _animate(field: xr.DataArray, mask_da: xr.DataArray | None, frame: _FrameLayers, title: str | None,
             plot_opts: dict[str, Any], dynamic: bool | None, max_frames: int) -> Any:
    """One Overlay for a single step, else a HoloMap (embedded frames) or DynamicMap (frames on demand)."""
    import holoviews as hv

    def title_for(t: Any) -> str:
        if title is not None:
            return title
        return frame.label if t is None else f"{frame.label} — {_time_label(t)}"

    if "time" not in field.dims:
        t = field["time"].values if "time" in field.coords else None
        return frame(field, mask_da, title_for(t)).opts(**plot_opts)

    times = list(field["time"].values)
    if not times:
        raise DataError(f"variable {frame.name!r}: no time steps selected")
    time_dim = hv.Dimension("time", label="time")
    use_dynamic = len(times) > max_frames if dynamic is None else bool(dynamic)

    def frame_at(t: Any):
        f2d = field.sel(time=t)
        m2d = mask_da.sel(time=t) if mask_da is not None else None
        return frame(f2d, m2d, title_for(t))

    if use_dynamic:
        dmap = hv.DynamicMap(frame_at, kdims=[time_dim.clone(values=times)])
        return dmap.opts(hv.opts.Overlay(**plot_opts))
    hmap = hv.HoloMap({t: frame_at(t) for t in times}, kdims=[time_dim])
    return hmap.opts(hv.opts.Overlay(**plot_opts))


def map(  # noqa: A001 - the public name is part of the climviz contract
    data: xr.Dataset | xr.DataArray,
    mask: xr.DataArray | xr.Dataset | str | None = None,
    *,
    time: Any = None,
    variable: str | None = None,
    projection: Any = None,
    cmap: str | None = None,
    clim: tuple[float, float] | None = None,
    classes: ClassesLike = (TC, AR),
    mask_style: MaskStyle = "fill",
    mask_alpha: float = MASK_ALPHA,
    coastline_resolution: Resolution = "c",
    max_shape: tuple[int, int] | None = DEFAULT_MAX_SHAPE,
    dynamic: bool | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    frame_width: int = 720,
    title: str | None = None,
):
    """A field on a map with coastlines and the TC/AR mask drawn over it.

    Parameters
    ----------
    data
        A run (``xr.Dataset``; ``variable`` picks the field, default ``TMQ``) or
        one field (``xr.DataArray`` with ``lat``, ``lon`` and optionally ``time``).
        Longitudes may be in [0, 360) or [-180, 180); latitude in either order.
    mask
        Class mask (0 background, 1 TC, 2 AR): a DataArray on the same grid, a
        mask dataset (``mask`` or ``LABELS`` variable) or the name of a variable
        of ``data`` (e.g. ``"LABELS"``).
    time
        None (all time steps, with a slider), an integer index, a time label, or
        a list/slice of them.
    variable
        Variable of ``data`` to draw (when ``data`` is a Dataset).
    projection
        A cartopy projection or its name; default ``PlateCarree()``. PlateCarree of
        any central longitude is drawn without re-gridding and with lon/lat hover;
        other projections are re-gridded by GeoViews.
    cmap, clim
        Colour map and colour limits of the field, in display units (default: the
        variable's colour map from :mod:`climviz.viz.style` -- sequential for
        moisture, diverging for winds, a pressure map centred on 1013.25 hPa for
        PSL -- and the 0.5-99.5 % percentiles of the selected steps, symmetric
        about the centre for diverging maps, the same for every frame). Fields
        are shown in readers' units (PSL in hPa, PRECT in mm/day); the data are
        not changed.
    classes
        Classes to overlay, as numbers (1 TC, 2 AR) or names ("tc", "ar").
    mask_style
        ``"fill"``: translucent class-coloured regions; ``"contour"``: outlines.
    mask_alpha
        Opacity of filled regions (0-1).
    coastline_resolution
        GSHHS resolution ``"c"``, ``"l"`` or ``"i"`` (see :mod:`climviz.viz.coastlines`).
    max_shape
        Largest ``(nlat, nlon)`` sent per frame; bigger grids are block-averaged
        (None: never decimate).
    dynamic
        True: a ``DynamicMap`` (frames computed on demand; needs a live Python
        kernel or server); False: a ``HoloMap`` (all frames embedded, exportable
        with :func:`~climviz.viz.save_html`); None: HoloMap up to ``max_frames``.
    frame_width
        Width of the map in screen pixels.
    title
        Plot title (default: variable, units and time).

    Returns
    -------
    holoviews.Overlay, HoloMap or DynamicMap
        Layers: field image (group ``Image``), mask polygons (group ``Mask``,
        labels ``TC``/``AR``), coastlines (group ``Coastline``).

    Raises
    ------
    DataError
        Missing lat/lon, unknown variable/time/class, or a mask on another grid.

    Examples
    --------
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> m = cv.viz.map(ds, mask="LABELS", time=0)  # one step: an Overlay
    >>> m.keys()
    [('Image', 'I'), ('Mask', 'TC'), ('Mask', 'AR'), ('Coastline', 'I')]
    >>> anim = cv.viz.map(ds, mask="LABELS")  # every step, on a time slider
    >>> type(anim).__name__, len(anim)
    ('HoloMap', 4)

    Another field, shown in readers' units, with the classes outlined:

    >>> psl = cv.viz.map(ds, variable="PSL", mask="LABELS", time=0, mask_style="contour")
    >>> psl.Image.I.vdims[0].label
    'sea level pressure (hPa)'
    >>> _ = cv.viz.save_html(anim, "tmq.html")  # in a notebook: display `anim`
    """
    from climviz.viz._backend import ensure_bokeh
    from climviz.viz.coastlines import coastlines

    ensure_bokeh()
    shown: Sequence[int] = _shown_classes(classes)
    field, mask_da, name, label, style = _map_inputs(data, mask, variable, shown, time)
    crs, fast, center = resolve_projection(projection)
    if clim is None:
        clim = _robust_clim(field, diverging=style.kind == "diverging", center=style.center)
    periodic = _grid.is_global(field["lon"].values)
    frame = _FrameLayers(name=name, label=label, crs=crs, fast=fast, center=center,
                         cmap=style.cmap if cmap is None else cmap, clim=clim, fmt=style.fmt, classes=shown,
                         mask_style=mask_style, mask_alpha=mask_alpha, max_shape=max_shape,
                         frame_width=frame_width, with_class=mask_da is not None, periodic=periodic,
                         coast=coastlines(coastline_resolution, projection=crs, geo=False))
    plot_opts = _map_plot_opts(field, crs, fast, center, periodic, frame_width)
    return _animate(field, mask_da, frame, title, plot_opts, dynamic, max_frames)
