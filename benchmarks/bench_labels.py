"""Throughput of the heuristic detectors (time steps per second) on the ClimateNet grid.

On a synthetic run at 768 x 1152 (the CAM5 0.25-degree grid of ClimateNet /
DeepCAM) this times, on data already in memory:

* ``detect_tc`` (candidates, vorticity, wind, warm core, closed contour, mask
  radius, stitching with a 6 h minimum duration, mask painting);
* ``detect_ar`` (IVT estimate, threshold, periodic labelling, geometry on the
  sphere, poleward test);
* ``label_run`` (both, plus the CF mask dataset);

and, as baselines measured in the same run, the unavoidable first step of each
detector on the same data: a bare ``scipy.ndimage.minimum_filter`` of PSL with
the TC candidate window (TC), and a bare 8-connected ``scipy.ndimage.label`` of
the thresholded IVT (AR). Ratios are detector throughput / baseline throughput
(1.0 would mean the detector costs no more than its first step).

Usage::

    python benchmarks/bench_labels.py [--quick] [--steps N] [--out benchmarks/results/labels.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from scipy import ndimage

from climviz.data.synthetic import synthetic_run
from climviz.labels import ARConfig, TCConfig, detect_ar, detect_tc, integrated_vapour_transport, label_run
from climviz.labels._grid import Grid

from _common import machine_info, save_result  # benchmarks/_common.py (this script's folder)

PACKAGES = ("scipy", "xarray", "pandas", "torch")


def best_of(fn, repeats: int) -> float:
    """Smallest wall time (s) of ``repeats`` calls (least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(min(times))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="192 x 288 grid, 4 steps, 1 repeat")
    ap.add_argument("--steps", type=int, default=None, help="time steps (default 8, quick 4)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats, best kept (default 3, quick 1)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/labels[_quick].json)")
    args = ap.parse_args(argv)
    shape = (192, 288) if args.quick else (768, 1152)
    steps = args.steps or (4 if args.quick else 8)
    repeats = args.repeats or (1 if args.quick else 3)
    machine = machine_info()

    t0 = time.perf_counter()
    ds = synthetic_run(steps, shape=shape, seed=0)
    ds = ds[["PSL", "U850", "V850", "T200", "T500", "TMQ", "LABELS"]].load()
    gen_s = time.perf_counter() - t0
    print(f"synthetic run {steps} x {shape}: {gen_s:.1f} s")

    tc_cfg = TCConfig(stitch=True, min_duration_h=6.0)
    ar_cfg = ARConfig()
    warnings.simplefilter("ignore", UserWarning)

    # baselines: the first step of each detector on the same data
    grid = Grid.from_coords(ds.lat.values, ds.lon.values)
    hy, hx = grid.cells_for_km(tc_cfg.merge_distance_km, tc_cfg.max_abs_lat)
    psl = ds["PSL"].values.astype(np.float64)
    base_tc = best_of(lambda: ndimage.minimum_filter(psl, size=(1, 2 * hy + 1, 2 * hx + 1),
                                                     mode=("nearest", "nearest", "wrap")), repeats)
    above = integrated_vapour_transport(ds, config=ar_cfg).values > ar_cfg.threshold
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = True
    base_ar = best_of(lambda: ndimage.label(above, structure=struct), repeats)

    tc_res = {}
    t_tc = best_of(lambda: tc_res.setdefault("r", detect_tc(ds, config=tc_cfg)), repeats)
    t_ar = best_of(lambda: detect_ar(ds, config=ar_cfg), repeats)
    t_run = best_of(lambda: label_run(ds, tc=tc_cfg, ar=ar_cfg), repeats)
    masks = label_run(ds, tc=tc_cfg, ar=ar_cfg)
    lab, m = ds["LABELS"].values, masks["mask"].values
    iou = {c: float(((lab == v) & (m == v)).sum() / max(((lab == v) | (m == v)).sum(), 1))
           for c, v in (("tc", 1), ("ar", 2))}

    figures = {
        "grid": list(shape), "time_steps": steps, "repeats_best_of": repeats,
        "synthetic_generation_s": round(gen_s, 3),
        "tc_detect_s": t_tc, "tc_steps_per_s": steps / t_tc,
        "ar_detect_s": t_ar, "ar_steps_per_s": steps / t_ar,
        "label_run_s": t_run, "label_run_steps_per_s": steps / t_run,
        "baseline_minimum_filter_s": base_tc, "baseline_minimum_filter_steps_per_s": steps / base_tc,
        "baseline_ndimage_label_s": base_ar, "baseline_ndimage_label_steps_per_s": steps / base_ar,
        "tc_nodes": int(len(tc_res["r"].nodes)), "tc_tracks": int(len(tc_res["r"].tracks)),
        "pixel_iou_vs_synthetic_labels": iou,
        "minimum_filter_window_cells": [2 * hy + 1, 2 * hx + 1],
    }
    ratios = {
        "tc_detect_vs_bare_minimum_filter": (steps / t_tc) / (steps / base_tc),
        "ar_detect_vs_bare_ndimage_label": (steps / t_ar) / (steps / base_ar),
        "label_run_vs_tc_plus_ar": (t_tc + t_ar) / t_run,
    }
    result = {
        "figures": figures,
        "ratios": ratios,
        "notes": (
            "Heuristic detectors on a synthetic run held in memory (reading files is not timed). "
            "Best of the repeats. Measured on a shared machine while other jobs ran (see "
            "load_average_1min_at_start), so absolute times are pessimistic; the ratios compare "
            "work done in the same run. Baselines are the first step of each detector alone. "
            "CPU only: the detectors are numpy/scipy code."
        ),
    }
    print(json.dumps({"figures": figures, "ratios": ratios}, indent=2, default=float))
    save_result("labels", quick=args.quick, out=args.out, machine=machine, packages=PACKAGES, **result)
    return result


if __name__ == "__main__":
    main()
