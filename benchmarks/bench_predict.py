"""Prediction speed: end-to-end ``predict`` (read -> normalize -> forward -> write) vs the bare
forward pass of the same model on the same batches, measured in one run.

A synthetic run is written to disk as ClimateNet-style netCDF (one time step per
file, like the public ClimateNet files) and a ``tiny`` DeepLabv3+ checkpoint with
its normalization statistics is saved. Then, alternating, ``--repeats`` times:

1. **forward**: the checkpoint's network (``climviz.training.checkpoint.load_model``)
   on the same batches of ``--batch-size`` time steps, raw (it normalizes them) and in
   memory, inside ``torch.inference_mode`` (logits only, nothing else): steps/s.
2. **predict -> netCDF**: ``climviz.predict(checkpoint, files, out="masks.nc")``
   from opening the files to the renamed netCDF file: steps/s.
3. **predict -> Zarr**: the same into a ``.zarr`` store.

The best of the repeats of each is kept (the machine is shared; the best time is
the least disturbed). Ratio ``predict_netcdf_vs_forward`` = end-to-end rate /
forward rate (target >= 0.8), likewise for Zarr.

Memory: in a fresh process (after a one-step warm-up call), the resident set size
(RSS) is sampled every 5 ms during a prediction over the run (``--steps`` = 10x the
batch by default), and over a run 4x as long (40x the batch, in files of two
batches); the peak increase over the RSS before the call is compared with the size
of the run's input (float32), and the two peaks with each other -- streaming keeps
memory at a few batches, whatever the run length. (``climviz.data.io`` keeps up to
64 HDF5 files open per process, with their chunk caches; with one step per file
that cache, not prediction, is what grows until 64 files are open.)

Results go to ``benchmarks/results/predict[_quick].json``.

Usage::

    python benchmarks/bench_predict.py [--quick] [--grid 192 288] [--steps 40] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import PeakRSS, machine_info, save_result  # benchmarks/_common.py (this script's folder)


def machine_extras() -> dict:
    """What this benchmark adds to :func:`_common.machine_info`: the GPU, when there is one."""
    import torch

    return {"gpu": torch.cuda.get_device_name(0)} if torch.cuda.is_available() else {}


def make_run(workdir: Path, grid: tuple[int, int], steps: int, steps_per_file: int,
             seed: int) -> list[Path]:
    """Write a synthetic run as netCDF files of ``steps_per_file`` time steps each."""
    from climviz.data.io import write_run
    from climviz.data.synthetic import synthetic_run

    ds = synthetic_run(steps, shape=grid, seed=seed)
    files = []
    for t in range(0, steps, steps_per_file):
        p = workdir / f"part_{t:05d}.nc"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_run(ds.isel(time=slice(t, t + steps_per_file)), p)
        files.append(p)
    return files


def make_inputs(workdir: Path, grid: tuple[int, int], steps: int, model: str, preset: str):
    """Write the run (one netCDF per step) and a checkpoint; return (files, checkpoint)."""
    import torch

    from climviz import models
    from climviz.data.io import write_run
    from climviz.data.normalize import Normalizer
    from climviz.data.schema import CHANNELS
    from climviz.data.synthetic import synthetic_run
    from climviz.training.checkpoint import save_checkpoint

    ds = synthetic_run(steps, shape=grid, seed=11)
    files = []
    for t in range(steps):
        p = workdir / "run" / f"step_{t:04d}.nc"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_run(ds.isel(time=slice(t, t + 1)), p)
        files.append(p)
    torch.manual_seed(0)
    net = models.build(model, preset=preset, in_channels=len(CHANNELS), num_classes=3)
    kw = net.build_kwargs()
    ckpt = save_checkpoint(workdir / "ckpt", {
        "model": model, "preset": preset,
        "model_kwargs": {"in_channels": kw["in_channels"], "num_classes": kw["num_classes"],
                         "overrides": kw["overrides"]},
        "channels": list(CHANNELS), "normalizer": Normalizer.fit(ds, channels=CHANNELS).to_dict(),
        "grid": list(grid), "epoch": 0, "model_state": net.state_dict(),
    })
    return files, ckpt


def forward_only(ckpt: Path, files: list[Path], batch_size: int) -> float:
    """Seconds for the bare forward pass over all batches (raw inputs in memory; the network
    normalizes them itself, as in predict)."""
    import torch
    import xarray as xr

    from climviz.training.checkpoint import load_model

    net, meta = load_model(ckpt)
    chans = meta["channels"]
    steps = []
    for p in files:
        with xr.open_dataset(p) as d:
            steps.append(np.stack([d[c].values[0] for c in chans]))
    x = torch.from_numpy(np.stack(steps).astype(np.float32))
    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
    with torch.inference_mode():
        net(batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            net(b)
        return time.perf_counter() - t0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn(*args)``."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0, cpu_seconds() - c0


def memory_child(ckpt: str, files: list[str], out: str, batch_size: int) -> dict:
    """In a fresh process: RSS before ``predict`` (imports and model warm) and its peak during."""
    import climviz as cv
    from climviz.inference.local import run_local  # noqa: F401  (import cost not counted)

    cv.predict(ckpt, files[:1], out=out + ".warm.nc", batch_size=1, progress=False).close()
    with PeakRSS(interval=0.005) as mem:
        cv.predict(ckpt, files, out=out, batch_size=batch_size, progress=False).close()
    return {"rss_before": mem.start, "rss_peak": mem.peak}


def measure_memory(ckpt: Path, files: list[Path], out: Path, batch_size: int) -> dict:
    import subprocess

    cmd = [sys.executable, __file__, "--memory-child", str(ckpt), str(out), str(batch_size),
           *map(str, files)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def end_to_end(ckpt: Path, files: list[Path], out: Path, batch_size: int) -> float:
    import climviz as cv

    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    t0 = time.perf_counter()
    ds = cv.predict(ckpt, [str(f) for f in files], out=out, batch_size=batch_size,
                    progress=False)
    dt = time.perf_counter() - t0
    ds.close()
    return dt


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--memory-child":
        ckpt, out, batch, *files = argv[1:]
        print(json.dumps(memory_child(ckpt, files, out, int(batch))))
        return {}
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small grid and run (CI)")
    ap.add_argument("--grid", type=int, nargs=2, default=None, metavar=("LAT", "LON"))
    ap.add_argument("--steps", type=int, default=None, help="time steps (default 10x batch)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--model", default="deeplabv3plus")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    args = ap.parse_args(argv)
    grid = tuple(args.grid or ((64, 96) if args.quick else (192, 288)))
    batch = args.batch_size or (2 if args.quick else 4)
    steps = args.steps or 10 * batch
    repeats = args.repeats or (2 if args.quick else 3)

    machine = {**machine_info(), **machine_extras()}
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    try:
        files, ckpt = make_inputs(work, grid, steps, args.model, args.preset)
        end_to_end(ckpt, files[:batch], work / "warm.nc", batch)  # import / page-cache warm-up
        fwd, nc, zr = [], [], []
        for _ in range(repeats):
            fwd.append(timed(forward_only, ckpt, files, batch))
            nc.append(timed(end_to_end, ckpt, files, work / "masks.nc", batch))
            zr.append(timed(end_to_end, ckpt, files, work / "masks.zarr", batch))
        mem_full = measure_memory(ckpt, files, work / "mem_full.nc", batch)
        long_files = make_run(work / "long", grid, 4 * steps, 2 * batch, seed=12)
        mem_long = measure_memory(ckpt, long_files, work / "mem_long.nc", batch)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    step_bytes = 16 * grid[0] * grid[1] * 4
    wall = {k: [w for w, _ in v] for k, v in (("forward", fwd), ("netcdf", nc), ("zarr", zr))}
    cpu = {k: [c for _, c in v] for k, v in (("forward", fwd), ("netcdf", nc), ("zarr", zr))}
    mb = 2**20
    figures = {
        "forward_wall_s": wall["forward"], "predict_netcdf_wall_s": wall["netcdf"],
        "predict_zarr_wall_s": wall["zarr"],
        "forward_cpu_s": cpu["forward"], "predict_netcdf_cpu_s": cpu["netcdf"],
        "predict_zarr_cpu_s": cpu["zarr"],
        "forward_steps_per_s": steps / min(wall["forward"]),
        "predict_netcdf_steps_per_s": steps / min(wall["netcdf"]),
        "predict_zarr_steps_per_s": steps / min(wall["zarr"]),
        "forward_steps_per_cpu_s": steps / min(cpu["forward"]),
        "predict_netcdf_steps_per_cpu_s": steps / min(cpu["netcdf"]),
        "predict_zarr_steps_per_cpu_s": steps / min(cpu["zarr"]),
        "memory_run_steps": steps,
        "rss_before_predict_mb": mem_full["rss_before"] / mb,
        "peak_rss_increase_mb": (mem_full["rss_peak"] - mem_full["rss_before"]) / mb,
        "memory_long_run_steps": 4 * steps,
        "memory_long_run_files": 2 * steps // batch,
        "peak_rss_increase_long_run_mb": (mem_long["rss_peak"] - mem_long["rss_before"]) / mb,
        "run_input_float32_mb": steps * step_bytes / mb,
        "batch_input_float32_mb": batch * step_bytes / mb,
    }
    f = figures
    ratios = {
        "predict_netcdf_vs_forward": f["predict_netcdf_steps_per_s"] / f["forward_steps_per_s"],
        "predict_zarr_vs_forward": f["predict_zarr_steps_per_s"] / f["forward_steps_per_s"],
        "predict_netcdf_vs_forward_cpu_time": f["predict_netcdf_steps_per_cpu_s"] / f["forward_steps_per_cpu_s"],
        "predict_zarr_vs_forward_cpu_time": f["predict_zarr_steps_per_cpu_s"] / f["forward_steps_per_cpu_s"],
        "peak_memory_increase_vs_run_input": f["peak_rss_increase_mb"] / f["run_input_float32_mb"],
        "peak_memory_long_vs_10x_batch_run": f["peak_rss_increase_long_run_mb"] / f["peak_rss_increase_mb"],
        "peak_memory_increase_vs_long_run_input": f["peak_rss_increase_long_run_mb"] / (4 * f["run_input_float32_mb"]),
    }
    result = {
        "config": {"grid": list(grid), "steps": steps, "batch_size": batch, "model": args.model,
                   "preset": args.preset, "repeats": repeats, "files": "one netCDF per time step",
                   "device": "cuda" if machine.get("gpu") else "cpu"},
        "targets": {"predict_netcdf_vs_forward": ">= 0.8", "predict_zarr_vs_forward": ">= 0.8",
                    "peak_memory_increase_vs_run_input": "< 1 (streams; a few batches)",
                    "peak_memory_increase_vs_long_run_input": "<< 1",
                    "peak_memory_long_vs_10x_batch_run": "about 1 (bounded: independent of run length)"},
    }
    notes = ("Measured on a shared machine while other jobs ran (see load averages); "
             "best of the repeats. Wall-clock ratios are the target; CPU-time ratios "
             "(user + system seconds of all threads) are less disturbed by other jobs "
             "but charge the reader/writer threads' overlap as cost. The forward baseline excludes argmax, reading, "
             "normalization and writing; predict includes opening the files, the "
             "background reader/writer threads, and the final netCDF conversion/rename. "
             "Memory is measured in a fresh process (after a one-step warm-up call): the "
             "peak RSS increase includes the model's activations for one batch.")
    save_result("predict", figures, ratios, notes, quick=args.quick, out=args.out, machine=machine,
                packages=("torch", "xarray", "dask", "netCDF4", "zarr"), **result)
    print(json.dumps({"figures": figures, "ratios": ratios}, indent=1))
    return {**result, "figures": figures, "ratios": ratios}


if __name__ == "__main__":
    main()
