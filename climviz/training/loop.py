"""The per-process training loop, run as is (``train(..., use_ray=False)``) or on every
Ray worker (``train(..., use_ray=True)``).

One call of :func:`run_training` does the whole run in this process: open the data,
split it by time (validation = the last block of time steps), fit or reuse the
normalization, compute class weights on the training split, build the model,
optimizer, LR schedule and mixed-precision helper, optionally resume from a
checkpoint, then for each epoch train, validate, record a metrics row, write a
checkpoint (rank 0) and call ``report`` (every rank).

With ``world_size > 1`` it expects ``torch.distributed`` to be initialised (Ray does
it): the model is wrapped in DDP, each worker sees distinct time steps
(``DistributedSampler``; validation is sharded without padding), and losses,
sample counts and confusion matrices are summed over workers before metrics are
computed.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from climviz.data.schema import CLASS_KEYS, LABEL_VAR
from climviz.errors import ConfigError, DataError
from climviz.training.checkpoint import _clean_state_dict, load_checkpoint, save_checkpoint
from climviz.training.config import TrainConfig
from climviz.training.loss import WeightedLoss, class_counts, class_weights_from_counts
from climviz.training.metrics import all_reduce_sum, confusion_matrix, metrics_from_confusion
from climviz.training.optim import build_optimizer, build_scheduler
from climviz.training.precision import MixedPrecision

__all__ = ["run_training", "open_training_data", "epoch_dir"]

ReportFn = Callable[[dict, "Path | None"], None]
StepFn = Callable[[dict], None]


def epoch_dir(checkpoint_dir: str | os.PathLike, epoch: int) -> Path:
    """``checkpoint_dir/epoch_XXXX`` for a completed epoch (1-based)."""
    return Path(checkpoint_dir) / f"epoch_{epoch:04d}"


def open_training_data(data: Any, cfg: TrainConfig):
    """Open ``data`` (Dataset, path, list of paths, glob; default ``cfg.data``) and check
    that it has the configured channels and the label variable."""
    import xarray as xr

    data = cfg.training_data(data)
    if isinstance(data, xr.Dataset):
        ds = data
    else:
        from climviz.data import open_run

        ds = open_run(list(data) if isinstance(data, tuple) else data)
    missing = [c for c in cfg.channels if c not in ds.data_vars]
    if missing:
        raise DataError(f"training data: channel(s) {missing} not found; the data has "
                        f"{sorted(ds.data_vars)}")
    if LABEL_VAR not in ds.data_vars:
        raise DataError(f"training data: label variable {LABEL_VAR!r} not found; training needs "
                        f"labelled time steps (see climviz.labels.label_run for heuristic labels)")
    return ds


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101) % (2**63 - 1)


def _default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # peak resident set size of this process (Linux reports KiB)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device,
               channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of fields and labels on ``device`` (fields channels-last if asked)."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_class_weights(ds, train_idx: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    if not isinstance(cfg.class_weights, str):
        return np.asarray(cfg.class_weights, dtype=np.float64)
    if cfg.class_weights == "none":
        return np.ones(cfg.num_classes)
    labels = ds[LABEL_VAR]
    block = 32
    blocks = (np.asarray(labels.isel(time=train_idx[i:i + block]).values)
              for i in range(0, len(train_idx), block))
    counts = class_counts(blocks, cfg.num_classes)
    return class_weights_from_counts(counts, cfg.class_weights)


def run_training(
    cfg: TrainConfig,
    data: Any = None,
    *,
    normalizer: Any = None,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str | None = None,
    checkpoint_dir: str | os.PathLike,
    resume_from: str | os.PathLike | None = None,
    report: ReportFn | None = None,
    step_callback: StepFn | None = None,
) -> list[dict[str, Any]]:
    """Train ``cfg`` on ``data`` in this process; return the metrics rows (one per epoch).

    Parameters
    ----------
    cfg
        The run's :class:`TrainConfig`.
    data
        ``xr.Dataset``, path, list of paths or glob (default ``cfg.data``); must hold
        ``cfg.channels`` and ``LABELS``.
    normalizer
        A :class:`~climviz.data.Normalizer` (or its dict). Default: fitted on the
        training split, or taken from the checkpoint when resuming.
    rank, world_size
        This worker's rank and the number of workers (``torch.distributed`` must be
        initialised when ``world_size > 1``).
    device
        Torch device (default: this rank's GPU if any, else CPU).
    checkpoint_dir
        Rank 0 writes ``checkpoint_dir/epoch_XXXX/checkpoint.pt`` after each
        ``cfg.checkpoint_every`` epochs and after the last one.
    resume_from
        A checkpoint (file or directory) to continue from: weights, optimizer, LR
        schedule, grad scaler, metrics history and epoch count are restored.
    report
        ``report(row, ckpt_dir)`` called by every rank after each epoch (``ckpt_dir`` is
        None on ranks != 0 and on epochs without a checkpoint).
    step_callback
        ``step_callback(info)`` on every rank after every optimizer step with ``epoch``
        (1-based, in progress), ``step`` (1-based, in the epoch), ``steps_per_epoch``,
        ``global_step``, ``loss`` (this rank's last micro-batch), ``lr``, ``batch_size``
        (this rank's samples in the step), ``time_indices`` (the run's time indices of
        those samples), ``applied`` (False if the step was skipped for overflow),
        ``rank``, ``world_size``.

    Returns
    -------
    list of dict
        The metrics history including rows restored from ``resume_from`` (returned
        without training if that checkpoint already completed ``cfg.epochs``): ``epoch,
        global_step, train_loss, val_loss, iou_background, iou_tc, iou_ar, miou,
        pixel_accuracy, images_per_s, flops_per_s, lr, epoch_time_s, elapsed_s,
        peak_memory_mb, skipped_steps, world_size, time_to_target_s, ...``.
    """
    import xarray as xr

    from climviz import models
    from climviz.data import Normalizer, SegmentationDataset, make_loader, time_split

    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig.from_dict(cfg) if isinstance(cfg, Mapping) else cfg
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"run_training: rank {rank} is not in 0..world_size-1 "
                          f"(world_size={world_size})")
    distributed = world_size > 1
    if distributed:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ConfigError(f"run_training: world_size={world_size} needs torch.distributed "
                              f"to be initialised (use train(..., use_ray=True))")
    device = torch.device(device) if device is not None else _default_device()
    checkpoint_dir = Path(checkpoint_dir)

    # ---------------------------------------------------------------- resume state
    payload = None
    if resume_from is not None:
        payload = load_checkpoint(resume_from, map_location="cpu",
                                  expect_model=(cfg.model, cfg.preset),
                                  expect_channels=cfg.channels)
        if normalizer is None and payload.get("normalizer"):
            normalizer = Normalizer.from_dict(payload["normalizer"])

    prev_deterministic = torch.are_deterministic_algorithms_enabled()
    prev_benchmark = torch.backends.cudnn.benchmark
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        _seed_everything(cfg.seed)

        # ------------------------------------------------------------ data
        ds = open_training_data(data, cfg)
        n_times = int(ds.sizes["time"])
        train_idx, val_idx = time_split(n_times, cfg.val_fraction)
        train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
        need = cfg.effective_batch_size(world_size)
        if len(val_idx) < 1 or len(train_idx) < need:
            raise DataError(f"training data: {n_times} time steps split into {len(train_idx)} "
                            f"train / {len(val_idx)} validation (val_fraction={cfg.val_fraction}); "
                            f"one optimizer step needs {need} training time steps "
                            f"(batch_size x grad_accum x workers)")
        if normalizer is None:
            normalizer = Normalizer.fit(ds.isel(time=train_idx), channels=cfg.channels)
        if not isinstance(normalizer, Mapping):
            normalizer = normalizer.to_dict()
        # always use the stored (JSON) form, so a resumed run normalizes bit-identically
        normalizer = Normalizer.from_dict(normalizer)
        if list(normalizer.channels) != list(cfg.channels):
            raise ConfigError(f"TrainConfig.channels: {list(cfg.channels)} differ from the "
                              f"normalizer's channels {list(normalizer.channels)}")
        if payload is not None and payload.get("class_weights") is not None:
            weights = np.asarray(payload["class_weights"], dtype=np.float64)
        else:
            weights = _train_class_weights(ds, train_idx, cfg)

        grid = (int(ds.sizes["lat"]), int(ds.sizes["lon"]))
        sample_hw = tuple(cfg.crop) if cfg.crop is not None else grid
        if sample_hw[0] > grid[0] or sample_hw[1] > grid[1]:
            raise ConfigError(f"TrainConfig.crop: {list(sample_hw)} is larger than the grid "
                              f"{list(grid)}")
        # paths are reopened lazily by each DataLoader worker; a Dataset is used as is
        raw = data if data is not None else cfg.data
        source = (ds if isinstance(raw, xr.Dataset)
                  else list(raw) if isinstance(raw, (tuple, list)) else raw)
        from torch.utils.data import DistributedSampler

        train_ds = SegmentationDataset(source, channels=cfg.channels, normalizer=normalizer,
                                       time_indices=train_idx, crop=cfg.crop,
                                       random_roll=cfg.random_roll, seed=cfg.seed)
        sampler = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        train_loader = make_loader(train_ds, cfg.batch_size, sampler=sampler,
                                   num_workers=cfg.loader_workers, drop_last=True, seed=cfg.seed,
                                   persistent_workers=False)

        def start_epoch_data(epoch: int) -> None:
            # reseed augmentation by (seed, epoch, rank) at each epoch: random crops and rolls
            # (in this process or in fresh loader workers) are then the same whether or not
            # the run was interrupted and resumed
            s = _epoch_seed(cfg.seed, epoch, rank) % 2**31
            train_ds.seed = s
            if train_loader.generator is not None:
                train_loader.generator.manual_seed(s)
            sampler.set_epoch(epoch)

        val_ds = SegmentationDataset(source, channels=cfg.channels, normalizer=normalizer,
                                     time_indices=val_idx)
        val_loader = make_loader(val_ds, cfg.val_batch_size or cfg.batch_size,
                                 sampler=list(range(rank, len(val_ds), world_size)),
                                 num_workers=cfg.loader_workers, seed=cfg.seed)
        batches_per_epoch = len(train_loader)
        steps_per_epoch = batches_per_epoch // cfg.grad_accum
        if cfg.max_steps_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
        if steps_per_epoch < 1:
            raise DataError(f"training data: {len(train_idx)} training time steps give no full "
                            f"optimizer step of {need} samples")

        # ------------------------------------------------------------ model & optimizer
        torch.manual_seed(cfg.seed)
        in_channels = len(cfg.channels)
        net = models.build(cfg.model, preset=cfg.preset, in_channels=in_channels,
                           num_classes=cfg.num_classes, **cfg.model_overrides)
        flops_per_sample = float(models.train_flops_per_sample(net, (in_channels, *sample_hw)))
        net.to(device)
        if cfg.channels_last:
            net.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(net, cfg, world_size)
        scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
        amp = MixedPrecision(cfg.precision, device)
        loss_fn = WeightedLoss(weights, cfg.dice_weight, cfg.overlap_loss).to(device)

        history: list[dict[str, Any]] = []
        start_epoch, global_step = 0, 0
        if payload is not None:
            try:
                net.load_state_dict(_clean_state_dict(payload["model_state"]))
            except RuntimeError as e:
                from climviz.errors import CheckpointError

                raise CheckpointError(f"{resume_from}: weights do not fit {cfg.model}/"
                                      f"{cfg.preset} with overrides {cfg.model_overrides}: {e}") from e
            if payload.get("optimizer_state"):
                optimizer.load_state_dict(payload["optimizer_state"])
            if payload.get("scheduler_state"):
                sd = dict(payload["scheduler_state"])
                # keep this run's schedule shape (epochs may have been extended)
                sd["lr_lambdas"] = [None] * len(sd.get("lr_lambdas", [None]))
                scheduler.load_state_dict(sd)
                # a resumed run may use another worker count (or lr): rescale the peak LR
                peak = cfg.scaled_lr(world_size)
                if any(not math.isclose(b, peak, rel_tol=1e-9) for b in scheduler.base_lrs):
                    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
                    scheduler.base_lrs = [peak] * len(optimizer.param_groups)
                    for group in optimizer.param_groups:
                        group["initial_lr"] = peak
                        group["lr"] = peak * factor
                    scheduler._last_lr = [peak * factor] * len(optimizer.param_groups)
            amp.load_state_dict(payload.get("scaler_state"))
            history = [dict(r) for r in payload.get("metrics", [])]
            start_epoch = int(payload.get("epoch", 0))
            global_step = int(payload.get("global_step", 0))

        model: torch.nn.Module = net
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            model = torch.compile(model)
        eval_model = torch.compile(net) if cfg.compile else net

        target_time = next((r.get("time_to_target_s") for r in history
                            if r.get("time_to_target_s") is not None
                            and not math.isnan(r["time_to_target_s"])), float("nan"))
        elapsed_offset = float(history[-1].get("elapsed_s", 0.0)) if history else 0.0
        run_start = time.perf_counter()
        best_miou = max((r.get("miou", float("nan")) for r in history
                         if not math.isnan(r.get("miou", float("nan")))), default=-1.0)
        if payload is not None and payload.get("best_epoch") is not None:
            best_epoch = int(payload["best_epoch"])
        else:
            best_epoch = None

        for epoch in range(start_epoch, cfg.epochs):
            torch.manual_seed(_epoch_seed(cfg.seed, epoch, rank))
            start_epoch_data(epoch)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)

            # -------------------------------------------------------- train
            model.train()
            _sync(device)
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            n_samples = 0
            step, micro = 0, 0
            order = list(iter(sampler))          # this rank's dataset indices, in batch order
            step_times: list[int] = []
            optimizer.zero_grad(set_to_none=True)
            for x, y in train_loader:
                x, y = _to_device(x, y, device, cfg.channels_last)
                last_micro = (micro + 1) % cfg.grad_accum == 0
                sync_ctx = (model.no_sync() if distributed and not last_micro and hasattr(model, "no_sync")
                            else contextlib.nullcontext())
                with sync_ctx:
                    with amp.autocast():
                        logits = model(x)
                    loss = loss_fn(logits, y)
                    amp.backward(loss / cfg.grad_accum)
                loss_sum += loss.detach().double() * x.shape[0]
                if step_callback is not None:
                    first = micro * cfg.batch_size
                    step_times.extend(int(train_idx[i]) for i in order[first:first + x.shape[0]])
                n_samples += x.shape[0]
                micro += 1
                if not last_micro:
                    continue
                applied = amp.step(optimizer, clip_norm=cfg.grad_clip)
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                global_step += 1
                step += 1
                if step_callback is not None:
                    step_callback({"epoch": epoch + 1, "step": step,
                                   "steps_per_epoch": steps_per_epoch, "global_step": global_step,
                                   "loss": float(loss.detach()),
                                   "lr": optimizer.param_groups[0]["lr"],
                                   "batch_size": len(step_times), "time_indices": step_times,
                                   "applied": applied, "rank": rank, "world_size": world_size})
                    step_times = []
                if step >= steps_per_epoch:
                    break
            _sync(device)
            train_time = time.perf_counter() - t0

            # -------------------------------------------------------- validate
            if distributed:
                # BatchNorm running statistics drift apart on each worker's own batches:
                # average them so every worker (and the checkpoint) holds the same model
                _average_buffers(net, world_size)
            model.eval()
            eval_model.eval()
            cm = torch.zeros((cfg.num_classes, cfg.num_classes), dtype=torch.int64, device=device)
            val_sum = torch.zeros((), dtype=torch.float64, device=device)
            n_val = 0
            with torch.no_grad():
                for x, y in val_loader:
                    x, y = _to_device(x, y, device, cfg.channels_last)
                    with amp.autocast():
                        logits = eval_model(x)
                    val_sum += loss_fn(logits, y).double() * x.shape[0]
                    n_val += x.shape[0]
                    cm += confusion_matrix(logits.argmax(1), y, cfg.num_classes)
            totals = torch.stack([loss_sum, torch.tensor(float(n_samples), dtype=torch.float64,
                                                         device=device),
                                  val_sum, torch.tensor(float(n_val), dtype=torch.float64,
                                                        device=device),
                                  torch.tensor(train_time, dtype=torch.float64, device=device)])
            totals = all_reduce_sum(totals)
            cm = all_reduce_sum(cm)
            _sync(device)
            epoch_time = time.perf_counter() - t0
            t = totals.cpu().tolist()
            mean_train_time = t[4] / world_size
            images_per_s = t[1] / mean_train_time if mean_train_time > 0 else float("nan")
            elapsed = elapsed_offset + (time.perf_counter() - run_start)
            quality = metrics_from_confusion(cm.cpu(), CLASS_KEYS if cfg.num_classes == 3
                                             else tuple(str(i) for i in range(cfg.num_classes)))
            if (cfg.target_miou is not None and math.isnan(target_time)
                    and quality["miou"] >= cfg.target_miou):
                target_time = elapsed
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "global_step": global_step,
                "train_loss": t[0] / t[1] if t[1] else float("nan"),
                "val_loss": t[2] / t[3] if t[3] else float("nan"),
                **quality,
                "images_per_s": images_per_s,
                "flops_per_s": images_per_s * flops_per_sample,
                "lr": float(optimizer.param_groups[0]["lr"]),
                "epoch_time_s": epoch_time,
                "train_time_s": mean_train_time,
                "elapsed_s": elapsed,
                "peak_memory_mb": _peak_memory_mb(device),
                "skipped_steps": amp.skipped_steps,
                "world_size": world_size,
                "time_to_target_s": target_time,
                "samples": int(t[1]),
                "global_batch_size": need,
                "precision": amp.name,
                "train_flops_per_sample": flops_per_sample,
            }
            history.append(row)
            if not math.isnan(row["miou"]) and row["miou"] > best_miou:
                best_miou, best_epoch = row["miou"], epoch + 1

            # -------------------------------------------------------- checkpoint & report
            ckpt: Path | None = None
            last = epoch + 1 == cfg.epochs
            if rank == 0 and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
                ckpt = epoch_dir(checkpoint_dir, epoch + 1)
                save_checkpoint(ckpt, {
                    "model": cfg.model, "preset": cfg.preset,
                    "model_kwargs": {"in_channels": in_channels, "num_classes": cfg.num_classes,
                                     "overrides": dict(cfg.model_overrides)},
                    "channels": list(cfg.channels),
                    "normalizer": normalizer.to_dict(),
                    "config": cfg.to_dict(),
                    "grid": list(grid),
                    "epoch": epoch + 1,
                    "global_step": global_step,
                    "metrics": history,
                    "best_epoch": best_epoch,
                    "class_weights": [float(w) for w in weights],
                    "model_state": net.state_dict(),
                    "optimizer_state": optimizer.state_dict(),
                    "scheduler_state": scheduler.state_dict(),
                    "scaler_state": amp.state_dict(),
                })
                _prune(checkpoint_dir, cfg.keep_checkpoints, keep_epoch=best_epoch)
            if report is not None:
                report(dict(row), ckpt)
        return history
    finally:
        if cfg.deterministic:
            torch.use_deterministic_algorithms(prev_deterministic)
        torch.backends.cudnn.benchmark = prev_benchmark


def _average_buffers(net: torch.nn.Module, world_size: int) -> None:
    """Average floating-point buffers (BatchNorm running mean/var) over all workers."""
    bufs = [b for b in net.buffers() if b.is_floating_point()]
    if not bufs:
        return
    flat = torch.cat([b.detach().reshape(-1).double() for b in bufs])
    all_reduce_sum(flat)
    flat /= world_size
    offset = 0
    with torch.no_grad():
        for b in bufs:
            n = b.numel()
            b.copy_(flat[offset:offset + n].view_as(b).to(b.dtype))
            offset += n


def _prune(checkpoint_dir: Path, keep: int | None, keep_epoch: int | None) -> None:
    """Remove all but the newest ``keep`` epoch checkpoints (never ``keep_epoch``)."""
    if keep is None:
        return
    dirs = sorted(p for p in checkpoint_dir.glob("epoch_*") if p.is_dir())
    for old in dirs[:-keep]:
        if keep_epoch is not None and old.name == f"epoch_{keep_epoch:04d}":
            continue
        shutil.rmtree(old, ignore_errors=True)
