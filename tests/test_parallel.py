"""Time blocks on a real local Ray: same answers as serial, resumable, bounded in flight."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import climviz as cv
from climviz.events.distributed import frequency_on_ray, label_table_on_ray
from climviz.parallel import in_flight, map_blocks, plan_blocks

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
    by_name = frequency_on_ray(run["LABELS"], ["tc", "AR"], block_steps=5, progress=False)
    xr.testing.assert_identical(by_name, freq)


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


@pytest.fixture(scope="module")
def storm_run() -> xr.Dataset:
    """A run long enough for TC stitching (20 steps of 3 h = 57 h >= the 54 h minimum), in memory."""
    return cv.synthetic_run(20, shape=(96, 144), seed=7).load()


def test_label_run_on_ray_gives_the_serial_masks_and_tracks(ray_local, storm_run, tmp_path):
    serial, det_s = cv.labels.label_run(storm_run, return_details=True)
    ray_ds, det_r = cv.labels.label_run(storm_run, return_details=True, use_ray=True, block_steps=3,
                                        work_dir=tmp_path / "blocks", progress=False)
    assert int((serial["mask"] == 1).sum()) > 0 and int((serial["mask"] == 2).sum()) > 0
    np.testing.assert_array_equal(ray_ds["mask"].values, serial["mask"].values)
    assert ray_ds.attrs["tc_tracks"] == serial.attrs["tc_tracks"] >= 1
    pd.testing.assert_frame_equal(det_r.tc.tracks.reset_index(drop=True), det_s.tc.tracks.reset_index(drop=True))
    cols = ["time_index", "lat", "lon", "track_id"]
    pd.testing.assert_frame_equal(det_r.tc.nodes[cols].reset_index(drop=True),
                                  det_s.tc.nodes[cols].reset_index(drop=True))
    pd.testing.assert_frame_equal(det_r.ar.regions.reset_index(drop=True)[det_s.ar.regions.columns],
                                  det_s.ar.regions.reset_index(drop=True), check_dtype=False)
    # resumable: the blocks are on disk, a rerun reads them
    assert len(list((tmp_path / "blocks").glob("block_*.parts.json"))) == 7


def test_label_run_on_ray_refuses_a_per_cell_percentile(ray_local, storm_run):
    with pytest.raises(cv.ConfigError, match="per-cell percentile"):
        cv.labels.label_run(storm_run, tc=False, ar={"percentile": 90.0, "percentile_scope": "cell"},
                            use_ray=True, progress=False)


def test_label_run_on_ray_with_a_run_wide_percentile_equals_serial(ray_local, storm_run):
    ar = {"percentile": 90.0, "percentile_scope": "global"}
    serial = cv.labels.label_run(storm_run, tc=False, ar=ar)
    dist = cv.labels.label_run(storm_run, tc=False, ar=ar, use_ray=True, block_steps=4, progress=False)
    np.testing.assert_array_equal(dist["mask"].values, serial["mask"].values)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_map_blocks_rejects_bad_worker_counts_before_starting_anything(bad):
    with pytest.raises(cv.ConfigError, match="num_workers"):
        map_blocks(_square_sum, lambda a, b: None, 4, num_workers=bad)


def test_label_run_on_ray_keeps_a_regional_grid_across_0E_as_serial_does(ray_local):
    """A 340..380 degE strip: the AR mask's coordinates are those of the serial path."""
    run = cv.synthetic_run(4, shape=(48, 72), seed=2).load()
    strip = run.isel(lon=list(range(68, 72)) + list(range(0, 12)))   # 340..20 degE, not global
    serial = cv.labels.label_run(strip, tc=False, ar={"threshold": 100.0})
    dist = cv.labels.label_run(strip, tc=False, ar={"threshold": 100.0}, use_ray=True, block_steps=2,
                               progress=False)
    np.testing.assert_array_equal(dist["lon"].values, serial["lon"].values)
    assert float(serial["lon"][0]) == 340.0 and float(serial["lon"][-1]) > 360.0
    np.testing.assert_array_equal(dist["mask"].values, serial["mask"].values)


def test_in_flight_caps_below_the_cluster_cpus_and_queues_at_or_above():
    assert in_flight(1, 2) == 1 and in_flight(3, 8) == 3     # fewer workers than CPUs: exactly them
    assert in_flight(2, 2) == 4 and in_flight(4, 2) == 8     # Ray's CPUs cap what runs; 2x queued
    assert in_flight(None, 2) == 4


def _sleepy(block: xr.Dataset, start: int) -> np.ndarray:
    """Record when this block ran (wall clock, seconds) and in which process."""
    t0 = time.time()
    time.sleep(0.4)
    return np.array([start, t0, time.time(), os.getpid()])


def _most_at_once(spans: np.ndarray) -> int:
    """Largest number of (start, end) intervals that overlap at one instant."""
    events = sorted([(a, 1) for a in spans[:, 0]] + [(b, -1) for b in spans[:, 1]], key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


def test_one_worker_runs_one_block_at_a_time_on_a_two_cpu_ray(ray_local):
    """num_workers=1 on a 2-CPU Ray: never two blocks at once (it used to run 2: 2 x 1 in flight)."""
    x = xr.Dataset({"x": ("time", np.arange(8.0))})
    res = np.array(map_blocks(_sleepy, lambda a, b: x.isel(time=slice(a, b)), 8, block_steps=2, num_workers=1,
                              progress=False))
    assert res[:, 0].tolist() == [0, 2, 4, 6]
    assert _most_at_once(res[:, 1:3]) == 1
    two = np.array(map_blocks(_sleepy, lambda a, b: x.isel(time=slice(a, b)), 8, block_steps=2, num_workers=2,
                              progress=False))
    assert _most_at_once(two[:, 1:3]) <= 2
