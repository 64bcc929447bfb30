"""Zarr stores (written by :func:`climviz.data.io.write_run` or xarray's ``to_zarr``).

Opened through xarray's Zarr backend (:func:`climviz.data.formats.netcdf._xr_open`); every chunk of every
variable must be in the store (:func:`_check_zarr_chunks`): a missing chunk would read as fill values.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from climviz.errors import DataError


def _is_zarr_dir(p: Path) -> bool:
    return p.is_dir() and any((p / m).exists() for m in ("zarr.json", ".zgroup", ".zmetadata", ".zattrs"))


def _check_zarr_chunks(path: Path, ds: xr.Dataset) -> None:
    """Every chunk of every variable must be in the store (a missing chunk would read as fill)."""
    import itertools

    import zarr

    grp = zarr.open_group(str(path), mode="r")
    keys = None
    for name in list(ds.data_vars) + [c for c in ds.coords if c in ds.dims]:
        try:
            arr = grp[str(name)]
        except KeyError:
            continue
        if not isinstance(arr, zarr.Array) or not hasattr(arr, "cdata_shape"):  # a group, or an old zarr
            continue
        n_init = arr.nchunks_initialized
        if n_init >= arr.nchunks:
            continue
        if keys is None:
            keys = set()
            for root, _dirs, files in os.walk(path):
                for fn in files:
                    keys.add(os.path.relpath(os.path.join(root, fn), path).replace(os.sep, "/"))
        enc = arr.metadata.chunk_key_encoding if hasattr(arr.metadata, "chunk_key_encoding") else None
        for idx in itertools.product(*(range(n) for n in arr.cdata_shape)):
            if enc is not None:
                key = f"{name}/{enc.encode_chunk_key(idx)}"
            else:
                sep = getattr(arr.metadata, "dimension_separator", ".") or "."
                key = f"{name}/{sep.join(map(str, idx)) or '0'}"
            if key not in keys:
                raise DataError(
                    f"{path}: variable {name}: chunk {key!r} (chunk index {idx} of {tuple(arr.cdata_shape)}) is "
                    f"missing from the Zarr store ({n_init} of {arr.nchunks} chunks present); it would read "
                    "as fill values, not data"
                )
        raise DataError(f"{path}: variable {name}: {arr.nchunks - n_init} of {arr.nchunks} chunks are missing "
                        "from the Zarr store")
