"""Grid helpers shared by the heuristic detectors.

Everything works on a regular-in-longitude, monotonic-in-latitude grid with
dimensions ``(time, lat, lon)``, latitude ascending and longitude in [0, 360)
(the climviz data convention). Longitude is periodic when the grid is global.
Distances are great-circle distances on a sphere of radius 6371.0 km.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.grid import EARTH_RADIUS_KM, cell_areas, find_lat_lon, is_global_lon, standardize
from climviz.errors import DataError
from climviz.events.geometry import great_circle_km

__all__ = [
    "Grid",
    "gather_windows",
    "label_periodic",
    "normalize_run",
    "relative_vorticity",
    "time_hours",
]


@dataclass(frozen=True)
class Grid:
    """Latitude/longitude description of a run's grid.

    Attributes
    ----------
    lat, lon
        Cell-centre coordinates (degrees), latitude ascending, longitude increasing.
    periodic
        True when longitude wraps around the globe (the first and last columns
        are neighbours).
    dlon_deg
        Longitude spacing (degrees), assumed regular.
    dlat_min_deg
        Smallest latitude spacing (degrees).
    """

    lat: np.ndarray
    lon: np.ndarray
    periodic: bool
    dlon_deg: float
    dlat_min_deg: float

    @classmethod
    def from_coords(cls, lat: np.ndarray, lon: np.ndarray, periodic: bool | None = None) -> Grid:
        """Describe a grid from its cell-centre coordinates.

        Parameters
        ----------
        lat, lon
            Latitudes (ascending) and longitudes (increasing, regular spacing), degrees.
        periodic
            ``None`` (default): periodic in longitude exactly when the grid covers
            the globe, i.e. the gap across the 0/360° seam is no larger than 1.5
            longitude spacings (the rule of
            :func:`climviz.events.geometry.lon_widths`); a regional grid such as
            100–180°E is not wrapped (TempestExtremes' ``--regional``); the rule is
            :func:`climviz.data.grid.is_global_lon`. True/False force it.
        """
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        if lat.ndim != 1 or lat.size < 3 or not np.all(np.diff(lat) > 0):
            raise DataError(f"lat: expected at least 3 strictly ascending latitudes, found {lat[:5]}...")
        if lon.ndim != 1 or lon.size < 3 or not np.all(np.diff(lon) > 0):
            raise DataError(f"lon: expected at least 3 strictly increasing longitudes, found {lon[:5]}...")
        dl = np.diff(lon)
        if not np.allclose(dl, dl[0], rtol=1e-3, atol=1e-6):
            raise DataError(
                f"lon: expected a regular longitude spacing, found spacings from {dl.min()} to {dl.max()} degrees"
            )
        dlon = float(dl.mean())
        if periodic is None:
            periodic = is_global_lon(lon)
        return cls(lat, lon, bool(periodic), dlon, float(np.diff(lat).min()))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    def cells_for_km(self, km: float, max_abs_lat: float = 0.0) -> tuple[int, int]:
        """Half-widths (rows, cols) of a window covering ``km`` around any point poleward-bounded by ``max_abs_lat``."""
        deg = np.rad2deg(km / EARTH_RADIUS_KM)
        hy = int(np.ceil(deg / self.dlat_min_deg))
        coslat = np.cos(np.deg2rad(min(max_abs_lat + deg, 89.0)))
        hx = int(np.ceil(deg / (self.dlon_deg * max(coslat, 1e-3))))
        hx = min(hx, (self.lon.size - 1) // 2)
        hy = min(hy, self.lat.size - 1)
        return hy, hx

    def areas(self) -> np.ndarray:
        """Cell areas (km²), shape (lat, lon)."""
        return cell_areas(self.lat, self.lon)


def normalize_run(ds: xr.Dataset, needed: list[str]) -> xr.Dataset:
    """Bring a run to (time, lat, lon), latitude ascending, longitude in [0, 360).

    Dimension names, orientation and the handling of a regional grid that
    crosses 0°E (its eastern columns continue past 360°, so it stays in one piece)
    are those of :func:`climviz.data.grid.standardize`: ``lat``/``latitude``/...,
    descending latitudes flipped, a [-180, 180) run rolled.

    Raises
    ------
    DataError
        If a needed variable or dimension is missing, or the coordinates cannot be
        oriented (e.g. repeated or shuffled longitudes).
    """
    if not isinstance(ds, xr.Dataset):
        raise DataError(f"run: expected an xarray.Dataset, found {type(ds).__name__}")
    missing = [v for v in needed if v not in ds.data_vars]
    if missing:
        raise DataError(
            f"run: expected variable(s) {missing} for heuristic labelling, found {sorted(map(str, ds.data_vars))}"
        )
    find_lat_lon(ds, "run")
    ds = standardize(ds[needed], "run")
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")
    for v in needed:
        if set(ds[v].dims) != {"time", "lat", "lon"}:
            raise DataError(f"run: variable {v!r} expected dims (time, lat, lon), found {ds[v].dims}")
    return ds.transpose("time", "lat", "lon")


def time_hours(time: xr.DataArray, step_h: float | None = None) -> np.ndarray:
    """Hours since the first time step (float64) for datetime64, cftime or numeric times.

    Numeric times need ``step_h`` (hours between consecutive steps).
    """
    values = time.values
    n = values.size
    if n == 0:
        return np.zeros(0)
    if np.issubdtype(values.dtype, np.datetime64):
        return (values - values[0]) / np.timedelta64(1, "h")
    if values.dtype == object:  # cftime
        try:
            idx = xr.CFTimeIndex(values)
            return np.asarray((idx - idx[0]) / pd.Timedelta(hours=1), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"time: could not interpret time values {values[:3]} as dates ({exc})") from exc
    if step_h is None:
        if n == 1:
            return np.zeros(1)
        raise DataError(
            "time: expected datetime values to measure track durations, found numeric "
            f"{values.dtype}; pass time_step_h in the TC configuration"
        )
    return np.arange(n, dtype=np.float64) * float(step_h)


def relative_vorticity(u: np.ndarray, v: np.ndarray, grid: Grid) -> np.ndarray:
    """Relative vorticity ζ = (∂v/∂λ − ∂(u cos φ)/∂φ) / (R cos φ), in s⁻¹.

    Centred differences; periodic in longitude on global grids (one-sided at the
    edges otherwise), second order in latitude (``numpy.gradient``, irregular
    latitudes allowed, one-sided at the first and last rows).

    Parameters
    ----------
    u, v
        Eastward and northward wind (m s⁻¹), shape (..., lat, lon).
    grid
        The grid.

    Returns
    -------
    numpy.ndarray
        float32 vorticity (s⁻¹), same shape; NaN poleward of 89.5°.

    Examples
    --------
    Solid-body zonal flow ``u = U cos(lat)`` has vorticity ``2 U sin(lat) / R``:
    1.5696e-06 s⁻¹ at 30 N for ``U = 10`` m s⁻¹:

    >>> from climviz.labels._grid import Grid
    >>> lat, lon = np.arange(-60.0, 61.0), np.arange(0.0, 360.0)
    >>> grid = Grid.from_coords(lat, lon)
    >>> u = np.repeat(10 * np.cos(np.deg2rad(lat))[:, None], lon.size, axis=1)
    >>> zeta = cv.labels.relative_vorticity(u, np.zeros_like(u), grid)
    >>> zeta.shape, zeta.dtype.name, f"{zeta[90, 0]:.4e}", float(zeta[60, 0])  # 30 N, equator
    ((121, 360), 'float32', '1.5693e-06', 0.0)
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    phi = np.deg2rad(grid.lat)
    cos = np.cos(phi)
    r_m = EARTH_RADIUS_KM * 1000.0
    dlam = np.deg2rad(grid.dlon_deg)
    if grid.periodic:
        dv = (np.roll(v, -1, axis=-1) - np.roll(v, 1, axis=-1)) / (2.0 * dlam)
    else:
        dv = np.gradient(v, dlam, axis=-1)
    ducos = np.gradient(u * cos[:, None], phi, axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        zeta = (dv - ducos) / (r_m * cos[:, None])
    zeta[..., np.abs(grid.lat) > 89.5, :] = np.nan
    return zeta.astype(np.float32)


def gather_windows(
    field: np.ndarray, t: np.ndarray, i: np.ndarray, j: np.ndarray, hy: int, hx: int, grid: Grid
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a (2·hy+1, 2·hx+1) window around each point and its distances from the point.

    Parameters
    ----------
    field
        Array (time, lat, lon).
    t, i, j
        Time, row and column indices of the K centres.
    hy, hx
        Half-widths of the window (cells).
    grid
        The grid (for distances and periodicity).

    Returns
    -------
    windows : numpy.ndarray
        (K, 2·hy+1, 2·hx+1) values; rows beyond the poles repeat the edge row.
    dist_km : numpy.ndarray
        (K, 2·hy+1, 2·hx+1) great-circle distances (km) of each window cell from
        the centre; ``inf`` for cells outside the grid (beyond the poles, or
        beyond the edges of a non-global grid).
    rows : numpy.ndarray
        (K, 2·hy+1) grid row of each window row (clipped to the grid).
    """
    rows_c, cols_c, valid = window_index(i, j, hy, hx, grid)
    win = field[t[:, None, None], rows_c[:, :, None], cols_c[:, None, :]]
    d = great_circle_km(
        grid.lat[i][:, None, None], grid.lon[j][:, None, None],
        grid.lat[rows_c][:, :, None], grid.lon[cols_c][:, None, :],
    )
    d = np.where(valid, d, np.inf)
    return win, d, rows_c


def window_index(i: np.ndarray, j: np.ndarray, hy: int, hx: int, grid: Grid
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid rows and columns of a (2·hy+1, 2·hx+1) window around each of K cells.

    Returns
    -------
    rows : numpy.ndarray
        (K, 2·hy+1) rows, clipped to the grid (beyond a pole repeats the edge row).
    cols : numpy.ndarray
        (K, 2·hx+1) columns, wrapped on a global grid, clipped on a regional one.
    valid : numpy.ndarray
        (K, 2·hy+1, 2·hx+1) True where the window cell lies on the grid.
    """
    nlat, nlon = grid.shape
    rows = i[:, None] + np.arange(-hy, hy + 1)[None, :]
    cols = j[:, None] + np.arange(-hx, hx + 1)[None, :]
    row_ok = (rows >= 0) & (rows < nlat)
    col_ok = np.ones_like(cols, dtype=bool) if grid.periodic else (cols >= 0) & (cols < nlon)
    rows_c = np.clip(rows, 0, nlat - 1)
    cols_c = np.mod(cols, nlon) if grid.periodic else np.clip(cols, 0, nlon - 1)
    return rows_c, cols_c, row_ok[:, :, None] & col_ok[:, None, :]


def label_periodic(mask: np.ndarray, periodic: bool = True) -> tuple[np.ndarray, int]:
    """Connected components of a (time, lat, lon) mask, numbered across the whole array.

    The components are those of :func:`climviz.events.label` (8-connectivity
    inside a time step; the first and last columns are neighbours when
    ``periodic``; the poles are not); only the numbering differs: ids run 1..n
    over all time steps (step by step, in :func:`~climviz.events.label` order),
    so per-region statistics of a block are one ``np.bincount``. 0 is background.

    The heuristic detectors had their own ``scipy.ndimage.label`` + seam-merge
    labeller; measured on 8 x 768 x 1152 masks, :func:`climviz.events.label`
    (run-length components) is 3 to 7 times faster on the smooth threshold
    regions labelled here (IVT candidates: 0.007 s vs 0.048 s; IVT above its
    median, 50 % filled: 0.03 s vs 0.09 s), and slower only on salt-and-pepper
    noise (2.5 to 3.7 times on uniform random masks), so there is one labeller.

    Returns
    -------
    labels : numpy.ndarray
        int32 labels, same shape as ``mask``.
    n : int
        Number of components.
    """
    from climviz.events.labelling import label

    mask = np.asarray(mask, dtype=bool)
    lab = np.asarray(label(mask.view(np.uint8), periodic=periodic), dtype=np.int32)
    if lab.ndim < 3:
        return lab, int(lab.max(initial=0))
    per_step = lab.reshape(lab.shape[0], -1).max(axis=1, initial=0)
    offset = np.concatenate([[0], np.cumsum(per_step[:-1])]).astype(np.int32)
    lab = np.where(lab > 0, lab + offset[:, None, None], 0).astype(np.int32, copy=False)
    return lab, int(per_step.sum())
