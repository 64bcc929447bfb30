"""Geometry on the sphere: grid-cell areas, great-circle distances, circular means.

All functions use degrees for angles and kilometres for lengths. The Earth is a
sphere of radius :data:`EARTH_RADIUS_KM` (6371.0 km), as fixed in the climviz
event conventions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from climviz.errors import DataError

__all__ = [
    "EARTH_RADIUS_KM",
    "lat_edges",
    "lon_widths",
    "is_global_lon",
    "cell_areas",
    "great_circle_km",
    "circular_mean_deg",
]

#: Radius of the spherical Earth used for every area and distance (km).
EARTH_RADIUS_KM: float = 6371.0


def _as_1d(values: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a 1-D coordinate, found shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name}: expected at least one value, found an empty coordinate")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: expected finite values, found NaN or inf")
    return arr


def lat_edges(lat: npt.ArrayLike) -> np.ndarray:
    """Cell edges of a latitude coordinate, in degrees.

    Edges lie halfway between neighbouring centres; the outermost edges are
    placed half a spacing beyond the first/last centre and clipped to ±90°.

    Parameters
    ----------
    lat
        Cell-centre latitudes (degrees), strictly monotonic (ascending or
        descending), regular or irregular.

    Returns
    -------
    numpy.ndarray
        ``len(lat) + 1`` edges (degrees), in the same order as ``lat``.
    """
    lat = _as_1d(lat, "lat")
    if lat.size < 2:
        raise DataError(f"lat: expected at least 2 latitudes to place cell edges, found {lat.size}")
    if np.any(np.abs(lat) > 90.0):
        raise DataError(f"lat: expected values in [-90, 90], found range [{lat.min()}, {lat.max()}]")
    d = np.diff(lat)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise DataError("lat: expected strictly monotonic latitudes, found repeated or unordered values")
    edges = np.empty(lat.size + 1)
    edges[1:-1] = 0.5 * (lat[1:] + lat[:-1])
    edges[0] = lat[0] - 0.5 * d[0]
    edges[-1] = lat[-1] + 0.5 * d[-1]
    return np.clip(edges, -90.0, 90.0)


def _seam_closes(lon: np.ndarray) -> bool:
    d = np.diff(lon)
    gap = lon[0] + 360.0 - lon[-1]
    return bool(gap <= 1.5 * d.max() + 1e-9)


def is_global_lon(lon: npt.ArrayLike) -> bool:
    """Whether a longitude coordinate covers the globe (its first and last cells are neighbours).

    The rule of :func:`lon_widths`: the grid is global when the gap across
    the 0°/360° seam (``lon[0] + 360 - lon[-1]``) is no larger than 1.5 times
    the largest spacing between neighbouring centres. A 100–180°E grid is
    regional; a 1.25° grid over [0, 360) or [-180, 180) is global.

    Parameters
    ----------
    lon
        Cell-centre longitudes (degrees), strictly increasing.

    Returns
    -------
    bool
        True for a global (periodic) grid. A single longitude is not global.
    """
    lon = _as_1d(lon, "lon")
    if lon.size < 2:
        return False
    if not np.all(np.diff(lon) > 0):
        raise DataError("lon: expected strictly increasing longitudes, found repeated or unordered values")
    return _seam_closes(lon)


def lon_widths(lon: npt.ArrayLike) -> np.ndarray:
    """Longitudinal width (degrees) of each grid cell.

    Edges lie halfway between neighbouring centres. If the grid is global
    (the gap across the 0°/360° seam is no larger than 1.5 times the largest
    spacing) the seam is treated periodically, so the widths sum to 360°;
    otherwise the outermost cells get half a spacing on their outer side.

    Parameters
    ----------
    lon
        Cell-centre longitudes (degrees), strictly increasing, any range
        (e.g. [0, 360) or [-180, 180)).

    Returns
    -------
    numpy.ndarray
        One width per longitude (degrees).
    """
    lon = _as_1d(lon, "lon")
    n = lon.size
    if n == 1:
        return np.array([360.0])
    d = np.diff(lon)
    if not np.all(d > 0):
        raise DataError("lon: expected strictly increasing longitudes, found repeated or unordered values")
    if lon[-1] - lon[0] >= 360.0:
        raise DataError(f"lon: expected a span below 360 degrees, found {lon[-1] - lon[0]}")
    gap = lon[0] + 360.0 - lon[-1]
    if _seam_closes(lon):
        left, right = gap, gap  # periodic: the seam is an ordinary neighbour gap
    else:
        left, right = d[0], d[-1]
    before = np.concatenate([[left], d])  # gap to the western neighbour
    after = np.concatenate([d, [right]])  # gap to the eastern neighbour
    return 0.5 * (before + after)


def cell_areas(
    lat: npt.ArrayLike, lon: npt.ArrayLike, radius_km: float = EARTH_RADIUS_KM
) -> np.ndarray:
    """Area of every grid cell on a sphere, in km².

    ``area = R² · Δλ · |sin φ_north − sin φ_south|`` with Δλ in radians, cell
    edges halfway between centres and the outermost latitude edges clipped to
    ±90° (see :func:`lat_edges` and :func:`lon_widths`).

    Parameters
    ----------
    lat
        Cell-centre latitudes (degrees), monotonic, regular or irregular.
    lon
        Cell-centre longitudes (degrees), increasing.
    radius_km
        Sphere radius (km); default 6371.0.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(len(lat), len(lon))`` (km²).
    """
    edges = np.deg2rad(lat_edges(lat))
    band = np.abs(np.diff(np.sin(edges)))  # (nlat,)
    widths = np.deg2rad(lon_widths(lon))  # (nlon,)
    return float(radius_km) ** 2 * band[:, None] * widths[None, :]


def great_circle_km(
    lat1: npt.ArrayLike,
    lon1: npt.ArrayLike,
    lat2: npt.ArrayLike,
    lon2: npt.ArrayLike,
    radius_km: float = EARTH_RADIUS_KM,
) -> np.ndarray:
    """Great-circle distance between points (haversine formula), in km.

    Parameters
    ----------
    lat1, lon1, lat2, lon2
        Coordinates in degrees; broadcast against each other.
    radius_km
        Sphere radius (km); default 6371.0.

    Returns
    -------
    numpy.ndarray
        Distances (km), shape of the broadcast inputs (a 0-d array for scalars).
    """
    p1 = np.deg2rad(np.asarray(lat1, dtype=np.float64))
    p2 = np.deg2rad(np.asarray(lat2, dtype=np.float64))
    dl = np.deg2rad(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    h = np.sin(0.5 * (p2 - p1)) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(0.5 * dl) ** 2
    return 2.0 * float(radius_km) * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def circular_mean_deg(
    lon_deg: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    axis: int | None = None,
) -> np.ndarray:
    """Weighted mean of angles (e.g. longitudes) treated as points on a circle.

    The mean of 350° and 10° is 0°, not 180°. The result is the direction of
    the (weighted) resultant vector; it is undefined (returned as NaN) when the
    resultant vanishes, e.g. for two opposite angles with equal weights.

    Parameters
    ----------
    lon_deg
        Angles in degrees, any range.
    weights
        Non-negative weights, broadcastable to ``lon_deg``; default equal weights.
    axis
        Axis to average over; default all.

    Returns
    -------
    numpy.ndarray
        Mean angle(s) in degrees, in [0, 360).
    """
    rad = np.deg2rad(np.asarray(lon_deg, dtype=np.float64))
    w = np.ones_like(rad) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), rad.shape)
    s = np.sum(w * np.sin(rad), axis=axis)
    c = np.sum(w * np.cos(rad), axis=axis)
    total = np.sum(np.abs(w), axis=axis)
    r = np.hypot(s, c)
    out = np.mod(np.rad2deg(np.arctan2(s, c)), 360.0)
    out = np.where(r <= 1e-12 * np.maximum(total, 1e-300), np.nan, out)
    out = np.where(out >= 360.0, 0.0, out)
    return out
