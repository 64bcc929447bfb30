"""The one description of a climviz grid: names, orientation, periodicity, cell areas.

Every part of climviz (the readers in :mod:`climviz.data`, the event statistics in
:mod:`climviz.events`, the heuristic detectors in :mod:`climviz.labels` and the maps
in :mod:`climviz.viz`) accepts the same grids because they all go through this module:

Names
    A latitude dimension is called one of :data:`LAT_NAMES` (``lat``, ``latitude``,
    ``nlat``, ``y``), a longitude dimension one of :data:`LON_NAMES` (``lon``,
    ``longitude``, ``nlon``, ``x``), a time dimension one of :data:`TIME_NAMES`
    (``time``, ``valid_time``, ``t``); the first name present wins. Rotated-pole
    dimensions (``rlat``/``rlon``) are refused with a clear error: their values are
    not geographic latitudes and longitudes. A coordinate whose ``units`` attribute
    says it is not in degrees (e.g. projected ``x``/``y`` in metres) is refused too.
Orientation
    Latitude ascending (a descending axis is flipped, any other order is an error,
    values must lie in [-90, 90]); longitude increasing from its smallest value in
    [0, 360): a run stored in [-180, 180) is rolled, never re-labelled in place. A
    regional grid that crosses 0°E stays in one piece, its eastern columns continuing
    past 360° (e.g. 340 … 380). Longitudes that are repeated or not increasing around
    the globe are an error, never silently reordered.
Periodicity
    The first and last longitude columns are neighbours only when the grid covers the
    globe: the gap across the 0°/360° seam is no larger than 1.5 times the largest
    spacing between neighbouring centres (:func:`is_global_lon`). The poles are never
    neighbours.
Cell areas
    On a sphere of radius :data:`EARTH_RADIUS_KM` (6371.0 km):
    ``R² · Δλ · |sin φ_north − sin φ_south|``, with cell edges halfway between centres
    and the outermost latitude edges clipped to ±90° (:func:`cell_areas`).

This module imports nothing from the other climviz packages (only
:mod:`climviz.errors`), so all of them can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from climviz.errors import DataError

__all__ = [
    "EARTH_RADIUS_KM",
    "LAT_NAMES",
    "LON_NAMES",
    "TIME_NAMES",
    "Orientation",
    "find_dim",
    "find_lat_lon",
    "spatial_names",
    "orient_lat",
    "orient_lon",
    "orientation",
    "standardize",
    "is_global_lon",
    "lat_edges",
    "lon_widths",
    "cell_areas",
]

#: Radius of the spherical Earth used for every area and distance (km).
EARTH_RADIUS_KM: float = 6371.0

#: Accepted names of the latitude dimension, in order of preference.
LAT_NAMES: tuple[str, ...] = ("lat", "latitude", "nlat", "y")
#: Accepted names of the longitude dimension, in order of preference.
LON_NAMES: tuple[str, ...] = ("lon", "longitude", "nlon", "x")
#: Accepted names of the time dimension, in order of preference.
TIME_NAMES: tuple[str, ...] = ("time", "valid_time", "t")

_ROTATED = ("rlat", "rlon", "rotated_latitude", "rotated_longitude")
_NAMES = {"lat": (LAT_NAMES, "latitude"), "lon": (LON_NAMES, "longitude"), "time": (TIME_NAMES, "time")}
_DEGREE_UNITS = {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen",
                 "degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee",
                 "degrees", "degree", "deg", "°", "°n", "°e", "1", ""}


def _label_of(obj: Any, label: str | None) -> str:
    if label is not None:
        return label
    name = getattr(obj, "name", None)
    return str(name) if name is not None else "data"


def spatial_names(dims: Any) -> tuple[str | None, str | None]:
    """Names of the latitude and longitude dimensions among ``dims`` (None where absent).

    Parameters
    ----------
    dims
        Dimension names (any iterable of str, e.g. ``DataArray.dims`` or the
        dimension scales of an HDF5 variable).

    Returns
    -------
    tuple
        ``(lat_name, lon_name)``; each is the first of :data:`LAT_NAMES` /
        :data:`LON_NAMES` present in ``dims``, or None.

    Examples
    --------
    >>> from climviz.data.grid import spatial_names
    >>> spatial_names(("valid_time", "latitude", "longitude"))
    ('latitude', 'longitude')
    >>> spatial_names(("time", "lat"))
    ('lat', None)
    """
    dims = tuple(dims)
    lat = next((n for n in LAT_NAMES if n in dims), None)
    lon = next((n for n in LON_NAMES if n in dims), None)
    return lat, lon


def find_dim(obj: Any, kind: str, label: str | None = None) -> str:
    """Name of the latitude, longitude or time dimension of an xarray object.

    Parameters
    ----------
    obj
        A DataArray or Dataset (anything with ``dims``).
    kind
        ``"lat"``, ``"lon"`` or ``"time"``.
    label
        What ``obj`` is called in error messages (default: its ``name``, else "data").

    Returns
    -------
    str
        The first of :data:`LAT_NAMES`, :data:`LON_NAMES` or :data:`TIME_NAMES`
        that is a dimension of ``obj``.

    Raises
    ------
    DataError
        If none is present (naming the names accepted and the dims found), or if
        the dimension is a rotated-pole one (``rlat``/``rlon``), whose values are
        not geographic coordinates.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from climviz.data.grid import find_dim
    >>> da = xr.DataArray(np.zeros((2, 3)), dims=("latitude", "longitude"))
    >>> find_dim(da, "lat"), find_dim(da, "lon")
    ('latitude', 'longitude')
    """
    if kind not in _NAMES:
        raise ValueError(f"kind: expected 'lat', 'lon' or 'time', found {kind!r}")
    names, what = _NAMES[kind]
    dims = tuple(obj.dims)
    for name in names:
        if name in dims:
            return name
    rotated = [d for d in dims if d in _ROTATED]
    if rotated and kind != "time":
        raise DataError(
            f"{_label_of(obj, label)}: expected a {what} dimension named one of {names}, found the rotated-pole "
            f"dimension(s) {rotated} (rotated coordinates are not geographic latitude/longitude; regrid to a "
            "regular lat/lon grid first)"
        )
    raise DataError(
        f"{_label_of(obj, label)}: expected a {what} dimension named one of {names}, found dims {dims}"
    )


def find_lat_lon(obj: Any, label: str | None = None) -> tuple[str, str]:
    """Names of the latitude and longitude dimensions of ``obj`` (see :func:`find_dim`).

    Also checks that coordinate values, where present, are degrees: a ``units``
    attribute such as ``"m"`` or ``"km"`` (a projected grid) is an error.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from climviz.data.grid import find_lat_lon
    >>> find_lat_lon(xr.DataArray(np.zeros((1, 2, 3)), dims=("time", "y", "x")))
    ('y', 'x')
    """
    latd, lond = find_dim(obj, "lat", label), find_dim(obj, "lon", label)
    coords = getattr(obj, "coords", {})
    for d in (latd, lond):
        if d in coords:
            units = str(coords[d].attrs.get("units", "")).strip().lower().replace(" ", "_")
            if units not in _DEGREE_UNITS and not units.startswith("degree"):
                raise DataError(
                    f"{_label_of(obj, label)}: coordinate {d!r}: expected degrees, found units {units!r} "
                    "(a projected grid; climviz needs latitude/longitude in degrees)"
                )
    return latd, lond


def _as_1d(values: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a 1-D coordinate, found shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name}: expected at least one value, found an empty coordinate")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: expected finite values, found NaN or inf")
    return arr


def orient_lat(lat: npt.ArrayLike, label: str = "lat") -> tuple[np.ndarray, bool]:
    """Latitudes in ascending order, and whether the axis had to be flipped.

    Parameters
    ----------
    lat
        Cell-centre latitudes (degrees), strictly monotonic, in [-90, 90].
    label
        Prefix of error messages (e.g. ``"run.nc: variable lat"``).

    Returns
    -------
    lat : numpy.ndarray
        float64 latitudes, ascending.
    flip : bool
        True if ``lat`` was descending (flip the data's latitude axis too).

    Raises
    ------
    DataError
        For values outside [-90, 90], NaN, or an axis that is not strictly monotonic.

    Examples
    --------
    >>> from climviz.data.grid import orient_lat
    >>> orient_lat([45.0, 0.0, -45.0])
    (array([-45.,   0.,  45.]), True)
    """
    lat = _as_1d(lat, label)
    if np.abs(lat).max() > 90.0:
        raise DataError(f"{label}: expected values in [-90, 90], found {lat.min()}..{lat.max()}")
    if lat.size < 2:
        return lat, False
    d = np.diff(lat)
    if np.all(d < 0):
        return lat[::-1].copy(), True
    if not np.all(d > 0):
        raise DataError(f"{label}: expected strictly monotonic latitudes, found {lat[:6]}...")
    return lat, False


def orient_lon(lon: npt.ArrayLike, label: str = "lon") -> tuple[np.ndarray, int]:
    """Longitudes increasing from their smallest value in [0, 360), and the roll that gets there.

    Values are taken modulo 360 (so [-180, 180) and [0, 360) grids give the same
    result) and the axis is rolled so that it starts at its smallest longitude. A
    regional grid that crosses 0°E (one gap much wider than its spacing inside
    [0, 360), none across the seam) starts after that gap instead, its eastern
    columns continuing past 360° (e.g. 340 … 380), so it stays in one piece.

    Parameters
    ----------
    lon
        Cell-centre longitudes (degrees), distinct and increasing around the globe
        (in any 360° window), e.g. [0, 360), [-180, 180) or 100–180°E.
    label
        Prefix of error messages.

    Returns
    -------
    lon : numpy.ndarray
        float64 longitudes, strictly increasing.
    shift : int
        The new axis is ``numpy.roll(old, -shift)``: apply the same roll to the data.

    Raises
    ------
    DataError
        For NaN/inf, repeated longitudes, or longitudes that do not increase around
        the globe (e.g. shuffled columns).

    Examples
    --------
    A global grid in [-180, 180) is rolled by half its length:

    >>> import numpy as np
    >>> from climviz.data.grid import orient_lon
    >>> lon, shift = orient_lon([-180.0, -90.0, 0.0, 90.0])
    >>> lon, shift
    (array([  0.,  90., 180., 270.]), 2)

    A regional grid across the prime meridian stays in one piece:

    >>> orient_lon([-20.0, -10.0, 0.0, 10.0])
    (array([340., 350., 360., 370.]), 0)
    """
    raw = _as_1d(lon, label)
    lon360 = np.mod(raw, 360.0)
    lon360 = np.where(lon360 >= 360.0, 0.0, lon360)  # np.mod(-1e-20, 360) == 360.0
    shift = int(np.argmin(lon360))
    out = np.roll(lon360, -shift)
    if out.size > 1 and not np.all(np.diff(out) > 0):
        raise DataError(
            f"{label}: expected distinct longitudes increasing around the globe "
            f"(in [0, 360) or [-180, 180)), found {raw[:6]}..."
        )
    if out.size >= 3:
        d = np.diff(out)
        step = float(np.median(d))
        big = np.flatnonzero(d > 1.5 * step)
        seam = out[0] + 360.0 - out[-1]
        if big.size == 1 and seam <= 1.5 * step:
            k = int(big[0]) + 1  # first column west of the prime meridian in the map
            out = np.r_[out[k:], out[:k] + 360.0]
            shift = (shift + k) % out.size
    return out, shift


@dataclass(frozen=True)
class Orientation:
    """How to bring a grid to the climviz orientation (see :func:`orientation`).

    Attributes
    ----------
    lat, lon
        The oriented coordinates (degrees): latitude ascending, longitude increasing.
    flip_lat
        Reverse the latitude axis of the data.
    lon_shift
        Roll the longitude axis of the data by ``-lon_shift`` (``numpy.roll(a, -lon_shift, axis)``).
    periodic
        Whether the grid is global in longitude (:func:`is_global_lon`).
    """

    lat: np.ndarray
    lon: np.ndarray
    flip_lat: bool
    lon_shift: int
    periodic: bool


def orientation(lat: npt.ArrayLike, lon: npt.ArrayLike, label: str = "grid") -> Orientation:
    """Orient a pair of 1-D coordinates (:func:`orient_lat`, :func:`orient_lon`, :func:`is_global_lon`).

    Parameters
    ----------
    lat, lon
        Cell-centre coordinates (degrees).
    label
        Prefix of error messages (e.g. the file name).

    Returns
    -------
    Orientation
        Oriented coordinates, the flip/roll to apply to the data and the periodicity.

    Examples
    --------
    >>> from climviz.data.grid import orientation
    >>> o = orientation([60.0, 0.0, -60.0], [-120.0, 0.0, 120.0])
    >>> o.lat.tolist(), o.lon.tolist(), o.flip_lat, o.lon_shift, o.periodic
    ([-60.0, 0.0, 60.0], [0.0, 120.0, 240.0], True, 1, True)
    """
    la, flip = orient_lat(lat, f"{label}: variable lat")
    lo, shift = orient_lon(lon, f"{label}: variable lon")
    return Orientation(la, lo, flip, shift, is_global_lon(lo))


def standardize(obj: Any, label: str | None = None, *, require_coords: bool = True,
                rename: bool = True) -> Any:
    """Bring a DataArray or Dataset to dims ``(..., lat, lon)``, latitude ascending, longitude in [0, 360).

    Parameters
    ----------
    obj
        xarray DataArray or Dataset with a latitude and a longitude dimension (any
        name of :data:`LAT_NAMES` / :data:`LON_NAMES`), latitude in either order,
        longitude in [0, 360) or [-180, 180) (see :func:`orient_lon`).
    label
        What ``obj`` is called in error messages.
    require_coords
        If True (default) the latitude and longitude dimensions must have numeric
        coordinate values; if False, a dimension without coordinates is only renamed
        and moved (its order cannot be checked).
    rename
        Rename the dimensions to ``lat``/``lon`` (and a time dimension named one of
        :data:`TIME_NAMES` to ``time``); if False keep their names.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        The same data, lazily reindexed (dask arrays stay dask arrays); the
        latitude and longitude dimensions last. Nothing is copied when ``obj`` is
        already oriented.

    Raises
    ------
    DataError
        For a missing latitude/longitude dimension, missing or non-numeric
        coordinates (with ``require_coords``), or coordinates that cannot be
        oriented (:func:`orient_lat`, :func:`orient_lon`).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from climviz.data.grid import standardize
    >>> da = xr.DataArray(np.arange(6.0).reshape(3, 2), dims=("longitude", "latitude"),
    ...                   coords={"longitude": [-120.0, 0.0, 120.0], "latitude": [45.0, -45.0]})
    >>> out = standardize(da)
    >>> out.dims, out.lat.values.tolist(), out.lon.values.tolist()
    (('lat', 'lon'), [-45.0, 45.0], [0.0, 120.0, 240.0])
    >>> out.values.tolist()
    [[3.0, 5.0, 1.0], [2.0, 4.0, 0.0]]
    """
    import xarray as xr

    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        raise DataError(f"{label or 'data'}: expected an xarray DataArray or Dataset, found {type(obj).__name__}")
    label = _label_of(obj, label)
    latd, lond = find_lat_lon(obj, label)
    for d in (latd, lond):
        if d in obj.coords and not np.issubdtype(obj[d].dtype, np.number):
            raise DataError(f"{label}: coordinate {d!r} must be numeric degrees, found dtype {obj[d].dtype}")
        if require_coords and d not in obj.coords:
            raise DataError(f"{label}: dimension {d!r} has no coordinate values (degrees expected)")
    if rename:
        ren = {k: v for k, v in ((latd, "lat"), (lond, "lon")) if k != v}
        if "time" not in obj.dims:
            td = next((n for n in TIME_NAMES if n in obj.dims), None)
            if td is not None and td != "time":
                ren[td] = "time"
        if ren:
            obj = obj.rename(ren)
            latd, lond = ren.get(latd, latd), ren.get(lond, lond)
    dims = tuple(obj.dims)
    if dims[-2:] != (latd, lond):
        other = [d for d in dims if d not in (latd, lond)]
        obj = obj.transpose(*other, latd, lond)
    if latd in obj.coords:
        _, flip = orient_lat(obj[latd].values, f"{label}: coordinate {latd!r}")
        if flip:
            obj = obj.isel({latd: slice(None, None, -1)})
    if lond in obj.coords:
        old = np.asarray(obj[lond].values, dtype=np.float64)
        lon, shift = orient_lon(old, f"{label}: coordinate {lond!r}")
        if shift:
            obj = obj.isel({lond: np.roll(np.arange(old.size), -shift)})
        if shift or not np.array_equal(lon, old):
            obj = obj.assign_coords({lond: (lond, lon, dict(obj[lond].attrs))})
    return obj


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

    Examples
    --------
    >>> from climviz.data.grid import lat_edges
    >>> lat_edges([-60.0, 0.0, 60.0])
    array([-90., -30.,  30.,  90.])
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

    Examples
    --------
    >>> import numpy as np
    >>> from climviz.data.grid import is_global_lon
    >>> is_global_lon(np.arange(0.0, 360.0, 1.25)), is_global_lon(np.arange(100.0, 180.1, 1.25))
    (True, False)
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

    Examples
    --------
    >>> from climviz.data.grid import lon_widths
    >>> lon_widths([0.0, 90.0, 180.0, 270.0])
    array([90., 90., 90., 90.])
    >>> lon_widths([100.0, 110.0, 130.0])  # regional: half a spacing beyond each edge
    array([10., 15., 20.])
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

    Examples
    --------
    A global grid covers the sphere, 4πR²:

    >>> import numpy as np
    >>> from climviz.data.grid import EARTH_RADIUS_KM, cell_areas
    >>> a = cell_areas(np.linspace(-88.75, 88.75, 72), np.arange(0.0, 360.0, 2.5))
    >>> a.shape, bool(np.isclose(a.sum(), 4 * np.pi * EARTH_RADIUS_KM**2))
    ((72, 144), True)
    """
    edges = np.deg2rad(lat_edges(lat))
    band = np.abs(np.diff(np.sin(edges)))  # (nlat,)
    widths = np.deg2rad(lon_widths(lon))  # (nlon,)
    return float(radius_km) ** 2 * band[:, None] * widths[None, :]
