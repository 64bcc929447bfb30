"""Data-parallel training on Ray: :func:`train_on_ray`, behind ``climviz.train(...)``.

One call runs a Ray Train (V2) ``TorchTrainer``: ``num_workers`` Ray actors each run
the same engine, :func:`climviz.training.loop.run_training`, with torch DDP (gloo on
CPU, NCCL on GPU) set up by Ray.

Scaling with ``num_workers`` (W)
--------------------------------
* **Sharding**: each worker gets distinct training time steps (``DistributedSampler``,
  reshuffled each epoch, the remainder of ``n_train / W`` dropped) and a distinct
  strided share of the validation time steps; loss sums, sample counts and confusion
  matrices are summed over workers before metrics are computed (IoU is never averaged
  across workers).
* **Effective batch**: ``batch_size`` is per worker, so one optimizer step sees
  ``batch_size * grad_accum * W`` samples (``TrainConfig.effective_batch_size(W)``) and
  an epoch has ``W`` times fewer steps.
* **Learning rate**: ``TrainConfig.lr`` is the single-worker peak LR; the peak becomes
  ``lr * W`` (``lr_scaling="linear"``), ``lr * sqrt(W)`` (``"sqrt"``) or ``lr``
  (``"none"``), reached after ``warmup_epochs`` of linear warm-up; for large batches use
  ``optimizer="lamb"`` or ``"larc"`` as in the paper.

Checkpoints, resume, failures
-----------------------------
Rank 0 writes ``epoch_XXXX/checkpoint.pt`` after each checkpointed epoch and reports it
to Ray, which stores it at ``storage_path/name/epoch_XXXX/checkpoint.pt`` (the same
layout as ``train(..., use_ray=False)``). With ``max_failures > 0`` a dead worker makes
Ray restart the whole worker group, which continues from the latest stored checkpoint
(``ray.train.get_checkpoint()``), so at most the epoch in progress is lost.
``resume=True`` continues the latest checkpoint of the run ``name``; ``resume=<path>``
starts a new run from that checkpoint. Epoch count, LR schedule and metrics history
continue.

Data
----
Paths (or globs) are opened by every worker (they must be readable on every node, e.g.
on shared storage); relative paths are made absolute first. An in-memory
``xr.Dataset`` is put into the Ray object store (loaded into memory first); datasets
larger than ``max_object_bytes`` are written to ``<run>/_inputs/data.nc`` instead.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from climviz.errors import CheckpointError, ClimvizError, ClusterError, ConfigError

__all__ = ["train_on_ray", "default_num_workers"]

#: Environment variables (test hooks) forwarded from the driver to the Ray workers.
FORWARDED_ENV_PREFIX = "CLIMVIZ_"
#: Test hook: ``"RANK:GLOBAL_STEP:MARKER_FILE"`` -- that rank's process dies
#: (``os._exit``) right after that optimizer step, once (the marker file records it).
FAIL_ENV = "CLIMVIZ_TEST_FAIL_AT"
#: Test hook: a directory where every worker writes the run time indices it trained on,
#: per epoch (``rank{r}_epoch{e}.json``, from the engine's step information), to check
#: the sharding.
RECORD_ENV = "CLIMVIZ_TEST_RECORD_SAMPLES"

_STEP_EVENT_INTERVAL_S = 0.5


# ============================================================================ event sink
class _EventSink:
    """Ray actor collecting progress events from the rank-0 worker for the driver."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []

    def push(self, event: dict[str, Any]) -> None:
        self._events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        out, self._events = self._events, []
        return out


class _Poller:
    """Background thread draining the event sink into a Progress display."""

    def __init__(self, sink: Any, progress: Any, interval_s: float = 0.5) -> None:
        self.sink = sink
        self.progress = progress
        self.interval_s = interval_s
        self.first_step_time: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="climviz-progress", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> "_Poller":
        self._thread.start()
        return self

    def drain_once(self) -> None:
        import ray

        with self._lock:
            try:
                events = ray.get(self.sink.drain.remote(), timeout=30)
            except Exception:
                return
            for ev in events:
                if ev.get("type") == "step" and self.first_step_time is None:
                    self.first_step_time = float(ev.get("time", time.time()))
                try:
                    self.progress.update(ev)
                except Exception:  # a display problem must not stop training
                    pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.drain_once()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.drain_once()


# ============================================================================ worker side
def _parse_fail_hook(text: str | None) -> tuple[int, int, Path] | None:
    if not text:
        return None
    rank, step, marker = text.split(":", 2)
    return int(rank), int(step), Path(marker)


def _resolve_worker_data(spec: Mapping[str, Any]) -> Any:
    kind = spec["kind"]
    if kind == "object":
        import ray

        return ray.get(spec["ref"])
    return spec["value"]


def _plain_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars of a metrics row as plain Python numbers/strings (what Ray stores)."""
    import numbers

    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, (bool, str)):
            out[k] = v
        elif isinstance(v, numbers.Integral):
            out[k] = int(v)
        elif isinstance(v, numbers.Real):
            out[k] = float(v)
    return out


def _train_worker(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Body of every Ray Train worker: set up, then run the engine."""
    import ray.train
    import torch

    from climviz.training.config import TrainConfig
    from climviz.training.loop import run_training

    ctx = ray.train.get_context()
    rank, world_size = ctx.get_world_rank(), ctx.get_world_size()
    cfg = TrainConfig.from_dict(config["cfg"])
    cpus = config.get("cpus_per_worker")
    if cpus and not config["use_gpu"]:
        torch.set_num_threads(max(1, int(cpus)))
    if config["use_gpu"]:
        from ray.train.torch import get_device

        device = get_device()
    else:
        device = torch.device("cpu")
    data = _resolve_worker_data(config["data"])
    sink = config.get("sink")
    fail_hook = _parse_fail_hook(os.environ.get(FAIL_ENV))
    record_dir = os.environ.get(RECORD_ENV)
    seen: list[int] | None = [] if record_dir else None
    images_per_step = cfg.effective_batch_size(world_size)
    steps_per_epoch = config.get("steps_per_epoch")
    last = {"push": -math.inf, "time": None, "step": 0}

    def on_step(info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if fail_hook is not None:
            f_rank, f_step, marker = fail_hook
            if rank == f_rank and int(info.get("global_step", -1)) == f_step and not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps({"pid": os.getpid(), "rank": rank,
                                              "global_step": f_step, "time": time.time()}))
                os._exit(17)  # real death of this worker process, mid-epoch
        if seen is not None:
            seen.extend(int(i) for i in info.get("time_indices", ()))
        if rank == 0 and sink is not None:
            rate = None
            if last["time"] is not None and now > last["time"]:
                rate = images_per_step * (int(info.get("step", 0)) - last["step"]) / (now - last["time"])
            last["time"], last["step"] = now, int(info.get("step", 0))
            if int(info.get("step", 0)) == 1:
                rate = None
            due = now - last["push"] >= _STEP_EVENT_INTERVAL_S or int(info.get("step", 0)) == 1
            if due:
                last["push"] = now
                event = {"type": "step", "time": time.time(),
                         "epoch": int(info.get("epoch", 0)), "step": int(info.get("step", 0)),
                         "global_step": int(info.get("global_step", 0)),
                         "steps_per_epoch": info.get("steps_per_epoch", steps_per_epoch),
                         "loss": float(info.get("loss", float("nan"))),
                         "lr": float(info.get("lr", float("nan"))),
                         "images_per_s": rate}
                sink.push.remote(event)

    def report(row: dict[str, Any], ckpt_dir: Path | None) -> None:
        metrics = _plain_metrics(row)
        if seen is not None:
            epoch = int(row["epoch"])
            path = Path(record_dir) / f"rank{rank}_epoch{epoch}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(sorted(seen)))
            seen.clear()
        if rank == 0 and sink is not None:
            sink.push.remote({"type": "epoch", **metrics})
        if ckpt_dir is not None:
            from ray.train import Checkpoint

            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(ckpt_dir)),
                             checkpoint_dir_name=Path(ckpt_dir).name)
            shutil.rmtree(ckpt_dir, ignore_errors=True)  # stored by Ray now
        else:
            ray.train.report(metrics)

    local_dir = Path(tempfile.mkdtemp(prefix=f"climviz-rank{rank}-"))
    try:
        checkpoint = ray.train.get_checkpoint()
        if rank == 0 and sink is not None:
            sink.push.remote({"type": "workers_started", "time": time.time(),
                              "resumed": checkpoint is not None})
        if checkpoint is not None:
            # a restart after a failure, or a resumed named run: Ray's latest checkpoint
            cm = checkpoint.as_directory()
        elif config.get("resume_from"):
            cm = contextlib.nullcontext(config["resume_from"])
        else:
            cm = contextlib.nullcontext(None)
        with cm as resume_from:
            history = run_training(
                cfg, data, normalizer=config.get("normalizer"), rank=rank,
                world_size=world_size, device=device, checkpoint_dir=local_dir,
                resume_from=resume_from, report=report, step_callback=on_step,
            )
        return history
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)


# ============================================================================ driver side
def default_num_workers(resources: Mapping[str, float], use_gpu: bool,
                        cpus_per_worker: float = 1.0, max_cpu_workers: int = 8) -> int:
    """Workers to start when ``num_workers`` is not given.

    One per GPU with ``use_gpu``; otherwise one per ``cpus_per_worker`` CPUs of the
    cluster, at most ``max_cpu_workers`` (CPU data parallelism beyond that rarely pays).
    """
    if use_gpu:
        gpus = int(resources.get("GPU", 0))
        if gpus < 1:
            raise ClusterError("train(use_gpu=True): the Ray cluster has no GPU")
        return gpus
    cpus = float(resources.get("CPU", 1))
    return int(max(1, min(max_cpu_workers, cpus // max(cpus_per_worker, 1e-9))))


def _absolute_data(data: Any) -> Any:
    if isinstance(data, (str, os.PathLike)):
        return os.path.abspath(os.path.expanduser(os.fspath(data)))
    if isinstance(data, (list, tuple)):
        return [_absolute_data(d) for d in data]
    return data


def _steps_per_epoch(cfg: Any, n_times: int, world_size: int) -> int | None:
    try:
        from climviz.data import time_split

        train_idx, _ = time_split(n_times, cfg.val_fraction)
        per_rank = len(train_idx) // world_size
        steps = (per_rank // cfg.batch_size) // cfg.grad_accum
        if cfg.max_steps_per_epoch is not None:
            steps = min(steps, cfg.max_steps_per_epoch)
        return int(steps) if steps > 0 else None
    except Exception:
        return None


def _has_run_state(run_dir: Path) -> bool:
    from climviz.training.checkpoint import find_latest_checkpoint

    if find_latest_checkpoint(run_dir) is not None:
        return True
    return run_dir.is_dir() and any(run_dir.glob("checkpoint_manager_snapshot*.json"))


def _original_error(exc: BaseException) -> BaseException | None:
    """The climviz error a worker raised, if the Ray error wraps one."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ClimvizError):
            return e
        stack.extend([getattr(e, "__cause__", None), getattr(e, "cause", None)])
        failures = getattr(e, "worker_failures", None)
        if isinstance(failures, Mapping):
            stack.extend(failures.values())
        elif isinstance(failures, (list, tuple)):
            stack.extend(failures)
        err = getattr(e, "error", None)
        if isinstance(err, BaseException):
            stack.append(err)
    return None


def train_on_ray(
    cfg: Any,
    data: Any = None,
    *,
    address: str | None = None,
    num_workers: int | None = None,
    use_gpu: bool = False,
    resources_per_worker: Mapping[str, float] | None = None,
    storage_path: str | os.PathLike | None = None,
    name: str | None = None,
    resume: bool | str | os.PathLike = False,
    max_failures: int = 0,
    progress: Any = True,
    normalizer: Any = None,
    connect_timeout_s: float = 30.0,
    ray_init: Mapping[str, Any] | None = None,
    max_object_bytes: int = 1 << 30,
) -> Any:
    """Train ``cfg`` on ``data`` with ``num_workers`` Ray workers (torch DDP).

    Parameters
    ----------
    cfg : TrainConfig, dict or path
        The run's configuration (``batch_size`` is per worker; see the module
        docstring for how batch, LR and sharding follow ``num_workers``).
    data : xr.Dataset, path, list of paths or glob, optional
        A labelled run (default ``cfg.data``).
    address : str, optional
        ``None`` starts a local Ray sized to this machine (or reuses the one this
        process is connected to); ``"auto"``, ``"host:port"`` or ``"ray://host:10001"``
        joins a cluster (see :func:`climviz.training.cluster.connect`).
    num_workers : int, optional
        Training processes (default: one per GPU with ``use_gpu``, else one per CPU of
        the cluster, at most 8).
    use_gpu : bool
        One GPU per worker, NCCL backend, CUDA mixed precision.
    resources_per_worker : dict, optional
        Ray resources per worker, e.g. ``{"CPU": 4}`` (also sets torch's threads).
    storage_path, name : optional
        Run directory ``storage_path/name`` (defaults ``./climviz_runs`` and
        ``<model>-<preset>-<UTC time>``); must be shared by all nodes of a cluster.
    resume : bool or path
        ``True``: continue the latest checkpoint of run ``name``; a path: start this
        run from that checkpoint. ``False`` with an existing run ``name`` that has
        checkpoints is an error (nothing is overwritten).
    max_failures : int
        Worker-group failures to recover from (from the latest checkpoint); -1 = no limit.
    progress : bool, str or Progress
        Live progress (widget panel in Jupyter, text in a terminal); see
        :func:`climviz.training.progress.make_progress`.
    normalizer : Normalizer or dict, optional
        Normalization to use (default: fitted on the training split).
    connect_timeout_s : float
        Bound on reaching the cluster (seconds).
    ray_init : dict, optional
        Extra arguments for starting a local Ray (``num_cpus``, ``object_store_memory``,
        ``dashboard``, ``log_to_driver`` ...), see :func:`~climviz.training.cluster.connect`.
    max_object_bytes : int
        In-memory datasets up to this size travel through the object store; larger ones
        are written to ``<run>/_inputs/data.nc``.

    Returns
    -------
    TrainResult
        ``extra`` holds ``ray_address``, ``num_workers``, ``log_dir``,
        ``time_to_first_step_s`` (from this call to the first training step) and
        ``restarts`` (worker-group restarts seen by the progress display).

    Raises
    ------
    ConfigError, DataError, CheckpointError
        Bad configuration, data or checkpoint (also when raised inside a worker).
    ClusterError
        Ray cannot be reached, or training failed on the cluster.
    """
    t_call = time.time()
    t0 = time.perf_counter()
    import xarray as xr

    from climviz.training.api import as_config, default_run_dir, result_from_history
    from climviz.training.checkpoint import checkpoint_file, find_latest_checkpoint
    from climviz.training.cluster import connect
    from climviz.training.progress import make_progress

    cfg = as_config(cfg)
    data = cfg.training_data(data)
    if not isinstance(max_failures, int) or max_failures < -1:
        raise ConfigError(f"train: max_failures must be an integer >= -1, found {max_failures!r}")
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
        raise ConfigError(f"train: num_workers must be an integer >= 1, found {num_workers!r}")
    if resume is True and name is None:
        raise ConfigError("train: resume=True needs the name of the run to resume (name=...)")

    run_dir = default_run_dir(cfg, storage_path, name)
    resume_from: str | None = None
    if resume is True:
        latest = find_latest_checkpoint(run_dir)
        if latest is None:
            raise CheckpointError(f"{run_dir}: no checkpoint to resume from (run {run_dir.name!r})")
        resume_from = str(latest)
    else:
        if _has_run_state(run_dir):
            raise ConfigError(
                f"train: name={run_dir.name!r}: run {run_dir} already has checkpoints; pass "
                "resume=True to continue it, or choose another name")
        if resume:
            f = checkpoint_file(resume)
            if not f.exists():
                raise CheckpointError(f"{f}: checkpoint to resume from not found")
            resume_from = str(f.resolve())

    init = dict(ray_init or {})
    info = connect(address, timeout_s=connect_timeout_s, **init)

    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources = dict(resources_per_worker or {})
    cpus_per_worker = float(resources.get("CPU", 1.0))
    if num_workers is None:
        num_workers = default_num_workers(info.resources, use_gpu, cpus_per_worker)

    n_times = None
    object_ref = None
    if isinstance(data, xr.Dataset):
        n_times = int(data.sizes.get("time", 0))
        if data.nbytes <= max_object_bytes:
            object_ref = ray.put(data.load())
            data_spec: dict[str, Any] = {"kind": "object", "ref": object_ref}
        else:
            from climviz.utils.atomic import atomic_path

            target = run_dir / "_inputs" / "data.nc"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                data.to_netcdf(tmp)
            data_spec = {"kind": "value", "value": str(target)}
    else:
        data_spec = {"kind": "value", "value": _absolute_data(data)}
    steps_per_epoch = _steps_per_epoch(cfg, n_times, num_workers) if n_times else None

    title = f"climviz training {cfg.model}/{cfg.preset}"
    display = make_progress(progress, cfg.epochs, title=title)
    display.update({"type": "start", "run": run_dir.name, "epochs": cfg.epochs,
                    "num_workers": num_workers, "address": info.address,
                    "log_dir": info.log_dir})
    sink = ray.remote(num_cpus=0)(_EventSink).remote()
    poller = _Poller(sink, display).start()

    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
    worker_config = {
        "cfg": cfg.to_dict(),
        "data": data_spec,
        "resume_from": resume_from,
        "normalizer": normalizer.to_dict() if hasattr(normalizer, "to_dict") else normalizer,
        "use_gpu": bool(use_gpu),
        "cpus_per_worker": cpus_per_worker,
        "steps_per_epoch": steps_per_epoch,
        "sink": sink,
    }
    keep = cfg.keep_checkpoints
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config=worker_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker=resources or None),
        run_config=RunConfig(
            name=run_dir.name,
            storage_path=str(run_dir.parent),
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=keep,
                checkpoint_score_attribute="miou" if keep else None,
                checkpoint_score_order="max"),
            worker_runtime_env={"env_vars": env} if env else None,
        ),
    )
    status, error_text = "failed", None
    try:
        result = trainer.fit()
        status = "finished"
    except KeyboardInterrupt:
        status, error_text = "interrupted", "interrupted by the user"
        raise
    except Exception as exc:
        error_text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        original = _original_error(exc)
        if original is not None:
            raise original from exc
        raise ClusterError(f"training run {run_dir.name!r} failed on Ray: {exc}") from exc
    finally:
        poller.stop()
        display.close(status, error_text)
        with contextlib.suppress(Exception):
            ray.kill(sink)
        del object_ref

    history = result.return_value
    if not history:
        frame = result.metrics_dataframe
        history = frame.to_dict("records") if frame is not None else []
    wall = time.perf_counter() - t0
    try:
        res = result_from_history(list(history), cfg, run_dir, wall, run_dir)
    except CheckpointError:
        # the run directory lives on the cluster (e.g. through Ray Client): use Ray's paths
        from climviz.training.result import TrainResult, metrics_frame

        last = Path(result.checkpoint.path) / "checkpoint.pt" if result.checkpoint else None
        res = TrainResult(checkpoint=last, best_checkpoint=last, metrics=metrics_frame(list(history)),
                          config=cfg, wall_time_s=wall, run_path=Path(str(result.path)))
    first = poller.first_step_time
    res.extra.update({
        "ray_address": info.address,
        "num_workers": num_workers,
        "log_dir": info.log_dir,
        "time_to_first_step_s": (first - t_call) if first is not None else float("nan"),
        "restarts": getattr(display, "restarts", 0),
        "ray_result_path": str(result.path),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    })
    return res
