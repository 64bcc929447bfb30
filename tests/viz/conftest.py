"""Fixtures for the viz tests: a tiny hand-built run, an offline guard, a headless Chromium.

The run is small (3 steps, 24 x 48 cells of 7.5 degrees) and analytic, so every
number a test checks can be worked out by hand:

* ``TMQ = 40 exp(-(lat/30)^2) + lon/36 + 10 t`` (kg m-2): rises eastward, so the
  seam (lon 0/360) is a visible jump and each step differs from the last.
* ``LABELS``: a 2 x 3-cell TC that moves 1 cell east per step, and a 2 x 4-cell
  AR that straddles the 0/360 seam (columns 46, 47, 0, 1).
"""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest
import xarray as xr

NLAT, NLON, NT = 24, 48, 3
DLAT, DLON = 180.0 / NLAT, 360.0 / NLON
TC_ROWS, TC_COLS = slice(14, 16), slice(10, 13)  # 2 x 3 cells, + t columns at step t
AR_ROWS, AR_COLS = slice(17, 19), [46, 47, 0, 1]  # 2 x 4 cells across the seam

from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: F401,E402  (the one session browser lives there)


def make_run(nt: int = NT, nlat: int = NLAT, nlon: int = NLON) -> xr.Dataset:
    """The analytic run described in the module docstring."""
    lat = -90.0 + (180.0 / nlat) * (np.arange(nlat) + 0.5)
    lon = (360.0 / nlon) * np.arange(nlon)
    time = pd.date_range("2000-01-01", periods=nt, freq="3h")
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    tmq = np.stack([40.0 * np.exp(-(la / 30.0) ** 2) + lo / 36.0 + 10.0 * t for t in range(nt)]).astype(np.float32)
    labels = np.zeros((nt, nlat, nlon), np.uint8)
    for t in range(nt):
        labels[t, TC_ROWS, TC_COLS.start + t:TC_COLS.stop + t] = 1
        labels[t, AR_ROWS, AR_COLS] = 2
    return xr.Dataset(
        {"TMQ": (("time", "lat", "lon"), tmq, {"units": "kg m-2", "long_name": "total precipitable water"}),
         "PSL": (("time", "lat", "lon"), (101325.0 - 10.0 * la[None] + 0 * tmq).astype(np.float32), {"units": "Pa"}),
         "LABELS": (("time", "lat", "lon"), labels, {"flag_values": [0, 1, 2]})},
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
    )


@pytest.fixture
def run() -> xr.Dataset:
    return make_run()


@pytest.fixture(scope="session")
def bokeh():
    """HoloViews with the Bokeh backend loaded (once per session)."""
    import holoviews as hv

    hv.extension("bokeh")
    return hv


@pytest.fixture(scope="session", autouse=True)
def offline_cartopy(tmp_path_factory):
    """Point cartopy at empty data folders and make any download attempt an error.

    Every viz test runs under this: if some code path called cartopy's Natural
    Earth downloader, the DownloadWarning would fail the test, and
    ``test_no_cartopy_downloads`` checks that the data folder is still empty.
    """
    import warnings

    import cartopy
    from cartopy.io import DownloadWarning

    data_dir = tmp_path_factory.mktemp("cartopy_data")
    old = {k: cartopy.config.get(k) for k in ("data_dir", "pre_existing_data_dir")}
    cartopy.config["data_dir"] = str(data_dir)
    cartopy.config["pre_existing_data_dir"] = str(data_dir)
    warnings.filterwarnings("error", category=DownloadWarning)
    yield data_dir
    cartopy.config.update(old)


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Refuse socket connections to anything but this machine (a guard, not a stand-in)."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("/"):
            raise OSError(f"viz tests must not use the network (tried to connect to {address!r})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


