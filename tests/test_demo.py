"""`climviz demo --quick` (the README's main job) and `climviz report`, run for real as a user would.

The demo test trains on a local Ray (2 workers) and checks the skill the issue promises on the
held-out steps, recomputing the scores from the written masks and the sample's labels with
numpy; the report pages are opened in a real headless Chromium (offline).
"""

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

from climviz.demo import DEMO_STEPS, demo_config, sample_paths

PROMISED = ["index.html", "explorer.html", "summary.json", "scorecard.csv", "training_metrics.csv", "masks.nc",
            "events.csv", "tracks.csv", "event_counts.csv", "map_first_step.png", "panel_maps.png",
            "training_curves.png", "frequency_tc.png", "frequency_ar.png", "tracks_map.png"]
QUICK_MIOU = 0.45


def _climviz(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "climviz", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1500)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    proc = _climviz("demo", "--quick", "--out", str(out), cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def sample():
    import climviz as cv

    return cv.open_run([str(p) for p in sample_paths()]).load()


def _non_blank(path) -> bool:
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    return img.std() > 5 and len(np.unique(img)) > 16


def _iou(a: np.ndarray, b: np.ndarray, c: int) -> float:
    return float(((a == c) & (b == c)).sum() / ((a == c) | (b == c)).sum())


def test_demo_config_keeps_steps_batch_and_lr_for_any_worker_count():
    # 24 steps, last 25% held out -> 18 training steps
    for workers, epochs, batch, lr in ((1, 40, 4, 3e-3), (2, 40, 2, 3e-3), (4, 80, 2, 6e-3)):
        cfg = demo_config(24, num_workers=workers)
        steps_per_epoch = (18 // workers) // cfg.batch_size
        assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_scaling) == (epochs, batch, lr, "none")
        assert cfg.epochs * steps_per_epoch >= DEMO_STEPS["full"]
    assert demo_config(24, num_workers=2, quick=True).epochs == 24  # 96 steps of 4 samples
    assert demo_config(24, num_workers=2, epochs=3).epochs == 3


@pytest.mark.ray
def test_demo_learns_the_storms_on_the_held_out_steps(demo_dir, sample):
    out, stdout, _ = demo_dir
    masks = xr.open_dataset(out / "masks.nc")["mask"].load()
    held = sample["time"].values[18:]  # the last 25% in time: never trained on
    pred = masks.sel(time=held).values
    truth = sample["LABELS"].sel(time=held).values
    ious = [_iou(pred, truth, c) for c in (0, 1, 2)]
    assert np.mean(ious) >= QUICK_MIOU, ious
    # the scorecard reports the same numbers as this independent computation
    card = pd.read_csv(out / "scorecard.csv")
    model = card[card["source"] == "model"].set_index("name")
    np.testing.assert_allclose([model.loc[n, "iou"] for n in ("background", "TC", "AR")], ious, rtol=1e-9)
    np.testing.assert_allclose(model.loc["mIoU", "iou"], np.mean(ious), rtol=1e-9)
    # ... next to the heuristic detectors on the same steps
    heur = card[card["source"] == "heuristic"].set_index("name")
    assert set(heur.index) == {"background", "TC", "AR", "mIoU"}
    assert heur.loc["TC", "n_true"] == model.loc["TC", "n_true"]
    summary = json.loads((out / "summary.json").read_text())
    assert next(iter(summary)) == "verdict" and summary["verdict"].startswith("PASS")
    assert stdout.index("verdict") < stdout.index("val mIoU")  # the summary leads with skill
    assert f"{np.mean(ious):.3f}" in stdout


@pytest.mark.ray
def test_demo_writes_every_promised_file(demo_dir):
    out, stdout, stderr = demo_dir
    for name in PROMISED:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        assert _non_blank(png), png
    assert "climviz summary" in stdout and "val mIoU" in stdout and "index.html" in stdout
    # clean output: stage lines on their own lines, no library warnings, no tracebacks
    for noise in ("Warning", "W-1005", "Traceback", "\r"):
        assert noise not in stderr, (noise, stderr[-3000:])


@pytest.mark.ray
def test_demo_outputs_are_consistent_with_each_other(demo_dir, sample):
    out, _, _ = demo_dir
    summary = json.loads((out / "summary.json").read_text())
    metrics = pd.read_csv(out / "training_metrics.csv")
    assert list(metrics["epoch"]) == list(range(1, 25)) and metrics["global_step"].iloc[-1] == 96
    assert summary["epochs"] == 24 and summary["synthetic"] == "yes"
    masks = xr.open_dataset(out / "masks.nc")
    assert masks["mask"].dtype == np.uint8 and masks.sizes["time"] == sample.sizes["time"]
    assert set(np.unique(masks["mask"].values)) <= {0, 1, 2}
    events = pd.read_csv(out / "events.csv")
    # every event row's cells add up to the mask's non-background cells
    assert events["n_cells"].sum() == int((masks["mask"].values > 0).sum())
    assert summary["TC events"] == int((events["class"] == 1).sum())
    counts = pd.read_csv(out / "event_counts.csv").set_index("class")
    assert counts.loc["TC", "events (step, region)"] == int((events["class"] == 1).sum())
    np.testing.assert_allclose(counts.loc["AR", "mean area (km²)"], events.loc[events["class"] == 2, "area_km2"].mean())
    tracks = pd.read_csv(out / "tracks.csv")
    assert counts.loc["TC", "tracks"] == int((tracks["class"] == 1).sum())
    html = (out / "explorer.html").read_text()
    assert "<html" in html.lower() and "cdn.bokeh.org" not in html  # self-contained
    index = (out / "index.html").read_text()
    for name in ("panel_maps.png", "training_curves.png", "explorer.html", "tracks.csv", "scorecard.csv"):
        assert name in index


@pytest.mark.ray
@pytest.mark.browser
def test_report_pages_work_offline_in_a_browser(demo_dir, chromium):
    from tests.viz.test_browser import SHADOW_TEXT, changed_fraction, map_pixels, wait_for_bokeh, watch

    out, _, _ = demo_dir
    page = chromium.new_page(viewport={"width": 1300, "height": 1100})
    seen = watch(page)
    page.goto((out / "index.html").as_uri())
    page.wait_for_load_state("load")
    widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(widths) >= 5 and min(widths) > 300  # every image loads
    assert "Skill against the labels" in page.inner_text("body")
    page.close()

    page = chromium.new_page(viewport={"width": 1300, "height": 1100})
    seen2 = watch(page)
    page.goto((out / "explorer.html").as_uri())
    wait_for_bokeh(page)
    assert page.locator(".noUi-handle").count() == 1 and page.locator("select").count() == 1
    before = map_pixels(page)
    handle = page.locator(".noUi-handle").first
    handle.focus()
    for _ in range(8):  # one day later: storms and rivers have moved
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(1000)
    after = map_pixels(page)
    assert changed_fraction(before, after) > 0.005
    page.wait_for_function(SHADOW_TEXT, arg="2000-09-02 00:00 UTC", timeout=20_000)  # the date shown
    page.locator("select").first.select_option(label="sea level pressure (hPa)")  # the whole map changes
    page.wait_for_timeout(1000)
    assert changed_fraction(after, map_pixels(page)) > 0.3
    page.wait_for_function(SHADOW_TEXT, arg="sea level pressure (hPa)", timeout=20_000)  # colour bar, title
    shown = map_pixels(page)
    page.locator("input[type=checkbox]").first.uncheck()  # hide the TCs: their cells change colour
    page.wait_for_timeout(800)
    assert 0.0005 < changed_fraction(shown, map_pixels(page)) < 0.05
    for s in (seen, seen2):
        assert s["errors"] == []
        assert [u for u in s["requests"] if not u.startswith(("file:", "data:", "blob:"))] == []
    page.close()


@pytest.fixture(scope="module")
def chromium(browser):
    """The session's headless Chromium (tests/conftest.py): one Playwright driver per process."""
    return browser


@pytest.mark.ray
def test_report_rebuilds_the_tables_from_existing_predictions(demo_dir, tmp_path):
    out, _, _ = demo_dir
    proc = _climviz("report", str(out / "masks.nc"), "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "events.csv")[["time", "class", "n_cells"]],
                                  pd.read_csv(out / "events.csv")[["time", "class", "n_cells"]])
    # no run, no labels: no skill section, and the page and the summary say so
    assert not (tmp_path / "again" / "scorecard.csv").exists()
    assert "No skill section" in (tmp_path / "again" / "index.html").read_text()
    assert "not scored" in proc.stdout
    # an existing report is not overwritten without --overwrite
    proc = _climviz("report", str(out / "masks.nc"), "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    proc = _climviz("report", str(out / "masks.nc"), "--out", str(tmp_path / "again"), "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_report_scores_masks_against_the_runs_labels(tmp_path, sample):
    """`climviz report MASKS --run RUN` uses the run's LABELS: the labels scored against themselves are perfect,
    and a mask with one TC removed loses exactly that TC's cells and event."""
    from scipy import ndimage

    from climviz.data.masks import make_mask_dataset

    run = sample.isel(time=slice(0, 4))
    run_path = tmp_path / "run.nc"
    run.to_netcdf(run_path)
    m = run["LABELS"].values.copy()
    lab, _ = ndimage.label(m[0] == 1)
    m[0][lab == lab[tuple(np.argwhere(m[0] == 1)[0])]] = 0  # remove the first TC of the first step
    masks = make_mask_dataset(m, run)
    masks_path = tmp_path / "masks.nc"
    masks.to_netcdf(masks_path)
    proc = _climviz("report", str(masks_path), "--run", str(run_path), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = pd.read_csv(tmp_path / "rep" / "scorecard.csv")
    model = card[card["source"] == "model"].set_index("name")
    truth = run["LABELS"].values
    assert model.loc["TC", "iou"] == pytest.approx(((truth == 1) & (m == 1)).sum() / (truth == 1).sum())
    assert model.loc["AR", "iou"] == 1.0
    assert model.loc["TC", "n_true"] - model.loc["TC", "n_pred"] == 1 and model.loc["TC", "far"] == 0
    assert "heuristic" in set(card["source"])
    assert (tmp_path / "rep" / "panel_maps.png").stat().st_size > 0


def test_help_texts_are_plain_and_describe_each_subcommand():
    for cmd in ("demo", "report"):
        proc = _climviz(cmd, "--help", cwd=".")
        assert proc.returncode == 0
        text = proc.stdout
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, text
        assert len(text.split("options:")[0].splitlines()) > 4, text  # a description, not just usage


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


def test_demo_refuses_to_overwrite_an_existing_report_before_any_work(tmp_path):
    (tmp_path / "index.html").write_text("an earlier report")
    proc = _climviz("demo", "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "index.html").read_text() == "an earlier report" and not (tmp_path / "runs").exists()
