"""Prediction in this process: a streaming read -> forward -> write loop.

Blocks of time steps are read (raw; the network normalizes them on its device) by
a background thread (up to
``prefetch`` blocks ahead) while the network runs on the current block, and
results are written by a second thread, so file I/O overlaps compute (torch
releases the GIL in its kernels). Only ``prefetch + 2`` blocks are held in memory
at a time, whatever the length of the run.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from climviz.inference.runner import MaskPredictor
from climviz.inference.source import read_block
from climviz.inference.writer import BlockProgress

__all__ = ["run_local"]


def run_local(
    ds: xr.Dataset,
    predictor: MaskPredictor,
    writer: Any,
    blocks: Sequence[tuple[int, int]],
    *,
    prefetch: int = 2,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
    progress: Any = None,
) -> int:
    """Predict ``blocks`` of ``ds`` with ``predictor`` and hand them to ``writer``.

    Parameters
    ----------
    ds
        The run, restricted to the model's channels (lazy).
    predictor
        The checkpoint's network (which normalizes its raw input itself).
    writer
        Has ``write(start, stop, mask, prob)``.
    blocks
        ``(start, stop)`` time index ranges, in order.
    prefetch
        Blocks read ahead in the background.
    on_batch
        Called after each block is written, with ``{"start", "stop", "done", "total",
        "mode"}``
        (for progress reports; an exception raised there stops the prediction, the
        blocks written so far stay written).
    progress
        A tqdm-like bar to ``update(n_time_steps)``, or None.

    Returns
    -------
    int
        Number of blocks written.
    """
    channels = predictor.spec.channels

    def load(start: int, stop: int) -> np.ndarray:
        return read_block(ds, channels, start, stop)  # raw: the network normalizes

    todo = deque(blocks)
    reads: deque[tuple[tuple[int, int], cf.Future]] = deque()
    done = BlockProgress(len(blocks), "local", progress, on_batch)
    with cf.ThreadPoolExecutor(1, thread_name_prefix="climviz-read") as reader, \
            cf.ThreadPoolExecutor(1, thread_name_prefix="climviz-write") as wpool:

        def fill() -> None:
            while todo and len(reads) < max(1, prefetch):
                blk = todo.popleft()
                reads.append((blk, reader.submit(load, *blk)))

        pending: tuple[tuple[int, int], cf.Future] | None = None

        def settle() -> None:
            nonlocal pending
            if pending is None:
                return
            (s, e), fut = pending
            pending = None
            fut.result()  # re-raises a write error
            done.block_written(s, e)

        try:
            fill()
            while reads:
                blk, fut = reads.popleft()
                x = fut.result()
                fill()
                mask, prob = predictor(x)
                del x
                settle()
                pending = (blk, wpool.submit(writer.write, blk[0], blk[1], mask, prob))
            settle()
        finally:
            todo.clear()
            for _, fut in reads:
                fut.cancel()
    return done.written
