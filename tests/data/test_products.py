"""ERA5-, CMIP6- and CESM-style files written here open to the same canonical dataset (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climviz.data.io import open_run
from climviz.errors import ConfigError, DataError

G0 = 9.80665
LEVELS_HPA = np.array([1000.0, 850.0, 500.0, 200.0])
# the level channels: (channel, level hPa)
AT_LEVEL = {"U850": 850.0, "V850": 850.0, "T200": 200.0, "T500": 500.0, "Z1000": 1000.0, "Z200": 200.0}


def _levels(truth, channels_at, fill_offset):
    """A (time, level, lat, lon) cube holding each channel at its level and decoys elsewhere."""
    first = truth[next(iter(channels_at.values()))].values
    cube = np.empty((first.shape[0], LEVELS_HPA.size, *first.shape[1:]), np.float32)
    for k in range(LEVELS_HPA.size):
        cube[:, k] = first + fill_offset * (k + 1)  # a decoy: wrong values at the other levels
    for ch in channels_at.values():
        cube[:, int(np.nonzero(LEVELS_HPA == AT_LEVEL[ch])[0][0])] = truth[ch].values
    return cube


def era5_like(truth) -> xr.Dataset:
    """ERA5 as the CDS writes netCDF: short names, latitude 90..-90, pressure_level (hPa), valid_time,
    geopotential z in m2 s-2, accumulated tp in m over the hour."""
    t = truth.isel(lat=slice(None, None, -1))
    dims3 = ("valid_time", "latitude", "longitude")
    dims4 = ("valid_time", "pressure_level", "latitude", "longitude")
    v = {
        "msl": (dims3, t.PSL.values, {"units": "Pa", "long_name": "Mean sea level pressure",
                                      "standard_name": "air_pressure_at_mean_sea_level"}),
        "tcwv": (dims3, t.TMQ.values, {"units": "kg m**-2",
                                       "long_name": "Total column vertically-integrated water vapour"}),
        "sp": (dims3, t.PS.values, {"units": "Pa", "standard_name": "surface_air_pressure"}),
        "skt": (dims3, t.TS.values, {"units": "K", "long_name": "Skin temperature"}),
        "t2m": (dims3, t.TREFHT.values, {"units": "K", "long_name": "2 metre temperature"}),
        "tp": (dims3, t.PRECT.values * 3600.0, {"units": "m", "long_name": "Total precipitation"}),
        "u": (dims4, _levels(t, {"u": "U850"}, 3.0), {"units": "m s**-1", "standard_name": "eastward_wind"}),
        "v": (dims4, _levels(t, {"v": "V850"}, 3.0), {"units": "m s**-1", "standard_name": "northward_wind"}),
        "t": (dims4, _levels(t, {"a": "T200", "b": "T500"}, 7.0), {"units": "K", "standard_name": "air_temperature"}),
        "z": (dims4, _levels(t, {"a": "Z1000", "b": "Z200"}, 50.0) * G0,
              {"units": "m**2 s**-2", "standard_name": "geopotential"}),
    }
    coords = {"valid_time": t.time.values, "pressure_level": ("pressure_level", LEVELS_HPA, {"units": "hPa"}),
              "latitude": ("latitude", t.lat.values, {"units": "degrees_north"}),
              "longitude": ("longitude", t.lon.values, {"units": "degrees_east"})}
    return xr.Dataset(v, coords=coords)


def cmip6_like(truth) -> xr.Dataset:
    """CMIP6 CMOR names, plev in Pa, pr as a mass flux, temperatures of tas in degC to make it harder."""
    dims3 = ("time", "lat", "lon")
    dims4 = ("time", "plev", "lat", "lon")
    v = {
        "psl": (dims3, truth.PSL.values, {"units": "Pa", "standard_name": "air_pressure_at_mean_sea_level"}),
        "prw": (dims3, truth.TMQ.values, {"units": "kg m-2",
                                          "standard_name": "atmosphere_mass_content_of_water_vapor"}),
        "ps": (dims3, truth.PS.values / 100.0, {"units": "hPa", "standard_name": "surface_air_pressure"}),
        "ts": (dims3, truth.TS.values, {"units": "K", "standard_name": "surface_temperature"}),
        "tas": (dims3, truth.TREFHT.values - 273.15, {"units": "degC", "standard_name": "air_temperature"}),
        "huss": (dims3, truth.QREFHT.values, {"units": "1", "standard_name": "specific_humidity"}),
        "pr": (dims3, truth.PRECT.values * 1000.0, {"units": "kg m-2 s-1", "standard_name": "precipitation_flux"}),
        "ua": (dims4, _levels(truth, {"u": "U850"}, 3.0), {"units": "m s-1", "standard_name": "eastward_wind"}),
        "va": (dims4, _levels(truth, {"v": "V850"}, 3.0), {"units": "m s-1",
                                                          "standard_name": "northward_wind"}),
        "ta": (dims4, _levels(truth, {"a": "T200", "b": "T500"}, 7.0),
               {"units": "K", "standard_name": "air_temperature"}),
        "zg": (dims4, _levels(truth, {"a": "Z1000", "b": "Z200"}, 50.0),
               {"units": "m", "standard_name": "geopotential_height"}),
    }
    coords = {"time": truth.time.values,
              "plev": ("plev", LEVELS_HPA * 100.0, {"units": "Pa", "standard_name": "air_pressure", "axis": "Z"}),
              "lat": truth.lat.values, "lon": truth.lon.values}
    return xr.Dataset(v, coords=coords)


def cesm_like(truth) -> xr.Dataset:
    """CESM/CAM h-file: ClimateNet names for 2-D fields, a 3-D U on hybrid levels that must not be used."""
    keep = ["TMQ", "PSL", "PS", "U850", "V850", "T200", "T500", "Z200", "UBOT", "VBOT", "QREFHT", "PRECT", "TS",
            "TREFHT", "ZBOT"]
    ds = truth[keep].copy()
    ds["U"] = (("time", "lev", "lat", "lon"), np.repeat(truth.U850.values[:, None] + 99.0, 3, axis=1),
               {"units": "m/s", "long_name": "Zonal wind"})
    ds = ds.assign_coords(lev=("lev", [100.0, 500.0, 992.0],
                               {"standard_name": "atmosphere_hybrid_sigma_pressure_coordinate", "units": "level"}))
    return ds


ERA5_CHANNELS = ["TMQ", "U850", "V850", "PS", "PSL", "T200", "T500", "PRECT", "TS", "TREFHT", "Z1000", "Z200"]
CMIP6_CHANNELS = ["TMQ", "U850", "V850", "QREFHT", "PS", "PSL", "T200", "T500", "PRECT", "TS", "TREFHT", "Z1000",
                  "Z200"]
CESM_CHANNELS = ["TMQ", "U850", "V850", "UBOT", "VBOT", "QREFHT", "PS", "PSL", "T200", "T500", "PRECT", "TS",
                 "TREFHT", "Z200", "ZBOT"]


def _same(opened, truth, channels):
    assert [c for c in opened.data_vars] == channels
    for c in channels:
        np.testing.assert_allclose(opened[c].values, truth[c].values, rtol=3e-6,
                                   atol=2e-6 * float(np.abs(truth[c].values).max()), err_msg=c)
    np.testing.assert_allclose(opened.lat.values, truth.lat.values)
    np.testing.assert_array_equal(opened.time.values, truth.time.values.astype("datetime64[ns]"))


@pytest.mark.parametrize("make,channels,fmt", [
    (era5_like, ERA5_CHANNELS, "nc"), (cmip6_like, CMIP6_CHANNELS, "nc"), (cesm_like, CESM_CHANNELS, "nc"),
    (cmip6_like, CMIP6_CHANNELS, "zarr"),
], ids=["ERA5", "CMIP6", "CESM", "CMIP6-zarr"])
def test_each_product_opens_to_the_canonical_dataset(tiny_run, tmp_path, make, channels, fmt):
    truth = tiny_run
    product = make(truth)
    path = tmp_path / f"product.{fmt}"
    if fmt == "zarr":
        product.to_zarr(path, consolidated=False)
    else:
        product.to_netcdf(path)
    for src in (path, product):  # the file and the same data in memory
        opened = open_run(src, channels="available")
        _same(opened, truth, channels)
        assert "channel_sources" in opened.attrs
    opened = open_run(path, channels="available")
    if make is era5_like:
        src = opened.Z200.attrs["climviz_source"]
        assert "'z' at 200 hPa" in src and "CF standard_name 'geopotential'" in src and "m**2 s**-2" in src
        assert "divided by 3600 s" in opened.PRECT.attrs["climviz_source"]
        assert "ERA5 name 'tcwv'" in opened.TMQ.attrs["climviz_source"]
    if make is cmip6_like:
        assert "'ua' at 850 hPa (coordinate 'plev')" in opened.U850.attrs["climviz_source"]
        assert opened.TREFHT.attrs["units_converted_from"] == "degC"


def test_products_agree_with_each_other(tiny_run, tmp_path):
    era5 = open_run(era5_like(tiny_run), channels="available")
    cmip6 = open_run(cmip6_like(tiny_run), channels="available")
    for c in ERA5_CHANNELS:
        np.testing.assert_allclose(era5[c].values, cmip6[c].values, rtol=3e-6, atol=1e-9, err_msg=c)


def test_required_channels_from_a_product_and_missing_ones_named(tiny_run):
    ds = open_run(era5_like(tiny_run), channels=["PSL", "U850", "V850", "TMQ"])
    assert list(ds.data_vars) == ["PSL", "U850", "V850", "TMQ"]
    with pytest.raises(DataError, match=r"missing channel\(s\) \['ZBOT', 'QREFHT'\].*channel_map"):
        open_run(era5_like(tiny_run), channels=["PSL", "ZBOT", "QREFHT"])


def test_channel_map_names_user_variables(tiny_run):
    mine = xr.Dataset({"slp": (("time", "lat", "lon"), tiny_run.PSL.values / 100.0, {"units": "hPa"}),
                       "uwnd": (("time", "lat", "lon"), tiny_run.U850.values, {"units": "m/s"})},
                      coords={"time": tiny_run.time.values, "lat": tiny_run.lat.values, "lon": tiny_run.lon.values})
    ds = open_run(mine, channels=["PSL", "U850"], channel_map={"PSL": "slp", "U850": "uwnd"})
    np.testing.assert_allclose(ds.PSL.values, tiny_run.PSL.values, rtol=1e-6)
    assert "variable 'slp', found by channel_map" in ds.PSL.attrs["climviz_source"]
    with pytest.raises(ConfigError, match=r"channel_map: .*variable 'nope' \(for PSL\) is not in the file"):
        open_run(mine, channels=["PSL"], channel_map={"PSL": "nope"})
    with pytest.raises(ConfigError, match=r"channel_map: unknown channel 'SLP'"):
        open_run(mine, channels="available", channel_map={"SLP": "slp"})


def test_a_level_that_is_not_in_the_file_is_not_invented(tiny_run):
    era5 = era5_like(tiny_run).sel(pressure_level=[1000.0, 500.0])
    ds = open_run(era5, channels="available")
    assert "U850" not in ds and "Z200" not in ds and "T500" in ds and "Z1000" in ds


def test_channels_string_other_than_available_is_a_config_error(tiny_run):
    for bad in ("PSL", "all", "availabel"):
        with pytest.raises(ConfigError, match=r"channels must be a list of channel names or 'available', found"):
            open_run(tiny_run, channels=bad)
    assert list(open_run(tiny_run, channels="available").data_vars)[:2] == ["TMQ", "U850"]


def test_available_on_a_climviz_subset_in_memory(tiny_run):
    sub = tiny_run[["PSL", "U850", "V850"]]
    ds = open_run(sub, channels="available")
    assert list(ds.data_vars) == ["U850", "V850", "PSL"]  # canonical order


def test_era5_vorticity_is_vort850(tiny_run):
    era5 = era5_like(tiny_run)
    vo = np.full(era5.u.shape, 3e-5, np.float32)
    vo[:, 1] = 7e-5  # 850 hPa
    era5["vo"] = (era5.u.dims, vo, {"units": "s**-1", "standard_name": "atmosphere_relative_vorticity"})
    ds = open_run(era5, channels="available")
    np.testing.assert_allclose(ds.VORT850.values, 7e-5)
    assert ds.VORT850.attrs["units"] == "s-1"


def test_a_product_split_over_files_opens_as_one_run(tiny_run, tmp_path):
    era5 = era5_like(tiny_run)
    era5.isel(valid_time=[0, 1, 2]).to_netcdf(tmp_path / "era5_a.nc")
    era5.isel(valid_time=[3, 4, 5]).to_netcdf(tmp_path / "era5_b.nc")
    _same(open_run(tmp_path, channels="available"), tiny_run, ERA5_CHANNELS)
    assert list(open_run([tmp_path / "era5_b.nc", tmp_path / "era5_a.nc"], channels=["PSL"]).data_vars) == ["PSL"]
