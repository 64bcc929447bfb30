"""Doctest set-up for ``pytest --doctest-modules climviz`` (the Examples sections of the API).

Examples run in a fresh temporary folder (files they write never land in the checkout),
with ``cv`` (``import climviz as cv``), ``np`` and ``xr`` already imported, offline and
without progress bars.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _doctest_environment(request, doctest_namespace, tmp_path, monkeypatch):
    """For doctests only: run in ``tmp_path`` with the usual imports; no-op for other tests."""
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import numpy as np
    import xarray as xr

    import climviz as cv

    doctest_namespace.update(cv=cv, np=np, xr=xr)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    yield
