"""Labels and events of a long run on Ray workers vs the serial path (issue: decades on a cluster).

On a run written to Zarr (768 x 1152, the ClimateNet grid), this times:

* **events**: ``label_table`` serial (one process, block by block) vs
  :func:`climviz.events.distributed.label_table_on_ray` with 1 and 2 Ray workers, on
  DeepCAM-like masks (``MaskMaker`` of ``bench_events.py``);
* **labels**: ``label_run`` serial (block by block, each block read once) vs
  ``label_run(..., use_ray=True)`` with 1 and 2 workers, on a synthetic run (PSL, winds,
  temperatures, TMQ); also the whole-run detectors over the lazy run (the serial path
  before it read blocks) as a reference, and the 2-worker over 1-worker speedup;

each repeated (median and spread), Ray already running (its start-up is measured
separately, once). Ratios are throughput over the serial path's; the target is 2 workers
>= 1.6x serial on 2 cores. Peak memory per worker (resident set of the Ray worker processes,
sampled) is measured for the run and for a run 4x longer: it must stay flat.

Usage::

    python benchmarks/bench_parallel.py [--quick] [--steps N] [--repeats R] [--block-steps B]
        [--no-lazy-reference] [--skip-labels] [--out PATH]

A full run (96 steps at 768 x 1152, ``--repeats 3``) takes some 8 minutes on 2 free cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from _common import machine_info, save_result, timed  # benchmarks/_common.py (this script's folder)
from bench_events import MaskMaker

PACKAGES = ("ray", "xarray", "dask", "zarr", "scipy")


class WorkerPeak:
    """Largest resident set of any Ray worker process while a ``with`` block runs (MiB)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for p in psutil.process_iter(["name", "cmdline", "memory_info"]):
                cmd = " ".join(p.info.get("cmdline") or [])
                if "ray::" in (p.info.get("name") or "") or "default_worker.py" in cmd:
                    mem = p.info.get("memory_info")
                    if mem is not None:
                        self.peak = max(self.peak, mem.rss)
            time.sleep(self.interval)

    def __enter__(self) -> "WorkerPeak":
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    @property
    def mib(self) -> float:
        return self.peak / 2**20


def write_masks(path: Path, n: int, shape: tuple[int, int]) -> xr.DataArray:
    """DeepCAM-like masks written to Zarr (8 steps a chunk), opened lazily."""
    da = MaskMaker(shape, seed=1).dataarray(n, 8)
    da.to_dataset().to_zarr(path, mode="w")
    return xr.open_zarr(path)["mask"]


def write_run(path: Path, n: int, shape: tuple[int, int]) -> xr.Dataset:
    """A synthetic run's detector channels written to Zarr (4 steps a chunk), opened lazily."""
    import climviz as cv

    ds = cv.synthetic_run(n, shape=shape, seed=2)[["PSL", "U850", "V850", "T200", "T500", "TMQ"]]
    ds.chunk({"time": 4}).to_zarr(path, mode="w")
    return xr.open_zarr(path)


def events_case(masks: xr.DataArray, repeats: int, block: int) -> dict:
    from climviz.events import label_table
    from climviz.events.distributed import label_table_on_ray

    out = {"serial": timed(lambda: label_table(masks, return_labels=False, block_steps=block), repeats)}
    for w in (1, 2):
        with WorkerPeak() as peak:
            out[f"ray_{w}"] = timed(lambda w=w: label_table_on_ray(masks, block_steps=block, num_workers=w,
                                                                   progress=False), repeats)
        out[f"ray_{w}"]["worker_peak_rss_mib"] = peak.mib
    return out


def _same_masks(a: xr.Dataset, b: xr.Dataset, what: str) -> None:
    if not np.array_equal(a["mask"].values, b["mask"].values):
        raise AssertionError(f"{what}: the masks differ from the serial label_run's")


def labels_case(run: xr.Dataset, repeats: int, block: int, lazy_reference: bool) -> dict:
    """label_run serial (block by block, each block read once) vs on 1 and 2 Ray workers.

    With ``lazy_reference`` also the whole-run detectors over the lazy run
    (``detect_tc`` + ``detect_ar``: what the serial label_run did before it read blocks),
    once after a warm-up: the gain of reading each block once.
    """
    from climviz.labels import detect_ar, detect_tc, label_run

    last: dict = {}
    out = {"serial": timed(lambda: last.__setitem__("serial", label_run(run, block_steps=block)), repeats)}
    if lazy_reference:
        out["serial_whole_run_lazy"] = timed(lambda: (detect_tc(run), detect_ar(run)), 1)
    for w in (1, 2):
        with WorkerPeak() as peak:
            out[f"ray_{w}"] = timed(lambda w=w: last.__setitem__(w, label_run(
                run, use_ray=True, num_workers=w, block_steps=block, progress=False)), repeats)
        out[f"ray_{w}"]["worker_peak_rss_mib"] = peak.mib
        _same_masks(last[w], last["serial"], f"label_run on {w} Ray worker(s)")
    # the same run 4x longer (its steps repeated, times shifted; read lazily, nothing rewritten)
    n = run.sizes["time"]
    step = run["time"].values[1] - run["time"].values[0] if n > 1 else np.timedelta64(3, "h")
    long = xr.concat([run.assign_coords(time=run["time"].values + k * n * step) for k in range(4)], dim="time")
    with WorkerPeak() as peak:
        label_run(long, use_ray=True, num_workers=2, block_steps=block, progress=False)
    out["ray_2_run_4x_worker_peak_rss_mib"] = peak.mib
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="192 x 288 grid, 24 steps, 2 repeats")
    ap.add_argument("--steps", type=int, default=None, help="time steps (default 96, quick 24)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats after a warm-up (default 5)")
    ap.add_argument("--skip-labels", action="store_true", help="time the events only")
    ap.add_argument("--block-steps", type=int, default=8, help="label_run block_steps (default 8)")
    ap.add_argument("--no-lazy-reference", action="store_true",
                    help="skip the whole-run detectors over the lazy run (the old serial label_run)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/parallel[_quick].json)")
    args = ap.parse_args(argv)
    shape = (192, 288) if args.quick else (768, 1152)
    steps = args.steps or (24 if args.quick else 96)
    repeats = args.repeats or (2 if args.quick else 5)
    machine = machine_info()
    warnings.simplefilter("ignore")

    from climviz.training.cluster import connect

    t0 = time.perf_counter()
    connect(None, dashboard=False)
    ray_start_s = time.perf_counter() - t0

    figures: dict = {"grid": list(shape), "steps": steps, "repeats": repeats, "ray_start_s": ray_start_s}
    ratios: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        masks = write_masks(Path(tmp) / "masks.zarr", steps, shape)
        ev = events_case(masks, repeats, 8)
        long_masks = write_masks(Path(tmp) / "masks4.zarr", 4 * steps, shape)
        with WorkerPeak() as peak:
            from climviz.events.distributed import label_table_on_ray

            label_table_on_ray(long_masks, block_steps=8, num_workers=2, progress=False)
        ev["ray_2_run_4x_worker_peak_rss_mib"] = peak.mib
        figures["events"] = ev
        for w in (1, 2):
            ratios[f"events_ray_{w}_workers_vs_serial"] = ev["serial"]["median_s"] / ev[f"ray_{w}"]["median_s"]
        ratios["events_worker_peak_memory_run_4x_vs_run"] = ev["ray_2_run_4x_worker_peak_rss_mib"] / max(
            ev["ray_2"]["worker_peak_rss_mib"], 1e-9)
        if not args.skip_labels:
            run = write_run(Path(tmp) / "run.zarr", steps, shape)
            lb = labels_case(run, repeats, args.block_steps, not args.no_lazy_reference)
            figures["labels"] = lb
            figures["labels_block_steps"] = args.block_steps
            for w in (1, 2):
                ratios[f"labels_ray_{w}_workers_vs_serial"] = lb["serial"]["median_s"] / lb[f"ray_{w}"]["median_s"]
            ratios["labels_ray_2_workers_vs_1_worker"] = lb["ray_1"]["median_s"] / lb["ray_2"]["median_s"]
            if "serial_whole_run_lazy" in lb:
                ratios["labels_serial_blocks_vs_whole_run_lazy"] = (lb["serial_whole_run_lazy"]["median_s"]
                                                                    / lb["serial"]["median_s"])
            ratios["labels_worker_peak_memory_run_4x_vs_run"] = lb["ray_2_run_4x_worker_peak_rss_mib"] / max(
                lb["ray_2"]["worker_peak_rss_mib"], 1e-9)
    print({k: round(v, 3) for k, v in ratios.items()})
    save_result("parallel", figures, ratios,
                notes=("Ray already running when timed (ray_start_s: its start-up, once). Serial = the same "
                       "public function in this process on the same lazily opened Zarr data (label_run: block "
                       "by block, each block of the needed variables read once, as each Ray task does; "
                       "serial_whole_run_lazy: detect_tc + detect_ar over the lazy run, the serial path before "
                       "it read blocks, one run after a warm-up). Ray N = num_workers=N: at most N tasks run "
                       "at once. Ray masks checked equal to the serial ones. Worker peak memory: largest "
                       "resident set of a Ray worker; run_4x = the same run repeated 4 times (read lazily). "
                       "Times are the median of the repeats after one warm-up; spread = (max-min)/median. "
                       + ("Shared 2-core machine: see the load averages." if (os.cpu_count() or 1) <= 4 else "")),
                quick=args.quick, out=args.out, machine=machine, packages=PACKAGES,
                targets={"ray_2_workers_vs_serial": ">= 1.6 on 2 cores",
                         "ray_2_workers_vs_1_worker": "close to 2 on 2 free cores",
                         "worker_peak_memory_run_4x_vs_run": "about 1"})
    return {"figures": figures, "ratios": ratios}


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
