"""Drawing commands print results, not library noise (issue 22 item 6).

``climviz report`` draws the map PNGs and the explorer page of a small piece of
the bundled sample (4 time steps, with the run, so fields, masks, heuristics and
skill are all drawn). Its stderr may carry progress, never a warning: no Bokeh
``W-1005``, no raw ``UserWarning`` with its source line, no pyproj/pint/param
logger warnings. A failure names the lines, and so where they come from.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"warning|W-\d{4}|E-\d{4}|traceback", re.I)


def noise(text: str) -> list[str]:
    """Lines of command output that are warnings or tracebacks (not progress or results)."""
    return [ln for ln in text.splitlines() if NOISE.search(ln)]


def test_noise_filter_catches_the_warnings_of_issue_22():
    out = ("WARNING:bokeh.core.validation.check:W-1005 (FIXED_SIZING_MODE): 'fixed' sizing mode\n"
           "/work/main/climviz/labels/tc.py:584: UserWarning: TC detection: the run spans 9 h\n"
           "  warnings.warn(\n"
           "predict: 100%|██████████| 24/24 [00:05<00:00,  4.75step/s]\n"
           "report written to out/ (11 files)\n")
    assert noise(out) == out.splitlines()[:3]


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    import climviz as cv
    from climviz.data.masks import make_mask_dataset

    d = tmp_path_factory.mktemp("quiet")
    run = cv.open_run(ROOT / "data_samples" / "climatenet").isel(time=slice(0, 4)).load()
    make_mask_dataset(run["LABELS"].values, run).to_netcdf(d / "masks.nc")
    run.to_netcdf(d / "run.nc")
    return d


def test_report_draws_without_library_warnings(small_sample):
    d = small_sample
    env = {**os.environ, "TQDM_DISABLE": "1", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-m", "climviz", "report", str(d / "masks.nc"), "--run",
                           str(d / "run.nc"), "--out", str(d / "report")], cwd=d, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (d / "report" / "explorer.html").is_file() and (d / "report" / "map_first_step.png").is_file()
    assert noise(proc.stderr) + noise(proc.stdout) == []
