"""Export: self-contained HTML pages and static PNG/PDF figures for papers.

:func:`save_html` writes one HTML file with BokehJS / Panel inlined (no CDN,
works offline and years later). HoloMaps keep their time slider: every frame is
embedded and the slider switches between them in the browser.

:func:`static_map` draws a field and its class mask with matplotlib + cartopy and
the offline GSHHS coastlines (:mod:`climviz.viz.coastlines`), never cartopy's
Natural Earth downloader; :func:`save_static` writes it as PNG, PDF or SVG.
All writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import xarray as xr

from climviz._compat import ClassesLike, class_ids
from climviz.data.schema import AR, TC
from climviz.errors import DataError
from climviz.utils.atomic import atomic_path
from climviz.viz import _grid

if TYPE_CHECKING:  # the alias only; coastlines is imported where it draws
    from climviz.viz.coastlines import Resolution

__all__ = ["save_html", "static_map", "save_static", "save_png", "notebook_html"]

_STATIC_FORMATS = ("png", "pdf", "svg")


def save_html(obj: Any, path: str | os.PathLike, *, title: str = "climviz", embed: bool = True,
              max_states: int = 2000, overwrite: bool = True) -> Path:
    """Write a plot or app as one self-contained HTML file.

    Parameters
    ----------
    obj
        A HoloViews object (Overlay, HoloMap...), a Panel object, or a climviz
        :class:`~climviz.viz.explorer.Explorer` (exported in its current state,
        as a static snapshot: its Python callbacks need a live server).
    path
        Output file (``.html``).
    title
        Page title.
    embed
        Embed the states of widgets (e.g. a HoloMap's time slider) so they work
        without Python.
    max_states
        Upper bound on embedded widget states.
    overwrite
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The written file.

    Examples
    --------
    >>> m = cv.viz.map(cv.synthetic_run(4, shape=(32, 48)), mask="LABELS")
    >>> path = cv.viz.save_html(m, "tmq.html")
    >>> path, path.stat().st_size > 1_000_000  # bokeh and the 4 frames inlined
    (PosixPath('tmq.html'), True)
    >>> "cdn.holoviz.org" in path.read_text()  # no stylesheet fetched from a CDN
    False
    """
    import panel as pn
    from bokeh.resources import INLINE

    path = Path(path)
    if hasattr(obj, "snapshot"):
        obj, embed = obj.snapshot(), False
    viewable = obj if isinstance(obj, pn.viewable.Viewable) else pn.panel(obj, widget_location="bottom")
    buf = io.StringIO()
    viewable.save(  # type: ignore[attr-defined]  # pn.panel is annotated ServableMixin; its panes/templates save()
        buf, resources=INLINE, embed=embed, max_states=max_states, title=title, progress=False)
    html = inline_cdn_urls(buf.getvalue())
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


_CDN_RE = re.compile(r"https://cdn\.holoviz\.org/panel/[0-9][^/\"'\\\s]*/dist/([^\"'\\\s?#)]+)(\?v=[0-9A-Za-z.+-]+)?")
_MIME = {".css": "text/css", ".png": "image/png", ".ico": "image/x-icon", ".svg": "image/svg+xml",
         ".js": "text/javascript", ".woff2": "font/woff2", ".woff": "font/woff"}


def inline_cdn_urls(html: str) -> str:
    """Replace Panel's CDN URLs (stylesheets, icons) by ``data:`` URIs of the installed files.

    Panel references its CSS on ``cdn.holoviz.org`` even when the JavaScript is
    inlined; a page meant to work offline must not. Each URL becomes a base64
    ``data:`` URI of the same file from the installed ``panel/dist`` folder (an
    empty ``data:,`` if the file is not installed), at any level of JSON escaping.
    """
    import panel

    dist = Path(panel.__file__).parent / "dist"
    cache: dict[str, str] = {}

    def repl(match: re.Match) -> str:
        rel = match.group(1)
        if rel not in cache:
            f = (dist / rel).resolve()
            if f.is_file() and dist.resolve() in f.parents:
                mime = _MIME.get(f.suffix.lower(), "application/octet-stream")
                cache[rel] = f"data:{mime};base64," + base64.b64encode(f.read_bytes()).decode("ascii")
            else:
                cache[rel] = "data:,"
        return cache[rel]

    return _CDN_RE.sub(repl, html)


_REMOTE_SCRIPT_RE = re.compile(r"<script[^>]*\ssrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>", re.I)
_REMOTE_LINK_RE = re.compile(r"<link[^>]*\shref=[\"']https?://[^\"']*[\"'][^>]*/?>", re.I)


def notebook_html(notebook: Any, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Export an executed notebook to one HTML file that renders offline, maps included.

    The notebook's maps carry BokehJS and Panel inline already (climviz loads
    them with ``inline=True``, see :func:`climviz.viz._backend.ensure_bokeh`);
    here nbconvert's ``lab`` template writes the page, Panel's stylesheet URLs
    become ``data:`` URIs (:func:`inline_cdn_urls`), and the template's remote
    scripts (require.js, MathJax from a CDN) are left out, so opening the file
    requests nothing from the network. LaTeX in markdown cells then shows as
    source text.

    Parameters
    ----------
    notebook
        An executed ``nbformat.NotebookNode`` or the path of an ``.ipynb`` file.
    path
        Output ``.html`` file (written atomically).

    Returns
    -------
    pathlib.Path
    """
    import copy

    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4) if isinstance(notebook, (str, os.PathLike)) \
        else copy.deepcopy(notebook)
    # Jupyter widget state (progress bars) would make the page fetch the widget manager from a CDN;
    # the widgets' text fallback is kept.
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:  # Panel's comm placeholders carry no data; nbconvert would warn about each
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in cell.get("outputs", [])
                               if o.get("output_type") not in ("display_data", "execute_result") or o.get("data")]
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    html = _REMOTE_LINK_RE.sub("", _REMOTE_SCRIPT_RE.sub("", inline_cdn_urls(html)))
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


def _pcolormesh_edges(c: np.ndarray) -> np.ndarray:
    """Cell edges from 1-D cell centres (half-way, outer edges extrapolated)."""
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _one_step(da: xr.DataArray, m: xr.DataArray | None, time: Any,
              name: Any) -> tuple[xr.DataArray, xr.DataArray | None]:
    """The field and its mask (on the same grid) at one time step, for :func:`static_map`."""
    da = _grid.standardize(da, label=f"variable {name!r}")
    if m is not None:
        m = _grid.standardize(m, label="mask")
        _grid.check_same_grid(da, m)
    if "time" in da.dims:
        da = _grid.select_time(da, time, f"variable {name!r}")
        if "time" in da.dims:
            raise DataError(f"static_map draws one time step; time={time!r} selected {da.sizes['time']}")
        if m is not None and "time" in m.dims:
            m = m.sel(time=da["time"])
    elif m is not None and "time" in m.dims:
        m = _grid.select_time(m, time, "mask")
    return da, m


def _draw_classes(ax: Any, prep: Any, classes: Sequence[int], data_crs: Any) -> list[Any]:
    """Translucent fill and outline of each class's regions on ``ax``; the legend handles."""
    from matplotlib.patches import Patch

    from climviz.viz._grid import CLASS_COLORS, CLASS_SHORT
    from climviz.viz.overlays import mask_polygons
    from climviz.viz.style import MASK_ALPHA

    handles = []
    clip = (-180.0, 180.0) if prep.periodic else None
    for cls in classes:
        polys = mask_polygons(prep.lon, prep.lat, prep.classes, cls, clip_x=clip)
        if polys:
            ax.add_geometries(polys, crs=data_crs, facecolor=CLASS_COLORS[cls], alpha=MASK_ALPHA,
                              edgecolor="none")
            ax.add_geometries(polys, crs=data_crs, facecolor="none", edgecolor=CLASS_COLORS[cls],
                              linewidth=1.5)
        handles.append(Patch(facecolor=CLASS_COLORS[cls], edgecolor=CLASS_COLORS[cls], alpha=MASK_ALPHA,
                             label=CLASS_SHORT[cls]))
    return handles


def static_map(
    field: xr.DataArray | xr.Dataset,
    mask: xr.DataArray | xr.Dataset | str | None = None,
    *,
    time: Any = 0,
    variable: str | None = None,
    projection: Any = None,
    cmap: str | None = None,
    clim: tuple[float, float] | None = None,
    classes: ClassesLike = (TC, AR),
    coastline_resolution: Resolution = "l",
    land: bool = False,
    title: str | None = None,
    ax: Any = None,
    figsize: tuple[float, float] = (10.0, 5.2),
    colorbar: bool = True,
):
    """A static (matplotlib + cartopy) map of a field with TC/AR outlines and offline coastlines.

    Parameters
    ----------
    field
        DataArray (``lat``, ``lon`` [, ``time``]) or Dataset (``variable``, default TMQ).
    mask
        Class mask on the same grid (DataArray, mask Dataset or variable name).
    time
        Time step to draw (index or label) when the field has a time dimension.
    projection
        Cartopy projection or name (default ``PlateCarree()``).
    cmap, clim
        Colour map and limits of the field in display units (default: the
        variable's colour map and range from :mod:`climviz.viz.style`; PSL is
        drawn in hPa, PRECT in mm/day).
    classes
        Classes whose regions are drawn, as numbers (1 TC, 2 AR) or names ("tc", "ar"):
        translucent fill + outline.
    coastline_resolution
        GSHHS ``"c"``, ``"l"`` or ``"i"``.
    land
        Also fill land in light grey under the field (useful for masks only).
    title
        Axes title (default: variable, units, time).
    ax
        Existing cartopy GeoAxes to draw into; default: a new figure.
    figsize
        Size of a new figure, inches.
    colorbar
        Add a colour bar.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    TMQ at the second step with the TC and AR regions of the labels outlined (the
    crude coastlines keep it fast):

    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> fig = cv.viz.static_map(ds, ds["LABELS"], time=1, coastline_resolution="c", figsize=(5, 2.6))
    >>> [type(ax).__name__ for ax in fig.axes]  # the map and its colour bar
    ['GeoAxes', 'Axes']
    >>> fig.axes[0].get_title()
    'total (vertically integrated) precipitable water (kg m-2) — 2000-01-01 03:00'
    """
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    from climviz.viz.coastlines import coastline_feature, land_feature
    from climviz.viz.overlays import resolve_projection
    from climviz.viz.style import display_field

    raw = _grid.pick_field(field, variable)
    shown, name, label, style = display_field(raw)
    if cmap is None:
        cmap = style.cmap
    da, m = _one_step(shown, _grid.pick_mask(mask, field if isinstance(field, xr.Dataset) else None), time, name)
    crs, _, _ = resolve_projection(projection)
    prep = _grid.prepare(da, m, center=0.0, max_shape=None)
    if clim is None:
        from climviz.viz.maps import _robust_clim

        clim = _robust_clim(xr.DataArray(prep.values), diverging=style.kind == "diverging",
                            center=style.center) or (0.0, 1.0)

    if ax is None:
        fig = plt.figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot(1, 1, 1, projection=crs)
    else:
        fig = ax.figure
    data_crs = ccrs.PlateCarree()
    if land:
        ax.add_feature(land_feature(coastline_resolution))
    mesh = ax.pcolormesh(_pcolormesh_edges(prep.lon), _pcolormesh_edges(prep.lat), prep.values,
                         transform=data_crs, cmap=cmap, vmin=clim[0], vmax=clim[1], shading="flat",
                         rasterized=True)
    handles = _draw_classes(ax, prep, class_ids(classes), data_crs) if prep.classes is not None else []
    ax.add_feature(coastline_feature(coastline_resolution))
    if prep.periodic:
        ax.set_global()
    if colorbar:
        fig.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.6, pad=0.04, label=label)
    if handles:
        ax.legend(handles=handles, loc="lower left", framealpha=0.8)
    if title is None:
        title = label
        if "time" in da.coords and da["time"].size == 1:
            from climviz.viz.maps import _time_label

            title = f"{label} — {_time_label(da['time'].values)}"
    ax.set_title(title)
    return fig


def save_static(obj: Any, path: str | os.PathLike, *, dpi: int = 150, overwrite: bool = True,
                **kwargs: Any) -> Path:
    """Save a static figure as PNG, PDF or SVG (format from the file suffix).

    Parameters
    ----------
    obj
        A matplotlib Figure, or a DataArray/Dataset passed to :func:`static_map`
        together with ``kwargs``.
    path
        Output file ending in ``.png``, ``.pdf`` or ``.svg``.
    dpi
        Resolution of raster output (dots per inch).

    Returns
    -------
    pathlib.Path
    """
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in _STATIC_FORMATS:
        raise DataError(f"{path}: static export writes {_STATIC_FORMATS}, found suffix {path.suffix!r}")
    created = False
    if isinstance(obj, (xr.DataArray, xr.Dataset)):
        obj, created = static_map(obj, **kwargs), True
    elif kwargs:
        raise TypeError(f"save_static got map options {sorted(kwargs)} but obj is already a figure")
    if not isinstance(obj, Figure):
        raise DataError(f"save_static needs a matplotlib Figure or an xarray field, found {type(obj).__name__}")
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            obj.savefig(tmp, format=fmt, dpi=dpi)
    finally:
        if created:
            plt.close(obj)
    return path


def save_png(obj: Any, path: str | os.PathLike, *, dpi: int = 150, overwrite: bool = True, **kwargs: Any) -> Path:
    """Save a static PNG: a matplotlib Figure, or a field drawn with :func:`static_map` (``kwargs``).

    Same as :func:`save_static` for a ``.png`` path, e.g.
    ``save_png(ds["TMQ"], "tmq.png", mask=masks["mask"], time=0, title="first step")``.

    Examples
    --------
    A 5 x 2.6 inch figure at 40 dpi is a 200 x 104 pixel image:

    >>> import matplotlib.image
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> path = cv.viz.save_png(ds["TMQ"], "tmq.png", mask=ds["LABELS"], time=0, dpi=40,
    ...                        coastline_resolution="c", figsize=(5, 2.6))
    >>> path.name, matplotlib.image.imread(path).shape  # (height, width, RGBA)
    ('tmq.png', (104, 200, 4))
    >>> cv.viz.save_png(ds["TMQ"], "tmq.png", overwrite=False)
    Traceback (most recent call last):
    ...
    climviz.errors.OutputExistsError: tmq.png exists; pass overwrite=True to replace it
    """
    if Path(path).suffix.lower() != ".png":
        raise DataError(f"{path}: save_png writes .png files (use save_static for .pdf/.svg)")
    return save_static(obj, path, dpi=dpi, overwrite=overwrite, **kwargs)
