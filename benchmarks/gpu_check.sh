#!/usr/bin/env bash
# GPU check of the paper networks: one short run (<= 8 minutes) on a CUDA machine.
#
# For DeepLabv3+ (SC18 graph, ``paper``) and Tiramisu (SC18 graph, ``paper``) at the full
# 768x1152 grid, 16 channels: times the training step with fp16 autocast + GradScaler
# (forward, class-weighted cross-entropy, scaled backward, AdamW step), channels_last, at
# batch 1, 2 and 4 (stops at the first out-of-memory), and divides
#
#     achieved FLOP/s = train_flops_per_sample (forward + backward, counted on the meta
#                       device, depthwise weight gradients once) x batch / median step time
#
# by the fp16 matrix-product rate of the same GPU measured in the same run
# (climviz.models.matmul_peak_flops, 8192^3). Kurth et al. (SC18) sustained about 29% of the
# V100's fp16 *spec* peak; this ratio is against the *measured* matmul rate (below the spec).
# If time is left, the MLPerf ``deepcam`` and ClimateNet ``cgnet`` presets follow.
# Step times: median of >= 5 steps after 3 warm-up steps, quartiles and extremes saved.
# Peak GPU memory per configuration is recorded (torch.cuda.max_memory_allocated).
#
# Writes benchmarks/results/gpu.json (machine, versions, figures, ratios, notes).
# Without CUDA it prints why and exits with status 2, leaving gpu.json untouched.
#
# Usage:  bash benchmarks/gpu_check.sh          (PYTHON=... to choose the interpreter)
#         GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   (CPU, bf16, 32x48 crop, batch 1,
#         writes /tmp/gpu_check_dry_run.json: checks this script's code path, no GPU figures)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-python}"
cd "$ROOT"

if [[ "${GPU_CHECK_DRY_RUN:-0}" != "1" ]]; then
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
    echo "gpu_check.sh: no CUDA GPU available to torch (torch.cuda.is_available() is False or torch" \
         "is missing for $PY); nothing measured, benchmarks/results/gpu.json left unchanged." >&2
    exit 2
  fi
fi

export PYTHONPATH="$ROOT:$HERE${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "$PY" - <<'PYEOF'
import os
import time

import numpy as np
import torch

from _common import machine_info, save_result
from climviz.models import build, matmul_peak_flops, train_flops_per_sample

DRY = os.environ.get("GPU_CHECK_DRY_RUN") == "1"
BUDGET_S = 420.0  # leave a minute for start-up and writing within the 8-minute limit
t_start = time.perf_counter()
dev = torch.device("cpu" if DRY else "cuda")
grid = (32, 48) if DRY else (768, 1152)
batches = (1,) if DRY else (1, 2, 4)
n_mm = 256 if DRY else 8192
warmup, steps = (1, 5) if DRY else (3, 6)
# CPUs have no fast fp16 convolutions: the dry run checks the code path in bf16
half = torch.bfloat16 if DRY else torch.float16


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def elapsed():
    return time.perf_counter() - t_start


mm16 = matmul_peak_flops(half, dev, n=n_mm, min_time=0.2 if DRY else 1.0)
mm32 = matmul_peak_flops(torch.float32, dev, n=n_mm, min_time=0.2 if DRY else 1.0)
print(f"matmul {str(half).split('.')[-1]} {mm16 / 1e12:.2f} TFLOP/s, fp32 {mm32 / 1e12:.2f} TFLOP/s", flush=True)
figures = {"matmul_fp16_flops_per_s": mm16, "matmul_fp32_flops_per_s": mm32, "matmul_n": n_mm,
           "grid": list(grid), "runs": []}
ratios = {}
machine = machine_info()
if dev.type == "cuda":
    props = torch.cuda.get_device_properties(0)
    machine.update(gpu=torch.cuda.get_device_name(0), gpu_memory_bytes=props.total_memory,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    torch.backends.cudnn.benchmark = True

cases = [("deeplabv3plus", "paper"), ("tiramisu", "paper"), ("deeplabv3plus", "deepcam"), ("cgnet", "paper")]
for name, preset in cases:
    if elapsed() > BUDGET_S * (0.5 if preset != "paper" else 0.8):
        print(f"{name}/{preset}: skipped, time budget used", flush=True)
        continue
    with torch.device("meta"):
        flops_per_sample = train_flops_per_sample(build(name, preset), (16, *grid))
    best = None
    for batch in batches:
        if elapsed() > BUDGET_S:
            break
        net = opt = x = y = None
        try:
            torch.manual_seed(0)
            net = build(name, preset, seed=0).to(dev).to(memory_format=torch.channels_last).train()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
            scaler = torch.amp.GradScaler(dev.type)
            weights = torch.tensor([0.4, 30.0, 20.0], device=dev)
            x = torch.randn(batch, 16, *grid, device=dev).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 3, (batch, *grid), device=dev)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()

            def step():
                with torch.autocast(dev.type, dtype=half):
                    logits = net(x)
                loss = torch.nn.functional.cross_entropy(logits.float(), y, weight=weights)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)

            for _ in range(warmup):
                step()
            sync()
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                step()
                sync()
                times.append(time.perf_counter() - t0)
        except torch.OutOfMemoryError:
            print(f"{name}/{preset} batch {batch}: out of memory", flush=True)
            figures["runs"].append({"model": name, "preset": preset, "batch": batch, "error": "out of memory"})
            break
        finally:
            del net, opt, x, y
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        med = float(np.median(times))
        q25, q75 = (float(v) for v in np.percentile(times, [25, 75]))
        rate = flops_per_sample * batch / med
        run = {"model": name, "preset": preset, "batch": batch, "precision": "fp16-autocast+GradScaler",
               "channels_last": True, "train_flops_per_sample": flops_per_sample, "step_s_median": med,
               "step_s_p25": q25, "step_s_p75": q75, "step_s_min": min(times), "step_s_max": max(times),
               "steps": len(times), "samples_per_s": batch / med, "flops_per_s": rate,
               "ratio_vs_matmul_fp16": rate / mm16,
               "peak_memory_bytes": torch.cuda.max_memory_allocated() if dev.type == "cuda" else None}
        figures["runs"].append(run)
        print(f"{name}/{preset} batch {batch}: step {med:.3f} s [{q25:.3f}-{q75:.3f}], "
              f"{batch / med:.2f} samples/s, {rate / 1e12:.1f} TFLOP/s = {rate / mm16:.1%} of fp16 matmul"
              + (f", peak memory {run['peak_memory_bytes'] / 2**30:.1f} GiB" if run["peak_memory_bytes"] else ""),
              flush=True)
        if best is None or rate > best["flops_per_s"]:
            best = run
    if best is not None:
        ratios[f"train_{name}_{preset}_fp16_vs_matmul_fp16"] = best["ratio_vs_matmul_fp16"]
        figures[f"best_batch_{name}_{preset}"] = best["batch"]

notes = ("fp16 autocast + GradScaler training step (forward, weighted CE, backward, AdamW) at "
         f"{grid[0]}x{grid[1]}, channels_last; FLOPs from climviz.models.train_flops_per_sample "
         "(meta device); ratio = achieved FLOP/s over the fp16 matmul FLOP/s measured in this run; "
         "best batch of 1, 2, 4 per network. Kurth et al. sustained ~29% of V100 fp16 spec peak.")
if DRY:
    notes = "DRY RUN on the CPU (code-path check, not a GPU measurement). " + notes
out = "/tmp/gpu_check_dry_run.json" if DRY else None
save_result("gpu", figures, ratios, notes, out=out, machine=machine, packages=("torch",),
            device=dev.type, config={"wall_time_s": elapsed(), "dry_run": DRY})
PYEOF
