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


def open_source(data: Any) -> tuple[xr.Dataset, list[str]]:
    """Open ``data`` lazily as a run; return it and its source files.

    Paths, globs and lists go through :func:`climviz.open_run` (dask-backed, lat
    ascending, lon in [0, 360)). A Dataset is used as given after checking its
    dimensions (latitude is sorted ascending if needed).
    """
    if isinstance(data, xr.Dataset):
        ds = data
    elif isinstance(data, (str, os.PathLike, list, tuple)):
        from climviz.data.io import open_run

        ds = open_run(data)
    else:
        raise DataError(
            f"data: expected a path, a glob, a list of paths or an xarray.Dataset, "
            f"found {type(data).__name__}"
        )
    for dim in ("time", "lat", "lon"):
        if dim not in ds.dims:
            raise DataError(
                f"data: expected dimensions (time, lat, lon), found {tuple(ds.dims)} "
                f"(no {dim!r})"
            )
    if ds.sizes["lat"] > 1 and "lat" in ds.coords and ds["lat"][0] > ds["lat"][-1]:
        ds = ds.isel(lat=slice(None, None, -1))
    return ds, source_files(data)


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


def read_block(ds: xr.Dataset, channels: Sequence[str], start: int, stop: int) -> np.ndarray:
    """Time steps ``start:stop`` of ``channels`` as one float32 array ``(N, C, lat, lon)``.

    Dask-backed variables are computed together (one pass over the files).
    """
    import dask

    block = ds.isel(time=slice(start, stop))
    arrays = [block[c].transpose("time", "lat", "lon").data for c in channels]
    if any(hasattr(a, "dask") for a in arrays):
        arrays = list(dask.compute(*arrays, scheduler="threads"))
    out = np.empty((stop - start, len(channels), *np.shape(arrays[0])[1:]), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[:, i] = a
    return out
