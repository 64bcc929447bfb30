"""Ray for the tests (a pytest plugin, loaded by tests/conftest.py).

``ray_local``
    One local Ray shared by the whole session (starting Ray costs tens of seconds on a
    busy machine): 2 CPUs, a 150 MB object store, no dashboard, worker logs not
    forwarded to the test output. Started with :func:`climviz.training.cluster.connect`.
``ray_two_nodes``
    A real two-node cluster started with the ``ray start`` CLI in its own temp dir: a
    head node (dashboard and Job API on 127.0.0.1, a Ray Client server) and a second
    node, one CPU each. This test process never connects to it (a process talks to one
    Ray at a time and stays on ``ray_local``): drivers run in subprocesses or as Ray
    Jobs. Only the processes started here are stopped -- ``ray stop`` would kill every
    Ray on the machine.
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


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray started with :func:`climviz.training.cluster.connect` (ClusterInfo)."""
    pytest.importorskip("ray")
    from climviz.training.cluster import connect, shutdown

    info = connect("local", num_cpus=2, object_store_memory=150_000_000, dashboard=False,
                   log_to_driver=False)
    yield info
    shutdown()


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"port {port} did not open in {timeout_s} s")


def _stop(proc: subprocess.Popen, temp_dir: str) -> None:
    """SIGTERM a `ray start --block` (it stops its own node), then reap stragglers."""
    import psutil

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for p in psutil.process_iter(["cmdline"]):   # this cluster's processes, by temp dir
        try:
            if temp_dir in " ".join(p.info["cmdline"] or []):
                p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


@pytest.fixture(scope="session")
def ray_two_nodes():
    """``{"gcs": "127.0.0.1:P", "client": "ray://127.0.0.1:C", "dashboard": "http://..."}``."""
    pytest.importorskip("ray")
    from climviz.training.cluster import free_port

    ray_cli = str(Path(sys.executable).with_name("ray"))
    temp_dir = tempfile.mkdtemp(prefix="cvz2n", dir="/tmp")      # short: unix socket paths
    gcs_port, client_port, dash_port = free_port(), free_port(), free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus=1", "--object-store-memory=80000000", f"--temp-dir={temp_dir}",
              "--node-ip-address=127.0.0.1", "--block"]
    logs = open(os.path.join(temp_dir, "ray_start.log"), "ab")
    procs = [subprocess.Popen(
        [ray_cli, "start", "--head", f"--port={gcs_port}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash_port}", f"--ray-client-server-port={client_port}", *common],
        env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        _wait_port(gcs_port, 180)
        procs.append(subprocess.Popen(
            [ray_cli, "start", f"--address=127.0.0.1:{gcs_port}", *common],
            env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_port(client_port, 180)
        _wait_port(dash_port, 180)
        yield {"gcs": f"127.0.0.1:{gcs_port}", "client": f"ray://127.0.0.1:{client_port}",
               "dashboard": f"http://127.0.0.1:{dash_port}", "temp_dir": temp_dir}
    finally:
        for p in reversed(procs):
            _stop(p, temp_dir)
        logs.close()
