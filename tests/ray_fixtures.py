"""Session-wide local Ray for the tests (a pytest plugin, loaded by tests/conftest.py).

Starting Ray costs tens of seconds on a busy machine, so one local Ray is shared by
every test that asks for ``ray_local``. It is small (2 CPUs, 150 MB object store),
has its dashboard and Job API bound to 127.0.0.1 only, and does not forward worker
logs to the test output. A process can be connected to one Ray at a time: tests that
need another cluster (the two-node cluster tests) run their driver in a subprocess.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray started with :func:`climviz.training.cluster.connect` (ClusterInfo)."""
    pytest.importorskip("ray")
    from climviz.training.cluster import connect, shutdown

    info = connect("local", num_cpus=2, object_store_memory=150_000_000, dashboard=True,
                   log_to_driver=False)
    yield info
    shutdown()
