"""Connecting to Ray: local start/reuse, clear errors in bounded time, a real two-node cluster.

The two-node cluster is started with the real ``ray start`` CLI in its own temp dir
(head node with the dashboard on 127.0.0.1 and a Ray Client server, plus a second
node), each with one CPU, so a 2-worker run must use both nodes. The training driver
runs in a subprocess, because this test process stays connected to the session Ray.
Only the processes started here are stopped (``ray stop`` would kill every Ray on
the machine).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from climviz.errors import ClusterError
from climviz.training.cluster import connect, free_port, parse_address

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- addresses
@pytest.mark.parametrize("text, expected", [
    ("10.0.0.5:6379", ("gcs", "10.0.0.5", 6379)),
    ("ray://head.example.org:10001", ("ray", "head.example.org", 10001)),
    ("ray://head", ("ray", "head", 10001)),
    (" [::1]:6379 ", ("gcs", "::1", 6379)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text, message", [
    ("headnode", "found no port"),
    ("head:abc", "port must be an integer"),
    ("head:70000", "1..65535"),
    ("http://127.0.0.1:8265", "scheme 'http://'"),
])
def test_malformed_addresses_name_the_problem(text, message):
    with pytest.raises(ClusterError, match=message):
        parse_address(text)


# ----------------------------------------------------------------------------- errors in bounded time
def _closed_port() -> int:
    return free_port()          # bound then released: nothing listens there


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_refused_address_fails_fast_with_a_clear_error(scheme):
    address = f"{scheme}127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="Cannot reach the Ray cluster.*Connection refused"):
        connect(address, timeout_s=5)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("scheme, message", [("", "no Ray GCS answered"),
                                             ("ray://", "no Ray Client server answered")])
def test_open_port_without_ray_fails_within_the_timeout(scheme, message):
    """Ray itself would retry for minutes (GCS) or ~40 s (Ray Client); connect gives up
    after timeout_s."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match=rf"127\.0\.0\.1:{port}.*{message}"):
            connect(f"{scheme}127.0.0.1:{port}", timeout_s=3)
        elapsed = time.monotonic() - t0
    assert 2.5 <= elapsed < 10


class FlakyRay:
    """Stands in for the ``ray`` module in ``_init_client``: ``init`` fails as Ray Client does
    when the head's proxier finds its client server process dead (issue 18.10)."""

    def __init__(self, failures: int):
        self.failures, self.calls, self.shutdowns = failures, 0, 0

    def init(self, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionAbortedError(
                "Initialization failure from server:\nTraceback (most recent call last):\n"
                "psutil.ZombieProcess: PID still exists but it's a zombie (pid=4242)")
        return "context"

    def shutdown(self):
        self.shutdowns += 1


def test_client_connection_setup_is_retried_a_bounded_number_of_times(monkeypatch):
    from climviz.training import cluster

    waits: list[float] = []
    monkeypatch.setattr(cluster.time, "sleep", waits.append)
    ray = FlakyRay(failures=2)
    assert cluster._init_client(ray, "ray://h:1", "ray://h:1", log_to_driver=False, namespace=None,
                                timeout_s=60) == "context"
    assert ray.calls == 3 and ray.shutdowns == 2 and waits == [2.0, 4.0]
    ray = FlakyRay(failures=99)
    with pytest.raises(ClusterError) as err:
        cluster._init_client(ray, "ray://h:1", "ray://h:1", log_to_driver=False, namespace=None,
                             timeout_s=60)
    msg = str(err.value)
    assert ray.calls == 3 and "'ray://h:1'" in msg and "aborted the connection set-up 3 time(s)" in msg
    assert "ZombieProcess" in msg and "ray_client_server_<port>.err" in msg


def test_other_client_errors_are_not_retried(monkeypatch):
    from climviz.training import cluster

    class Broken(FlakyRay):
        def init(self, **kwargs):
            self.calls += 1
            raise RuntimeError("Version mismatch: client 3.11, server 3.12")

    ray = Broken(0)
    with pytest.raises(ClusterError, match="'ray://h:1': RuntimeError: Version mismatch"):
        cluster._init_client(ray, "ray://h:1", "ray://h:1", log_to_driver=False, namespace=None,
                             timeout_s=60)
    assert ray.calls == 1


def test_auto_uses_ray_address_variable(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    with pytest.raises(ClusterError, match="Connection refused"):
        connect("auto", timeout_s=5)


# ----------------------------------------------------------------------------- local Ray
def test_connect_reuses_the_session_ray(ray_local):
    import ray

    assert ray_local.started_here and ray_local.num_cpus == 2
    assert os.path.isdir(ray_local.log_dir)
    assert connect() is ray_local                       # a second train() in the same kernel
    assert connect(ray_local.address) is ray_local
    # a failed attempt to reach another cluster keeps the working connection
    with pytest.raises(ClusterError):
        connect(f"127.0.0.1:{_closed_port()}", timeout_s=3)
    assert ray.is_initialized() and connect() is ray_local


# ----------------------------------------------------------------------------- two-node cluster
# `ray_two_nodes` (tests/ray_fixtures.py): head + second node started with `ray start`.
DRIVER = textwrap.dedent("""
    import json, sys, time
    import ray
    import climviz as cv
    from climviz.training.config import TrainConfig
    from climviz.training.cluster import connect

    address, data, storage, name = sys.argv[1:5]
    info = connect(address, timeout_s=60)
    deadline = time.monotonic() + 120          # wait for the second node to register
    while sum(n["Alive"] for n in ray.nodes()) < 2 and time.monotonic() < deadline:
        time.sleep(1)
    nodes = sum(n["Alive"] for n in ray.nodes())
    cfg = TrainConfig(model="deeplabv3plus", preset="tiny", epochs=1, batch_size=2,
                      precision="fp32", max_steps_per_epoch=2, loader_workers=0, seed=3)
    res = cv.train(cfg, data, address=address, num_workers=2, storage_path=storage, name=name,
                   progress=False)
    print("RESULT " + json.dumps({"nodes": nodes, "client": info.client,
                                  "checkpoint": str(res.checkpoint),
                                  "epochs": res.metrics["epoch"].tolist(),
                                  "world_size": res.metrics["world_size"].tolist(),
                                  "miou": res.metrics["miou"].tolist()}))
""")


def _head_logs(temp_dir: str) -> str:
    """Tails of the head node's Ray Client / raylet logs, to say why a connection failed."""
    logs = Path(temp_dir) / "session_latest" / "logs"
    out = []
    for pattern in ("ray_client_server*.err", "ray_client_server*.out", "raylet.out"):
        for f in sorted(logs.glob(pattern)):
            text = f.read_text(errors="replace").splitlines()[-15:]
            out.append(f"\n--- {f} ---\n" + "\n".join(text))
    return "".join(out)


@pytest.mark.parametrize("via", ["gcs", "client"])
def test_train_on_a_two_node_cluster(ray_two_nodes, via, small_run, tmp_path):
    from climviz.training.checkpoint import load_checkpoint

    address = ray_two_nodes["gcs"] if via == "gcs" else ray_two_nodes["client"]
    data = tmp_path / "run.nc"
    small_run.to_netcdf(data)          # a path: each worker opens it
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE="token")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(script), address, str(data), str(tmp_path / "runs"),
                           f"two-node-{via}"], env=env, capture_output=True, text=True, timeout=420)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-3000:] + proc.stderr[-5000:]
                                            + _head_logs(ray_two_nodes["temp_dir"]))
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["nodes"] == 2 and out["client"] == (via == "client")
    assert out["epochs"] == [1] and out["world_size"] == [2]
    assert 0.0 <= out["miou"][0] <= 1.0
    ckpt = Path(out["checkpoint"])
    assert ckpt == tmp_path / "runs" / f"two-node-{via}" / "epoch_0001" / "checkpoint.pt"
    payload = load_checkpoint(ckpt)
    assert payload["epoch"] == 1 and payload["model"] == "deeplabv3plus"
