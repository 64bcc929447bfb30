"""Ray launcher overhead: time to the first training step (with its breakdown), Ray step cost.

Measured in one run on this machine, all with the tiny DeepLabv3+, fp32, one torch
thread per process, the same per-worker batch:

* ``in_process``: the engine (``run_training``) in this process: seconds per optimizer
  step (median over the epochs after the first of ``train_time_s / steps``) and time to
  its first step. The baseline of every ratio.
* ``cold``: ``cv.train(..., num_workers=2)`` with no Ray running: starts a local Ray,
  the worker group (2 actors: torch import, gloo process group), ships the data, sets
  up and steps. ``startup`` holds the breakdown (``TrainResult.extra["startup"]``).
* ``warm``: the same call again, ``repeats`` times (a notebook calling ``train`` twice):
  Ray and the worker group are reused (``benchmarks/_common.timed`` statistics of the
  time to first step; the breakdown of the median run).
* ``one_worker``: 3 (quick) or 4 pairs of an in-process run and a 1-worker Ray run (a
  group of 1, started by the first), alternating; the ratio is the median of the pair
  ratios of their per-step times.
* ``ddp``: per-step time of the 2-worker runs (gloo all-reduce every step) and images/s.
* ``ray_train``: one warm call through Ray Train's ``TorchTrainer`` (``launcher=
  "ray_train"``, the launcher before issue 19), with its breakdown, for comparison.

Ratios: ``ray_1_worker_step_vs_in_process`` (target <= 1.10),
``time_to_first_step_cold_vs_20s_target`` and ``..._warm_vs_5s_target`` (<= 1),
``ray_train_warm_vs_workers_warm``, ``ray_2_workers_throughput_vs_in_process``.

Usage: ``python benchmarks/bench_ray.py [--quick] [--gpu] [--out PATH]`` (under 5
minutes on 2 loaded cores; a local Ray is started and stopped, so run it under
``flock /tmp/climviz-ray.lock`` where other Ray tests run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see climviz/__init__.py)

from _common import load_average, machine_info, save_result, timed  # noqa: E402


def per_step(metrics) -> float:
    """Median seconds per optimizer step over the epochs after the first."""
    import numpy as np

    steps = metrics["global_step"].diff().iloc[1:].to_numpy()
    times = metrics["train_time_s"].iloc[1:].to_numpy()
    return float(np.median(times / steps))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 warm repeats")
    ap.add_argument("--gpu", action="store_true", help="use_gpu=True on the Ray workers")
    ap.add_argument("--no-ray-train", action="store_true",
                    help="skip the Ray Train comparison (the slowest part)")
    ap.add_argument("--out", default=None,
                    help="JSON path (default results/ray.json, ray_quick.json with --quick)")
    args = ap.parse_args(argv)
    start_machine = machine_info()

    import pandas as pd
    import torch

    import climviz as cv
    from climviz.data import synthetic_run
    from climviz.training.cluster import shutdown
    from climviz.training.config import TrainConfig
    from climviz.training.loop import run_training

    torch.set_num_threads(1)
    shape = (32, 64) if args.quick else (64, 128)
    n_times = 40 if args.quick else 80
    steps = 3 if args.quick else 6
    epochs = 3 if args.quick else 4
    repeats = 3 if args.quick else 5
    batch = 2
    device = "cuda" if args.gpu else "cpu"
    ds = synthetic_run(n_times, shape=shape, seed=1, n_tc=8, n_ar=5).load()
    cfg = TrainConfig(model="deeplabv3plus", preset="tiny", epochs=epochs, batch_size=batch,
                      max_steps_per_epoch=steps, precision="fp32" if not args.gpu else "auto",
                      loader_workers=0, seed=0, schedule="constant", lr_scaling="none")
    short = cfg.replace(epochs=1, max_steps_per_epoch=1)     # warm calls: start-up is the point
    root = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    figures: dict = {"grid": list(shape), "batch_per_worker": batch, "steps_per_epoch": steps,
                     "epochs": epochs, "model": "deeplabv3plus/tiny", "warm_repeats": repeats}
    loads: dict = {}
    runs = iter(range(10_000))

    def ray_train(c, workers, **kw):
        return cv.train(c, ds, num_workers=workers, use_gpu=args.gpu, storage_path=root,
                        name=f"run{next(runs)}", progress=False, **kw)

    # ---- the engine in this process (baseline) -----------------------------------
    loads["in_process"] = load_average()
    t0 = time.perf_counter()
    first: dict = {}
    rows = run_training(cfg, ds, checkpoint_dir=root / "local", device=device,
                        step_callback=lambda info: first.setdefault("t", time.perf_counter()))
    local = pd.DataFrame(rows)
    figures["in_process"] = {"time_to_first_step_s": first["t"] - t0,
                             "step_s": per_step(local),
                             "images_per_s": float(local["images_per_s"].iloc[1:].median())}

    # ---- cold: no Ray running; 2 workers (also the DDP step figures) --------------
    shutdown()
    loads["cold"] = load_average()
    t_cold = time.perf_counter()
    cold = ray_train(cfg, 2, ray_init={"num_cpus": 2 if not args.gpu else None,
                                       "object_store_memory": 200_000_000,
                                       "dashboard": False})
    figures["cold"] = {"train_call_wall_s": time.perf_counter() - t_cold,
                       "time_to_first_step_s": cold.extra["time_to_first_step_s"],
                       "startup": cold.extra["startup"]}

    # ---- warm: Ray and the worker group kept, `repeats` calls ---------------------
    loads["warm"] = load_average()
    warm_results: list = []
    stats = timed(lambda: warm_results.append(ray_train(short, 2)), repeats=repeats, warmup=0)
    ttfs = [r.extra["time_to_first_step_s"] for r in warm_results]
    median_run = sorted(warm_results, key=lambda r: r.extra["time_to_first_step_s"])[len(ttfs) // 2]
    figures["warm"] = {"time_to_first_step_s": statistics.median(ttfs),
                       "time_to_first_step_runs_s": ttfs,
                       "spread": (max(ttfs) - min(ttfs)) / statistics.median(ttfs),
                       "train_call_wall": stats,
                       "all_reused": all(r.extra["startup"]["worker_group_reused"]
                                         for r in warm_results),
                       "startup": median_run.extra["startup"]}

    # ---- 2-worker DDP step, a second full run on the kept group ------------------
    ddp = ray_train(cfg, 2)
    figures["ddp"] = {"step_s_runs": [per_step(cold.metrics), per_step(ddp.metrics)],
                      "images_per_s": float(statistics.median(
                          list(cold.metrics["images_per_s"].iloc[1:])
                          + list(ddp.metrics["images_per_s"].iloc[1:])))}
    figures["ddp"]["step_s"] = statistics.median(figures["ddp"]["step_s_runs"])

    # ---- 1 worker: Ray's own per-step overhead, interleaved with in-process runs ---
    # (alternating pairs, so a change of the machine's load hits both sides alike)
    loads["one_worker"] = load_average()
    pairs = []
    for i in range(3 if args.quick else 4):
        rows = run_training(cfg, ds, checkpoint_dir=root / f"local{i}", device=device)
        one = ray_train(cfg, 1)                 # the first call starts a group of 1
        pairs.append((per_step(pd.DataFrame(rows)), per_step(one.metrics)))
    pair_ratios = [ray / local for local, ray in pairs]
    figures["one_worker"] = {
        "step_s_in_process_runs": [p[0] for p in pairs],
        "step_s_ray_runs": [p[1] for p in pairs],
        "step_s_in_process": statistics.median(p[0] for p in pairs),
        "step_s": statistics.median(p[1] for p in pairs),
        "ratio_runs": pair_ratios,
        "ratio_spread": (max(pair_ratios) - min(pair_ratios)) / statistics.median(pair_ratios),
        "time_to_first_step_warm_s": one.extra["time_to_first_step_s"]}

    # ---- Ray Train's TorchTrainer (the launcher before), warm ---------------------
    if not args.no_ray_train:
        loads["ray_train"] = load_average()
        try:
            rt = ray_train(short, 2, launcher="ray_train")
            figures["ray_train_warm"] = {"time_to_first_step_s": rt.extra["time_to_first_step_s"],
                                         "startup": rt.extra["startup"]}
        except Exception as exc:  # noqa: BLE001 -- a comparison only: keep the other figures
            figures["ray_train_warm"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    shutdown()

    ip = figures["in_process"]
    ratios = {
        "ray_1_worker_step_vs_in_process": statistics.median(pair_ratios),
        "ray_2_workers_ddp_step_vs_in_process": (figures["ddp"]["step_s"]
                                                 / figures["one_worker"]["step_s_in_process"]),
        "ray_2_workers_throughput_vs_in_process": figures["ddp"]["images_per_s"] / ip["images_per_s"],
        "time_to_first_step_cold_vs_20s_target": figures["cold"]["time_to_first_step_s"] / 20.0,
        "time_to_first_step_warm_vs_5s_target": figures["warm"]["time_to_first_step_s"] / 5.0,
        "time_to_first_step_warm_vs_in_process": (figures["warm"]["time_to_first_step_s"]
                                                  / ip["time_to_first_step_s"]),
    }
    if "time_to_first_step_s" in figures.get("ray_train_warm", {}):
        ratios["ray_train_warm_vs_workers_warm"] = (figures["ray_train_warm"]["time_to_first_step_s"]
                                                    / figures["warm"]["time_to_first_step_s"])
    notes = ("Launcher: a kept group of Ray actors (climviz.training.workers), gloo DDP, 1 CPU "
             "and 1 torch thread per worker, vs the same engine in this process with 1 thread "
             "and the same per-worker batch. Per-step times: median over the epochs after the "
             "first. startup: seconds per stage (connect = Ray start, actors = worker processes "
             "incl. import_s of torch+climviz, process_group, dispatch, worker_data = object "
             "store get, setup_to_first_step = data/model/loader set-up + first batch + first "
             "step). Warm calls run 1 epoch of 1 step. The machine is shared: see loads (1-min "
             "load average before each part).")
    save_result("ray", figures, ratios, notes, quick=args.quick, out=args.out,
                machine=start_machine, packages=("torch", "ray"), loads=loads,
                targets={"time_to_first_step_cold_s": 20.0, "time_to_first_step_warm_s": 5.0,
                         "ray_1_worker_step_vs_in_process": 1.10})
    return 0


if __name__ == "__main__":
    sys.exit(main())
