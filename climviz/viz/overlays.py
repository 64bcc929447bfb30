"""Overlays for maps: class-mask polygons, projections and hover formatting.

A class mask (0 background, 1 TC, 2 AR) becomes filled polygons per class,
traced with ``contourpy`` at the half-way level of the class indicator, so each
polygon edge runs half-way between a masked cell centre and its unmasked
neighbour (the cell edges, with corners cut).
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

import numpy as np

from climviz.data.schema import AR, TC
from climviz.errors import DataError
from climviz.viz.style import CLASS_COLORS, CLASS_NAMES_JS, CLASS_SHORT, MASK_ALPHA

__all__ = ["mask_polygons", "polygon_dicts", "project_polygons", "class_overlay", "resolve_projection",
           "lon_hover_formatter", "lat_hover_formatter", "class_hover_formatter", "lon_tick_formatter",
           "lat_tick_formatter", "LON_JS", "MaskStyle"]

#: How class regions are drawn: translucent class-coloured fill, or outlines only.
MaskStyle = Literal["fill", "contour"]

#: JavaScript expression body: turn ``v`` (a longitude in any convention, or a map x plus the
#: central longitude) into the text readers use, the same in axis ticks and hover: 125°W, 30°E, 0°, 180°.
LON_JS = ("let l = ((v % 360) + 540) % 360 - 180; l = Math.round(l * 100) / 100; if (l === -180) l = 180;"
          "const a = Math.abs(l);"
          "if (a < 1e-9 || Math.abs(a - 180) < 1e-9) return a.toFixed(DEC) + '°';"
          "return a.toFixed(DEC) + (l > 0 ? '°E' : '°W');")

_PROJECTIONS = ("PlateCarree", "Robinson", "Mollweide", "EqualEarth", "Orthographic", "Miller",
                "Mercator", "LambertCylindrical", "NorthPolarStereo", "SouthPolarStereo")


def resolve_projection(projection: Any = None) -> tuple[Any, bool, float]:
    """Turn ``projection`` into a cartopy CRS.

    Parameters
    ----------
    projection
        None (``PlateCarree()``), a cartopy projection instance, or a name such as
        ``"Robinson"`` or ``"PlateCarree"``.

    Returns
    -------
    (crs, fast, center)
        ``fast`` is True for ``PlateCarree`` (of any central longitude): the data
        are then shifted instead of re-gridded; ``center`` is its central longitude.
    """
    import cartopy.crs as ccrs

    if projection is None:
        projection = ccrs.PlateCarree()
    elif isinstance(projection, str):
        if projection not in _PROJECTIONS:
            raise DataError(f"unknown projection {projection!r}; use one of {_PROJECTIONS} "
                            "or pass a cartopy.crs projection")
        projection = getattr(ccrs, projection)()
    if not isinstance(projection, ccrs.Projection):
        raise DataError(f"projection must be a cartopy.crs.Projection or a name, found {type(projection).__name__}")
    fast = type(projection) is ccrs.PlateCarree
    params = projection.proj4_params
    center = float(params.get("lon_0", params.get("pm", 0.0))) if fast else 0.0
    return projection, fast, center


def mask_polygons(lon: np.ndarray, lat: np.ndarray, classes: np.ndarray, cls: int,
                  *, clip_x: tuple[float, float] | None = None) -> list:
    """Filled outlines of the cells of class ``cls``.

    Parameters
    ----------
    lon, lat
        1-D cell-centre coordinates (degrees; ``lon`` ascending).
    classes
        ``(lat, lon)`` integer class grid.
    cls
        Class value (1 TC, 2 AR).
    clip_x
        Optional x range to clip the polygons to (e.g. (-180, 180) for a map
        whose grid has an extra cyclic column).

    Returns
    -------
    list of shapely.Polygon
    """
    import contourpy
    import shapely

    indicator = (np.asarray(classes) == cls).astype(np.float64)
    if not indicator.any() or indicator.shape[0] < 2 or indicator.shape[1] < 2:
        return []
    gen = contourpy.contour_generator(lon, lat, indicator, fill_type="OuterOffset")
    points, offsets = gen.filled(0.5, 1.5)  # type: ignore[misc]  # OuterOffset: (points, offsets); typed as any fill type
    polys = []
    for pts, offs in zip(points, offsets):
        rings = [pts[a:b] for a, b in zip(offs[:-1], offs[1:]) if b - a >= 4]
        if rings:
            polys.append(shapely.Polygon(rings[0], rings[1:]))
    if clip_x is not None and polys:
        box = shapely.box(clip_x[0], -90.0, clip_x[1], 90.0)
        clipped = shapely.intersection(np.asarray(polys, dtype=object), box)
        polys = []
        for g in clipped:
            if g.is_empty:
                continue
            polys.extend(getattr(g, "geoms", [g]))
        polys = [p for p in polys if p.geom_type == "Polygon" and p.area > 0]
    return polys


def project_polygons(polys: list, projection: Any, src: Any) -> list:
    """Project shapely polygons from ``src`` into ``projection`` with cartopy."""
    out: list = []
    for p in polys:
        g = projection.project_geometry(p, src)
        out.extend(q for q in getattr(g, "geoms", [g]) if not q.is_empty and q.area > 0)
    return out


def polygon_dicts(polys: list) -> list[dict[str, Any]]:
    """Shapely polygons as HoloViews polygon dicts (``x``, ``y``, ``holes``)."""
    out = []
    for p in polys:
        ext = np.asarray(p.exterior.coords)
        holes = [np.asarray(r.coords) for r in p.interiors]
        out.append({"x": ext[:, 0], "y": ext[:, 1], "holes": [[h for h in holes]] if holes else [[]]})
    return out


def class_overlay(lon: np.ndarray, lat: np.ndarray, classes: np.ndarray | None, crs: Any,
                  *, classes_shown: Iterable[int] = (TC, AR), style: MaskStyle = "fill", alpha: float = MASK_ALPHA,
                  clip_x: tuple[float, float] | None = None, projection: Any = None):
    """GeoViews polygons, one labelled element per class, for the legend.

    ``style="fill"`` draws translucent class-coloured regions with an opaque
    outline of the class colour (:data:`climviz.viz.style.CLASS_COLORS`),
    ``style="contour"`` outlines only. ``lon``/``lat`` are in ``crs``; with a
    ``projection`` that is not a PlateCarree, the polygons are projected here.
    The elements are ``holoviews.Polygons`` (group ``Mask``) in map coordinates.
    """
    import cartopy.crs as ccrs
    import holoviews as hv

    if style not in ("fill", "contour"):
        raise DataError(f"mask style must be 'fill' or 'contour', found {style!r}")
    elements = []
    for cls in classes_shown:
        if cls not in CLASS_SHORT:
            raise DataError(f"class {cls!r} has no overlay; classes are {TC} (TC) and {AR} (AR)")
        polys = [] if classes is None else mask_polygons(lon, lat, classes, cls, clip_x=clip_x)
        if projection is not None and not isinstance(projection, ccrs.PlateCarree):
            polys = project_polygons(polys, projection, crs)
        # Plain HoloViews polygons, already in map coordinates: nothing to re-project at redraw.
        el = hv.Polygons(polygon_dicts(polys), kdims=["x", "y"], label=CLASS_SHORT[cls], group="Mask")
        color = CLASS_COLORS[cls]
        el = el.opts(fill_color=color if style == "fill" else None, fill_alpha=alpha if style == "fill" else 0,
                     line_color=color, line_width=2, line_alpha=1.0, tools=[], show_legend=True)
        elements.append(el)
    return hv.Overlay(elements)


def lon_hover_formatter(center: float, decimals: int = 2):
    """Bokeh hover formatter: a ``PlateCarree(central_longitude=center)`` x as readers write it (125.00°W).

    Same convention as the axis ticks (:func:`lon_tick_formatter`): °E/°W in
    (-180, 180], whatever the data's own longitude convention (0-360 stays in the data).
    """
    from bokeh.models import CustomJSHover

    return CustomJSHover(code=f"const v = value + {center:.6f};" + LON_JS.replace("DEC", str(int(decimals))))


def lat_hover_formatter(decimals: int = 2):
    """Bokeh hover formatter for latitudes: 20.30°N, 15.00°S, 0.00°."""
    from bokeh.models import CustomJSHover

    return CustomJSHover(code=(
        f"const l = Math.round(value * 100) / 100; const a = Math.abs(l).toFixed({int(decimals)});"
        "return l > 0 ? a + '°N' : (l < 0 ? a + '°S' : a + '°');"))


def class_hover_formatter():
    """Bokeh hover formatter that names a class value: TC, AR or none."""
    from bokeh.models import CustomJSHover

    return CustomJSHover(code=(f"const n = {CLASS_NAMES_JS}; const k = Math.round(value);"
                               "return (k in n) ? n[k] : String(value);"))


def lon_tick_formatter(center: float):
    """Bokeh tick formatter for the x axis of a ``PlateCarree(central_longitude=center)`` map: 30°E, 150°W."""
    from bokeh.models import CustomJSTickFormatter

    # Ticks print without forced decimals (30°E, 127.5°W); the rule is the hover's (LON_JS).
    return CustomJSTickFormatter(code=(
        f"const v = tick + {center:.6f};"
        + LON_JS.replace("a.toFixed(DEC)", "String(a)")))


def lat_tick_formatter():
    """Bokeh tick formatter for latitudes: 30°N, 0°, 30°S."""
    from bokeh.models import CustomJSTickFormatter

    return CustomJSTickFormatter(code=(
        "const l = Math.round(tick * 100) / 100;"
        "return l > 0 ? l + '°N' : (l < 0 ? (-l) + '°S' : '0°');"))
