"""``climviz.train``: one call to train a model, on Ray (default) or in this process."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from climviz.errors import CheckpointError, ConfigError
from climviz.training.checkpoint import checkpoint_file, find_latest_checkpoint
from climviz.training.config import TrainConfig, as_config
from climviz.training.ray import train_on_ray
from climviz.training.result import TrainResult, default_run_dir, result_from_history

__all__ = ["as_config", "default_run_dir", "result_from_history", "train"]


def _print_row(row: dict, ckpt: Path | None) -> None:
    print(f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  "
          f"val_loss {row['val_loss']:.4f}  IoU bg/tc/ar {row.get('iou_background', float('nan')):.3f}/"
          f"{row.get('iou_tc', float('nan')):.3f}/{row.get('iou_ar', float('nan')):.3f}  "
          f"mIoU {row['miou']:.3f}  {row['images_per_s']:.1f} img/s  "
          f"{row['flops_per_s'] / 1e9:.2f} GFLOP/s  lr {row['lr']:.2e}"
          + (f"  -> {ckpt}" if ckpt is not None else ""), file=sys.stdout, flush=True)


def train(
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike,
    data: Any = None,
    *,
    use_ray: bool = True,
    address: str | None = None,
    num_workers: int | None = None,
    use_gpu: bool = False,
    resources_per_worker: Mapping[str, float] | None = None,
    storage_path: str | os.PathLike | None = None,
    name: str | None = None,
    resume: bool | str | os.PathLike = False,
    max_failures: int = 0,
    progress: Any = True,
    **kw: Any,
) -> TrainResult:
    """Train a segmentation model; return checkpoints and per-epoch metrics.

    Parameters
    ----------
    config
        :class:`TrainConfig`, dict, or path of a YAML/JSON config.
    data
        ``xr.Dataset``, path, list of paths or glob of a labelled run
        (default ``config.data``).
    use_ray
        True: data-parallel on Ray (``climviz.training.ray.train_on_ray``; see its
        docstring for ``address``, ``num_workers``, ``use_gpu``, ``resources_per_worker``,
        ``max_failures``). False: the same engine in this process, for debugging.
        A second call in the same process reuses the running Ray and, with the same
        ``num_workers``/``use_gpu``/``resources_per_worker``, its worker processes
        (kept ``keep_workers_s=600`` seconds; ``launcher="ray_train"`` runs Ray Train's
        ``TorchTrainer`` instead), so it starts stepping within seconds.
    storage_path, name
        Where the run's checkpoints go: ``storage_path/name/epoch_XXXX/checkpoint.pt``
        (defaults ``./climviz_runs`` and ``<model>-<preset>-<time>``).
    resume
        True: continue from the latest checkpoint of the named run (error if the run
        has none); a path: continue from that checkpoint.
    progress
        In-process mode: print one line per epoch when true. Ray mode: the live display,
        bool, ``"text"``/``"widget"`` or a Progress
        (:func:`climviz.training.progress.make_progress`).
    **kw
        In-process mode: ``device``, ``normalizer``, ``report``, ``step_callback``
        passed to :func:`~climviz.training.loop.run_training`. Ray mode: passed on.

    Returns
    -------
    TrainResult

    Examples
    --------
    One epoch of the tiny DeepLabv3+ in this process (a few seconds on a CPU); the last
    20 % of the time steps are held out for validation:

    >>> from pathlib import Path
    >>> ds = cv.synthetic_run(8, shape=(32, 48))
    >>> cfg = cv.TrainConfig(epochs=1, batch_size=2)
    >>> res = cv.train(cfg, ds, use_ray=False, progress=False, storage_path="runs", name="demo")
    >>> res.checkpoint.relative_to(Path.cwd()).as_posix()
    'runs/demo/epoch_0001/checkpoint.pt'
    >>> res.metrics[["epoch", "global_step", "global_batch_size"]].values.tolist()  # 6 training steps / 2
    [[1, 3, 2]]
    >>> bool(0.0 <= res.metrics["miou"].iloc[-1] <= 1.0)
    True
    >>> cv.predict(res.checkpoint, ds, progress=False)["mask"].shape
    (8, 32, 48)

    On Ray (a local cluster, or ``address="ray://host:10001"``), two data-parallel workers
    (not run here: it starts Ray):

    >>> res = cv.train(cfg, ds, num_workers=2, storage_path="runs")  # doctest: +SKIP
    """
    cfg = as_config(config)
    if use_ray:
        return train_on_ray(cfg, data, address=address, num_workers=num_workers, use_gpu=use_gpu,
                            resources_per_worker=resources_per_worker, storage_path=storage_path,
                            name=name, resume=resume, max_failures=max_failures,
                            progress=progress, **kw)

    from climviz.training.loop import run_training

    unknown = sorted(set(kw) - {"device", "normalizer", "report", "step_callback"})
    if unknown:
        raise ConfigError(f"train(use_ray=False): unknown keyword(s) {unknown}")
    if num_workers not in (None, 1):
        raise ConfigError(f"train(use_ray=False): num_workers={num_workers} needs use_ray=True")
    if resume is True and name is None:
        raise ConfigError("train: resume=True needs the name of the run to resume (name=...)")
    run_dir = default_run_dir(cfg, storage_path, name)
    resume_from = None
    if resume is True:
        resume_from = find_latest_checkpoint(run_dir)
        if resume_from is None:
            raise CheckpointError(f"{run_dir}: no checkpoint to resume from")
    elif resume:
        resume_from = checkpoint_file(resume)
    user_report = kw.pop("report", None)
    user_step = kw.pop("step_callback", None)

    def on_step(info: dict) -> None:
        if progress and info["step"] % cfg.log_every == 0:
            print(f"  epoch {info['epoch']} step {info['step']}/{info['steps_per_epoch']}  "
                  f"loss {info['loss']:.4f}  lr {info['lr']:.2e}", file=sys.stdout, flush=True)
        if user_step is not None:
            user_step(info)

    def report(row: dict, ckpt: Path | None) -> None:
        if progress:
            _print_row(row, ckpt)
        if user_report is not None:
            user_report(row, ckpt)

    t0 = time.perf_counter()
    history = run_training(cfg, data, checkpoint_dir=run_dir, resume_from=resume_from,
                           report=report, step_callback=on_step, **kw)
    return result_from_history(history, cfg, run_dir, time.perf_counter() - t0, run_dir)
