"""ClimateNet / CESM netCDF (netCDF4 through h5py, fast; netCDF3 and unusual files through xarray).

A netCDF3 file whose name is not valid UTF-8 is opened by Python and read by scipy's netCDF3 reader
(the netCDF C library takes UTF-8 names only).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.formats._base import (
    _LAT_NAMES,
    _LON_NAMES,
    _clean_attrs,
    _FilePart,
    _Spec,
    _time_from_name,
)
from climviz.data.formats.zarr import _check_zarr_chunks
from climviz.data.grid import TIME_NAMES
from climviz.data.schema import (
    LABEL_VAR,
)
from climviz.data.synthetic import grid_coords
from climviz.errors import DataError


def _open_nc4_fast(path: Path, f, channels: Sequence[str], first: bool = True) -> _FilePart | None:
    """netCDF4 (HDF5) file read with h5py: metadata only, one read task per variable and step.

    Returns None for files this fast path does not handle (groups, packed values, odd
    dimension scales); those go through xarray. Stages: the variables and their dimension
    names (:func:`_nc4_variables`), the grid of the first channel, one read spec per
    variable and step (:func:`_nc4_specs`), coordinates and times (:func:`_nc4_times`).
    """
    import h5py

    found = _nc4_variables(path, f, channels, first)
    if found is None:
        return None
    dsets, dims_of = found
    if first and any(("scale_factor" in d.attrs or "add_offset" in d.attrs) for d in dsets.values()):
        return None
    ref = dims_of[channels[0]]
    lat_n = next((n for n in _LAT_NAMES if n in ref), None)
    lon_n = next((n for n in _LON_NAMES if n in ref), None)
    if lat_n is None or lon_n is None:
        raise DataError(f"{path}: variable {channels[0]}: expected dimensions lat/latitude and lon/longitude, "
                        f"found {tuple(ref)} with shape {f[channels[0]].shape}")
    n_file_times = f["time"].shape[0] if "time" in f and isinstance(f["time"], h5py.Dataset) and \
        f["time"].ndim == 1 else 0
    sizes = dict(zip(ref, f[channels[0]].shape))
    nlat, nlon = sizes[lat_n], sizes[lon_n]
    specs: dict[str, list[_Spec]] = {}
    dtypes: dict[str, np.dtype] = {}
    var_attrs: dict[str, dict] = {}
    for name, d in dsets.items():
        specs[name] = _nc4_specs(path, name, d, dims_of[name], (lat_n, lon_n), sizes, n_file_times)
        dtypes[name] = d.dtype if (d.dtype.kind == "f" or name == LABEL_VAR) else np.dtype(np.float32)
        if first:
            var_attrs[name] = _clean_attrs(d.attrs)

    def coord(n: str, size: int, which: int) -> np.ndarray:
        if n in f and isinstance(f[n], h5py.Dataset) and f[n].shape == (size,) and \
                not str(f[n].attrs.get("NAME", b"")).count("This is a netCDF dimension"):
            return np.asarray(f[n][()], dtype=float)
        return grid_coords((nlat, nlon))[which]

    return _FilePart(path, _nc4_times(path, f, sizes), coord(lat_n, nlat, 0), coord(lon_n, nlon, 1), {},
                     _clean_attrs(f.attrs) if first else {}, var_attrs, "netcdf", specs, dtypes)


def _nc4_variables(path: Path, f, channels: Sequence[str],
                   first: bool) -> tuple[dict[str, Any], dict[str, list[str]]] | None:
    """The datasets of ``channels`` (and the labels, when present) and their dimension names.

    None when a variable is not a plain dataset or its dimension scales are unusual.
    """
    import h5py

    names = list(f.keys())
    missing = [c for c in channels if c not in names]
    if missing:
        present = [k for k in names if k not in ("time", "lat", "lon", "latitude", "longitude")]
        raise DataError(f"{path}: missing channel(s) {missing}; expected {list(channels)}; found variables {present}")
    want = [*channels] + ([LABEL_VAR] if LABEL_VAR in names else [])
    dsets = {name: f[name] for name in want}
    dims_of: dict[str, list[str]] = {}
    shape0 = dsets[channels[0]].shape
    for name in want:
        d = dsets[name]
        if not isinstance(d, h5py.Dataset):
            return None
        # dimension names are costly to read: read them for the first channel, for any variable
        # whose shape differs, and for all on square grids (where a transposed variable would
        # have the same shape)
        if name == channels[0] or d.shape != shape0 or len(set(shape0[-2:])) < 2 or first:
            try:
                dims_of[name] = [dim[0].name.lstrip("/") if len(dim) else "" for dim in d.dims]
            except Exception:  # noqa: BLE001 - unusual dimension scales: let xarray handle it
                return None
            if "" in dims_of[name]:
                return None
        else:
            dims_of[name] = dims_of[channels[0]]
    return dsets, dims_of


def _nc4_specs(path: Path, name: str, d, dims: list[str], latlon: tuple[str, str], sizes: dict[str, int],
               n_file_times: int) -> list[_Spec]:
    """One read spec per time step of variable ``name`` (dataset ``d`` with dimensions ``dims``).

    A DataError names a variable with other dimensions than (time, lat, lon) or another grid.
    """
    lat_n, lon_n = latlon
    canon = ["time" if x == "time" else "lat" if x == lat_n else "lon" if x == lon_n else x for x in dims]
    ok = set(canon) == {"time", "lat", "lon"} or (
        set(canon) == {"lat", "lon"} and (name == LABEL_VAR or "time" not in sizes))
    if ok and set(canon) == {"lat", "lon"} and name != LABEL_VAR and n_file_times > 1:
        ok = False  # a 2-D field in a time series: which step would it be?
    if not ok:
        raise DataError(f"{path}: variable {name}: expected dimensions (time, lat, lon), "
                        f"found {tuple(dims)} with shape {d.shape}"
                        + (f" in a file with {n_file_times} time steps" if n_file_times > 1 else ""))
    shp = dict(zip(canon, d.shape))
    if (shp["lat"], shp["lon"]) != (sizes[lat_n], sizes[lon_n]):
        raise DataError(f"{path}: variable {name}: expected grid (lat, lon) = {(sizes[lat_n], sizes[lon_n])}, "
                        f"found {(shp['lat'], shp['lon'])}")
    fill = d.attrs.get("_FillValue") if d.dtype.kind == "f" else None
    fill = float(np.asarray(fill).ravel()[0]) if fill is not None else None
    if "time" in canon:
        perm = tuple(canon.index(x) for x in ("time", "lat", "lon"))
        return [_Spec(str(path), name, name, k, perm, fill) for k in range(shp["time"])]
    perm = tuple(canon.index(x) for x in ("lat", "lon"))
    # labels without time in a file with time: the same labels at each step
    return [_Spec(str(path), name, name, None, perm, fill)] * sizes.get("time", 1)


def _nc4_times(path: Path, f, sizes: dict[str, int]) -> np.ndarray | None:
    """The file's times: its CF time variable, else a ``time`` attribute or a date in the file name."""
    if "time" in f and "units" in f["time"].attrs and "time" in sizes:
        from xarray.coding.times import decode_cf_datetime

        ta = _clean_attrs(f["time"].attrs)
        try:
            return np.asarray(decode_cf_datetime(np.asarray(f["time"][()]), ta["units"], ta.get("calendar")))
        except Exception as exc:
            raise DataError(f"{path}: variable time: cannot decode units {ta['units']!r}: {exc}") from exc
    if "time" in sizes:
        return None
    return _single_step_time(path, f.attrs.get("time"))


def _dim_name(ds: xr.Dataset, names: Iterable[str]) -> str | None:
    for n in names:
        if n in ds.dims:
            return n
    return None


def _utf8_name(path: Path) -> bool:
    try:
        os.fspath(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _xr_open(path: Path, kind: str) -> xr.Dataset:
    """Open with xarray's backends; DataError for files they cannot read."""
    try:
        if kind == "zarr":
            consolidated = (path / ".zmetadata").exists() or '"consolidated_metadata"' in (
                (path / "zarr.json").read_text() if (path / "zarr.json").exists() else "")
            ds = xr.open_zarr(path, chunks={}, consolidated=consolidated)
            _check_zarr_chunks(path, ds)
        elif kind == "netcdf3" and not _utf8_name(path):
            # the netCDF C library takes UTF-8 file names; a name that is not valid UTF-8 (bytes
            # decoded with surrogate escapes) is opened by Python and read by scipy's netCDF3 reader
            ds = xr.open_dataset(open(path, "rb"), engine="scipy", chunks={}, cache=False)  # noqa: SIM115
        else:
            engine = "netcdf4" if kind == "hdf5" else None
            ds = xr.open_dataset(path, engine=engine, chunks={}, cache=False)
    except DataError:
        raise
    except Exception as exc:  # the backends raise OSError, ValueError, KeyError, RuntimeError...
        raise DataError(
            f"{path}: cannot be opened as {'Zarr' if kind == 'zarr' else 'netCDF'} "
            f"(truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    return ds


def _open_xarray(path: Path, kind: str, channels: Sequence[str], ds: xr.Dataset | None = None) -> _FilePart:
    """A file (or an open dataset) read through xarray: dims renamed, channels as (time, lat, lon) arrays."""
    ds = _canonical_dims(path, _xr_open(path, kind) if ds is None else ds)
    missing = [c for c in channels if c not in ds.data_vars]
    if missing:
        raise DataError(
            f"{path}: missing channel(s) {missing}; expected {list(channels)}; found variables {list(ds.data_vars)}"
        )
    nlat, nlon = ds.sizes["lat"], ds.sizes["lon"]
    lat = ds["lat"].values.astype(float) if "lat" in ds.coords else grid_coords((nlat, nlon))[0]
    lon = ds["lon"].values.astype(float) if "lon" in ds.coords else grid_coords((nlat, nlon))[1]
    arrays, var_attrs = {}, {}
    for name in [*channels] + ([LABEL_VAR] if LABEL_VAR in ds.data_vars else []):
        arrays[name], var_attrs[name] = _xr_variable(path, ds, name)
    if "time" in ds.dims:
        times = ds["time"].values if "time" in ds.coords else None
    else:
        times = _single_step_time(path, ds.attrs.get("time"))
    return _FilePart(path, times, lat, lon, arrays, dict(ds.attrs), var_attrs, "zarr" if kind == "zarr" else "netcdf")


def _canonical_dims(path: Path, ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its latitude, longitude and time dimensions named lat, lon, time (DataError without lat/lon)."""
    lat_n, lon_n = _dim_name(ds, _LAT_NAMES), _dim_name(ds, _LON_NAMES)
    if lat_n is None or lon_n is None:
        raise DataError(
            f"{path}: expected dimensions lat/latitude and lon/longitude, found dimensions {dict(ds.sizes)}"
        )
    ren = {k: v for k, v in ((lat_n, "lat"), (lon_n, "lon")) if k != v}
    time_other = next((n for n in TIME_NAMES if n in ds.dims), None)
    if time_other not in (None, "time") and "time" not in ds.dims:
        ren[time_other] = "time"  # the time names of climviz.data.grid (valid_time, t)
    return ds.rename(ren) if ren else ds


def _xr_variable(path: Path, ds: xr.Dataset, name: str) -> tuple[Any, dict]:
    """Variable ``name`` as a (time, lat, lon) array and its attributes.

    A 2-D field is one step in a file without time; 2-D labels in a file with time are
    the same labels at every step.
    """
    var = ds[name]
    dims = set(var.dims)
    has_time = "time" in ds.dims
    if not (dims == {"time", "lat", "lon"} or (dims == {"lat", "lon"} and (name == LABEL_VAR or not has_time))):
        raise DataError(
            f"{path}: variable {name}: expected dimensions (time, lat, lon), "
            f"found {var.dims} with shape {var.shape}"
            + (f" in a file with {ds.sizes['time']} time steps" if has_time else "")
        )
    if "time" in dims:
        var = var.transpose("time", "lat", "lon")
        return var.data, dict(var.attrs)
    var = var.transpose("lat", "lon")
    arr = var.data[None]
    if has_time:
        import dask.array as da

        arr = da.broadcast_to(arr, (ds.sizes["time"], ds.sizes["lat"], ds.sizes["lon"]))
    return arr, dict(var.attrs)


def _single_step_time(path: Path, attr: Any) -> np.ndarray | None:
    """The time of a file without a time dimension: its ``time`` attribute, else a date in its name."""
    if attr is not None:
        try:
            return np.array([np.datetime64(pd.Timestamp(str(attr.decode() if isinstance(attr, bytes) else attr)),
                                           "ns")])
        except ValueError:
            pass
    tn = _time_from_name(path)
    return None if tn is None else np.array([tn])
