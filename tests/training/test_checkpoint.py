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
        "normalizer": _payload_normalizer(channels),
        "config": cfg.to_dict(), "grid": [32, 64], "epoch": epoch, "global_step": 7,
        "metrics": [{"epoch": 1, "miou": 0.25}],
        "model_state": net.state_dict(), "optimizer_state": None, "scheduler_state": None,
        "scaler_state": None,
    }


@pytest.fixture(scope="module")
def tiny_net():
    # as training builds it: the normalization (that of _payload) is part of the network
    return models.build("tiramisu", preset="tiny", in_channels=16, num_classes=3, seed=0,
                        normalizer=_payload_normalizer(CHANNELS))


def _payload_normalizer(channels):
    return {"channels": list(channels), "mean": [0.0] * len(channels), "std": [1.0] * len(channels)}


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
    p["model_kwargs"]["in_channels"] = 4                  # claims 4 channels, lists 16
    with pytest.raises(CheckpointError, match=r"c/checkpoint.pt: checkpoint lists 16 channels"):
        save_checkpoint(tmp_path / "c", p)
    assert not (tmp_path / "c" / "checkpoint.pt").exists()
    p = _payload(tiny_net, channels=CHANNELS[:4])         # 4 channels, weights have 16
    f = save_checkpoint(tmp_path / "c", p)
    with pytest.raises(CheckpointError, match=rf"{f}: weights do not fit"):
        load_model(f)


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


# ----------------------------------------------------------------------------- issue 18: faults
def test_nonfinite_weights_are_never_saved(tmp_path, tiny_net):
    from climviz.training.checkpoint import nonfinite_tensors

    good = save_checkpoint(tmp_path / "epoch_0001", _payload(tiny_net))
    before = good.read_bytes()
    state = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name].view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    assert nonfinite_tensors(state) == {name: 3}
    p = _payload(tiny_net)
    p["model_state"] = state
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(tmp_path / "epoch_0001", p)
    msg = str(err.value)
    assert str(good) in msg and f"{name} (3)" in msg and "lower learning rate" in msg
    assert good.read_bytes() == before                                # the old one is intact
    assert [q.name for q in good.parent.iterdir()] == ["checkpoint.pt"]
    with pytest.raises(CheckpointError, match="non-finite"):
        save_checkpoint(tmp_path / "epoch_0002", p)
    assert not (tmp_path / "epoch_0002" / "checkpoint.pt").exists()


def test_loading_nonfinite_weights_is_an_error(tmp_path, tiny_net):
    """A file written by an older climviz (or by hand) with NaN weights is refused."""
    f = save_checkpoint(tmp_path / "x", _payload(tiny_net))
    payload = torch.load(f, weights_only=True)
    key = next(k for k, v in payload["model_state"].items() if v.is_floating_point())
    payload["model_state"][key].fill_(float("nan"))
    torch.save(payload, f)
    n = payload["model_state"][key].numel()
    for call in (load_checkpoint, load_model):
        with pytest.raises(CheckpointError, match=rf"{f}: {n} non-finite .* {key} \({n}\)"):
            call(f)


def test_channel_list_that_does_not_fit_the_network_names_the_file(tmp_path, tiny_net):
    f = save_checkpoint(tmp_path / "x", _payload(tiny_net))
    payload = torch.load(f, weights_only=True)
    payload["channels"] = ["TMQ", "PSL", "U850", "V850"]          # net takes 16
    torch.save(payload, f)
    with pytest.raises(CheckpointError, match=rf"{f}: checkpoint lists 4 channels .* in_channels=16"):
        load_checkpoint(f)
    del payload["model_kwargs"]["in_channels"]
    torch.save(payload, f)
    with pytest.raises(CheckpointError, match=rf"{f}: .*4 channels.* first convolution .* 16 input"):
        load_checkpoint(f)
    from climviz.inference.runner import load_spec

    with pytest.raises(CheckpointError, match=str(f)):
        load_spec(tmp_path / "x")


def test_killed_saves_leave_no_temporaries_after_the_next_save(tmp_path, tiny_net):
    from climviz.training.checkpoint import remove_stale_checkpoint_temps

    e2 = tmp_path / "epoch_0002"
    e2.mkdir()
    stale = e2 / ".checkpoint.pt.0badc0de.tmp"        # what a kill during torch.save leaves
    stale.write_bytes(b"\0" * 1000)
    other = e2 / "notes.txt"
    other.write_text("keep me")
    save_checkpoint(e2, _payload(tiny_net, epoch=2))
    assert sorted(p.name for p in e2.iterdir()) == ["checkpoint.pt", "notes.txt"]
    e3 = tmp_path / "epoch_0003"
    e3.mkdir()
    (e3 / ".checkpoint.pt.12345678.tmp").write_bytes(b"x")
    (e3 / ".checkpoint.pt.nothex!.tmp").write_bytes(b"x")      # not our pattern: kept
    assert [p.name for p in remove_stale_checkpoint_temps(tmp_path)] == [".checkpoint.pt.12345678.tmp"]
    assert sorted(p.name for p in e3.iterdir()) == [".checkpoint.pt.nothex!.tmp"]
    assert other.read_text() == "keep me"


def test_full_disk_while_saving_is_an_output_error(tmp_path, tiny_net):
    from tests.faults import fill, tiny_filesystem, tree

    from climviz.errors import OutputError

    with tiny_filesystem(tmp_path / "fs", "8m") as fs:
        f = save_checkpoint(fs / "run", _payload(tiny_net))      # a first checkpoint that fits
        fill(fs, leave=64 * 1024)                                  # then the disk fills up
        before = tree(fs)
        with pytest.raises(OutputError) as err:
            save_checkpoint(fs / "run", _payload(tiny_net, epoch=2))
        assert str(f) in str(err.value) and "disk full" in str(err.value)
        assert tree(fs) == before                                      # old checkpoint intact, no temp


def test_read_only_directory_while_saving_is_an_output_error(tmp_path, tiny_net):
    from tests.faults import read_only, tiny_filesystem

    from climviz.errors import OutputError

    with tiny_filesystem(tmp_path / "fs", "4m") as fs, read_only(fs):
        with pytest.raises(OutputError, match=rf"{fs}/run/checkpoint.pt: cannot .*read-only file system"):
            save_checkpoint(fs / "run", _payload(tiny_net))


def test_write_failure_without_a_real_filesystem(tmp_path, tiny_net, monkeypatch):
    """Same contract when the failure comes from the final rename (monkeypatched ENOSPC)."""
    import errno
    import os

    from climviz.errors import OutputError

    f = save_checkpoint(tmp_path / "run", _payload(tiny_net))
    before = f.read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match=rf"{f}: cannot write: no space left .*\[ENOSPC\]"):
        save_checkpoint(tmp_path / "run", _payload(tiny_net, epoch=2))
    monkeypatch.undo()
    assert f.read_bytes() == before
    assert [p.name for p in f.parent.iterdir()] == ["checkpoint.pt"]


def test_model_kwargs_from_build_kwargs_load_in_training_and_prediction(tmp_path, tiny_net):
    from climviz.inference.runner import MaskPredictor, load_spec

    payload = _payload(tiny_net) | {"model_kwargs": tiny_net.build_kwargs()}
    assert set(payload["model_kwargs"]) >= {"name", "preset"}
    f = save_checkpoint(tmp_path / "epoch_0001", payload)
    net, _ = load_model(f)
    predictor = MaskPredictor(load_spec(f))
    x = torch.randn(1, 16, 32, 64)
    tiny_net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), tiny_net(x))
        torch.testing.assert_close(predictor.model(x), tiny_net(x))
    wrong = _payload(tiny_net) | {"model_kwargs": {**tiny_net.build_kwargs(), "preset": "paper"}}
    g = save_checkpoint(tmp_path / "epoch_0002", wrong)
    with pytest.raises(CheckpointError,
                       match=r"model_kwargs\['preset'\] does not match the checkpoint's preset 'tiny'"):
        load_model(g)
