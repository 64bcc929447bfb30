"""Synthetic climate runs: physically plausible fields with known TCs and ARs.

:func:`synthetic_run` builds a run of the 16 ClimateNet / DeepCAM channels on a
regular global grid, for teaching, tests and benchmarks. It is **not model
output**: every dataset it returns says so in its attributes
(``synthetic="yes"``).

What is in it
-------------
* An aquaplanet background that depends on latitude: warm, moist tropics and
  cold, dry poles (surface temperature ``301 - 48 sin^2(lat)`` K), sea-level
  pressure near 1013 hPa with subtropical highs and subpolar lows, trade
  easterlies and mid-latitude westerlies, and a few eastward-moving planetary
  waves in pressure with their geostrophic winds.
* Tropical cyclones (TC) between 5 and 35 degrees latitude in either hemisphere:
  a Holland-profile pressure minimum (30-70 hPa deep), cyclonic winds
  (counter-clockwise in the northern hemisphere, clockwise in the southern;
  near-surface winds turn inward; the radius of maximum wind is 15-25 % of the
  label radius but at least one grid spacing, so coarse grids resolve the
  pressure minimum), a warm core aloft (T200, T500), heavy
  precipitation in an eyewall ring and high precipitable water. They move
  westward and poleward and grow and decay over a 3-8 day life.
* Atmospheric rivers (AR): long (about 3500-5500 km), narrow (about 350-700 km)
  filaments of precipitable water from the subtropics to mid-latitudes, with
  a low-level jet along them; they drift eastward over a 2-5 day life.
* Heights consistent with temperatures through the hypsometric relation
  (``Z1000`` from PSL and TREFHT, ``Z200`` through the 1000-500 and 500-200 hPa
  layers, ``ZBOT`` for a lowest model level at sigma = 0.9925).

Labels
------
``LABELS`` come from the constructed features, not from a detector: class 1
(TC) where the great-circle distance to a storm centre is at most its radius,
class 2 (AR) where the filament envelope is at least half its peak (the labelled
strip is ``length_km`` long and ``width_km`` wide along the centre line). A TC
overrides an AR where both apply.

Sizes
-----
The TC label radius defaults to ``tc_radius_km=600`` km (each storm draws 0.8 to
1.2 times it). That is larger than a real storm's gale radius, on purpose: at
the coarse grids used for teaching (96 x 144, about 1.9 x 2.5 degrees, cells of
about 200 x 260 km) a storm still spans several grid cells (about 20 cells at
96 x 144). Pass a smaller radius for fine grids if you want.

Features and the background are drawn from ``numpy.random.default_rng(seed)``
independently of the grid, so the same seed gives the same storms at every
resolution. Geometry is done with unit vectors on the sphere, so distances and
directions are exact across the 0/360 longitude seam and near the poles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from climviz._version import __version__
from climviz.data.schema import AR, CHANNEL_ATTRS, CHANNELS, LABEL_VAR, TC, label_attrs
from climviz.errors import ConfigError

__all__ = ["synthetic_run", "grid_coords"]

EARTH_RADIUS_KM = 6371.0
_R = EARTH_RADIUS_KM * 1e3  # m
_G = 9.80665  # m s-2
_RD = 287.04  # J kg-1 K-1
_OMEGA = 7.292e-5  # s-1
_RHO = 1.15  # kg m-3, near-surface air density used for gradient winds
_MM_DAY = 1e-3 / 86400.0  # 1 mm/day in m s-1
_LN2 = math.log(2.0)
_MAX_CELLS_PER_BLOCK = 2_000_000  # time steps computed together: bounded memory at any grid


# --------------------------------------------------------------------------------------
# grid
# --------------------------------------------------------------------------------------
def grid_coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates of a regular global grid.

    Parameters
    ----------
    shape
        ``(nlat, nlon)``.

    Returns
    -------
    lat, lon
        Latitudes in degrees north, ascending, ``-90 + (i + 0.5) * 180 / nlat``;
        longitudes in degrees east in [0, 360), ``j * 360 / nlon``.

    Examples
    --------
    >>> lat, lon = cv.data.grid_coords((4, 8))
    >>> lat.tolist(), lon.tolist()
    ([-67.5, -22.5, 22.5, 67.5], [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0])
    """
    nlat, nlon = int(shape[0]), int(shape[1])
    lat = -90.0 + (np.arange(nlat) + 0.5) * (180.0 / nlat)
    lon = np.arange(nlon) * (360.0 / nlon)
    return lat, lon


def _unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Unit position vectors, shape ``lat.shape + (3,)`` (broadcast)."""
    la, lo = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    return np.stack(np.broadcast_arrays(np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)), axis=-1)


@dataclass
class _Grid:
    lat: np.ndarray  # (nlat,)
    lon: np.ndarray  # (nlon,)
    p: np.ndarray  # (nlat, nlon, 3) unit vectors
    east: np.ndarray  # (nlat, nlon, 3)
    north: np.ndarray  # (nlat, nlon, 3)

    @classmethod
    def make(cls, shape: tuple[int, int]) -> _Grid:
        lat, lon = grid_coords(shape)
        la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
        p = _unit_vectors(lat[:, None], lon[None, :])
        zero = np.zeros_like(la * lo)
        east = np.stack(np.broadcast_arrays(-np.sin(lo) + zero, np.cos(lo) + zero, zero), axis=-1)
        north = np.stack(
            np.broadcast_arrays(-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la) + zero), axis=-1
        )
        return cls(lat, lon, p, east, north)

    @property
    def spacing_m(self) -> float:
        """Meridional grid spacing in metres."""
        return float(np.deg2rad(180.0 / self.lat.size) * _R)

    def rows(self, lat_lo: float, lat_hi: float) -> slice:
        """Row slice covering latitudes [lat_lo, lat_hi] (degrees), one cell of margin."""
        i0 = int(np.searchsorted(self.lat, lat_lo, side="left")) - 1
        i1 = int(np.searchsorted(self.lat, lat_hi, side="right")) + 1
        return slice(max(i0, 0), min(i1, self.lat.size))


# --------------------------------------------------------------------------------------
# feature tracks (drawn independently of the grid)
# --------------------------------------------------------------------------------------
@dataclass
class _Tracks:
    """Per-feature tracks sampled at the run's time steps; arrays (n_features, n_times)."""

    kind: str
    ids: np.ndarray  # (F,)
    active: np.ndarray  # (F, T) bool
    lat: np.ndarray  # (F, T) degrees
    lon: np.ndarray  # (F, T) degrees [0, 360)
    intensity: np.ndarray  # (F, T) in (0, 1]
    size: np.ndarray  # (F, T) radius (tc) or length (ar), km
    width: np.ndarray  # (F, T) pressure deficit Pa (tc) or width km (ar)
    extra: np.ndarray  # (F,) radius of max wind fraction (tc) / azimuth deg (ar) at birth
    heading: np.ndarray  # (F, T) ar azimuth (deg from north) ; tc unused
    wiggle: np.ndarray  # (F, 3) ar wiggle amplitude fraction, wavelength km, phase


def _slot_lives(rng: np.random.Generator, n_slots: int, hours_total: float, life_h: tuple[float, float]):
    """Back-to-back lifetimes in each slot so that ``n_slots`` features are alive at every time.

    Returns a list of (slot, t_start_h, t_end_h).
    """
    out = []
    for slot in range(n_slots):
        first = rng.uniform(*life_h)
        t = -rng.uniform(0.0, first) * 0.9  # first feature already under way at t=0
        life = first
        while t <= hours_total:
            out.append((slot, t, t + life))
            t += life
            life = rng.uniform(*life_h)
    return out


def _tc_tracks(rng, n_tc, hours, tc_radius_km, first_id) -> _Tracks:
    total = float(hours[-1]) if hours.size else 0.0
    lives = _slot_lives(rng, n_tc, total, (72.0, 192.0))
    F, T = len(lives), hours.size
    tr = _Tracks(
        "tc", np.arange(first_id, first_id + F), np.zeros((F, T), bool),
        lat=np.zeros((F, T)), lon=np.zeros((F, T)), intensity=np.zeros((F, T)), size=np.zeros((F, T)),
        width=np.zeros((F, T)), extra=np.zeros(F), heading=np.zeros((F, T)), wiggle=np.zeros((F, 3)),
    )
    for k, (_, t0, t1) in enumerate(lives):
        hemi = 1.0 if rng.uniform() < 0.6 else -1.0
        lat0 = rng.uniform(7.0, 17.0)
        lon0 = rng.uniform(0.0, 360.0)
        v_pole = rng.uniform(0.5, 2.5)  # m/s poleward
        v_west = rng.uniform(2.0, 6.0)  # m/s westward
        radius = tc_radius_km * rng.uniform(0.8, 1.2)
        dp = rng.uniform(3000.0, 7000.0)
        rmw = rng.uniform(0.15, 0.25)
        age = (hours - t0) / (t1 - t0)  # 0..1 over life
        s = (hours - t0) * 3600.0
        lat = np.clip(lat0 + np.rad2deg(v_pole * s / _R), 5.0, 35.0)
        lon = (lon0 - np.rad2deg(v_west * s / (_R * np.cos(np.deg2rad(lat))))) % 360.0
        tr.active[k] = (hours >= t0) & (hours < t1)
        tr.lat[k] = hemi * lat
        tr.lon[k] = lon
        tr.intensity[k] = 0.35 + 0.65 * np.sin(np.pi * np.clip(age, 0, 1)) ** 1.5
        tr.size[k] = radius * (0.9 + 0.1 * np.sin(np.pi * np.clip(age, 0, 1)))
        tr.width[k] = dp
        tr.extra[k] = rmw
    return tr


def _ar_tracks(rng, n_ar, hours, first_id) -> _Tracks:
    total = float(hours[-1]) if hours.size else 0.0
    lives = _slot_lives(rng, n_ar, total, (48.0, 120.0))
    F, T = len(lives), hours.size
    tr = _Tracks(
        "ar", np.arange(first_id, first_id + F), np.zeros((F, T), bool),
        lat=np.zeros((F, T)), lon=np.zeros((F, T)), intensity=np.zeros((F, T)), size=np.zeros((F, T)),
        width=np.zeros((F, T)), extra=np.zeros(F), heading=np.zeros((F, T)), wiggle=np.zeros((F, 3)),
    )
    for k, (_, t0, t1) in enumerate(lives):
        hemi = 1.0 if rng.uniform() < 0.55 else -1.0
        lat0 = rng.uniform(28.0, 36.0)
        lon0 = rng.uniform(0.0, 360.0)
        az0 = rng.uniform(40.0, 65.0)  # degrees east of poleward
        length = rng.uniform(3600.0, 5400.0)
        width = rng.uniform(400.0, 650.0)
        v_east = rng.uniform(5.0, 10.0)
        v_pole = rng.uniform(0.0, 1.0)
        age = np.clip((hours - t0) / (t1 - t0), 0, 1)
        s = (hours - t0) * 3600.0
        lat = np.clip(lat0 + np.rad2deg(v_pole * s / _R), 25.0, 42.0)
        lon = (lon0 + np.rad2deg(v_east * s / (_R * np.cos(np.deg2rad(lat))))) % 360.0
        grow = np.sin(np.pi * age)
        tr.active[k] = (hours >= t0) & (hours < t1)
        tr.lat[k] = hemi * lat
        tr.lon[k] = lon
        tr.intensity[k] = 0.5 + 0.5 * grow
        tr.size[k] = length * (0.85 + 0.15 * grow)  # stays within ~3000-5400 km
        tr.width[k] = width * (0.85 + 0.15 * grow)
        az = az0 + 10.0 * (age - 0.5)
        tr.heading[k] = az if hemi > 0 else 180.0 - az  # NH: north-east, SH: south-east
        tr.wiggle[k] = (rng.uniform(0.2, 0.5), rng.uniform(2000.0, 3500.0), rng.uniform(0, 2 * np.pi))
    return tr


# --------------------------------------------------------------------------------------
# fields
# --------------------------------------------------------------------------------------
def _qsat(t_k: np.ndarray, p_pa: np.ndarray | float) -> np.ndarray:
    """Saturation specific humidity (kg/kg), Bolton (1980) vapour pressure over water."""
    es = 611.2 * np.exp(17.67 * (t_k - 273.15) / (t_k - 29.65))
    return 0.622 * es / (p_pa - 0.378 * es)


@dataclass
class _Waves:
    m: np.ndarray  # zonal wavenumbers
    amp: np.ndarray  # Pa
    omega: np.ndarray  # rad/h
    phase: np.ndarray
    lat_c: np.ndarray  # centre latitude (deg, signed)

    @classmethod
    def draw(cls, rng, n=6) -> _Waves:
        lat_c = rng.uniform(42.0, 58.0, n) * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        return cls(
            rng.integers(3, 8, n).astype(float), rng.uniform(300.0, 700.0, n), rng.uniform(0.01, 0.03, n),
            rng.uniform(0, 2 * np.pi, n), lat_c,
        )


def _background(grid: _Grid, hours: np.ndarray, waves: _Waves) -> dict[str, np.ndarray]:
    """Background fields for a block of times, each (T, nlat, nlon) float64."""
    T, nlat, nlon = hours.size, grid.lat.size, grid.lon.size
    phi = np.deg2rad(grid.lat)[None, :, None]
    alat = np.abs(grid.lat)[None, :, None]
    lam = np.deg2rad(grid.lon)[None, None, :]
    s2 = np.sin(phi) ** 2

    # planetary waves in pressure, with geostrophic winds (analytic derivatives)
    f = 2 * _OMEGA * np.sin(phi)
    f_min = 2 * _OMEGA * np.sin(np.deg2rad(15.0))
    f = np.where(np.abs(f) < f_min, np.sign(f + 1e-30) * f_min, f)
    pw = np.zeros((T, nlat, nlon))
    dpdx = np.zeros_like(pw)
    dpdy = np.zeros_like(pw)
    width = np.deg2rad(12.0)
    for m, a, om, ph, lc in zip(waves.m, waves.amp, waves.omega, waves.phase, waves.lat_c):
        d = phi - np.deg2rad(lc)
        env = a * np.exp(-(d / width) ** 2)  # (1, nlat, 1)
        arg = m * lam - om * hours[:, None, None] + ph  # (T, 1, nlon)
        c, s = np.cos(arg), np.sin(arg)
        pw += env * c
        dpdx += -env * m * s / (_R * np.maximum(np.cos(phi), 0.05))
        dpdy += env * (-2 * d / width**2) * c / _R
    ug = -dpdy / (_RHO * f)
    vg = dpdx / (_RHO * f)

    ts = 301.0 - 48.0 * s2 + 0.004 * pw  # warm where pressure is high-ish: small
    psl = (
        101300.0
        + 800.0 * np.exp(-((alat - 30.0) / 10.0) ** 2)
        - 1300.0 * np.exp(-((alat - 62.0) / 10.0) ** 2)
        - 300.0 * np.exp(-(alat / 8.0) ** 2)
        + pw
    )
    u = 12.0 * np.exp(-((alat - 45.0) / 12.0) ** 2) - 6.0 * np.exp(-((alat - 12.0) / 9.0) ** 2) + ug
    v = vg + 0.0 * lam
    rh = 0.78 + 0.08 * np.exp(-(alat / 10.0) ** 2) - 0.04 * pw / 700.0
    rain = _MM_DAY * (0.5 + 7.0 * np.exp(-(alat / 7.0) ** 2) + 2.5 * np.exp(-((alat - 45.0) / 10.0) ** 2))
    rain = rain + _MM_DAY * 3.0 * np.clip(-pw / 600.0, 0, None)
    bcast = np.zeros((T, nlat, nlon))
    return {
        "TS": ts + bcast, "PSL": psl + bcast, "U": u + bcast, "V": v + bcast, "RH": rh + bcast,
        "PRECT": rain + bcast, "T200": 217.0 + 5.0 * s2 + bcast, "dT500": bcast.copy(),
        "dTMQ": bcast.copy(), "dQ": bcast.copy(),
        "Ub": np.zeros_like(bcast), "Vb": np.zeros_like(bcast), "dTS": bcast.copy(),
    }


def _add_tcs(grid: _Grid, fld: dict, lab: np.ndarray, tr: _Tracks, tsel: np.ndarray) -> None:
    """Superpose active TCs of times ``tsel`` (indices into tr arrays) onto block fields."""
    for k in range(tr.ids.size):
        act = tr.active[k, tsel]
        if not act.any():
            continue
        bt = np.nonzero(act)[0]  # block-local time indices
        ti = tsel[bt]
        lat_c, lon_c = tr.lat[k, ti], tr.lon[k, ti]
        radius = tr.size[k, ti] * 1e3  # m
        reach = 2.2 * radius.max() / _R * 180 / np.pi
        rows = grid.rows(lat_c.min() - reach, lat_c.max() + reach)
        p, e, n = grid.p[rows], grid.east[rows], grid.north[rows]
        c = _unit_vectors(lat_c, lon_c)  # (t, 3)
        cosang = np.clip(np.einsum("yxk,tk->tyx", p, c), -1.0, 1.0)
        cr = np.cross(c[:, None, None, :], p[None])  # (t, y, x, 3): counter-clockwise tangent * sin(ang)
        sinang = np.linalg.norm(cr, axis=-1)
        r = _R * np.arctan2(sinang, cosang)  # great-circle distance, m
        tan_hat = cr / np.maximum(sinang, 1e-12)[..., None]
        out_hat = -np.cross(p[None], tan_hat)  # outward from centre along the surface (p x tan = inward)
        strength = tr.intensity[k, ti][:, None, None]
        R = radius[:, None, None]
        # radius of maximum wind: 15-25 % of the label radius, but at least one grid spacing so
        # that a coarse grid still resolves the pressure minimum (coarse models have broad storms)
        rm = np.maximum(tr.extra[k] * radius, grid.spacing_m)[:, None, None]
        dp = tr.width[k, ti][:, None, None] * strength
        taper = np.exp(-((r / (1.8 * R)) ** 4))
        x = (rm / np.maximum(r, 1.0)) ** 1.5
        deficit = dp * (1.0 - np.exp(-x)) * taper
        vt = np.sqrt(1.5 * dp / _RHO * x * np.exp(-x)) * taper
        sense = np.sign(lat_c)[:, None, None]  # +1 NH (counter-clockwise), -1 SH (clockwise)
        ut = sense * vt * np.einsum("tyxk,yxk->tyx", tan_hat, e)
        vtn = sense * vt * np.einsum("tyxk,yxk->tyx", tan_hat, n)
        uo = vt * np.einsum("tyxk,yxk->tyx", out_hat, e)
        vo = vt * np.einsum("tyxk,yxk->tyx", out_hat, n)
        core = np.exp(-((r / (0.5 * R)) ** 2))
        moist = np.exp(-((r / (0.7 * R)) ** 2))
        ring = np.exp(-(((r - rm) / (0.6 * rm)) ** 2))
        sl = (bt, rows)
        fld["PSL"][bt, rows] -= deficit
        fld["U"][bt, rows] += ut
        fld["V"][bt, rows] += vtn
        # near-surface: 20 degrees of inflow
        fld["Ub"][bt, rows] += -0.34 * uo
        fld["Vb"][bt, rows] += -0.34 * vo
        fld["T200"][bt, rows] += 10.0 * strength * core
        fld["dT500"][bt, rows] += 6.0 * strength * core
        fld["dTMQ"][bt, rows] += 22.0 * strength * moist
        fld["dQ"][bt, rows] += 0.003 * strength * moist
        fld["RH"][bt, rows] += 0.15 * moist
        fld["dTS"][bt, rows] -= 1.0 * strength * moist
        fld["PRECT"][bt, rows] += strength * (7e-6 * ring + 1.5e-6 * np.exp(-((r / (0.8 * R)) ** 2)))
        del sl
        lab[bt, rows] = np.where(r <= R, TC, lab[bt, rows])


def _ar_geometry(grid: _Grid, rows: slice, lat_c, lon_c, az_deg):
    """Along/cross-track coordinates (m) of grid rows relative to great circles through (lat_c, lon_c)."""
    p = grid.p[rows]
    a = _unit_vectors(lat_c, lon_c)  # (t, 3)
    la, lo, az = np.deg2rad(lat_c), np.deg2rad(lon_c), np.deg2rad(az_deg)
    e_c = np.stack([-np.sin(lo), np.cos(lo), np.zeros_like(lo)], -1)
    n_c = np.stack([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)], -1)
    d = np.sin(az)[:, None] * e_c + np.cos(az)[:, None] * n_c  # heading at the midpoint
    nrm = np.cross(a, d)  # normal of the centre great circle
    along = _R * np.arctan2(np.einsum("yxk,tk->tyx", p, d), np.einsum("yxk,tk->tyx", p, a))
    cross = _R * np.arcsin(np.clip(np.einsum("yxk,tk->tyx", p, nrm), -1, 1))
    flow = np.cross(nrm[:, None, None, :], p[None])  # direction along the filament at each cell
    flow /= np.maximum(np.linalg.norm(flow, axis=-1, keepdims=True), 1e-12)
    return along, cross, flow


def _add_ars(grid: _Grid, fld: dict, lab: np.ndarray, tr: _Tracks, tsel: np.ndarray) -> None:
    for k in range(tr.ids.size):
        act = tr.active[k, tsel]
        if not act.any():
            continue
        bt = np.nonzero(act)[0]
        ti = tsel[bt]
        lat_c, lon_c = tr.lat[k, ti], tr.lon[k, ti]
        L = tr.size[k, ti][:, None, None] * 1e3
        W = tr.width[k, ti][:, None, None] * 1e3
        half_deg = np.rad2deg(0.5 * tr.size[k, ti].max() * 1e3 / _R) + 6.0
        rows = grid.rows(lat_c.min() - half_deg, lat_c.max() + half_deg)
        along, cross, flow = _ar_geometry(grid, rows, lat_c, lon_c, tr.heading[k, ti])
        amp, wl, ph = tr.wiggle[k]
        cross = cross - amp * W * np.sin(2 * np.pi * along / (wl * 1e3) + ph)
        tau = np.minimum(0.2 * L, 600e3)
        over = np.clip(np.abs(along) - (0.5 * L - tau), 0, None) / tau
        env = np.exp(-_LN2 * (2 * cross / W) ** 2) * np.exp(-_LN2 * over**2)
        env = np.where(np.abs(along) < 0.5 * np.pi * _R * 0.9, env, 0.0)  # only the near side of the globe
        strength = tr.intensity[k, ti][:, None, None]
        e, n = grid.east[rows], grid.north[rows]
        jet = 18.0 * strength * env
        fld["U"][bt, rows] += jet * np.einsum("tyxk,yxk->tyx", flow, e)
        fld["V"][bt, rows] += jet * np.einsum("tyxk,yxk->tyx", flow, n)
        fld["dTMQ"][bt, rows] += 24.0 * strength * env
        fld["dQ"][bt, rows] += 0.004 * strength * env
        fld["RH"][bt, rows] += 0.1 * env
        fld["PRECT"][bt, rows] += 4e-7 * strength * env
        fld["dT500"][bt, rows] += 1.5 * strength * env
        lab[bt, rows] = np.where((env >= 0.5) & (lab[bt, rows] != TC), AR, lab[bt, rows])


def _finish(fld: dict, lat: np.ndarray) -> dict[str, np.ndarray]:
    """Derive the 16 channels (float32) from the superposed block fields."""
    ts = fld["TS"] + fld["dTS"]
    trefht = ts - 1.5
    psl = fld["PSL"]
    ps = psl  # aquaplanet: the surface is at sea level
    rh = np.clip(fld["RH"], 0.05, 0.98)
    q = np.minimum(rh * _qsat(trefht, ps) + fld["dQ"], 0.98 * _qsat(trefht, ps))
    # precipitable water of an exponentially decaying humidity profile (vapour scale height
    # ~ 1/3.8 of the pressure scale height): W = q ps / (g (1 + 2.8))
    tmq = q * ps / (_G * 3.8) + fld["dTMQ"]
    t500 = 0.75 * ts + 43.0 + fld["dT500"]
    t200 = fld["T200"]
    h = _RD / _G
    z1000 = h * trefht * np.log(psl / 1.0e5)
    z500 = z1000 + h * 0.5 * (trefht + t500) * np.log(2.0)
    z200 = z500 + h * 0.5 * (t500 + t200) * np.log(500.0 / 200.0)
    zbot = h * trefht * -np.log(0.9925)
    fric = 0.75
    out = {
        "TMQ": tmq, "U850": fld["U"], "V850": fld["V"], "UBOT": fric * fld["U"] + fld["Ub"],
        "VBOT": fric * fld["V"] + fld["Vb"], "QREFHT": q, "PS": ps, "PSL": psl, "T200": t200,
        "T500": t500, "PRECT": fld["PRECT"], "TS": ts, "TREFHT": trefht, "Z1000": z1000,
        "Z200": z200, "ZBOT": zbot,
    }
    return {k: v.astype(np.float32) for k, v in out.items()}


def _features_frame(times: pd.DatetimeIndex, tracks: list[_Tracks]) -> pd.DataFrame:
    rows = []
    for tr in tracks:
        f_idx, t_idx = np.nonzero(tr.active)
        if f_idx.size == 0:
            continue
        d = {
            "time": times[t_idx],
            "kind": tr.kind,
            "feature_id": tr.ids[f_idx],
            "lat": tr.lat[f_idx, t_idx],
            "lon": tr.lon[f_idx, t_idx],
            "intensity": tr.intensity[f_idx, t_idx],
        }
        if tr.kind == "tc":
            d["radius_km"] = tr.size[f_idx, t_idx]
            d["pressure_deficit_pa"] = tr.width[f_idx, t_idx] * tr.intensity[f_idx, t_idx]
            d["length_km"] = np.nan
            d["width_km"] = np.nan
        else:
            d["radius_km"] = np.nan
            d["pressure_deficit_pa"] = np.nan
            d["length_km"] = tr.size[f_idx, t_idx]
            d["width_km"] = tr.width[f_idx, t_idx]
            d["heading_deg"] = tr.heading[f_idx, t_idx]
        rows.append(pd.DataFrame(d))
    cols = ["time", "kind", "feature_id", "lat", "lon", "radius_km", "length_km", "width_km", "intensity",
            "pressure_deficit_pa", "heading_deg"]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    df = pd.concat(rows, ignore_index=True).reindex(columns=cols)
    return df.sort_values(["time", "kind", "feature_id"]).reset_index(drop=True)


def synthetic_run(
    n_times: int,
    shape: tuple[int, int] = (96, 144),
    seed: int = 0,
    *,
    n_tc: int = 3,
    n_ar: int = 2,
    start: str = "2000-01-01",
    freq: str = "3h",
    tc_radius_km: float = 600.0,
    return_features: bool = False,
) -> xr.Dataset | tuple[xr.Dataset, pd.DataFrame]:
    """Make a synthetic climate run with tropical cyclones and atmospheric rivers.

    Parameters
    ----------
    n_times
        Number of time steps (>= 1).
    shape
        Grid ``(nlat, nlon)``, regular and global, cell centres (see :func:`grid_coords`);
        at least 8 x 8. ``(768, 1152)`` is the ClimateNet / DeepCAM grid.
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives the same run, and the
        same storms at every grid size.
    n_tc, n_ar
        Number of tropical cyclones / atmospheric rivers alive at every time step (each
        of these "slots" holds a sequence of features, one after another). Use them to
        make two "climates" with different storm activity.
    start, freq
        First time and spacing (a pandas frequency such as ``"3h"`` or ``"6h"``).
    tc_radius_km
        Typical TC label radius in km (each storm draws 0.8-1.2 times it); the default
        600 km keeps storms several cells wide even at 96 x 144.
    return_features
        Also return the constructed features.

    Returns
    -------
    xarray.Dataset
        The 16 channels as float32 ``(time, lat, lon)`` with CF attributes, ``LABELS``
        uint8 (0 background, 1 TC, 2 AR), latitude ascending, longitude in [0, 360);
        global attributes ``synthetic="yes"``, ``source``, ``comment``.
    pandas.DataFrame
        Only with ``return_features=True``: one row per (time, feature) with ``time,
        kind ("tc" | "ar"), feature_id, lat, lon, radius_km`` (tc), ``length_km,
        width_km`` (ar), ``intensity`` (0-1), ``pressure_deficit_pa`` (tc, Pa) and
        ``heading_deg`` (ar, degrees clockwise from north at the midpoint). ``lat, lon``
        are the storm centre (tc) or the filament midpoint (ar).

    Examples
    --------
    >>> ds = synthetic_run(4, shape=(48, 72), seed=1)
    >>> ds.attrs["synthetic"]
    'yes'

    The run of the other examples: 4 steps of 3 h on a 32 x 48 grid, 3 TCs and 2 ARs at
    every step.

    >>> ds, features = cv.synthetic_run(4, shape=(32, 48), return_features=True)
    >>> dict(ds.sizes), len(ds.data_vars)
    ({'time': 4, 'lat': 32, 'lon': 48}, 17)
    >>> ds["TMQ"].attrs["units"], ds["LABELS"].dtype.name, np.unique(ds["LABELS"]).tolist()
    ('kg m-2', 'uint8', [0, 1, 2])
    >>> features.groupby("kind").size().to_dict()
    {'ar': 8, 'tc': 12}
    >>> cv.synthetic_run(4, shape=(32, 48)).identical(ds)  # same seed, same run
    True
    """
    times = _check_arguments(n_times, shape, n_tc, n_ar, tc_radius_km, start, freq)
    hours = ((times - times[0]) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    waves = _Waves.draw(rng)
    tcs = _tc_tracks(rng, int(n_tc), hours, float(tc_radius_km), first_id=1)
    ars = _ar_tracks(rng, int(n_ar), hours, first_id=int(tcs.ids.size) + 1)
    grid = _Grid.make((int(shape[0]), int(shape[1])))
    data, labels = _render(grid, hours, waves, tcs, ars)
    attrs = {
        "title": "climviz synthetic climate run",
        "synthetic": "yes",
        "source": f"climviz.data.synthetic_run (synthetic fields, NOT climate model output), climviz {__version__}",
        "comment": (
            "Synthetic aquaplanet fields for teaching, tests and benchmarks: latitude-dependent background, "
            "planetary waves, tropical cyclones and atmospheric rivers built analytically; LABELS come from the "
            "constructed features (TC within its radius, AR where the filament envelope >= 0.5)."
        ),
        "Conventions": "CF-1.8",
        "seed": int(seed),
        "n_tc": int(n_tc),
        "n_ar": int(n_ar),
        "tc_radius_km": float(tc_radius_km),
        "climviz_version": __version__,
    }
    ds = _as_dataset(times, grid, data, labels, attrs)
    if return_features:
        return ds, _features_frame(times, [tcs, ars])
    return ds


def _check_arguments(n_times: int, shape: tuple[int, int], n_tc: int, n_ar: int, tc_radius_km: float,
                     start: str, freq: str) -> pd.DatetimeIndex:
    """Refuse impossible arguments of :func:`synthetic_run` (ConfigError naming them); the time axis."""
    if int(n_times) != n_times or n_times < 1:
        raise ConfigError(f"synthetic_run: n_times must be a positive integer, got {n_times!r}")
    if len(shape) != 2 or min(shape) < 8:
        raise ConfigError(f"synthetic_run: shape must be (nlat, nlon) with both >= 8, got {shape!r}")
    for name, val in (("n_tc", n_tc), ("n_ar", n_ar)):
        if int(val) != val or val < 0:
            raise ConfigError(f"synthetic_run: {name} must be a non-negative integer, got {val!r}")
    if not tc_radius_km > 0:
        raise ConfigError(f"synthetic_run: tc_radius_km must be > 0 km, got {tc_radius_km!r}")
    try:
        return pd.date_range(start=start, periods=int(n_times), freq=freq)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"synthetic_run: start={start!r} / freq={freq!r} are not a valid time axis: {exc}") from exc


def _render(grid: _Grid, hours: np.ndarray, waves: _Waves, tcs: _Tracks,
            ars: _Tracks) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 16 channels (float32) and the labels (uint8), (time, lat, lon), in blocks of time steps."""
    n_times, nlat, nlon = hours.size, grid.lat.size, grid.lon.size
    data = {c: np.empty((n_times, nlat, nlon), np.float32) for c in CHANNELS}
    labels = np.zeros((n_times, nlat, nlon), np.uint8)
    block = max(1, _MAX_CELLS_PER_BLOCK // (nlat * nlon))
    for b0 in range(0, n_times, block):  # blocks of time steps, vectorized within a block
        tsel = np.arange(b0, min(b0 + block, n_times))
        fld = _background(grid, hours[tsel], waves)
        lab = np.zeros((tsel.size, nlat, nlon), np.uint8)
        _add_ars(grid, fld, lab, ars, tsel)
        _add_tcs(grid, fld, lab, tcs, tsel)
        for name, arr in _finish(fld, grid.lat).items():
            data[name][tsel] = arr
        labels[tsel] = lab
    return data, labels


def _as_dataset(times: pd.DatetimeIndex, grid: _Grid, data: dict[str, np.ndarray], labels: np.ndarray,
                attrs: dict[str, Any]) -> xr.Dataset:
    """The CF dataset of the run: channels with their attributes, LABELS, coordinates."""
    coords = {
        "time": ("time", times.values, {"standard_name": "time", "axis": "T"}),
        "lat": ("lat", grid.lat, {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude",
                                  "axis": "Y"}),
        "lon": ("lon", grid.lon, {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude",
                                  "axis": "X"}),
    }
    dims = ("time", "lat", "lon")
    data_vars: dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, Any]]] = {
        c: (dims, data[c], dict(CHANNEL_ATTRS[c])) for c in CHANNELS
    }
    data_vars[LABEL_VAR] = (dims, labels, label_attrs())
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
