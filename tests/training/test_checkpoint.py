"""Checkpoints: atomic single file, weights-only loading, clear errors on mismatch."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

from climviz import models
from climviz.data.schema import CHANNELS
from climviz.errors import CheckpointError
from climviz.training.checkpoint import (checkpoint_file, checkpoint_sha256, find_latest_checkpoint,
                                         load_checkpoint, load_model, save_checkpoint)
from climviz.training.config import TrainConfig


def _payload(net, *, model="tiramisu", channels=CHANNELS, epoch=1):
    cfg = TrainConfig(model=model, preset="tiny", channels=channels)
    return {
        "model": model, "preset": "tiny",
        "model_kwargs": {"in_channels": len(channels), "num_classes": 3, "overrides": {}},
        "channels": list(channels),
        "normalizer": {"channels": list(channels), "mean": [0.0] * len(channels),
                       "std": [1.0] * len(channels)},
        "config": cfg.to_dict(), "grid": [32, 64], "epoch": epoch, "global_step": 7,
        "metrics": [{"epoch": 1, "miou": 0.25}],
        "model_state": net.state_dict(), "optimizer_state": None, "scheduler_state": None,
        "scaler_state": None,
    }


@pytest.fixture(scope="module")
def tiny_net():
    return models.build("tiramisu", preset="tiny", in_channels=16, num_classes=3, seed=0)


def test_round_trip_and_load_model(tmp_path, tiny_net):
    f = save_checkpoint(tmp_path / "epoch_0001", _payload(tiny_net))
    assert f == tmp_path / "epoch_0001" / "checkpoint.pt" and f.is_file()
    assert [p.name for p in f.parent.iterdir()] == ["checkpoint.pt"]   # no temp file left
    for where in (f, f.parent):
        ck = load_checkpoint(where, expect_model=("tiramisu", "tiny"), expect_channels=CHANNELS)
        assert ck["format"] == "climviz-checkpoint" and ck["epoch"] == 1
    net, meta = load_model(f.parent)
    assert not net.training
    for k, v in tiny_net.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)
    assert meta["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest() == checkpoint_sha256(f)
    assert meta["metrics"] == [{"epoch": 1, "miou": 0.25}] and "model_state" not in meta
    x = torch.randn(1, 16, 32, 64)
    tiny_net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), tiny_net(x))


def test_prefixes_of_ddp_and_compile_are_stripped(tmp_path, tiny_net):
    p = _payload(tiny_net)
    p["model_state"] = {f"module._orig_mod.{k}": v for k, v in tiny_net.state_dict().items()}
    net, _ = load_model(save_checkpoint(tmp_path / "c", p))
    assert set(net.state_dict()) == set(tiny_net.state_dict())


def test_wrong_model_or_channels_is_a_clear_error(tmp_path, tiny_net):
    f = save_checkpoint(tmp_path / "c", _payload(tiny_net))
    with pytest.raises(CheckpointError, match="holds model tiramisu/tiny, expected deeplabv3plus"):
        load_checkpoint(f, expect_model="deeplabv3plus")
    with pytest.raises(CheckpointError, match=r"channels not in checkpoint: \['TS_ANOM'\]"):
        load_checkpoint(f, expect_channels=[*CHANNELS[:-1], "TS_ANOM"])
    with pytest.raises(CheckpointError, match="different order"):
        load_checkpoint(f, expect_channels=CHANNELS[::-1])


def test_weights_that_do_not_fit_the_model(tmp_path, tiny_net):
    p = _payload(tiny_net)
    p["model_kwargs"]["in_channels"] = 4                  # claims 4 channels, weights have 16
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_model(save_checkpoint(tmp_path / "c", p))


def test_missing_corrupt_and_foreign_files(tmp_path, tiny_net):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing")
    f = save_checkpoint(tmp_path / "c", _payload(tiny_net))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])                 # truncated
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(f)
    foreign = tmp_path / "other" / "checkpoint.pt"
    foreign.parent.mkdir()
    torch.save({"state_dict": tiny_net.state_dict()}, foreign)
    with pytest.raises(CheckpointError, match="not a climviz checkpoint"):
        load_checkpoint(foreign)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_are_refused_not_executed(tmp_path, capsys):
    """weights_only=True: a checkpoint carrying an arbitrary object is rejected."""
    f = tmp_path / "c" / "checkpoint.pt"
    f.parent.mkdir()
    torch.save({"format": "climviz-checkpoint", "format_version": 1, "x": _Evil()}, f,
               pickle_module=pickle)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(f)
    assert "pwned" not in capsys.readouterr().out


def test_newer_format_and_missing_keys(tmp_path, tiny_net):
    p = _payload(tiny_net)
    p.update(format="climviz-checkpoint", format_version=99)
    f = tmp_path / "c" / "checkpoint.pt"
    f.parent.mkdir()
    torch.save(p, f)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(f)
    with pytest.raises(CheckpointError, match="lacks key"):
        save_checkpoint(tmp_path / "d", {"model": "tiramisu"})


def test_failed_write_leaves_the_old_checkpoint(tmp_path, tiny_net):
    f = save_checkpoint(tmp_path / "c", _payload(tiny_net, epoch=1))
    bad = _payload(tiny_net, epoch=2)
    bad["metrics"] = [object()]                           # not storable
    with pytest.raises(CheckpointError, match="cannot store"):
        save_checkpoint(tmp_path / "c", bad)
    assert load_checkpoint(f)["epoch"] == 1
    assert sorted(p.name for p in f.parent.iterdir()) == ["checkpoint.pt"]


def test_numpy_and_paths_become_plain_values(tmp_path, tiny_net):
    import numpy as np

    p = _payload(tiny_net)
    p["metrics"] = [{"miou": np.float32(0.5), "epoch": np.int64(3), "where": tmp_path}]
    p["normalizer"]["mean"] = np.zeros(16)
    ck = load_checkpoint(save_checkpoint(tmp_path / "c", p))
    assert ck["metrics"] == [{"miou": 0.5, "epoch": 3, "where": str(tmp_path)}]
    assert ck["normalizer"]["mean"] == [0.0] * 16


def test_find_latest(tmp_path, tiny_net):
    assert find_latest_checkpoint(tmp_path) is None
    for e in (1, 2, 10):
        save_checkpoint(tmp_path / f"epoch_{e:04d}", _payload(tiny_net, epoch=e))
    assert find_latest_checkpoint(tmp_path) == checkpoint_file(tmp_path / "epoch_0010")
