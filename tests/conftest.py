"""Shared test configuration.

Subpackage fixtures live in ``tests/<subpackage>/conftest.py``. The session-wide
local Ray (one per test session: starting Ray costs tens of seconds) comes from
``tests/ray_fixtures.py``.
"""

from __future__ import annotations

import os

import pytest

# Keep every test run offline and quiet, and keep Ray from phoning home.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch (see climviz/__init__)

pytest_plugins = ["tests.ray_fixtures"] if os.path.exists(
    os.path.join(os.path.dirname(__file__), "ray_fixtures.py")
) else []


#: Debian's Chromium (the README's test command installs it); CLIMVIZ_CHROMIUM overrides
CHROMIUM = os.environ.get("CLIMVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    """A real headless Chromium (Debian package ``chromium``) driven by Playwright.

    One per test session, defined here only: Playwright's sync API runs one driver per
    thread, so a second ``sync_playwright()`` while this one lives fails.
    """
    if os.environ.get("CLIMVIZ_SKIP_BROWSER") == "1":
        pytest.skip("CLIMVIZ_SKIP_BROWSER=1: browser tests switched off explicitly")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: install it with 'apt-get install -y --no-install-recommends chromium' "
                    "(or set CLIMVIZ_SKIP_BROWSER=1 to switch the browser tests off)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
