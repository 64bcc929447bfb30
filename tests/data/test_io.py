"""open_run / validate_run / write_run on real netCDF, HDF5 and Zarr files in tmp_path."""

from __future__ import annotations

import os
import time

import dask.array as da
import h5py
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

from climviz.data.io import open_run, validate_run, write_run
from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.data.synthetic import synthetic_run
from climviz.errors import DataError


def assert_same_run(a: xr.Dataset, b: xr.Dataset) -> None:
    assert list(a.data_vars) == list(b.data_vars)
    np.testing.assert_allclose(a.lat.values, b.lat.values, atol=1e-6)
    np.testing.assert_allclose(a.lon.values, b.lon.values, atol=1e-6)
    np.testing.assert_array_equal(a.time.values, b.time.values)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)


def write_plain_netcdf(ds: xr.Dataset, path) -> None:
    """Write with xarray alone (not write_run): a 'foreign' ClimateNet-like file."""
    ds.to_netcdf(path, engine="netcdf4")


def write_deepcam_by_hand(path, data: np.ndarray, labels: np.ndarray | None = None, *,
                          channels=CHANNELS, **attrs) -> None:
    """A DeepCAM file made with h5py alone: climate/data (lat, lon, C) with a ``channels`` attribute
    (None: without one), climate/labels_0."""
    with h5py.File(path, "w") as f:
        d = f.create_dataset("climate/data", data=data)
        if channels is not None:
            d.attrs["channels"] = np.array(list(channels), dtype=h5py.string_dtype())
        if labels is not None:
            f.create_dataset("climate/labels_0", data=labels)
        for k, v in attrs.items():
            f.attrs[k] = v


# ---------------------------------------------------------------- formats and layouts
def test_three_formats_open_to_the_same_dataset(tiny_run, tmp_path):
    write_run(tiny_run, tmp_path / "run.nc")
    write_run(tiny_run, tmp_path / "run.zarr")
    write_run(tiny_run, tmp_path / "deepcam", format="deepcam")
    from_nc = open_run(tmp_path / "run.nc")
    from_zarr = open_run(tmp_path / "run.zarr")
    from_h5 = open_run(tmp_path / "deepcam")
    for opened in (from_nc, from_zarr, from_h5):
        assert opened.TMQ.chunks is not None  # dask-backed
        assert list(opened.data_vars) == [*CHANNELS, LABEL_VAR]
        assert opened.TMQ.attrs["units"] == "kg m-2"
        assert_same_run(opened, tiny_run)


def test_deepcam_file_written_by_hand(tiny_run, tmp_path):
    one = tiny_run.isel(time=2)
    data = np.stack([one[c].values for c in CHANNELS], axis=-1).astype(np.float32)
    path = tmp_path / "data-2106-01-02-03-1.h5"
    write_deepcam_by_hand(path, data, one[LABEL_VAR].values.astype(np.int32))
    ds = open_run(path)
    assert ds.TMQ.shape == (1, 16, 24)
    # time from the file name, grid = regular global cell centres
    assert ds.time.values[0] == np.datetime64("2106-01-02T03:00")
    np.testing.assert_allclose(ds.lat.values, -90 + (np.arange(16) + 0.5) * 180 / 16)
    np.testing.assert_allclose(ds.lon.values, np.arange(24) * 15.0)
    for c in CHANNELS:
        np.testing.assert_array_equal(ds[c].values[0], one[c].values)
    np.testing.assert_array_equal(ds[LABEL_VAR].values[0], one[LABEL_VAR].values)


def test_deepcam_without_time_is_numbered_in_file_order(tiny_run, tmp_path):
    for i, name in enumerate(("b.h5", "a.h5", "c.h5")):
        one = tiny_run.isel(time=i)
        write_deepcam_by_hand(tmp_path / name, np.stack([one[c].values for c in CHANNELS], -1).astype(np.float32))
    ds = open_run(tmp_path)
    np.testing.assert_array_equal(ds.time.values, [0, 1, 2])
    assert [os.path.basename(f) for f in ds.attrs["source_files"]] == ["a.h5", "b.h5", "c.h5"]
    assert LABEL_VAR not in ds


def test_file_list_glob_and_directory(tiny_run, tmp_path):
    paths = []
    for i in range(tiny_run.sizes["time"]):  # one step per file, like ClimateNet
        p = tmp_path / f"data-{i:02d}.nc"
        write_plain_netcdf(tiny_run.isel(time=[i]), p)
        paths.append(p)
    for arg in (paths, [str(p) for p in reversed(paths)], str(tmp_path / "data-*.nc"), tmp_path):
        assert_same_run(open_run(arg), tiny_run)


def test_latitude_descending_and_longitude_minus180_are_normalized(tiny_run, tmp_path):
    flipped = tiny_run.isel(lat=slice(None, None, -1))
    west = flipped.assign_coords(lon=((flipped.lon + 180) % 360) - 180).sortby("lon")
    assert west.lon.values[0] < 0 and west.lat.values[0] > 0
    write_plain_netcdf(west, tmp_path / "odd.nc")
    assert_same_run(open_run(tmp_path / "odd.nc"), tiny_run)


def test_dimension_order_and_names_are_normalized(tiny_run, tmp_path):
    odd = tiny_run.transpose("time", "lon", "lat").rename(lat="latitude", lon="longitude")
    write_plain_netcdf(odd, tmp_path / "odd.nc")
    ds = open_run(tmp_path / "odd.nc")
    assert ds.TMQ.dims == ("time", "lat", "lon")
    assert_same_run(ds, tiny_run)


def test_single_step_file_without_time_dimension(tiny_run, tmp_path):
    step = tiny_run.isel(time=0).drop_vars("time")
    write_plain_netcdf(step, tmp_path / "data-1996-06-09-12-1_0.nc")
    ds = open_run(tmp_path / "data-1996-06-09-12-1_0.nc")
    assert ds.sizes["time"] == 1 and ds.time.values[0] == np.datetime64("1996-06-09T12:00")
    np.testing.assert_array_equal(ds.PSL.values[0], tiny_run.PSL.values[0])


def test_dataset_input_is_normalized_too(tiny_run):
    flipped = tiny_run.isel(lat=slice(None, None, -1))
    assert_same_run(open_run(flipped), tiny_run)


def test_channel_subset_and_order(tiny_run, tmp_path):
    write_run(tiny_run, tmp_path / "r.nc")
    ds = open_run(tmp_path / "r.nc", channels=["PSL", "TMQ"])
    assert list(ds.data_vars) == ["PSL", "TMQ", LABEL_VAR]


def test_many_files_open_lazily_without_reading_data(tmp_path):
    import netCDF4

    small = synthetic_run(200, shape=(8, 12), seed=0, n_tc=0, n_ar=0)
    hours = (small.time.values - small.time.values[0]) / np.timedelta64(1, "h")
    for i in range(200):  # ClimateNet-like: one step per file, written with netCDF4 itself
        with netCDF4.Dataset(tmp_path / f"step-{i:04d}.nc", "w") as nc:
            nc.createDimension("time", None)
            nc.createDimension("lat", 8)
            nc.createDimension("lon", 12)
            nc.createVariable("lat", "f8", ("lat",))[:] = small.lat.values
            nc.createVariable("lon", "f8", ("lon",))[:] = small.lon.values
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "hours since 2000-01-01 00:00:00"
            t[:] = hours[i : i + 1]
            for c in CHANNELS:
                nc.createVariable(c, "f4", ("time", "lat", "lon"))[:] = small[c].values[i : i + 1]

    class Count(Callback):
        n = 0

        def _pretask(self, key, dsk, state):
            Count.n += 1

    t0 = time.perf_counter()
    with Count():
        ds = open_run(tmp_path)
    elapsed = time.perf_counter() - t0
    assert Count.n == 0  # no dask task (no data read) while opening
    assert ds.sizes["time"] == 200
    assert all(isinstance(ds[v].data, da.Array) for v in ds.data_vars)
    assert ds.TMQ.data.numblocks[0] == 200
    assert elapsed < 60  # generous: 200 file opens, metadata only
    # reading one step reads one file's chunk
    with Count():
        one = ds.TMQ.isel(time=123).values
    np.testing.assert_array_equal(one, small.TMQ.values[123])
    assert Count.n < 20


# ---------------------------------------------------------------- writing
def test_write_refuses_to_overwrite_unless_asked(tiny_run, tmp_path):
    p = write_run(tiny_run, tmp_path / "r.nc")
    with pytest.raises(FileExistsError):
        write_run(tiny_run, p)
    write_run(tiny_run.isel(time=[0]), p, overwrite=True)
    assert open_run(p).sizes["time"] == 1


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_interrupted_write_leaves_the_old_file_intact(tiny_run, tmp_path, suffix):
    path = write_run(tiny_run, tmp_path / f"r{suffix}")
    before = open_run(path).load()

    def boom(block):
        raise RuntimeError("disk went away")

    broken = tiny_run.copy()
    failing = da.from_array(tiny_run.TMQ.values, chunks=(1, -1, -1)).map_blocks(boom, dtype=np.float32)
    broken["TMQ"] = (("time", "lat", "lon"), failing)
    with pytest.raises(RuntimeError, match="disk went away"):
        write_run(broken, path, overwrite=True)
    assert_same_run(open_run(path), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"r{suffix}"]  # no temporary left


def test_deepcam_file_holds_one_step(tiny_run, tmp_path):
    with pytest.raises(DataError, match="one time step per file"):
        write_run(tiny_run, tmp_path / "x.h5")
    write_run(tiny_run.isel(time=[3]), tmp_path / "x.h5")
    with h5py.File(tmp_path / "x.h5") as f:
        assert f["climate/data"].shape == (16, 24, 16) and f["climate/data"].dtype == np.float32
        assert f["climate/labels_0"].shape == (16, 24)
        np.testing.assert_array_equal(f["climate/data"][..., CHANNELS.index("PSL")], tiny_run.PSL.values[3])


# ---------------------------------------------------------------- bad input -> DataError
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.nc: file not found"):
        open_run(tmp_path / "nope.nc")
    with pytest.raises(DataError, match="glob pattern matches no files"):
        open_run(str(tmp_path / "*.nc"))
    with pytest.raises(DataError, match="directory holds no run files"):
        open_run(tmp_path)


def test_not_a_netcdf_file(tmp_path):
    p = tmp_path / "notes.nc"
    p.write_text("these are my notes, not a climate run\n")
    with pytest.raises(DataError, match=r"notes\.nc: not a netCDF, HDF5 or Zarr file"):
        open_run(p)
    d = tmp_path / "folder.zarr"
    (d / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="not a Zarr store"):
        open_run(d)


@pytest.mark.parametrize("suffix", [".nc", ".h5"])
def test_truncated_file(tiny_run, tmp_path, suffix):
    p = write_run(tiny_run.isel(time=[0]), tmp_path / f"r{suffix}")
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=rf"r\{suffix}.*(truncated or corrupt)"):
        open_run(p).load()


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.nc"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"bad\.nc.*truncated or corrupt"):
        open_run(p)


def test_missing_channel_lists_what_is_there(tiny_run, tmp_path):
    write_plain_netcdf(tiny_run.drop_vars(["TMQ", "Z200"]), tmp_path / "r.nc")
    with pytest.raises(DataError, match=r"r\.nc: missing channel\(s\) \['TMQ', 'Z200'\].*found variables \['U850'"):
        open_run(tmp_path / "r.nc")


def test_wrong_rank(tiny_run, tmp_path):
    bad = tiny_run.copy()
    bad["T500"] = bad["T500"].expand_dims(lev=[500.0], axis=1)
    write_plain_netcdf(bad, tmp_path / "r.nc")
    with pytest.raises(DataError, match=r"r\.nc: variable T500: expected dimensions \(time, lat, lon\), found "
                                        r"\('time', 'lev', 'lat', 'lon'\)"):
        open_run(tmp_path / "r.nc")


def test_wrong_grid(tiny_run, tmp_path):
    write_run(tiny_run, tmp_path / "r.nc")
    with pytest.raises(DataError, match=r"expected grid \(lat, lon\) = \(768, 1152\), found \(16, 24\)"):
        open_run(tmp_path / "r.nc", expect_grid=(768, 1152))
    write_deepcam_by_hand(tmp_path / "dc.h5", np.zeros((16, 24, 15), np.float32))
    with pytest.raises(DataError, match=r"dc\.h5: variable climate/data: expected 16 channels.*\(16, 24, 15\)"):
        open_run(tmp_path / "dc.h5")
    write_deepcam_by_hand(tmp_path / "dc2.h5", np.zeros((16, 24, 16), np.float32), np.zeros((16, 20), np.uint8))
    with pytest.raises(DataError, match=r"dc2\.h5: variable climate/labels_0: expected shape \(16, 24\)"):
        open_run(tmp_path / "dc2.h5")


def test_grids_differ_between_files(tmp_path):
    write_run(synthetic_run(1, shape=(16, 24), start="2000-01-01"), tmp_path / "a.nc")
    write_run(synthetic_run(1, shape=(18, 24), start="2000-01-02"), tmp_path / "b.nc")
    with pytest.raises(DataError, match=r"b\.nc: grid differs between files: expected \(lat, lon\) = \(16, 24\) "
                                        r"as in .*a\.nc, found \(18, 24\)"):
        open_run(tmp_path)


def test_duplicate_times_between_files(tiny_run, tmp_path):
    write_run(tiny_run.isel(time=[0, 1, 2]), tmp_path / "a.nc")
    write_run(tiny_run.isel(time=[2, 3]), tmp_path / "b.nc")
    with pytest.raises(DataError, match=r"b\.nc: variable time: .*duplicate/overlapping time 2000-01-01T06"):
        open_run(tmp_path)


def test_unsorted_or_duplicate_times_within_a_file(tiny_run, tmp_path):
    write_plain_netcdf(tiny_run.isel(time=[0, 2, 1]), tmp_path / "u.nc")
    with pytest.raises(DataError, match=r"u\.nc: variable time: expected strictly increasing times, found times not"):
        open_run(tmp_path / "u.nc")
    write_plain_netcdf(tiny_run.isel(time=[0, 1, 1]), tmp_path / "d.nc")
    with pytest.raises(DataError, match=r"d\.nc: .*found duplicate time 2000-01-01T03"):
        open_run(tmp_path / "d.nc")


def test_files_given_out_of_order_are_sorted_by_time(tiny_run, tmp_path):
    write_run(tiny_run.isel(time=[3, 4, 5]), tmp_path / "a.nc")
    write_run(tiny_run.isel(time=[0, 1, 2]), tmp_path / "b.nc")
    assert_same_run(open_run(tmp_path), tiny_run)


def test_labels_outside_the_classes(tiny_run, tmp_path):
    bad = tiny_run.copy(deep=True)
    bad[LABEL_VAR].values[4, 3, 5] = 7
    write_plain_netcdf(bad, tmp_path / "r.nc")
    ds = open_run(tmp_path / "r.nc")  # opening reads no data ...
    np.testing.assert_array_equal(ds.TMQ.values, tiny_run.TMQ.values)
    with pytest.raises(DataError, match=r"r\.nc: variable LABELS: expected values in \{0, 1, 2\}, found \[7\] "
                                        r"\(1 cells\) at time index 4"):
        _ = ds[LABEL_VAR].values  # ... the check runs when labels are read
    with pytest.raises(DataError, match="LABELS"):
        validate_run(ds)
    with pytest.raises(DataError, match="LABELS"):
        open_run(tmp_path / "r.nc", check_values="eager")


def test_nan_and_inf_raise_by_default_and_can_be_masked(tiny_run, tmp_path):
    bad = tiny_run.copy(deep=True)
    bad["PRECT"].values[2, 1, 1] = np.nan
    bad["PRECT"].values[2, 5, 7] = np.inf
    paths = [tmp_path / "a.nc", tmp_path / "b.nc"]
    write_plain_netcdf(bad.isel(time=[0, 1]), paths[0])
    write_plain_netcdf(bad.isel(time=[2, 3, 4, 5]), paths[1])
    ds = open_run(paths)
    with pytest.raises(DataError, match=r"b\.nc: variable PRECT: expected finite values, found 2 NaN/inf at time "
                                        r"index 2 \(pass nan_policy='mask'"):
        _ = ds.PRECT.values
    with pytest.raises(DataError, match="PRECT"):
        validate_run(paths)
    masked = open_run(paths, nan_policy="mask")
    validate_run(masked)  # masked values are allowed
    prect = masked.PRECT.values
    assert np.isnan(prect[2, 1, 1]) and np.isnan(prect[2, 5, 7])
    assert np.isfinite(prect).sum() == prect.size - 2


def test_bad_options(tiny_run):
    with pytest.raises(DataError, match="nan_policy"):
        open_run(tiny_run, nan_policy="ignore")
    with pytest.raises(DataError, match="suffix"):
        write_run(tiny_run, "run.csv")


def test_read_step_direct_path_matches_dask(tiny_run, tmp_path):
    from climviz.data.io import read_step

    flipped = tiny_run.isel(lat=slice(None, None, -1))
    west = flipped.assign_coords(lon=((flipped.lon + 180) % 360) - 180).sortby("lon")
    write_plain_netcdf(west.isel(time=[0, 1, 2]), tmp_path / "odd.nc")  # flipped + rolled on read
    write_run(tiny_run.isel(time=[3, 4, 5]), tmp_path / "plain.nc")  # read_direct path
    ds = open_run(tmp_path)
    names = ["PSL", "TMQ", "U850", LABEL_VAR]
    for t in range(6):
        x, y = read_step(ds, t, names)
        np.testing.assert_array_equal(x, np.stack([tiny_run[c].values[t] for c in names[:3]]))
        np.testing.assert_array_equal(y, tiny_run[LABEL_VAR].values[t])
    # normalization applied on the fly: (x - offset) * scale
    x, _ = read_step(ds, 4, ["PSL"], offset=np.array([1e5], np.float32), scale=np.array([1e-2], np.float32))
    np.testing.assert_allclose(x[0], (tiny_run.PSL.values[4] - 1e5) * 1e-2, rtol=1e-5, atol=1e-3)
    write_run(tiny_run, tmp_path / "dc", format="deepcam")
    dc = open_run(tmp_path / "dc")
    x, y = read_step(dc, 2, list(CHANNELS) + [LABEL_VAR])
    np.testing.assert_array_equal(x, np.stack([tiny_run[c].values[2] for c in CHANNELS]))
    np.testing.assert_array_equal(y, tiny_run[LABEL_VAR].values[2])


def test_read_step_checks_values(tiny_run, tmp_path):
    from climviz.data.io import read_step

    bad = tiny_run.copy(deep=True)
    bad["TS"].values[1, 2, 2] = np.inf
    bad[LABEL_VAR].values[3, 0, 0] = 9
    write_run(bad, tmp_path / "r.nc")
    ds = open_run(tmp_path / "r.nc")
    with pytest.raises(DataError, match=r"r\.nc: variable TS: expected finite values, found 1 NaN/inf at time index 1"):
        read_step(ds, 1, ["TMQ", "TS"])
    with pytest.raises(DataError, match=r"r\.nc: variable LABELS: expected values in \{0, 1, 2\}, found \[9\]"):
        read_step(ds, 3, ["TMQ", LABEL_VAR])
    x, _ = read_step(open_run(tmp_path / "r.nc", nan_policy="mask"), 1, ["TS"], fill_value=-5.0)
    assert x[0, 2, 2] == -5.0 and np.isfinite(x).all()
