"""Issue 18, items 4, 5, 7 and the netCDF3 file name of item 9: hostile inputs get a clear error or the
correct result."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from climviz.data.io import open_run, write_run
from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.errors import DataError


def _chunk_files(store, var):
    return sorted(p for p in (store / var).rglob("*") if p.is_file() and not p.name.startswith(("zarr.json", ".z")))


# ------------------------------------------------------------------ 4: Zarr store with a missing chunk
@pytest.mark.parametrize("var", [LABEL_VAR, "PSL"])
def test_zarr_missing_chunk_is_a_data_error_naming_store_variable_chunk(tiny_run, tmp_path, var):
    store = tmp_path / "run.zarr"
    write_run(tiny_run, store)
    chunks = _chunk_files(store, var)
    assert len(chunks) == tiny_run.sizes["time"]  # one chunk per step: the test deletes a real one
    gone = chunks[2]
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    gone.unlink()
    rel = gone.relative_to(store / var).as_posix()
    with pytest.raises(DataError, match=rf"run\.zarr: variable {var}: chunk '{var}/{rel}' .* is missing from the "
                                        r"Zarr store \(5 of 6 chunks present\)"):
        open_run(store)
    # nothing else in the store was touched
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == \
        {p: t for p, t in before.items() if p != gone}


def test_complete_zarr_store_still_opens(tiny_run, tmp_path):
    write_run(tiny_run, tmp_path / "ok.zarr")
    ds = open_run(tmp_path / "ok.zarr")
    assert int((ds[LABEL_VAR].values > 0).sum()) == int((tiny_run[LABEL_VAR].values > 0).sum()) > 0


# ------------------------------------------------------------------ 5: DeepCAM channel order
def _deepcam(path, one, order, with_attr):
    data = np.stack([one[c].values for c in order], axis=-1).astype(np.float32)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("climate/data", data=data)
        if with_attr:
            d.attrs["channels"] = np.array(list(order), dtype=h5py.string_dtype())


def test_deepcam_without_channels_attribute_needs_channels_from_the_user(tiny_run, tmp_path):
    one = tiny_run.isel(time=0)
    _deepcam(tmp_path / "a.h5", one, CHANNELS, with_attr=False)
    with pytest.raises(DataError, match=r"a\.h5: variable climate/data: no 'channels' attribute.*pass channels="):
        open_run(tmp_path / "a.h5")
    ds = open_run(tmp_path / "a.h5", channels=list(CHANNELS))
    for c in CHANNELS:
        np.testing.assert_array_equal(ds[c].values[0], one[c].values)


def test_deepcam_reversed_channels_are_caught_by_plausible_ranges(tiny_run, tmp_path):
    one = tiny_run.isel(time=0)
    rev = list(CHANNELS)[::-1]
    _deepcam(tmp_path / "rev.h5", one, rev, with_attr=False)  # the data are stored reversed
    with pytest.raises(DataError, match=r"rev\.h5: variable climate/data: values not plausible for the channel order "
                                        r"given by channels=.*U850 \(index 1\): found 1\.\d+e\+04"):
        open_run(tmp_path / "rev.h5", channels=list(CHANNELS))  # the user states the wrong order
    _deepcam(tmp_path / "lying.h5", one, CHANNELS, with_attr=False)
    with h5py.File(tmp_path / "lying.h5", "a") as f:  # an attribute that lies about the order
        f["climate/data"].attrs["channels"] = np.array(rev, dtype=h5py.string_dtype())
    with pytest.raises(DataError, match=r"lying\.h5: .*given by its 'channels' attribute.*PS \(index 9\)"):
        open_run(tmp_path / "lying.h5")
    # the right order, stated, opens
    ds = open_run(tmp_path / "rev.h5", channels=rev)
    np.testing.assert_array_equal(ds.TMQ.values[0], one.TMQ.values)


# ------------------------------------------------------------------ 7: a 2-D variable in a time series
@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT"])
def test_two_dimensional_variable_in_a_time_series_is_a_data_error(tiny_run, tmp_path, fmt):
    bad = tiny_run.copy()
    bad["PSL"] = tiny_run.PSL.isel(time=0, drop=True)  # (lat, lon) in a 6-step file
    path = tmp_path / "ts.nc"
    bad.to_netcdf(path, format=fmt, engine="netcdf4" if fmt == "NETCDF4" else "scipy")
    with pytest.raises(DataError, match=r"ts\.nc: variable PSL: expected dimensions \(time, lat, lon\), found "
                                        r"\('lat', 'lon'\).*6 time steps"):
        open_run(path)
    with pytest.raises(DataError, match=r"variable PSL: expected dimensions \(time, lat, lon\)"):
        open_run(bad)


# ------------------------------------------------------------------ 9: netCDF3 with a non-UTF-8 file name
def test_netcdf3_file_whose_name_is_not_utf8_opens(tiny_run, tmp_path):
    tiny_run.to_netcdf(tmp_path / "plain.nc", format="NETCDF3_64BIT", engine="scipy")
    raw = os.fsencode(tmp_path) + b"/run-\xff\xfe.nc"  # Latin-1 bytes: not valid UTF-8
    os.rename(os.fsencode(tmp_path / "plain.nc"), raw)
    name = os.fsdecode(raw)  # how Python spells it: with surrogate escapes
    with pytest.raises(UnicodeEncodeError):
        name.encode("utf-8")  # the case of the issue: the C library cannot be given this name
    ds = open_run(name)
    for c in CHANNELS:
        np.testing.assert_array_equal(ds[c].values, tiny_run[c].values)
    assert ds.attrs["source_files"] == [name]
    also = open_run(tmp_path)  # found by listing the directory too
    assert also.sizes["time"] == tiny_run.sizes["time"]
