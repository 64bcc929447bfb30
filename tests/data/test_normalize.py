"""Normalizer: statistics checked against numpy on the whole array; one streaming pass; JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from dask.callbacks import Callback

from climviz.data.io import open_run, write_run
from climviz.data.normalize import Normalizer
from climviz.data.schema import CHANNELS
from climviz.errors import DataError


def numpy_stats(ds, channels):
    arrs = [ds[c].values.astype(np.float64) for c in channels]
    return (np.array([np.nanmean(a) for a in arrs]), np.array([np.nanstd(a) for a in arrs]),
            np.array([np.nanmin(a) for a in arrs]), np.array([np.nanmax(a) for a in arrs]))


def test_fit_matches_numpy_on_an_in_memory_run(small_run):
    norm = Normalizer.fit(small_run)
    mean, std, mn, mx = numpy_stats(small_run, CHANNELS)
    assert norm.channels == CHANNELS
    np.testing.assert_allclose(norm.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(norm.std, std, rtol=1e-8)
    np.testing.assert_array_equal(norm.min, mn)
    np.testing.assert_array_equal(norm.max, mx)
    assert (norm.count == small_run.TMQ.size).all()


def test_fit_streams_over_files_reading_each_chunk_once(tiny_run, tmp_path):
    for i in range(3):
        write_run(tiny_run.isel(time=[2 * i, 2 * i + 1]), tmp_path / f"part{i}.nc")
    ds = open_run(tmp_path)
    reads = []

    class CountReads(Callback):
        def _pretask(self, key, dsk, state):
            name = key[0] if isinstance(key, tuple) else key
            if str(name).startswith("read-"):  # the per-step file-read tasks of open_run
                reads.append(key)

    with CountReads():
        norm = Normalizer.fit(ds, channels=["PSL", "TMQ"])
    # one pass: each (variable, time step) chunk read exactly once
    assert len(reads) == len(set(reads)) == 2 * tiny_run.sizes["time"]
    mean, std, mn, mx = numpy_stats(tiny_run, ["PSL", "TMQ"])
    np.testing.assert_allclose(norm.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(norm.std, std, rtol=1e-8)
    np.testing.assert_array_equal(norm.max, mx)


def test_fit_on_a_time_subset_and_with_masked_values(tiny_run, tmp_path):
    bad = tiny_run.copy(deep=True)
    bad["TS"].values[1, 2, 3] = np.nan
    write_run(bad, tmp_path / "r.nc")
    ds = open_run(tmp_path / "r.nc", nan_policy="mask")
    norm = Normalizer.fit(ds, channels=["TS"], time_indices=[0, 1, 2])
    ref = bad.TS.values[:3].astype(float)
    np.testing.assert_allclose(norm.mean, [np.nanmean(ref)], rtol=1e-10)
    assert norm.count[0] == ref.size - 1


def test_json_roundtrip_and_atomic_save(small_run, tmp_path):
    norm = Normalizer.fit(small_run)
    path = norm.save(tmp_path / "norm.json")
    d = json.loads(path.read_text())
    assert d["channels"] == list(CHANNELS) and len(d["mean"]) == 16
    assert Normalizer.load(path) == norm
    assert Normalizer.from_dict(norm.to_dict()) == norm
    assert [p.name for p in tmp_path.iterdir()] == ["norm.json"]


def test_apply_numpy_and_torch_and_call_on_dataset(small_run):
    norm = Normalizer.fit(small_run)
    x = np.stack([small_run[c].values[0] for c in CHANNELS])  # (C, H, W)
    z = norm.apply(x)
    assert z.dtype == np.float32
    # normalized channels of the whole run have mean ~0 and std ~1
    zs = norm(small_run)
    for c in CHANNELS:
        assert abs(float(zs[c].mean())) < 1e-3 and abs(float(zs[c].std()) - 1) < 1e-3
        assert zs[c].attrs["units"] == "1"
    np.testing.assert_allclose(z, np.stack([zs[c].values[0] for c in CHANNELS]), rtol=1e-4, atol=1e-4)
    zt = norm.apply(torch.from_numpy(x)[None])  # (N, C, H, W)
    np.testing.assert_allclose(zt[0].numpy(), z, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm.inverse(z), x, rtol=1e-5, atol=1e-3)
    # channels last
    np.testing.assert_allclose(norm.apply(np.moveaxis(x, 0, -1), channel_axis=-1), np.moveaxis(z, 0, -1),
                               rtol=1e-6, atol=1e-6)


def test_select_reorders_channels(small_run):
    norm = Normalizer.fit(small_run)
    sub = norm.select(["PSL", "TMQ"])
    assert sub.mean[0] == norm.mean[CHANNELS.index("PSL")] and sub.mean[1] == norm.mean[0]
    with pytest.raises(DataError, match="RAIN"):
        norm.select(["RAIN"])


def test_errors_name_what_is_wrong(small_run, tmp_path):
    norm = Normalizer.fit(small_run, channels=["TMQ", "PSL"])
    with pytest.raises(DataError, match=r"expected 2 channels \['TMQ', 'PSL'\] along axis -3, found shape \(3, 4, 5\)"):
        norm.apply(np.zeros((3, 4, 5)))
    with pytest.raises(DataError, match=r"lacks channel\(s\) \['TMQ'\]"):
        norm(small_run.drop_vars("TMQ"))
    with pytest.raises(DataError, match="missing key 'std'"):
        Normalizer.from_dict({"channels": ["TMQ"], "mean": [1.0], "min": [0], "max": [2]})
    with pytest.raises(DataError, match=r"std: expected 1 values"):
        Normalizer.from_dict({"channels": ["TMQ"], "mean": [1.0], "std": [1, 2], "min": [0], "max": [2]})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: expected a JSON normalizer file"):
        Normalizer.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="not found"):
        Normalizer.load(tmp_path / "none.json")


def test_constant_channel_gets_unit_std(small_run):
    const = small_run.copy()
    const["ZBOT"] = const["ZBOT"] * 0 + 60.0
    with pytest.warns(UserWarning, match="constant"):
        norm = Normalizer.fit(const, channels=["ZBOT"])
    assert norm.std[0] == 1.0 and norm.mean[0] == 60.0
