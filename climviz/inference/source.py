"""The data side of prediction: open a run lazily and read blocks of time steps."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from climviz.errors import DataError

__all__ = ["open_source", "check_channels", "read_block", "source_files"]


def source_files(data: Any) -> list[str]:
    """The input files behind ``data`` (a path, glob, list of paths or Dataset)."""
    if isinstance(data, xr.Dataset):
        files = data.attrs.get("source_files") or data.encoding.get("source")
        if isinstance(files, str):
            return [f for f in files.split("\n") if f]
        return [str(f) for f in files] if files else []
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    out: list[str] = []
    for item in items:
        s = os.fspath(item)
        matches = sorted(glob.glob(s)) if glob.has_magic(s) else [s]
        out.extend(str(Path(m).resolve()) for m in matches)
    return out


def open_source(data: Any, channels: Sequence[str]) -> tuple[xr.Dataset, list[str]]:
    """Open ``data`` lazily as a run of ``channels``; return it and its source files.

    Everything goes through :func:`climviz.open_run` (dask-backed, one chunk per time
    step, lat ascending, lon in [0, 360), missing channels named), paths and
    in-memory Datasets alike.
    """
    from climviz.data.io import open_run

    if not isinstance(data, (xr.Dataset, str, os.PathLike, list, tuple)):
        raise DataError(
            f"data: expected a path, a glob, a list of paths or an xarray.Dataset, "
            f"found {type(data).__name__}"
        )
    # open_run maps product names (ERA5, CMIP6, GFS...) to channels, converts units and
    # names the channels it cannot find: no check here, or ERA5-named data would be refused.
    ds = open_run(data, channels=list(channels))
    files = source_files(ds)
    if not files and not isinstance(data, xr.Dataset):
        files = source_files(data)
    return ds, files


def check_channels(ds: xr.Dataset, channels: Sequence[str], where: str = "data") -> xr.Dataset:
    """The ``channels`` of ``ds`` as a Dataset; DataError naming any that are missing."""
    missing = [c for c in channels if c not in ds.data_vars]
    if missing:
        raise DataError(
            f"{where}: the model needs channel(s) {missing} which the run lacks "
            f"(model channels {list(channels)}; run has {sorted(map(str, ds.data_vars))})"
        )
    for c in channels:
        if set(ds[c].dims) != {"time", "lat", "lon"}:
            raise DataError(f"{where}: variable {c!r} expected dims (time, lat, lon), found {ds[c].dims}")
    return ds[list(channels)]


def read_block(
    ds: xr.Dataset,
    channels: Sequence[str],
    start: int,
    stop: int,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Time steps ``start:stop`` of ``channels`` as one float32 array ``(N, C, lat, lon)``.

    Each step is read with :func:`climviz.data.io.read_step` (for files opened by
    ``open_run``: one HDF5 read per channel straight into the array, no dask graph).
    With ``mean``/``std`` the block is normalized in place, ``(x - mean) / std``,
    and missing values (NaN, possible with ``nan_policy="mask"``) become 0, the mean.
    """
    from climviz.data.io import read_step

    ny, nx = ds.sizes["lat"], ds.sizes["lon"]
    out = np.empty((stop - start, len(channels), ny, nx), dtype=np.float32)
    scale = None if std is None else (1.0 / np.asarray(std, np.float32)).astype(np.float32)
    for i, t in enumerate(range(start, stop)):
        read_step(ds, t, channels, out=out[i], offset=mean, scale=scale,
                  fill_value=None if mean is None else 0.0)
    return out
