"""Time blocks on a real local Ray: same answers as serial, resumable, bounded in flight."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import climviz as cv
from climviz.events.distributed import frequency_on_ray, label_table_on_ray
from climviz.parallel import map_blocks, plan_blocks

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def run() -> xr.Dataset:
    return cv.synthetic_run(12, shape=(48, 72), seed=5).load()


def test_plan_blocks_covers_the_run_once_in_order():
    plan = plan_blocks(10, 3)
    assert list(plan) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert plan.n_steps == 10
    covered = np.concatenate([np.arange(a, b) for a, b in plan])
    np.testing.assert_array_equal(covered, np.arange(10))


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_plan_blocks_rejects_bad_sizes(bad):
    with pytest.raises(cv.ConfigError, match="block_steps"):
        plan_blocks(10, bad)


def test_label_table_on_ray_equals_the_serial_table(ray_local, run):
    _, serial = cv.events.label_table(run["LABELS"], run[["PSL", "TMQ"]], return_labels=False)
    dist = label_table_on_ray(run["LABELS"], run[["PSL", "TMQ"]], block_steps=5, progress=False)
    assert len(serial) > 20
    pd.testing.assert_frame_equal(dist.reset_index(drop=True), serial.reset_index(drop=True))


def test_frequency_on_ray_equals_the_hand_count(ray_local, run):
    freq = frequency_on_ray(run["LABELS"], (1, 2), block_steps=5, progress=False)
    labels = run["LABELS"].values
    np.testing.assert_allclose(freq.sel({"class": 1}).values, (labels == 1).mean(axis=0))
    np.testing.assert_allclose(freq.sel({"class": 2}).values, (labels == 2).mean(axis=0))


def _square_sum(block: xr.Dataset, start: int) -> np.ndarray:
    return np.array([start, float((block["x"].values ** 2).sum())])


def test_a_resumed_job_reads_finished_blocks_and_computes_only_the_rest(ray_local, tmp_path):
    x = xr.Dataset({"x": ("time", np.arange(10.0))})
    out = tmp_path / "blocks"
    first = map_blocks(_square_sum, lambda a, b: x.isel(time=slice(a, b)), 10, block_steps=4,
                       out_dir=out, progress=False)
    files = sorted(p.name for p in out.glob("block_*.npy"))
    assert files == ["block_000000000_000000004.npy", "block_000000004_000000008.npy",
                     "block_000000008_000000010.npy"]
    # a killed driver: one block lost; mark the others so we can see they are read, not recomputed
    (out / files[1]).unlink()
    np.save(out / files[0], np.array([0.0, -1.0]))
    again = map_blocks(_square_sum, lambda a, b: x.isel(time=slice(a, b)), 10, block_steps=4,
                       out_dir=out, progress=False)
    assert again[0][1] == -1.0                      # read from disk
    assert again[1][1] == first[1][1] == 16 + 25 + 36 + 49   # recomputed, by hand
    assert again[2][1] == 64 + 81
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_resuming_with_another_layout_is_refused(ray_local, tmp_path):
    x = xr.Dataset({"x": ("time", np.arange(6.0))})
    out = tmp_path / "blocks"
    map_blocks(_square_sum, lambda a, b: x.isel(time=slice(a, b)), 6, block_steps=3, out_dir=out,
               progress=False)
    before = json.loads((out / "blocks.json").read_text())
    with pytest.raises(cv.OutputError, match="another job"):
        map_blocks(_square_sum, lambda a, b: x.isel(time=slice(a, b)), 6, block_steps=2, out_dir=out,
                   progress=False)
    assert json.loads((out / "blocks.json").read_text()) == before


def _die_once(block: xr.Dataset, start: int) -> np.ndarray:
    """Kill this worker the first time block 0 runs (a marker file says it happened)."""
    marker = block.attrs["marker"]
    if start == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return np.array([start, float(block["x"].values.sum())])


def test_a_killed_worker_is_retried(ray_local, tmp_path):
    x = xr.Dataset({"x": ("time", np.arange(6.0))}, attrs={"marker": str(tmp_path / "died")})
    res = map_blocks(_die_once, lambda a, b: x.isel(time=slice(a, b)), 6, block_steps=3,
                     progress=False)
    assert (tmp_path / "died").exists()
    assert [r[1] for r in res] == [0 + 1 + 2, 3 + 4 + 5]
