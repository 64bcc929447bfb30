"""Ray for the tests (a pytest plugin, loaded by tests/conftest.py).

``ray_local``
    One local Ray shared by all tests of a module (starting Ray costs tens of seconds on a
    busy machine): 2 CPUs, a 150 MB object store, no dashboard, worker logs not
    forwarded to the test output. Started with :func:`climviz.training.cluster.connect`.
    Module scope, not session scope: even without a dashboard a Ray node's agent holds
    the fixed port 52365, so while it lives a second local Ray on the machine (a notebook
    kernel, ``climviz demo``) gets no job agent and cannot take Ray Jobs.
``ray_two_nodes``
    A real two-node cluster started with the ``ray start`` CLI in its own temp dir: a
    head node (dashboard and Job API on 127.0.0.1, a Ray Client server) and a second
    node, one CPU each. This test process never connects to it (a process talks to one
    Ray at a time and stays on ``ray_local``): drivers run in subprocesses or as Ray
    Jobs. Only the processes started here are stopped -- ``ray stop`` would kill every
    Ray on the machine. Both nodes use Ray's token authentication (``RAY_AUTH_MODE=token``,
    token in ``~/.ray/auth_token``); drivers need the same setting.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray started with :func:`climviz.training.cluster.connect` (ClusterInfo)."""
    pytest.importorskip("ray")
    from climviz.training.cluster import connect, shutdown

    info = connect("local", num_cpus=2, object_store_memory=150_000_000, dashboard=False,
                   log_to_driver=False)
    yield info
    shutdown()


def _stop(proc: subprocess.Popen, temp_dir: str) -> None:
    """SIGTERM a `ray start --block` (it stops its own node processes)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _stop_all(temp_dir: str) -> None:
    """Kill any process left of the cluster whose private temp dir is ``temp_dir``."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(p.info["cmdline"] or []):
                p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _start_node(args: list[str], env: dict, log, ready_ports: list[int],
                timeout_s: float = 180) -> subprocess.Popen | None:
    """Run `ray start ... --block`; wait for its ports. None if it died while starting
    (a heavily loaded machine can miss Ray's fixed 30 s start window)."""
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    pending = list(ready_ports)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        pending = [p for p in pending if not _port_open(p)]
        if not pending:
            return proc
        time.sleep(0.5)
    proc.kill()
    return None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def ray_two_nodes():
    """``{"gcs": "127.0.0.1:P", "client": "ray://127.0.0.1:C", "dashboard": "http://..."}``."""
    pytest.importorskip("ray")
    from climviz.training.cluster import free_port

    ray_cli = str(Path(sys.executable).with_name("ray"))
    # Token authentication on both nodes (the token is ~/.ray/auth_token; a joining node
    # only sends it when the mode is set explicitly).
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               # a loaded machine: the raylet gives its dashboard agent 2 min, not 30 s, to write
               # its port file (else the head's raylet aborts: "Timed out waiting for file
               # .../dashboard_agent_listen_port_...")
               RAY_raylet_start_wait_time_s="120", RAY_agent_register_timeout_ms="120000")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    temp_dirs: list[str] = []
    try:
        for _attempt in range(3):
            temp_dir = tempfile.mkdtemp(prefix="cvz2n", dir="/tmp")   # short: socket paths
            temp_dirs.append(temp_dir)
            log = open(os.path.join(temp_dir, "ray_start.log"), "ab")
            common = ["--num-cpus=1", "--object-store-memory=80000000",
                      f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1", "--block"]

            def own_ports() -> list[str]:
                # two nodes on one machine (and other Rays here): no default agent ports
                return [f"--dashboard-agent-listen-port={free_port()}",
                        f"--dashboard-agent-grpc-port={free_port()}",
                        f"--metrics-export-port={free_port()}",
                        f"--runtime-env-agent-port={free_port()}"]

            gcs_port, client_port, dash_port = free_port(), free_port(), free_port()
            head = _start_node(
                [ray_cli, "start", "--head", f"--port={gcs_port}", "--dashboard-host=127.0.0.1",
                 f"--dashboard-port={dash_port}", f"--ray-client-server-port={client_port}",
                 *common, *own_ports()], env, log, [gcs_port, client_port, dash_port])
            if head is None:
                _stop_all(temp_dir)
                continue
            procs.append(head)
            worker = None
            log_path = os.path.join(temp_dir, "ray_start.log")
            for _ in range(3):
                started = 1            # successful node starts print this line; the head did
                worker = subprocess.Popen([ray_cli, "start", f"--address=127.0.0.1:{gcs_port}",
                                           *common, *own_ports()], env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
                deadline = time.monotonic() + 180
                while worker.poll() is None and time.monotonic() < deadline:
                    if Path(log_path).read_text(errors="replace").count(
                            "Ray runtime started") > started:
                        break
                    time.sleep(0.5)
                if worker.poll() is None:
                    break
                worker = None
            if worker is None or head.poll() is not None:   # the head died while the worker joined
                _stop_all(temp_dir)
                continue
            procs.append(worker)
            yield {"gcs": f"127.0.0.1:{gcs_port}", "client": f"ray://127.0.0.1:{client_port}",
                   "dashboard": f"http://127.0.0.1:{dash_port}", "temp_dir": temp_dir}
            return
        pytest.fail("could not start a two-node Ray cluster with `ray start` (3 attempts; "
                    f"logs in {temp_dirs})")
    finally:
        for p in reversed(procs):
            _stop(p, "")
        for d in temp_dirs:
            _stop_all(d)
