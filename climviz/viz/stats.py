"""Statistics plots: class frequency maps, area/lifetime histograms, run-vs-run difference maps.

The numbers come from plain functions that return xarray objects
(:func:`class_frequency`, :func:`frequency_difference`), the plots from thin
wrappers around them, so the statistics can be checked and reused without a
browser.

Significance of a difference in frequency
-----------------------------------------
Masks are strongly autocorrelated in time (a storm lasts days), so time steps
are not independent samples. :func:`frequency_difference` therefore splits each
run into consecutive blocks of ``block`` time steps, computes the class
frequency of every cell in every block, and compares the two sets of block
frequencies with Welch's two-sample t-test (unequal variances), cell by cell.
Cells with p < ``alpha`` are stippled on :func:`difference_map`. Pick ``block``
longer than a typical event lifetime (e.g. 8 steps of 3 h = 1 day or more).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.schema import AR, CLASSES, TC
from climviz.errors import DataError
from climviz.viz import _grid
from climviz.viz.overlays import lat_tick_formatter, lon_tick_formatter, resolve_projection

__all__ = ["class_frequency", "frequency_map", "frequency_difference", "difference_map", "histogram"]


def _mask_da(mask: Any, label: str) -> xr.DataArray:
    m = _grid.pick_mask(mask)
    if m is None:
        raise DataError(f"{label}: a class mask is required")
    m = _grid.standardize(m, label=label)
    if "time" not in m.dims:
        raise DataError(f"{label}: expected a time dimension, found dims {list(m.dims)}")
    return m


def _check_class(cls: int) -> int:
    if int(cls) not in (TC, AR):
        raise DataError(f"class must be {TC} (TC) or {AR} (AR), found {cls!r}")
    return int(cls)


def class_frequency(mask: xr.DataArray | xr.Dataset, cls: int = TC) -> xr.DataArray:
    """Fraction of time steps each cell belongs to class ``cls``.

    Parameters
    ----------
    mask
        Class mask ``(time, lat, lon)`` (DataArray or mask Dataset).
    cls
        1 (TC) or 2 (AR).

    Returns
    -------
    xr.DataArray
        ``(lat, lon)`` float64 in [0, 1], units ``1``.
    """
    cls = _check_class(cls)
    m = _mask_da(mask, "mask")
    freq = (m == cls).mean("time", dtype=np.float64)
    freq.name = f"frequency_{CLASSES[cls]}"
    freq.attrs = {"units": "1", "long_name": f"fraction of time steps in a {CLASSES[cls].replace('_', ' ')}"}
    return freq


def frequency_difference(mask_a: Any, mask_b: Any, cls: int = TC, *, block: int = 8,
                         alpha: float = 0.05) -> xr.Dataset:
    """Difference of class frequency between two runs, with a block-wise Welch t-test per cell.

    Parameters
    ----------
    mask_a, mask_b
        Class masks ``(time, lat, lon)`` on the same grid (time lengths may differ).
    cls
        1 (TC) or 2 (AR).
    block
        Consecutive time steps per block (the sampling unit); each run needs at
        least 2 full blocks. A trailing partial block is dropped.
    alpha
        Significance level.

    Returns
    -------
    xr.Dataset
        ``freq_a``, ``freq_b`` (over the full blocks), ``difference`` (b - a),
        ``p_value`` (NaN where both runs have zero variance and equal means) and
        ``significant`` (p < alpha), each ``(lat, lon)``; attrs ``block``,
        ``n_blocks_a``, ``n_blocks_b``, ``alpha``, ``test``.
    """
    from scipy import stats

    cls = _check_class(cls)
    a, b = _mask_da(mask_a, "mask_a"), _mask_da(mask_b, "mask_b")
    _grid.check_same_grid(a, b)
    if block < 1:
        raise DataError(f"block must be >= 1 time step, found {block}")
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1), found {alpha}")

    def block_freq(m: xr.DataArray, label: str) -> np.ndarray:
        nb = m.sizes["time"] // block
        if nb < 2:
            raise DataError(f"{label}: {m.sizes['time']} time steps make {nb} full block(s) of {block}; "
                            "need at least 2 (use a smaller block)")
        ind = np.asarray((m.isel(time=slice(0, nb * block)) == cls).values, dtype=np.float64)
        return ind.reshape(nb, block, *ind.shape[1:]).mean(axis=1)

    fa, fb = block_freq(a, "mask_a"), block_freq(b, "mask_b")
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # Cells that are constant in both runs are handled below; scipy warns about them.
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(fb, fa, axis=0, equal_var=False)
    p = np.asarray(res.pvalue, dtype=np.float64)
    mean_a, mean_b = fa.mean(axis=0), fb.mean(axis=0)
    # Both runs constant in a cell: no variance to test against; different means are certain.
    const = (fa.var(axis=0) == 0) & (fb.var(axis=0) == 0)
    p = np.where(const, np.where(mean_a == mean_b, np.nan, 0.0), p)
    coords = {"lat": a["lat"], "lon": a["lon"]}
    dims = ("lat", "lon")
    out = xr.Dataset(
        {
            "freq_a": (dims, mean_a, {"units": "1", "long_name": "class frequency, run a"}),
            "freq_b": (dims, mean_b, {"units": "1", "long_name": "class frequency, run b"}),
            "difference": (dims, mean_b - mean_a, {"units": "1", "long_name": "frequency difference b - a"}),
            "p_value": (dims, p, {"units": "1", "long_name": "Welch t-test p-value over time blocks"}),
            "significant": (dims, np.nan_to_num(p, nan=1.0) < alpha, {"long_name": f"p < {alpha}"}),
        },
        coords=coords,
        attrs={"block": block, "n_blocks_a": fa.shape[0], "n_blocks_b": fb.shape[0], "alpha": alpha,
               "class": CLASSES[cls], "test": "Welch two-sample t-test on per-block class frequencies"},
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
                      center=center, with_class=False)
    opts: dict[str, Any] = dict(projection=crs, frame_width=frame_width, data_aspect=1, title=title,
                                xlabel="longitude", ylabel="latitude", xformatter=lon_tick_formatter(center),
                                yformatter=lat_tick_formatter())
    if prep.periodic:
        opts["xlim"] = (-180.0, 180.0)
    return prep, hv.Overlay([img, *extra, coastlines(projection=crs, geo=False)]).opts(**opts), center


def frequency_map(mask: Any, cls: int = TC, *, projection: Any = None, cmap: str = "magma_r",
                  percent: bool = True, frame_width: int = 720, max_shape: tuple[int, int] | None = (360, 576),
                  title: str | None = None):
    """Map of how often each cell is inside class ``cls`` (percent of time steps by default).

    Returns
    -------
    holoviews.Overlay
        Frequency image (hover: lon, lat, frequency) and coastlines.
    """
    freq = class_frequency(mask, cls)
    scale = 100.0 if percent else 1.0
    f = freq * scale
    f.name = "frequency"
    unit = "%" if percent else "fraction"
    top = float(f.max()) if float(f.max()) > 0 else scale
    label = f"{CLASSES[int(cls)].replace('_', ' ')} frequency ({unit})"
    _, ov, _ = _grid_image(f, cmap=cmap, clim=(0.0, top), label=label, projection=projection,
                           frame_width=frame_width, title=title or label, max_shape=max_shape)
    return ov


def difference_map(mask_a: Any, mask_b: Any, cls: int = TC, *, block: int = 8, alpha: float = 0.05,
                   projection: Any = None, cmap: str = "RdBu_r", percent: bool = True,
                   labels: tuple[str, str] = ("a", "b"), frame_width: int = 720, stipple_every: int = 1,
                   title: str | None = None):
    """Map of the frequency difference ``b - a`` with significant cells stippled.

    Parameters
    ----------
    mask_a, mask_b, cls, block, alpha
        See :func:`frequency_difference`.
    percent
        Show percentage points (else fractions).
    labels
        Names of the two runs for the title.
    stipple_every
        Draw a dot on every n-th significant cell in each direction (thins dense stippling).

    Returns
    -------
    holoviews.Overlay
        Diverging image (symmetric colour limits), stipple points (group
        ``Significant``), coastlines.
    """
    import holoviews as hv

    from climviz.viz._backend import ensure_bokeh

    ensure_bokeh()
    res = frequency_difference(mask_a, mask_b, cls, block=block, alpha=alpha)
    scale = 100.0 if percent else 1.0
    d = res["difference"] * scale
    d.name = "difference"
    lim = float(np.nanmax(np.abs(d.values))) or scale
    unit = "percentage points" if percent else "fraction"
    label = f"{CLASSES[int(cls)].replace('_', ' ')} frequency {labels[1]} - {labels[0]} ({unit})"
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
                    label=f"p < {alpha}").opts(color="black", size=2, marker="circle", show_legend=True)
    _, ov, _ = _grid_image(d, cmap=cmap, clim=(-lim, lim), label=label, projection=projection,
                           frame_width=frame_width, title=title or label, max_shape=None, extra=[pts])
    return ov.opts(legend_position="bottom_left")


def histogram(table: pd.DataFrame, column: str = "area_km2", *, by: str | None = "class",
              bins: int | Sequence[float] = 30, log: bool = False, density: bool = False,
              classes: Sequence[int] = (TC, AR), title: str | None = None, width: int = 500, height: int = 320):
    """Histogram of an event or track statistic, one translucent histogram per class.

    Parameters
    ----------
    table
        Event table (``area_km2``...) or track table (``lifetime_h``, ``max_area_km2``...).
    column
        Numeric column to histogram. Timedeltas are shown in hours.
    by
        Column to split by (``"class"``), or None for one histogram.
    bins
        Number of bins or bin edges (shared by all classes).
    log
        Logarithmic bins (``column`` must be > 0).
    density
        Normalize each histogram to unit area.

    Returns
    -------
    holoviews.Overlay
        One ``hv.Histogram`` per class, labelled TC / AR.
    """
    import holoviews as hv

    from climviz.viz._backend import ensure_bokeh

    ensure_bokeh()
    if column not in table.columns:
        raise DataError(f"histogram: column {column!r} not in the table; columns: {list(table.columns)}")
    vals = table[column]
    unit_label = column
    if pd.api.types.is_timedelta64_dtype(vals):
        vals = vals / pd.Timedelta(hours=1)
        unit_label = f"{column} (h)"
    vals = pd.to_numeric(vals, errors="coerce").to_numpy(float)
    finite = np.isfinite(vals)
    if log and np.any(vals[finite] <= 0):
        raise DataError(f"histogram: log bins need positive values, {column!r} has values <= 0")
    if np.isscalar(bins) or isinstance(bins, (int, np.integer)):
        if not finite.any():
            edges = np.linspace(0, 1, int(bins) + 1)
        elif log:
            lo, hi = np.log10(vals[finite].min()), np.log10(vals[finite].max())
            edges = np.logspace(lo, hi if hi > lo else lo + 1, int(bins) + 1)
        else:
            lo, hi = vals[finite].min(), vals[finite].max()
            edges = np.linspace(lo, hi if hi > lo else lo + 1, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
    from climviz.viz._grid import CLASS_COLORS, CLASS_SHORT

    groups: list[tuple[str, np.ndarray, str | None]] = []
    if by is None:
        groups.append((column, vals[finite], None))
    else:
        if by not in table.columns:
            raise DataError(f"histogram: column {by!r} (by) not in the table; columns: {list(table.columns)}")
        key = table[by].to_numpy()
        for cls in classes:
            sel = finite & (key == cls)
            groups.append((CLASS_SHORT.get(cls, str(cls)), vals[sel], CLASS_COLORS.get(cls)))
    ylabel = "density" if density else "count"
    hists = []
    for label, v, colour in groups:
        counts, _ = np.histogram(v, bins=edges, density=density and v.size > 0)
        h = hv.Histogram((edges, counts), kdims=[hv.Dimension(column, label=unit_label)],
                         vdims=[hv.Dimension("count", label=ylabel)], label=label)
        style = dict(fill_alpha=0.5, line_color="black", width=width, height=height, logx=log, tools=["hover"])
        if colour:
            style["fill_color"] = colour
        hists.append(h.opts(**style))
    return hv.Overlay(hists).opts(title=title or f"{unit_label} by {by}" if by else (title or unit_label),
                                  legend_position="top_right")
