"""Achieved model FLOP/s of a training step vs the measured matmul peak of this machine.

For the ``tiny`` presets and, at batch 1 on crops of the 768x1152 grid, the reference
presets (the SC18 DeepLabv3+ and Tiramisu graphs, MLPerf ``deepcam``, ClimateNet ``cgnet``)
this times the engine's training step (autocast -> forward ->
weighted loss -> backward -> optimizer step, exactly the components of
``climviz.training.loop``) and divides

    achieved FLOP/s = train_flops_per_sample (forward + backward, FlopCounterMode) x
                      samples / step time

by the fp32 matmul FLOP/s measured in the same run (``climviz.models.matmul_peak_flops``).
FLOPs are counted at the crop that is timed. Step times are the median of at least 5 steps
after the warm-up; quartiles and extremes are saved with them.
Variants: default (NCHW), channels_last, bf16 autocast (when the CPU has native bf16;
its ratio is given against both the fp32 and the bf16 matmul rates) and torch.compile.
It also times the whole engine (``run_training`` on a synthetic run) and reports its
images/s relative to the bare step (engine overhead: data loading, validation, metrics).

Usage::

    python benchmarks/bench_train.py [--quick] [--compile] [--threads N] [--out PATH]

Writes ``benchmarks/results/train.json`` (``train_quick.json`` with ``--quick``) through
``benchmarks/_common.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

# Spinning OpenMP threads slow torch 10-30x on shared cores; libgomp reads this when
# torch is imported (importing climviz sets the same default, but torch comes first here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import machine_info, save_result  # noqa: E402

from climviz import models  # noqa: E402
from climviz.training.config import TrainConfig
from climviz.training.loss import WeightedLoss
from climviz.training.optim import build_optimizer
from climviz.training.precision import MixedPrecision, cpu_has_native_bf16


def machine_extras() -> dict:
    """What this benchmark adds to :func:`_common.machine_info`: torch threads, bf16, torch build, GPU."""
    info = {"torch_threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
            "torch_mkldnn": torch.backends.mkldnn.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def time_train_step(model_name: str, preset: str, batch: int, grid: tuple[int, int], *,
                    precision: str = "fp32", channels_last: bool = False, compile: bool = False,
                    steps: int = 5, warmup: int = 2, device: str = "cpu") -> dict:
    """Median seconds of one training step and the achieved FLOP/s."""
    torch.manual_seed(0)
    net = models.build(model_name, preset=preset, in_channels=16, num_classes=3)
    flops = float(models.train_flops_per_sample(net, (16, *grid))) * batch
    net.to(device)
    cfg = TrainConfig(model=model_name, preset=preset, optimizer="adamw", lr=1e-4)
    opt = build_optimizer(net, cfg)
    amp = MixedPrecision(precision, device)
    loss_fn = WeightedLoss([0.4, 30.0, 20.0]).to(device)
    x = torch.randn(batch, 16, *grid, device=device)
    y = torch.randint(0, 3, (batch, *grid), device=device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    fwd = torch.compile(net) if compile else net
    net.train()

    def step() -> None:
        with amp.autocast():
            logits = fwd(x)
        amp.backward(loss_fn(logits, y))
        amp.step(opt)
        opt.zero_grad(set_to_none=True)

    t_first = time.perf_counter()
    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    first_s = time.perf_counter() - t_first
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    dt = float(np.median(times))
    q25, q75 = (float(v) for v in np.percentile(times, [25, 75]))
    return {"model": model_name, "preset": preset, "batch": batch, "grid": list(grid),
            "precision": amp.name, "channels_last": channels_last, "compile": compile,
            "train_flops_per_step": flops, "step_s_median": dt, "step_s_min": float(min(times)),
            "step_s_max": float(max(times)), "step_s_p25": q25, "step_s_p75": q75, "steps": len(times),
            "warmup_s": first_s, "images_per_s": batch / dt, "flops_per_s": flops / dt}


def time_engine(batch: int, grid: tuple[int, int], steps: int) -> dict:
    """images/s of the whole engine (run_training, fp32) on a synthetic run, training part."""
    from climviz.data import synthetic_run
    from climviz.training.loop import run_training

    n = batch * steps + 4
    ds = synthetic_run(int(n / 0.8) + 1, shape=grid, seed=0, n_tc=8, n_ar=6).load()
    cfg = TrainConfig(model="deeplabv3plus", preset="tiny", epochs=2, batch_size=batch,
                      precision="fp32", lr=1e-3, max_steps_per_epoch=steps)
    with tempfile.TemporaryDirectory() as d:
        rows = run_training(cfg, ds, checkpoint_dir=d, device="cpu")
    last = rows[-1]
    return {"images_per_s": last["images_per_s"], "flops_per_s": last["flops_per_s"],
            "epoch_time_s": last["epoch_time_s"], "train_time_s": last["train_time_s"],
            "batch": batch, "grid": list(grid), "steps": steps}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few steps")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile (tiny presets; compiling takes minutes on a CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's default)")
    ap.add_argument("--out", default=None,
                    help="JSON path (default benchmarks/results/train.json, train_quick.json with --quick)")
    args = ap.parse_args(argv)
    dev = args.device
    quick = args.quick
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = {**machine_info(), **machine_extras()}
    steps = 5 if quick else 8

    peak32 = models.matmul_peak_flops(torch.float32, dev, n=1024 if quick else 2048)
    figures: dict = {"matmul_peak_fp32_flops": peak32}
    native_bf16 = dev == "cuda" or cpu_has_native_bf16()
    if native_bf16:
        figures["matmul_peak_bf16_flops"] = models.matmul_peak_flops(
            torch.bfloat16, dev, n=1024 if quick else 2048)
    print(f"matmul peak fp32: {peak32 / 1e9:.1f} GFLOP/s"
          + (f", bf16: {figures['matmul_peak_bf16_flops'] / 1e9:.1f} GFLOP/s" if native_bf16 else ""))

    tiny_grid = (64, 96) if quick else (128, 192)
    paper_grid = (64, 96) if quick else (96, 144)
    cases = [
        ("deeplabv3plus", "tiny", 4 if quick else 8, tiny_grid),
        ("tiramisu", "tiny", 4 if quick else 8, tiny_grid),
        ("deeplabv3plus", "paper", 1, paper_grid),
        ("tiramisu", "paper", 1, paper_grid),
        ("deeplabv3plus", "deepcam", 1, paper_grid),
        ("cgnet", "paper", 1, tiny_grid),
    ]
    runs = []
    ratios: dict = {}
    for name, preset, batch, grid in cases:
        variants = [dict(), dict(channels_last=True)]
        if native_bf16:
            variants.append(dict(channels_last=True, precision="bf16"))
        if args.compile and preset == "tiny":
            variants.append(dict(channels_last=True, compile=True))
        best = None
        for v in variants:
            try:
                # the machine is shared: take the matmul baseline right before each variant
                local_peak = models.matmul_peak_flops(torch.float32, dev, n=1024, min_time=0.2,
                                                      repeats=2)
                r = time_train_step(name, preset, batch, grid, steps=steps, device=dev,
                                    warmup=2 if not v.get("compile") else 3, **v)
                r["matmul_peak_fp32_before"] = local_peak
                peak_after = models.matmul_peak_flops(torch.float32, dev, n=1024, min_time=0.2,
                                                      repeats=2)
                r["matmul_peak_fp32_after"] = peak_after
                local_peak = max(local_peak, peak_after)
            except Exception as e:  # e.g. no C++ compiler for torch.compile
                r = {"model": name, "preset": preset, **v, "error": f"{type(e).__name__}: {e}"[:300]}
                print(f"{name}/{preset} {v}: FAILED {r['error']}")
                runs.append(r)
                continue
            r["ratio_vs_matmul_fp32"] = r["flops_per_s"] / local_peak
            r["ratio_vs_matmul_fp32_run_peak"] = r["flops_per_s"] / peak32
            if r["precision"] == "bf16":
                r["ratio_vs_matmul_bf16"] = r["flops_per_s"] / figures["matmul_peak_bf16_flops"]
            runs.append(r)
            tag = (f"{'cl' if r['channels_last'] else 'nchw'}-{r['precision']}"
                   f"{'-compile' if r['compile'] else ''}")
            ratios[f"train_{name}_{preset}_{tag}_vs_matmul_fp32"] = r["ratio_vs_matmul_fp32"]
            print(f"{name:13s} {preset:7s} b={batch} {grid} {tag:22s} step {r['step_s_median']:.3f}s"
                  f" [{r['step_s_p25']:.3f}-{r['step_s_p75']:.3f}]"
                  f"  {r['flops_per_s'] / 1e9:7.1f} GFLOP/s  = {r['ratio_vs_matmul_fp32']:.0%} of fp32 "
                  f"matmul" + (f" ({r['ratio_vs_matmul_bf16']:.0%} of bf16 matmul)"
                               if "ratio_vs_matmul_bf16" in r else ""), flush=True)
            if best is None or r["flops_per_s"] > best["flops_per_s"]:
                best = r
        if best is not None:
            ratios[f"train_{name}_{preset}_vs_matmul_peak"] = best["ratio_vs_matmul_fp32"]
            ratios[f"train_{name}_{preset}_fp32_vs_matmul_peak"] = max(
                (r["ratio_vs_matmul_fp32"] for r in runs
                 if r.get("model") == name and r.get("preset") == preset
                 and r.get("precision") == "fp32" and "error" not in r), default=float("nan"))

    engine = None
    if dev == "cpu":
        bare = next(r for r in runs if r.get("model") == "deeplabv3plus" and r.get("preset") == "tiny"
                    and not r.get("channels_last") and r.get("precision") == "fp32"
                    and not r.get("compile") and "error" not in r)
        # bare step timed right before and after the engine run (load drifts on a shared box)
        b_grid = tuple(bare["grid"])
        before = time_train_step("deeplabv3plus", "tiny", bare["batch"], b_grid, steps=steps, device=dev)
        engine = time_engine(bare["batch"], b_grid, steps=4 if quick else 10)
        after = time_train_step("deeplabv3plus", "tiny", bare["batch"], b_grid, steps=steps, device=dev)
        bare_ips = 0.5 * (before["images_per_s"] + after["images_per_s"])
        engine["bare_images_per_s_before_after"] = [before["images_per_s"], after["images_per_s"]]
        ratios["engine_deeplabv3plus_tiny_vs_bare_step"] = engine["images_per_s"] / bare_ips
        print(f"engine run_training: {engine['images_per_s']:.1f} img/s vs bare step "
              f"{bare_ips:.1f} img/s -> {ratios['engine_deeplabv3plus_tiny_vs_bare_step']:.0%}")
    figures["train_steps"] = runs
    figures["engine"] = engine
    notes = ("FLOPs = forward + backward convolution/matmul FLOPs from "
             "climviz.models.train_flops_per_sample (1 MAC = 2 FLOPs); optimizer update not "
             "counted. Step = autocast forward, class-weighted CE, backward, AdamW step. "
             "ratio_vs_matmul_fp32 uses the larger of two fp32 matmul measurements taken "
             "right before and right after each variant (n=1024); "
             "ratio_vs_matmul_fp32_run_peak uses the one at the start of the run (n=2048). "
             "Measured on a shared 2-core machine while other processes were running, so "
             "absolute numbers are noisy; the ratios are taken within the same run. "
             "Reference presets run at batch 1 on a crop (config.grid); their FLOPs are the crop's. "
             "step_s_median over >= 5 steps, spread in step_s_p25/_p75/_min/_max. "
             "The paper (Kurth et al. SC18) sustained ~29% of V100 fp16 peak.")
    save_result("train", figures, ratios, notes, quick=quick, out=args.out, machine=machine,
                packages=("torch",), device=dev)
    return {"figures": figures, "ratios": ratios}


if __name__ == "__main__":
    main()
