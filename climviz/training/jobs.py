"""Submit training as a Ray Job, so the notebook that started it can be closed.

:func:`submit_training` writes the config (and an in-memory dataset, if given) into the
run directory, then submits ``python -m climviz.training.cli CONFIG --address auto ...``
through Ray's :class:`~ray.job_submission.JobSubmissionClient` (the dashboard's Job API).
The job runs the same :func:`climviz.train` on the cluster. The returned
:class:`TrainingJob` polls the status, streams the logs and fetches the
:class:`~climviz.training.result.TrainResult`; :meth:`TrainingJob.attach` finds the job
again from a new kernel, by its id.

The run directory (``storage_path/name``) must be on storage the cluster can read, as
for any multi-node run; on a single machine any local path works.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from climviz.errors import ClusterError, ConfigError
from climviz.training.config import as_config
from climviz.training.result import RESULT_PREFIX, default_run_dir, result_from_json

__all__ = ["TERMINAL_STATES", "TrainingJob", "submit_training"]

#: Job states after which nothing changes any more.
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


def _dashboard_address(address: str | None) -> str:
    if address:
        return address if "://" in address else f"http://{address}"
    from climviz.training.cluster import current

    info = current()
    if info is not None and info.dashboard_url:
        return info.dashboard_url
    return os.environ.get("RAY_DASHBOARD_ADDRESS", "http://127.0.0.1:8265")


def _client(address: str, timeout_s: float = 30.0) -> Any:
    from ray.job_submission import JobSubmissionClient

    from climviz.training.cluster import _probe_tcp

    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ClusterError(f"Ray Job API address {address!r}: expected the dashboard URL, e.g. "
                           "'http://127.0.0.1:8265'")
    _probe_tcp(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80),
               timeout_s, address)
    headers: dict[str, str] = {}
    try:  # clusters with token authentication: Ray's own token loader (env or token file)
        from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]  # compiled; not in _raylet.pyi

        headers = dict(AuthenticationTokenLoader.instance().get_token_for_http_header(
            ignore_auth_mode=True) or {})
    except Exception:  # noqa: BLE001 -- a Ray without token authentication: no header
        headers = {}
    try:
        return JobSubmissionClient(address, headers=headers or None)
    except Exception as exc:
        raise ClusterError(f"Cannot reach the Ray Job API at {address!r}: "
                           f"{type(exc).__name__}: {exc}") from exc


def _is_loopback(address: str) -> bool:
    host = urlparse(address).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass
class TrainingJob:
    """Handle of a training run submitted as a Ray Job.

    Attributes
    ----------
    job_id : str
        Ray's submission id.
    address : str
        Dashboard URL the job was submitted to.
    name : str
        Run name; checkpoints go to ``run_path``.
    run_path : Path
        ``storage_path/name`` on the cluster's storage.
    """

    job_id: str
    address: str
    name: str
    run_path: Path
    _client_obj: Any = field(default=None, repr=False, compare=False)

    @property
    def result_path(self) -> Path:
        """Where the job writes its result JSON."""
        return self.run_path / "_job" / "result.json"

    @property
    def client(self) -> Any:
        """The :class:`~ray.job_submission.JobSubmissionClient` used."""
        if self._client_obj is None:
            self._client_obj = _client(self.address)
        return self._client_obj

    @classmethod
    def attach(cls, job_id: str, address: str | None = None) -> TrainingJob:
        """Find a job submitted earlier (e.g. from a notebook that was closed)."""
        address = _dashboard_address(address)
        client = _client(address)
        try:
            info = client.get_job_info(job_id)
        except Exception as exc:
            raise ClusterError(f"Ray job {job_id!r} not found at {address}: {exc}") from exc
        meta = dict(info.metadata or {})
        if "climviz_run_path" not in meta:
            raise ClusterError(f"Ray job {job_id!r} at {address} was not submitted by "
                               "climviz.training.jobs.submit_training")
        return cls(job_id=job_id, address=address, name=meta["climviz_run"],
                   run_path=Path(meta["climviz_run_path"]), _client_obj=client)

    # ------------------------------------------------------------------ status and logs
    def status(self) -> str:
        """``"PENDING"``, ``"RUNNING"``, ``"SUCCEEDED"``, ``"FAILED"`` or ``"STOPPED"``."""
        return str(getattr(self.client.get_job_status(self.job_id), "value",
                           self.client.get_job_status(self.job_id)))

    def logs(self) -> str:
        """Everything the job printed so far (its driver's stdout and stderr)."""
        return str(self.client.get_job_logs(self.job_id))

    def wait(self, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
        """Block until the job ends; return its final status.

        Raises
        ------
        ClusterError
            If it has not ended after ``timeout_s`` seconds (it keeps running).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status()
            if status in TERMINAL_STATES:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(f"Ray job {self.job_id} still {status} after {timeout_s:g} s")
            time.sleep(poll_s)

    def stream_logs(self, out: IO[str] | None = None, *, poll_s: float = 1.0,
                    timeout_s: float | None = None) -> str:
        """Print the job's logs as they grow until it ends; return its final status.

        Works in a notebook and in a terminal (polls the Job API; no event loop needed).
        """
        out = out if out is not None else sys.stdout
        shown = 0
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status()
            text = self.logs()
            if len(text) > shown:
                out.write(text[shown:])
                out.flush()
                shown = len(text)
            if status in TERMINAL_STATES:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(f"Ray job {self.job_id} still {status} after {timeout_s:g} s")
            time.sleep(poll_s)

    def stop(self) -> bool:
        """Ask Ray to stop the job (True if a stop was requested)."""
        return bool(self.client.stop_job(self.job_id))

    def result(self, timeout_s: float | None = None) -> Any:
        """Wait for the job and return its :class:`~climviz.training.result.TrainResult`.

        Raises
        ------
        ClusterError
            If the job failed or was stopped (the message holds the end of its logs).
        """
        status = self.wait(timeout_s)
        logs = self.logs()
        if status != "SUCCEEDED":
            info = self.client.get_job_info(self.job_id)
            tail = "\n".join(logs.strip().splitlines()[-15:])
            raise ClusterError(f"Ray job {self.job_id} (run {self.name!r}) {status}: "
                               f"{info.message or ''}\n--- last log lines ---\n{tail}")
        payload = None
        if self.result_path.exists():
            payload = json.loads(self.result_path.read_text())
        else:  # storage not visible here: the result line in the logs
            for line in reversed(logs.splitlines()):
                if line.startswith(RESULT_PREFIX):
                    payload = json.loads(line[len(RESULT_PREFIX):])
                    break
        if payload is None:
            raise ClusterError(f"Ray job {self.job_id} succeeded but left no result "
                               f"({self.result_path} missing, no result line in its logs)")
        return result_from_json(payload)


def submit_training(
    config: Any,
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
    runtime_env: Mapping[str, Any] | None = None,
    python: str | None = None,
    submission_id: str | None = None,
    agent_wait_s: float = 60.0,
) -> TrainingJob:
    """Submit ``climviz.train(config, data, ...)`` as a Ray Job; return its handle.

    Parameters
    ----------
    config : TrainConfig, dict or path
        The training configuration.
    data : xr.Dataset, path, list of paths or glob, optional
        Training data (default ``config.data``). A Dataset is written to
        ``<run>/_job/data.nc`` first; paths must be readable on the cluster.
    address : str, optional
        Dashboard URL of the cluster (``http://host:8265``); default: the dashboard of
        the Ray this process is connected to, else ``$RAY_DASHBOARD_ADDRESS``, else
        ``http://127.0.0.1:8265``.
    num_workers, use_gpu, resources_per_worker, storage_path, name, resume, max_failures
        As for :func:`climviz.train`.
    runtime_env : dict, optional
        Ray runtime environment of the job (e.g. ``{"pip": [...]}`` or
        ``{"py_modules": [...]}`` when climviz is not installed on the cluster).
    python : str, optional
        Python executable on the cluster (default: this interpreter for a cluster on
        this machine, ``python`` otherwise).
    submission_id : str, optional
        Job id to use (default: Ray chooses one).
    agent_wait_s : float
        How long to retry while a just-started cluster has no job agent yet (seconds).

    Returns
    -------
    TrainingJob
    """
    cfg = as_config(config)
    data = cfg.training_data(data)
    if resume is True and name is None:
        raise ConfigError("submit_training: resume=True needs the name of the run (name=...)")
    address = _dashboard_address(address)
    client = _client(address)
    # The job's workers need the CPUs/GPUs an idle worker group kept by an earlier
    # train() call of this process holds (on the same cluster they would wait for them).
    from climviz.training.workers import release_workers

    release_workers(idle_only=True)

    run_dir = default_run_dir(cfg, storage_path, name)
    job_dir = run_dir / "_job"
    job_dir.mkdir(parents=True, exist_ok=True)
    config_path = job_dir / "config.yaml"
    cfg.replace(data=None).to_yaml(config_path)
    argv = [python or (sys.executable if _is_loopback(address) else "python"),
            "-m", "climviz.training.cli", str(config_path),
            "--data", *_job_data_args(data, job_dir),
            "--address", "auto", "--storage-path", str(run_dir.parent), "--name", run_dir.name,
            "--max-failures", str(int(max_failures)),
            "--result-json", str(job_dir / "result.json"),
            *_job_options(num_workers, use_gpu, resources_per_worker, resume)]
    env = dict(runtime_env or {})
    env_vars = dict(env.get("env_vars") or {})
    env_vars.setdefault("PYTHONUNBUFFERED", "1")
    env["env_vars"] = env_vars
    job_id = _submit(client, address, " ".join(shlex.quote(a) for a in argv), env,
                     submission_id, run_dir, agent_wait_s)
    return TrainingJob(job_id=str(job_id), address=address, name=run_dir.name,
                       run_path=run_dir, _client_obj=client)


def _job_data_args(data: Any, job_dir: Path) -> list[str]:
    """The job's ``--data`` arguments.

    An in-memory Dataset is written to ``<job_dir>/data.nc`` first; paths are made absolute.
    """
    import xarray as xr

    from climviz.utils.atomic import atomic_path

    if isinstance(data, xr.Dataset):
        data_path = job_dir / "data.nc"
        with atomic_path(data_path) as tmp:
            data.to_netcdf(tmp)
        return [str(data_path)]
    if isinstance(data, (list, tuple)):
        return [os.path.abspath(os.fspath(d)) for d in data]
    return [os.path.abspath(os.fspath(data))]


def _job_options(num_workers: int | None, use_gpu: bool,
                 resources_per_worker: Mapping[str, float] | None,
                 resume: bool | str | os.PathLike) -> list[str]:
    argv: list[str] = []
    if num_workers is not None:
        argv += ["--num-workers", str(int(num_workers))]
    if use_gpu:
        argv.append("--use-gpu")
    if resources_per_worker and "CPU" in resources_per_worker:
        argv += ["--cpus-per-worker", str(resources_per_worker["CPU"])]
    if resume is True:
        argv.append("--resume")
    elif resume:
        argv += ["--resume", os.path.abspath(os.fspath(resume))]
    return argv


def _submit(client: Any, address: str, entrypoint: str, env: dict[str, Any],
            submission_id: str | None, run_dir: Path, agent_wait_s: float) -> str:
    """Submit the job; return its id.

    A freshly started head node answers "No available agent to submit job" until its
    dashboard agent has registered (seconds); that one answer is retried for
    ``agent_wait_s`` seconds.
    """
    deadline = time.monotonic() + agent_wait_s
    while True:
        try:
            return str(client.submit_job(
                entrypoint=entrypoint,
                runtime_env=env,
                submission_id=submission_id,
                metadata={"climviz_run": run_dir.name, "climviz_run_path": str(run_dir)},
            ))
        except Exception as exc:
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise ClusterError(f"Submitting the training job to {address} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
