"""The per-step part of event statistics on Ray workers, for runs of years to centuries.

:func:`label_table_on_ray` labels and tabulates events block by block of time steps
on Ray tasks (see :mod:`climviz.parallel`), and :func:`frequency_on_ray` counts, per
grid cell, the steps inside each class. Both give exactly what the serial functions
(:func:`climviz.events.label_table`, :func:`climviz.events.frequency`) give: events
are found per time step, so a block boundary changes nothing. Tracking
(:func:`climviz.events.track`) stays serial over the concatenated table: it is cheap
next to labelling, and it needs the steps in order.

With ``out_dir`` every finished block is saved (Parquet / ``.npy``), so a job killed
half-way resumes from the blocks on disk.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from climviz._compat import ClassesLike, class_ids
from climviz.errors import DataError

__all__ = ["label_table_on_ray", "frequency_on_ray"]


def _as_dataset(mask: Any, fields: Any) -> tuple[xr.Dataset, list[str]]:
    """One Dataset holding ``mask`` and the fields (names of the fields returned)."""
    if isinstance(mask, xr.Dataset):
        if "mask" not in mask:
            raise DataError(f"expected a mask dataset with a 'mask' variable; found {sorted(map(str, mask.data_vars))}")
        mask = mask["mask"]
    if not isinstance(mask, xr.DataArray) or "time" not in mask.dims:
        raise DataError("label_table_on_ray / frequency_on_ray need an xarray mask with a 'time' dimension")
    ds = xr.Dataset({"mask": mask})
    names: list[str] = []
    if fields is not None:
        fds = fields.to_dataset() if isinstance(fields, xr.DataArray) else fields
        if not isinstance(fds, xr.Dataset):
            raise DataError(f"fields must be an xarray Dataset or DataArray; found {type(fields).__name__}")
        for name in fds.data_vars:
            ds[name] = fds[name]
            names.append(str(name))
    return ds, names


def _table_block(block: xr.Dataset, start: int, *, names: Sequence[str], kwargs: dict[str, Any]) -> pd.DataFrame:
    """Worker: label and tabulate one block; ``step`` made global."""
    from climviz.events import label_table

    fields = block[list(names)] if names else None
    _, tab = label_table(block["mask"], fields, return_labels=False, **kwargs)
    tab = tab.copy()
    if "step" in tab:
        tab["step"] = tab["step"].astype(np.int64) + int(start)
    return tab


def label_table_on_ray(
    mask: Any,
    fields: Any = None,
    *,
    block_steps: int = 8,
    address: str | None = None,
    num_workers: int | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`climviz.events.label_table`'s table, computed by Ray workers block by block.

    Parameters
    ----------
    mask : DataArray or Dataset
        Class mask (time, lat, lon), or a mask dataset with ``mask``. File-backed (dask)
        masks stay lazy on the driver: each worker reads its own block.
    fields : Dataset or DataArray, optional
        Fields whose statistics go into the table (as for ``label_table``).
    block_steps : int
        Time steps per Ray task.
    address, num_workers
        Where and how wide to run (see :func:`climviz.parallel.map_blocks`).
    out_dir : path, optional
        Folder for per-block tables: makes the job resumable.
    progress : bool
        Show a progress bar.
    **kwargs
        Options of :func:`climviz.events.label_table` (``stats``, ``min_cells``,
        ``periodic``, ...), identical on every block.

    Returns
    -------
    pandas.DataFrame
        The same rows, columns and values as the serial ``label_table`` (``step`` counts
        from the run's first step).

    Examples
    --------
    >>> import climviz as cv
    >>> from climviz.events.distributed import label_table_on_ray
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> tab = label_table_on_ray(ds["LABELS"], block_steps=2, progress=False)  # doctest: +SKIP
    """
    from climviz.parallel import map_blocks

    ds, names = _as_dataset(mask, fields)
    func = functools.partial(_table_block, names=names, kwargs=dict(kwargs))
    key = {"what": "label_table", "fields": names,
           "options": {k: repr(v) for k, v in sorted(kwargs.items())}}
    parts = map_blocks(func, lambda a, b: ds.isel(time=slice(a, b)), ds.sizes["time"],
                       block_steps=block_steps, address=address, num_workers=num_workers,
                       out_dir=out_dir, key=key, progress=progress, desc="events")
    filled = [p for p in parts if len(p)]
    if not filled:  # no events anywhere: the (empty) table of the first block keeps the columns
        return parts[0].reset_index(drop=True)
    return pd.concat(filled, ignore_index=True)


def _count_block(block: xr.Dataset, start: int, *, classes: tuple[int, ...]) -> np.ndarray:
    """Worker: per class, the number of steps of this block each cell is in the class."""
    mask = np.asarray(block["mask"].values)
    return np.stack([(mask == c).sum(axis=0, dtype=np.int64) for c in classes])


def frequency_on_ray(
    mask: Any,
    classes: ClassesLike = (1, 2),
    *,
    block_steps: int = 32,
    address: str | None = None,
    num_workers: int | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> xr.DataArray:
    """Fraction of time steps each cell is in each class, counted by Ray workers.

    Parameters
    ----------
    mask : DataArray or Dataset
        Class mask (time, lat, lon) or a mask dataset.
    classes : int, str or sequence of them
        Classes to count, as numbers (1 TC, 2 AR) or names ("tc", "ar").
    block_steps, address, num_workers, out_dir, progress
        As for :func:`label_table_on_ray`.

    Returns
    -------
    xarray.DataArray
        ``(class, lat, lon)``, dimensionless fraction in [0, 1]; for each class equal to
        :func:`climviz.events.frequency` of that class.
    """
    from climviz.parallel import map_blocks

    ds, _ = _as_dataset(mask, None)
    classes = class_ids(classes)  # numbers or names ("tc", "AR")
    n = ds.sizes["time"]
    if n == 0:
        raise DataError("the mask has no time steps; a frequency needs at least one")
    parts = map_blocks(functools.partial(_count_block, classes=classes),
                       lambda a, b: ds.isel(time=slice(a, b)), n, block_steps=block_steps,
                       address=address, num_workers=num_workers, out_dir=out_dir,
                       key={"what": "frequency", "classes": list(classes)}, progress=progress,
                       desc="frequency")
    counts = np.sum(parts, axis=0)
    other = [d for d in ds["mask"].dims if d != "time"]
    return xr.DataArray(
        counts / n, dims=("class", *other),
        coords={"class": list(classes), **{d: ds[d] for d in other if d in ds.coords}},
        name="frequency",
        attrs={"long_name": "fraction of time steps inside the class", "units": "1"},
    )
