"""One rank of a 2-process gloo run of the engine (no Ray), started by test_loop.py.

Usage: python ddp_worker.py RANK WORLD_SIZE PORT RUN_PATH CONFIG_JSON OUT_DIR
Writes OUT_DIR/rank<R>.json with the metrics rows and the time indices of every step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from climviz.training.config import TrainConfig
from climviz.training.loop import run_training


def main() -> None:
    rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    run_path, cfg_path, out = sys.argv[4], sys.argv[5], Path(sys.argv[6])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        cfg = TrainConfig.from_file(cfg_path)
        steps, reports = [], []
        rows = run_training(cfg, run_path, rank=rank, world_size=world, device="cpu",
                            checkpoint_dir=out / "ckpt",
                            report=lambda row, ck: reports.append(None if ck is None else str(ck)),
                            step_callback=lambda info: steps.append(info["time_indices"]))
        (out / f"rank{rank}.json").write_text(json.dumps(
            {"rows": rows, "steps": steps, "reports": reports}, default=float))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
