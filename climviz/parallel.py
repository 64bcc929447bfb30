"""Time blocks of a long run processed by Ray workers, saved block by block, resumable.

The per-step parts of climviz's analysis (heuristic labels, event labelling and tables,
frequency counts) are independent from one time step to the next, so a run of
decades is cut into blocks of ``block_steps`` steps and each block goes to a Ray task.
Whatever links steps (TC node stitching, event tracking) stays serial over the per-block
results, on the driver: it is cheap next to the per-step work.

How it works
------------
1. The driver cuts ``range(n_steps)`` into blocks and, for each block, asks ``load(start,
   stop)`` for the block's input. For file-backed (dask) data this is a *lazy* xarray
   slice: only the task graph travels, and the worker reads the files itself (local Ray,
   or a cluster with a shared file system). In-memory data travels through Ray's object
   store.
2. A Ray task runs ``func(block_input, start)`` on a worker (one CPU each; a lazy block
   is read there with dask's synchronous scheduler). At most ``num_workers`` tasks run
   at once: with fewer workers than the cluster's CPUs exactly ``num_workers`` are
   submitted at a time, else ``2 * num_workers`` (the extra ones wait queued). Memory
   stays bounded by the blocks in flight, not the run.
   A task whose worker dies is retried by Ray (``max_retries``).
3. Results come back in any order; with ``out_dir`` each is written atomically to
   ``out_dir/block_<start>_<stop>.<ext>`` (DataFrame -> Parquet, ndarray -> ``.npy``)
   as it arrives, so a killed driver resumes where it stopped: blocks already on disk
   are read, not recomputed. ``out_dir`` also records the block layout
   (``blocks.json``); resuming with another layout is an error, not a silent mix.
4. The results are returned in time order.

The Ray connection is :func:`climviz.training.cluster.connect`'s: a local Ray by
default, ``"auto"``, ``"host:port"`` or ``"ray://host:port"`` for a cluster; an
already running Ray (a notebook that called it before) is reused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from climviz.errors import ConfigError, OutputError
from climviz.utils.atomic import atomic_path
from climviz.utils.output import translate_write_errors

__all__ = ["BlockPlan", "in_flight", "plan_blocks", "map_blocks"]

Result = Any  # a pandas DataFrame, a numpy ndarray, or a dict of them


class BlockPlan(tuple):
    """``((start, stop), ...)``: the time blocks of a run (half-open, in order)."""

    @property
    def n_steps(self) -> int:
        """Steps covered by the plan."""
        return int(self[-1][1]) if self else 0


def plan_blocks(n_steps: int, block_steps: int) -> BlockPlan:
    """Cut ``n_steps`` time steps into blocks of ``block_steps`` (the last may be shorter).

    Examples
    --------
    >>> plan_blocks(10, 4)
    ((0, 4), (4, 8), (8, 10))
    """
    if isinstance(block_steps, bool) or not isinstance(block_steps, (int, np.integer)) or block_steps < 1:
        raise ConfigError(f"block_steps must be a positive integer; found {block_steps!r}")
    if n_steps < 0:
        raise ConfigError(f"n_steps must be >= 0; found {n_steps}")
    return BlockPlan((s, min(s + int(block_steps), n_steps)) for s in range(0, n_steps, int(block_steps)))


def _block_file(out_dir: Path, start: int, stop: int, kind: Literal["parquet", "npy"], part: str = "") -> Path:
    suffix = f".{part}" if part else ""
    return out_dir / f"block_{start:09d}_{stop:09d}{suffix}.{kind}"


def _save_one(value: Any, out_dir: Path, start: int, stop: int, part: str = "") -> None:
    if isinstance(value, pd.DataFrame):
        with atomic_path(_block_file(out_dir, start, stop, "parquet", part)) as tmp:
            value.to_parquet(tmp, index=False)
    elif isinstance(value, np.ndarray):
        with atomic_path(_block_file(out_dir, start, stop, "npy", part)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, value, allow_pickle=False)
    else:
        raise TypeError(f"a block result must be a DataFrame or an ndarray; found {type(value).__name__}")


def _save(result: Result, out_dir: Path, start: int, stop: int) -> None:
    """Write one block's result atomically (Parquet for tables, ``.npy`` for arrays).

    A dict of tables/arrays is written part by part, with a ``.parts.json`` index written
    last: a block counts as done only when its index exists.
    """
    if isinstance(result, dict):
        for part, value in result.items():
            if not str(part).isidentifier():
                raise ValueError(f"block result part names must be identifiers; found {part!r}")
            _save_one(value, out_dir, start, stop, str(part))
        index = out_dir / f"block_{start:09d}_{stop:09d}.parts.json"
        kinds = {str(k): ("parquet" if isinstance(v, pd.DataFrame) else "npy") for k, v in result.items()}
        with atomic_path(index) as tmp:
            Path(tmp).write_text(json.dumps(kinds))
    else:
        _save_one(result, out_dir, start, stop)


def _load_one(path: Path) -> Result:
    return pd.read_parquet(path) if path.suffix == ".parquet" else np.load(path, allow_pickle=False)


def _load_saved(out_dir: Path, start: int, stop: int) -> Result | None:
    """A block's saved result, or None if it has not been (completely) written."""
    index = out_dir / f"block_{start:09d}_{stop:09d}.parts.json"
    if index.exists():
        kinds = json.loads(index.read_text())
        return {part: _load_one(_block_file(out_dir, start, stop, kind, part)) for part, kind in kinds.items()}
    for kind in ("parquet", "npy"):
        path = _block_file(out_dir, start, stop, kind)
        if path.exists():
            return _load_one(path)
    return None


def _prepare_out_dir(out_dir: str | os.PathLike, plan: BlockPlan, key: dict[str, Any]) -> Path:
    """Create ``out_dir`` (or check that its recorded layout matches this job's)."""
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the block folder {str(path)!r}: {exc.strerror or exc}") from exc
    layout = {"blocks": [list(b) for b in plan], **key}
    record = path / "blocks.json"
    if record.exists():
        found = json.loads(record.read_text())
        if found != layout:
            raise OutputError(
                f"{str(path)!r} holds blocks of another job (blocks.json differs: "
                f"{len(found.get('blocks', []))} blocks, key {({k: found.get(k) for k in key})}; "
                f"this job: {len(plan)} blocks, key {key}); use a new folder or delete it"
            )
    else:
        try:
            with atomic_path(record) as tmp:
                Path(tmp).write_text(json.dumps(layout))
        except OSError as exc:
            raise OutputError(f"cannot write {str(record)!r}: {exc.strerror or exc}") from exc
    return path


def _run_block(func: Callable[[Any, int], Result], block: Any, start: int) -> Result:
    """Body of the Ray task: materialize a lazy block, then apply ``func``.

    The block is read with dask's synchronous scheduler: a Ray worker owns one CPU, and
    dask's default thread pool (one thread per core of the machine) would make the
    workers of one node fight over the cores while they decompress.
    """
    if hasattr(block, "load") and callable(block.load):
        import dask

        with dask.config.set(scheduler="synchronous"):
            block = block.load()
    return func(block, start)


def in_flight(num_workers: int | None, cluster_cpus: int) -> int:
    """Tasks kept submitted to Ray at once, so that at most ``num_workers`` run.

    ``num_workers`` exactly when it is fewer than the cluster's CPUs (Ray would
    otherwise run every submitted task side by side), else twice the workers (Ray's one
    CPU per task caps what runs; the rest waits queued, so a worker finds its next block
    ready).

    Examples
    --------
    >>> in_flight(1, 2), in_flight(2, 2), in_flight(None, 4)
    (1, 4, 8)
    """
    workers = num_workers if num_workers is not None else max(int(cluster_cpus), 1)
    return workers if workers < cluster_cpus else 2 * workers


def map_blocks(
    func: Callable[[Any, int], Result],
    load: Callable[[int, int], Any],
    n_steps: int,
    *,
    block_steps: int = 8,
    address: str | None = None,
    num_workers: int | None = None,
    out_dir: str | os.PathLike | None = None,
    key: dict[str, Any] | None = None,
    max_retries: int = 3,
    progress: bool = True,
    desc: str = "blocks",
) -> list[Result]:
    """Apply ``func`` to every time block of a run on Ray tasks; results in time order.

    Parameters
    ----------
    func : callable
        ``func(block_input, start) -> DataFrame | ndarray | dict[str, DataFrame | ndarray]``,
        run on a worker. It must be
        importable by workers (a module-level function of an installed package).
    load : callable
        ``load(start, stop)``: the block's input, built on the driver (a lazy xarray
        slice is best: the worker reads the data).
    n_steps : int
        Time steps in the run.
    block_steps : int
        Steps per block (memory per task grows with it; default 8).
    address : str, optional
        Where Ray runs (see :func:`climviz.training.cluster.connect`); a local Ray by default.
    num_workers : int, optional
        Tasks running at once (default: the cluster's CPUs).
    out_dir : path, optional
        Folder for per-block results; makes the job resumable (see module docstring).
    key : dict, optional
        JSON-able settings that identify the job, recorded in ``out_dir``: resuming with
        other settings is refused.
    max_retries : int
        Ray retries of a task whose worker died.
    progress : bool
        Show a progress bar (tqdm; a widget in Jupyter).
    desc : str
        Label of the progress bar.

    Returns
    -------
    list
        One result per block, in time order.

    Examples
    --------
    >>> import numpy as np
    >>> from climviz.parallel import plan_blocks
    >>> [b for b in plan_blocks(5, 2)]
    [(0, 2), (2, 4), (4, 5)]
    """
    from climviz.training.cluster import connect

    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 1):
        raise ConfigError(f"num_workers must be a positive integer or None; found {num_workers!r}")
    plan = plan_blocks(n_steps, block_steps)
    folder = _prepare_out_dir(out_dir, plan, key or {}) if out_dir is not None else None
    results: dict[int, Result] = {}
    todo: list[tuple[int, int]] = []
    for start, stop in plan:
        saved = _load_saved(folder, start, stop) if folder is not None else None
        if saved is None:
            todo.append((start, stop))
        else:
            results[start] = saved
    if todo:
        _run_on_ray(func, load, todo, results, folder, connect(address), num_workers,
                    max_retries, progress, desc, len(plan))
    return [results[start] for start, _ in plan]


def _run_on_ray(func, load, todo: Sequence[tuple[int, int]], results: dict[int, Result],
                folder: Path | None, info: Any, num_workers: int | None, max_retries: int,
                progress: bool, desc: str, total: int) -> None:
    """Submit the blocks still to do, at most :func:`in_flight` at once; collect results."""
    import ray
    from tqdm.auto import tqdm

    limit = in_flight(num_workers, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1, max_retries=max_retries)(_run_block)
    func_ref = ray.put(func)
    pending: dict[Any, tuple[int, int]] = {}
    queue = list(todo)
    bar = tqdm(total=total, initial=total - len(todo), desc=desc, unit="block", disable=not progress)
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                start, stop = queue.pop(0)
                pending[task.remote(func_ref, load(start, stop), start)] = (start, stop)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                start, stop = pending.pop(ref)
                result = ray.get(ref)
                if folder is not None:
                    with translate_write_errors(folder, what="block folder"):
                        _save(result, folder, start, stop)
                results[start] = result
                bar.update(1)
    finally:
        bar.close()
        for ref in pending:
            ray.cancel(ref)
