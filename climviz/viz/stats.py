"""Statistics plots: class frequency maps, area/lifetime histograms, run-vs-run difference maps.

The numbers come from plain functions that return xarray objects
(:func:`class_frequency`, :func:`frequency_difference`), the plots from thin
wrappers around them, so the statistics can be checked and reused without a
browser.

Significance of a difference in frequency
-----------------------------------------
Masks are strongly autocorrelated in time (a storm lasts days), so time steps
are not independent samples. :func:`frequency_difference` does not test on its
own: it takes the frequency maps of :func:`climviz.events.compare` (one source
of truth, so a map and the comparison table of the same runs agree). That
cuts each run into blocks of ``block_steps`` consecutive steps (default: 5 days
of steps), resamples the blocks with replacement (block bootstrap) and calls a
cell's difference significant when its ``ci`` percentile interval (default
95 %) excludes 0. :func:`difference_map` stipples those cells. Pick ``block_steps``
longer than a typical event lifetime.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from climviz._compat import class_id, renamed_kwargs
from climviz.data.schema import AR, CLASSES, TC
from climviz.errors import DataError
from climviz.viz import _grid
from climviz.viz.overlays import lat_tick_formatter, lon_tick_formatter, resolve_projection
from climviz.viz.style import CLASS_COLORS, CLASS_SHORT

__all__ = ["class_frequency", "frequency_map", "frequency_difference", "difference_map", "histogram"]


def _mask_da(mask: Any, label: str) -> xr.DataArray:
    m = _grid.pick_mask(mask)
    if m is None:
        raise DataError(f"{label}: a class mask is required")
    m = _grid.standardize(m, label=label)
    if "time" not in m.dims:
        raise DataError(f"{label}: expected a time dimension, found dims {list(m.dims)}")
    return m


def _check_class(classes: int | str) -> int:
    """One class, TC or AR, as its number (a name such as ``"tc"`` or ``"AR"`` is accepted)."""
    c = class_id(classes) if isinstance(classes, str) else classes
    if int(c) not in (TC, AR):
        raise DataError(f"classes: class must be {TC} (TC) or {AR} (AR), found {classes!r}")
    return int(c)


@renamed_kwargs(cls="classes")
def class_frequency(mask: xr.DataArray | xr.Dataset, classes: int | str = TC) -> xr.DataArray:
    """Fraction of time steps each cell belongs to class ``classes`` (:func:`climviz.events.frequency`).

    Parameters
    ----------
    mask
        Class mask ``(time, lat, lon)`` (DataArray or mask Dataset), any lat/lon
        order (standardized to latitude ascending).
    classes
        One class: 1 or ``"tc"`` (TC), 2 or ``"ar"`` (AR). (``cls=`` is the old,
        deprecated spelling.)

    Returns
    -------
    xr.DataArray
        ``(lat, lon)`` float64 in [0, 1], units ``1``.

    Examples
    --------
    >>> masks = cv.synthetic_run(4, shape=(32, 48))["LABELS"]
    >>> f = cv.viz.class_frequency(masks, cv.data.TC)
    >>> f.dims, bool(0 <= f.min() and f.max() <= 1)
    (('lat', 'lon'), True)
    """
    from climviz.events.stats import frequency

    c = _check_class(classes)
    return frequency(_mask_da(mask, "mask"), c).astype(np.float64)


@renamed_kwargs(cls="classes", alpha=("ci", lambda a: 1.0 - a))
def frequency_difference(mask_a: Any, mask_b: Any, classes: int | str = TC, *, block_steps: int | None = None,
                         ci: float = 0.95, n_boot: int = 1000, seed: int = 0,
                         block: int | None = None) -> xr.Dataset:
    """Difference of class frequency between two runs, with block-bootstrap significance per cell.

    The numbers are the frequency maps of :func:`climviz.events.compare` with
    the same ``ci`` (see the module docstring), so they match a comparison
    table computed with the same ``ci``, ``block_steps``, ``n_boot`` and ``seed``.

    Parameters
    ----------
    mask_a, mask_b
        Class masks ``(time, lat, lon)`` on the same grid (time lengths may differ).
    classes
        One class: 1 or ``"tc"`` (TC), 2 or ``"ar"`` (AR). (``cls=`` is the old,
        deprecated spelling.)
    block_steps
        Consecutive time steps per bootstrap block (default: 5 days of steps for
        datetime times, see :func:`climviz.events.compare`); each run needs at
        least 2 full blocks. A trailing partial block is dropped.
    ci
        Confidence level of the interval, in (0, 1): a cell is significant when
        the ``ci`` interval of ``b - a`` excludes 0 (a test at level ``1 - ci``).
        (``alpha=`` is the old, deprecated spelling of ``1 - ci``.)
    n_boot, seed
        Bootstrap replicates and random seed (the result is reproducible).
    block
        Older name of ``block_steps``.

    Returns
    -------
    xr.Dataset
        ``freq_a``, ``freq_b`` (over the full blocks), ``difference`` (b - a),
        ``ci_low``, ``ci_high`` (interval of b - a), ``p_value`` (bootstrap) and
        ``significant`` (bool), each ``(lat, lon)``; attrs ``block_steps``,
        ``n_blocks_a``, ``n_blocks_b``, ``ci``, ``alpha`` (``1 - ci``), ``n_boot``, ``seed``,
        ``class``, ``test``.

    Examples
    --------
    >>> a = cv.synthetic_run(8, shape=(32, 48), seed=0)["LABELS"]
    >>> b = cv.synthetic_run(8, shape=(32, 48), seed=1)["LABELS"]
    >>> res = cv.viz.frequency_difference(a, b, "tc", block_steps=2, ci=0.9, n_boot=100)
    >>> sorted(res.data_vars)
    ['ci_high', 'ci_low', 'difference', 'freq_a', 'freq_b', 'p_value', 'significant']
    >>> res.attrs["ci"], res["significant"].attrs["long_name"]
    (0.9, '90% interval of b - a excludes 0')
    """
    from climviz.events.comparison import compare

    cls = _check_class(classes)
    a, b = _mask_da(mask_a, "mask_a"), _mask_da(mask_b, "mask_b")
    _grid.check_same_grid(a, b)
    if block is not None:
        if block_steps is not None and block_steps != block:
            raise DataError(f"block={block} and block_steps={block_steps} disagree; give block_steps only")
        block_steps = block
    if block_steps is not None and block_steps < 1:
        raise DataError(f"block_steps must be >= 1 time step, found {block_steps}")
    if not 0 < ci < 1:
        raise DataError(f"ci must be in (0, 1), found {ci}")
    res = compare(a, b, classes=(cls,), block_steps=block_steps, n_boot=n_boot, ci=ci, seed=seed)
    m, key = res.maps, CLASSES[cls]
    La, Lb = m.attrs["block_steps_a"], m.attrs["block_steps_b"]
    out = xr.Dataset(
        {
            "freq_a": m[f"frequency_a_{key}"].assign_attrs(long_name="class frequency, run a"),
            "freq_b": m[f"frequency_b_{key}"].assign_attrs(long_name="class frequency, run b"),
            "difference": m[f"difference_{key}"],
            "ci_low": m[f"ci_low_{key}"],
            "ci_high": m[f"ci_high_{key}"],
            "p_value": m[f"p_value_{key}"],
            "significant": m[f"significant_{key}"].astype(bool).assign_attrs(
                long_name=f"{ci:.0%} interval of b - a excludes 0"),
        },
        attrs={"block_steps": La if La == Lb else [La, Lb], "n_blocks_a": a.sizes["time"] // La,
               "n_blocks_b": b.sizes["time"] // Lb, "ci": ci, "alpha": round(1.0 - ci, 12), "n_boot": n_boot,
               "seed": seed, "class": key,
               "test": "block bootstrap of per-block class frequencies (climviz.events.compare)"},
    )
    return out


def _grid_image(da: xr.DataArray, *, cmap: str, clim: tuple[float, float], label: str, projection: Any,
                frame_width: int, title: str, max_shape: tuple[int, int] | None, extra: Sequence[Any] = ()):
    """A 2-D lon/lat field as a PlateCarree image with coastlines (shared by the stats maps).

    ``extra`` layers (in map x coordinates) go between the image and the coastlines.
    """
    import holoviews as hv

    from climviz.viz._backend import ensure_bokeh
    from climviz.viz.coastlines import coastlines
    from climviz.viz.maps import field_image

    ensure_bokeh()  # .opts below needs a loaded plotting extension
    crs, fast, center = resolve_projection(projection)
    if not fast:
        raise DataError(f"statistics maps are drawn on PlateCarree (any central_longitude); got {type(crs).__name__}")
    name = str(da.name or "value")
    prep = _grid.prepare(da.astype(np.float64), None, center=center, max_shape=max_shape)
    img = field_image(prep, name=name, label=label, crs=crs, cmap=cmap, clim=clim, fast=True,
                      center=center, with_class=False, fmt="0.0")
    from climviz.viz._backend import fixed_size_hook
    from climviz.viz.maps import frame_height_for

    dx = float(np.median(np.diff(prep.lon))) if prep.lon.size > 1 else 1.0
    dy = float(np.median(np.diff(prep.lat))) if prep.lat.size > 1 else 1.0
    xspan = 360.0 if prep.periodic else float(np.ptp(prep.lon)) + dx
    yspan = min(180.0, float(np.ptp(prep.lat)) + dy)
    opts: dict[str, Any] = dict(projection=crs, frame_width=frame_width, data_aspect=1, title=title,
                                frame_height=frame_height_for(frame_width, xspan, yspan), hooks=[fixed_size_hook],
                                xlabel="longitude", ylabel="latitude", xformatter=lon_tick_formatter(center),
                                yformatter=lat_tick_formatter())
    if prep.periodic:
        opts["xlim"] = (-180.0, 180.0)
    return prep, hv.Overlay([img, *extra, coastlines(projection=crs, geo=False)]).opts(**opts), center


@renamed_kwargs(cls="classes")
def frequency_map(mask: Any, classes: int | str = TC, *, projection: Any = None, cmap: str = "magma_r",
                  percent: bool = True, frame_width: int = 720, max_shape: tuple[int, int] | None = (360, 576),
                  title: str | None = None):
    """Map of how often each cell is inside class ``classes`` (percent of time steps by default).

    Parameters
    ----------
    mask, classes
        See :func:`class_frequency` (``cls=`` is the old, deprecated spelling of ``classes=``).
    projection
        PlateCarree of any central longitude (default ``PlateCarree()``).
    cmap
        Colour map of the frequency.
    percent
        Show percent of time steps (else fractions).
    frame_width
        Width of the map frame in screen pixels (the height follows the grid's aspect).
    max_shape
        Largest ``(nlat, nlon)`` drawn; bigger grids are block-averaged.
    title
        Plot title (default: class, "frequency" and unit).

    Returns
    -------
    holoviews.Overlay
        Frequency image (hover: lon, lat, frequency) and coastlines.

    Examples
    --------
    >>> masks = cv.synthetic_run(4, shape=(32, 48))["LABELS"]
    >>> ov = cv.viz.frequency_map(masks, cv.data.AR)
    >>> ov.Image.I.vdims[0].label
    'AR frequency (% of time steps)'
    """
    cls = _check_class(classes)
    freq = class_frequency(mask, cls)
    scale = 100.0 if percent else 1.0
    f = freq * scale
    f.name = "frequency"
    unit = "%" if percent else "fraction"
    top = float(f.max()) if float(f.max()) > 0 else scale
    label = f"{CLASS_SHORT[int(cls)]} frequency ({unit} of time steps)"
    f.attrs["long_name"] = f"{CLASSES[int(cls)].replace('_', ' ')} frequency"
    _, ov, _ = _grid_image(f, cmap=cmap, clim=(0.0, top), label=label, projection=projection,
                           frame_width=frame_width, title=title or label, max_shape=max_shape)
    return ov


@renamed_kwargs(cls="classes", alpha=("ci", lambda a: 1.0 - a))
def difference_map(mask_a: Any, mask_b: Any, classes: int | str = TC, *, block_steps: int | None = None,
                   ci: float = 0.95, n_boot: int = 1000, seed: int = 0, block: int | None = None,
                   projection: Any = None, cmap: str = "RdBu_r", percent: bool = True,
                   labels: tuple[str, str] = ("a", "b"), frame_width: int = 720, stipple_every: int = 1,
                   title: str | None = None):
    """Map of the frequency difference ``b - a`` with significant cells stippled.

    Parameters
    ----------
    mask_a, mask_b, classes, block_steps, ci, n_boot, seed, block
        See :func:`frequency_difference` (block bootstrap of :func:`climviz.events.compare`;
        ``cls=`` and ``alpha=`` are the old, deprecated spellings of ``classes=`` and ``1 - ci``).
    projection, cmap
        PlateCarree of any central longitude; diverging colour map.
    percent
        Show percentage points (else fractions).
    labels
        Names of the two runs for the title.
    frame_width
        Width of the map frame in screen pixels.
    stipple_every
        Draw a dot on every n-th significant cell in each direction (thins dense stippling).

    Returns
    -------
    holoviews.Overlay
        Diverging image (symmetric colour limits), stipple points (group
        ``Significant``), coastlines.

    Examples
    --------
    >>> a = cv.synthetic_run(8, shape=(32, 48), seed=0)["LABELS"]
    >>> b = cv.synthetic_run(8, shape=(32, 48), seed=1)["LABELS"]
    >>> ov = cv.viz.difference_map(a, b, "tc", block_steps=2, ci=0.9, n_boot=100, labels=("A", "B"))
    >>> [e.label for e in ov if e.group == "Significant"]
    ['significant (90%)']
    """
    import holoviews as hv

    from climviz.viz._backend import ensure_bokeh

    ensure_bokeh()
    cls = _check_class(classes)
    res = frequency_difference(mask_a, mask_b, cls, block_steps=block_steps, ci=ci, n_boot=n_boot,
                               seed=seed, block=block)
    scale = 100.0 if percent else 1.0
    d = res["difference"] * scale
    d.name = "difference"
    lim = float(np.nanmax(np.abs(d.values))) or scale
    unit = "percentage points" if percent else "fraction"
    label = f"{CLASS_SHORT[int(cls)]} frequency {labels[1]} − {labels[0]} ({unit})"
    if title is None:
        title = f"{CLASSES[int(cls)].replace('_', ' ')} frequency, {labels[1]} − {labels[0]}"
    _, _, center = resolve_projection(projection)
    sig = res["significant"].values
    if stipple_every > 1:
        thin = np.zeros_like(sig)
        thin[::stipple_every, ::stipple_every] = True
        sig = sig & thin
    jj, ii = np.nonzero(sig)
    x = (res["lon"].values[ii] - center + 180.0) % 360.0 - 180.0
    y = res["lat"].values[jj]
    pts = hv.Points(pd.DataFrame({"x": x, "y": y, "p_value": res["p_value"].values[jj, ii]}),
                    kdims=["x", "y"], vdims=["p_value"], group="Significant",
                    label=f"significant ({ci:.0%})").opts(color="black", size=2, marker="circle",
                                                                 show_legend=True)
    _, ov, _ = _grid_image(d, cmap=cmap, clim=(-lim, lim), label=label, projection=projection,
                           frame_width=frame_width, title=title or label, max_shape=None, extra=[pts])
    return ov.opts(legend_position="bottom_left")


#: Reader-facing names and units of the usual event/track columns: (label, unit, display scale).
_COLUMN_LABELS = {
    "area_km2": ("event area", "km²"), "max_area_km2": ("largest area", "km²"),
    "lifetime_h": ("lifetime", "h"), "lifetime": ("lifetime", "h"), "path_length_km": ("path length", "km"),
    "n_cells": ("grid cells", ""), "n_steps": ("time steps", ""),
}


def _auto_edges(vals: np.ndarray, log: bool) -> np.ndarray:
    """Bin edges for ``bins="auto"``: numpy's rule, at most 30 bins, a unit-wide bin around a single value."""
    if log:
        lv = np.log10(vals)
        e = np.histogram_bin_edges(lv, bins="auto")
        if e.size > 31:
            e = np.linspace(lv.min(), lv.max(), 31)
        return 10.0 ** e if lv.max() > lv.min() else np.logspace(lv.min() - 0.5, lv.min() + 0.5, 2)
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:  # all equal: one bin of width ~10 % of the value (or 1) centred on it
        w = max(abs(lo) * 0.1, 1.0)
        return np.array([lo - w / 2, lo + w / 2])
    e = np.histogram_bin_edges(vals, bins="auto")
    return e if e.size <= 31 else np.linspace(lo, hi, 31)


def _column_values(table: pd.DataFrame, column: str, log: bool) -> tuple[np.ndarray, str, str, float]:
    """The column as float values in display units: ``(values, name, unit, scale)``.

    Timedeltas become hours; areas of a million km² or more become million km² (``scale`` 1e-6).
    """
    if column not in table.columns:
        raise DataError(f"histogram: column {column!r} not in the table; columns: {list(table.columns)}")
    vals = table[column]
    name, unit = _COLUMN_LABELS.get(column, (column, ""))
    if pd.api.types.is_timedelta64_dtype(vals):
        vals = vals / pd.Timedelta(hours=1)
        unit = "h"
    arr = pd.to_numeric(vals, errors="coerce").to_numpy(float)
    finite = np.isfinite(arr)
    if log and np.any(arr[finite] <= 0):
        raise DataError(f"histogram: log bins need positive values, {column!r} has values <= 0")
    scale = 1.0
    if unit == "km²" and finite.any() and np.nanmax(np.abs(arr[finite])) >= 1e6:
        scale, unit = 1e-6, "million km²"
    return arr * scale, name, unit, scale


def _bin_edges(vals: np.ndarray, bins: int | str | Sequence[float], log: bool, scale: float) -> np.ndarray:
    """Bin edges in display units for ``bins`` = ``"auto"``, a number of bins, or edges in the column's units."""
    finite = np.isfinite(vals)
    if isinstance(bins, str):
        if bins != "auto":
            raise DataError(f"histogram: bins must be 'auto', a number or bin edges, found {bins!r}")
        return _auto_edges(vals[finite], log) if finite.any() else np.linspace(0, 1, 11)
    if np.isscalar(bins) or isinstance(bins, (int, np.integer)):
        n_bins = int(np.asarray(bins).item())  # the number as a Python int (as int(bins))
        if n_bins < 1:
            raise DataError(f"histogram: bins must be >= 1, found {bins!r}")
        if not finite.any():
            return np.linspace(0, 1, n_bins + 1)
        if log:
            lo, hi = np.log10(vals[finite].min()), np.log10(vals[finite].max())
            return np.logspace(lo, hi if hi > lo else lo + 1, n_bins + 1)
        lo, hi = vals[finite].min(), vals[finite].max()
        if hi <= lo:
            w = max(abs(lo) * 0.1, 1.0)
            lo, hi = lo - w / 2, lo + w / 2
        return np.linspace(lo, hi, n_bins + 1)
    return np.asarray(bins, dtype=float) * scale


#: Axes, ticks and title around the default frame (426 x 246 in the 500 x 320 figure): the old
#: ``width``/``height`` were the whole figure, so they become the frame less this margin (px).
_OLD_FIGURE_MARGIN_PX = 74


@renamed_kwargs(width=("frame_width", lambda w: max(int(w) - _OLD_FIGURE_MARGIN_PX, 1)),
                height=("frame_height", lambda h: max(int(h) - _OLD_FIGURE_MARGIN_PX, 1)))
def histogram(table: pd.DataFrame, column: str = "area_km2", *, by: str | None = "class",
              bins: int | Literal["auto"] | Sequence[float] = "auto", log: bool = False, density: bool = False,
              classes: Sequence[int] = (TC, AR), title: str | None = None, frame_width: int = 426,
              frame_height: int = 246):
    """Histogram of an event or track statistic, one translucent histogram per class.

    Parameters
    ----------
    table
        Event table (``area_km2``...) or track table (``lifetime_h``, ``max_area_km2``...).
    column
        Numeric column to histogram. Timedeltas are shown in hours; areas of a
        million km² or more in million km² (axis ticks stay plain numbers).
    by
        Column to split by (``"class"``), or None for one histogram.
    bins
        ``"auto"`` (numpy's rule on all values, at most 30 bins; a single value
        gets one bin 10 % of its size wide, not a sliver), a number of bins, or
        bin edges in the column's units (e.g. ``np.arange(0, 78, 6)`` hours).
    log
        Logarithmic bins (``column`` must be > 0).
    density
        Normalize each histogram to unit area.
    classes
        Classes drawn when ``by="class"`` (1 TC, 2 AR).
    title
        Plot title (default: the column's name and unit).
    frame_width, frame_height
        Size of the plot frame (the axes' area) in screen pixels, as for the maps;
        the defaults give the 500 x 320 figure of earlier versions. (``width=`` and
        ``height=`` are the old, deprecated spellings.)

    Returns
    -------
    holoviews.Overlay
        One ``hv.Histogram`` per class, labelled TC / AR, in the class colours of
        :data:`climviz.viz.style.CLASS_COLORS`.

    Examples
    --------
    >>> tab = cv.synthetic_run(4, shape=(32, 48))["LABELS"].climviz.events()  # one row per event
    >>> h = cv.viz.histogram(tab, "area_km2", bins=5)
    >>> tc, ar = h
    >>> tc.label, int(tc.dimension_values("count").sum()) == int((tab["class"] == cv.data.TC).sum())
    ('TC', True)
    """
    import holoviews as hv
    from bokeh.models import NumeralTickFormatter

    from climviz.viz._backend import ensure_bokeh, fixed_size_hook

    ensure_bokeh()
    vals, name, unit, scale = _column_values(table, column, log)
    finite = np.isfinite(vals)
    unit_label = f"{name} ({unit})" if unit else name
    edges = _bin_edges(vals, bins, log, scale)

    groups: list[tuple[str, np.ndarray, str | None]] = []
    if by is None:
        groups.append((name, vals[finite], None))
    else:
        if by not in table.columns:
            raise DataError(f"histogram: column {by!r} (by) not in the table; columns: {list(table.columns)}")
        key = table[by].to_numpy()
        for cls in classes:
            sel = finite & (key == cls)
            groups.append((CLASS_SHORT.get(cls, str(cls)), vals[sel], CLASS_COLORS.get(cls)))
    ylabel = "density" if density else ("tracks" if column in ("lifetime_h", "lifetime", "path_length_km",
                                                               "max_area_km2", "n_steps") else "count")
    span = float(np.nanmax(np.abs(edges))) if edges.size else 1.0
    xfmt = "0,0" if span >= 100 else ("0.0" if span >= 1 else "0.00")
    hists = []
    for label, v, colour in groups:
        counts, _ = np.histogram(v, bins=edges, density=density and v.size > 0)
        h = hv.Histogram((edges, counts), kdims=[hv.Dimension(column, label=unit_label)],
                         vdims=[hv.Dimension("count", label=ylabel)], label=label)
        style = dict(fill_alpha=0.6, line_color="white", frame_width=frame_width, frame_height=frame_height,
                     hooks=[fixed_size_hook], logx=log,
                     tools=["hover"], xformatter=NumeralTickFormatter(format=xfmt),
                     yformatter=NumeralTickFormatter(format="0.00" if density else "0,0"))
        if colour:
            style["fill_color"] = colour
        hists.append(h.opts(**style))
    if title is None:
        title = f"{unit_label} by class" if by == "class" else (f"{unit_label} by {by}" if by else unit_label)
    return hv.Overlay(hists).opts(title=title, legend_position="top_right")
