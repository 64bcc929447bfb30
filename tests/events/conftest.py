"""Small hand-built grids and masks for the events tests."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr


def regular_grid(nlat: int, nlon: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres of a global regular grid: lat from south to north, lon in [0, 360)."""
    dlat = 180.0 / nlat
    lat = -90.0 + dlat * (np.arange(nlat) + 0.5)
    lon = np.arange(nlon) * (360.0 / nlon)
    return lat, lon


def as_dataarray(mask: np.ndarray, lat: np.ndarray, lon: np.ndarray, start: str = "2000-01-01",
                 freq: str = "3h") -> xr.DataArray:
    """Wrap a (time, lat, lon) mask as a DataArray with CF-like coordinates."""
    time = xr.date_range(start, periods=mask.shape[0], freq=freq, use_cftime=False)
    return xr.DataArray(mask.astype(np.uint8), dims=("time", "lat", "lon"),
                        coords={"time": time, "lat": lat, "lon": lon}, name="mask")


@pytest.fixture
def grid_18x36() -> tuple[np.ndarray, np.ndarray]:
    """A 10-degree global grid: 18 latitudes x 36 longitudes."""
    return regular_grid(18, 36)


@pytest.fixture
def random_masks() -> np.ndarray:
    """Random blobby class masks (time, lat, lon) of 0/1/2, made by thresholding smoothed noise."""
    from scipy import ndimage

    rng = np.random.default_rng(42)
    noise = rng.normal(size=(6, 40, 64))
    smooth = ndimage.gaussian_filter(noise, sigma=(0, 1.5, 1.5))
    mask = np.zeros(noise.shape, dtype=np.uint8)
    mask[smooth > 0.25] = 2
    mask[smooth < -0.3] = 1
    return mask
