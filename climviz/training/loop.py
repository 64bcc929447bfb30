"""The per-process training engine.

It runs as is (``train(..., use_ray=False)``) or on every Ray worker
(``train(..., use_ray=True)``).

A run is a :class:`~climviz.training.state.TrainState` passed through five stages, as
in Ray Train's examples:

1. :func:`~climviz.training.state.setup`: open the data, split it by time (validation =
   the last block of time steps), fit or reuse the normalization, compute class weights
   on the training split, build loaders, model, optimizer, LR schedule, mixed-precision
   helper and loss;
2. :func:`~climviz.training.state.restore`: continue from a checkpoint (weights,
   optimizer, grad scaler, history, epoch and step counts);
3. :func:`train_epoch`: one pass over this worker's shard of the training split;
4. :func:`validate`: loss and confusion matrix on this worker's share of the
   validation split;
5. :func:`end_epoch`: sum over workers, compute the metrics row, write a checkpoint
   (rank 0) and call ``report`` (every rank).

:func:`run_training` strings them together. With ``world_size > 1`` it expects
``torch.distributed`` to be initialised (Ray does it): the model is wrapped in DDP,
each worker sees distinct time steps (``DistributedSampler``; validation is sharded
without padding), and losses, sample counts and confusion matrices are summed over
workers before metrics are computed.

Divergence: a step whose loss is not finite is skipped (no weight update, as the
GradScaler does for overflowing gradients); ``cfg.max_nonfinite_steps`` consecutive
ones, or non-finite weights at the end of an epoch, stop the run with a
:class:`DivergenceError` naming the epoch and step, before any checkpoint of that
epoch is written.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import resource
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from climviz.data.schema import CLASS_KEYS
from climviz.errors import ConfigError
from climviz.training.checkpoint import load_checkpoint, nonfinite_tensors, save_checkpoint
from climviz.training.config import TrainConfig
from climviz.training.metrics import (
    all_reduce_sum,
    confusion_matrix,
    metrics_from_confusion,
)
from climviz.training.state import (
    TrainState,
    apply_lr,
    open_training_data,
    restore,
    scheduler_state,
    setup,
)

__all__ = [
    "DevicePrefetcher",
    "DivergenceError",
    "EpochTotals",
    "TrainState",
    "end_epoch",
    "epoch_dir",
    "open_training_data",
    "restore",
    "run_training",
    "setup",
    "train_epoch",
    "validate",
    "wrap_model",
]

ReportFn = Callable[[dict, "Path | None"], None]
StepFn = Callable[[dict], None]


class DivergenceError(ConfigError):
    """Training diverged: non-finite losses or weights (lower the learning rate)."""


@dataclass
class EpochTotals:
    """Sums of one worker over one epoch's training or validation batches."""

    loss_sum: torch.Tensor
    samples: int
    seconds: float = 0.0
    confusion: torch.Tensor | None = None


def epoch_dir(checkpoint_dir: str | os.PathLike, epoch: int) -> Path:
    """``checkpoint_dir/epoch_XXXX`` for a completed epoch (1-based)."""
    return Path(checkpoint_dir) / f"epoch_{epoch:04d}"


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101) % (2**63 - 1)


def _default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
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


class DevicePrefetcher:
    """Batches ``(x, y)`` already on ``device``, the next one copied while this one is used.

    On CUDA the copy of batch ``k + 1`` is started with ``non_blocking=True`` on a side
    stream (from the loader's pinned memory, so it overlaps the model's work on batch
    ``k``); the compute stream waits for it before the batch is handed out, and the
    tensors are marked as used by that stream so the caching allocator does not reuse
    their memory early. On other devices the same look-ahead runs with plain copies
    (``non_blocking`` is then a no-op).

    Parameters
    ----------
    batches
        Iterable of ``(x, y)`` CPU tensors (a DataLoader, or a slice of one).
    device
        Where the model runs.
    channels_last
        Convert ``x`` to channels-last memory format on the device.

    Examples
    --------
    >>> import torch
    >>> from climviz.training.loop import DevicePrefetcher
    >>> batches = [(torch.full((1, 2, 4, 4), float(i)), torch.zeros(1, 4, 4, dtype=torch.long)) for i in range(3)]
    >>> [float(x[0, 0, 0, 0]) for x, _ in DevicePrefetcher(batches, torch.device("cpu"))]
    [0.0, 1.0, 2.0]
    """

    def __init__(self, batches: Iterable[Any], device: torch.device, channels_last: bool = False) -> None:
        self.batches = batches
        self.device = torch.device(device)
        self.channels_last = bool(channels_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dev = self.device
        side = torch.cuda.Stream(dev) if dev.type == "cuda" else None
        it = iter(self.batches)

        def start(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
            x, y = batch
            if side is None:
                return _to_device(x, y, dev, self.channels_last)
            with torch.cuda.stream(side):
                return _to_device(x, y, dev, self.channels_last)

        nxt = next(it, None)
        pending = None if nxt is None else start(nxt)
        while pending is not None:
            x, y = pending
            if side is not None:
                main = torch.cuda.current_stream(dev)
                main.wait_stream(side)
                x.record_stream(main)
                y.record_stream(main)
            nxt = next(it, None)
            pending = None if nxt is None else start(nxt)  # overlaps the caller's work on (x, y)
            yield x, y


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def wrap_model(state: TrainState) -> TrainState:
    """Wrap the bare model for training (DDP with several workers, ``torch.compile``)."""
    model: Any = state.net
    if state.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        dev = state.device
        model = DDP(state.net, device_ids=[dev.index] if dev.type == "cuda" else None)
    if state.cfg.compile:
        model = torch.compile(model)
    state.model = model
    state.eval_model = torch.compile(state.net) if state.cfg.compile else state.net
    return state


def _start_epoch(state: TrainState, epoch: int) -> None:
    # reseed augmentation by (seed, epoch, rank) at each epoch: random crops and rolls
    # (in this process or in fresh loader workers) are then the same whether or not
    # the run was interrupted and resumed
    cfg = state.cfg
    torch.manual_seed(_epoch_seed(cfg.seed, epoch, state.rank))
    s = _epoch_seed(cfg.seed, epoch, state.rank) % 2**31
    state.train_ds.seed = s
    if state.train_loader.generator is not None:
        state.train_loader.generator.manual_seed(s)
    state.sampler.set_epoch(epoch)
    if state.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(state.device)


def _micro_batches(state: TrainState) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(micro-batch number, x, y)`` on the device, for at most one epoch of steps."""
    n = state.steps_per_epoch * state.cfg.grad_accum
    batches = DevicePrefetcher(itertools.islice(state.train_loader, n), state.device,
                               state.cfg.channels_last)
    for micro, (x, y) in enumerate(batches):
        yield micro, x, y


def _check_finite_loss(state: TrainState, finite: bool, epoch: int, step: int,
                       loss: float) -> None:
    """Count consecutive non-finite steps (agreed by all workers); stop past the limit."""
    if state.distributed:
        flag = torch.tensor([0.0 if finite else 1.0], dtype=torch.float64, device=state.device)
        finite = float(all_reduce_sum(flag)[0]) == 0.0
    state.nonfinite_streak = 0 if finite else state.nonfinite_streak + 1
    limit = state.cfg.max_nonfinite_steps
    if limit is not None and state.nonfinite_streak >= limit:
        raise DivergenceError(
            f"training diverged at epoch {epoch + 1}, step {step} (global step "
            f"{state.global_step}): the loss was not finite ({loss}) for {state.nonfinite_streak} "
            f"consecutive optimizer steps (TrainConfig.max_nonfinite_steps="
            f"{limit}); lower the learning rate (TrainConfig.lr={state.cfg.lr:g}), add "
            f"warm-up or gradient clipping; no checkpoint of this epoch was written")


def train_epoch(state: TrainState, epoch: int, step_callback: StepFn | None = None) -> EpochTotals:
    """Stage 3: one epoch of optimizer steps on this worker's shard (0-based ``epoch``)."""
    cfg, amp = state.cfg, state.amp
    _start_epoch(state, epoch)
    state.model.train()
    _sync(state.device)
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=state.device)
    n_samples, step, finite = 0, 0, True
    order = list(iter(state.sampler))          # this rank's dataset indices, in batch order
    step_times: list[int] = []
    state.optimizer.zero_grad(set_to_none=True)
    for micro, x, y in _micro_batches(state):
        last_micro = (micro + 1) % cfg.grad_accum == 0
        sync_ctx = (state.model.no_sync() if state.distributed and not last_micro
                    and hasattr(state.model, "no_sync") else contextlib.nullcontext())
        with sync_ctx:
            with amp.autocast():
                logits = state.model(x)
            loss = state.loss_fn(logits, y)
            amp.backward(loss / cfg.grad_accum)
        finite = finite and bool(torch.isfinite(loss.detach()))
        loss_sum += loss.detach().double() * x.shape[0]
        if step_callback is not None:
            first = micro * cfg.batch_size
            step_times.extend(int(state.train_idx[i]) for i in order[first:first + x.shape[0]])
        n_samples += x.shape[0]
        if not last_micro:
            continue
        if finite or amp.scaler is not None:    # the scaler skips (and rescales) on its own
            applied = amp.step(state.optimizer, clip_norm=cfg.grad_clip)
        else:
            applied = False
            amp.skipped_steps += 1
        state.optimizer.zero_grad(set_to_none=True)
        state.global_step += 1
        step += 1
        apply_lr(state)
        _check_finite_loss(state, finite, epoch, step, float(loss.detach()))
        finite = True
        if step_callback is not None:
            step_callback({"epoch": epoch + 1, "step": step,
                           "steps_per_epoch": state.steps_per_epoch,
                           "global_step": state.global_step, "loss": float(loss.detach()),
                           "lr": state.optimizer.param_groups[0]["lr"],
                           "batch_size": len(step_times), "time_indices": step_times,
                           "applied": applied, "rank": state.rank,
                           "world_size": state.world_size})
            step_times = []
    _sync(state.device)
    return EpochTotals(loss_sum, n_samples, time.perf_counter() - t0)


def validate(state: TrainState) -> EpochTotals:
    """Stage 4: loss sum and confusion matrix on this worker's share of the validation split."""
    cfg = state.cfg
    if state.distributed:
        # BatchNorm running statistics drift apart on each worker's own batches:
        # average them so every worker (and the checkpoint) holds the same model
        _average_buffers(state.net, state.world_size)
    state.model.eval()
    state.eval_model.eval()
    cm = torch.zeros((cfg.num_classes, cfg.num_classes), dtype=torch.int64, device=state.device)
    val_sum = torch.zeros((), dtype=torch.float64, device=state.device)
    n_val = 0
    with torch.no_grad():
        for x, y in DevicePrefetcher(state.val_loader, state.device, cfg.channels_last):
            with state.amp.autocast():
                logits = state.eval_model(x)
            val_sum += state.loss_fn(logits, y).double() * x.shape[0]
            n_val += x.shape[0]
            cm += confusion_matrix(logits.argmax(1), y, cfg.num_classes)
    return EpochTotals(val_sum, n_val, confusion=cm)


def _metrics_row(state: TrainState, epoch: int, train: EpochTotals, val: EpochTotals,
                 t0: float) -> dict[str, Any]:
    """The epoch's metrics row, from the sums over all workers."""
    cfg, dev = state.cfg, state.device

    def f64(v: float) -> torch.Tensor:
        return torch.tensor(float(v), dtype=torch.float64, device=dev)

    totals = all_reduce_sum(torch.stack([train.loss_sum, f64(train.samples), val.loss_sum,
                                         f64(val.samples), f64(train.seconds)]))
    assert val.confusion is not None, "validate() fills the confusion matrix"
    cm = all_reduce_sum(val.confusion)
    _sync(dev)
    t = totals.cpu().tolist()
    mean_train_time = t[4] / state.world_size
    images_per_s = t[1] / mean_train_time if mean_train_time > 0 else float("nan")
    elapsed = state.elapsed_offset + (time.perf_counter() - state.run_start)
    quality = metrics_from_confusion(cm.cpu(), CLASS_KEYS if cfg.num_classes == 3
                                     else tuple(str(i) for i in range(cfg.num_classes)))
    if (cfg.target_miou is not None and math.isnan(state.target_time)
            and quality["miou"] >= cfg.target_miou):
        state.target_time = elapsed
    return {
        "epoch": epoch + 1, "global_step": state.global_step,
        "train_loss": t[0] / t[1] if t[1] else float("nan"),
        "val_loss": t[2] / t[3] if t[3] else float("nan"),
        **quality,
        "images_per_s": images_per_s, "flops_per_s": images_per_s * state.flops_per_sample,
        "lr": float(state.optimizer.param_groups[0]["lr"]),
        "epoch_time_s": time.perf_counter() - t0, "train_time_s": mean_train_time,
        "elapsed_s": elapsed, "peak_memory_mb": _peak_memory_mb(dev),
        "skipped_steps": state.amp.skipped_steps, "world_size": state.world_size,
        "time_to_target_s": state.target_time, "samples": int(t[1]),
        "global_batch_size": state.global_batch_size, "precision": state.amp.name,
        "train_flops_per_sample": state.flops_per_sample,
    }


def _check_finite_weights(state: TrainState, epoch: int) -> None:
    """Stop before a checkpoint with non-finite weights or statistics could be written."""
    bad = nonfinite_tensors(state.net.state_dict())
    if bad:
        first = next(iter(bad))
        raise DivergenceError(
            f"training diverged in epoch {epoch + 1} (global step {state.global_step}): "
            f"{len(bad)} weight/statistics tensor(s) hold {sum(bad.values())} non-finite "
            f"values (first: {first}); "
            f"lower the learning rate (TrainConfig.lr={state.cfg.lr:g}), add warm-up or "
            f"gradient clipping; no checkpoint of this epoch was written")


def _save(state: TrainState, epoch: int) -> Path:
    cfg = state.cfg
    ckpt = epoch_dir(state.checkpoint_dir, epoch + 1)
    save_checkpoint(ckpt, {
        "model": cfg.model, "preset": cfg.preset,
        "model_kwargs": {"in_channels": len(cfg.channels), "num_classes": cfg.num_classes,
                         "overrides": dict(cfg.model_overrides)},
        "channels": list(cfg.channels),
        "normalizer": state.normalizer.to_dict(),
        "config": cfg.to_dict(),
        "grid": list(state.grid),
        "epoch": epoch + 1,
        "global_step": state.global_step,
        "metrics": state.history,
        "best_epoch": state.best_epoch,
        "class_weights": [float(w) for w in state.weights],
        "model_state": state.net.state_dict(),
        "optimizer_state": state.optimizer.state_dict(),
        "scheduler_state": scheduler_state(state),
        "scaler_state": state.amp.state_dict(),
    })
    _prune(state.checkpoint_dir, cfg.keep_checkpoints, keep_epoch=state.best_epoch)
    return ckpt


def end_epoch(state: TrainState, epoch: int, train: EpochTotals, val: EpochTotals, t0: float,
              report: ReportFn | None = None) -> dict[str, Any]:
    """Stage 5: metrics row (summed over workers), checkpoint (rank 0), ``report``."""
    row = _metrics_row(state, epoch, train, val, t0)
    state.history.append(row)
    if not math.isnan(row["miou"]) and row["miou"] > state.best_miou:
        state.best_miou, state.best_epoch = row["miou"], epoch + 1
    _check_finite_weights(state, epoch)
    ckpt: Path | None = None
    last = epoch + 1 == state.cfg.epochs
    if state.rank == 0 and ((epoch + 1) % state.cfg.checkpoint_every == 0 or last):
        ckpt = _save(state, epoch)
    if report is not None:
        report(dict(row), ckpt)
    return row


@contextlib.contextmanager
def _determinism(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    prev_deterministic = torch.are_deterministic_algorithms_enabled()
    prev_benchmark = torch.backends.cudnn.benchmark
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        if cfg.deterministic:
            torch.use_deterministic_algorithms(prev_deterministic)
        torch.backends.cudnn.benchmark = prev_benchmark


def _check_world(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"run_training: rank {rank} is not in 0..world_size-1 "
                          f"(world_size={world_size})")
    if world_size > 1:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ConfigError(f"run_training: world_size={world_size} needs torch.distributed "
                              f"to be initialised (use train(..., use_ray=True))")


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

    Raises
    ------
    DivergenceError
        ``cfg.max_nonfinite_steps`` consecutive non-finite losses, or non-finite
        weights at the end of an epoch.
    """
    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig.from_dict(cfg) if isinstance(cfg, Mapping) else cfg
    _check_world(rank, world_size)
    device = torch.device(device) if device is not None else _default_device()
    payload = None
    if resume_from is not None:
        payload = load_checkpoint(resume_from, map_location="cpu",
                                  expect_model=(cfg.model, cfg.preset),
                                  expect_channels=cfg.channels)
        if normalizer is None and payload.get("normalizer"):
            normalizer = payload["normalizer"]
    with _determinism(cfg, device):
        _seed_everything(cfg.seed)
        state = setup(cfg, data, normalizer=normalizer, rank=rank, world_size=world_size,
                      device=device, checkpoint_dir=checkpoint_dir,
                      class_weights=None if payload is None else payload.get("class_weights"))
        restore(state, payload, resume_from)
        wrap_model(state)
        state.run_start = time.perf_counter()
        for epoch in range(state.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            train = train_epoch(state, epoch, step_callback)
            val = validate(state)
            end_epoch(state, epoch, train, val, t0, report)
        return state.history


def _average_buffers(net: torch.nn.Module, world_size: int) -> None:
    """Average floating-point buffers (BatchNorm running mean/var) over all workers.

    The frozen input normalization (``input_norm.*``, the same on every worker) is left
    as it is.
    """
    from climviz.models.normalization import PREFIX

    bufs = [b for name, b in net.named_buffers() if b.is_floating_point()
            and not name.startswith(PREFIX + ".")]
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
