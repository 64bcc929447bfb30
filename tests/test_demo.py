"""`climviz demo --quick` (the README's main job) and `climviz report`, run for real as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

PROMISED = ["summary.json", "training_metrics.csv", "masks.nc", "events.csv", "tracks.csv",
            "map_first_step.png", "frequency_tc.png", "frequency_ar.png", "explorer.html"]


def _climviz(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "climviz", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1500)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    proc = _climviz("demo", "--quick", "--out", str(out), cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout


def _non_blank(path) -> bool:
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    return img.std() > 5 and len(np.unique(img)) > 16


@pytest.mark.ray
def test_demo_writes_every_promised_file(demo_dir):
    out, stdout = demo_dir
    for name in PROMISED:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        assert _non_blank(png), png
    assert "climviz summary" in stdout and "val mIoU" in stdout


@pytest.mark.ray
def test_demo_outputs_are_consistent_with_each_other(demo_dir):
    out, _ = demo_dir
    summary = json.loads((out / "summary.json").read_text())
    metrics = pd.read_csv(out / "training_metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    assert summary["epochs"] == 2 and summary["synthetic"] == "yes"
    masks = xr.open_dataset(out / "masks.nc")
    assert masks["mask"].dtype == np.uint8 and masks.sizes["time"] == 24
    assert set(np.unique(masks["mask"].values)) <= {0, 1, 2}
    events = pd.read_csv(out / "events.csv")
    # every event row's cells add up to the mask's non-background cells
    assert events["n_cells"].sum() == int((masks["mask"].values > 0).sum())
    assert summary["TC events"] == int((events["class"] == 1).sum())
    html = (out / "explorer.html").read_text()
    assert "<html" in html.lower() and "cdn.bokeh.org" not in html  # self-contained


@pytest.mark.ray
def test_report_rebuilds_the_tables_from_existing_predictions(demo_dir, tmp_path):
    out, _ = demo_dir
    proc = _climviz("report", str(out / "masks.nc"), "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "events.csv")[["time", "class", "n_cells"]],
                                  pd.read_csv(out / "events.csv")[["time", "class", "n_cells"]])


def test_report_names_a_file_that_is_not_a_mask_dataset(tmp_path):
    bad = tmp_path / "fields.nc"
    xr.Dataset({"TMQ": (("lat", "lon"), np.zeros((2, 3)))}).to_netcdf(bad)
    proc = _climviz("report", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert "fields.nc" in proc.stderr and "'mask'" in proc.stderr


def test_report_names_a_missing_or_unreadable_file(tmp_path):
    proc = _climviz("report", str(tmp_path / "nowhere.nc"), cwd=tmp_path)
    assert proc.returncode == 1 and "nowhere.nc" in proc.stderr and "no such file" in proc.stderr
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netCDF file at all")
    proc = _climviz("report", str(junk), cwd=tmp_path)
    assert proc.returncode == 1 and "junk.nc" in proc.stderr and "could not be read" in proc.stderr
