"""The committed sample data open with open_run and match what the generator makes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from climviz.data.io import open_run
from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.data.synthetic import synthetic_run

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def load_generator():
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def regenerated():
    gen = load_generator()
    return synthetic_run(**gen.SAMPLE, return_features=True)


def assert_matches(opened, made):
    # float32 written losslessly; a tolerance allows for libm differences between machines
    for c in CHANNELS:
        np.testing.assert_allclose(opened[c].values, made[c].values, rtol=2e-5, atol=1e-6 * float(abs(made[c]).max()))
    diff = opened[LABEL_VAR].values != made[LABEL_VAR].values
    assert diff.mean() < 1e-4  # a label can only flip for a cell exactly on a feature's edge


def test_climatenet_sample_matches_the_generator(regenerated):
    ds_made, _ = regenerated
    ds = open_run(SAMPLES / "climatenet")
    assert len(ds.attrs["source_files"]) == 3
    assert ds.attrs["synthetic"] == "yes"
    assert dict(ds.sizes) == {"time": 24, "lat": 96, "lon": 144}
    np.testing.assert_array_equal(ds.time.values, ds_made.time.values)
    np.testing.assert_allclose(ds.lat.values, ds_made.lat.values)
    assert_matches(ds, ds_made)


def test_deepcam_sample_is_the_first_step(regenerated):
    ds_made, _ = regenerated
    files = sorted((SAMPLES / "deepcam").glob("*.h5"))
    assert len(files) == 1
    ds = open_run(files[0])
    assert ds.time.values[0] == ds_made.time.values[0]
    assert_matches(ds, ds_made.isel(time=[0]))


def test_features_table_matches(regenerated):
    _, feats = regenerated
    table = pd.read_csv(SAMPLES / "features.csv", parse_dates=["time"])
    assert list(table.columns) == list(feats.columns)
    assert (table.kind.values == feats.kind.values).all()
    np.testing.assert_allclose(table[["lat", "lon"]].values, feats[["lat", "lon"]].values, rtol=1e-5)


def test_samples_folder_is_small_and_documented():
    real = SAMPLES / "real"
    size = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file() and real not in p.parents)
    assert size < 20e6
    # the real GFS forecast and best tracks: small enough to ship, with their provenance
    assert sum(p.stat().st_size for p in real.rglob("*") if p.is_file()) < 5e6
    real_readme = (real / "README.md").read_text()
    assert "public domain" in real_readme.lower() and "IBTrACS" in real_readme and "sha256" in real_readme
    readme = (SAMPLES / "README.md").read_text()
    assert "synthetic" in readme.lower() and "make_samples.py" in readme


def test_generator_script_writes_the_same_files(tmp_path):
    gen = load_generator()
    written = gen.make(tmp_path, complevel=1)
    committed = [*(SAMPLES / "climatenet").glob("*.nc"), *(SAMPLES / "deepcam").glob("*.h5"), SAMPLES / "features.csv"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        p.relative_to(SAMPLES).as_posix() for p in committed
    )
    a, b = open_run(tmp_path / "climatenet"), open_run(SAMPLES / "climatenet")
    assert_matches(a, b)
