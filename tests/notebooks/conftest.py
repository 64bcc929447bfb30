"""Run notebooks top to bottom through a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def execute_notebook(path: Path, workdir: Path, *, timeout: int = 600, env: dict | None = None) -> nbformat.NotebookNode:
    """Execute ``path`` in ``workdir`` with a fresh kernel; return the executed notebook.

    Sizes are made small through environment variables (``CLIMVIZ_NB_QUICK=1``), never by editing
    cells. Raises ``nbclient.exceptions.CellExecutionError`` naming the failing cell.
    """
    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.update({"CLIMVIZ_NB_QUICK": "1", "CLIMVIZ_ROOT": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
                       "MPLBACKEND": "Agg", **(env or {})})
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


@pytest.fixture(scope="session")
def run_notebook():
    return execute_notebook
