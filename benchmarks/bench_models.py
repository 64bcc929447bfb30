"""Throughput of the climviz segmentation networks against the measured matmul rate.

For every network preset at a fixed grid, measures forward (inference) and
forward + backward (training step without the optimizer) throughput in samples/s
and achieved FLOP/s, and the fp32 matrix-product rate of the same machine in the
same run (:func:`climviz.models.matmul_peak_flops`). Ratios are model FLOP/s over
matmul FLOP/s. Several execution variants are tried (memory format, bf16 autocast,
torch.compile, threads); the fastest one per network is reported as the default.

On a CUDA machine the same is measured in fp16 autocast against the measured fp16
matmul rate of the GPU.

The reference presets (``paper`` DeepLabv3+ and Tiramisu, ``deepcam``, ``cgnet``) run on
crops of the 768x1152 grid (96x144 by default); every FLOP count is the crop's own
(``count_flops`` / ``train_flops_per_sample`` at the crop's shape). Each timing is the
median of at least 5 repetitions after a warm-up, with the interquartile range and the
extremes saved next to it (``*_s_p25``, ``*_s_p75``, ``*_s_min``, ``*_s_max``).

It also measures the activation memory a training step keeps for the backward pass
(bytes of the distinct tensors autograd saves, parameters excluded) at two crops, checks
that it grows in proportion to the grid, and extrapolates it to one 768x1152 sample
(``figures["memory"]``: a straight line through both crops; an extrapolation, not a
measurement at the full grid).

Usage::

    python benchmarks/bench_models.py            # full: reference presets at 96x144
    python benchmarks/bench_models.py --quick    # small grids, fewer variants (~ minutes)

Writes ``benchmarks/results/models.json`` (``models_quick.json`` with
``--quick``; ``--out`` to change) through ``benchmarks/_common.py`` with keys ``machine``,
``versions``, ``config``, ``figures``, ``ratios``, ``defaults``, ``notes``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

# OpenMP threads that spin at barriers are disastrous on a shared machine (see
# probe_wait_policy); libgomp reads this when torch is imported, so set it first.
_WAIT_POLICY_BEFORE = os.environ.get("OMP_WAIT_POLICY")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine_info, save_result  # noqa: E402

from climviz.models import build, count_flops, matmul_peak_flops, train_flops_per_sample  # noqa: E402

PRESETS = [
    ("deeplabv3plus", "tiny"),
    ("tiramisu", "tiny"),
    ("cgnet", "tiny"),
    ("deeplabv3plus", "paper"),
    ("tiramisu", "paper"),
    ("deeplabv3plus", "deepcam"),
    ("cgnet", "paper"),
    ("deeplabv3plus", "resnet50-os16"),
    ("tiramisu", "fcdensenet-os32"),
]

#: presets whose activation memory is measured (name, preset, build overrides, label)
MEMORY_CASES = [
    ("deeplabv3plus", "paper", {}, "deeplabv3plus_paper"),
    ("deeplabv3plus", "paper", {"activation_checkpointing": True}, "deeplabv3plus_paper_checkpointing"),
    ("tiramisu", "paper", {}, "tiramisu_paper"),
    ("deeplabv3plus", "deepcam", {}, "deeplabv3plus_deepcam"),
    ("cgnet", "paper", {}, "cgnet_paper"),
]


# ------------------------------------------------------------------------ environment


def machine_extras() -> dict[str, Any]:
    """What this benchmark adds to :func:`_common.machine_info`: bf16 CPU flags, torch build, GPU."""
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        pass
    info: dict[str, Any] = {
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "torch_cuda": torch.version.cuda,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    return info


# ------------------------------------------------------------------------ timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, *, min_time: float, min_reps: int = 5) -> dict[str, float]:
    """Seconds per call: one warm-up call, then at least ``min_reps`` timed calls and at
    least ``min_time`` seconds; median, quartiles, extremes and the number of calls."""
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
    q25, q50, q75 = np.percentile(times, [25, 50, 75])
    return {"median": float(q50), "p25": float(q25), "p75": float(q75), "min": float(min(times)),
            "max": float(max(times)), "reps": len(times)}


def activation_bytes(name: str, preset: str, grid: tuple[int, int], overrides: dict[str, Any]) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one sample.

    Counted with :func:`torch.autograd.graph.saved_tensors_hooks` during a training-mode
    forward on the CPU (fp32, batch 1): every saved tensor's storage is counted once
    (views share it), the parameters are left out. Tensors recomputed by activation
    checkpointing are not kept and so not counted.
    """
    net = build(name, preset, seed=0, **overrides).train()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in params and ptr not in seen:
            seen[ptr] = st.nbytes()
        return t

    x = torch.randn(1, 16, *grid)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    total = sum(seen.values()) + out.numel() * out.element_size()
    del out, net
    return int(total)


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
        s_fwd = time_call(fwd, device, min_time=min_time)
        net.train()
        s_train = time_call(train, device, min_time=min_time)
        t_fwd, t_train = s_fwd["median"], s_train["median"]
    finally:
        torch.set_num_threads(old_threads)
    spread = {f"{kind}_s_{k}": v for kind, st in (("forward", s_fwd), ("train", s_train))
              for k, v in st.items() if k != "median"}
    return {**spread,
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


_PROBE = """
import time, torch
from climviz.models import build
torch.set_num_threads({threads})
net = build("deeplabv3plus", "tiny", seed=0).eval()
x = torch.randn(2, 16, 64, 96)
with torch.inference_mode():
    net(x)
    t = time.perf_counter()
    for _ in range(5):
        net(x)
print((time.perf_counter() - t) / 5)
"""


def probe_wait_policy() -> dict[str, float]:
    """Seconds per tiny forward in fresh processes: 1 thread, 2 threads x OpenMP wait policy."""
    out: dict[str, float] = {}
    root = str(Path(__file__).resolve().parents[1])
    for label, threads, policy in (
        ("1t", 1, None),
        ("2t_default", 2, None),
        ("2t_passive", 2, "PASSIVE"),
    ):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        try:
            res = subprocess.run([sys.executable, "-c", _PROBE.format(threads=threads)], env=env,
                                 capture_output=True, text=True, timeout=600, check=True)
            out[label] = float(res.stdout.strip().splitlines()[-1])
        except Exception as exc:  # pragma: no cover - reported, not fatal
            print(f"wait-policy probe {label} failed: {exc!r}", flush=True)
    return out


# ------------------------------------------------------------------------ main


def cpu_variants(quick: bool, with_compile: bool, tiny: bool) -> list[dict[str, Any]]:
    """Execution variants tried on the CPU.

    Every variant names its thread count: on a shared machine two threads can be much
    slower than one (OpenMP threads wait for each other when one is descheduled), so
    both are measured and each is compared with the matmul rate at the same thread
    count. ``torch.compile`` is tried on the tiny presets only (it takes minutes here).
    """
    v: list[dict[str, Any]] = []
    for t in (1, 2):
        v += [
            {"label": f"fp32_{t}t", "threads": t},
            {"label": f"fp32_channels_last_{t}t", "threads": t, "channels_last": True},
        ]
    v.append({"label": "bf16_autocast_channels_last_1t", "threads": 1, "channels_last": True,
              "autocast": torch.bfloat16})
    if tiny and with_compile:
        v.append({"label": "fp32_channels_last_compile_1t", "threads": 1, "channels_last": True, "compile": True})
    return v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grids, fewer variants")
    parser.add_argument("--grid", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="crop of the reference presets (default 96 144, quick 64 96)")
    parser.add_argument("--tiny-grid", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="grid of the tiny presets (default 96 144, quick 64 96)")
    parser.add_argument("--tiny-batch", type=int, default=None, help="batch of the tiny presets (4, quick 2)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile variants")
    parser.add_argument("--presets", nargs="*", default=None, help="e.g. tiramisu:tiny deeplabv3plus:paper")
    parser.add_argument("--out", default=None,
                        help="JSON path (default results/models.json, models_quick.json with --quick)")
    args = parser.parse_args(argv)

    quick = args.quick
    grid = tuple(args.grid or ((64, 96) if quick else (96, 144)))
    tiny_grid = tuple(args.tiny_grid or ((64, 96) if quick else (96, 144)))
    min_time = args.min_time if args.min_time is not None else (0.3 if quick else 1.0)
    tiny_batch = args.tiny_batch or (2 if quick else 4)
    presets = PRESETS if not args.presets else [tuple(p.split(":")) for p in args.presets]
    with_compile = not args.no_compile and not quick

    figures: dict[str, Any] = {"runs": []}
    ratios: dict[str, float] = {}
    defaults: dict[str, str] = {}
    notes = [
        "2 shared CPU cores: other jobs ran on the machine during the measurement (see "
        "machine.load_average_1min_at_start and _at_end); absolute rates are noisy, "
        "ratios are measured against a matmul rate taken in the same run with the same "
        "number of threads (suffix _1t / _2t).",
        "FLOPs: torch.utils.flop_counter (1 multiply-add = 2 FLOPs), convolutions and matrix "
        "products, depthwise weight gradients counted once; counted at the crop that was "
        "timed; train = forward + backward (no optimizer step).",
        "Timings: median of >= 5 repetitions after a warm-up; *_s_p25/_p75/_min/_max give the spread.",
    ]

    machine = {**machine_info(), **machine_extras()}
    cpu = torch.device("cpu")
    n_mm = 1024 if quick else 2048
    t0 = time.perf_counter()

    def measure_matmul() -> dict[tuple[str, int], float]:
        rates: dict[tuple[str, int], float] = {}
        old_threads = torch.get_num_threads()
        for t in (1, 2):
            torch.set_num_threads(t)
            for dt_name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                rates[(dt_name, t)] = matmul_peak_flops(dt, "cpu", n=n_mm, min_time=min_time / 2)
        torch.set_num_threads(old_threads)
        return rates

    matmul = measure_matmul()
    for (dt_name, t), v in matmul.items():
        figures[f"matmul_{dt_name}_{t}t_flops_per_s"] = v
    figures["matmul_n"] = n_mm
    figures["matmul_per_preset"] = {}
    print("matmul " + ", ".join(f"{k[0]} {k[1]}t {v / 1e9:.1f} GFLOP/s" for k, v in matmul.items())
          + f" (n={n_mm})", flush=True)

    probe = probe_wait_policy()
    figures["omp_wait_policy_probe_s_per_forward"] = probe
    print("OpenMP wait-policy probe (s per tiny forward): " + ", ".join(f"{k} {v:.3f}" for k, v in probe.items()),
          flush=True)
    if "2t_default" in probe and "2t_passive" in probe:
        ratios["omp_passive_vs_default_speedup_2t"] = probe["2t_default"] / probe["2t_passive"]

    def peak_of(variant: str) -> float:
        t = 1 if variant.endswith("_1t") else 2
        return matmul[("bf16" if "bf16" in variant else "fp32", t)]

    for name, preset in presets:
        # the load of a shared machine drifts: re-measure the baseline next to each network
        matmul = measure_matmul()
        figures["matmul_per_preset"][f"{name}_{preset}"] = {f"{k[0]}_{k[1]}t": v for k, v in matmul.items()}
        tiny = preset == "tiny"
        g = tiny_grid if tiny else grid
        batch = tiny_batch if tiny else 1
        results = []
        variants = cpu_variants(quick, with_compile, tiny)
        if not tiny:  # the reference networks take seconds per step: the three telling variants
            variants = [v for v in variants if v["label"] in
                        ("fp32_1t", "fp32_2t", "bf16_autocast_channels_last_1t")]
        for variant in variants:
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
        base = next((r for r in results if r["variant"] == "fp32_2t"), results[0])
        best = max(results, key=lambda r: r["train_samples_per_s"])
        best_fwd = max(results, key=lambda r: r["forward_samples_per_s"])
        defaults[key] = best["variant"]
        defaults[f"{key}_forward"] = best_fwd["variant"]
        ratios[f"train_{key}_vs_matmul_peak"] = best["train_flops_per_s"] / peak_of(best["variant"])
        ratios[f"forward_{key}_vs_matmul_peak"] = best_fwd["forward_flops_per_s"] / peak_of(best_fwd["variant"])
        for r in results:
            ratios[f"train_{key}_{r['variant']}_vs_matmul"] = r["train_flops_per_s"] / peak_of(r["variant"])
            if r is not base:
                ratios[f"train_{key}_{r['variant']}_speedup_vs_fp32_2t"] = base["train_s"] / r["train_s"]
        print(f"  -> fastest: training {best['variant']}, forward {best_fwd['variant']}", flush=True)

    # ---- activation memory of a training step, measured at two crops, extrapolated
    mem_grids = [(32, 48), (64, 96)] if quick else [(48, 72), (96, 144)]
    figures["memory"] = {}
    for name, preset, overrides, label in MEMORY_CASES:
        if (name, preset) not in [tuple(p) for p in presets]:
            continue
        small, large = (activation_bytes(name, preset, g, overrides) for g in mem_grids)
        c0, c1 = (g[0] * g[1] for g in mem_grids)
        # straight line through both points: the wrapped longitude columns and the padding
        # to the stride add a share that shrinks with the grid, so bytes/cell of the larger
        # crop alone would overestimate
        per_cell = (large - small) / (c1 - c0)
        full = small + per_cell * (768 * 1152 - c0)
        figures["memory"][label] = {
            "grids": [list(g) for g in mem_grids], "bytes": [small, large],
            "growth_for_4x_cells": large / small, "bytes_per_cell_slope": per_cell,
            "extrapolated_bytes_per_768x1152_sample": full,
            "proportional_bytes_per_768x1152_sample": large / c1 * 768 * 1152,
        }
        ratios[f"memory_{label}_growth_for_4x_cells"] = large / small
        print(f"memory {label}: {small / 2**20:.0f} MiB at {mem_grids[0]}, {large / 2**20:.0f} MiB at "
              f"{mem_grids[1]} (x{large / small:.2f}) -> {full / 2**30:.1f} GiB per 768x1152 sample "
              "(extrapolated)", flush=True)
    if "deeplabv3plus_paper" in figures["memory"] and "deeplabv3plus_paper_checkpointing" in figures["memory"]:
        ratios["memory_deeplabv3plus_paper_checkpointing_vs_plain"] = (
            figures["memory"]["deeplabv3plus_paper_checkpointing"]["bytes"][1]
            / figures["memory"]["deeplabv3plus_paper"]["bytes"][1])
    notes.append("Memory: bytes of the distinct tensors autograd saves for the backward pass (fp32, "
                 "batch 1, parameters excluded) at two crops; the 768x1152 figure is extrapolated "
                 "along the straight line through both (bytes vs grid cells), not measured at that size.")

    one_faster = [k for k, v in defaults.items() if not k.endswith("_forward") and v.endswith("_1t")]
    if one_faster:
        notes.append(
            "One thread trained faster than two for: " + ", ".join(one_faster) + ". On this shared "
            "machine two OpenMP threads wait for each other whenever one is descheduled; "
            "processes sharing cores (Ray workers, loaders) should set torch.set_num_threads "
            "to cores / processes."
        )

    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        mm16 = matmul_peak_flops(torch.float16, "cuda", n=8192, min_time=1.0)
        mm32g = matmul_peak_flops(torch.float32, "cuda", n=8192, min_time=1.0)
        figures["gpu_matmul_fp16_flops_per_s"] = mm16
        figures["gpu_matmul_fp32_flops_per_s"] = mm32g
        print(f"GPU matmul fp16 {mm16 / 1e12:.1f} TFLOP/s, fp32 {mm32g / 1e12:.1f} TFLOP/s", flush=True)
        gpu_grid = (768, 1152)
        for name, preset in presets:
            batch = 8 if preset == "tiny" else 1
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

    save_result(
        "models", figures, ratios, " ".join(notes), quick=quick, out=args.out, machine=machine,
        packages=("torch",),
        config={
            "grid_reference_presets": list(grid),
            "grid_tiny_presets": list(tiny_grid),
            "batch_reference_presets": 1,
            "batch_tiny_presets": tiny_batch,
            "min_time_s": min_time,
            "compile_tried": with_compile,
            "wall_time_s": time.perf_counter() - t0,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "omp_wait_policy_set_by_script": _WAIT_POLICY_BEFORE is None,
        },
        defaults=defaults,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
