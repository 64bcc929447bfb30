"""The state of one training process, and the stages that make it (setup, restore).

A run is a :class:`TrainState` passed through five stages (as in Ray Train's
examples): :func:`setup` (data, split, normalization, class weights, loaders, model,
optimizer, schedule, precision, loss), :func:`restore` (continue from a checkpoint),
then per epoch :func:`~climviz.training.loop.train_epoch`,
:func:`~climviz.training.loop.validate` and :func:`~climviz.training.loop.end_epoch`.
:func:`~climviz.training.loop.run_training` strings them together.

The learning rate is a pure function of the state: ``peak_lr * schedule(global_step)``
(:func:`apply_lr`), so a resumed run that changes the peak (another worker count or
``lr``) keeps the schedule's position and uses the new peak, with no scheduler
internals to patch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from climviz.data.schema import LABEL_VAR
from climviz.errors import CheckpointError, ConfigError, DataError
from climviz.training.config import TrainConfig
from climviz.training.loss import build_loss, class_counts, class_weights_from_counts
from climviz.training.optim import WarmupDecay, build_optimizer
from climviz.training.precision import MixedPrecision

__all__ = [
    "TrainState",
    "apply_lr",
    "open_training_data",
    "restore",
    "scheduler_state",
    "setup",
]


@dataclass
class TrainState:
    """Everything one training process holds between stages.

    Attributes
    ----------
    cfg : TrainConfig
        The run's configuration.
    rank, world_size : int
        This worker and the number of workers.
    device : torch.device
        Where the model runs.
    checkpoint_dir : Path
        Where rank 0 writes ``epoch_XXXX/checkpoint.pt``.
    normalizer : Normalizer
        Per-channel normalization (fitted on the training split or restored). The
        loaders ship raw fields; ``net`` applies it as its frozen first operation
        (``net.input_norm``, saved in its state dict).
    weights : numpy.ndarray
        Per-class loss weights (dimensionless).
    grid : tuple of int
        ``(nlat, nlon)`` of the run.
    train_idx, val_idx : numpy.ndarray
        Run time indices of the training and validation splits.
    train_ds, sampler, train_loader, val_loader
        Training dataset (reseeded per epoch), its distributed sampler and the loaders.
    steps_per_epoch : int
        Optimizer steps per epoch.
    net : torch.nn.Module
        The bare model (what checkpoints hold); ``model`` wraps it (DDP, compile) for
        training and ``eval_model`` for validation.
    optimizer, amp, loss_fn
        Optimizer, mixed-precision helper, loss module.
    schedule : WarmupDecay
        LR factor per optimizer step; the LR is ``peak_lr * schedule(global_step)``.
    peak_lr : float
        Peak learning rate of this run (``cfg.lr`` after the worker-count scaling rule).
    flops_per_sample : float
        Training FLOPs of one sample (forward + backward).
    history : list of dict
        Metrics rows, one per completed epoch (including restored ones).
    start_epoch, global_step : int
        Completed epochs and optimizer steps so far.
    best_miou, best_epoch
        Best validation mIoU so far and its epoch.
    target_time : float
        Elapsed seconds when ``cfg.target_miou`` was first reached (NaN before).
    elapsed_offset, run_start : float
        Seconds elapsed before this process (restored) and ``perf_counter`` at its start.
    nonfinite_streak : int
        Consecutive optimizer steps whose loss was not finite.
    """

    cfg: TrainConfig
    rank: int
    world_size: int
    device: torch.device
    checkpoint_dir: Path
    normalizer: Any
    weights: np.ndarray
    grid: tuple[int, int]
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_ds: Any
    sampler: Any
    train_loader: Any
    val_loader: Any
    steps_per_epoch: int
    net: torch.nn.Module
    optimizer: Any
    amp: MixedPrecision
    loss_fn: torch.nn.Module
    schedule: WarmupDecay
    peak_lr: float
    flops_per_sample: float
    model: Any = None                  # the net wrapped for training (DDP, compile)
    eval_model: Any = None             # the net (compiled) for validation
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    global_step: int = 0
    best_miou: float = -1.0
    best_epoch: int | None = None
    target_time: float = float("nan")
    elapsed_offset: float = 0.0
    run_start: float = field(default_factory=time.perf_counter)
    nonfinite_streak: int = 0

    @property
    def distributed(self) -> bool:
        """True with more than one worker."""
        return self.world_size > 1

    @property
    def global_batch_size(self) -> int:
        """Samples per optimizer step over all workers."""
        return self.cfg.effective_batch_size(self.world_size)


def apply_lr(state: TrainState) -> float:
    """Set every parameter group's LR to ``peak_lr * schedule(global_step)``; return it."""
    lr = state.peak_lr * state.schedule(state.global_step)
    for group in state.optimizer.param_groups:
        group["initial_lr"] = state.peak_lr
        group["lr"] = lr
    return lr


def scheduler_state(state: TrainState) -> dict[str, Any]:
    """The schedule as a checkpoint stores it (the keys of a ``LambdaLR`` state)."""
    n = len(state.optimizer.param_groups)
    lr = state.optimizer.param_groups[0]["lr"]
    return {"base_lrs": [state.peak_lr] * n, "last_epoch": state.global_step,
            "_step_count": state.global_step + 1, "_last_lr": [lr] * n,
            "lr_lambdas": [None] * n}


def open_training_data(data: Any, cfg: TrainConfig):
    """Open ``data`` and check that it has the configured channels and the labels.

    ``data``: Dataset, path, list of paths or glob; default ``cfg.data``.
    """
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
                        f"{sorted(map(str, ds.data_vars))}")
    if LABEL_VAR not in ds.data_vars:
        raise DataError(f"training data: label variable {LABEL_VAR!r} not found; training needs "
                        f"labelled time steps (see climviz.labels.label_run for heuristic labels)")
    return ds


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


def _split(ds, cfg: TrainConfig, world_size: int) -> tuple[np.ndarray, np.ndarray]:
    from climviz.data import time_split

    n_times = int(ds.sizes["time"])
    train_idx, val_idx = (np.asarray(i) for i in time_split(n_times, cfg.val_fraction))
    need = cfg.effective_batch_size(world_size)
    if len(val_idx) < 1 or len(train_idx) < need:
        raise DataError(f"training data: {n_times} time steps split into {len(train_idx)} "
                        f"train / {len(val_idx)} validation (val_fraction={cfg.val_fraction}); "
                        f"one optimizer step needs {need} training time steps "
                        f"(batch_size x grad_accum x workers)")
    return train_idx, val_idx


def _normalizer(normalizer: Any, ds, train_idx: np.ndarray, cfg: TrainConfig):
    from climviz.data import Normalizer

    if normalizer is None:
        normalizer = Normalizer.fit(ds.isel(time=train_idx), channels=cfg.channels)
    if not isinstance(normalizer, Mapping):
        normalizer = normalizer.to_dict()
    # always use the stored (JSON) form, so a resumed run normalizes bit-identically
    normalizer = Normalizer.from_dict(normalizer)
    if list(normalizer.channels) != list(cfg.channels):
        raise ConfigError(f"TrainConfig.channels: {list(cfg.channels)} differ from the "
                          f"normalizer's channels {list(normalizer.channels)}")
    return normalizer


def _loaders(source: Any, cfg: TrainConfig, train_idx: np.ndarray, val_idx: np.ndarray,
             rank: int, world_size: int):
    """Loaders of raw float32 fields (NaN kept): the network normalizes on the device."""
    from torch.utils.data import DistributedSampler

    from climviz.data import SegmentationDataset, make_loader

    train_ds = SegmentationDataset(source, channels=cfg.channels, time_indices=train_idx,
                                   crop=cfg.crop, random_roll=cfg.random_roll, seed=cfg.seed,
                                   nan_fill=None)
    sampler: Any = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    train_loader = make_loader(train_ds, cfg.batch_size, sampler=sampler,
                               num_workers=cfg.loader_workers, drop_last=True, seed=cfg.seed,
                               persistent_workers=False)
    val_ds = SegmentationDataset(source, channels=cfg.channels, time_indices=val_idx,
                                 nan_fill=None)
    val_loader = make_loader(val_ds, cfg.val_batch_size or cfg.batch_size,
                             sampler=list(range(rank, len(val_ds), world_size)),
                             num_workers=cfg.loader_workers, seed=cfg.seed)
    return train_ds, sampler, train_loader, val_loader


def setup(cfg: TrainConfig, data: Any = None, *, normalizer: Any = None, rank: int = 0,
          world_size: int = 1, device: torch.device | str = "cpu",
          checkpoint_dir: str | os.PathLike = ".", class_weights: Any = None) -> TrainState:
    """Stage 1: open and split the data, build loaders, model, optimizer, schedule, loss.

    ``class_weights`` (e.g. restored from a checkpoint) replaces the weights computed
    from the training split. The model is not yet wrapped for DDP/compile (see
    :func:`~climviz.training.loop.wrap_model`).
    """
    import xarray as xr

    from climviz import models

    ds = open_training_data(data, cfg)
    train_idx, val_idx = _split(ds, cfg, world_size)
    normalizer = _normalizer(normalizer, ds, train_idx, cfg)
    weights = (np.asarray(class_weights, dtype=np.float64) if class_weights is not None
               else _train_class_weights(ds, train_idx, cfg))
    grid = (int(ds.sizes["lat"]), int(ds.sizes["lon"]))
    sample_hw = tuple(cfg.crop) if cfg.crop is not None else grid
    if sample_hw[0] > grid[0] or sample_hw[1] > grid[1]:
        raise ConfigError(f"TrainConfig.crop: {list(sample_hw)} is larger than the grid "
                          f"{list(grid)}")
    # paths are reopened lazily by each DataLoader worker; a Dataset is used as is
    raw = data if data is not None else cfg.data
    source = (ds if isinstance(raw, xr.Dataset)
              else list(raw) if isinstance(raw, (tuple, list)) else raw)
    train_ds, sampler, train_loader, val_loader = _loaders(source, cfg, train_idx, val_idx,
                                                           rank, world_size)
    steps_per_epoch = len(train_loader) // cfg.grad_accum
    if cfg.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    if steps_per_epoch < 1:
        raise DataError(f"training data: {len(train_idx)} training time steps give no full "
                        f"optimizer step of {cfg.effective_batch_size(world_size)} samples")

    torch.manual_seed(cfg.seed)
    device = torch.device(device)
    in_channels = len(cfg.channels)
    net = models.build(cfg.model, preset=cfg.preset, in_channels=in_channels,
                       num_classes=cfg.num_classes, **cfg.model_overrides)
    flops = float(models.train_flops_per_sample(net, (in_channels, *sample_hw)))
    # normalization on the device, as the network's frozen first operation (in its state dict)
    net.set_normalization(normalizer, cfg.channels)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    state = TrainState(
        cfg=cfg, rank=rank, world_size=world_size, device=device,
        checkpoint_dir=Path(checkpoint_dir), normalizer=normalizer, weights=weights, grid=grid,
        train_idx=train_idx, val_idx=val_idx, train_ds=train_ds, sampler=sampler,
        train_loader=train_loader, val_loader=val_loader, steps_per_epoch=steps_per_epoch,
        net=net, optimizer=build_optimizer(net, cfg, world_size),
        amp=MixedPrecision(cfg.precision, device), loss_fn=build_loss(cfg, weights).to(device),
        schedule=WarmupDecay(steps_per_epoch, cfg.epochs, cfg.warmup_epochs,
                             cfg.warmup_start_factor, cfg.schedule, cfg.min_lr_factor,
                             cfg.lr_milestones, cfg.lr_gamma),
        peak_lr=cfg.scaled_lr(world_size), flops_per_sample=flops)
    apply_lr(state)
    return state


def restore(state: TrainState, payload: Mapping[str, Any] | None, source: Any = None) -> TrainState:
    """Stage 2: continue from a loaded checkpoint ``payload`` (from ``source``).

    Restores weights, optimizer, grad scaler, metrics history, epoch and step counts;
    the LR follows from the restored step and this run's peak (:func:`apply_lr`). The
    network keeps the normalization of ``state.normalizer`` (by default the checkpoint's
    own, see :func:`~climviz.training.loop.run_training`): a checkpoint written before
    the normalization moved into the network (no ``input_norm.*`` weights) resumes too.
    """
    from climviz.models.normalization import PREFIX
    from climviz.training.checkpoint import clean_state_dict

    if payload is None:
        return state
    cfg = state.cfg
    weights = {k: v for k, v in clean_state_dict(payload["model_state"]).items()
               if not k.startswith(PREFIX + ".")}
    norm = getattr(state.net, PREFIX, None)
    if isinstance(norm, torch.nn.Module):  # keep this run's normalization (state.normalizer)
        weights.update({f"{PREFIX}.{k}": v for k, v in norm.state_dict().items()})
    try:
        state.net.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: weights do not fit {cfg.model}/{cfg.preset} with "
                              f"overrides {cfg.model_overrides}: {e}") from e
    if payload.get("optimizer_state"):
        state.optimizer.load_state_dict(payload["optimizer_state"])
    state.amp.load_state_dict(payload.get("scaler_state"))
    state.history = [dict(r) for r in payload.get("metrics", [])]
    state.start_epoch = int(payload.get("epoch", 0))
    sched = payload.get("scheduler_state") or {}
    state.global_step = int(payload.get("global_step", sched.get("last_epoch", 0)))
    apply_lr(state)
    h = state.history
    state.target_time = float(next((r["time_to_target_s"] for r in h
                              if r.get("time_to_target_s") is not None
                              and not math.isnan(r["time_to_target_s"])), float("nan")))
    state.elapsed_offset = float(h[-1].get("elapsed_s", 0.0)) if h else 0.0
    state.best_miou = max((r.get("miou", float("nan")) for r in h
                           if not math.isnan(r.get("miou", float("nan")))), default=-1.0)
    if payload.get("best_epoch") is not None:
        state.best_epoch = int(payload["best_epoch"])
    return state
