"""PyTorch side of the data layer: a Dataset over a run, a loader helper, time splits.

:class:`SegmentationDataset` reads one time step at a time. It is safe with
``DataLoader(num_workers > 0)``: a dataset built from paths reopens the files
lazily in each worker process (file handles are never shared between
processes), and random augmentations draw from a generator seeded per worker
and epoch by the DataLoader.
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr
from torch.utils.data import DataLoader, Dataset

from climviz.data.normalize import Normalizer
from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.errors import ConfigError, DataError

__all__ = ["SegmentationDataset", "make_loader", "time_split"]


def time_split(n_times: int, val_fraction: float = 0.2, *, gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split time steps into a training block and a validation block (the last one).

    Consecutive 3-hourly fields are strongly correlated, so validation is a contiguous
    block at the end of the run, never a random subset of steps or pixels.

    Parameters
    ----------
    n_times
        Number of time steps.
    val_fraction
        Fraction of steps (rounded up, at least 1 when > 0) in the validation block.
    gap
        Steps left out between the blocks (to reduce leakage through autocorrelation).

    Returns
    -------
    train_indices, val_indices
        int64 arrays of time indices.

    Examples
    --------
    >>> from climviz.data import time_split
    >>> [a.tolist() for a in time_split(10)]
    [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]]
    >>> [a.tolist() for a in time_split(10, gap=1)]  # step 7 left out
    [[0, 1, 2, 3, 4, 5, 6], [8, 9]]
    """
    if int(n_times) != n_times or n_times < 1:
        raise ConfigError(f"time_split: n_times must be a positive integer, got {n_times!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"time_split: val_fraction must be in [0, 1), got {val_fraction!r}")
    if gap < 0:
        raise ConfigError(f"time_split: gap must be >= 0, got {gap!r}")
    n = int(n_times)
    n_val = 0 if val_fraction == 0 else max(1, int(np.ceil(n * val_fraction)))
    n_train = n - n_val - (gap if n_val else 0)
    if n_train < 1:
        raise ConfigError(
            f"time_split: n_times={n} leaves no training steps with val_fraction={val_fraction} and gap={gap}"
        )
    return np.arange(n_train, dtype=np.int64), np.arange(n - n_val, n, dtype=np.int64)


class SegmentationDataset(Dataset):
    """Time steps of a run as ``(x, y)`` tensors for segmentation.

    Parameters
    ----------
    data
        An ``xr.Dataset`` (e.g. from :func:`climviz.open_run` or
        :func:`climviz.synthetic_run`) or anything :func:`climviz.open_run` accepts (paths
        are reopened lazily in each worker process).
    channels
        Input channels, in the order of ``x``'s first axis.
    normalizer
        Applied to ``x`` (``(x - mean) / std``); ``None`` gives raw values. A normalizer
        with other channels is reduced to ``channels`` (DataError if one is missing).
    time_indices
        Time steps served (indices into the run), e.g. from :func:`time_split`.
    crop
        ``(h, w)``: a random ``h x w`` window per sample (latitude rows without wrapping;
        longitude columns wrap around the globe). ``None``: the whole grid.
    random_roll
        Roll the fields and labels by a random number of longitude columns (the globe is
        periodic in longitude, so this is a valid augmentation).
    labels
        Return ``(x, y)``; with ``False`` only ``x``.
    seed
        Seed of the augmentation generator in the main process; in DataLoader workers the
        generator is seeded from the worker's torch seed (set by :func:`make_loader`).
    nan_fill
        Value given to masked (NaN) inputs after normalization (0 = the channel mean;
        without a normalizer, the raw value). ``None`` leaves them NaN: what training
        uses, where the network's frozen
        :class:`~climviz.models.normalization.Normalize` fills them on the device.
    open_kwargs
        Options for :func:`climviz.open_run` when ``data`` are paths, e.g.
        ``{"nan_policy": "mask"}``.

    Notes
    -----
    ``x`` is a float32 tensor ``(C, H, W)``, ``y`` an int64 tensor ``(H, W)`` with classes
    0 background, 1 TC, 2 AR.

    Training and prediction read raw fields (``normalizer=None, nan_fill=None``) and
    normalize on the device inside the network, whose checkpoint carries the
    statistics; ``normalizer=`` is for users who want normalized tensors.

    With ``open_run``'s default ``nan_policy="raise"``, a time step read from files is
    checked for NaN/inf (a :class:`~climviz.errors.DataError` naming file, variable and
    step) the first time this dataset reads it; later epochs re-read it without
    repeating the check (the files are assumed not to change while training). The
    record of checked steps is shared with the loader's worker processes.

    Examples
    --------
    >>> from climviz.data import SegmentationDataset, make_loader
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> train = SegmentationDataset(ds, normalizer=cv.Normalizer.fit(ds), time_indices=[0, 1, 2],
    ...                             crop=(16, 16), random_roll=True, seed=0)
    >>> x, y = train[0]
    >>> len(train), tuple(x.shape), x.dtype, tuple(y.shape), y.dtype
    (3, (16, 16, 16), torch.float32, (16, 16), torch.int64)
    >>> xb, yb = next(iter(make_loader(train, batch_size=2)))
    >>> tuple(xb.shape), tuple(yb.shape)
    ((2, 16, 16, 16), (2, 16, 16))
    """

    def __init__(
        self,
        data: xr.Dataset | Any,
        channels: Sequence[str] = CHANNELS,
        normalizer: Normalizer | None = None,
        time_indices: Sequence[int] | np.ndarray | None = None,
        crop: tuple[int, int] | None = None,
        random_roll: bool = False,
        labels: bool = True,
        seed: int = 0,
        nan_fill: float | None = 0.0,
        open_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.channels = tuple(channels)
        self.open_kwargs = dict(open_kwargs or {})
        if isinstance(data, xr.Dataset):
            self._paths = None
            ds = data
        else:
            from climviz.data.io import open_run

            self._paths = [str(p) for p in data] if isinstance(data, (list, tuple)) else str(data)
            ds = open_run(self._paths, channels=self.channels, **self.open_kwargs)
        missing = [c for c in self.channels if c not in ds]
        if missing:
            src = ds.attrs.get("source_files") or ["<dataset>"]
            raise DataError(f"{src[0]}: missing channel(s) {missing}; found {list(ds.data_vars)}")
        if labels and LABEL_VAR not in ds:
            src = ds.attrs.get("source_files") or ["<dataset>"]
            raise DataError(f"{src[0]}: variable {LABEL_VAR}: expected labels (labels=True), found none")
        self._ds: xr.Dataset | None = ds
        self._pid = os.getpid()
        n = ds.sizes["time"]
        self.shape = (ds.sizes["lat"], ds.sizes["lon"])
        idx = np.arange(n) if time_indices is None else np.asarray(time_indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DataError(f"SegmentationDataset: time_indices must be in [0, {n}), found {idx.min()}..{idx.max()}")
        self.time_indices = idx
        self.normalizer = None if normalizer is None else normalizer.select(self.channels)
        if crop is not None:
            h, w = (int(crop[0]), int(crop[1]))
            if not (0 < h <= self.shape[0] and 0 < w <= self.shape[1]):
                raise ConfigError(f"SegmentationDataset: crop {crop} must fit in the grid {self.shape}")
            crop = (h, w)
        self.crop = crop
        self.random_roll = bool(random_roll)
        self.labels = bool(labels)
        self.seed = int(seed)
        self.nan_fill = None if nan_fill is None else float(nan_fill)
        # time steps of the run already read with open_run's checks (1 = checked, all finite)
        self._checked = torch.zeros(n, dtype=torch.uint8)
        self._checkable: bool | None = None  # the run's reads raise on NaN/inf (decided on first read)
        self._rng_key: tuple[int, int] | None = None
        self._rng: np.random.Generator | None = None
        self._scratch: np.ndarray | None = None
        if self.normalizer is not None:
            self._mean = self.normalizer.mean.astype(np.float32)[:, None, None]
            self._inv_std = (1.0 / self.normalizer.std).astype(np.float32)[:, None, None]

    # -------------------------------------------------------------- worker safety
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._paths is not None:
            state["_ds"] = None  # reopened lazily in the receiving process
        state["_rng"] = None
        state["_rng_key"] = None
        state["_scratch"] = None
        state["_checkable"] = None
        return state

    def share_checked(self) -> None:
        """Move the record of checked time steps to shared memory (before workers start)."""
        if not self._checked.is_shared():
            self._checked.share_memory_()

    def _needs_check(self, t: int) -> bool:
        """Whether step ``t`` must be read with open_run's value checks (see Notes)."""
        if self._checkable is None:
            from climviz.data import io

            spec_of = getattr(io, "_spec_of", None)  # direct-read spec of open_run's files (else None)
            spec = spec_of(self.ds, self.channels[0], t) if spec_of is not None else None
            self._checkable = getattr(spec, "policy", None) == "raise"
        return not (self._checkable and self._checked[t])

    # -------------------------------------------------------------- sample buffers
    def make_buffers(self, num_workers: int, slots: int) -> _Buffers | None:
        """Reusable shared-memory sample buffers: ``slots`` for each of ``num_workers`` workers.

        Used by :func:`make_loader`: a worker fills a free buffer and sends only its
        number; the loader copies it into the batch in the main process and frees it.
        This avoids a fresh shared-memory segment per sample (page-faulting 57 MB of
        4 KiB shared pages costs more than reading the file). Each loader has its own
        buffers; when all are busy a sample goes through fresh shared memory.
        """
        if self.crop is not None or num_workers < 1 or slots < 1:
            return None
        fields = _shared_empty((num_workers, slots, len(self.channels), *self.shape))
        labels = (torch.zeros((num_workers, slots, *self.shape), dtype=torch.uint8).share_memory_()
                  if self.labels else None)
        flags = torch.zeros((num_workers, slots), dtype=torch.int32).share_memory_()
        return _Buffers(fields, labels, flags)

    @staticmethod
    def _acquire(buffers: _Buffers | None, worker: int) -> int | None:
        if buffers is None or worker >= buffers.flags.shape[0]:
            return None
        flags = buffers.flags[worker].numpy()
        for _ in range(10):  # the main process frees buffers as it consumes batches
            free = np.flatnonzero(flags == 0)
            if free.size:
                slot = int(free[0])
                flags[slot] = 2
                return slot
            time.sleep(0.002)
        return None  # all busy (e.g. an abandoned iterator): fall back to fresh shared memory

    @property
    def ds(self) -> xr.Dataset:
        """The run (reopened from its paths in a new process)."""
        if self._ds is None or (self._paths is not None and self._pid != os.getpid()):
            from climviz.data.io import open_run

            assert self._paths is not None  # the run is dropped on pickling only when it has paths
            self._ds = open_run(self._paths, channels=self.channels, **self.open_kwargs)
            self._pid = os.getpid()
        return self._ds

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), self.seed if info is None else int(info.seed))
        if self._rng is None or self._rng_key != key:
            self._rng = np.random.default_rng(key[1])
            self._rng_key = key
        return self._rng

    # -------------------------------------------------------------- reading
    def __len__(self) -> int:
        return int(self.time_indices.size)

    def read(self, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw fields ``(C, H, W)`` float32 and labels ``(H, W)`` (or None) of run time step ``t``."""
        from climviz.data.io import read_step

        names = [*self.channels] + ([LABEL_VAR] if self.labels else [])
        return read_step(self.ds, t, names)

    def __getitem__(self, i: int):
        return self._get(i, None)

    def _get(self, i: int, buffers: _Buffers | None):
        from climviz.data.io import read_step

        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} time steps")
        t = int(self.time_indices[i])
        shape = (len(self.channels), *self.shape)
        info = torch.utils.data.get_worker_info()
        slot = self._acquire(buffers, info.id) if info is not None and self.crop is None else None
        rng = self._generator() if (self.crop is not None or self.random_roll) else None
        shift = int(rng.integers(0, self.shape[1])) if rng is not None and self.random_roll else 0
        # where the fields go: a reusable worker buffer, fresh shared memory (worker), or plain memory
        xt = None
        dest: np.ndarray | None
        if slot is not None:
            assert buffers is not None and info is not None  # a slot is taken only in a worker with buffers
            dest = buffers.fields[info.id, slot].numpy()
        elif self.crop is None and info is not None:
            xt = _shared_empty(shape)
            dest = xt.numpy()
        elif self.crop is None:
            dest = np.empty(shape, np.float32)
        else:
            dest = None  # a crop makes a new (small) array anyway
        if dest is not None and shift == 0:  # read straight into place
            out = dest
        else:  # read into a per-process scratch buffer, then crop/roll into place
            if self._scratch is None or self._scratch.shape != shape:
                self._scratch = np.empty(shape, np.float32)
            out = self._scratch
        names = [*self.channels] + ([LABEL_VAR] if self.labels else [])
        norm = self.normalizer is not None
        check = self._needs_check(t)
        try:
            x, y = read_step(self.ds, t, names, out, check=check,
                             offset=self._mean[:, 0, 0] if norm else None,
                             scale=self._inv_std[:, 0, 0] if norm else None, fill_value=self.nan_fill)
            if check and self._checkable:
                self._checked[t] = 1  # passed: nan_policy="raise" found no NaN/inf
        except BaseException:
            if slot is not None:
                assert buffers is not None and info is not None
                buffers.flags[info.id, slot] = 0
            raise
        if self.crop is not None:
            H, W = self.shape
            h, w = self.crop
            assert rng is not None  # drawn above whenever there is a crop
            r0 = int(rng.integers(0, H - h + 1))
            c0 = int(rng.integers(0, W))  # any start column: the window may wrap around 360
            cols = (np.arange(c0, c0 + w) - shift) % W
            rows = slice(r0, r0 + h)
            x = x[:, rows][:, :, cols]
            y = None if y is None else y[rows][:, cols]
        elif shift:
            assert dest is not None  # no crop: dest is set above
            dest[..., shift:] = x[..., :-shift]
            dest[..., :shift] = x[..., -shift:]
            x = dest
            y = None if y is None else np.roll(y, shift, axis=-1)
        if slot is not None:
            assert buffers is not None and info is not None
            ref = _SlotRef(info.id, slot)
            if not self.labels:
                buffers.flags[info.id, slot] = 1
                return ref
            assert buffers.labels is not None and y is not None  # labels read, and buffered, for this dataset
            np.copyto(buffers.labels[info.id, slot].numpy(), y, casting="unsafe")  # values checked: 0..2
            buffers.flags[info.id, slot] = 1
            return ref, _SlotRef(info.id, slot, labels=True)
        if xt is None:
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if not self.labels:
            return xt
        return xt, torch.from_numpy(np.ascontiguousarray(y).astype(np.int64, copy=False))

    def __repr__(self) -> str:
        return (f"SegmentationDataset({len(self)} steps, grid {self.shape}, {len(self.channels)} channels, "
                f"crop={self.crop}, random_roll={self.random_roll}, normalized={self.normalizer is not None})")


def _shared_empty(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised float32 tensor in shared memory (no copy, unlike ``share_memory_()``)."""
    try:
        st = torch.UntypedStorage._new_shared(int(np.prod(shape)) * 4)
        return torch.empty(0, dtype=torch.float32).set_(st, 0, shape)  # type: ignore[call-overload]  # stride is optional at runtime; the stub requires it
    except (AttributeError, RuntimeError, TypeError):  # private API changed: the documented way
        return torch.empty(shape, dtype=torch.float32).share_memory_()


@dataclass
class _Buffers:
    fields: torch.Tensor  # (workers, slots, C, H, W) float32, shared memory
    labels: torch.Tensor | None  # (workers, slots, H, W) uint8
    flags: torch.Tensor  # (workers, slots) int32: 0 free, 2 being filled, 1 ready to collect


class _BufferedDataset(Dataset):
    """A SegmentationDataset seen through one loader's shared sample buffers."""

    def __init__(self, base: SegmentationDataset, buffers: _Buffers) -> None:
        self.base = base
        self.buffers = buffers

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        return self.base._get(i, self.buffers)

    def __getattr__(self, name: str):  # time_indices, shape, channels... of the wrapped dataset
        if name in ("base", "buffers") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)


@dataclass(frozen=True)
class _SlotRef:
    """A sample left in worker ``worker``'s shared buffer ``slot`` (see make_buffers)."""

    worker: int
    slot: int
    labels: bool = False


@dataclass(frozen=True)
class _SlotBatch:
    refs: tuple[_SlotRef, ...]


def _collate(batch: list):
    """default_collate, with two exceptions.

    Samples left in shared buffers are collected in the main process, and batches of one
    shared-memory sample are passed on as a view, without another copy.
    """
    from torch.utils.data import default_collate

    item = batch[0]
    parts = item if isinstance(item, tuple) else (item,)
    if isinstance(parts[0], _SlotRef):
        cols = [[b[k] if isinstance(b, tuple) else b for b in batch] for k in range(len(parts))]
        out = tuple(_SlotBatch(tuple(c)) if isinstance(c[0], _SlotRef) else default_collate(c) for c in cols)
        return out if isinstance(item, tuple) else out[0]
    if len(batch) == 1 and isinstance(parts[0], torch.Tensor) and parts[0].is_shared():
        out = tuple(p.unsqueeze(0) if isinstance(p, torch.Tensor) else default_collate([p]) for p in parts)
        return out if isinstance(item, tuple) else out[0]
    return default_collate(batch)


def _release(flags: np.ndarray, worker: int, slot: int) -> None:
    flags[worker, slot] = 0


class _BufferedLoader(DataLoader):
    """DataLoader that turns samples left in workers' shared buffers into batch tensors.

    A batch of one sample is handed out without a copy: the tensor is a view of the
    worker's buffer, and the buffer goes back to the worker only when that tensor (and
    every view or ``.numpy()`` array of it) has been garbage-collected, so a batch stays
    valid however long the caller keeps it. Larger batches (and labels, which become
    int64) are copied into fresh private memory and the buffers are freed at once.
    Buffer states: 0 free, 2 being filled, 1 ready, 3 lent to the caller.
    """

    def __iter__(self):
        assert isinstance(self.dataset, _BufferedDataset)  # made only around one (see make_loader)
        flags = self.dataset.buffers.flags.numpy()
        flags[flags == 1] = 0  # buffers left by an abandoned iterator
        for batch in super().__iter__():
            yield self._resolve(batch)

    def _resolve(self, batch):
        if isinstance(batch, _SlotBatch):
            return self._gather([batch])[0]
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], _SlotBatch):
            return tuple(self._gather(list(batch)))
        return batch

    def _gather(self, parts: list) -> list:
        assert isinstance(self.dataset, _BufferedDataset)
        buf = self.dataset.buffers
        flags = buf.flags.numpy()
        pin = self.pin_memory and torch.cuda.is_available()
        out, lent = [], set()
        for part in parts:
            if not isinstance(part, _SlotBatch):
                out.append(part)
                continue
            labels = part.refs[0].labels
            held = buf.labels if labels else buf.fields
            assert held is not None  # label refs exist only when label buffers do
            src = held.numpy()
            if not labels and not pin and len(part.refs) == 1:
                r = part.refs[0]
                view = src[r.worker, r.slot][None]  # a new ndarray object over the buffer
                flags[r.worker, r.slot] = 3
                # torch.from_numpy keeps `view` alive exactly as long as the tensor's storage
                weakref.finalize(view, _release, flags, r.worker, r.slot)
                lent.add((r.worker, r.slot))
                out.append(torch.from_numpy(view))
                continue
            # one copy, straight into (pinned, with CUDA) batch memory
            t = torch.empty((len(part.refs), *src.shape[2:]), dtype=torch.int64 if labels else torch.float32,
                            pin_memory=pin)
            arr = t.numpy()
            for k, r in enumerate(part.refs):
                np.copyto(arr[k], src[r.worker, r.slot], casting="unsafe")
            out.append(t)
        for part in parts:  # free the copied buffers only once every part is copied
            if isinstance(part, _SlotBatch):
                for r in part.refs:
                    if (r.worker, r.slot) not in lent:
                        flags[r.worker, r.slot] = 0
        return out


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # each worker is one reader; leave the cores to the model


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    sampler: Any = None,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    drop_last: bool = False,
    seed: int = 0,
    prefetch_factor: int | None = None,
    persistent_workers: bool | None = None,
    multiprocessing_context: str | None = None,
    buffers: bool = True,
) -> DataLoader:
    """A DataLoader with sensible defaults for climate segmentation.

    Parameters
    ----------
    dataset
        Usually a :class:`SegmentationDataset`.
    batch_size
        Samples per batch.
    shuffle, sampler
        As in :class:`torch.utils.data.DataLoader` (a sampler, e.g. ``DistributedSampler``,
        excludes ``shuffle``).
    num_workers
        Reader processes (0 = read in this process).
    pin_memory
        Default: True when CUDA is available (faster host-to-GPU copies).
    drop_last
        Drop the last incomplete batch.
    seed
        Seeds the shuffling order and the workers' augmentation generators, so a run is
        reproducible.
    prefetch_factor, persistent_workers, multiprocessing_context
        Passed on (defaults: 2 batches per worker, workers kept across epochs).
    buffers
        With workers and a :class:`SegmentationDataset` without crops: give each worker
        ``prefetch_factor * batch_size + 2`` reusable shared-memory sample buffers
        (57 MB each at 768 x 1152 x 16), see :meth:`SegmentationDataset.make_buffers`;
        ``loader.dataset`` is then a thin wrapper that forwards attributes to ``dataset``.

    Returns
    -------
    torch.utils.data.DataLoader

    Examples
    --------
    4 time steps in batches of 3: ``(fields, labels)`` of shapes ``(3, 2, 32, 48)`` and
    ``(3, 32, 48)``, then the remaining step:

    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> loader = cv.data.make_loader(cv.data.SegmentationDataset(ds, channels=["TMQ", "PSL"]), batch_size=3)
    >>> [(tuple(x.shape), tuple(y.shape)) for x, y in loader]
    [((3, 2, 32, 48), (3, 32, 48)), ((1, 2, 32, 48), (1, 32, 48))]
    >>> x, y = next(iter(loader))
    >>> x.dtype, y.dtype, bool((x[0, 0].numpy() == ds["TMQ"][0].values).all())  # no normalizer: raw
    (torch.float32, torch.int64, True)
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"make_loader: batch_size must be a positive integer, got {batch_size!r}")
    if num_workers < 0:
        raise ConfigError(f"make_loader: num_workers must be >= 0, got {num_workers!r}")
    if sampler is not None and shuffle:
        raise ConfigError("make_loader: pass either shuffle=True or a sampler, not both")
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    kw: dict[str, Any] = {}
    if num_workers > 0:
        kw["prefetch_factor"] = 2 if prefetch_factor is None else prefetch_factor
        kw["persistent_workers"] = True if persistent_workers is None else persistent_workers
        kw["worker_init_fn"] = _worker_init
        if multiprocessing_context is not None:
            kw["multiprocessing_context"] = multiprocessing_context
    loader_cls = DataLoader
    if num_workers > 0 and isinstance(dataset, SegmentationDataset):
        dataset.share_checked()  # workers record the steps they checked for the next epochs
    if num_workers > 0 and isinstance(dataset, SegmentationDataset) and dataset.crop is None and buffers:
        # reusable shared sample buffers: enough for every batch a worker may have in flight
        per_worker = kw["prefetch_factor"] * int(batch_size) + 2  # + the batch the caller holds
        shared = dataset.make_buffers(int(num_workers), per_worker)
        if shared is not None:
            dataset = _BufferedDataset(dataset, shared)
            loader_cls = _BufferedLoader
    return loader_cls(
        dataset,
        batch_size=int(batch_size),
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=int(num_workers),
        pin_memory=bool(pin_memory),
        drop_last=drop_last,
        generator=gen,
        collate_fn=_collate,
        **kw,
    )
