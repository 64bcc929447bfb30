"""Ray launcher overhead: time to the first training step, and Ray+DDP per-step cost.

Measured in one run on this machine:

* ``time_to_first_step_cold_s``: from the ``train(...)`` call to the first optimizer step
  of rank 0, including starting a local Ray; ``..._warm_s``: the same with Ray already
  running (a second ``train`` call in the same session).
* ``step_s_single_process``: seconds per optimizer step of the engine in this process
  (``run_training``, world size 1, one torch thread), and ``step_s_ray_ddp``: the same
  per-worker batch with 2 Ray workers (gloo DDP, one CPU/thread each); both from the
  epochs after the first (warm), ``train_time_s / steps``.
* ratios: ``ray_ddp_step_time_vs_single_process`` (target <= 1.10), and
  ``ray_2_workers_throughput_vs_single_process`` (images/s, ideal 2.0).

Usage: ``python benchmarks/bench_ray.py [--quick] [--gpu] [--out PATH]``.
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

from _common import machine_info, save_result  # noqa: E402


def per_step(metrics) -> float:
    """Median seconds per optimizer step over the epochs after the first."""
    import numpy as np

    steps = metrics["global_step"].diff().iloc[1:].to_numpy()
    times = metrics["train_time_s"].iloc[1:].to_numpy()
    return float(np.median(times / steps))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    ap.add_argument("--gpu", action="store_true", help="use_gpu=True on the Ray workers")
    ap.add_argument("--out", default=None, help="JSON path (default results/ray.json, ray_quick.json with --quick)")
    args = ap.parse_args(argv)
    start_machine = machine_info()

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
    batch = 2
    ds = synthetic_run(n_times, shape=shape, seed=1, n_tc=8, n_ar=5).load()
    cfg = TrainConfig(model="deeplabv3plus", preset="tiny", epochs=epochs, batch_size=batch,
                      max_steps_per_epoch=steps, precision="fp32" if not args.gpu else "auto",
                      loader_workers=0, seed=0, schedule="constant", lr_scaling="none")
    root = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    figures: dict = {"grid": list(shape), "batch_per_worker": batch, "steps_per_epoch": steps,
                     "epochs": epochs, "num_workers": 2, "model": "deeplabv3plus/tiny"}

    # ---- the engine in this process (baseline) -----------------------------------
    t0 = time.perf_counter()
    first = {}

    def on_step(info):
        first.setdefault("t", time.perf_counter())

    rows = run_training(cfg, ds, checkpoint_dir=root / "local", step_callback=on_step,
                        device="cuda" if args.gpu else "cpu")
    import pandas as pd

    local = pd.DataFrame(rows)
    figures["time_to_first_step_single_process_s"] = first["t"] - t0
    figures["step_s_single_process"] = per_step(local)
    figures["images_per_s_single_process"] = float(local["images_per_s"].iloc[1:].median())

    # ---- Ray: cold (starts a local Ray) and warm ------------------------------------
    shutdown()
    t_cold = time.perf_counter()
    res_cold = cv.train(cfg, ds, num_workers=2, use_gpu=args.gpu, storage_path=root,
                        name="cold", progress=False,
                        ray_init={"num_cpus": 2 if not args.gpu else None,
                                  "object_store_memory": 200_000_000, "dashboard": False})
    figures["train_call_cold_wall_s"] = time.perf_counter() - t_cold
    figures["time_to_first_step_cold_s"] = res_cold.extra["time_to_first_step_s"]
    res = cv.train(cfg, ds, num_workers=2, use_gpu=args.gpu, storage_path=root, name="warm",
                   progress=False)
    figures["time_to_first_step_warm_s"] = res.extra["time_to_first_step_s"]
    steps_ray = [per_step(r.metrics) for r in (res_cold, res)]
    figures["step_s_ray_ddp_runs"] = steps_ray
    figures["step_s_ray_ddp"] = statistics.median(steps_ray)
    figures["images_per_s_ray_ddp"] = float(statistics.median(
        list(res_cold.metrics["images_per_s"].iloc[1:]) + list(res.metrics["images_per_s"].iloc[1:])))
    shutdown()

    ratios = {
        "ray_ddp_step_time_vs_single_process": figures["step_s_ray_ddp"] / figures["step_s_single_process"],
        "ray_2_workers_throughput_vs_single_process":
            figures["images_per_s_ray_ddp"] / figures["images_per_s_single_process"],
        "time_to_first_step_warm_vs_20s_target": figures["time_to_first_step_warm_s"] / 20.0,
    }
    notes = ("2 CPU workers (gloo DDP, 1 thread each) vs the same engine in one process "
             "with 1 thread and the same per-worker batch; per-step times are medians of "
             "the epochs after the first. Absolute times depend on the load of the machine "
             "(machine.load_average_1min at start and end).")
    save_result("ray", figures, ratios, notes, quick=args.quick, out=args.out, machine=start_machine,
                packages=("torch", "ray"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
