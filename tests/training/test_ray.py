"""Data-parallel training on a real local Ray: sharding, LR scaling, checkpoints,
progress, resume and recovery from a worker process that really dies.

All runs use the session Ray (``ray_local``: 2 CPUs), 2 CPU workers with gloo, the tiny
DeepLabv3+ on a 32 x 64 grid and 2 optimizer steps per epoch. Expected numbers are
computed here from the definitions (time split, DistributedSampler contract, the LR
rule and cosine schedule), not taken from the code under test.
"""

from __future__ import annotations

import io
import json
import math
import os

import pytest

from climviz.errors import CheckpointError, ConfigError, DataError
from climviz.training.progress import TextProgress

pytestmark = pytest.mark.ray

N_TIMES = 20          # small_run: 20 time steps on 32 x 64
N_TRAIN = 16          # time_split(20, 0.2): the first 16 train, the last 4 validate
STEPS = 2             # max_steps_per_epoch
BATCH = 2             # per worker
LR = 2e-3


def cfg_for(tiny_config, **kw):
    base = dict(epochs=2, batch_size=BATCH, lr=LR, lr_scaling="sqrt", schedule="cosine",
                warmup_epochs=0.0, max_steps_per_epoch=STEPS, deterministic=False)
    base.update(kw)
    return tiny_config(**base)


def cosine(step, total):
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


@pytest.fixture(scope="module")
def first_run(ray_local, small_run, tmp_path_factory):
    """A 2-worker, 2-epoch run on an in-memory Dataset, recording the samples each worker
    loads. Shared by the tests below (a Ray run costs tens of seconds)."""
    from climviz.training.config import TrainConfig
    from climviz.training.ray import RECORD_ENV, train_on_ray

    root = tmp_path_factory.mktemp("ray_runs")
    record = root / "samples"
    cfg = TrainConfig(model="deeplabv3plus", preset="tiny", epochs=2, batch_size=BATCH, lr=LR,
                      lr_scaling="sqrt", schedule="cosine", warmup_epochs=0.0,
                      max_steps_per_epoch=STEPS, precision="fp32", loader_workers=0, seed=7)
    out = io.StringIO()
    progress = TextProgress(cfg.epochs, stream=out, step_interval_s=0.0)
    os.environ[RECORD_ENV] = str(record)
    try:
        res = train_on_ray(cfg, small_run, num_workers=2, storage_path=root, name="first",
                           progress=progress)
    finally:
        del os.environ[RECORD_ENV]
    return res, progress, out.getvalue(), record, root


def test_two_workers_train_and_write_a_loadable_checkpoint(first_run):
    from climviz.training.checkpoint import load_model

    res, _, _, _, root = first_run
    assert res.metrics["epoch"].tolist() == [1, 2]
    assert res.metrics["world_size"].tolist() == [2, 2]
    assert res.metrics["global_step"].tolist() == [STEPS, 2 * STEPS]
    assert res.checkpoint == root / "first" / "epoch_0002" / "checkpoint.pt"
    assert res.run_path == root / "first"
    assert (root / "first" / "epoch_0001" / "checkpoint.pt").is_file()
    model, meta = load_model(res.checkpoint)
    assert meta["epoch"] == 2 and not model.training
    assert res.metrics[["train_loss", "val_loss", "miou"]].notna().all().all()
    assert res.extra["num_workers"] == 2
    assert 0 < res.extra["time_to_first_step_s"] < res.wall_time_s


def test_workers_train_on_disjoint_time_steps(first_run):
    """DistributedSampler: per epoch each worker trains on BATCH*STEPS distinct time steps
    of the training split, none shared with the other worker, reshuffled each epoch."""
    _, _, _, record, _ = first_run
    per_epoch = []
    for epoch in (1, 2):
        seen = [json.loads((record / f"rank{r}_epoch{epoch}.json").read_text()) for r in (0, 1)]
        for s in seen:
            assert len(s) == BATCH * STEPS == len(set(s))
            assert set(s) <= set(range(N_TRAIN))         # never a validation time step
        assert not set(seen[0]) & set(seen[1])
        per_epoch.append(seen[0])
    assert per_epoch[0] != per_epoch[1]


def test_validation_metrics_cover_all_workers(first_run, small_run):
    """The epoch-2 IoUs equal a confusion matrix computed here, in one process, with the
    final weights on all 4 validation time steps: each worker validated its share and the
    confusion matrices were summed (not IoUs averaged)."""
    import numpy as np
    import torch

    from climviz.data import Normalizer
    from climviz.training.checkpoint import load_model

    res, _, _, _, _ = first_run
    model, meta = load_model(res.checkpoint)
    norm = Normalizer.from_dict(meta["normalizer"])
    val = small_run.isel(time=slice(N_TRAIN, N_TIMES))
    x = np.stack([val[c].values for c in meta["channels"]], axis=1).astype(np.float32)
    y = val["LABELS"].values.astype(np.int64)
    with torch.no_grad():
        pred = model(torch.from_numpy(x))  # raw fields: the network applies `norm` itself
    assert norm.channels == tuple(meta["channels"])
    pred = pred.argmax(1).numpy()
    cm = np.bincount(3 * y.ravel() + pred.ravel(), minlength=9).reshape(3, 3)
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    row = res.metrics.iloc[-1]
    assert [row["iou_background"], row["iou_tc"], row["iou_ar"]] == pytest.approx(iou, abs=1e-6)
    assert row["miou"] == pytest.approx(iou.mean(), abs=1e-6)


def test_batch_and_learning_rate_follow_num_workers(first_run):
    """Effective batch = BATCH x 2 workers; peak LR = LR x sqrt(2) ('sqrt' rule), then the
    cosine schedule over 2 epochs x STEPS steps: end of epoch 1 is half way."""
    res, _, _, _, _ = first_run
    assert res.metrics["global_batch_size"].tolist() == [2 * BATCH] * 2
    peak = LR * math.sqrt(2)
    assert res.metrics["lr"].iloc[0] == pytest.approx(peak * cosine(STEPS, 2 * STEPS), rel=1e-6)
    assert res.metrics["lr"].iloc[1] == pytest.approx(0.0, abs=1e-12)


def test_progress_receives_steps_and_epochs_from_the_workers(first_run):
    res, progress, text, _, _ = first_run
    assert [r["epoch"] for r in progress.rows] == [1, 2]
    assert [r["miou"] for r in progress.rows] == pytest.approx(res.metrics["miou"].tolist())
    assert progress.last_step is not None and progress.last_step["global_step"] >= 1
    assert progress.status == "finished" and progress.restarts == 0
    assert "epoch 2/2" in text and "mIoU" in text


def test_resume_continues_epochs_and_lr_schedule(first_run, small_run):
    """resume=True with epochs=4: epochs 3-4 run, 1-2 come from the checkpoint, the step
    count and the cosine schedule (now over 4 epochs) continue."""
    from climviz.training.ray import train_on_ray

    res1, _, _, _, root = first_run
    cfg = res1.config.replace(epochs=4)
    res = train_on_ray(cfg, small_run, num_workers=2, storage_path=root, name="first",
                       resume=True, progress=False)
    m = res.metrics
    assert m["epoch"].tolist() == [1, 2, 3, 4]
    assert m["global_step"].tolist() == [STEPS * e for e in (1, 2, 3, 4)]
    assert m["miou"].iloc[:2].tolist() == pytest.approx(res1.metrics["miou"].tolist())
    peak = LR * math.sqrt(2)
    assert m["lr"].iloc[2] == pytest.approx(peak * cosine(3 * STEPS, 4 * STEPS), rel=1e-6)
    assert res.checkpoint == root / "first" / "epoch_0004" / "checkpoint.pt"


def test_a_killed_worker_is_replaced_and_training_finishes(ray_local, small_run, tmp_path,
                                                           tiny_config, monkeypatch):
    """Rank 1's process exits (os._exit) right after global step STEPS+1, i.e. mid epoch 2.
    With max_failures=1 Ray restarts the workers from the epoch-1 checkpoint and the run
    ends with exactly 2 epochs; the data travel as a netCDF path this time."""
    import psutil

    from climviz.training.ray import FAIL_ENV, train_on_ray

    path = tmp_path / "run.nc"
    small_run.to_netcdf(path)
    marker = tmp_path / "killed.json"
    monkeypatch.setenv(FAIL_ENV, f"1:{STEPS + 1}:{marker}")
    progress = TextProgress(2, stream=io.StringIO(), step_interval_s=0.0)
    cfg = cfg_for(tiny_config)
    res = train_on_ray(cfg, str(path), num_workers=2, storage_path=tmp_path / "runs",
                       name="faulty", max_failures=1, progress=progress)
    killed = json.loads(marker.read_text())
    assert killed["rank"] == 1 and killed["global_step"] == STEPS + 1
    assert not psutil.pid_exists(killed["pid"])           # that process is really gone
    assert res.metrics["epoch"].tolist() == [1, 2]
    assert res.metrics["global_step"].tolist() == [STEPS, 2 * STEPS]
    assert progress.restarts == 1                          # steps restarted after epoch 1
    assert res.checkpoint == tmp_path / "runs" / "faulty" / "epoch_0002" / "checkpoint.pt"


def test_without_retries_the_failure_is_reported(ray_local, small_run, tmp_path, tiny_config,
                                                 monkeypatch):
    """A worker error (here: data without TMQ) comes back as the climviz error it was."""
    from climviz.training.ray import train_on_ray

    cfg = cfg_for(tiny_config, epochs=1)
    with pytest.raises(DataError, match="TMQ"):
        train_on_ray(cfg, small_run.drop_vars("TMQ"), num_workers=1,
                     storage_path=tmp_path, name="bad", progress=False)


def test_runs_are_never_overwritten_and_resume_needs_a_checkpoint(tmp_path, tiny_config, small_run):
    from climviz.training.ray import train_on_ray

    cfg = cfg_for(tiny_config)
    (tmp_path / "old" / "epoch_0001").mkdir(parents=True)
    (tmp_path / "old" / "epoch_0001" / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="name='old'.*already has checkpoints"):
        train_on_ray(cfg, small_run, storage_path=tmp_path, name="old", progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        train_on_ray(cfg, small_run, storage_path=tmp_path, name="new", resume=True)
    with pytest.raises(ConfigError, match="resume=True needs the name"):
        train_on_ray(cfg, small_run, storage_path=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="num_workers"):
        train_on_ray(cfg, small_run, storage_path=tmp_path, name="n", num_workers=0)


# ----------------------------------------------------------------------------- kept worker group
def _weights(checkpoint):
    from climviz.training.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)["model_state"]


def _eventually(check, timeout_s=60.0):
    """Poll ``check`` (Ray frees killed actors' processes and resources asynchronously)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _running(pid):
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _worker_pids(group):
    import ray

    return ray.get([a.ping.remote() for a in group.actors])


def test_a_second_call_reuses_ray_and_the_workers_with_the_same_answers(ray_local, small_run,
                                                                        tmp_path, tiny_config):
    """Two 1-worker calls in one process: the second joins the same Ray and runs on the same
    worker process (no start-up), and both give bit for bit the weights of the same run
    trained here without Ray (same seed, one thread). The Ray Train launcher, kept as an
    option, gives them too."""
    import torch

    from climviz.training.api import train
    from climviz.training.cluster import connect
    from climviz.training.ray import train_on_ray
    from climviz.training.workers import current_group

    cfg = cfg_for(tiny_config, epochs=1, deterministic=True)
    local = train(cfg, small_run, use_ray=False, progress=False, storage_path=tmp_path,
                  name="local")
    first = train(cfg, small_run, num_workers=1, storage_path=tmp_path, name="ray1",
                  progress=False)
    group = current_group()
    assert group is not None and group.num_workers == 1
    pids = _worker_pids(group)
    second = train(cfg, small_run, num_workers=1, storage_path=tmp_path, name="ray2",
                   progress=False)
    assert current_group() is group and _worker_pids(group) == pids
    assert second.extra["startup"]["worker_group_reused"] is True
    assert "actors_s" not in second.extra["startup"]          # nothing was started
    assert second.extra["ray_address"] == first.extra["ray_address"] == ray_local.address
    assert connect() is ray_local                              # still the one session Ray
    assert 0 < second.extra["time_to_first_step_s"] < second.wall_time_s
    via_trainer = train_on_ray(cfg, small_run, num_workers=1, storage_path=tmp_path,
                               name="ray_train", progress=False, launcher="ray_train")
    assert via_trainer.extra["launcher"] == "ray_train"
    expected = _weights(local.checkpoint)
    for res in (first, second, via_trainer):
        got = _weights(res.checkpoint)
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected), res.run_path
        assert res.metrics["miou"].tolist() == local.metrics["miou"].tolist()


def test_the_worker_group_is_replaced_for_other_sizes_and_released_for_other_ray_work(
        ray_local, small_run, tmp_path, tiny_config):
    """Another worker count starts a new group (the old processes end); connect() from other
    climviz Ray work (prediction, labels) releases an idle group so its CPUs are free;
    keep_workers_s=0 releases it at the end of the call."""
    import ray

    from climviz.training.cluster import connect
    from climviz.training.ray import train_on_ray
    from climviz.training.workers import current_group

    cfg = cfg_for(tiny_config, epochs=1)
    train_on_ray(cfg, small_run, num_workers=1, storage_path=tmp_path, name="one", progress=False)
    old = _worker_pids(current_group())
    res = train_on_ray(cfg, small_run, num_workers=2, storage_path=tmp_path, name="two",
                       progress=False)
    assert res.extra["startup"]["worker_group_reused"] is False
    assert res.metrics["world_size"].tolist() == [2]
    new = _worker_pids(current_group())
    assert len(new) == 2 and not set(new) & set(old)
    assert _eventually(lambda: not any(_running(p) for p in old))

    assert connect() is ray_local and current_group() is None  # released for the caller
    assert _eventually(lambda: not any(_running(p) for p in new))
    assert _eventually(lambda: ray.available_resources().get("CPU", 0) == 2.0)
    res = train_on_ray(cfg, small_run, num_workers=1, storage_path=tmp_path, name="once",
                       progress=False, keep_workers_s=0)
    assert res.extra["startup"]["worker_group_reused"] is False and current_group() is None


def test_more_workers_than_the_local_ray_has_cpus_fail_at_once(ray_local, small_run, tmp_path,
                                                               tiny_config):
    """3 one-CPU workers on the 2-CPU session Ray: a ClusterError naming both numbers, not a
    wait for CPUs that never come."""
    import time

    from climviz.errors import ClusterError
    from climviz.training.ray import train_on_ray

    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=r"3 worker\(s\) need 3 CPU in all, the Ray cluster has 2"):
        train_on_ray(cfg_for(tiny_config, epochs=1), small_run, num_workers=3,
                     storage_path=tmp_path, name="too-many", progress=False)
    assert time.monotonic() - t0 < 60
