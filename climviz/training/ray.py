"""Data-parallel training on Ray: :func:`train_on_ray`, behind ``climviz.train(...)``.

``num_workers`` Ray actors each run the same engine,
:func:`climviz.training.loop.run_training`, with torch DDP (gloo on CPU, NCCL on GPU).

Launchers
---------
``launcher="workers"`` (default) runs on a group of Ray actors that this driver keeps
alive between calls (:mod:`climviz.training.workers`): torch and climviz imported and
the process group formed once, so a second ``train`` call in a notebook reuses the
running Ray (:func:`~climviz.training.cluster.connect` never starts a second one) and
the workers. ``launcher="ray_train"`` runs a Ray Train (V2) ``TorchTrainer`` per call,
as before issue 19. Why the default changed (``benchmarks/results/ray_quick.json``,
2 cores at load ~6): with Ray already running, a ``TorchTrainer`` took ~50 s to its
first step (~40 s of it from ``fit()`` to the workers running: controller actor,
placement group, worker processes importing torch, process group), the kept group
~1-4 s (the engine's own set-up: normalization fit, FLOP count, model, first batch).
From a cold start both pay Ray's own start (~10-25 s); the workers then start once.

Data is never sent as arrays when it is a file: paths (and globs) travel as absolute
paths and every worker opens them lazily (see below).

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
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from climviz.errors import CheckpointError, ClimvizError, ClusterError, ConfigError
from climviz.training.checkpoint import checkpoint_file, find_latest_checkpoint
from climviz.training.config import TrainConfig, as_config
from climviz.training.result import (
    TrainResult,
    default_run_dir,
    metrics_frame,
    result_from_history,
)
from climviz.training.workers import (
    FAIL_ENV,
    FORWARDED_ENV_PREFIX,
    RECORD_ENV,
    WorkerDied,
    WorkerHooks,
    acquire_group,
    release_later,
    release_workers,
    resolve_worker_data,
    worker_device,
)

__all__ = ["FAIL_ENV", "RECORD_ENV", "default_num_workers", "release_workers", "train_on_ray"]



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

    def __init__(self, drain: Callable[[], list[dict[str, Any]]], progress: Any,
                 interval_s: float = 0.5) -> None:
        self.drain = drain
        self.progress = progress
        self.interval_s = interval_s
        self.first_step_time: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="climviz-progress", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> _Poller:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def drain_once(self) -> None:
        with self._lock:
            try:
                events = self.drain()
            except Exception:  # noqa: BLE001 -- progress is best effort; training goes on
                return
            for ev in events:
                if ev.get("type") == "step" and self.first_step_time is None:
                    self.first_step_time = float(ev.get("time", time.time()))
                try:
                    self.progress.update(ev)
                except Exception:  # noqa: BLE001, S110 -- a display problem must not stop training
                    pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.drain_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.drain_once()


# ============================================================================ worker side
def _resume_source(config: Mapping[str, Any]) -> contextlib.AbstractContextManager:
    """The checkpoint this worker group continues from, as a context manager.

    Ray's latest checkpoint (a restart after a failure, or a resumed named run), else
    the checkpoint given to ``resume=``, else nothing.
    """
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    sink = config.get("sink")
    if ray.train.get_context().get_world_rank() == 0 and sink is not None:
        sink.push.remote({"type": "workers_started", "time": time.time(),
                          "resumed": checkpoint is not None})
    if checkpoint is not None:
        return checkpoint.as_directory()
    return contextlib.nullcontext(config.get("resume_from") or None)


def _train_worker(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Body of every Ray Train worker: set up, then run the engine."""
    import ray.train

    from climviz.training.loop import run_training

    ctx = ray.train.get_context()
    rank, world_size = ctx.get_world_rank(), ctx.get_world_size()
    cfg = TrainConfig.from_dict(config["cfg"])
    device = worker_device(config)
    data = resolve_worker_data(config["data"])
    sink = config.get("sink")
    hooks = WorkerHooks(config, cfg, rank, world_size,
                        None if sink is None else sink.push.remote, ray_train=True)
    local_dir = Path(tempfile.mkdtemp(prefix=f"climviz-rank{rank}-"))
    try:
        with _resume_source(config) as resume_from:
            return run_training(
                cfg, data, normalizer=config.get("normalizer"), rank=rank,
                world_size=world_size, device=device, checkpoint_dir=local_dir,
                resume_from=resume_from, report=hooks.report, step_callback=hooks.on_step)
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
    except Exception:  # noqa: BLE001 -- only the progress bar's total; the engine decides
        return None


def _has_run_state(run_dir: Path) -> bool:
    if find_latest_checkpoint(run_dir) is not None:
        return True
    return run_dir.is_dir() and any(run_dir.glob("checkpoint_manager_snapshot*.json"))


def _last_line(exc: BaseException) -> str:
    """``"<Type>: <last line of the message>"``: what the progress display shows of a failure."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"


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
    launcher: Literal["workers", "ray_train"] = "workers",
    keep_workers_s: float = 600.0,
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
        With ``launcher="workers"`` an error a worker raises on purpose (a climviz
        ``ConfigError``, ``DataError``, ``DivergenceError`` ...) is not retried: it would
        fail the same way again.
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
    launcher : {"workers", "ray_train"}
        ``"workers"`` (default): a group of Ray actors kept alive between calls
        (:mod:`climviz.training.workers`), so a second call with the same
        ``num_workers``/``use_gpu``/``resources_per_worker`` starts stepping without
        starting processes, importing torch or forming the process group again.
        ``"ray_train"``: a Ray Train ``TorchTrainer`` per call (a new controller and
        worker group each time; Ray stores the checkpoints and keeps only the
        ``keep_checkpoints`` best by mIoU). Both give the same metrics and weights.
    keep_workers_s : float
        ``launcher="workers"``: seconds the idle worker group is kept (holding its
        CPUs/GPUs) for the next call; 0 releases it when this call ends. See
        :func:`climviz.training.workers.release_workers`.

    Returns
    -------
    TrainResult
        ``extra`` holds ``ray_address``, ``num_workers``, ``log_dir``,
        ``time_to_first_step_s`` (from this call to the first training step),
        ``restarts`` (worker-group restarts seen by the progress display), ``launcher``
        and ``startup``: where the time to the first step went (seconds: ``prepare_s``,
        ``connect_s``, ``ship_data_s``, then for ``"workers"`` ``worker_group_s``
        (``actors_s``, ``import_s``, ``process_group_s`` when a group was started;
        ``worker_group_reused``), ``dispatch_s``, ``worker_data_s``,
        ``setup_to_first_step_s``; for ``"ray_train"`` ``fit_to_workers_started_s``
        and ``workers_started_to_first_step_s``).

    Raises
    ------
    ConfigError, DataError, CheckpointError
        Bad configuration, data or checkpoint (also when raised inside a worker).
    ClusterError
        Ray cannot be reached, or training failed on the cluster.

    Examples
    --------
    Not run here (it starts Ray); a second call reuses Ray and the worker group:

    >>> res = train_on_ray(cfg, ds, num_workers=2, name="a")  # doctest: +SKIP
    >>> res = train_on_ray(cfg, ds, num_workers=2, name="b")  # doctest: +SKIP
    >>> res.extra["startup"]["worker_group_reused"]  # doctest: +SKIP
    True
    """
    t_call = time.time()
    t0 = time.perf_counter()
    if launcher not in ("workers", "ray_train"):
        raise ConfigError(f"train: launcher must be 'workers' or 'ray_train', found {launcher!r}")
    cfg = as_config(cfg)
    data = cfg.training_data(data)
    run_dir, resume_from = _prepare_run(cfg, storage_path, name, resume, max_failures,
                                        num_workers)
    from climviz.training.cluster import connect

    startup: dict[str, Any] = {"prepare_s": time.perf_counter() - t0}
    t = time.perf_counter()
    info = connect(address, timeout_s=connect_timeout_s, _keep_train_workers=True,
                   **dict(ray_init or {}))
    startup["connect_s"] = time.perf_counter() - t
    resources = dict(resources_per_worker or {})
    cpus_per_worker = float(resources.get("CPU", 1.0))
    if num_workers is None:
        num_workers = default_num_workers(info.resources, use_gpu, cpus_per_worker)
    t = time.perf_counter()
    data_spec, n_times = _ship_data(data, run_dir, max_object_bytes)
    startup["ship_data_s"] = time.perf_counter() - t
    display = _start_display(progress, cfg, run_dir, num_workers, info)
    worker_config = {
        "cfg": cfg.to_dict(),
        "data": data_spec,
        "resume_from": resume_from,
        "normalizer": normalizer.to_dict() if hasattr(normalizer, "to_dict") else normalizer,
        "use_gpu": bool(use_gpu),
        "cpus_per_worker": cpus_per_worker,
        "steps_per_epoch": _steps_per_epoch(cfg, n_times, num_workers) if n_times else None,
        "launcher": launcher,
    }
    try:
        if launcher == "ray_train":
            history, first, result_path, poller = _launch_ray_train(
                worker_config, cfg, run_dir, num_workers, use_gpu, resources, max_failures,
                display, startup)
        else:
            history, first, poller = _launch_workers(
                worker_config, run_dir, num_workers, use_gpu, resources, max_failures,
                keep_workers_s, display, startup, check_fits=info.started_here)
            result_path = run_dir
    finally:
        data_spec.pop("ref", None)        # drop the object-store reference of the data
    if first is None:
        first = poller.first_step_time
    ttfs = (first - t_call) if first is not None else float("nan")
    startup["time_to_first_step_s"] = ttfs
    res = _ray_result(history, cfg, run_dir, time.perf_counter() - t0)
    res.extra.update({
        "ray_address": info.address,
        "num_workers": num_workers,
        "log_dir": info.log_dir,
        "time_to_first_step_s": ttfs,
        "restarts": getattr(display, "restarts", 0),
        "ray_result_path": str(result_path),
        "launcher": launcher,
        "startup": startup,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    })
    return res


def _launch_workers(worker_config: dict[str, Any], run_dir: Path, num_workers: int,
                    use_gpu: bool, resources: dict[str, float], max_failures: int,
                    keep_workers_s: float, display: Any, startup: dict[str, Any], *,
                    check_fits: bool = True) -> tuple[list[dict[str, Any]], float | None, _Poller]:
    """Run on the kept worker group (started if needed); restart it after a failure.

    Returns rank 0's history, the time (``time.time``) of its first step and the poller.
    """
    holder: dict[str, Any] = {}
    poller = _Poller(lambda: holder["group"].drain() if holder.get("group") else [], display)
    status, error_text = "failed", None
    restarts, resume_from = 0, worker_config["resume_from"]
    try:
        while True:
            t = time.perf_counter()
            group, reused = acquire_group(num_workers, use_gpu, resources,
                                          check_fits=check_fits)
            if restarts == 0:
                startup["worker_group_s"] = time.perf_counter() - t
                startup["worker_group_reused"] = reused
                if not reused:
                    startup.update(group.startup)
            holder["group"] = group
            poller.start()
            config = dict(worker_config, run_dir=str(run_dir), resume_from=resume_from,
                          restart=restarts, env={k: v for k, v in os.environ.items()
                                                 if k.startswith(FORWARDED_ENV_PREFIX)})
            t_dispatch = time.time()
            try:
                results = group.run(config)
                break
            except WorkerDied as exc:
                poller.drain_once()
                holder.pop("group", None)
                release_workers()
                if max_failures != -1 and restarts >= max_failures:
                    raise ClusterError(f"training run {run_dir.name!r} failed on Ray: {exc}"
                                       + ("" if max_failures else
                                          " (max_failures=0: no restart)")) from exc
                restarts += 1
                latest = find_latest_checkpoint(run_dir)
                resume_from = str(latest) if latest is not None else worker_config["resume_from"]
            except BaseException:
                holder.pop("group", None)
                release_workers()          # survivors may wait in a collective
                raise
        status = "finished"
    except KeyboardInterrupt:
        status, error_text = "interrupted", "interrupted by the user"
        raise
    except Exception as exc:
        error_text = _last_line(exc)
        raise
    finally:
        poller.stop()
        display.close(status, error_text)
        if status == "finished":
            release_later(keep_workers_s)
    r0 = results[0]
    if restarts == 0:
        startup["dispatch_s"] = r0["t_received"] - t_dispatch
        startup["worker_data_s"] = r0["t_data"] - r0["t_received"]
        if r0.get("t_first_step") is not None:
            startup["setup_to_first_step_s"] = r0["t_first_step"] - r0["t_data"]
    first = r0.get("t_first_step") if restarts == 0 else None
    return list(r0["history"]), first, poller


def _launch_ray_train(worker_config: dict[str, Any], cfg: TrainConfig, run_dir: Path,
                      num_workers: int, use_gpu: bool, resources: dict[str, float],
                      max_failures: int, display: Any,
                      startup: dict[str, Any]) -> tuple[list[dict[str, Any]], None, Any, _Poller]:
    """Run one Ray Train ``TorchTrainer``; rank 0's history, None, Ray's path, the poller."""
    import ray

    release_workers(idle_only=True)  # an idle kept group would hold the CPUs this trainer needs
    sink: Any = ray.remote(num_cpus=0)(_EventSink).remote()
    started: dict[str, float] = {}

    def drain() -> list[dict[str, Any]]:
        events = list(ray.get(sink.drain.remote(), timeout=30))
        for ev in events:
            if ev.get("type") == "workers_started":
                started.setdefault("t", float(ev["time"]))
        return events

    poller = _Poller(drain, display).start()
    trainer = _make_trainer(dict(worker_config, sink=sink), cfg, run_dir, num_workers, use_gpu,
                            resources, max_failures)
    t_fit = time.time()
    result = _fit(trainer, run_dir, poller, display, sink)
    if "t" in started:
        startup["fit_to_workers_started_s"] = started["t"] - t_fit
        if poller.first_step_time is not None:
            startup["workers_started_to_first_step_s"] = poller.first_step_time - started["t"]
    history = result.return_value
    if not history:
        frame = result.metrics_dataframe
        history = frame.to_dict("records") if frame is not None else []
    return list(history), None, result.path, poller


def _prepare_run(cfg: TrainConfig, storage_path: Any, name: str | None,
                 resume: bool | str | os.PathLike, max_failures: Any,
                 num_workers: Any) -> tuple[Path, str | None]:
    """Check the arguments; the run directory and the checkpoint to resume from."""
    if not isinstance(max_failures, int) or max_failures < -1:
        raise ConfigError(f"train: max_failures must be an integer >= -1, found {max_failures!r}")
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
        raise ConfigError(f"train: num_workers must be an integer >= 1, found {num_workers!r}")
    if resume is True and name is None:
        raise ConfigError("train: resume=True needs the name of the run to resume (name=...)")
    run_dir = default_run_dir(cfg, storage_path, name)
    if resume is True:
        latest = find_latest_checkpoint(run_dir)
        if latest is None:
            raise CheckpointError(f"{run_dir}: no checkpoint to resume from (run {run_dir.name!r})")
        return run_dir, str(latest)
    if _has_run_state(run_dir):
        raise ConfigError(
            f"train: name={run_dir.name!r}: run {run_dir} already has checkpoints; pass "
            "resume=True to continue it, or choose another name")
    if resume:
        f = checkpoint_file(resume)
        if not f.exists():
            raise CheckpointError(f"{f}: checkpoint to resume from not found")
        return run_dir, str(f.resolve())
    return run_dir, None


def _ship_data(data: Any, run_dir: Path, max_object_bytes: int) -> tuple[dict[str, Any], int | None]:
    """How the workers get the data; the spec and the number of time steps (None for paths).

    An in-memory Dataset goes through the object store (or ``<run>/_inputs/data.nc``
    when larger than ``max_object_bytes``); paths travel as absolute paths.
    """
    import ray
    import xarray as xr

    if not isinstance(data, xr.Dataset):
        return {"kind": "value", "value": _absolute_data(data)}, None
    n_times = int(data.sizes.get("time", 0))
    if data.nbytes <= max_object_bytes:
        return {"kind": "object", "ref": ray.put(data.load())}, n_times
    from climviz.utils.atomic import atomic_path

    target = run_dir / "_inputs" / "data.nc"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        data.to_netcdf(tmp)
    return {"kind": "value", "value": str(target)}, n_times


def _start_display(progress: Any, cfg: TrainConfig, run_dir: Path, num_workers: int,
                   info: Any) -> Any:
    """The progress display, told that the run starts."""
    from climviz.training.progress import make_progress

    display = make_progress(progress, cfg.epochs, title=f"climviz training {cfg.model}/{cfg.preset}")
    display.update({"type": "start", "run": run_dir.name, "epochs": cfg.epochs,
                    "num_workers": num_workers, "address": info.address,
                    "log_dir": info.log_dir})
    return display


def _make_trainer(worker_config: dict[str, Any], cfg: TrainConfig, run_dir: Path,
                  num_workers: int, use_gpu: bool, resources: dict[str, float],
                  max_failures: int) -> Any:
    """The Ray Train ``TorchTrainer`` running :func:`_train_worker` on every worker."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
    keep = cfg.keep_checkpoints
    return TorchTrainer(
        _train_worker,  # type: ignore[arg-type]  # Ray's stub: returns None; ours a history
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
            worker_runtime_env={"env_vars": env} if env else None,  # type: ignore[call-arg]
        ),
    )


def _fit(trainer: Any, run_dir: Path, poller: _Poller, display: Any, sink: Any) -> Any:
    """``trainer.fit()`` with error translation; stops the progress display.

    A climviz error raised in a worker is re-raised as itself, any other failure
    becomes a :class:`ClusterError`.
    """
    import ray

    status, error_text = "failed", None
    try:
        result = trainer.fit()
        status = "finished"
        return result
    except KeyboardInterrupt:
        status, error_text = "interrupted", "interrupted by the user"
        raise
    except Exception as exc:
        error_text = _last_line(exc)
        original = _original_error(exc)
        if original is not None:
            raise original from exc
        raise ClusterError(f"training run {run_dir.name!r} failed on Ray: {exc}") from exc
    finally:
        poller.stop()
        display.close(status, error_text)
        with contextlib.suppress(Exception):
            ray.kill(sink)


def _ray_result(history: list[dict[str, Any]], cfg: TrainConfig, run_dir: Path,
               wall: float) -> TrainResult:
    """The :class:`TrainResult` of a finished Ray run.

    When the run directory is not visible here (Ray Client, storage of the cluster
    only), the checkpoint paths are those the workers wrote, unchecked.
    """
    try:
        return result_from_history(list(history), cfg, run_dir, wall, run_dir)
    except CheckpointError:
        last = None
        if history:
            last = checkpoint_file(run_dir / f"epoch_{int(history[-1]['epoch']):04d}")
        return TrainResult(checkpoint=last, best_checkpoint=last,
                           metrics=metrics_frame(list(history)), config=cfg, wall_time_s=wall,
                           run_path=run_dir)
