"""Atmospheric river detector following the ARTMIP-style geometric criteria.

1. **Integrated vapour transport (IVT)**, kg m⁻¹ s⁻¹. When the run has an IVT
   variable (``ivt_var``) it is used as is. Otherwise it is estimated from what
   ClimateNet/DeepCAM runs carry:

   ``IVT ≈ ivt_scale · TMQ · |V|``

   with TMQ the precipitable water (kg m⁻²) and |V| the wind speed (m s⁻¹) at
   850 hPa (``U850``/``V850``), or at the lowest model level (``UBOT``/``VBOT``)
   when 850 hPa winds are missing. This is exact if the wind were the same at
   every level (IVT = (1/g) ∫ q **V** dp = TMQ · **V**); real moisture-weighted
   winds differ from the 850 hPa wind, so ``ivt_scale`` (default 1.0) lets a user
   calibrate it against a run that has true IVT.
2. **Threshold**: IVT above an absolute value (``threshold``, default
   250 kg m⁻¹ s⁻¹, the common fixed threshold, e.g. Rutz et al. 2014) or, with
   ``percentile`` set, above that percentile of IVT (per grid cell over time, as
   Guan & Waliser 2015, or over the whole run) and never below ``threshold``.
3. **Connected regions** per time step (8-connectivity, periodic in longitude
   on a global grid only, not across the poles: the convention of :func:`climviz.events.label`, which a
   test checks; a class-free labeller is used here because it is several times
   faster on a single binary mask); cells equatorward of
   ``exclude_tropics_deg`` are not candidates (optional).
4. **Geometry on the sphere**: a region is an AR if its length (the largest
   great-circle distance between two of its cells) is at least
   ``min_length_km`` (2000 km) and its length/width is at least
   ``min_aspect`` (2), with width = area / length (cell areas on the sphere).
5. **Poleward transport** (Guan & Waliser 2015): the region's area-weighted
   mean poleward IVT component must reach ``min_poleward_ivt``
   (50 kg m⁻¹ s⁻¹). This rejects zonal bands such as the trade-wind moisture
   belt. The northward component is ``ivt_scale · TMQ · V`` for the estimate,
   or the run's ``ivt_north_var`` when IVT is given; when IVT is given without
   a northward component, this test is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from climviz._fields import DictConfig, Float, Int, OneOf, Rule, coerce_numbers, spec, validate
from climviz.errors import DataError
from climviz.events.geometry import EARTH_RADIUS_KM
from climviz._compat import config_keyword
from climviz.labels._grid import Grid, label_periodic, normalize_run

__all__ = ["ARConfig", "ARResult", "integrated_vapour_transport", "detect_ar", "region_geometry"]


_POSITIVE = Float(0.0, lo_open=True)


@dataclass
class ARConfig(DictConfig):
    """Settings of the atmospheric river detector.

    Attributes
    ----------
    ivt_var
        Name of an IVT variable (kg m⁻¹ s⁻¹) used when the run has it. Default ``"IVT"``.
    tmq_var
        Precipitable water (kg m⁻²) for the IVT estimate. Default ``"TMQ"``.
    wind_vars
        (eastward, northward) wind pairs (m s⁻¹) tried in order for the estimate.
    ivt_scale
        Factor on TMQ·|V| (dimensionless). Default 1.0.
    threshold
        Absolute IVT threshold (kg m⁻¹ s⁻¹), and the floor of a percentile threshold.
        Default 250.
    percentile
        If set (0-100), the threshold is this percentile of IVT (and at least
        ``threshold``). Default None (absolute threshold only).
    percentile_scope
        ``"cell"``: per grid cell over time (needs many time steps);
        ``"global"``: over the whole run. Default ``"cell"``.
    min_length_km
        Shortest AR (km). Default 2000.
    min_aspect
        Smallest length/width ratio. Default 2.
    min_poleward_ivt
        Smallest area-mean poleward IVT component of an AR (kg m⁻¹ s⁻¹); None
        switches the test off. Default 50.
    ivt_north_var
        Northward IVT component variable used with ``ivt_var``. Default ``"IVT_north"``.
    exclude_tropics_deg
        Cells with ``|lat| < exclude_tropics_deg`` (degrees) are never AR;
        None keeps them. Default 15 (the deep-tropical moisture band is not an AR).
    time_block
        Time steps processed at once (memory bound). Default 16.
    periodic
        Regions join across the 0/360° seam: None (default) exactly when the
        grid covers the globe (a regional grid is not wrapped); True/False force it.

    Examples
    --------
    >>> cfg = cv.labels.ARConfig(percentile=95.0, percentile_scope="global")
    >>> cfg.threshold, cfg.percentile, cfg.min_length_km
    (250.0, 95.0, 2000.0)
    >>> cv.labels.ARConfig(percentile=120)
    Traceback (most recent call last):
    ...
    climviz.errors.ConfigError: ARConfig.percentile: expected a finite number > 0.0 and < 100.0 or None, found 120.0
    """

    ivt_var: str | None = "IVT"
    tmq_var: str = "TMQ"
    wind_vars: tuple[tuple[str, str], ...] = field(
        default=(("U850", "V850"), ("UBOT", "VBOT")),
        metadata=spec(Rule(lambda v: len(v) > 0 and all(len(p) == 2 for p in v), "(u, v) name pairs")))
    ivt_scale: float = field(default=1.0, metadata=spec(_POSITIVE))
    threshold: float = field(default=250.0, metadata=spec(Float(0.0, units="kg m-1 s-1")))
    percentile: float | None = field(default=None, metadata=spec(
        Float(0.0, 100.0, lo_open=True, hi_open=True, optional=True)))
    percentile_scope: Literal["cell", "global"] = field(default="cell", metadata=spec(OneOf(("cell", "global"))))
    min_length_km: float = field(default=2000.0, metadata=spec(_POSITIVE))
    min_aspect: float = field(default=2.0, metadata=spec(_POSITIVE))
    min_poleward_ivt: float | None = 50.0
    ivt_north_var: str | None = "IVT_north"
    exclude_tropics_deg: float | None = field(default=15.0, metadata=spec(
        Float(0.0, 90.0, hi_open=True, optional=True)))
    time_block: int = field(default=16, metadata=spec(Int(1)))
    periodic: bool | None = field(default=None, metadata=spec(OneOf((None, True, False))))

    def __post_init__(self) -> None:
        self.wind_vars = tuple(tuple(p) for p in self.wind_vars)  # type: ignore[misc]
        coerce_numbers(self)
        validate(self)


@dataclass
class ARResult:
    """Output of :func:`detect_ar`.

    Attributes
    ----------
    regions
        One row per connected region above the threshold: ``time_index, time,
        region, n_cells, area_km2, length_km, width_km, aspect, centroid_lat,
        centroid_lon, max_ivt, poleward_ivt, is_ar`` (lengths km, areas km²,
        IVT kg m⁻¹ s⁻¹; ``poleward_ivt`` NaN when it cannot be computed).
    mask
        Boolean AR mask, DataArray (time, lat, lon).
    threshold
        The IVT threshold used (kg m⁻¹ s⁻¹): a number or a (lat, lon) DataArray.
    """

    regions: pd.DataFrame
    mask: xr.DataArray
    threshold: float | xr.DataArray
    config: ARConfig = field(default_factory=ARConfig)


def _ivt_source(ds: xr.Dataset, cfg: ARConfig) -> list[str]:
    if cfg.ivt_var and cfg.ivt_var in ds.data_vars:
        return [cfg.ivt_var]
    if cfg.tmq_var not in ds.data_vars:
        raise DataError(
            f"run: expected {cfg.ivt_var!r} or {cfg.tmq_var!r} with winds for AR detection, "
            f"found variables {sorted(map(str, ds.data_vars))}"
        )
    for u, v in cfg.wind_vars:
        if u in ds.data_vars and v in ds.data_vars:
            return [cfg.tmq_var, u, v]
    raise DataError(
        f"run: expected one of the wind pairs {[list(p) for p in cfg.wind_vars]} to estimate IVT, "
        f"found variables {sorted(map(str, ds.data_vars))}"
    )


def _northward_ivt(ds: xr.Dataset, cfg: ARConfig) -> xr.DataArray | None:
    """Northward IVT component (kg m⁻¹ s⁻¹), or None when it cannot be had."""
    names = _ivt_source(ds, cfg)
    if len(names) == 1:
        if cfg.ivt_north_var and cfg.ivt_north_var in ds.data_vars:
            return normalize_run(ds, [cfg.ivt_north_var])[cfg.ivt_north_var]
        return None
    norm = normalize_run(ds, names)
    return cfg.ivt_scale * norm[names[0]] * norm[names[2]]


@config_keyword
def integrated_vapour_transport(ds: xr.Dataset, *, config: ARConfig | None = None) -> xr.DataArray:
    """IVT (kg m⁻¹ s⁻¹): the run's IVT variable, or ``ivt_scale · TMQ · |V850|``.

    Lazy when the run is dask-backed. The result is on the normalized grid
    (latitude ascending, longitude in [0, 360)).

    Examples
    --------
    The synthetic run has no IVT variable, so IVT is estimated from TMQ and the 850 hPa
    wind; one cell by hand:

    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> ivt = cv.labels.integrated_vapour_transport(ds)
    >>> ivt.dims, ivt.attrs["units"], ivt.attrs["comment"]
    (('time', 'lat', 'lon'), 'kg m-1 s-1', 'from 1 * TMQ * hypot(U850, V850)')
    >>> cell = ds.isel(time=0, lat=10, lon=10)
    >>> round(float(ivt[0, 10, 10]), 2), round(float(cell.TMQ * np.hypot(cell.U850, cell.V850)), 2)
    (88.23, 88.23)
    """
    cfg = config or ARConfig()
    names = _ivt_source(ds, cfg)
    ds = normalize_run(ds, names)
    if len(names) == 1:
        out = ds[names[0]]
        method = f"variable {names[0]}"
    else:
        tmq, u, v = (ds[n] for n in names)
        out = cfg.ivt_scale * tmq * np.hypot(u, v)
        method = f"{cfg.ivt_scale:g} * {names[0]} * hypot({names[1]}, {names[2]})"
    return out.rename("IVT").assign_attrs(
        units="kg m-1 s-1", long_name="integrated vapour transport", comment=f"from {method}"
    )


def region_geometry(labels: np.ndarray, grid: Grid, min_length_km: float = 0.0) -> pd.DataFrame:
    """Size and shape of labelled regions on the sphere.

    Parameters
    ----------
    labels
        int labels (time, lat, lon), unique over the array, 0 background.
    grid
        The grid.
    min_length_km
        Regions that provably cannot reach this length (their boundary has too
        few cells) get ``length_km`` = NaN, skipping the pairwise distances.

    Returns
    -------
    pandas.DataFrame
        One row per label: ``region, time_index, n_cells, area_km2, length_km,
        width_km, aspect, centroid_lat, centroid_lon``. Length is the largest
        great-circle distance between the centres of two cells of the region
        (reached on its boundary), width = area / length, aspect = length / width.

    Examples
    --------
    On a 1-degree grid at the equator: a row of 10 cells (length 9 degrees = 1000.8 km,
    area 10 x 111.2 km x 111.2 km) and a 3 x 3 block:

    >>> from climviz.labels._grid import Grid
    >>> grid = Grid.from_coords(np.arange(-5.0, 6.0), np.arange(0.0, 36.0))
    >>> labels = np.zeros((1, 11, 36), dtype=int)
    >>> labels[0, 5, 0:10] = 1
    >>> labels[0, 4:7, 20:23] = 2
    >>> geo = cv.labels.region_geometry(labels, grid)
    >>> geo[["region", "n_cells", "area_km2", "length_km", "aspect", "centroid_lon"]].round(1).values.tolist()
    [[1.0, 10.0, 123641.5, 1000.8, 8.1, 4.5], [2.0, 9.0, 111266.1, 314.5, 0.9, 21.0]]
    """
    n = int(labels.max()) if labels.size else 0
    cols = ["region", "time_index", "n_cells", "area_km2", "length_km", "width_km", "aspect",
            "centroid_lat", "centroid_lon"]
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    cells = _Cells.of(labels)
    area, ncell, tidx, clat, clon = _region_moments(cells, grid, n)
    bflat, starts = _boundary_cells(labels, cells, grid, n)
    bound = np.minimum(np.diff(starts)[: n + 1] * _cell_step_km(grid), _bbox_length_bound(cells, grid, n))
    length = _region_lengths(bflat, starts, cells, grid, (bound >= min_length_km) & (np.arange(n + 1) > 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        width = area / length
        aspect = length / width
    idx = np.arange(1, n + 1)
    return pd.DataFrame({
        "region": idx, "time_index": tidx[idx], "n_cells": ncell[idx], "area_km2": area[idx],
        "length_km": length[idx], "width_km": width[idx], "aspect": aspect[idx],
        "centroid_lat": clat[idx], "centroid_lon": clon[idx],
    })


@dataclass(frozen=True)
class _Cells:
    """The labelled cells of a (time, lat, lon) label array: flat index, label, row, column."""

    flat: np.ndarray
    lbl: np.ndarray
    row: np.ndarray
    col: np.ndarray
    nlat: int
    nlon: int

    @classmethod
    def of(cls, labels: np.ndarray) -> _Cells:
        _, nlat, nlon = labels.shape
        flat = np.flatnonzero(labels)
        cell = flat % (nlat * nlon)
        return cls(flat, labels.ravel()[flat], cell // nlon, cell % nlon, nlat, nlon)


def _region_moments(cells: _Cells, grid: Grid, n: int) -> tuple[np.ndarray, ...]:
    """Per label 0..n: area (km²), cell count, time index, area-weighted centroid latitude and longitude."""
    lbl, row, col = cells.lbl, cells.row, cells.col
    a = grid.areas()[row, col]
    area = np.bincount(lbl, weights=a, minlength=n + 1)
    ncell = np.bincount(lbl, minlength=n + 1)
    tidx = np.zeros(n + 1, dtype=np.int64)
    tidx[lbl] = cells.flat // (cells.nlat * cells.nlon)
    clat = np.bincount(lbl, weights=a * grid.lat[row], minlength=n + 1) / np.maximum(area, 1e-300)
    lon_rad = np.deg2rad(grid.lon[col])
    s = np.bincount(lbl, weights=a * np.sin(lon_rad), minlength=n + 1)
    c = np.bincount(lbl, weights=a * np.cos(lon_rad), minlength=n + 1)
    clon = np.mod(np.rad2deg(np.arctan2(s, c)), 360.0)  # area-weighted circular mean of longitude
    return area, ncell, tidx, clat, clon


def _boundary_cells(labels: np.ndarray, cells: _Cells, grid: Grid, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the boundary cells sorted by label, and where each label's run starts (n + 2 values).

    A boundary cell has a background 8-neighbour (regions are whole 8-connected components,
    so a labelled neighbour always has the same label); rows next to the poles close a region.
    """
    modes = ("nearest", "nearest", "wrap" if grid.periodic else "nearest")
    interior = ndimage.minimum_filter((labels > 0).view(np.uint8), size=(1, 3, 3), mode=modes)
    is_b = (interior.ravel()[cells.flat] == 0) | (cells.row == 0) | (cells.row == cells.nlat - 1)
    if not grid.periodic:
        is_b |= (cells.col == 0) | (cells.col == cells.nlon - 1)
    bflat, blbl = cells.flat[is_b], cells.lbl[is_b]
    order = np.argsort(blbl, kind="stable")
    bflat, blbl = bflat[order], blbl[order]
    return bflat, np.searchsorted(blbl, np.arange(n + 2))


def _cell_step_km(grid: Grid) -> float:
    """The largest cell diagonal (km): a chain of k boundary cells spans at most k of them."""
    dlat = np.deg2rad(grid.dlat_min_deg if grid.lat.size < 2 else np.abs(np.diff(grid.lat)).max())
    return float(EARTH_RADIUS_KM * np.hypot(dlat, np.deg2rad(grid.dlon_deg)))


def _bbox_length_bound(cells: _Cells, grid: Grid, n: int) -> np.ndarray:
    """An upper bound of each region's length from its bounding box: hav(d) <= hav(dlat_max) + hav(dlon_max)."""
    r0 = np.full(n + 1, cells.nlat - 1)
    r1 = np.zeros(n + 1, dtype=np.int64)
    c0 = np.full(n + 1, cells.nlon - 1)
    c1 = np.zeros(n + 1, dtype=np.int64)
    np.minimum.at(r0, cells.lbl, cells.row)
    np.maximum.at(r1, cells.lbl, cells.row)
    np.minimum.at(c0, cells.lbl, cells.col)
    np.maximum.at(c1, cells.lbl, cells.col)
    dphi = np.deg2rad(grid.lat[r1] - grid.lat[r0])
    wraps = grid.periodic & (c0 == 0) & (c1 == cells.nlon - 1)
    dlam = np.where(wraps, np.pi, np.minimum(np.deg2rad(grid.lon[c1] - grid.lon[c0]), np.pi))
    hav = np.clip(np.sin(dphi / 2) ** 2 + np.sin(dlam / 2) ** 2, 0, 1)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(hav)) + 1e-6


def _region_lengths(bflat: np.ndarray, starts: np.ndarray, cells: _Cells, grid: Grid,
                    todo: np.ndarray) -> np.ndarray:
    """Largest great-circle distance (km) between two boundary cells of each region in ``todo`` (else NaN)."""
    bcell = bflat % (cells.nlat * cells.nlon)
    la = np.deg2rad(grid.lat[bcell // cells.nlon])
    lo_ = np.deg2rad(grid.lon[bcell % cells.nlon])
    xyz = np.stack([np.cos(la) * np.cos(lo_), np.cos(la) * np.sin(lo_), np.sin(la)], axis=1)
    length = np.full(todo.size, np.nan)
    for k in np.flatnonzero(todo):
        p = xyz[starts[k]:starts[k + 1]]
        if p.shape[0] == 1:
            length[k] = 0.0
            continue
        mind = 1.0
        for s0 in range(0, p.shape[0], 2048):
            mind = min(mind, float((p[s0:s0 + 2048] @ p.T).min()))
        length[k] = EARTH_RADIUS_KM * np.arccos(np.clip(mind, -1.0, 1.0))
    return length


def _threshold(ivt: xr.DataArray, cfg: ARConfig) -> float | xr.DataArray:
    if cfg.percentile is None:
        return float(cfg.threshold)
    q = cfg.percentile / 100.0
    if ivt.chunks is not None:
        # dask quantiles need the whole time axis in one chunk: split latitude instead (~64 MB chunks)
        rows = max(1, int(64e6 // (4 * ivt.sizes["time"] * ivt.sizes["lon"])))
        ivt = ivt.chunk({"time": -1, "lat": rows, "lon": -1})
    # skipna=False: numpy's vectorized quantile (nanquantile loops over cells); NaN cells stay NaN
    if cfg.percentile_scope == "cell":
        thr = ivt.quantile(q, dim="time", skipna=False).drop_vars("quantile")
        return np.maximum(thr, cfg.threshold).compute().rename("IVT_threshold")  # type: ignore[union-attr]
    return max(float(ivt.quantile(q, skipna=False).values), float(cfg.threshold))


@config_keyword
def detect_ar(ds: xr.Dataset, *, config: ARConfig | None = None) -> ARResult:
    """Detect atmospheric rivers: IVT above a threshold in long, narrow regions.

    Parameters
    ----------
    ds
        A climate run with ``IVT``, or ``TMQ`` and 850 hPa / lowest-level winds,
        on (time, lat, lon).
    config
        Thresholds; default :class:`ARConfig()`.

    Returns
    -------
    ARResult
        Regions table, boolean mask (time, lat, lon; latitude ascending,
        longitude in [0, 360)) and the threshold used.

    Examples
    --------
    >>> ds = cv.synthetic_run(4, shape=(32, 48))  # 2 ARs at every step
    >>> ars = cv.labels.detect_ar(ds)
    >>> ars.mask.shape, ars.mask.dtype.name
    ((4, 32, 48), 'bool')
    >>> ars.regions.groupby("time_index")["is_ar"].sum().tolist()  # regions that pass every test
    [2, 2, 2, 2]
    >>> truth = ds["LABELS"] == 2
    >>> round(float((ars.mask & truth).sum() / (ars.mask | truth).sum()), 1)  # IoU with the labels
    0.7
    """
    cfg = config or ARConfig()
    ivt = integrated_vapour_transport(ds, config=cfg)
    grid = Grid.from_coords(ivt.lat.values, ivt.lon.values, cfg.periodic)
    thr = _threshold(ivt, cfg)
    thr_np = thr.values if isinstance(thr, xr.DataArray) else thr
    allowed = np.ones(grid.lat.size, dtype=bool)
    if cfg.exclude_tropics_deg is not None:
        allowed = np.abs(grid.lat) >= cfg.exclude_tropics_deg
    north = _northward_ivt(ds, cfg) if cfg.min_poleward_ivt is not None else None
    hemi = np.sign(grid.lat)[None, :, None]
    weights = grid.areas()[None]
    nt = ivt.sizes["time"]
    mask = np.zeros((nt, *grid.shape), dtype=bool)
    tables = []
    for t0 in range(0, nt, int(cfg.time_block)):
        block = np.asarray(ivt.isel(time=slice(t0, t0 + cfg.time_block)).values, dtype=np.float32)
        cand = (block > thr_np) & allowed[None, :, None]
        lab, n = label_periodic(cand, grid.periodic)
        geo = region_geometry(lab, grid, cfg.min_length_km)
        if n:
            # per-region statistics over the labelled cells only (no full-array sort)
            flat = np.flatnonzero(lab)
            lbl = lab.ravel()[flat]
            idx = geo["region"].to_numpy()
            mx = np.full(n + 1, -np.inf)
            np.maximum.at(mx, lbl, block.ravel()[flat])
            geo["max_ivt"] = mx[idx]
            ok = (geo["length_km"] >= cfg.min_length_km) & (geo["aspect"] >= cfg.min_aspect)
            if north is not None:
                vn = np.asarray(north.isel(time=slice(t0, t0 + cfg.time_block)).values, dtype=np.float64)
                cell = flat % (grid.lat.size * grid.lon.size)
                w = (weights[0] * hemi[0]).ravel()[cell]  # area x hemisphere sign
                num = np.bincount(lbl, weights=vn.ravel()[flat] * w, minlength=n + 1)
                den = np.bincount(lbl, weights=np.abs(w), minlength=n + 1)
                pole = num[idx] / den[idx]
                geo["poleward_ivt"] = pole
                ok &= pole >= cfg.min_poleward_ivt
            geo["is_ar"] = ok.to_numpy()
            keep = np.zeros(n + 1, dtype=bool)
            keep[geo["region"].to_numpy()[ok.to_numpy()]] = True
            mask[t0:t0 + block.shape[0]] = keep[lab]
            geo["time_index"] += t0
            tables.append(geo)
    if tables:
        regions = pd.concat(tables, ignore_index=True)
        if "poleward_ivt" not in regions:
            regions["poleward_ivt"] = np.nan
        regions["region"] = regions.groupby("time_index").cumcount() + 1
    else:
        regions = pd.DataFrame({c: pd.Series(dtype=float) for c in (
            "region", "time_index", "n_cells", "area_km2", "length_km", "width_km", "aspect", "centroid_lat",
            "centroid_lon", "max_ivt", "poleward_ivt", "is_ar")})
    regions.insert(1, "time", ivt.time.values[regions["time_index"].to_numpy(dtype=np.int64)])
    m = xr.DataArray(mask, dims=("time", "lat", "lon"),
                     coords={"time": ivt.time.values, "lat": grid.lat, "lon": grid.lon},
                     name="ar_mask", attrs={"long_name": "atmospheric river mask (heuristic)"})
    return ARResult(regions=regions, mask=m, threshold=thr, config=cfg)
