"""``predict``: a checkpoint plus a climate run -> a CF mask dataset (in memory or on disk)."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

import xarray as xr

from climviz.errors import ConfigError

__all__ = ["predict"]

log = logging.getLogger(__name__)


def predict(
    checkpoint: str | os.PathLike,
    data: Any,
    *,
    out: str | os.PathLike | None = None,
    batch_size: int = 4,
    device: Any = None,
    address: str | None = None,
    num_workers: int | None = None,
    probabilities: bool | str = False,
    overwrite: bool = False,
    use_ray: bool = False,
    progress: bool = True,
    tile: Sequence[int] | None = None,
    tile_overlap: int = 16,
    prefetch: int = 2,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> xr.Dataset:
    """Predict tropical cyclone / atmospheric river masks for every time step of a run.

    The checkpoint's network is applied to blocks of ``batch_size`` time steps,
    streamed from the files (never the whole run in memory) in the channels stored in
    the checkpoint, and normalized by the network itself with the statistics its
    weights carry (the same operation as in training).

    Parameters
    ----------
    checkpoint
        A ``checkpoint.pt`` file or the directory holding it (e.g. ``TrainResult.checkpoint``).
    data
        A path, a glob, a list of paths (netCDF / HDF5 / Zarr, see
        :func:`climviz.open_run`) or an ``xr.Dataset`` with the model's channels on
        ``(time, lat, lon)``. Any grid works: the networks pad internally (at
        least 32 x 32 cells; smaller grids are padded here); see ``tile``.
    out
        ``None`` (return the masks in memory), a ``.nc`` file or a ``.zarr`` store.
        Files are written through a work store beside ``out`` and appear only when
        complete; an interrupted prediction resumes where it stopped when run
        again with the same arguments.
    batch_size
        Time steps per forward pass, and per block written (Zarr chunk along time).
        A resumed prediction keeps the block size it started with.
    device
        torch device; ``None`` picks CUDA when available (fp16 autocast), else CPU.
    address
        Ray address for ``use_ray=True`` (``None``: the running Ray or a new local one).
    num_workers
        Model actors for ``use_ray=True`` (default: one per GPU, else 1).
    probabilities
        Also return class probabilities: ``True`` / ``"float16"`` or ``"float32"``
        (netCDF stores them as float32, as netCDF has no float16).
    overwrite
        Replace an existing ``out`` (and discard a non-matching unfinished one).
    use_ray
        Run with Ray Data (read tasks + model actors) instead of in this process.
    progress
        Show a progress bar (time steps).
    tile, tile_overlap
        Optional tile size ``(lat, lon)`` in cells to predict very large grids piece
        by piece, and the margin discarded at inner tile edges; longitude wraps
        around (see :mod:`climviz.inference.tiling`).
    prefetch
        Blocks read ahead by the background reader (local mode).
    on_batch
        Called after each block is written with ``{"start", "stop", "done", "total",
        "mode"}`` (mode "local" or "ray").

    Returns
    -------
    xr.Dataset
        ``mask`` (uint8, ``time, lat, lon``; CF ``flag_values``/``flag_meanings``),
        optionally ``probability`` (``class, time, lat, lon``), coordinates of the
        run, and global attributes ``model``, ``preset``, ``checkpoint``,
        ``checkpoint_sha256``, ``climviz_version``, ``source_files``,
        ``date_created``, ``channels``. With ``out``, the dataset is opened lazily
        from the written file.

    Raises
    ------
    CheckpointError
        The checkpoint is missing, corrupt or not a climviz checkpoint.
    DataError
        The run lacks a channel the model needs (named), or has the wrong dimensions.
    OutputExistsError
        ``out`` exists and ``overwrite`` is False (nothing is computed or changed).
    OutputError
        ``out`` cannot be written (bad suffix, unwritable directory).
    ClusterError
        Ray could not be started or reached.

    Examples
    --------
    The small DeepLabv3+ bundled with a source checkout (``data_samples/checkpoint``, trained
    on synthetic runs at 96 x 144; after :func:`climviz.train` use ``result.checkpoint``):

    >>> from pathlib import Path
    >>> ckpt = Path(cv.__file__).parents[1] / "data_samples" / "checkpoint" / "checkpoint.pt"
    >>> ds = cv.synthetic_run(4, shape=(96, 144))
    >>> masks = cv.predict(ckpt, ds, progress=False, probabilities=True)
    >>> masks["mask"].shape, masks.attrs["model"], masks.attrs["preset"]
    ((4, 96, 144), 'deeplabv3plus', 'tiny')
    >>> masks["probability"].dims, round(float(masks["probability"].sum("class").mean()), 2)
    (('class', 'time', 'lat', 'lon'), 1.0)
    >>> for cls in (1, 2):  # intersection over union with the run's own labels
    ...     found, truth = masks["mask"] == cls, ds["LABELS"] == cls
    ...     print(cls, round(float((found & truth).sum() / (found | truth).sum()), 1))
    1 0.9
    2 0.5

    From files to a file (written atomically, opened lazily):

    >>> _ = cv.write_run(ds, "run.nc")
    >>> on_disk = cv.predict(ckpt, "run.nc", out="masks.nc", progress=False)
    >>> list(on_disk.data_vars), on_disk.attrs["source_files"], bool((on_disk["mask"] == masks["mask"]).all())
    (['mask'], 'run.nc', True)
    """
    from climviz.inference.runner import load_spec, probability_dtype
    from climviz.inference.source import check_channels, open_source
    from climviz.inference.writer import MemoryWriter, ZarrWorkWriter, mask_template, plan_output

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, found {batch_size!r}")
    if tile_overlap < 0:
        raise ConfigError(f"tile_overlap: expected a number of cells >= 0, found {tile_overlap!r}")
    if tile is not None and (len(tile) != 2 or min(tile) < 32 or min(tile) <= 2 * tile_overlap):
        raise ConfigError(f"tile: expected (lat, lon) cells, each >= 32 and > 2 * tile_overlap "
                          f"({2 * tile_overlap}), found {tile!r}")
    prob_dtype = probability_dtype(probabilities)
    plan = plan_output(out, overwrite=overwrite) if out is not None else None
    spec = load_spec(checkpoint)
    ds, files = open_source(data, spec.channels)
    ds = check_channels(ds, spec.channels, where=_describe(data, files))
    attrs = {
        "model": spec.model_name,
        "preset": spec.preset,
        "checkpoint": spec.path,
        "checkpoint_sha256": spec.sha256,
        "checkpoint_epoch": int(spec.payload.get("epoch") or 0),
        "channels": " ".join(spec.channels),
        "source_files": files if files else "in-memory dataset",
        "method": "climviz.predict",
    }
    if spec.payload.get("grid"):
        attrs["training_grid"] = [int(g) for g in spec.payload["grid"]]
    if tile is not None:
        attrs["tile"] = [int(t) for t in tile]
        attrs["tile_overlap"] = int(tile_overlap)
    if plan is None:
        writer: Any = MemoryWriter(mask_template(ds, batch_size, prob_dtype=prob_dtype,
                                                 attrs=attrs, lazy=True), batch_size)
    else:
        template = mask_template(ds, batch_size, prob_dtype=prob_dtype, attrs=attrs)
        writer = ZarrWorkWriter(plan, template, batch_size, overwrite=overwrite)
        if writer.resumed:
            log.info("resuming the unfinished prediction in %s", writer.work)
    blocks = writer.pending()
    n_times = ds.sizes["time"]
    bar = _progress_bar(progress, n_times, n_times - sum(e - s for s, e in blocks))
    try:
        if use_ray:
            from climviz.inference.raydata import run_ray

            run_ray(ds, spec, writer, blocks, batch_size=writer.chunk, device=device,
                    probabilities=prob_dtype or False, tile=tile, tile_overlap=tile_overlap,
                    address=address, num_workers=num_workers, on_batch=on_batch, progress=bar)
        else:
            from climviz.inference.local import run_local
            from climviz.inference.runner import MaskPredictor

            predictor = MaskPredictor(spec, device, probabilities=prob_dtype or False,
                                      tile=tile, tile_overlap=tile_overlap)
            run_local(ds, predictor, writer, blocks, prefetch=prefetch, on_batch=on_batch,
                      progress=bar)
    finally:
        if bar is not None:
            bar.close()
    return writer.finish()


def _describe(data: Any, files: list[str]) -> str:
    if files:
        return files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more files)"
    return "data (xarray.Dataset)"


def _progress_bar(progress: bool, total: int, initial: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="predict")
