"""Persistent Ray training workers, reused by later ``train`` calls of the same driver.

Why
---
Ray Train's ``TorchTrainer.fit`` starts, per call, a controller actor and a new group
of worker processes; each imports torch and climviz and forms the gloo/NCCL process
group before the first step. Measured on a 2-core machine (``benchmarks/bench_ray.py``,
``startup`` breakdown in ``benchmarks/results/ray*.json``), that per-fit start is most
of the time to the first step, and it is paid again by every call of a notebook. The
:class:`WorkerGroup` here keeps ``num_workers`` Ray actors alive between calls, with
torch and the climviz engine already imported and the process group formed, so a
second ``train`` call with the same worker count and resources starts stepping in
about the time the engine's own set-up takes (data, model, first batch).

Lifetime
--------
At most one group per driver process (the one of the last ``train`` call). It is
released (its actors killed, their CPUs/GPUs given back to Ray)

* when a call needs another worker count, GPU setting or resources per worker;
* after ``keep_workers_s`` seconds without a training call (default 600 s, an
  argument of :func:`climviz.training.ray.train_on_ray`; ``0`` releases at the end of
  each call);
* by :func:`release_workers`, by :func:`climviz.training.cluster.shutdown` and when
  another climviz Ray workload (prediction, labels, events) calls
  :func:`climviz.training.cluster.connect`, so an idle group never holds the CPUs
  those need;
* after any failure of a run (a dead worker, an error in a worker): the survivors may
  be stuck in a collective, so the whole group is replaced.

While a group idles it holds its Ray resources (``num_cpus``/``num_gpus`` per worker),
as an idle ``TorchTrainer`` never does; a user's own Ray tasks wait for them until
one of the above releases them.

Worker side
-----------
Each actor runs :func:`climviz.training.loop.run_training` for its rank; rank 0 writes
``run_dir/epoch_XXXX/checkpoint.pt`` itself (so ``run_dir`` must be on storage all
nodes share, as for any multi-node run). Progress events are kept in the rank-0 actor
and drained by the driver (the actor serves two calls at once: the run and the
drain), so no extra event actor is started per call.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from climviz.errors import ClimvizError, ClusterError

__all__ = ["WorkerGroup", "WorkerDied", "acquire_group", "current_group", "release_workers"]

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


class WorkerDied(ClusterError):
    """A worker process of the group died (or its collective failed) during a run."""


# ============================================================================ worker side
def parse_fail_hook(text: str | None) -> tuple[int, int, Path] | None:
    """The :data:`FAIL_ENV` hook as ``(rank, global_step, marker)``, or None."""
    if not text:
        return None
    rank, step, marker = text.split(":", 2)
    return int(rank), int(step), Path(marker)


def plain_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
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


def resolve_worker_data(spec: Mapping[str, Any]) -> Any:
    """The data a worker trains on: an object-store Dataset, or paths opened lazily."""
    if spec["kind"] == "object":
        import ray

        return ray.get(spec["ref"])
    return spec["value"]


def worker_device(config: Mapping[str, Any]) -> Any:
    """Torch device of this worker (its GPU with ``use_gpu``); sets torch's CPU threads."""
    import torch

    cpus = config.get("cpus_per_worker")
    if cpus and not config["use_gpu"]:
        torch.set_num_threads(max(1, int(cpus)))
    if config["use_gpu"]:
        if config.get("launcher") == "ray_train":
            from ray.train.torch import get_device

            return get_device()
        return torch.device("cuda", 0)     # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU
    return torch.device("cpu")


class WorkerHooks:
    """The engine's ``step_callback`` and ``report`` on one Ray worker.

    Progress events for the driver (rank 0, through ``push``), the test hooks, and for
    Ray Train (``ray_train=True``) ``ray.train.report`` with checkpoints.
    """

    def __init__(self, config: Mapping[str, Any], cfg: Any, rank: int, world_size: int,
                 push: Callable[[dict[str, Any]], Any] | None, ray_train: bool = False) -> None:
        self.rank = rank
        self.push = push if rank == 0 else None
        self.ray_train = ray_train
        self.fail_hook = parse_fail_hook(os.environ.get(FAIL_ENV))
        self.record_dir = os.environ.get(RECORD_ENV)
        self.seen: list[int] | None = [] if self.record_dir else None
        self.images_per_step = cfg.effective_batch_size(world_size)
        self.steps_per_epoch = config.get("steps_per_epoch")
        self.last: dict[str, Any] = {"push": -math.inf, "time": None, "step": 0}
        self.first_step_time: float | None = None

    def started(self, resumed: bool) -> None:
        """Tell the driver that the workers run (counted as a restart after the first)."""
        if self.push is not None:
            self.push({"type": "workers_started", "time": time.time(), "resumed": resumed})

    def _maybe_die(self, info: Mapping[str, Any]) -> None:
        if self.fail_hook is None:
            return
        f_rank, f_step, marker = self.fail_hook
        if self.rank == f_rank and int(info.get("global_step", -1)) == f_step and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"pid": os.getpid(), "rank": self.rank,
                                          "global_step": f_step, "time": time.time()}))
            os._exit(17)  # real death of this worker process, mid-epoch

    def on_step(self, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if self.first_step_time is None:
            self.first_step_time = time.time()
        self._maybe_die(info)
        if self.seen is not None:
            self.seen.extend(int(i) for i in info.get("time_indices", ()))
        if self.push is None:
            return
        step, last = int(info.get("step", 0)), self.last
        rate = None
        if last["time"] is not None and now > last["time"] and step != 1:
            rate = self.images_per_step * (step - last["step"]) / (now - last["time"])
        last["time"], last["step"] = now, step
        if now - last["push"] >= _STEP_EVENT_INTERVAL_S or step == 1:
            last["push"] = now
            self.push({
                "type": "step", "time": time.time(), "epoch": int(info.get("epoch", 0)),
                "step": step, "global_step": int(info.get("global_step", 0)),
                "steps_per_epoch": info.get("steps_per_epoch", self.steps_per_epoch),
                "loss": float(info.get("loss", float("nan"))),
                "lr": float(info.get("lr", float("nan"))), "images_per_s": rate})

    def report(self, row: dict[str, Any], ckpt_dir: Path | None) -> None:
        metrics = plain_metrics(row)
        if self.seen is not None and self.record_dir:
            path = Path(self.record_dir) / f"rank{self.rank}_epoch{int(row['epoch'])}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(sorted(self.seen)))
            self.seen.clear()
        if self.push is not None:
            self.push({"type": "epoch", **metrics})
        if not self.ray_train:
            return                       # the engine wrote the checkpoint into the run directory
        import shutil

        import ray.train

        if ckpt_dir is not None:
            from ray.train import Checkpoint

            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(ckpt_dir)),
                             checkpoint_dir_name=Path(ckpt_dir).name)
            shutil.rmtree(ckpt_dir, ignore_errors=True)  # stored by Ray now
        else:
            ray.train.report(metrics)


class _Env:
    """Set the driver's ``CLIMVIZ_*`` variables in this worker for one run."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> _Env:
        names = set(self.env) | {k for k in os.environ if k.startswith(FORWARDED_ENV_PREFIX)}
        self.saved = {k: os.environ.get(k) for k in names}
        for k in names:
            os.environ.pop(k, None)
        os.environ.update(self.env)
        return self

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class TrainWorker:
    """One training process of a :class:`WorkerGroup` (the body of a Ray actor).

    The constructor imports torch and the climviz engine once, so a run pays no import.
    """

    def __init__(self) -> None:
        t0 = time.perf_counter()
        import torch  # noqa: F401 -- imported once per process, not per run

        import climviz.models  # noqa: F401
        import climviz.training.loop  # noqa: F401
        self.import_s = time.perf_counter() - t0
        self.rank, self.world_size = 0, 1
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        """Where this worker runs and what its start cost."""
        import ray

        return {"pid": os.getpid(), "node_ip": ray.util.get_node_ip_address(),
                "node_id": ray.get_runtime_context().get_node_id(), "import_s": self.import_s}

    def free_port(self) -> int:
        """A TCP port free on this worker's node (for the process group's rendezvous)."""
        import ray

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ray.util.get_node_ip_address(), 0))
            return int(s.getsockname()[1])

    def init_process_group(self, backend: str, init_method: str, rank: int, world_size: int,
                           timeout_s: float) -> float:
        """Join the torch.distributed process group; return the seconds it took."""
        t0 = time.perf_counter()
        import torch.distributed as dist

        dist.init_process_group(backend, init_method=init_method, rank=rank,
                                world_size=world_size,
                                timeout=_dt.timedelta(seconds=timeout_s))
        self.rank, self.world_size = rank, world_size
        return time.perf_counter() - t0

    def set_rank(self, rank: int, world_size: int) -> None:
        """Rank of a one-worker group (no process group is formed)."""
        self.rank, self.world_size = rank, world_size

    def ping(self) -> int:
        return os.getpid()

    def _push(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        """Progress events pushed since the last call (rank 0)."""
        with self._lock:
            out, self._events = self._events, []
        return out

    def run(self, config: dict[str, Any]) -> dict[str, Any]:
        """Run the engine for this rank; the metrics history and timings (``time.time``)."""
        import shutil
        import tempfile

        import torch

        from climviz.training.config import TrainConfig
        from climviz.training.loop import run_training

        t_received = time.time()
        threads = torch.get_num_threads()
        rank, world_size = self.rank, self.world_size
        scratch = None
        with _Env(config.get("env") or {}):
            cfg = TrainConfig.from_dict(config["cfg"])
            device = worker_device(config)
            data = resolve_worker_data(config["data"])
            t_data = time.time()
            hooks = WorkerHooks(config, cfg, rank, world_size, self._push)
            hooks.started(resumed=config.get("restart", 0) > 0)
            ckpt_dir = config["run_dir"]
            if rank != 0:               # other ranks never write; keep them off shared storage
                ckpt_dir = scratch = tempfile.mkdtemp(prefix=f"climviz-rank{rank}-")
            try:
                history = run_training(
                    cfg, data, normalizer=config.get("normalizer"), rank=rank,
                    world_size=world_size, device=device, checkpoint_dir=ckpt_dir,
                    resume_from=config.get("resume_from"), report=hooks.report,
                    step_callback=hooks.on_step)
            finally:
                torch.set_num_threads(threads)
                if scratch is not None:
                    shutil.rmtree(scratch, ignore_errors=True)
        return {"history": history, "rank": rank, "pid": os.getpid(),
                "t_received": t_received, "t_data": t_data,
                "t_first_step": hooks.first_step_time, "t_end": time.time()}


# ============================================================================ driver side
@dataclass
class WorkerGroup:
    """``num_workers`` live :class:`TrainWorker` actors with their process group formed.

    Attributes
    ----------
    key : tuple
        ``(num_workers, use_gpu, resources per worker)`` it was started for.
    actors : list
        Ray actor handles, in rank order.
    job_id : str
        Ray job (driver connection) that owns the actors.
    startup : dict
        What starting it cost: ``actors_s`` (actor processes up, imports included),
        ``import_s`` (slowest worker's torch + climviz import), ``process_group_s``.
    runs : int
        Training runs served so far.
    busy : bool
        True while a run is in progress (an idle-release timer then leaves it alone).
    """

    key: tuple[Any, ...]
    actors: list[Any]
    job_id: str
    startup: dict[str, float] = field(default_factory=dict)
    runs: int = 0
    busy: bool = False

    @property
    def num_workers(self) -> int:
        """Workers (ranks) in the group."""
        return len(self.actors)

    def alive(self, timeout_s: float = 10.0) -> bool:
        """True if this driver still owns the actors and every one answers."""
        import ray

        if not ray.is_initialized() or _job_id() != self.job_id:
            return False
        try:
            ray.get([a.ping.remote() for a in self.actors], timeout=timeout_s)
        except Exception:  # noqa: BLE001 -- any failure: start a new group
            return False
        return True

    def kill(self) -> None:
        """Kill the actors (their resources go back to Ray)."""
        import ray

        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001, S110 -- already gone, or Ray shut down
                pass
        self.actors = []

    def drain(self) -> list[dict[str, Any]]:
        """Progress events of rank 0 (see :meth:`TrainWorker.drain`)."""
        import ray

        return list(ray.get(self.actors[0].drain.remote(), timeout=30))

    def run(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one training on every rank; rank 0's result.

        Raises
        ------
        ClimvizError
            The one a worker raised (its traceback chained).
        WorkerDied
            A worker process died, or any other failure in a worker.
        """
        self.busy = True
        try:
            return self._run(config)
        finally:
            self.busy = False

    def _run(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        import ray

        refs = [a.run.remote(config) for a in self.actors]
        self.runs += 1
        out: dict[Any, Any] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    out[ref] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    original = getattr(exc, "cause", None)
                    if isinstance(original, ClimvizError):
                        raise original from exc
                    raise WorkerDied(f"a training worker failed: {exc}") from exc
                except ray.exceptions.RayError as exc:
                    raise WorkerDied(f"a training worker died: {type(exc).__name__}: "
                                     f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                                     ) from exc
        return [out[r] for r in refs]


#: The group of this driver process and its release timer.
_STATE: dict[str, Any] = {"group": None, "timer": None}
_LOCK = threading.RLock()


def _job_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_job_id())


def group_key(num_workers: int, use_gpu: bool, resources: Mapping[str, float]) -> tuple[Any, ...]:
    """What makes two requests share a group."""
    return (int(num_workers), bool(use_gpu), tuple(sorted((str(k), float(v))
                                                           for k, v in resources.items())))


def current_group() -> WorkerGroup | None:
    """The group kept by this driver process, if any (not checked for liveness)."""
    return _STATE["group"]


def release_workers(*, idle_only: bool = False) -> bool:
    """Kill the training worker group kept by this process; True if there was one.

    With ``idle_only`` a group running a training (another thread's ``train`` call) is
    left alone (and False returned).

    Examples
    --------
    >>> from climviz.training.workers import release_workers
    >>> release_workers()          # nothing kept in a fresh process
    False
    """
    with _LOCK:
        group = _STATE["group"]
        if idle_only and group is not None and group.busy:
            return False
        timer = _STATE.get("timer")
        if timer is not None:
            timer.cancel()
        _STATE.update(group=None, timer=None)
    if group is None:
        return False
    group.kill()
    return True


def release_later(keep_s: float) -> None:
    """Release the group after ``keep_s`` idle seconds (now when ``keep_s <= 0``).

    A later :func:`acquire_group` cancels the release; a timer that fires while the
    group is taken again does nothing.
    """
    if keep_s <= 0:
        release_workers()
        return

    def fire() -> None:
        with _LOCK:
            if _STATE.get("timer") is not timer:
                return                       # cancelled, or replaced by a newer timer
            group = _STATE["group"]
            if group is not None and group.busy:
                return
            _STATE.update(group=None, timer=None)
        if group is not None:
            group.kill()

    with _LOCK:
        old = _STATE.get("timer")
        if old is not None:
            old.cancel()
        timer = threading.Timer(keep_s, fire)
        timer.daemon = True
        _STATE["timer"] = timer
        timer.start()


def _actor_options(use_gpu: bool, resources: Mapping[str, float]) -> dict[str, Any]:
    res = dict(resources)
    opts: dict[str, Any] = {"num_cpus": float(res.pop("CPU", 1.0)),
                            "num_gpus": float(res.pop("GPU", 1.0 if use_gpu else 0.0)),
                            "max_restarts": 0, "max_concurrency": 2}
    if "memory" in res:
        opts["memory"] = res.pop("memory")
    if res:
        opts["resources"] = res
    return opts


def _check_fits(num_workers: int, use_gpu: bool, resources: Mapping[str, float]) -> None:
    """Fail now, not after a long wait, when the cluster can never host the group."""
    import ray

    total = ray.cluster_resources()
    opts = _actor_options(use_gpu, resources)
    need = {"CPU": opts["num_cpus"] * num_workers, "GPU": opts["num_gpus"] * num_workers}
    for name, amount in need.items():
        if amount > float(total.get(name, 0.0)) + 1e-9:
            raise ClusterError(
                f"train: {num_workers} worker(s) need {amount:g} {name} in all, the Ray cluster "
                f"has {float(total.get(name, 0.0)):g}; lower num_workers or "
                f"resources_per_worker")


def start_group(num_workers: int, use_gpu: bool, resources: Mapping[str, float], *,
                timeout_s: float = 600.0, check_fits: bool = True) -> WorkerGroup:
    """Start ``num_workers`` actors and form their process group (gloo, NCCL on GPU).

    ``check_fits``: fail at once when the cluster's total resources cannot host the
    group (for a fixed-size Ray; an autoscaling cluster may grow, so there the start
    waits up to ``timeout_s``). Whatever fails or is interrupted here (Ctrl-C
    included), the actors started so far are killed, so no half-started group keeps
    holding CPUs/GPUs.
    """
    import ray

    if check_fits:
        _check_fits(num_workers, use_gpu, resources)
    t0 = time.perf_counter()
    cls: Any = ray.remote(TrainWorker)
    actors: list[Any] = [cls.options(**_actor_options(use_gpu, resources)).remote()
                         for _ in range(num_workers)]
    group = WorkerGroup(group_key(num_workers, use_gpu, resources), actors, _job_id())
    try:
        infos = _started(actors, resources, timeout_s)
        # ranks node by node (workers of one node get neighbouring ranks, as in Ray Train)
        order = sorted(range(num_workers), key=lambda i: (infos[i]["node_ip"], i))
        group.actors = [actors[i] for i in order]
        group.startup = {"actors_s": time.perf_counter() - t0,
                         "import_s": max(float(i["import_s"]) for i in infos)}
        t1 = time.perf_counter()
        _form_process_group(group.actors, infos[order[0]]["node_ip"], use_gpu, timeout_s)
        group.startup["process_group_s"] = time.perf_counter() - t1
    except BaseException:
        group.actors = actors
        group.kill()
        raise
    return group


def _started(actors: list[Any], resources: Mapping[str, float],
             timeout_s: float) -> list[dict[str, Any]]:
    """Wait until every actor runs (imports done); their :meth:`TrainWorker.info`."""
    import ray

    try:
        return list(ray.get([a.info.remote() for a in actors], timeout=timeout_s))
    except ray.exceptions.GetTimeoutError:
        raise ClusterError(f"train: {len(actors)} training worker(s) with "
                           f"{dict(resources) or {'CPU': 1}} each did not start within "
                           f"{timeout_s:g} s (are the cluster's resources taken by other "
                           "work?)") from None
    except ray.exceptions.RayError as exc:
        raise ClusterError(f"train: training workers failed to start: {exc}") from exc


def _form_process_group(actors: list[Any], master_ip: str, use_gpu: bool,
                        timeout_s: float) -> None:
    """torch.distributed over the actors in rank order (nothing to form for one)."""
    import ray

    n = len(actors)
    try:
        if n == 1:
            ray.get(actors[0].set_rank.remote(0, 1), timeout=60)
            return
        port = ray.get(actors[0].free_port.remote(), timeout=60)
        ray.get([a.init_process_group.remote("nccl" if use_gpu else "gloo",
                                             f"tcp://{master_ip}:{port}", r, n, 1800.0)
                 for r, a in enumerate(actors)], timeout=timeout_s)
    except Exception as exc:
        raise ClusterError(f"train: the workers could not form their process group: "
                           f"{type(exc).__name__}: {exc}") from exc


def acquire_group(num_workers: int, use_gpu: bool, resources: Mapping[str, float], *,
                  timeout_s: float = 600.0, check_fits: bool = True) -> tuple[WorkerGroup, bool]:
    """The kept group if it fits this request and is alive, else a new one; and whether kept."""
    key = group_key(num_workers, use_gpu, resources)
    with _LOCK:
        busy = _STATE["group"]
        if busy is not None and busy.busy:  # sharing its process group would mix two runs
            raise ClusterError(
                "train: the Ray worker group kept by this process is running another train() "
                "call (another thread); run the trainings one after the other, or pass "
                "launcher='ray_train' (a worker group per call)")
        timer = _STATE.get("timer")
        if timer is not None:
            timer.cancel()
            _STATE["timer"] = None
        group = _STATE["group"]
        if group is not None and group.key == key and group.alive():
            return group, True
    release_workers()
    group = start_group(num_workers, use_gpu, resources, timeout_s=timeout_s,
                        check_fits=check_fits)
    with _LOCK:
        _STATE["group"] = group
    return group, False
