"""Grid preparation shared by the plots: find lat/lon, wrap longitudes, decimate, cyclic column.

Everything here is plain numpy/xarray (no plotting library), so it is cheap to
test against hand calculations.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from climviz.data import grid as _dgrid
from climviz.data.schema import AR, LABEL_VAR, TC
from climviz.errors import DataError

# the accepted dimension names are those of the one grid module (climviz.data.grid)
LAT_NAMES = _dgrid.LAT_NAMES
LON_NAMES = _dgrid.LON_NAMES
MASK_NAMES = ("mask", LABEL_VAR)

# The class names and the one class palette live in climviz.viz.style (re-exported here for old imports).
from climviz.viz.style import CLASS_COLORS, CLASS_LONG, CLASS_SHORT  # noqa: E402,F401


def standardize(da: xr.DataArray, label: str = "field") -> xr.DataArray:
    """Rename lat/lon dims to ``lat``/``lon``, order ``(..., lat, lon)``, latitude ascending.

    The names, orientation and checks of :func:`climviz.data.grid.standardize`:
    ``latitude``/``y``/... accepted, a descending latitude axis flipped, a
    [-180, 180) run rolled to [0, 360) (the maps then centre it where asked, see
    :func:`wrap_lon`).

    Raises
    ------
    DataError
        If a latitude or longitude dimension is missing, or the coordinates are not 1-D,
        numeric and orderable (repeated or shuffled longitudes).
    """
    if not isinstance(da, xr.DataArray):
        raise DataError(f"{label}: expected an xarray DataArray, found {type(da).__name__}")
    return _dgrid.standardize(da, label)


def lon_step(lon: np.ndarray) -> float | None:
    """Uniform longitude spacing (degrees) or None if the spacing is irregular."""
    if lon.size < 2:
        return None
    d = np.diff(lon)
    if np.allclose(d, d[0], rtol=1e-4, atol=1e-6) and d[0] > 0:
        return float(d[0])
    return None


def is_global(lon: np.ndarray) -> bool:
    """True if uniformly spaced longitudes cover the full circle (periodic).

    Periodicity is :func:`climviz.data.grid.is_global_lon` (the gap across the
    seam at most 1.5 spacings), for the regular, less than 360° wide grids that the
    maps can repeat as a cyclic column.
    """
    lon = np.asarray(lon, dtype=float)
    step = lon_step(lon)
    if step is None or not np.all(np.isfinite(lon)) or lon[-1] - lon[0] >= 360.0:
        return False
    return _dgrid.is_global_lon(lon)


def wrap_lon(da: xr.DataArray, center: float = 0.0) -> xr.DataArray:
    """Express longitudes relative to ``center`` in [-180, 180) and sort them.

    The returned coordinate ``lon`` holds ``lon - center`` wrapped into [-180, 180)
    (the x coordinate of a ``PlateCarree(central_longitude=center)`` map), so a
    run stored in [0, 360) is rolled, not smeared, onto the map.
    """
    lon = np.asarray(da["lon"].values, dtype=float)
    rel = (lon - center + 180.0) % 360.0 - 180.0
    order = np.argsort(rel, kind="stable")
    out = da.isel(lon=order)
    return out.assign_coords(lon=("lon", rel[order], dict(da["lon"].attrs)))


def add_cyclic(da: xr.DataArray) -> xr.DataArray:
    """Append the first longitude column again at ``lon + 360`` (global grids only).

    With cell centres at -180 ... 180 - step, the image then spans
    [-180 - step/2, 180 + step/2] and the map, clipped to [-180, 180], has no
    empty strip at the seam.
    """
    if not is_global(da["lon"].values):
        return da
    first = da.isel(lon=[0])
    first = first.assign_coords(lon=first["lon"] + 360.0)
    return xr.concat([da, first], dim="lon")


def decimation_factors(shape: tuple[int, int], max_shape: tuple[int, int] | None) -> tuple[int, int]:
    """Integer block sizes ``(fy, fx)`` so that ``shape / f`` fits in ``max_shape``."""
    if max_shape is None:
        return 1, 1
    fy = max(1, int(np.ceil(shape[0] / max_shape[0])))
    fx = max(1, int(np.ceil(shape[1] / max_shape[1])))
    return fy, fx


def coarsen_field(da: xr.DataArray, factors: tuple[int, int]) -> xr.DataArray:
    """Block mean over ``factors = (fy, fx)`` cells (NaNs ignored); coordinates are block means."""
    fy, fx = factors
    if (fy, fx) == (1, 1):
        return da
    return da.coarsen(lat=fy, lon=fx, boundary="pad", coord_func="mean").mean()


def coarsen_mask(da: xr.DataArray, factors: tuple[int, int]) -> xr.DataArray:
    """Block class: TC if any cell of the block is TC, else AR if any is AR, else 0.

    Small, rare tropical cyclones therefore stay visible on a decimated map.
    """
    fy, fx = factors
    if (fy, fx) == (1, 1):
        return da
    any_tc = (da == TC).coarsen(lat=fy, lon=fx, boundary="pad", coord_func="mean").max()
    any_ar = (da == AR).coarsen(lat=fy, lon=fx, boundary="pad", coord_func="mean").max()
    out = xr.where(any_tc > 0, TC, xr.where(any_ar > 0, AR, 0)).astype(np.uint8)
    out.attrs = dict(da.attrs)
    out.name = da.name
    return out


def select_time(da: xr.DataArray, time: Any, label: str) -> xr.DataArray:
    """Pick time steps: None (all), an int index, a label (str/datetime), or a list/slice of them."""
    if "time" not in da.dims or time is None:
        return da
    try:
        if isinstance(time, (int, np.integer)):
            return da.isel(time=int(time))
        if isinstance(time, slice) and all(isinstance(v, (int, np.integer, type(None)))
                                           for v in (time.start, time.stop, time.step)):
            return da.isel(time=time)
        if isinstance(time, (list, tuple, np.ndarray)) and all(isinstance(v, (int, np.integer)) for v in time):
            return da.isel(time=list(time))
        return da.sel(time=time)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        t = da["time"].values
        raise DataError(
            f"{label}: time {time!r} not found; the run has {t.size} time steps from {t[0]} to {t[-1]} "
            "(pass an integer index or one of the time labels)"
        ) from exc


def pick_field(data: xr.Dataset | xr.DataArray, variable: str | None) -> xr.DataArray:
    """The field to draw: a DataArray as is, or ``variable`` of a Dataset (default TMQ / first 2-D+)."""
    if isinstance(data, xr.DataArray):
        return data
    if not isinstance(data, xr.Dataset):
        raise DataError(f"expected an xarray Dataset or DataArray to plot, found {type(data).__name__}")
    candidates = [v for v in data.data_vars if v not in MASK_NAMES
                  and any(d in data[v].dims for d in LAT_NAMES) and any(d in data[v].dims for d in LON_NAMES)]
    name: Hashable
    if variable is not None:
        name = variable
    elif "TMQ" in candidates:
        name = "TMQ"
    elif candidates:
        name = candidates[0]
    else:
        raise DataError(f"dataset has no variable on a lat/lon grid to draw; variables: {list(data.data_vars)}")
    if name not in data.data_vars:
        raise DataError(f"variable {name!r} not in the dataset; available: {candidates}")
    return data[name]


def pick_mask(mask: Any, data: xr.Dataset | xr.DataArray | None = None) -> xr.DataArray | None:
    """Resolve ``mask``: None, a DataArray, a mask Dataset (``mask``/``LABELS``) or a variable name."""
    if mask is None:
        return None
    if isinstance(mask, str):
        if isinstance(data, xr.Dataset) and mask in data.data_vars:
            return data[mask]
        raise DataError(f"mask variable {mask!r} not found in the dataset")
    if isinstance(mask, xr.Dataset):
        for name in MASK_NAMES:
            if name in mask.data_vars:
                return mask[name]
        raise DataError(f"mask dataset has neither {MASK_NAMES[0]!r} nor {MASK_NAMES[1]!r}; "
                        f"variables: {list(mask.data_vars)}")
    if isinstance(mask, xr.DataArray):
        return mask
    raise DataError(f"mask must be an xarray DataArray or mask Dataset, found {type(mask).__name__}")


@dataclass
class Prepared:
    """A field (and mask) ready to draw: wrapped, decimated, cyclic, as numpy arrays."""

    lon: np.ndarray  # x coordinates (degrees relative to the map centre), cyclic column included
    lat: np.ndarray
    values: np.ndarray  # (lat, lon) float
    classes: np.ndarray | None  # (lat, lon) uint8 or None
    periodic: bool


def prepare(field2d: xr.DataArray, mask2d: xr.DataArray | None, *, center: float,
            max_shape: tuple[int, int] | None) -> Prepared:
    """Wrap, decimate and make cyclic one time step of a field and its mask."""
    periodic = is_global(field2d["lon"].values)
    f = wrap_lon(field2d, center)
    factors = decimation_factors((f.sizes["lat"], f.sizes["lon"]), max_shape)
    f = coarsen_field(f, factors)
    m = None
    if mask2d is not None:
        m = coarsen_mask(wrap_lon(mask2d, center), factors)
    if periodic:
        f = add_cyclic(f) if is_global(f["lon"].values) else f
        if m is not None and is_global(m["lon"].values):
            m = add_cyclic(m)
    values = np.asarray(f.values, dtype=np.float64)
    classes = None if m is None else np.asarray(m.values).astype(np.uint8)
    return Prepared(lon=np.asarray(f["lon"].values, float), lat=np.asarray(f["lat"].values, float),
                    values=values, classes=classes, periodic=periodic)


def check_same_grid(field: xr.DataArray, mask: xr.DataArray) -> None:
    """The mask must share the field's lat/lon grid (after standardizing)."""
    for c in ("lat", "lon"):
        a, b = field[c].values, mask[c].values
        if a.shape != b.shape or not np.allclose(a, b, atol=1e-6):
            raise DataError(
                f"mask grid does not match the field: {c} has {b.size} values "
                f"[{b.min():.3f} .. {b.max():.3f}] in the mask and {a.size} [{a.min():.3f} .. {a.max():.3f}] "
                "in the field"
            )


def regrid_to_projection(prep: Prepared, projection: Any, nx: int | None = None) -> tuple[
        np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Nearest-neighbour resampling of a lon/lat grid onto a regular grid of ``projection``.

    Used for projections other than PlateCarree. Each target cell centre is
    mapped back to lon/lat (cartopy) and takes the value of the source cell that
    contains it, so class values stay exact; cells outside the globe are NaN.

    Returns
    -------
    (x, y, arrays)
        Target cell centres (projection metres) and a dict with ``values``,
        ``classes`` (float, NaN outside) and the ``lon``/``lat`` of each target cell.
    """
    import cartopy.crs as ccrs

    x0, x1 = projection.x_limits
    y0, y1 = projection.y_limits
    src_lon = prep.lon[:-1] if prep.periodic and prep.lon.size > 1 and np.isclose(prep.lon[-1] - prep.lon[0], 360.0) \
        else prep.lon
    ncol = src_lon.size
    nx = int(nx or max(ncol, 2))
    ny = max(2, int(round(nx * (y1 - y0) / (x1 - x0))))
    x = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    y = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    X, Y = np.meshgrid(x, y)
    ll = ccrs.PlateCarree().transform_points(projection, X.ravel(), Y.ravel())
    lon = ll[:, 0].reshape(ny, nx)
    lat = ll[:, 1].reshape(ny, nx)
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0) & (np.abs(lon) <= 360.0)
    # Column: nearest cell on the (possibly periodic) longitude axis.
    step = lon_step(src_lon)
    if step is not None and prep.periodic:
        col = np.rint((np.where(ok, lon, 0.0) - src_lon[0]) / step).astype(np.int64) % ncol
        col_ok = ok
    else:
        edges = np.concatenate([[src_lon[0] - (src_lon[1] - src_lon[0]) / 2 if ncol > 1 else src_lon[0] - 0.5],
                                (src_lon[1:] + src_lon[:-1]) / 2,
                                [src_lon[-1] + (src_lon[-1] - src_lon[-2]) / 2 if ncol > 1 else src_lon[0] + 0.5]])
        lw = (np.where(ok, lon, np.nan) - edges[0]) % 360.0 + edges[0]
        col = np.searchsorted(edges, lw) - 1
        col_ok = ok & (col >= 0) & (col < ncol)
        col = np.clip(col, 0, ncol - 1)
    lat_c = prep.lat
    lat_edges = np.concatenate([[-90.0], (lat_c[1:] + lat_c[:-1]) / 2, [90.0]]) if lat_c.size > 1 \
        else np.array([-90.0, 90.0])
    if lat_c.size > 1 and (lat_c[0] - (lat_c[1] - lat_c[0]) / 2) > -90.0 + 1e-6:
        lat_edges[0] = lat_c[0] - (lat_c[1] - lat_c[0]) / 2  # regional grid: do not stretch to the pole
    if lat_c.size > 1 and (lat_c[-1] + (lat_c[-1] - lat_c[-2]) / 2) < 90.0 - 1e-6:
        lat_edges[-1] = lat_c[-1] + (lat_c[-1] - lat_c[-2]) / 2
    row = np.searchsorted(lat_edges, np.where(ok, lat, 0.0), side="right") - 1
    valid = col_ok & (row >= 0) & (row < lat_c.size)
    row = np.clip(row, 0, lat_c.size - 1)
    values = np.where(valid, prep.values[row, col], np.nan)
    out = {"values": values, "lon": np.where(valid, (lon + 360.0) % 360.0, np.nan), "lat": np.where(valid, lat, np.nan)}
    if prep.classes is not None:
        out["classes"] = np.where(valid, prep.classes[row, col].astype(np.float64), np.nan)
    return x, y, out


def robust_limits(values: np.ndarray) -> tuple[float, float] | None:
    """Colour limits: the 0.5 and 99.5 % percentiles of the finite values.

    Sparse fields (more than half the cells at the minimum, e.g. event
    frequencies or precipitation) use the maximum as the upper limit, so their
    few large values are not all saturated. Degenerate ranges are widened by 1.
    """
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return None
    vmin, vmax = float(finite.min()), float(finite.max())
    lo, hi = (float(x) for x in np.percentile(finite, [0.5, 99.5]))
    if np.mean(finite == vmin) > 0.5:
        lo, hi = vmin, vmax
    if hi <= lo:
        lo, hi = vmin, vmax
        if hi <= lo:
            hi = lo + 1.0
    return lo, hi
