"""The linter and the type checker configured in ``pyproject.toml`` pass on the repository.

``ruff check climviz tests benchmarks`` (pycodestyle, pyflakes, pydocstyle with the numpy
convention, bugbear, pyupgrade; see ``[tool.ruff]``) and ``mypy`` (``[tool.mypy]``, which
checks the ``climviz`` package with check_untyped_defs and warn_unused_ignores) are run as
the developer runs them, from the repository root, with this interpreter's installations
(``python -m ruff`` / ``python -m mypy``). A finding fails the test with the tool's own
report, so the message says file, line and rule.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def test_ruff_clean():
    res = _run("ruff", "check", "--no-fix", "--output-format", "concise", "climviz", "tests", "benchmarks",
               timeout=300)
    assert res.returncode == 0, f"ruff check found problems:\n{res.stdout}{res.stderr}"


def test_mypy_clean():
    res = _run("mypy", timeout=600)  # files, options: [tool.mypy] in pyproject.toml
    assert res.returncode == 0, f"mypy found problems:\n{res.stdout}{res.stderr}"
    assert "Success: no issues found" in res.stdout, res.stdout + res.stderr
