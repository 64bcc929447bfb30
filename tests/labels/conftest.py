"""Constructed fields with known answers for the heuristic detectors.

Everything is built analytically here, independent of the detectors: a
vortex has a Gaussian pressure deficit, a Rankine-like tangential wind
(counter-clockwise = cyclonic in the northern hemisphere) and an optional
Gaussian warm anomaly aloft; a moisture filament is a band of high TMQ and a
uniform wind along it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

R_KM = 6371.0


def grid(dlat: float = 1.0, dlon: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Global cell-centre grid: latitude ascending, longitude in [0, 360)."""
    lat = np.arange(-90 + dlat / 2, 90, dlat)
    lon = np.arange(0, 360, dlon)
    return lat, lon


def local_xy_km(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> tuple[np.ndarray, np.ndarray]:
    """East/north offsets (km) of every cell from (lat0, lon0) on the local tangent plane."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    dlon = (lo - lon0 + 180.0) % 360.0 - 180.0
    x = R_KM * np.deg2rad(dlon) * np.cos(np.deg2rad(la))
    y = R_KM * np.deg2rad(la - lat0)
    return x, y


def vortex_fields(
    lat: np.ndarray,
    lon: np.ndarray,
    lat0: float,
    lon0: float,
    *,
    dp_pa: float = 3000.0,
    r_psl_km: float = 300.0,
    vmax_ms: float = 35.0,
    rmw_km: float = 80.0,
    rotation: int = 1,
    warm_k: float = 4.0,
    r_warm_km: float = 250.0,
) -> dict[str, np.ndarray]:
    """One vortex: rotation +1 is counter-clockwise (cyclonic in the north), -1 clockwise."""
    x, y = local_xy_km(lat, lon, lat0, lon0)
    r = np.hypot(x, y)
    psl = 101325.0 - dp_pa * np.exp(-((r / r_psl_km) ** 2))
    vt = np.where(r < rmw_km, vmax_ms * r / rmw_km, vmax_ms * (rmw_km / np.maximum(r, 1e-9)) ** 0.6)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = np.where(r > 0, -y / r, 0.0)
        uy = np.where(r > 0, x / r, 0.0)
    u = rotation * vt * ux
    v = rotation * vt * uy
    warm = warm_k * np.exp(-((r / r_warm_km) ** 2))
    la = np.broadcast_to(lat[:, None], r.shape)
    t200 = 220.0 + warm
    t500 = 260.0 - 0.3 * np.abs(la) + warm  # a meridional gradient that the annulus mean must absorb
    return {"PSL": psl, "U850": u, "V850": v, "T200": t200, "T500": t500}


def as_run(fields: list[dict[str, np.ndarray]], lat: np.ndarray, lon: np.ndarray,
           start: str = "2000-01-01", freq: str = "6h") -> xr.Dataset:
    """Stack per-time-step dicts of 2-D fields into a (time, lat, lon) float32 run."""
    time = pd.date_range(start, periods=len(fields), freq=freq)
    names = fields[0].keys()
    return xr.Dataset(
        {n: (("time", "lat", "lon"), np.stack([f[n] for f in fields]).astype(np.float32)) for n in names},
        coords={"time": time, "lat": lat, "lon": lon},
    )


@pytest.fixture
def coarse_grid() -> tuple[np.ndarray, np.ndarray]:
    return grid(1.0, 1.25)


def filament_fields(
    lat: np.ndarray,
    lon: np.ndarray,
    lat0: float,
    lon0: float,
    *,
    length_km: float,
    width_km: float,
    azimuth_deg: float = 0.0,
    wind: tuple[float, float] = (0.0, 15.0),
    tmq_in: float = 40.0,
    tmq_out: float = 5.0,
) -> dict[str, np.ndarray]:
    """A rectangle of moist air (TMQ kg m-2) on the local tangent plane, under a uniform wind.

    ``azimuth_deg`` is the direction of the long side, clockwise from north. IVT
    estimated as TMQ * |V| is 40 * 15 = 600 kg m-1 s-1 inside, 75 outside.
    """
    x, y = local_xy_km(lat, lon, lat0, lon0)
    az = np.deg2rad(azimuth_deg)
    along = x * np.sin(az) + y * np.cos(az)
    cross = x * np.cos(az) - y * np.sin(az)
    inside = (np.abs(along) <= length_km / 2) & (np.abs(cross) <= width_km / 2)
    return {
        "TMQ": np.where(inside, tmq_in, tmq_out),
        "U850": np.full(inside.shape, wind[0]),
        "V850": np.full(inside.shape, wind[1]),
    }


def blob_fields(lat, lon, lat0, lon0, *, diameter_km, wind=(0.0, 15.0)) -> dict[str, np.ndarray]:
    """A round moist blob of the given diameter (km) under a uniform wind."""
    x, y = local_xy_km(lat, lon, lat0, lon0)
    inside = np.hypot(x, y) <= diameter_km / 2
    return {
        "TMQ": np.where(inside, 40.0, 5.0),
        "U850": np.full(inside.shape, wind[0]),
        "V850": np.full(inside.shape, wind[1]),
    }


@pytest.fixture(scope="package")
def synthetic_sample():
    """A 69-hour, 3-hourly synthetic run at 96 x 144 with its constructed features (seed 0)."""
    from climviz.data import synthetic_run

    return synthetic_run(24, shape=(96, 144), seed=0, n_tc=3, n_ar=2, return_features=True)
