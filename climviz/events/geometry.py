"""Geometry on the sphere: grid-cell areas, great-circle distances, circular means.

All functions use degrees for angles and kilometres for lengths. The Earth is a
sphere of radius :data:`EARTH_RADIUS_KM` (6371.0 km), as fixed in the climviz
event conventions.

:data:`EARTH_RADIUS_KM`, :func:`lat_edges`, :func:`lon_widths`, :func:`is_global_lon` and
:func:`cell_areas` live in :mod:`climviz.data.grid` (the one grid module shared by data,
events, labels and viz) and are re-exported here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from climviz.data.grid import (  # the one grid module; re-exported here
    EARTH_RADIUS_KM,
    cell_areas,
    is_global_lon,
    lat_edges,
    lon_widths,
)

__all__ = [
    "EARTH_RADIUS_KM",
    "lat_edges",
    "lon_widths",
    "is_global_lon",
    "cell_areas",
    "great_circle_km",
    "circular_mean_deg",
]

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

    Examples
    --------
    One degree of a great circle is ``6371 * pi / 180`` = 111.19 km; equator to pole is
    a quarter of the circumference:

    >>> float(cv.events.great_circle_km(0, 0, 0, 1)), float(cv.events.great_circle_km(0, 0, 90, 0))
    (111.19492664455873, 10007.543398010286)

    Broadcasting; at 45 N a 10-degree step in longitude is shorter, and 370 E is 10 E:

    >>> cv.events.great_circle_km(45, 10, 45, [20, 370]).round(1)
    array([785.8,   0. ])
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

    Examples
    --------
    >>> float(cv.events.circular_mean_deg([350, 10]))
    0.0
    >>> round(float(cv.events.circular_mean_deg([0, 90], weights=[1, 3])), 3)  # atan(3/1)
    71.565
    >>> cv.events.circular_mean_deg([[350, 10], [80, 100]], axis=1)
    array([ 0., 90.])
    >>> float(cv.events.circular_mean_deg([0, 180]))  # opposite angles: no mean direction
    nan
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
