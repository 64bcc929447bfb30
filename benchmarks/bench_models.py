"""Throughput of the climviz segmentation networks against the measured matmul rate.

For every network preset at a fixed grid, measures forward (inference) and
forward + backward (training step without the optimizer) throughput in samples/s
and achieved FLOP/s, and the fp32 matrix-product rate of the same machine in the
same run (:func:`climviz.models.matmul_peak_flops`). Ratios are model FLOP/s over
matmul FLOP/s. Several execution variants are tried (memory format, bf16 autocast,
torch.compile, threads); the fastest one per network is reported as the default.

On a CUDA machine the same is measured in fp16 autocast against the measured fp16
matmul rate of the GPU.

Usage::

    python benchmarks/bench_models.py            # full: paper presets at 192x288
    python benchmarks/bench_models.py --quick    # small grids, fewer variants (~ minutes)

Writes ``benchmarks/results/bench_models.json`` (``--out`` to change) with keys
``machine``, ``versions``, ``config``, ``figures``, ``ratios``, ``defaults``, ``notes``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from climviz.models import build, count_flops, matmul_peak_flops, train_flops_per_sample  # noqa: E402
from climviz.utils.atomic import atomic_path  # noqa: E402

PRESETS = [
    ("deeplabv3plus", "tiny"),
    ("tiramisu", "tiny"),
    ("deeplabv3plus", "paper"),
    ("deeplabv3plus", "deepcam"),
    ("tiramisu", "paper"),
]


# ------------------------------------------------------------------------ environment


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory (and GPU when present)."""
    cpu = platform.processor() or ""
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and not cpu.strip():
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    try:
        import psutil

        mem = psutil.virtual_memory().total
        load = os.getloadavg()
    except Exception:  # pragma: no cover - psutil missing
        mem, load = None, None
    info = {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "load_average_at_start": load,
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "amx_bf16": "amx_bf16" in flags.split(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    return info


def versions() -> dict[str, str]:
    import climviz

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "climviz": climviz.__version__,
        "mkldnn": str(torch.backends.mkldnn.is_available()),
        "cuda": str(torch.version.cuda),
    }


# ------------------------------------------------------------------------ timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, *, min_time: float, min_reps: int = 2) -> float:
    """Seconds per call: one warm-up call, then repeat until ``min_time`` (median of reps)."""
    fn()
    _sync(device)
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    return float(np.median(times))


def measure(
    name: str,
    preset: str,
    grid: tuple[int, int],
    batch: int,
    variant: dict[str, Any],
    device: torch.device,
    min_time: float,
) -> dict[str, Any]:
    """Forward and forward+backward throughput of one network in one variant."""
    threads = variant.get("threads")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        net = build(name, preset, seed=0).to(device)
        x = torch.randn(batch, 16, *grid, device=device)
        y = torch.randint(0, 3, (batch, *grid), device=device)
        fwd_flops = count_flops(net, (batch, 16, *grid))
        train_flops = train_flops_per_sample(net, (16, *grid)) * batch
        if variant.get("channels_last"):
            net = net.to(memory_format=torch.channels_last)
            x = x.to(memory_format=torch.channels_last)
        dtype = variant.get("autocast")
        compile_s = None
        runner = net
        if variant.get("compile"):
            t0 = time.perf_counter()
            runner = torch.compile(net)
            net.eval()
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                runner(x)
            net.train()
            out = runner(x)
            torch.nn.functional.cross_entropy(out.float(), y).backward()
            compile_s = time.perf_counter() - t0

        def fwd() -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                runner(x)

        def train() -> None:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = runner(x)
            torch.nn.functional.cross_entropy(out.float(), y).backward()
            net.zero_grad(set_to_none=True)

        net.eval()
        t_fwd = time_call(fwd, device, min_time=min_time)
        net.train()
        t_train = time_call(train, device, min_time=min_time)
    finally:
        torch.set_num_threads(old_threads)
    return {
        "name": name,
        "preset": preset,
        "variant": variant["label"],
        "grid": list(grid),
        "batch": batch,
        "forward_flops_per_batch": fwd_flops,
        "train_flops_per_batch": train_flops,
        "forward_s": t_fwd,
        "train_s": t_train,
        "forward_samples_per_s": batch / t_fwd,
        "train_samples_per_s": batch / t_train,
        "forward_flops_per_s": fwd_flops / t_fwd,
        "train_flops_per_s": train_flops / t_train,
        "compile_s": compile_s,
    }


# ------------------------------------------------------------------------ main


def cpu_variants(quick: bool, with_compile: bool, tiny: bool) -> list[dict[str, Any]]:
    """Execution variants tried on the CPU (compile only for tiny presets: it takes minutes)."""
    v: list[dict[str, Any]] = [
        {"label": "fp32"},
        {"label": "fp32_channels_last", "channels_last": True},
        {"label": "bf16_autocast_channels_last", "channels_last": True, "autocast": torch.bfloat16},
    ]
    if tiny:
        v.append({"label": "fp32_1thread", "threads": 1})
        if with_compile:
            v.append({"label": "fp32_channels_last_compile", "channels_last": True, "compile": True})
    return v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grids, fewer variants")
    parser.add_argument("--grid", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="grid of the paper presets (default 192 288, quick 96 144)")
    parser.add_argument("--tiny-grid", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="grid of the tiny presets (default 96 144, quick 64 96)")
    parser.add_argument("--tiny-batch", type=int, default=4)
    parser.add_argument("--min-time", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile variants")
    parser.add_argument("--presets", nargs="*", default=None, help="e.g. tiramisu:tiny deeplabv3plus:paper")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "bench_models.json"))
    args = parser.parse_args(argv)

    quick = args.quick
    grid = tuple(args.grid or ((96, 144) if quick else (192, 288)))
    tiny_grid = tuple(args.tiny_grid or ((64, 96) if quick else (96, 144)))
    min_time = args.min_time if args.min_time is not None else (0.5 if quick else 2.0)
    presets = PRESETS if not args.presets else [tuple(p.split(":")) for p in args.presets]
    with_compile = not args.no_compile and not quick

    figures: dict[str, Any] = {"runs": []}
    ratios: dict[str, float] = {}
    defaults: dict[str, str] = {}
    notes = [
        "2 shared CPU cores: other jobs ran on the machine during the measurement (see "
        "machine.load_average_at_start); absolute rates are noisy, ratios are measured "
        "against a matmul rate taken in the same run.",
        "FLOPs: torch.utils.flop_counter (1 multiply-add = 2 FLOPs), convolutions only; "
        "train = forward + backward (no optimizer step).",
    ]

    cpu = torch.device("cpu")
    n_mm = 1024 if quick else 2048
    t0 = time.perf_counter()
    mm32 = matmul_peak_flops(torch.float32, "cpu", n=n_mm, min_time=min_time / 2)
    mm_bf16 = matmul_peak_flops(torch.bfloat16, "cpu", n=n_mm, min_time=min_time / 2)
    figures["matmul_fp32_flops_per_s"] = mm32
    figures["matmul_bf16_flops_per_s"] = mm_bf16
    figures["matmul_n"] = n_mm
    figures["threads"] = torch.get_num_threads()
    print(f"matmul fp32 {mm32 / 1e9:.1f} GFLOP/s, bf16 {mm_bf16 / 1e9:.1f} GFLOP/s (n={n_mm})", flush=True)

    for name, preset in presets:
        tiny = preset == "tiny"
        g = tiny_grid if tiny else grid
        batch = args.tiny_batch if tiny else 1
        results = []
        for variant in cpu_variants(quick, with_compile, tiny):
            try:
                r = measure(name, preset, g, batch, variant, cpu, min_time)
            except Exception as exc:  # record and go on (e.g. compile unavailable)
                print(f"{name}:{preset} {variant['label']}: failed: {exc!r}", flush=True)
                figures["runs"].append({"name": name, "preset": preset, "variant": variant["label"],
                                        "error": repr(exc)[:500]})
                continue
            r["device"] = "cpu"
            results.append(r)
            figures["runs"].append(r)
            print(
                f"{name}:{preset} {g[0]}x{g[1]} b{batch} {variant['label']:<30} "
                f"fwd {r['forward_samples_per_s']:8.2f}/s {r['forward_flops_per_s'] / 1e9:7.2f} GF/s   "
                f"train {r['train_samples_per_s']:8.2f}/s {r['train_flops_per_s'] / 1e9:7.2f} GF/s"
                + (f"   compile {r['compile_s']:.0f} s" if r["compile_s"] else ""),
                flush=True,
            )
        if not results:
            continue
        key = f"{name}_{preset}"
        base = next((r for r in results if r["variant"] == "fp32"), results[0])
        best = max(results, key=lambda r: r["train_samples_per_s"])
        defaults[key] = best["variant"]
        peak = mm_bf16 if "bf16" in best["variant"] else mm32
        ratios[f"train_{key}_vs_matmul_peak"] = best["train_flops_per_s"] / peak
        ratios[f"forward_{key}_vs_matmul_peak"] = max(r["forward_flops_per_s"] for r in results) / peak
        ratios[f"train_{key}_fp32_vs_matmul_fp32"] = base["train_flops_per_s"] / mm32
        ratios[f"forward_{key}_fp32_vs_matmul_fp32"] = base["forward_flops_per_s"] / mm32
        for r in results:
            if r is not base:
                ratios[f"train_{key}_{r['variant']}_speedup_vs_fp32"] = r["train_s"] and base["train_s"] / r["train_s"]
        print(f"  -> fastest training variant for {key}: {best['variant']}", flush=True)

    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        mm16 = matmul_peak_flops(torch.float16, "cuda", n=8192, min_time=1.0)
        mm32g = matmul_peak_flops(torch.float32, "cuda", n=8192, min_time=1.0)
        figures["gpu_matmul_fp16_flops_per_s"] = mm16
        figures["gpu_matmul_fp32_flops_per_s"] = mm32g
        print(f"GPU matmul fp16 {mm16 / 1e12:.1f} TFLOP/s, fp32 {mm32g / 1e12:.1f} TFLOP/s", flush=True)
        gpu_grid = (768, 1152)
        for name, preset in presets:
            batch = 8 if preset == "tiny" else 2
            for variant in (
                {"label": "cuda_fp16_autocast_channels_last", "channels_last": True, "autocast": torch.float16},
                {"label": "cuda_fp32_channels_last", "channels_last": True},
            ):
                try:
                    r = measure(name, preset, gpu_grid, batch, variant, gpu, 2.0)
                except Exception as exc:
                    figures["runs"].append({"name": name, "preset": preset, "variant": variant["label"],
                                            "error": repr(exc)[:500]})
                    continue
                r["device"] = "cuda"
                figures["runs"].append(r)
                peak = mm16 if "fp16" in variant["label"] else mm32g
                ratios[f"train_{name}_{preset}_{variant['label']}_vs_gpu_matmul_peak"] = r["train_flops_per_s"] / peak
                print(f"{name}:{preset} {variant['label']} train {r['train_samples_per_s']:.2f}/s "
                      f"{r['train_flops_per_s'] / 1e12:.2f} TF/s = {r['train_flops_per_s'] / peak:.1%} of matmul",
                      flush=True)
    else:
        notes.append("No CUDA device here: the fp16 GPU path of this script did not run.")

    result = {
        "name": "bench_models",
        "machine": machine_info(),
        "versions": versions(),
        "config": {
            "quick": quick,
            "grid_paper_presets": list(grid),
            "grid_tiny_presets": list(tiny_grid),
            "batch_paper_presets": 1,
            "batch_tiny_presets": args.tiny_batch,
            "min_time_s": min_time,
            "compile_tried": with_compile,
            "wall_time_s": time.perf_counter() - t0,
        },
        "figures": figures,
        "ratios": ratios,
        "defaults": defaults,
        "notes": notes,
    }
    out = Path(args.out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
