"""Input pipeline speed: raw file reads vs what the training loader delivers.

A synthetic run on the ClimateNet / DeepCAM grid (768 x 1152, 16 channels) is
written to disk as ClimateNet netCDF4, one time step per file (uncompressed,
about 57 MB each, like the public ClimateNet files). Measured in the same run,
after one warm-up pass so that both read from the page cache:

1. **raw read**: one process reads every file's 16 variables with the netCDF4
   library into numpy arrays (no dask, no normalization): steps/s and MB/s.
2. **loader**: ``SegmentationDataset(files, nan_fill=None)`` through
   ``make_loader(num_workers=2)``, as training builds it: raw float32
   ``(N, 16, 768, 1152)`` fields and int64 labels (the network normalizes on the
   training device, see :mod:`climviz.models.normalization`).
3. **normalizing loader** (the previous design, still public):
   ``SegmentationDataset(files, normalizer=...)`` normalizing in the workers.
4. **train step** (optional): the ``tiny`` DeepLabv3+ forward + backward on
   one 768 x 1152 sample on this CPU, to compare with what the loader delivers.

Each is timed with ``_common.timed`` (median of ``--repeats`` epochs after a warm-up
epoch that starts the persistent workers and, as in training's first epoch, checks
every step for NaN/inf; later epochs skip the check). A per-step CPU breakdown in one
process (file read, NaN/inf check, normalization, labels) says where the loader's
time goes; it is independent of the machine's load.

Ratios: ``loader_vs_raw_read`` (target >= 0.7) and ``loader_vs_train_step``
(target >= 3). Results go to ``benchmarks/results/data[_quick].json``.

Usage::

    python benchmarks/bench_data.py [--quick] [--steps N] [--workers 2] [--no-train-step]
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

from climviz.data.io import write_run
from climviz.data.normalize import Normalizer
from climviz.data.schema import CHANNELS, LABEL_VAR, PAPER_GRID
from climviz.data.synthetic import synthetic_run
from climviz.data.torchdata import SegmentationDataset, make_loader

from _common import machine_info, save_result, timed  # benchmarks/_common.py (this script's folder)

PACKAGES = ("torch", "xarray", "dask", "netCDF4", "h5py")


def raw_read(files: list[Path]) -> tuple[float, int, float]:
    """Read all channels + labels of every file with netCDF4; returns (seconds, bytes, CPU seconds)."""
    import netCDF4

    nbytes = 0
    c0 = cpu_seconds(False)
    t0 = time.perf_counter()
    for p in files:
        with netCDF4.Dataset(p) as nc:
            nc.set_auto_mask(False)
            for c in (*CHANNELS, LABEL_VAR):
                a = nc.variables[c][:]
                nbytes += a.nbytes
    return time.perf_counter() - t0, nbytes, cpu_seconds(False) - c0


def make_bench_loader(files: list[Path], norm: Normalizer | None, workers: int, batch: int, prefetch: int):
    """The training loader (``norm=None``: raw fields, NaN kept) or the normalizing one."""
    ds = SegmentationDataset([str(p) for p in files], normalizer=norm, nan_fill=None if norm is None else 0.0)
    return ds, make_loader(ds, batch_size=batch, num_workers=workers, persistent_workers=workers > 0,
                           prefetch_factor=prefetch if workers > 0 else None)


def cpu_breakdown(files: list[Path], norm: Normalizer, repeats: int = 3) -> dict[str, float]:
    """CPU milliseconds per step, in this process, of each part of a loader worker's work."""
    from climviz.data.io import open_run, read_step

    ds = open_run([str(p) for p in files])
    chans = list(CHANNELS)
    out = np.empty((len(chans), *ds["TMQ"].shape[1:]), np.float32)
    mean = norm.mean.astype(np.float32)
    inv = (1.0 / norm.std).astype(np.float32)
    n = len(files)

    def per_step(fn) -> float:
        fn(0)
        c0 = time.process_time()
        for _ in range(repeats):
            for t in range(n):
                fn(t)
        return round((time.process_time() - c0) / (repeats * n) * 1e3, 2)

    def raw(t: int) -> None:
        import netCDF4

        with netCDF4.Dataset(files[t]) as nc:
            nc.set_auto_mask(False)
            for c in chans:
                nc.variables[c][:]

    return {
        "raw_read_netcdf4_16_channels": per_step(raw),
        "read_step_16_channels_unchecked": per_step(lambda t: read_step(ds, t, chans, out, check=False)),
        "read_step_16_channels_checked_nan_inf": per_step(lambda t: read_step(ds, t, chans, out)),
        "read_step_16_channels_checked_and_normalized": per_step(
            lambda t: read_step(ds, t, chans, out, offset=mean, scale=inv, fill_value=0.0)),
        "read_step_labels": per_step(lambda t: read_step(ds, t, [LABEL_VAR], out[:0])),
    }


def cpu_seconds(include_children: bool) -> float:
    """CPU time (user + system) of this process and, optionally, its live child processes."""
    import psutil

    me = psutil.Process()
    procs = [me] + (me.children(recursive=True) if include_children else [])
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def loader_epoch(ds, loader) -> tuple[float, int, float]:
    """Iterate the loader once (one epoch); returns (seconds, samples, CPU seconds of all processes)."""
    n = 0
    c0 = cpu_seconds(True)
    t0 = time.perf_counter()
    for x, y in loader:
        assert x.shape[1:] == (len(CHANNELS), *ds.shape) and y.shape[1:] == ds.shape
        n += x.shape[0]
    return time.perf_counter() - t0, n, cpu_seconds(True) - c0


def train_step_rate(shape: tuple[int, int], repeats: int = 2) -> float | None:
    """Images/s of forward + backward of the tiny DeepLabv3+ on one full-grid sample (CPU)."""
    try:
        import torch

        from climviz.models import build
    except Exception as exc:  # noqa: BLE001 - the models package is optional here
        print(f"train step skipped: {exc}")
        return None
    torch.manual_seed(0)
    net = build("deeplabv3plus", preset="tiny", in_channels=len(CHANNELS), num_classes=3)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.randn(1, len(CHANNELS), *shape)
    y = torch.randint(0, 3, (1, *shape))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return repeats / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 steps instead of 16")
    parser.add_argument("--steps", type=int, default=None, help="time steps (files) in the run")
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes (2)")
    parser.add_argument("--batch-size", type=int, default=1, help="loader batch size (1)")
    parser.add_argument("--prefetch", type=int, default=2, help="batches prefetched per worker (2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs of each reader (median is kept)")
    parser.add_argument("--no-train-step", action="store_true", help="skip the model train-step timing")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the run (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    steps = args.steps or (4 if args.quick else 16)
    shape = PAPER_GRID
    info = machine_info()
    work = Path(tempfile.mkdtemp(prefix="climviz-bench-data-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        files = []
        for i in range(steps):  # one step at a time: bounded memory
            start = str(np.datetime64("2000-01-01T00") + np.timedelta64(3 * i, "h"))
            ds = synthetic_run(1, shape=shape, seed=i, start=start)
            files.append(write_run(ds, work / f"data-{i:04d}.nc", complevel=0))
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        norm = Normalizer.fit([str(p) for p in files])
        t_fit = time.perf_counter() - t0

        raw_read(files)  # warm-up: page cache
        breakdown = cpu_breakdown(files, norm)
        readers = {"loader": make_bench_loader(files, None, args.workers, args.batch_size, args.prefetch),
                   "normalizing_loader": make_bench_loader(files, norm, args.workers, args.batch_size,
                                                           args.prefetch)}
        first = {k: loader_epoch(*v)[0] for k, v in readers.items()}  # starts workers, checks steps
        nbytes = raw_read(files)[1]
        cpu: dict[str, list[float]] = {k: [] for k in ("raw", *readers)}

        def raw_pass() -> None:
            cpu["raw"].append(raw_read(files)[2] / steps)

        def epoch_of(name: str):
            def run() -> None:
                _, n, c = loader_epoch(*readers[name])
                assert n == steps
                cpu[name].append(c / n)
            return run

        t_raw = timed(raw_pass, repeats=args.repeats, warmup=1)
        t_load = {k: timed(epoch_of(k), repeats=args.repeats, warmup=0) for k in readers}
        t_raw_after = timed(raw_pass, repeats=args.repeats, warmup=0)  # drift check
        for _, loader in readers.values():
            del loader
        readers.clear()
        raw_runs = t_raw["runs_s"] + t_raw_after["runs_s"]
        raw_rate = steps / float(np.median(raw_runs))
        rates = {k: steps / v["median_s"] for k, v in t_load.items()}
        train_rate = None if args.no_train_step else train_step_rate(shape)
        mb_per_step = nbytes / steps / 1e6

        def timing(v: dict) -> dict:
            return {k: [round(x, 4) for x in v[k]] if k == "runs_s" else round(v[k], 4) for k in v}

        result = {
            "config": {"grid": list(shape), "steps": steps, "channels": len(CHANNELS), "format":
                       "ClimateNet netCDF4, one step per file, uncompressed", "workers": args.workers,
                       "batch_size": args.batch_size, "prefetch_factor": args.prefetch, "repeats": args.repeats,
                       "quick": args.quick},
            "figures": {
                "file_mb_per_step": round(mb_per_step, 2),
                "write_run_s": round(t_write, 2),
                "normalizer_fit_s": round(t_fit, 2),
                "normalizer_fit_steps_per_s": round(steps / t_fit, 3),
                "raw_read": timing(t_raw),
                "raw_read_again_after_loaders": timing(t_raw_after),
                "raw_read_steps_per_s": round(raw_rate, 3),
                "raw_read_mb_per_s": round(raw_rate * mb_per_step, 1),
                "loader": timing(t_load["loader"]),
                "loader_steps_per_s": round(rates["loader"], 3),
                "loader_mb_per_s": round(rates["loader"] * mb_per_step, 1),
                "normalizing_loader": timing(t_load["normalizing_loader"]),
                "normalizing_loader_steps_per_s": round(rates["normalizing_loader"], 3),
                "first_epoch_s_including_worker_start_and_checks": {k: round(v, 3) for k, v in first.items()},
                "cpu_s_per_step_all_processes": {k: round(float(np.median(v)), 4) for k, v in cpu.items()},
                "cpu_ms_per_step_one_process_breakdown": breakdown,
                "train_step_images_per_s_tiny_deeplabv3plus_cpu": None if train_rate is None else round(train_rate, 4),
            },
            "ratios": {
                "loader_vs_raw_read": round(rates["loader"] / raw_rate, 3),
                "normalizing_loader_vs_raw_read": round(rates["normalizing_loader"] / raw_rate, 3),
                **({"loader_vs_train_step": round(rates["loader"] / train_rate, 2)} if train_rate else {}),
                # diagnostic: CPU work per step (independent of how busy the machine is)
                "raw_read_cpu_vs_loader_cpu_per_step": round(
                    float(np.median(cpu["raw"])) / float(np.median(cpu["loader"])), 3),
            },
            "targets": {"loader_vs_raw_read": 0.7, "loader_vs_train_step": 3.0},
            "notes": (
                "Readers timed with _common.timed (median of "
                f"{args.repeats} epochs each; raw read timed before and after the loaders, median of both) "
                "after a warm-up pass (files in the page cache). The loaders use "
                f"{args.workers} persistent worker processes started in a first epoch (as in training), "
                "which also checks every step for NaN/inf once; later epochs re-read without the check. "
                "'loader' is the training path (raw float32, normalization in the network on the device); "
                "'normalizing_loader' normalizes in the workers (the previous design, 0.517 in the last "
                "result). The raw read is one process with the netCDF4 library. Measured on a shared "
                "2-core machine where other jobs were running (load averages in the timings and in "
                "'machine'), so absolute rates are pessimistic; ratios compare runs under similar load."
            ),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"figures": result["figures"], "ratios": result["ratios"]}, indent=2))
    save_result("data", quick=args.quick, out=args.out, machine=info, packages=PACKAGES, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
