"""Shared test configuration.

Subpackage fixtures live in ``tests/<subpackage>/conftest.py``. The session-wide
local Ray (one per test session: starting Ray costs tens of seconds) comes from
``tests/ray_fixtures.py``.
"""

from __future__ import annotations

import os

# Keep every test run offline and quiet, and keep Ray from phoning home.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch (see climviz/__init__)

pytest_plugins = ["tests.ray_fixtures"] if os.path.exists(
    os.path.join(os.path.dirname(__file__), "ray_fixtures.py")
) else []
