"""SegmentationDataset / make_loader / time_split on real files, with DataLoader workers."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest
import torch

from climviz.data.io import write_run
from climviz.data.normalize import Normalizer
from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.data.torchdata import SegmentationDataset, make_loader, time_split
from climviz.errors import ConfigError, DataError


def test_time_split_is_contiguous_with_validation_last():
    tr, va = time_split(10, 0.2)
    np.testing.assert_array_equal(tr, np.arange(8))
    np.testing.assert_array_equal(va, [8, 9])
    tr, va = time_split(10, 0.25, gap=1)  # ceil(2.5) = 3 validation steps, one dropped between
    np.testing.assert_array_equal(tr, np.arange(6))
    np.testing.assert_array_equal(va, [7, 8, 9])
    tr, va = time_split(5, 0.0)
    assert tr.size == 5 and va.size == 0
    tr, va = time_split(2, 0.01)
    assert list(tr) == [0] and list(va) == [1]
    with pytest.raises(ConfigError, match="val_fraction"):
        time_split(10, 1.5)
    with pytest.raises(ConfigError, match="no training steps"):
        time_split(1, 0.5)


def test_items_are_normalized_tensors_and_labels(small_run):
    norm = Normalizer.fit(small_run)
    ds = SegmentationDataset(small_run, normalizer=norm, time_indices=[3, 5])
    assert len(ds) == 2 and list(ds.time_indices) == [3, 5]
    x, y = ds[1]
    assert x.dtype == torch.float32 and x.shape == (16, 96, 144)
    assert y.dtype == torch.int64 and y.shape == (96, 144)
    raw = np.stack([small_run[c].values[5] for c in CHANNELS]).astype(np.float64)
    expected = (raw - norm.mean[:, None, None]) / norm.std[:, None, None]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(y.numpy(), small_run[LABEL_VAR].values[5])
    only_x = SegmentationDataset(small_run, labels=False)[0]
    assert isinstance(only_x, torch.Tensor) and only_x.shape == (16, 96, 144)
    np.testing.assert_array_equal(only_x[0].numpy(), small_run.TMQ.values[0])


def test_random_roll_moves_fields_and_labels_together(small_run):
    ds = SegmentationDataset(small_run, channels=["TMQ", "PSL"], random_roll=True, seed=4)
    x, y = ds[2]
    tmq, lab = small_run.TMQ.values[2], small_run[LABEL_VAR].values[2]
    shifts = [k for k in range(144) if np.array_equal(np.roll(tmq, k, axis=1), x[0].numpy())]
    assert len(shifts) == 1 and shifts[0] != 0  # seed 4 gives a non-zero roll
    np.testing.assert_array_equal(np.roll(lab, shifts[0], axis=1), y.numpy())


def test_random_crop_wraps_in_longitude_and_keeps_labels_aligned(small_run):
    ds = SegmentationDataset(small_run, channels=["TMQ"], crop=(32, 64), seed=0)
    tmq, lab = small_run.TMQ.values[1], small_run[LABEL_VAR].values[1]
    seen_wrap = False
    for _ in range(20):
        x, y = ds[1]
        assert x.shape == (1, 32, 64) and y.shape == (32, 64)
        # locate the window: rows by matching the first column, columns periodic
        doubled = np.concatenate([tmq, tmq], axis=1)
        found = [(r, c) for r in range(96 - 32 + 1) for c in range(144)
                 if doubled[r, c] == x[0, 0, 0].item() and np.array_equal(doubled[r:r + 32, c:c + 64], x[0].numpy())]
        assert found
        r, c = found[0]
        seen_wrap |= c + 64 > 144
        np.testing.assert_array_equal(np.concatenate([lab, lab], axis=1)[r:r + 32, c:c + 64], y.numpy())
    assert seen_wrap


def test_same_seed_same_augmentations(small_run):
    a = SegmentationDataset(small_run, channels=["TMQ"], crop=(16, 16), random_roll=True, seed=7)
    b = SegmentationDataset(small_run, channels=["TMQ"], crop=(16, 16), random_roll=True, seed=7)
    for i in range(3):
        torch.testing.assert_close(a[i][0], b[i][0])


def test_loader_with_two_workers_reads_files_in_each_worker(small_run, tmp_path):
    for i in range(3):
        write_run(small_run.isel(time=slice(4 * i, 4 * i + 4)), tmp_path / f"part{i}.nc")
    norm = Normalizer.fit(small_run)
    train, val = time_split(12, 0.25)
    ds = SegmentationDataset(tmp_path, normalizer=norm, time_indices=train)
    assert pickle.loads(pickle.dumps(ds))._ds is None  # workers reopen files themselves
    loader = make_loader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    xs = torch.cat([b[0] for b in batches])
    ys = torch.cat([b[1] for b in batches])
    assert xs.shape == (9, 16, 96, 144) and ys.shape == (9, 96, 144)
    raw = np.stack([small_run[c].values[:9] for c in CHANNELS], axis=1).astype(np.float64)
    expected = (raw - norm.mean[None, :, None, None]) / norm.std[None, :, None, None]
    np.testing.assert_allclose(xs.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ys.numpy(), small_run[LABEL_VAR].values[:9])


def test_loader_shuffles_reproducibly_and_augments_in_workers(small_run):
    ds = SegmentationDataset(small_run, channels=["TMQ"], crop=(16, 16), random_roll=True)
    first = [b[0] for b in make_loader(ds, batch_size=4, num_workers=2, shuffle=True, seed=1)]
    again = [b[0] for b in make_loader(ds, batch_size=4, num_workers=2, shuffle=True, seed=1)]
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b)
    other = [b[0] for b in make_loader(ds, batch_size=4, num_workers=2, shuffle=True, seed=2)]
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_masked_values_are_filled_after_normalization(small_run):
    bad = small_run.isel(time=[0]).copy(deep=True)
    bad["TMQ"].values[0, 10, 10] = np.nan
    norm = Normalizer.fit(small_run)
    x, _ = SegmentationDataset(bad, normalizer=norm)[0]
    assert torch.isfinite(x).all() and x[0, 10, 10].item() == 0.0


def test_errors(small_run):
    with pytest.raises(DataError, match=r"missing channel\(s\) \['RAIN'\]"):
        SegmentationDataset(small_run, channels=["TMQ", "RAIN"])
    with pytest.raises(DataError, match="LABELS"):
        SegmentationDataset(small_run.drop_vars(LABEL_VAR))
    with pytest.raises(DataError, match="time_indices"):
        SegmentationDataset(small_run, time_indices=[0, 99])
    with pytest.raises(ConfigError, match="crop"):
        SegmentationDataset(small_run, crop=(200, 10))
    with pytest.raises(DataError, match="PSL"):
        SegmentationDataset(small_run, channels=["PSL"], normalizer=Normalizer.fit(small_run, channels=["TMQ"]))
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(SegmentationDataset(small_run), batch_size=0)


def test_bad_values_in_files_are_reported_or_masked(small_run, tmp_path):
    bad = small_run.isel(time=[0, 1]).copy(deep=True)
    bad["PRECT"].values[1, 7, 9] = np.nan
    write_run(bad, tmp_path / "r.nc")
    norm = Normalizer.fit(small_run)
    ds = SegmentationDataset(tmp_path / "r.nc", normalizer=norm)
    ds[0]
    with pytest.raises(DataError, match=r"r\.nc: variable PRECT: expected finite values.*time index 1"):
        ds[1]
    masked = SegmentationDataset(tmp_path / "r.nc", normalizer=norm, open_kwargs={"nan_policy": "mask"}, nan_fill=0.0)
    x, _ = masked[1]
    assert torch.isfinite(x).all() and x[CHANNELS.index("PRECT"), 7, 9].item() == 0.0


def test_worker_buffers_are_reused_and_batches_stay_valid(small_run, tmp_path):
    write_run(small_run, tmp_path / "r.nc")
    ds = SegmentationDataset(tmp_path / "r.nc", channels=["TMQ", "PSL"])
    loader = make_loader(ds, batch_size=2, num_workers=2, prefetch_factor=1)
    buffers = loader.dataset.buffers
    assert tuple(buffers.fields.shape[:2]) == (2, 4)  # 2 workers x (1 x 2 + 2) buffers
    assert loader.dataset.time_indices is ds.time_indices and len(loader.dataset) == 12
    for _epoch in range(2):
        kept = list(loader)  # keep every batch: later samples must not overwrite earlier ones
        xs = torch.cat([b[0] for b in kept]).numpy()
        ys = torch.cat([b[1] for b in kept]).numpy()
        np.testing.assert_array_equal(xs[:, 0], small_run.TMQ.values)
        np.testing.assert_array_equal(xs[:, 1], small_run.PSL.values)
        np.testing.assert_array_equal(ys, small_run[LABEL_VAR].values)
        assert ys.dtype == np.int64
    assert (buffers.flags.numpy() == 0).all()  # every buffer handed back (batches of 2 are copies)
    # a second loader on the same dataset has its own buffers
    other = make_loader(ds, batch_size=1, num_workers=2)
    assert other.dataset.buffers.fields.data_ptr() != buffers.fields.data_ptr()
    batches = list(other)  # batches of one are views of the worker buffers, lent until released
    for t, (x, y) in enumerate(batches):
        np.testing.assert_array_equal(x[0, 0].numpy(), small_run.TMQ.values[t])
        np.testing.assert_array_equal(y[0].numpy(), small_run[LABEL_VAR].values[t])
    lent = other.dataset.buffers.flags.numpy()
    assert (lent == 3).sum() > 0
    view = batches[0][0][0, 1]  # a view keeps its buffer lent
    del batches, x, y
    gc.collect()
    held = other.dataset.buffers.flags.numpy()
    assert (held == 3).sum() == 1 and (held == 0).sum() == held.size - 1
    np.testing.assert_array_equal(view.numpy(), small_run.PSL.values[0])
    del view
    gc.collect()
    assert (other.dataset.buffers.flags.numpy() == 0).all()


def test_random_roll_in_workers(small_run, tmp_path):
    write_run(small_run, tmp_path / "r.nc")
    ds = SegmentationDataset(tmp_path / "r.nc", channels=["TMQ"], random_roll=True, seed=3)
    shifts = []
    for t, (x, y) in enumerate(make_loader(ds, batch_size=1, num_workers=2)):  # in time order
        tmq, lab = small_run.TMQ.values[t], small_run[LABEL_VAR].values[t]
        found = [k for k in range(144) if np.array_equal(np.roll(tmq, k, axis=1), x[0, 0].numpy())]
        assert len(found) == 1
        np.testing.assert_array_equal(np.roll(lab, found[0], axis=1), y[0].numpy())
        shifts.append(found[0])
    assert len(set(shifts)) > 3  # different rolls for different samples
