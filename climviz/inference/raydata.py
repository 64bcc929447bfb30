"""Prediction with Ray Data: read tasks feed a pool of model actors; the driver writes.

The pipeline, over the blocks of time steps still to compute::

    from_items([{start, stop}, ...])                       one row per block
      .map_batches(_read_block)                            CPU tasks: read (raw fields),
                                                           one row per time step
      .map_batches(_PredictActor, concurrency=num_workers) actors: one model load each,
                                                           GPUs when the cluster has them
      .iter_batches()                                      driver: regroup by block and
                                                           write each block in time order

Order is preserved (``DataContext.execution_options.preserve_order``), and the
driver writes whole blocks only, so the work store's resume markers mean the
same as in local mode. The checkpoint's weights travel through the object
store, so actors on other machines need no access to the checkpoint file; the
run is passed the same way (a file-backed lazy Dataset pickles as its file paths,
which workers must then be able to read).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from climviz.errors import ClusterError
from climviz.inference.runner import MaskPredictor, ModelSpec
from climviz.inference.source import read_block
from climviz.inference.writer import BlockProgress

__all__ = ["run_ray"]


def _read_blocks(batch: dict[str, np.ndarray], *, source: Any,
                 channels: Sequence[str]) -> dict[str, np.ndarray]:
    """Raw fields of the batch's blocks (the model actors' networks normalize them)."""
    import ray

    ds = ray.get(source) if isinstance(source, ray.ObjectRef) else source
    xs, idx = [], []
    for s, e in zip(batch["start"].tolist(), batch["stop"].tolist()):
        xs.append(read_block(ds, channels, s, e))
        idx.append(np.arange(s, e, dtype=np.int64))
    return {"time_index": np.concatenate(idx), "x": np.concatenate(xs)}


class _PredictActor:
    """Ray Data callable class: loads the model once per actor."""

    def __init__(self, spec_ref: Any, device: Any, probabilities: Any, tile: Any,
                 tile_overlap: int, threads: int | None) -> None:
        import ray

        spec = ray.get(spec_ref) if isinstance(spec_ref, ray.ObjectRef) else spec_ref
        self.predictor = MaskPredictor(spec, device, probabilities=probabilities, tile=tile,
                                       tile_overlap=tile_overlap, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mask, prob = self.predictor(np.asarray(batch["x"], dtype=np.float32))
        out = {"time_index": batch["time_index"], "mask": mask}
        if prob is not None:
            out["probability"] = np.ascontiguousarray(np.moveaxis(prob, 0, 1))  # (N, K, H, W)
        return out


def _ensure_ray(address: str | None) -> None:
    """Join Ray at ``address`` (None: the running Ray, ``$RAY_ADDRESS`` or a new local one).

    Uses :func:`climviz.training.cluster.connect`, so training and prediction share one
    connection; a local Ray started here stays up for later calls (it stops at exit).
    """
    from climviz.training.cluster import connect

    connect(address, dashboard=False)


def run_ray(
    ds: xr.Dataset,
    spec: ModelSpec,
    writer: Any,
    blocks: Sequence[tuple[int, int]],
    *,
    batch_size: int,
    device: Any = None,
    probabilities: Any = False,
    tile: Any = None,
    tile_overlap: int = 16,
    address: str | None = None,
    num_workers: int | None = None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
    progress: Any = None,
) -> int:
    """Predict ``blocks`` of ``ds`` on Ray Data actors and write them with ``writer``.

    Parameters are those of :func:`climviz.inference.local.run_local`, plus the Ray
    ``address`` (None: the running Ray, or a new local one), ``num_workers`` (model
    actors; default: GPUs in the cluster, else 1) and ``device`` for the actors
    ("cuda" is used when the cluster has GPUs and ``device`` is None).

    Returns
    -------
    int
        Number of blocks written.
    """
    import ray
    import ray.data

    if not blocks:
        return 0
    _ensure_ray(address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = gpus > 0 and (device is None or "cuda" in str(device))
    actor_device = "cuda" if use_gpu else (device or "cpu")
    workers = int(num_workers or (gpus if use_gpu else 1))
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    threads = None if use_gpu else max(1, cpus // (workers + 1))
    source = ray.put(ds)
    spec_ref = ray.put(spec)
    ctx = ray.data.DataContext.get_current()
    old_order, old_bar = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    try:
        items = [{"start": s, "stop": e} for s, e in blocks]
        spans = ray.data.from_items(items, override_num_blocks=len(items))
        rows = spans.map_batches(
            _read_blocks,  # type: ignore[arg-type]  # fn_kwargs supplies the keyword-only args; Ray types fn as f(batch)
            batch_size=1, batch_format="numpy", num_cpus=1,
            fn_kwargs={"source": source, "channels": list(spec.channels)},
        )
        preds = rows.map_batches(
            _PredictActor, batch_size=batch_size, batch_format="numpy",
            fn_constructor_kwargs={"spec_ref": spec_ref, "device": actor_device,
                                   "probabilities": probabilities, "tile": tile,
                                   "tile_overlap": tile_overlap, "threads": threads},
            concurrency=workers, num_gpus=1 if use_gpu else 0,
            num_cpus=1 if use_gpu else min(threads or 1, cpus),
        )
        return _write_in_order(preds, writer, blocks, on_batch, progress)
    finally:
        ctx.execution_options.preserve_order = old_order
        ctx.enable_progress_bars = old_bar


def _write_in_order(preds: Any, writer: Any, blocks: Sequence[tuple[int, int]],
                    on_batch: Any, progress: Any) -> int:
    """Regroup predicted time steps into blocks; write each block when it is whole."""
    starts = np.array([s for s, _ in blocks], dtype=np.int64)
    parts: dict[int, list[dict[str, np.ndarray]]] = {}
    counts: dict[int, int] = {}
    done = BlockProgress(len(blocks), "ray", progress, on_batch)
    for batch in preds.iter_batches(batch_size=None, batch_format="numpy"):
        tidx = np.asarray(batch["time_index"])
        owner = np.searchsorted(starts, tidx, side="right") - 1
        for b in np.unique(owner).tolist():
            sel = owner == b
            parts.setdefault(b, []).append({k: np.asarray(v)[sel] for k, v in batch.items()})
            counts[b] = counts.get(b, 0) + int(sel.sum())
            s, e = blocks[b]
            if counts[b] == e - s:
                got = parts.pop(b)
                t = np.concatenate([p["time_index"] for p in got])
                order = np.argsort(t)
                if not np.array_equal(t[order], np.arange(s, e)):
                    raise ClusterError(f"Ray Data returned time steps {t.tolist()} for block {s}:{e}")
                mask = np.concatenate([p["mask"] for p in got])[order]
                prob = None
                if "probability" in got[0]:
                    prob = np.moveaxis(np.concatenate([p["probability"] for p in got])[order], 1, 0)
                writer.write(s, e, mask, prob)
                done.block_written(s, e)
    if parts:
        raise ClusterError(f"Ray Data left blocks incomplete: {sorted(parts)}")
    return done.written
