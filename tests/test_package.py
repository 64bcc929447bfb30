"""The package itself: public names, errors, the CLI entry point, atomic writes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import climviz as cv
from climviz.data.masks import make_mask_dataset, validate_mask_dataset
from climviz.utils import atomic_path


def test_errors_form_one_hierarchy_and_data_errors_are_value_errors():
    for cls in (cv.DataError, cv.ConfigError, cv.CheckpointError, cv.FetchError, cv.ClusterError, cv.OutputError,
                cv.OutputExistsError):
        assert issubclass(cls, cv.ClimvizError)
    assert issubclass(cv.DataError, ValueError)
    assert issubclass(cv.ConfigError, ValueError)
    assert issubclass(cv.OutputExistsError, FileExistsError) and issubclass(cv.OutputError, OSError)
    with pytest.raises(ValueError):
        raise cv.DataError("x")


def test_import_is_light():
    """`import climviz` must not pull torch, ray or holoviews (notebooks start fast)."""
    code = "import sys, climviz; print(','.join(m for m in ('torch','ray','holoviews') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        cv.no_such_name  # noqa: B018


def test_cli_version_and_help():
    out = subprocess.run([sys.executable, "-m", "climviz", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and cv.__version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "climviz", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_atomic_path_keeps_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "run.nc"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]  # no temp left behind
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_path_replaces_directories(tmp_path):
    target = tmp_path / "store.zarr"
    target.mkdir()
    (target / "a").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]
    with pytest.raises(FileExistsError):
        with atomic_path(target, overwrite=False):
            pass


@pytest.fixture
def grid():
    time = np.array(["2000-01-01T00", "2000-01-01T03"], dtype="datetime64[ns]")
    return xr.Dataset(coords={"time": time, "lat": np.linspace(-60, 60, 4), "lon": np.arange(0, 360, 60.0)})


def test_mask_dataset_has_cf_flags_and_round_trips_through_netcdf(grid, tmp_path):
    mask = np.zeros((2, 4, 6), dtype=np.int64)
    mask[0, 1, 2] = 1
    mask[1, 2, 5] = 2
    prob = np.full((3, 2, 4, 6), 1 / 3, dtype=np.float32)
    ds = make_mask_dataset(mask, grid, probability=prob, attrs={"model": "tiny", "source_files": ["a.nc", "b.nc"]})
    path = tmp_path / "m.nc"
    ds.to_netcdf(path)
    back = xr.open_dataset(path)
    assert back["mask"].dtype == np.uint8
    assert list(back["mask"].attrs["flag_values"]) == [0, 1, 2]
    assert back["mask"].attrs["flag_meanings"] == "background tropical_cyclone atmospheric_river"
    assert back.attrs["Conventions"].startswith("CF-")
    assert back.attrs["source_files"].split("\n") == ["a.nc", "b.nc"]
    np.testing.assert_array_equal(back["mask"].values, mask)
    assert back["probability"].dims == ("class", "time", "lat", "lon")
    validate_mask_dataset(back)


def test_mask_dataset_rejects_bad_values_and_shapes(grid):
    with pytest.raises(cv.DataError, match=r"class values .*\[3\]"):
        make_mask_dataset(np.full((2, 4, 6), 3), grid)
    with pytest.raises(cv.DataError, match=r"expected shape .*\(2, 4, 6\).*found \(2, 4, 5\)"):
        make_mask_dataset(np.zeros((2, 4, 5)), grid)
    with pytest.raises(cv.DataError, match="expected a variable 'mask'"):
        validate_mask_dataset(xr.Dataset({"LABELS": grid["lat"]}), "preds.nc")
