"""Train the small DeepLabv3+ checkpoint bundled in ``data_samples/checkpoint/`` (run from the repo root).

    python data_samples/make_checkpoint.py              # about 10-20 minutes on 2 CPU cores
    python data_samples/make_checkpoint.py --epochs 2   # a quick, worse one

The model is trained on a **separate synthetic run** (``synthetic_run`` with seed 1, 96 three-hourly
steps on the sample's 96 x 144 grid), not on the sample run itself (seed 0), so that notebook 01's
skill scores on the sample are scores on unseen data. Training runs in this process
(``use_ray=False``: the same engine Ray runs on each worker) with a fixed seed; the result is
deterministic up to floating-point summation order across machines.

Writes ``data_samples/checkpoint/checkpoint.pt`` (weights, optimizer state, config, channels,
normalization, metrics; loaded with ``torch.load(weights_only=True)``), ``metrics.csv`` and
``train.yaml`` (the exact TrainConfig), each atomically.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The training run: a synthetic run of its own (seed 1), on the sample's grid.
TRAIN_RUN = {"n_times": 96, "shape": (96, 144), "seed": 1, "n_tc": 4, "n_ar": 3, "start": "2001-09-01",
             "freq": "3h"}
CONFIG = {"model": "deeplabv3plus", "preset": "tiny", "epochs": 16, "batch_size": 4, "lr": 3e-3,
          "optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 1, "class_weights": "inverse_sqrt",
          "dice_weight": 0.5, "random_roll": True, "val_fraction": 0.2, "seed": 0, "target_miou": 0.5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "checkpoint", help="output folder")
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    args = parser.parse_args(argv)

    import climviz as cv
    from climviz.utils.atomic import atomic_path

    cfg = cv.TrainConfig(**{**CONFIG, "epochs": args.epochs})
    with tempfile.TemporaryDirectory() as tmp:
        run_path = Path(tmp) / "train_run.nc"
        cv.write_run(cv.synthetic_run(**TRAIN_RUN), run_path)
        res = cv.train(cfg, str(run_path), use_ray=False, storage_path=tmp, name="sample")
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out / "checkpoint.pt") as dst:
            shutil.copyfile(res.checkpoint, dst)
    with atomic_path(args.out / "metrics.csv") as dst:
        res.metrics.to_csv(dst, index=False, float_format="%.5g")
    cfg.to_yaml(args.out / "train.yaml")
    last = res.metrics.iloc[-1]
    print(f"wrote {args.out}/checkpoint.pt: {int(last['epoch'])} epochs, val mIoU {last['miou']:.3f} "
          f"(TC {last['iou_tc']:.3f}, AR {last['iou_ar']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
