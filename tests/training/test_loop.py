"""The training engine in one process: it learns, it resumes exactly, it reports."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from climviz.data.schema import LABEL_VAR
from climviz.errors import CheckpointError, ConfigError, DataError
from climviz.training import train
from climviz.training.checkpoint import load_checkpoint, load_model
from climviz.training.loop import epoch_dir, run_training
from climviz.training.result import TrainResult

DESIGN_COLUMNS = ["epoch", "train_loss", "val_loss", "iou_background", "iou_tc", "iou_ar", "miou",
                  "images_per_s", "flops_per_s"]


class _Interrupt(Exception):
    pass


def _crash_after(epoch, rows=None):
    """A report callback that records rows and simulates a crash after ``epoch``."""
    def report(row, ckpt):
        if rows is not None:
            rows.append(row)
        if row["epoch"] == epoch:
            raise _Interrupt
    return report


def test_a_few_hundred_steps_learn_storms(storm_run, tiny_config, tmp_path):
    """240 steps on a synthetic run: loss falls and the validation mIoU beats the
    all-background prediction by a wide margin."""
    cfg = tiny_config(model="deeplabv3plus", epochs=10, batch_size=2, lr=3e-3, optimizer="adamw",
                      max_steps_per_epoch=None, warmup_epochs=0.5, target_miou=0.45)
    steps = []
    rows = run_training(cfg, storm_run, checkpoint_dir=tmp_path,
                        step_callback=lambda info: steps.append(info))
    df = pd.DataFrame(rows)
    # 60 time steps -> 48 train / 12 validation; 24 steps of 2 samples per epoch
    assert len(steps) == 10 * 24 and steps[-1]["global_step"] == 240
    # baseline: predicting background everywhere on the validation block
    val_labels = storm_run[LABEL_VAR].isel(time=slice(48, 60)).values
    bg = float((val_labels == 0).mean())
    baseline_miou = bg / 3                     # IoU_bg = frequency of background, TC = AR = 0
    first, last = df.iloc[0], df.iloc[-1]
    assert last["train_loss"] < 0.3 * first["train_loss"]
    assert last["miou"] > baseline_miou + 0.15, (last["miou"], baseline_miou)
    assert last["iou_tc"] > 0.2 and last["iou_ar"] > 0.2
    assert df["images_per_s"].gt(0).all() and df["flops_per_s"].gt(0).all()
    # time-to-target is the elapsed time of the first epoch whose mIoU crossed 0.45
    hit = df.index[df["miou"] >= 0.45]
    assert len(hit) and df["time_to_target_s"].iloc[-1] == pytest.approx(df["elapsed_s"][hit[0]])
    assert df["time_to_target_s"][: hit[0]].isna().all()


def _final_weights(path):
    return load_checkpoint(path)["model_state"]


@pytest.mark.parametrize("optimizer, loader_workers", [("adamw", 0), ("larc", 1)])
def test_resume_after_interruption_equals_uninterrupted_run(small_run, tiny_config, tmp_path,
                                                            optimizer, loader_workers):
    """Random crops and rolls included, in this process or in a DataLoader worker."""
    cfg = tiny_config(epochs=3, optimizer=optimizer, lr=0.05 if optimizer == "larc" else 3e-3,
                      crop=[32, 32], random_roll=True, batch_size=2, max_steps_per_epoch=3,
                      loader_workers=loader_workers)
    full = run_training(cfg, small_run, checkpoint_dir=tmp_path / "full")

    with pytest.raises(_Interrupt):
        run_training(cfg, small_run, checkpoint_dir=tmp_path / "cut", report=_crash_after(1))
    assert not epoch_dir(tmp_path / "cut", 2).exists()
    resumed = run_training(cfg, small_run, checkpoint_dir=tmp_path / "cut",
                           resume_from=epoch_dir(tmp_path / "cut", 1))
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for a, b in zip(full, resumed):
        for key in ("train_loss", "val_loss", "miou", "lr", "global_step"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    wa = _final_weights(epoch_dir(tmp_path / "full", 3))
    wb = _final_weights(epoch_dir(tmp_path / "cut", 3))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)
    # resuming a finished run returns its history without training
    again = run_training(cfg, small_run, checkpoint_dir=tmp_path / "cut",
                         resume_from=epoch_dir(tmp_path / "cut", 3))
    assert [r["epoch"] for r in again] == [1, 2, 3] and again[-1]["elapsed_s"] == resumed[-1]["elapsed_s"]


def test_train_in_process_returns_a_result(small_run, tiny_config, tmp_path, capsys):
    cfg = tiny_config(epochs=2, lr=4e-3, warmup_epochs=0, schedule="cosine", target_miou=0.01,
                      optimizer="lamb", dice_weight=0.5, checkpoint_every=1, log_every=3)
    steps = []
    res = train(cfg, small_run, use_ray=False, storage_path=tmp_path, name="run1",
                step_callback=steps.append)
    assert [s["global_step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert isinstance(res, TrainResult)
    assert list(res.metrics.columns[:2]) == ["epoch", "global_step"]
    assert set(DESIGN_COLUMNS) <= set(res.metrics.columns)
    assert res.metrics["epoch"].tolist() == [1, 2]
    assert res.checkpoint == tmp_path / "run1" / "epoch_0002" / "checkpoint.pt"
    best = int(res.metrics["miou"].idxmax()) + 1
    assert res.best_checkpoint == tmp_path / "run1" / f"epoch_{best:04d}" / "checkpoint.pt"
    out = capsys.readouterr().out
    assert "epoch   1" in out and "mIoU" in out
    assert "epoch 2 step 3/3" in out and "step 1/3" not in out      # every log_every steps
    # cosine over 2 x 3 steps: after epoch 1 (3 of 6 steps) the factor is (1 + cos(pi/2)) / 2
    assert res.metrics["lr"][0] == pytest.approx(4e-3 * 0.5)
    assert res.metrics["lr"][1] == pytest.approx(0.0, abs=1e-12)
    # a tiny target is reached in the first epoch
    assert res.time_to_target_s == pytest.approx(res.metrics["elapsed_s"][0])
    # the checkpoint predicts
    net, meta = load_model(res.checkpoint)
    assert meta["epoch"] == 2 and meta["grid"] == [32, 64] and len(meta["metrics"]) == 2
    x = torch.zeros(1, 16, 32, 64)
    with torch.no_grad():
        assert net(x).shape == (1, 3, 32, 64)
    # JSON round trip of the result (Ray jobs hand it back as JSON)
    back = TrainResult.from_dict(res.to_dict())
    assert back.checkpoint == res.checkpoint and back.config == res.config
    pd.testing.assert_frame_equal(back.metrics, res.metrics, check_dtype=False)

    # resume=True with more epochs continues the count, the step counter and the history
    res2 = train(cfg.replace(epochs=3), small_run, use_ray=False, storage_path=tmp_path,
                 name="run1", resume=True, progress=False)
    assert res2.metrics["epoch"].tolist() == [1, 2, 3]
    assert res2.metrics["global_step"].tolist() == [3, 6, 9]
    pd.testing.assert_series_equal(res2.metrics["train_loss"][:2], res.metrics["train_loss"])


def test_cpu_bf16_autocast_trains(small_run, tiny_config, tmp_path):
    cfg = tiny_config(epochs=1, precision="bf16", max_steps_per_epoch=2, model="tiramisu")
    rows = run_training(cfg, small_run, checkpoint_dir=tmp_path)
    assert rows[0]["precision"] == "bf16"
    assert math.isfinite(rows[0]["train_loss"]) and math.isfinite(rows[0]["val_loss"])
    assert rows[0]["skipped_steps"] == 0


def test_grad_accumulation_counts_optimizer_steps(small_run, tiny_config, tmp_path):
    seen = []
    cfg = tiny_config(epochs=1, batch_size=2, grad_accum=2, max_steps_per_epoch=2)
    rows = run_training(cfg, small_run, checkpoint_dir=tmp_path, step_callback=seen.append)
    assert [s["step"] for s in seen] == [1, 2]
    assert all(s["batch_size"] == 4 and len(set(s["time_indices"])) == 4 for s in seen)
    # training time steps come from the first 80 % of the run only (time split)
    assert max(t for s in seen for t in s["time_indices"]) < 16
    assert rows[0]["global_batch_size"] == 4 and rows[0]["samples"] == 8


def test_bad_data_and_checkpoints_are_clear_errors(small_run, tiny_config, tmp_path):
    cfg = tiny_config(epochs=1, max_steps_per_epoch=1)
    with pytest.raises(DataError, match=r"'LABELS' not found"):
        run_training(cfg, small_run.drop_vars(LABEL_VAR), checkpoint_dir=tmp_path)
    with pytest.raises(DataError, match=r"\['PSL'\] not found"):
        run_training(cfg, small_run.drop_vars("PSL"), checkpoint_dir=tmp_path)
    with pytest.raises(DataError, match="optimizer step needs 32"):
        run_training(cfg.replace(batch_size=32), small_run, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="TrainConfig.data"):
        run_training(cfg, None, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="TrainConfig.crop"):
        run_training(cfg.replace(crop=[64, 64]), small_run, checkpoint_dir=tmp_path)
    run_training(cfg, small_run, checkpoint_dir=tmp_path / "a")
    with pytest.raises(CheckpointError, match="expected tiramisu"):
        run_training(cfg.replace(model="tiramisu"), small_run, checkpoint_dir=tmp_path / "b",
                     resume_from=epoch_dir(tmp_path / "a", 1))
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        train(cfg, small_run, use_ray=False, storage_path=tmp_path, name="nothing", resume=True)


def test_checkpoint_every_and_keep(small_run, tiny_config, tmp_path):
    cfg = tiny_config(epochs=4, max_steps_per_epoch=1, checkpoint_every=2, keep_checkpoints=1)
    reported = []
    run_training(cfg, small_run, checkpoint_dir=tmp_path,
                 report=lambda row, ckpt: reported.append((row["epoch"], ckpt)))
    assert [c is not None for _, c in reported] == [False, True, False, True]
    kept = sorted(p.name for p in tmp_path.glob("epoch_*"))
    assert "epoch_0004" in kept and "epoch_0001" not in kept and "epoch_0003" not in kept
    assert len(kept) <= 2          # the newest, plus the best if it is another one


def test_resume_with_a_new_peak_lr_rescales_the_schedule(small_run, tiny_config, tmp_path):
    """A resumed run that changes the peak LR (as a new worker count would, through the
    scaling rule) keeps the schedule's position but uses the new peak."""
    cfg = tiny_config(epochs=2, lr=4e-3, warmup_epochs=0, schedule="step", lr_milestones=[2],
                      lr_gamma=0.5, max_steps_per_epoch=3)
    stop = []
    with pytest.raises(_Interrupt):
        run_training(cfg, small_run, checkpoint_dir=tmp_path, report=_crash_after(1, stop))
    assert stop[0]["lr"] == pytest.approx(4e-3)
    seen = []
    rows = run_training(cfg.replace(lr=8e-3), small_run, checkpoint_dir=tmp_path,
                        resume_from=epoch_dir(tmp_path, 1), step_callback=seen.append)
    # epoch 2 runs at the new peak; after its last step (step 6 = milestone 2) it halves
    assert [s["lr"] for s in seen] == pytest.approx([8e-3, 8e-3, 4e-3])
    assert rows[1]["lr"] == pytest.approx(8e-3 * 0.5)


def test_two_process_ddp_shards_data_and_sums_confusion_matrices(small_run, tiny_config, tmp_path):
    """The engine with torch.distributed (gloo, 2 processes, no Ray): workers see disjoint
    time steps, and the reported validation IoU is that of the whole validation block
    (confusion matrices summed across workers), recomputed here from the checkpoint."""
    import json
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from climviz.data import Normalizer, SegmentationDataset, write_run
    from climviz.training.metrics import confusion_matrix, metrics_from_confusion

    run = write_run(small_run, tmp_path / "run.nc")
    cfg = tiny_config(epochs=1, batch_size=2, max_steps_per_epoch=None, lr_scaling="linear")
    cfg.save(tmp_path / "cfg.yaml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = Path(__file__).with_name("ddp_worker.py")
    procs = [subprocess.Popen([sys.executable, str(worker), str(r), "2", str(port), str(run),
                               str(tmp_path / "cfg.yaml"), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out[-3000:]
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    seen = [{t for step in r["steps"] for t in step} for r in res]
    assert seen[0] and seen[1] and not seen[0] & seen[1]            # disjoint shards
    assert seen[0] | seen[1] == set(range(16))                       # 16 training steps, all used
    assert len(res[0]["steps"]) == len(res[1]["steps"]) == 4         # 8 per rank / batch 2
    row0, row1 = res[0]["rows"][0], res[1]["rows"][0]
    for key in ("miou", "val_loss", "train_loss", "iou_tc"):
        assert row0[key] == pytest.approx(row1[key], nan_ok=True)   # every rank reports the same
    assert row0["world_size"] == 2 and row0["global_batch_size"] == 4
    assert res[0]["reports"][0] is not None and res[1]["reports"][0] is None
    # linear LR scaling: the peak LR of 2 workers is twice the configured one
    base_lrs = load_checkpoint(res[0]["reports"][0])["scheduler_state"]["base_lrs"]
    assert base_lrs == pytest.approx([2 * cfg.lr] * len(base_lrs))
    # recompute the validation IoU over the whole held-out block from rank 0's checkpoint
    # (the loaded network normalizes its raw input itself, as in training)
    net, meta = load_model(res[0]["reports"][0])
    assert Normalizer.from_dict(meta["normalizer"]).channels == tuple(cfg.channels)
    val = SegmentationDataset(small_run, channels=cfg.channels, time_indices=range(16, 20),
                              nan_fill=None)
    x = torch.stack([val[i][0] for i in range(4)])
    y = torch.stack([val[i][1] for i in range(4)])
    with torch.no_grad():
        pred = net(x).argmax(1)
    cm = confusion_matrix(pred, y)
    expect = metrics_from_confusion(cm)
    assert row0["miou"] == pytest.approx(expect["miou"], abs=1e-6)
    assert row0["pixel_accuracy"] == pytest.approx(expect["pixel_accuracy"], abs=1e-6)


def test_cgnet_trains_with_the_climatenet_jaccard_recipe(small_run, tiny_config, tmp_path):
    """ClimateNet's recipe: CGNet, softmax Jaccard loss, Adam(W) at lr 1e-3 without decay."""
    cfg = tiny_config(model="cgnet", preset="tiny", loss="jaccard", lr=1e-3, weight_decay=0.0,
                      warmup_epochs=0, schedule="constant", epochs=1, max_steps_per_epoch=3)
    steps = []
    rows = run_training(cfg, small_run, checkpoint_dir=tmp_path, step_callback=steps.append)
    assert len(steps) == 3 and all(0.0 <= s["loss"] <= 1.0 for s in steps)   # 1 - mean IoU
    assert all(s["lr"] == pytest.approx(1e-3) for s in steps)
    assert 0.0 <= rows[0]["val_loss"] <= 1.0
    net, meta = load_model(epoch_dir(tmp_path, 1))
    assert type(net).__name__ == "CGNet" and meta["config"]["loss"] == "jaccard"
