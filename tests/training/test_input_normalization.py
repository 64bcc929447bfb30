"""Normalization inside the network (issue 19): raw loaders, a frozen first operation,
carried by the checkpoint's state dict; old checkpoints predict as before.

Expected values are computed here with numpy in float64 from values read with xarray
(``(x - mean) / std``, NaN -> 0), never with the code under test.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from climviz import models
from climviz.data import Normalizer, SegmentationDataset, make_loader, write_run
from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.models.normalization import Normalize
from climviz.training.checkpoint import load_checkpoint, load_model, save_checkpoint

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def _expected(x: np.ndarray, norm: Normalizer, fill: float = 0.0) -> np.ndarray:
    """(x - mean) / std in float64, NaN -> fill: the old loaders' output, independently."""
    z = (x.astype(np.float64) - norm.mean[:, None, None]) / norm.std[:, None, None]
    return np.where(np.isfinite(z), z, fill)


def _raw_fields(ds: xr.Dataset, t: int, channels=CHANNELS) -> np.ndarray:
    return np.stack([np.asarray(ds[c].values[t], np.float32) for c in channels])


@pytest.fixture(scope="module")
def masked_run(small_run, tmp_path_factory):
    """small_run written to a file with a few NaN (masked) values; its normalizer."""
    run = small_run.isel(time=slice(0, 4)).copy(deep=True)
    run["TMQ"].values[1, 3, 5] = np.nan
    run["PSL"].values[2, 0, :7] = np.nan
    path = write_run(run, tmp_path_factory.mktemp("masked") / "run.nc")
    return run, path, Normalizer.fit(small_run)


def _payload(net, norm, *, state=None, version=None):
    p = {"model": "deeplabv3plus", "preset": "tiny",
         "model_kwargs": {"in_channels": 16, "num_classes": 3, "overrides": {}},
         "channels": list(CHANNELS), "normalizer": norm.to_dict(), "grid": [32, 64], "epoch": 1,
         "model_state": net.state_dict() if state is None else state}
    if version is not None:
        p["format_version"] = version
    return p


# ------------------------------------------------------------------ the operation itself
def test_normalize_equals_the_numpy_formula_with_nan_filled(masked_run):
    run, _, norm = masked_run
    op = Normalize.from_normalizer(norm)
    for t in range(4):
        x = _raw_fields(run, t)
        got = op(torch.from_numpy(x)[None])[0].numpy()
        # float32 arithmetic: a few ulps of the raw value (and the mean), in std units
        ulp = np.finfo(np.float32).eps * (np.nan_to_num(np.abs(x)) + np.abs(norm.mean)[:, None, None])
        tol = 4 * ulp / norm.std[:, None, None] + 1e-7
        assert (np.abs(got - _expected(x, norm)) <= tol).all()
    x = _raw_fields(run, 2)
    assert np.isnan(x[CHANNELS.index("PSL"), 0, :7]).all()
    assert (op(torch.from_numpy(x)[None])[0, CHANNELS.index("PSL"), 0, :7] == 0).all()
    filled = Normalize.from_normalizer(norm, fill=-3.0)(torch.from_numpy(x)[None])
    assert (filled[0, CHANNELS.index("PSL"), 0, :7] == -3.0).all()
    # inf is handled like NaN (the old loaders turned every non-finite value into the fill)
    x[0, 0, 0] = np.inf
    assert op(torch.from_numpy(x)[None])[0, 0, 0, 0].item() == 0.0


def test_raw_loader_plus_network_equals_the_old_normalizing_loader(masked_run):
    """Same normalized tensors (bit for bit) and same logits as the old path."""
    _, path, norm = masked_run
    kw = {"open_kwargs": {"nan_policy": "mask"}}
    old = SegmentationDataset(path, normalizer=norm, **kw)
    raw = SegmentationDataset(path, nan_fill=None, **kw)
    net = models.build("deeplabv3plus", "tiny", seed=0).eval()
    op = Normalize.from_normalizer(norm)
    xs_raw = [x for x, _ in make_loader(raw, batch_size=2, num_workers=2)]
    assert torch.isnan(xs_raw[0][1, CHANNELS.index("TMQ"), 3, 5])            # NaN shipped raw
    for i, xr_ in enumerate(itertools.chain.from_iterable(xs_raw)):
        x_old, _ = old[i]
        assert torch.equal(op(xr_[None])[0], x_old)                           # bit for bit
    x_old = torch.stack([old[i][0] for i in range(4)])
    x_raw = torch.cat(xs_raw)
    with torch.no_grad():
        expected = net(x_old)
        got = net.set_normalization(norm)(x_raw)
    assert torch.equal(got, expected)


def test_the_operation_is_frozen_and_the_optimizer_leaves_it_alone(small_run, tiny_config):
    from climviz.training.optim import build_optimizer

    norm = Normalizer.fit(small_run)
    net = models.build("deeplabv3plus", "tiny", seed=0, normalizer=norm)
    assert list(net.input_norm.parameters()) == []
    assert not any(n.startswith("input_norm") for n, _ in net.named_parameters())
    assert {k for k in net.state_dict() if k.startswith("input_norm")} == {
        "input_norm.mean", "input_norm.inv_std", "input_norm.fill"}
    before = {k: v.clone() for k, v in net.input_norm.state_dict().items()}
    weight = net.state_dict()[next(n for n, _ in net.named_parameters())].clone()
    opt = build_optimizer(net, tiny_config(lr=0.1, weight_decay=0.1))
    x = torch.from_numpy(np.stack([_raw_fields(small_run, t) for t in range(2)]))
    y = torch.from_numpy(small_run[LABEL_VAR].values[:2].astype(np.int64))
    net.train()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    for k, v in net.input_norm.state_dict().items():
        assert torch.equal(v, before[k])
    assert not torch.equal(net.state_dict()[next(n for n, _ in net.named_parameters())], weight)
    np.testing.assert_array_equal(net.input_norm.mean.numpy(), norm.mean.astype(np.float32))


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_carries_the_normalization(masked_run, tmp_path):
    run, _, norm = masked_run
    net = models.build("deeplabv3plus", "tiny", seed=0, normalizer=norm).eval()
    f = save_checkpoint(tmp_path / "c", _payload(net, norm))
    raw = torch.load(f, weights_only=True)                     # plain tensors and values only
    assert raw["format_version"] == 2
    np.testing.assert_array_equal(raw["model_state"]["input_norm.mean"].numpy(),
                                  norm.mean.astype(np.float32))
    np.testing.assert_array_equal(raw["model_state"]["input_norm.inv_std"].numpy(),
                                  (1.0 / norm.std).astype(np.float32))
    back, _ = load_model(f)
    x = torch.from_numpy(np.stack([_raw_fields(run, t) for t in range(4)]))   # with NaN
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    # the statistics in the weights win over a (tampered) stored normalizer dict
    p = _payload(net, norm)
    p["normalizer"] = {**norm.to_dict(), "mean": [0.0] * 16}
    back2, _ = load_model(save_checkpoint(tmp_path / "d", p))
    with torch.no_grad():
        assert torch.equal(back2(x), net(x))


def test_old_format_checkpoint_predicts_as_before(masked_run, tmp_path):
    """A format-1 checkpoint (weights without input_norm, statistics in 'normalizer')."""
    run, _, norm = masked_run
    bare = models.build("deeplabv3plus", "tiny", seed=0).eval()
    f = save_checkpoint(tmp_path / "old", _payload(bare, norm, version=1))
    assert not any(k.startswith("input_norm") for k in load_checkpoint(f)["model_state"])
    net, _ = load_model(f)
    x = np.stack([_raw_fields(run, t) for t in range(4)])
    z = np.stack([_expected(x[t], norm) for t in range(4)]).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x))
        want = bare(torch.from_numpy(z))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).float().mean() > 0.999


def test_bundled_checkpoint_predicts_as_with_the_old_normalizing_reader():
    """data_samples/checkpoint (format 1): cv.predict equals the old path (read_block
    normalizing with the stored statistics, then the bare network), and the numpy one."""
    import climviz as cv
    from climviz.inference.source import read_block

    ckpt = SAMPLES / "checkpoint"
    files = sorted(str(p) for p in (SAMPLES / "climatenet").glob("*.nc"))[:1]
    payload = load_checkpoint(ckpt)
    assert payload["format_version"] == 1 and "input_norm.mean" not in payload["model_state"]
    norm = Normalizer.from_dict(payload["normalizer"])
    bare = models.build("deeplabv3plus", "tiny")
    bare.load_state_dict(payload["model_state"])
    bare.eval()
    masks = cv.predict(ckpt, files, probabilities="float32", device="cpu")
    ds = cv.open_run(files, channels=list(norm.channels))
    old_x = read_block(ds, norm.channels, 0, ds.sizes["time"],
                       norm.mean.astype(np.float32), norm.std.astype(np.float32))
    with torch.no_grad():
        old = bare(torch.from_numpy(old_x))
    assert (masks["mask"].values == old.argmax(1).numpy()).mean() > 0.9999
    np.testing.assert_allclose(masks["probability"].transpose("time", "class", ...).values,
                               torch.softmax(old, 1).numpy(), atol=1e-4)
    with xr.open_dataset(files[0]) as d:                         # independent of open_run
        d = d.sortby("lat").sortby("lon")
        x = np.stack([d[c].values for c in norm.channels], axis=1).astype(np.float64)
    z = (x - norm.mean[None, :, None, None]) / norm.std[None, :, None, None]
    with torch.no_grad():
        ref = bare(torch.from_numpy(z.astype(np.float32)))
    ref_mask = ref.argmax(1).numpy()
    assert ref_mask.shape == masks["mask"].shape
    assert (masks["mask"].values == ref_mask).mean() > 0.999


# ------------------------------------------------------------------ training
def test_setup_ships_raw_fields_and_the_network_normalizes(small_run, tiny_config, tmp_path):
    from climviz.training.state import restore, setup

    cfg = tiny_config(epochs=1)
    state = setup(cfg, small_run, checkpoint_dir=tmp_path)
    assert state.train_ds.normalizer is None and state.train_ds.nan_fill is None
    norm = state.normalizer
    np.testing.assert_array_equal(state.net.input_norm.mean.numpy(), norm.mean.astype(np.float32))
    x, _ = next(iter(state.val_loader))
    t0 = int(state.val_idx[0])
    np.testing.assert_array_equal(x[0].numpy(), _raw_fields(small_run, t0, cfg.channels))
    # resume from a format-1 checkpoint (no input_norm in its weights)
    old_state = {k: v + 0.25 if v.is_floating_point() else v
                 for k, v in state.net.state_dict().items() if not k.startswith("input_norm")}
    payload = {"model_state": old_state, "normalizer": norm.to_dict(), "epoch": 1, "metrics": []}
    state2 = setup(cfg, small_run, normalizer=norm.to_dict(), checkpoint_dir=tmp_path)
    restore(state2, payload)
    for k, v in state2.net.state_dict().items():
        assert torch.equal(v, state.net.state_dict()[k] if k.startswith("input_norm") else old_state[k])


def test_device_prefetcher_keeps_order_and_moves_batches(small_run):
    from climviz.training.loop import DevicePrefetcher

    ds = SegmentationDataset(small_run, time_indices=range(5), nan_fill=None)
    loader = make_loader(ds, batch_size=2)
    got = list(DevicePrefetcher(itertools.islice(loader, 2), torch.device("cpu"), channels_last=True))
    assert len(got) == 2
    for (x, y), (x0, y0) in zip(got, itertools.islice(loader, 2)):
        assert torch.equal(x, x0) and torch.equal(y, y0) and x.device.type == "cpu"
        assert x.is_contiguous(memory_format=torch.channels_last)
    assert list(DevicePrefetcher([], torch.device("cpu"))) == []


def test_steps_are_checked_once_and_bad_steps_always_raise(small_run, tmp_path):
    """Workers record checked steps in shared memory; a NaN step raises in every epoch."""
    from climviz.errors import DataError

    bad = small_run.isel(time=slice(0, 4)).copy(deep=True)
    bad["PRECT"].values[3, 1, 1] = np.nan
    path = write_run(bad, tmp_path / "r.nc")
    ds = SegmentationDataset(path, time_indices=[0, 1, 2], nan_fill=None)
    loader = make_loader(ds, batch_size=1, num_workers=2)
    for _ in range(2):
        xs = [x for x, _ in loader]
        np.testing.assert_array_equal(torch.cat(xs)[:, 0].numpy(), bad["TMQ"].values[:3])
        assert ds._checked.tolist() == [1, 1, 1, 0]              # seen by the workers
    bad_ds = SegmentationDataset(path, time_indices=[3], nan_fill=None)
    for _ in range(2):  # (in this process: torch's worker shutdown after an error is noisy)
        with pytest.raises(DataError, match=r"r\.nc: variable PRECT: expected finite values"):
            list(make_loader(bad_ds, batch_size=1))
    assert bad_ds._checked.tolist() == [0, 0, 0, 0]
