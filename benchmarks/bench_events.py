"""Event statistics speed: labelling + table per step, and streaming tracking over a year.

1. **Label + table per 768 x 1152 step** (the CAM5 0.25-degree grid of
   ClimateNet / DeepCAM) against a bare 8-connected ``scipy.ndimage.label`` of
   the same masks, measured interleaved in the same run (best of the
   repeats). Timed: ``label_table`` (labels + event table in one pass), the
   separate ``label`` then ``table`` calls, and ``label_table`` with field
   statistics (min PSL, max wind speed, mean TMQ). Target: ``label_table``
   within 1.5x of the bare label. Two kinds of masks: *sparse* DeepCAM-like
   masks (below) and *dense noisy* masks (Gaussian-smoothed white noise,
   sigma 4 cells, thresholded so that 35 % of cells are in a class; the class
   is TC or AR by the sign of a second, smoother noise field: what a
   half-trained model predicts, thousands of ragged events per step). Each
   function is timed with ``_common.timed`` (warm-up, then >= 5 repeats of a
   pass over all masks; median, spread and machine load recorded).
2. **Tracking a year of 3-hourly masks** (2,920 steps), generated lazily
   (dask, one chunk of time at a time: a dozen moving cyclones and a few
   drifting river filaments, some crossing the 0/360 seam) and streamed
   through ``track_masks`` (label, table, overlaps, linking). Reports steps
   per second and the peak resident memory, for a quarter of the year and
   for the whole year: memory must not grow with the length of the run.

Masks are synthetic but shaped like DeepCAM labels (cyclones of ~200-600 km
radius, rivers ~3000-7000 km long and ~300-600 km wide; 3-6 % of cells in an
event).

Usage::

    python benchmarks/bench_events.py [--quick] [--steps N] [--repeats R] [--out PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time

import numpy as np
from scipy import ndimage

from climviz.events import label, label_table, table
from climviz.events.tracking import track_masks

from _common import PeakRSS, machine_info, save_result, timed  # benchmarks/_common.py (this script's folder)

PACKAGES = ("scipy", "xarray", "dask", "pandas", "torch")


# --------------------------------------------------------------------------- synthetic masks

class MaskMaker:
    """Deterministic moving cyclones (discs) and river filaments (rotated thin ellipses) per time step.

    Each of ``n_tc + n_ar`` slots holds one feature at a time; a feature lives
    for a random number of steps, moves with a constant velocity, then a new
    one is born in the slot. Everything is drawn inside small windows with
    wrapped longitude indices, so a step costs O(feature cells), not O(grid).
    """

    def __init__(self, shape: tuple[int, int], n_tc: int = 12, n_ar: int = 5, seed: int = 0) -> None:
        self.H, self.W = shape
        self.n_tc, self.n_ar, self.seed = n_tc, n_ar, seed
        self.scale = self.W / 1152.0  # cells per 0.3125 degrees
        self._sched: dict[int, dict] = {}
        self._params: dict[tuple[int, int], dict] = {}

    def _schedule(self, slot: int, t: int) -> tuple[int, int, np.random.Generator]:
        """(generation, age) of the feature in ``slot`` at step ``t``; cached per slot."""
        sched = self._sched.setdefault(slot, {"starts": [], "lives": [], "next": None})
        if sched["next"] is None:
            rng0 = np.random.default_rng([self.seed, slot])
            life_mean = 40 if slot < self.n_tc else 24
            sched["offset"] = int(rng0.integers(0, 4 * life_mean))
            sched["life_mean"] = life_mean
            sched["next"] = 0
        tt = t + sched["offset"]
        while sched["next"] <= tt:
            g = len(sched["starts"])
            rg = np.random.default_rng([self.seed, slot, g])
            lm = sched["life_mean"]
            life = int(rg.integers(lm // 2, 2 * lm))
            gap = int(rg.integers(0, lm // 2))
            sched["starts"].append(sched["next"])
            sched["lives"].append(life)
            sched["next"] += life + gap
        g = int(np.searchsorted(sched["starts"], tt, side="right") - 1)
        return g, tt - sched["starts"][g], sched["lives"][g]

    def _feature(self, slot: int, t: int) -> tuple[str, float, float, dict] | None:
        g, age, life = self._schedule(slot, t)
        if age >= life:
            return None  # between two features
        key = (slot, g)
        if key not in self._params:
            rg = np.random.default_rng([self.seed, slot, g, 1])
            s = self.scale
            if slot < self.n_tc:
                north = rg.random() < 0.5
                self._params[key] = {
                    "lat0": (rg.uniform(0.55, 0.8) if north else rg.uniform(0.2, 0.45)) * self.H,
                    "lon0": rg.uniform(0, self.W), "v": (rg.uniform(0.2, 0.8) * s * (1 if north else -1),
                                                         -rg.uniform(0.8, 2.5) * s),
                    "rmax": rg.uniform(6, 18) * s}
            else:
                self._params[key] = {"lat0": rg.uniform(0.25, 0.75) * self.H, "lon0": rg.uniform(0, self.W),
                                     "v": (rg.uniform(-0.5, 0.5) * s, rg.uniform(1.0, 3.0) * s),
                                     "a": rg.uniform(90, 200) * s, "b": rg.uniform(8, 18) * s,
                                     "angle": rg.uniform(-0.7, 0.7)}
        p = self._params[key]
        r0 = p["lat0"] + p["v"][0] * age
        c0 = (p["lon0"] + p["v"][1] * age) % self.W
        if slot < self.n_tc:
            r = p["rmax"] * (0.5 + 0.5 * np.sin(np.pi * (age + 1) / (life + 1)))
            return "tc", r0, c0, {"r": max(r, 1.0)}
        return "ar", r0, c0, p

    def step(self, t: int, out: np.ndarray) -> None:
        """Draw the features of step ``t`` into ``out`` (H, W) uint8 (zeroed first)."""
        out[:] = 0
        H, W = self.H, self.W
        for slot in range(self.n_tc + self.n_ar):
            f = self._feature(slot, t)
            if f is None:
                continue
            kind, r0, c0, p = f
            if kind == "tc":
                ey = ex = p["r"]
            else:  # bounding box of the rotated ellipse, plus the wave
                ca, sa = np.cos(p["angle"]), np.sin(p["angle"])
                ex = np.hypot(p["a"] * ca, p["b"] * sa) + 0.5 * p["b"]
                ey = np.hypot(p["a"] * sa, p["b"] * ca) + 0.5 * p["b"]
            rows = np.arange(max(0, int(r0 - ey) - 1), min(H, int(r0 + ey) + 2))
            cols = np.arange(int(c0 - ex) - 1, int(c0 + ex) + 2)
            if rows.size == 0:
                continue
            dy = (rows[:, None] - r0).astype(np.float32)
            dx = (cols[None, :] - c0).astype(np.float32)
            if kind == "tc":
                inside = dy**2 + dx**2 <= p["r"] ** 2
                cls = 1
            else:
                u = dx * ca + dy * sa
                w = -dx * sa + dy * ca + 0.15 * p["b"] * np.sin(u / p["a"] * 3.0) * 3.0  # a wavy filament
                inside = (u / p["a"]) ** 2 + (w / p["b"]) ** 2 <= 1.0
                cls = 2
            rr, cc = np.nonzero(inside)
            sub_r, sub_c = rows[rr], cols[cc] % W
            if cls == 1:
                out[sub_r, sub_c] = 1  # cyclones drawn over rivers
            else:
                keep = out[sub_r, sub_c] == 0
                out[sub_r[keep], sub_c[keep]] = 2

    def block(self, t0: int, t1: int) -> np.ndarray:
        out = np.zeros((t1 - t0, self.H, self.W), dtype=np.uint8)
        for i, t in enumerate(range(t0, t1)):
            self.step(t, out[i])
        return out

    def dataarray(self, n_steps: int, chunk: int):
        """Lazy (dask) DataArray of ``n_steps`` masks, ``chunk`` steps per block."""
        import dask.array as dsa
        import pandas as pd
        import xarray as xr

        chunks = ((chunk,) * (n_steps // chunk) + ((n_steps % chunk,) if n_steps % chunk else ()),
                  (self.H,), (self.W,))

        def make(block_info=None):
            (t0, t1), _, _ = block_info[None]["array-location"]
            return self.block(t0, t1)

        arr = dsa.map_blocks(make, chunks=chunks, dtype=np.uint8)
        lat = -90 + (np.arange(self.H) + 0.5) * 180.0 / self.H
        lon = np.arange(self.W) * 360.0 / self.W
        time_ = pd.date_range("2001-01-01", periods=n_steps, freq="3h")
        return xr.DataArray(arr, dims=("time", "lat", "lon"), coords={"time": time_, "lat": lat, "lon": lon},
                            name="mask")


# --------------------------------------------------------------------------- measurements


def dense_noisy_masks(shape: tuple[int, int], n_masks: int, fraction: float = 0.35, sigma: float = 4.0,
                      seed: int = 3) -> np.ndarray:
    """Masks a half-trained model might predict: smoothed noise above its (1 - fraction) quantile.

    ``fraction`` of the cells are in a class; the class is 1 (TC) where a
    second noise field, smoothed 4x more, is positive, else 2 (AR). Noise is
    smoothed with periodic longitude (``mode="wrap"``).
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((n_masks,) + tuple(shape), dtype=np.uint8)
    for i in range(n_masks):
        z = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
        c = ndimage.gaussian_filter(rng.standard_normal(shape), 4 * sigma, mode="wrap")
        inside = z > np.quantile(z, 1.0 - fraction)
        out[i][inside & (c > 0)] = 1
        out[i][inside & (c <= 0)] = 2
    return out


def paired_ratio(base, ours, masks: np.ndarray, repeats: int) -> dict:
    """``ours(m) / base(m)`` time ratio with the two calls alternated mask by mask.

    On a shared machine the load changes between two separately timed loops;
    alternating the calls on each mask puts both under the same load. One pass
    over all masks is timed by ``_common.timed`` (warm-up, median, load); the
    ratio of each pass's summed times is kept, and their median reported.
    """
    import statistics

    t_base: list[float] = []
    t_ours: list[float] = []

    def one_pass() -> None:
        a = b = 0.0
        for m in masks:
            t0 = time.perf_counter()
            base(m)
            t1 = time.perf_counter()
            ours(m)
            b += time.perf_counter() - t1
            a += t1 - t0
        t_base.append(a)
        t_ours.append(b)

    run = timed(one_pass, repeats=repeats, warmup=1)
    ratios = [o / b for b, o in zip(t_base[1:], t_ours[1:])]  # the warm-up pass dropped
    return {"median_ratio": round(statistics.median(ratios), 3), "min_ratio": round(min(ratios), 3),
            "max_ratio": round(max(ratios), 3), "passes": len(ratios),
            "load_before": run["load_before"], "load_after": run["load_after"]}


def per_step_benchmark(masks: np.ndarray, repeats: int) -> tuple[dict, dict]:
    """Per-step times of the events functions and of a bare scipy label on the same masks."""
    shape = masks.shape[1:]
    lat = -90 + (np.arange(shape[0]) + 0.5) * 180.0 / shape[0]
    lon = np.arange(shape[1]) * 360.0 / shape[1]
    rng = np.random.default_rng(0)
    fields = {"PSL": rng.normal(101000, 800, size=masks.shape[1:]).astype(np.float32),
              "WSP850": rng.gamma(2.0, 5.0, size=masks.shape[1:]).astype(np.float32),
              "TMQ": rng.uniform(0, 60, size=masks.shape[1:]).astype(np.float32)}
    stats = {"PSL": ["min"], "WSP850": ["max"], "TMQ": ["mean"]}
    eight = np.ones((3, 3), dtype=bool)

    def bare():
        for m in masks:
            ndimage.label(m, structure=eight)

    def ours_combined():
        for m in masks:
            label_table(m, lat=lat, lon=lon)

    def ours_separate():
        for m in masks:
            table(label(m), m, lat=lat, lon=lon)

    def ours_fields():
        for m in masks:
            label_table(m, fields, stats=stats, lat=lat, lon=lon)

    def ours_numpy_path():
        old = os.environ.get("CLIMVIZ_NO_NUMBA")
        os.environ["CLIMVIZ_NO_NUMBA"] = "1"  # read at each call by climviz.events._kernels.kernels
        try:
            ours_combined()
        finally:
            if old is None:
                del os.environ["CLIMVIZ_NO_NUMBA"]
            else:
                os.environ["CLIMVIZ_NO_NUMBA"] = old

    fns = {"bare_label": bare, "label_table": ours_combined, "label_then_table": ours_separate,
           "label_table_with_fields": ours_fields, "label_table_numpy_path": ours_numpy_path}
    # each function: warm-up, then `repeats` passes over all masks (median, spread, load per function)
    runs = {k: timed(fn, repeats=repeats, warmup=1) for k, fn in fns.items()}
    per_step_ms = {k: 1e3 * v["median_s"] / len(masks) for k, v in runs.items()}
    _, tab = label_table(masks, lat=lat, lon=lon)
    fg = float((masks > 0).mean())
    fig = {
        "grid": list(shape), "n_masks": int(len(masks)), "repeats": repeats,
        "event_cell_fraction": round(fg, 4),
        "events_per_step": round(len(tab) / len(masks), 2),
        "per_step_ms": {k: round(v, 3) for k, v in per_step_ms.items()},
        "timings": {k: {"median_s": round(v["median_s"], 5), "min_s": round(v["min_s"], 5),
                        "max_s": round(v["max_s"], 5), "spread": round(v["spread"], 3),
                        "load_before": v["load_before"], "load_after": v["load_after"]}
                    for k, v in runs.items()},
    }
    fig["label_table_vs_bare_scipy_label_best_of_runs"] = round(
        runs["label_table"]["min_s"] / runs["bare_label"]["min_s"], 3)  # fastest run of each: least disturbed by load
    fig["label_table_vs_bare_scipy_label_paired"] = paired_ratio(
        lambda m: ndimage.label(m, structure=eight), lambda m: label_table(m, lat=lat, lon=lon), masks, repeats)
    ratios = {
        "label_table_vs_bare_scipy_label": round(per_step_ms["label_table"] / per_step_ms["bare_label"], 3),
        "label_then_table_vs_bare_scipy_label": round(per_step_ms["label_then_table"] / per_step_ms["bare_label"], 3),
        "label_table_with_fields_vs_bare_scipy_label": round(
            per_step_ms["label_table_with_fields"] / per_step_ms["bare_label"], 3),
        "label_table_numpy_path_vs_bare_scipy_label": round(
            per_step_ms["label_table_numpy_path"] / per_step_ms["bare_label"], 3),
        "label_table_vs_bare_scipy_label_paired": fig["label_table_vs_bare_scipy_label_paired"]["median_ratio"],
    }
    return fig, ratios


def sparse_masks(shape: tuple[int, int], n_masks: int) -> np.ndarray:
    """DeepCAM-like masks: steps of the moving-feature generator far apart (different scenes)."""
    return MaskMaker(shape, seed=1).block(0, n_masks * 37)[::37]


def tracking_benchmark(shape: tuple[int, int], n_steps: int, chunk: int) -> dict:
    maker = MaskMaker(shape, seed=2)
    out: dict = {"grid": list(shape), "steps": n_steps, "chunk_steps": chunk}
    # mask generation alone (the benchmark's input, not part of the tracker)
    da = maker.dataarray(n_steps, chunk)
    t = time.perf_counter()
    for c0 in range(0, n_steps, chunk):
        _ = da.isel(time=slice(c0, c0 + chunk)).values
    out["generate_only_s"] = round(time.perf_counter() - t, 2)
    results = {}
    for label_, n in (("quarter_year", n_steps // 4), ("year", n_steps)):
        gc.collect()
        da = maker.dataarray(n, chunk)
        with PeakRSS() as mem:
            t = time.perf_counter()
            trk = track_masks(da)
            wall = time.perf_counter() - t
        results[label_] = {"steps": n, "wall_s": round(wall, 2), "steps_per_s": round(n / wall, 1),
                           "peak_rss_above_start_mb": round((mem.peak - mem.base) / 2**20, 1),
                           "event_rows": len(trk.events), "tracks": len(trk.tracks),
                           "tracks_by_class": {int(k): int(v) for k, v in trk.tracks.groupby("class").size().items()},
                           "merge_edges": int((trk.edges["kind"] == "merge").sum()),
                           "split_edges": int((trk.edges["kind"] == "split").sum())}
        del trk
    year = results["year"]
    gen_s = out["generate_only_s"]
    # Generation timed alone can take longer than the whole tracking run on a loaded machine (it is not
    # timed in the same moment): then the difference means nothing, and None is recorded.
    rest = year["wall_s"] - gen_s
    year["steps_per_s_excluding_generation"] = round(n_steps / rest, 1) if rest > 0.05 * year["wall_s"] else None
    out.update(results)
    out["one_block_of_masks_mb"] = round(chunk * shape[0] * shape[1] / 2**20, 1)  # uint8; labels not stored
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="per-step part on 4 masks x 3 repeats; tracking on a 192 x 288 grid")
    ap.add_argument("--steps", type=int, default=2920, help="tracking steps (default 2920 = a year, 3-hourly)")
    ap.add_argument("--masks", type=int, default=None, help="768 x 1152 masks in the per-step part (default 12)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed repeats after a warm-up, median kept (default 7, quick 5)")
    ap.add_argument("--chunk", type=int, default=32, help="time steps per streamed block (default 32)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/events[_quick].json)")
    args = ap.parse_args(argv)
    n_masks = args.masks or (4 if args.quick else 12)
    repeats = args.repeats or (5 if args.quick else 7)
    track_shape = (192, 288) if args.quick else (768, 1152)

    machine = machine_info()
    from climviz.events._kernels import kernels

    compiled = kernels(10**9) is not None  # numba importable and not switched off (CLIMVIZ_NO_NUMBA)
    print(f"compiled (numba) kernels: {compiled}")
    fig_step, ratios = per_step_benchmark(sparse_masks((768, 1152), n_masks), repeats)
    print(f"sparse, per 768x1152 step (ms): {fig_step['per_step_ms']}")
    fig_dense, ratios_dense = per_step_benchmark(dense_noisy_masks((768, 1152), n_masks), repeats)
    print(f"dense noisy, per 768x1152 step (ms): {fig_dense['per_step_ms']}")
    ratios.update({f"dense_{k}": v for k, v in ratios_dense.items()})
    print(f"ratios: {ratios}")
    fig_track = tracking_benchmark(track_shape, args.steps, args.chunk)
    print(f"tracking: {json.dumps(fig_track)}")
    y, q = fig_track["year"], fig_track["quarter_year"]
    ratios["tracking_peak_memory_year_vs_quarter_year"] = round(
        y["peak_rss_above_start_mb"] / max(q["peak_rss_above_start_mb"], 1e-9), 3)
    result = {
        "figures": {"label_table_per_step": fig_step, "label_table_per_step_dense": fig_dense,
                    "tracking_stream": fig_track},
        "ratios": ratios,
        "compiled_kernels": compiled,
        "targets": {"label_table_vs_bare_scipy_label": "<= 1.5",
                    "dense_label_table_vs_bare_scipy_label": "<= 1.5",
                    "tracking_peak_memory_year_vs_quarter_year": "about 1 (bounded: no growth with run length)"},
        "notes": ("Median over repeats (after a warm-up) of one pass over all masks, per mask; spread and load "
                  "per function under figures.*.timings. The bare baseline is scipy.ndimage.label with 8-connectivity "
                  "on the same uint8 masks in the same run (it ignores classes: TC and AR cells that touch are one "
                  "component for it). compiled_kernels: whether numba (optional: the fast extra) ran "
                  "the labelling scan, the per-event sums, principal axes and field statistics "
                  "(climviz.events._kernels); without it the NumPy "
                  "path runs (label_table_numpy_path: the same call with CLIMVIZ_NO_NUMBA=1). "
                  "Sparse masks: DeepCAM-like moving features; "
                  "dense masks "
                  "(label_table_per_step_dense, ratios dense_*): smoothed noise, 35 % of cells in a class. "
                  "*_paired: the bare label and label_table alternated mask by mask in each pass (both under "
                  "the same load), median over passes of the ratio of their summed times. "
                  "label_table = labels + event table in one pass "
                  "(run-length encoded cells reused); label_then_table = the two public calls. Tracking streams "
                  "lazily generated dask masks block by block (generation time included in wall_s; "
                  "generate_only_s measures it alone). Peak memory is the resident set above the start of each "
                  "tracking run, sampled every 10 ms; it holds one block of masks and the growing event table "
                  "(tens of thousands of rows for a year), so it grows with the number of events found, not "
                  "with the grid or the number of steps read. "
                  + ("Measured on a shared 2-core machine while other jobs ran (see load_average_1min_at_start): "
                     "absolute times are pessimistic, ratios compare work done in the same run."
                     if (os.cpu_count() or 1) <= 4 else "Measured on an otherwise idle machine.")),
    }
    save_result("events", quick=args.quick, out=args.out, machine=machine, packages=PACKAGES, **result)
    return result


if __name__ == "__main__":
    main()
