"""Tropical cyclone detector in the spirit of TempestExtremes DetectNodes + StitchNodes (and TECA).

The detection, per time step, vectorized over all time steps of a block:

1. **Candidates**: local minima of sea-level pressure (``PSL``), found with
   :func:`scipy.ndimage.minimum_filter` over a window of about
   ``merge_distance_km`` (periodic in longitude), within ``max_abs_lat``.
2. **Cyclonic vorticity**: the maximum of the 850 hPa relative vorticity
   (``U850``/``V850``, or the lowest model level ``UBOT``/``VBOT`` when 850 hPa
   winds are absent), multiplied by the sign of the latitude (cyclones turn
   counter-clockwise in the northern hemisphere, clockwise in the southern),
   within ``vorticity_radius_km`` must reach ``min_vorticity_per_s``.
3. **Wind**: the largest wind speed (same level) within ``wind_radius_km`` must
   reach ``min_wind_ms``.
4. **Warm core**: the mean of the upper-air temperatures (``T200`` and ``T500``)
   within ``warm_core_radius_km`` must exceed their mean in the surrounding
   annulus (out to ``warm_core_outer_radius_km``) by ``min_warm_core_k``.
5. **Closed contour**: as TempestExtremes' ``closedcontourcmd "PSL,200.0,5.5,0"``,
   the region of cells connected to the centre with PSL below the centre value
   plus ``closed_contour_dpsl_pa`` must not reach ``closed_contour_radius_km``
   (a flood fill from the centre on the great-circle disc).

Accepted nodes are stitched into tracks (as StitchNodes): a node continues the
track whose last node is nearest, if within ``max_speed_km_per_h`` times the
elapsed hours, allowing gaps of up to ``max_gap_h``; tracks shorter than
``min_duration_h`` are dropped. A disc is drawn around each node of a kept track
as the TC mask, its radius taken from the wind field (default: where the
azimuthally averaged wind drops below ``mask_wind_ms`` outside the radius of
maximum wind), from the pressure field, or fixed.

Defaults follow the TempestExtremes TC recipe (Zarzycki & Ullrich 2017:
PSL rise of 200 Pa within 5.5°, candidates merged within 6°, tracks moving at
most 8° per 6 h, lasting 54 h with gaps up to 24 h) with a TECA-style
vorticity and warm-core test; the vorticity threshold is modest so that it also
works on coarse (1–2°) grids, where vortices are smoothed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from climviz.errors import ConfigError, DataError
from climviz.events.geometry import great_circle_km
from climviz.labels._config import DictConfig
from climviz.labels._grid import Grid, gather_windows, normalize_run, relative_vorticity, time_hours

__all__ = ["TCConfig", "TCResult", "detect_tc_nodes", "stitch_nodes", "tc_mask", "detect_tc"]

_STRUCT_3D = np.zeros((3, 3, 3), dtype=bool)
_STRUCT_3D[1] = True


@dataclass
class TCConfig(DictConfig):
    """Thresholds of the tropical cyclone detector (all lengths are great-circle km).

    Attributes
    ----------
    psl_var
        Sea-level pressure variable (Pa). Default ``"PSL"``.
    wind_vars
        Pairs of (eastward, northward) wind variables (m s⁻¹), tried in order:
        default 850 hPa winds, else the lowest model level.
    warm_core_vars
        Upper-air temperatures (K) averaged for the warm-core test. Default
        ``("T200", "T500")``.
    max_abs_lat
        Candidates lie within ``|lat| <= max_abs_lat`` (degrees). Default 50.
    merge_distance_km
        Size of the minimum-filter window: of PSL minima closer than this,
        only the deepest is a candidate. Default 667 km (6°).
    closed_contour_dpsl_pa
        Required PSL rise (Pa) around the centre. Default 200 Pa.
    closed_contour_radius_km
        ... within this distance (km). Default 611 km (5.5°).
    min_vorticity_per_s
        Minimum of the hemisphere-signed relative vorticity (s⁻¹; cyclonic
        positive in both hemispheres) ... Default 5e-5 s⁻¹.
    vorticity_radius_km
        ... reached somewhere within this distance of the centre (km). Default 300 km.
    min_wind_ms
        Minimum of the largest wind speed (m s⁻¹) ... Default 10 m s⁻¹.
    wind_radius_km
        ... within this distance (km). Default 300 km.
    min_warm_core_k
        Minimum warm-core anomaly (K): mean upper-air temperature within
        ``warm_core_radius_km`` minus its mean between that radius and
        ``warm_core_outer_radius_km``. Default 0.5 K.
    warm_core_radius_km, warm_core_outer_radius_km
        Default 300 km and 900 km.
    stitch
        ``"auto"`` (default) stitches into tracks when the run spans at least
        ``min_duration_h``, and otherwise keeps every node with a warning (a
        run of single snapshots cannot have tracks); True always stitches;
        False never.
    max_speed_km_per_h
        Largest distance (km) a centre may move per hour between two nodes of a
        track. Default 148 km/h (8° per 6 h).
    max_gap_h
        Longest gap (hours) inside a track. Default 24 h.
    min_duration_h
        Shortest kept track, first to last node (hours). Default 54 h.
    time_step_h
        Hours between time steps, only needed when the time coordinate is numeric.
    mask_method
        How the TC mask radius is found: ``"wind"`` (default: outward from the
        radius of maximum azimuthal-mean wind, the first radius where it drops
        below ``mask_wind_ms``), ``"psl"`` (the first radius where the
        azimuthal-mean PSL exceeds the centre value by ``mask_dpsl_pa``) or
        ``"fixed"`` (``mask_radius_km``).
    mask_wind_ms
        Default 12 m s⁻¹.
    mask_dpsl_pa
        Default 500 Pa.
    mask_radius_km
        Radius (km) of the ``"fixed"`` method, and the fallback. Default 300 km.
    min_mask_radius_km, max_mask_radius_km
        The radius is clipped to this range (km). Default 100 km and 800 km.
    candidate_chunk
        Candidates processed at once (memory bound). Default 256.
    time_block
        Time steps read at once (memory bound). Default 16.
    """

    psl_var: str = "PSL"
    wind_vars: tuple[tuple[str, str], ...] = (("U850", "V850"), ("UBOT", "VBOT"))
    warm_core_vars: tuple[str, ...] = ("T200", "T500")
    max_abs_lat: float = 50.0
    merge_distance_km: float = 667.0
    closed_contour_dpsl_pa: float = 200.0
    closed_contour_radius_km: float = 611.0
    min_vorticity_per_s: float = 5e-5
    vorticity_radius_km: float = 300.0
    min_wind_ms: float = 10.0
    wind_radius_km: float = 300.0
    min_warm_core_k: float = 0.5
    warm_core_radius_km: float = 300.0
    warm_core_outer_radius_km: float = 900.0
    stitch: bool | Literal["auto"] = "auto"
    max_speed_km_per_h: float = 148.0
    max_gap_h: float = 24.0
    min_duration_h: float = 54.0
    time_step_h: float | None = None
    mask_method: Literal["wind", "psl", "fixed"] = "wind"
    mask_wind_ms: float = 12.0
    mask_dpsl_pa: float = 500.0
    mask_radius_km: float = 300.0
    min_mask_radius_km: float = 100.0
    max_mask_radius_km: float = 800.0
    candidate_chunk: int = 256
    time_block: int = 16

    def __post_init__(self) -> None:
        self.wind_vars = tuple(tuple(p) for p in self.wind_vars)  # type: ignore[assignment]
        self.warm_core_vars = tuple(self.warm_core_vars)
        positive = (
            "merge_distance_km", "closed_contour_radius_km", "vorticity_radius_km", "wind_radius_km",
            "warm_core_radius_km", "warm_core_outer_radius_km", "max_speed_km_per_h", "mask_radius_km",
            "max_mask_radius_km",
        )
        for key in positive:
            value = getattr(self, key)
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"TCConfig.{key}: expected a positive number, found {value!r}")
        for key in ("closed_contour_dpsl_pa", "max_gap_h", "min_duration_h", "min_mask_radius_km", "mask_dpsl_pa"):
            value = getattr(self, key)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"TCConfig.{key}: expected a non-negative number, found {value!r}")
        if not 0 < self.max_abs_lat <= 90:
            raise ConfigError(f"TCConfig.max_abs_lat: expected a latitude in (0, 90], found {self.max_abs_lat!r}")
        if self.warm_core_outer_radius_km <= self.warm_core_radius_km:
            raise ConfigError(
                "TCConfig.warm_core_outer_radius_km: expected more than warm_core_radius_km "
                f"({self.warm_core_radius_km}), found {self.warm_core_outer_radius_km}"
            )
        if self.min_mask_radius_km > self.max_mask_radius_km:
            raise ConfigError(
                f"TCConfig.min_mask_radius_km: expected at most max_mask_radius_km ({self.max_mask_radius_km}), "
                f"found {self.min_mask_radius_km}"
            )
        if self.mask_method not in ("wind", "psl", "fixed"):
            raise ConfigError(f"TCConfig.mask_method: expected 'wind', 'psl' or 'fixed', found {self.mask_method!r}")
        if self.stitch not in (True, False, "auto"):
            raise ConfigError(f"TCConfig.stitch: expected True, False or 'auto', found {self.stitch!r}")
        if not self.wind_vars or any(len(p) != 2 for p in self.wind_vars):
            raise ConfigError(f"TCConfig.wind_vars: expected (u, v) name pairs, found {self.wind_vars!r}")
        if not self.warm_core_vars:
            raise ConfigError("TCConfig.warm_core_vars: expected at least one temperature variable, found none")
        if self.time_step_h is not None and not self.time_step_h > 0:
            raise ConfigError(f"TCConfig.time_step_h: expected a positive number of hours, found {self.time_step_h!r}")
        for key in ("candidate_chunk", "time_block"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"TCConfig.{key}: expected a positive integer, found {getattr(self, key)!r}")


@dataclass
class TCResult:
    """Output of :func:`detect_tc`.

    Attributes
    ----------
    nodes
        One row per node that passed every test: ``time_index, time, lat, lon,
        psl_pa, vorticity_per_s`` (hemisphere-signed), ``max_wind_ms,
        warm_core_k, radius_km`` (mask radius) and ``track_id`` (-1 when not in
        a kept track, or when stitching was off).
    tracks
        One row per kept track: ``track_id, start, end, duration_h, n_nodes,
        min_psl_pa, max_wind_ms, path_km, lat_start, lon_start``.
    mask
        Boolean TC mask, DataArray (time, lat, lon).
    stitched
        Whether nodes were stitched into tracks (only nodes of kept tracks are
        in the mask then).
    """

    nodes: pd.DataFrame
    tracks: pd.DataFrame
    mask: xr.DataArray
    stitched: bool
    config: TCConfig = field(default_factory=TCConfig)


def _pick_wind(ds: xr.Dataset, cfg: TCConfig) -> tuple[str, str]:
    for u, v in cfg.wind_vars:
        if u in ds.data_vars and v in ds.data_vars:
            return u, v
    raise DataError(
        f"run: expected one of the wind pairs {[list(p) for p in cfg.wind_vars]} for TC detection, "
        f"found variables {sorted(map(str, ds.data_vars))}"
    )


def _disc_max(win: np.ndarray, dist: np.ndarray, radius: float) -> np.ndarray:
    inside = dist <= radius
    return np.where(inside, np.nan_to_num(win, nan=-np.inf), -np.inf).max(axis=(1, 2))


def _closed_contour(win: np.ndarray, dist: np.ndarray, hy: int, hx: int, dpsl: float, radius: float) -> np.ndarray:
    """Flood fill from the centre below (centre + dpsl) must stay strictly inside the disc."""
    disc = dist <= radius
    boundary = disc & ~ndimage.binary_erosion(disc, structure=_STRUCT_3D, border_value=0)
    centre = win[:, hy, hx]
    below = disc & (win < (centre + dpsl)[:, None, None])
    below[:, hy, hx] = True
    lab, _ = ndimage.label(below, structure=_STRUCT_3D)
    own = lab == lab[:, hy, hx][:, None, None]
    return ~(own & boundary).any(axis=(1, 2))


def _radial_profile(win: np.ndarray, dist: np.ndarray, dr: float, nbins: int) -> np.ndarray:
    """Azimuthal means in rings [k·dr, (k+1)·dr), shape (K, nbins); NaN for empty rings."""
    k = win.shape[0]
    b = np.floor(dist / dr)
    ok = np.isfinite(b) & (b < nbins) & np.isfinite(win)
    idx = (np.arange(k)[:, None, None] * nbins + np.where(ok, b, 0).astype(np.int64))[ok]
    s = np.bincount(idx, weights=win[ok], minlength=k * nbins).reshape(k, nbins)
    c = np.bincount(idx, minlength=k * nbins).reshape(k, nbins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / c


def _first_true(cond: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, -1 if none."""
    first = cond.argmax(axis=-1)
    return np.where(cond.any(axis=-1), first, -1)


def _mask_radius(
    cfg: TCConfig, psl_win: np.ndarray, spd_win: np.ndarray, dist: np.ndarray, dr: float
) -> np.ndarray:
    k = psl_win.shape[0]
    if cfg.mask_method == "fixed" or k == 0:
        return np.full(k, cfg.mask_radius_km)
    nbins = int(np.ceil(cfg.max_mask_radius_km / dr)) + 1
    edges = np.arange(nbins) * dr  # inner edge of each ring
    if cfg.mask_method == "wind":
        prof = _radial_profile(spd_win, dist, dr, nbins)
        rmw = np.nanargmax(np.where(np.isnan(prof), -np.inf, prof), axis=1)
        after = np.arange(nbins)[None, :] > rmw[:, None]
        idx = _first_true(after & (prof < cfg.mask_wind_ms))
    else:
        prof = _radial_profile(psl_win, dist, dr, nbins)
        outer = prof[:, -1]  # azimuthal-mean PSL at max_mask_radius_km: the environment
        idx = _first_true((outer[:, None] - prof) < cfg.mask_dpsl_pa)
    radius = np.where(idx >= 0, edges[np.maximum(idx, 0)], cfg.max_mask_radius_km)
    return np.clip(radius, cfg.min_mask_radius_km, cfg.max_mask_radius_km)


def _block_nodes(
    psl: np.ndarray, u: np.ndarray, v: np.ndarray, tcore: np.ndarray, grid: Grid, cfg: TCConfig
) -> dict[str, np.ndarray]:
    """Nodes of one block of time steps (arrays (time, lat, lon)); vectorized over time."""
    hy, hx = grid.cells_for_km(cfg.merge_distance_km, cfg.max_abs_lat)
    modes = ("nearest", "nearest", "wrap" if grid.periodic else "nearest")
    psl_f = np.where(np.isfinite(psl), psl, np.inf)
    low = ndimage.minimum_filter(psl_f, size=(1, 2 * hy + 1, 2 * hx + 1), mode=modes)
    cand = (psl_f == low) & np.isfinite(psl) & (np.abs(grid.lat) <= cfg.max_abs_lat)[None, :, None]
    # one candidate per plateau of equal minima
    lab, n = ndimage.label(cand, structure=_STRUCT_3D)
    flat = np.flatnonzero(lab)
    _, first = np.unique(lab.ravel()[flat], return_index=True)
    t, i, j = np.unravel_index(flat[first], psl.shape)
    sign = np.sign(grid.lat[i])
    keep = sign != 0
    t, i, j, sign = t[keep], i[keep], j[keep], sign[keep]

    zeta = relative_vorticity(u, v, grid)
    speed = np.hypot(u, v).astype(np.float32)
    out: dict[str, list[np.ndarray]] = {k: [] for k in
                                        ("t", "i", "j", "psl", "vort", "wind", "warm", "radius")}
    dr = max(grid.dlat_min_deg * 111.195, 25.0)
    for s in range(0, t.size, int(cfg.candidate_chunk)):
        tt, ii, jj, sg = t[s:s + cfg.candidate_chunk], i[s:s + cfg.candidate_chunk], \
            j[s:s + cfg.candidate_chunk], sign[s:s + cfg.candidate_chunk]
        # cyclonic vorticity (hemisphere-signed)
        ry, rx = grid.cells_for_km(cfg.vorticity_radius_km, cfg.max_abs_lat)
        win, d, _ = gather_windows(zeta, tt, ii, jj, ry, rx, grid)
        vort = _disc_max(win * sg[:, None, None], d, cfg.vorticity_radius_km)
        ok = vort >= cfg.min_vorticity_per_s
        tt, ii, jj, sg, vort = tt[ok], ii[ok], jj[ok], sg[ok], vort[ok]
        # wind
        ry, rx = grid.cells_for_km(cfg.wind_radius_km, cfg.max_abs_lat)
        win, d, _ = gather_windows(speed, tt, ii, jj, ry, rx, grid)
        wind = _disc_max(win, d, cfg.wind_radius_km)
        ok = wind >= cfg.min_wind_ms
        tt, ii, jj, sg, vort, wind = tt[ok], ii[ok], jj[ok], sg[ok], vort[ok], wind[ok]
        # warm core: area-weighted (cos lat) means inside the disc and in the annulus
        ry, rx = grid.cells_for_km(cfg.warm_core_outer_radius_km, cfg.max_abs_lat)
        win, d, rows = gather_windows(tcore, tt, ii, jj, ry, rx, grid)
        w = np.cos(np.deg2rad(grid.lat[rows]))[:, :, None] * np.isfinite(win)
        win0 = np.nan_to_num(win)
        inner = d <= cfg.warm_core_radius_km
        ring = (d > cfg.warm_core_radius_km) & (d <= cfg.warm_core_outer_radius_km)
        with np.errstate(invalid="ignore", divide="ignore"):
            m_in = (win0 * w * inner).sum((1, 2)) / (w * inner).sum((1, 2))
            m_out = (win0 * w * ring).sum((1, 2)) / (w * ring).sum((1, 2))
        warm = m_in - m_out
        ok = warm >= cfg.min_warm_core_k
        tt, ii, jj, vort, wind, warm = tt[ok], ii[ok], jj[ok], vort[ok], wind[ok], warm[ok]
        # closed contour of PSL
        ry, rx = grid.cells_for_km(cfg.closed_contour_radius_km, cfg.max_abs_lat)
        win, d, _ = gather_windows(psl, tt, ii, jj, ry, rx, grid)
        ok = _closed_contour(win, d, ry, rx, cfg.closed_contour_dpsl_pa, cfg.closed_contour_radius_km)
        tt, ii, jj, vort, wind, warm = tt[ok], ii[ok], jj[ok], vort[ok], wind[ok], warm[ok]
        # mask radius
        if cfg.mask_method == "fixed":
            radius = np.full(tt.size, cfg.mask_radius_km)
        else:
            ry, rx = grid.cells_for_km(cfg.max_mask_radius_km, cfg.max_abs_lat)
            pw, d, _ = gather_windows(psl, tt, ii, jj, ry, rx, grid)
            sw, _, _ = gather_windows(speed, tt, ii, jj, ry, rx, grid)
            radius = _mask_radius(cfg, pw, sw, d, dr)
        for key, val in zip(out, (tt, ii, jj, psl[tt, ii, jj], vort, wind, warm, radius)):
            out[key].append(np.asarray(val))
    return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}


def _window_rows_cols(i: np.ndarray, j: np.ndarray, hy: int, hx: int, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    nlat, nlon = grid.shape
    rows = np.clip(i[:, None] + np.arange(-hy, hy + 1)[None, :], 0, nlat - 1)
    cols = j[:, None] + np.arange(-hx, hx + 1)[None, :]
    cols = np.mod(cols, nlon) if grid.periodic else np.clip(cols, 0, nlon - 1)
    return rows[:, :, None], cols[:, None, :]


def _prepare(ds: xr.Dataset, cfg: TCConfig) -> tuple[xr.Dataset, tuple[str, str], Grid]:
    if not isinstance(ds, xr.Dataset):
        raise DataError(f"run: expected an xarray.Dataset, found {type(ds).__name__}")
    uv = _pick_wind(ds, cfg)
    ds = normalize_run(ds, [cfg.psl_var, *uv, *cfg.warm_core_vars])
    return ds, uv, Grid.from_coords(ds.lat.values, ds.lon.values)


def detect_tc_nodes(ds: xr.Dataset, config: TCConfig | None = None) -> pd.DataFrame:
    """Find TC centres (nodes) at every time step: PSL minima passing all tests.

    Parameters
    ----------
    ds
        Run with ``PSL`` (Pa), 850 hPa or lowest-level winds (m s⁻¹) and
        ``T200``/``T500`` (K) on (time, lat, lon).
    config
        Thresholds; default :class:`TCConfig()`.

    Returns
    -------
    pandas.DataFrame
        ``time_index, time, lat, lon, psl_pa, vorticity_per_s, max_wind_ms,
        warm_core_k, radius_km``, ordered by time.
    """
    cfg = config or TCConfig()
    ds, (uname, vname), grid = _prepare(ds, cfg)
    parts = []
    nt = ds.sizes["time"]
    for t0 in range(0, nt, int(cfg.time_block)):
        blk = ds.isel(time=slice(t0, t0 + cfg.time_block))
        psl = np.asarray(blk[cfg.psl_var].values, dtype=np.float64)
        u = np.asarray(blk[uname].values, dtype=np.float32)
        v = np.asarray(blk[vname].values, dtype=np.float32)
        tcore = np.mean([np.asarray(blk[n].values, dtype=np.float32) for n in cfg.warm_core_vars], axis=0)
        r = _block_nodes(psl, u, v, tcore, grid, cfg)
        parts.append(pd.DataFrame({
            "time_index": r["t"].astype(np.int64) + t0,
            "lat": grid.lat[r["i"].astype(np.int64)],
            "lon": grid.lon[r["j"].astype(np.int64)],
            "psl_pa": r["psl"].astype(np.float64),
            "vorticity_per_s": r["vort"].astype(np.float64),
            "max_wind_ms": r["wind"].astype(np.float64),
            "warm_core_k": r["warm"].astype(np.float64),
            "radius_km": r["radius"].astype(np.float64),
        }))
    nodes = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["time_index", "lat", "lon", "psl_pa", "vorticity_per_s", "max_wind_ms", "warm_core_k", "radius_km"])
    nodes.insert(1, "time", ds.time.values[nodes["time_index"].to_numpy(dtype=np.int64)])
    return nodes.sort_values(["time_index", "lat", "lon"], ignore_index=True)


def stitch_nodes(nodes: pd.DataFrame, hours: np.ndarray, config: TCConfig | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Link nodes into tracks (StitchNodes-style) and keep the long-lived ones.

    At each time step the nodes are matched one-to-one to the open tracks by
    minimum total great-circle distance (:func:`scipy.optimize.linear_sum_assignment`),
    a match allowed only within ``max_speed_km_per_h`` × hours elapsed since the
    track's last node and ``max_gap_h``; unmatched nodes start new tracks.

    Parameters
    ----------
    nodes
        Output of :func:`detect_tc_nodes` (``time_index, lat, lon``, ...).
    hours
        Hours since the start for every time index of the run.
    config
        ``max_speed_km_per_h``, ``max_gap_h``, ``min_duration_h``.

    Returns
    -------
    track_id : numpy.ndarray
        Per node, its kept track (0, 1, ...) or -1.
    tracks : pandas.DataFrame
        One row per kept track (see :class:`TCResult`).
    """
    cfg = config or TCConfig()
    n = len(nodes)
    raw = np.full(n, -1, dtype=np.int64)
    ti = nodes["time_index"].to_numpy(dtype=np.int64)
    lat = nodes["lat"].to_numpy(dtype=np.float64)
    lon = nodes["lon"].to_numpy(dtype=np.float64)
    hrs = np.asarray(hours, dtype=np.float64)[ti] if n else np.zeros(0)
    # open tracks: last node's hour, lat, lon
    o_id = np.zeros(0, np.int64)
    o_h = np.zeros(0)
    o_lat = np.zeros(0)
    o_lon = np.zeros(0)
    next_id = 0
    for step in np.unique(ti):
        sel = np.flatnonzero(ti == step)
        h = hrs[sel[0]]
        # a track stays open while the time without a node (beyond one step) is at most max_gap_h
        dt_prev = float(hours[step] - hours[step - 1]) if step > 0 else 0.0
        alive = (h - o_h - dt_prev) <= cfg.max_gap_h + 1e-9
        o_id, o_h, o_lat, o_lon = o_id[alive], o_h[alive], o_lat[alive], o_lon[alive]
        assigned = np.full(sel.size, -1, dtype=np.int64)
        if o_id.size:
            dist = great_circle_km(o_lat[:, None], o_lon[:, None], lat[sel][None, :], lon[sel][None, :])
            limit = cfg.max_speed_km_per_h * (h - o_h)[:, None]
            cost = np.where(dist <= limit, dist, 1e12)
            r, c = linear_sum_assignment(cost)
            good = cost[r, c] < 1e12
            assigned[c[good]] = o_id[r[good]]
            o_h[r[good]] = h
            o_lat[r[good]] = lat[sel][c[good]]
            o_lon[r[good]] = lon[sel][c[good]]
        new = assigned < 0
        new_ids = next_id + np.arange(new.sum())
        next_id += int(new.sum())
        assigned[new] = new_ids
        o_id = np.concatenate([o_id, new_ids])
        o_h = np.concatenate([o_h, np.full(new_ids.size, h)])
        o_lat = np.concatenate([o_lat, lat[sel][new]])
        o_lon = np.concatenate([o_lon, lon[sel][new]])
        raw[sel] = assigned
    if n == 0:
        return raw, _empty_tracks()
    df = pd.DataFrame({"raw": raw, "h": hrs, "lat": lat, "lon": lon, "time": nodes["time"].to_numpy(),
                       "psl": nodes["psl_pa"].to_numpy(), "wind": nodes["max_wind_ms"].to_numpy()})
    g = df.groupby("raw", sort=True)
    dur = g["h"].max() - g["h"].min()
    kept = dur.index[dur.to_numpy() >= cfg.min_duration_h - 1e-9]
    final = pd.Series(np.arange(kept.size), index=kept)
    track_id = df["raw"].map(final).fillna(-1).to_numpy(dtype=np.int64)
    rows = []
    for new_id, raw_id in enumerate(kept):
        part = df[df["raw"] == raw_id].sort_values("h")
        steps = great_circle_km(part["lat"].to_numpy()[:-1], part["lon"].to_numpy()[:-1],
                                part["lat"].to_numpy()[1:], part["lon"].to_numpy()[1:])
        rows.append({
            "track_id": new_id, "start": part["time"].iloc[0], "end": part["time"].iloc[-1],
            "duration_h": float(part["h"].iloc[-1] - part["h"].iloc[0]), "n_nodes": len(part),
            "min_psl_pa": float(part["psl"].min()), "max_wind_ms": float(part["wind"].max()),
            "path_km": float(np.sum(steps)), "lat_start": float(part["lat"].iloc[0]),
            "lon_start": float(part["lon"].iloc[0]),
        })
    return track_id, (pd.DataFrame(rows) if rows else _empty_tracks())


def _empty_tracks() -> pd.DataFrame:
    return pd.DataFrame(columns=["track_id", "start", "end", "duration_h", "n_nodes", "min_psl_pa",
                                 "max_wind_ms", "path_km", "lat_start", "lon_start"])


def tc_mask(nodes: pd.DataFrame, like: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """Paint a disc of ``radius_km`` around every node; boolean DataArray (time, lat, lon).

    Parameters
    ----------
    nodes
        ``time_index, lat, lon, radius_km`` per node (lat/lon on the grid of ``like``).
    like
        Provides the ``time``, ``lat`` (ascending) and ``lon`` coordinates.
    """
    grid = Grid.from_coords(like["lat"].values, like["lon"].values)
    nt = like.sizes["time"] if "time" in like.dims else 1
    mask = np.zeros((nt, *grid.shape), dtype=bool)
    if len(nodes):
        ti = nodes["time_index"].to_numpy(dtype=np.int64)
        # nearest grid cell of each centre (longitude compared on the circle)
        ii = np.abs(grid.lat[None, :] - nodes["lat"].to_numpy(dtype=np.float64)[:, None]).argmin(axis=1)
        dlon = (grid.lon[None, :] - nodes["lon"].to_numpy(dtype=np.float64)[:, None] + 180.0) % 360.0 - 180.0
        jj = np.abs(dlon).argmin(axis=1)
        rad = nodes["radius_km"].to_numpy(dtype=np.float64)
        lat_max = float(np.abs(nodes["lat"]).max())
        hy, hx = grid.cells_for_km(float(rad.max()), lat_max)
        for s in range(0, ti.size, 256):
            sl = slice(s, s + 256)
            rows, cols = _window_rows_cols(ii[sl], jj[sl], hy, hx, grid)
            d = great_circle_km(grid.lat[ii[sl]][:, None, None], grid.lon[jj[sl]][:, None, None],
                                grid.lat[rows], grid.lon[cols])
            inside = d <= rad[sl][:, None, None]
            tt = np.broadcast_to(ti[sl][:, None, None], inside.shape)
            rr = np.broadcast_to(rows, inside.shape)
            cc = np.broadcast_to(cols, inside.shape)
            mask[tt[inside], rr[inside], cc[inside]] = True
    coords = {"lat": like["lat"].values, "lon": like["lon"].values}
    if "time" in like.coords:
        coords["time"] = like["time"].values
    return xr.DataArray(mask, dims=("time", "lat", "lon"), coords=coords, name="tc_mask",
                        attrs={"long_name": "tropical cyclone mask (heuristic)"})


def detect_tc(ds: xr.Dataset, config: TCConfig | None = None) -> TCResult:
    """Detect tropical cyclones: nodes, tracks and a mask.

    Parameters
    ----------
    ds
        A climate run (see :func:`detect_tc_nodes` for the variables needed).
    config
        Thresholds; default :class:`TCConfig()`.

    Returns
    -------
    TCResult
        Nodes, tracks, the boolean mask (on the run's grid normalized to
        latitude ascending, longitude in [0, 360)) and whether nodes were stitched.
    """
    cfg = config or TCConfig()
    nodes = detect_tc_nodes(ds, cfg)
    norm, _, _ = _prepare(ds, cfg)
    hours = time_hours(norm["time"], cfg.time_step_h)
    span = float(hours[-1] - hours[0]) if hours.size else 0.0
    stitch = cfg.stitch
    if stitch == "auto":
        stitch = span >= cfg.min_duration_h
        if not stitch:
            warnings.warn(
                f"TC detection: the run spans {span:g} h, less than min_duration_h={cfg.min_duration_h:g} h; "
                "nodes are not stitched into tracks and every detected node is kept",
                UserWarning, stacklevel=2,
            )
    if stitch:
        track_id, tracks = stitch_nodes(nodes, hours, cfg)
        nodes = nodes.assign(track_id=track_id)
        kept = nodes[nodes["track_id"] >= 0]
    else:
        nodes = nodes.assign(track_id=np.full(len(nodes), -1, dtype=np.int64))
        tracks = _empty_tracks()
        kept = nodes
    mask = tc_mask(kept, norm)
    return TCResult(nodes=nodes, tracks=tracks, mask=mask, stitched=bool(stitch), config=cfg)
