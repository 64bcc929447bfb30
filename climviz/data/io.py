"""Open, validate and write climate runs (ClimateNet netCDF, DeepCAM HDF5, Zarr).

:func:`open_run` turns a file, a list of files, a glob or a directory into one
lazily-loaded :class:`xarray.Dataset` (dask) with dims ``(time, lat, lon)``, the
16 channels in the canonical order (:data:`climviz.data.schema.CHANNELS`),
``LABELS`` when present, CF attributes, latitude ascending and longitude in
[0, 360).

Formats
-------
ClimateNet netCDF
    Variables ``TMQ, U850, ...`` (and optionally ``LABELS``) on ``(time, lat, lon)``;
    one or many time steps per file. Files without a ``time`` dimension are one
    step. Coordinates may be called ``lat``/``latitude`` and ``lon``/``longitude``;
    latitude may descend (flipped on input) and longitude may be in [-180, 180)
    (converted and rolled). Any permutation of the three dimensions is transposed.
DeepCAM HDF5
    ``climate/data`` of shape ``(lat, lon, 16)`` float32 and ``climate/labels_0`` (or
    ``climate/labels``) of shape ``(lat, lon)``: one time step per file. These files
    carry no coordinates, so a regular global grid of cell centres is assumed
    (:func:`climviz.data.synthetic.grid_coords`: ``lat = -90 + (i + 0.5) * 180 / nlat``,
    ``lon = j * 360 / nlon``), rows south to north. The channel order is taken from
    a ``channels`` attribute of ``climate/data`` when present, else the canonical
    order. The time is read from a root attribute ``time`` (ISO 8601), else from a
    ``YYYY-MM-DD-HH`` stamp in the file name (``data-2106-01-02-00-1.h5``), else the
    time steps are numbered 0, 1, ... in file order.
Zarr
    A directory store written by :func:`write_run` or by xarray (``to_zarr``).

Opening reads only metadata: data are read when computed. Values are checked as
they are read (``check_values="lazy"``, the default): a chunk with NaN/inf (or
labels outside {0, 1, 2}) raises :class:`~climviz.errors.DataError` naming the
file, the variable and the time step when it is computed. ``check_values="eager"``
(or :func:`validate_run`) reads everything once, in a streaming pass, to check up
front. With ``nan_policy="mask"`` non-finite values become NaN (masked) instead.

Speed
-----
netCDF4 and DeepCAM files are opened with h5py (metadata only, a few ms per file),
and every (variable, time step) becomes one dask task that reads its slice straight
from the file, orients it and checks it. :func:`read_step` (used by the PyTorch
dataset) recognises these tasks and reads a whole time step with one HDF5 call per
channel, without building a dask graph. netCDF3 files, Zarr stores and unusual
netCDF4 files (groups, packed values) go through xarray's own backends.
"""

from __future__ import annotations

import functools
import glob as _glob
import os
import re
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.schema import CHANNEL_ATTRS, CHANNELS, FLAG_VALUES, LABEL_VAR, label_attrs
from climviz.data.synthetic import grid_coords
from climviz.errors import DataError, OutputExistsError
from climviz.utils.atomic import atomic_path

__all__ = ["open_run", "validate_run", "write_run", "read_step", "find_files", "DEEPCAM_DATA", "DEEPCAM_LABELS"]

PathLike = str | os.PathLike
DEEPCAM_DATA = "climate/data"
DEEPCAM_LABELS = ("climate/labels_0", "climate/labels")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NC3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_NC_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
_H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_GRIB_SUFFIXES = (".grb", ".grib", ".grb2", ".grib2", ".grib1")
#: ``open_run(channels=AVAILABLE)``: every channel the file has.
AVAILABLE = "available"
_LAT_NAMES = ("lat", "latitude", "nlat", "y")
_LON_NAMES = ("lon", "longitude", "nlon", "x")
_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})-(\d{2})")
# --------------------------------------------------------------------------------------
# finding files
# --------------------------------------------------------------------------------------
def _is_zarr_dir(p: Path) -> bool:
    return p.is_dir() and any((p / m).exists() for m in ("zarr.json", ".zgroup", ".zmetadata", ".zattrs"))


def find_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """Resolve a file, a list, a glob or a directory into a list of run files/stores.

    A directory that is a Zarr store is itself the run; another directory contributes
    its ``*.nc``, ``*.nc4``, ``*.h5``, ``*.hdf5`` files and ``*.zarr`` stores (sorted by name).

    Raises
    ------
    DataError
        A path that does not exist, a glob that matches nothing, an empty directory.
    """
    if isinstance(paths, (str, os.PathLike)):
        items: list[PathLike] = [paths]
    else:
        items = list(paths)
        if not items:
            raise DataError("open_run: expected at least one path, found an empty list")
    out: list[Path] = []
    for item in items:
        s = os.fspath(item)
        p = Path(s).expanduser()
        if any(ch in s for ch in "*?[") and not p.exists():
            matches = sorted(_glob.glob(os.path.expanduser(s)))
            if not matches:
                raise DataError(f"{s}: glob pattern matches no files (expected netCDF/HDF5/Zarr files)")
            out.extend(Path(m) for m in matches)
        elif not p.exists():
            raise DataError(f"{p}: file not found (expected a netCDF, DeepCAM HDF5 or Zarr run)")
        elif p.is_dir() and p.suffix.lower() == ".zarr" and not _is_zarr_dir(p):
            raise DataError(f"{p}: is a directory named *.zarr but not a Zarr store (no zarr.json/.zgroup found)")
        elif p.is_dir() and not _is_zarr_dir(p):
            found = sorted(
                c for c in p.iterdir()
                if (c.is_file() and c.suffix.lower() in _NC_SUFFIXES + _H5_SUFFIXES + _GRIB_SUFFIXES
                    and not c.name.startswith("."))
                or (c.suffix == ".zarr" and c.is_dir())
            )
            if not found:
                raise DataError(
                    f"{p}: directory holds no run files (expected *.nc, *.h5 or *.zarr), "
                    f"found {sorted(c.name for c in p.iterdir())[:10]}"
                )
            out.extend(found)
        else:
            out.append(p)
    return out


# --------------------------------------------------------------------------------------
# one file -> oriented lazy arrays
# --------------------------------------------------------------------------------------
@dataclass
class _FilePart:
    path: Path
    times: np.ndarray | None  # None: no time information in the file
    lat: np.ndarray
    lon: np.ndarray
    arrays: dict[str, Any] = field(default_factory=dict)  # name -> dask array (t, lat, lon)
    attrs: dict[str, Any] = field(default_factory=dict)
    var_attrs: dict[str, dict] = field(default_factory=dict)
    fmt: str = "netcdf"
    specs: dict[str, list[_Spec]] | None = None  # direct HDF5 reads (fast path), per local step
    dtypes: dict[str, Any] | None = None  # dtypes of the spec variables once read

    @property
    def names(self) -> list[str]:
        return list(self.specs) if self.specs is not None else list(self.arrays)

    @property
    def n_times(self) -> int:
        if self.specs is not None:
            return len(next(iter(self.specs.values())))
        return next(iter(self.arrays.values())).shape[0]


def _sniff(path: Path) -> str:
    """'zarr', 'hdf5' (netCDF4 or plain HDF5) or 'netcdf3'; DataError otherwise."""
    if path.is_dir():
        if _is_zarr_dir(path):
            return "zarr"
        raise DataError(f"{path}: is a directory but not a Zarr store (no zarr.json/.zgroup)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from exc
    if head == _HDF5_MAGIC:
        return "hdf5"
    if head[:4] in _NC3_MAGIC:
        return "netcdf3"
    if head[:4] == b"GRIB":
        return "grib"
    if len(head) < 8:
        raise DataError(f"{path}: truncated or empty file ({len(head)} bytes); expected netCDF, HDF5 or Zarr")
    raise DataError(
        f"{path}: not a netCDF, HDF5 or Zarr file (expected the HDF5 signature or 'CDF', found {head[:8]!r})"
    )


def _time_from_name(path: Path) -> np.datetime64 | None:
    m = _TIME_RE.search(path.name)
    if not m:
        return None
    y, mo, d, h = (int(g) for g in m.groups())
    try:
        return np.datetime64(pd.Timestamp(year=y, month=mo, day=d, hour=h), "ns")
    except ValueError:
        return None


# --------------------------------------------------------------------------------------
# HDF5 readers (module-level functions so dask graphs pickle into worker processes)
# --------------------------------------------------------------------------------------
_H5_HANDLES: dict[tuple, Any] = {}
_H5_PID = [os.getpid()]
_H5_MAX_OPEN = 64


def _h5(path: str):
    """An open read-only h5py.File for ``path``, cached per process (reopened after fork)."""
    import h5py

    if _H5_PID[0] != os.getpid():  # a forked worker: never share the parent's HDF5 handles
        _H5_HANDLES.clear()
        _H5_PID[0] = os.getpid()
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    f = _H5_HANDLES.get(key)
    if f is None or not f.id.valid:
        if len(_H5_HANDLES) >= _H5_MAX_OPEN:
            old = _H5_HANDLES.pop(next(iter(_H5_HANDLES)))
            try:
                old.close()
            except Exception:  # noqa: BLE001 - closing a stale handle must not fail a read
                pass
        f = h5py.File(path, "r")
        _H5_HANDLES[key] = f
    return f


def _read_h5(path: str, key: str, t: int | None = None, perm: tuple[int, ...] | None = None,
             fill: float | None = None) -> np.ndarray:
    """Read ``key`` (one step ``t`` along axis ``perm[0]`` when given), as (1, lat, lon) if 2-D after."""
    try:
        dset = _h5(path)[key]
        if t is None:
            a = dset[()]
        else:
            idx = [slice(None)] * dset.ndim
            idx[perm[0]] = slice(t, t + 1)
            a = dset[tuple(idx)]
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: variable {key}: cannot be read, file truncated or corrupt ({exc})") from exc
    if perm is not None and len(perm) == a.ndim:
        a = np.transpose(a, perm)
    if fill is not None and a.dtype.kind == "f":
        a = np.where(a == fill, np.nan, a).astype(a.dtype, copy=False)
    return a


@dataclass(frozen=True)
class _Spec:
    """How to read one time step of one variable straight from an HDF5/netCDF4 file."""

    path: str
    key: str  # HDF5 dataset
    name: str  # climviz variable name (for messages)
    t: int | None  # index along the file's time axis (None: the variable has no time axis)
    perm: tuple[int, ...]  # axes of the stored array, in (time,) lat, lon order
    fill: float | None = None  # _FillValue to turn into NaN
    channel: int | None = None  # DeepCAM: index in the last axis of climate/data
    flip: bool = False  # latitude stored north to south
    shift: int = 0  # np.roll along longitude
    t_global: int = 0  # index in the combined run (for messages)
    policy: str = "raise"  # "raise" | "mask" | "none"
    scale: float = 1.0  # conversion to canonical units: value * scale + offset
    offset: float = 0.0
    check_range: str | None = None  # no units in the file: check this channel's plausible range as read


def _finish_step(a: np.ndarray, spec: _Spec) -> np.ndarray:
    """Orient a (lat, lon) step, cast channels to float, check values; returns (lat, lon)."""
    if spec.flip:
        a = a[::-1]
    if spec.shift:
        a = np.roll(a, spec.shift, axis=1)
    if spec.name == LABEL_VAR:
        _check_labels(a, spec)
        return np.ascontiguousarray(a)
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    if spec.fill is not None:
        a = np.where(a == spec.fill, np.nan, a).astype(a.dtype, copy=False)
    if spec.scale != 1.0 or spec.offset != 0.0:
        a = (a * spec.scale + spec.offset).astype(a.dtype, copy=False)
    if spec.check_range is not None and spec.policy != "none":
        _check_range(a, spec.check_range, spec.path, spec.name, spec.t_global)
    return _check_finite(np.ascontiguousarray(a), spec)


def _check_range(a: np.ndarray, channel: str, path: str, name: str, t: int) -> None:
    from climviz.data.units import check_plausible

    check_plausible(a, channel, file=path, variable=name,
                    hint=f" at time index {t}; the file gives no units, so the canonical unit was assumed: "
                         f"pass assume_units={{{channel!r}: '<units>'}} to open_run")


def _range_block(block: np.ndarray, *, channel: str, starts: np.ndarray, files: tuple[str, ...],
                 block_info=None) -> np.ndarray:
    t0 = block_info[0]["array-location"][0][0] if block_info else 0
    for k in range(block.shape[0]):
        fi = int(np.searchsorted(starts, t0 + k, side="right") - 1)
        _check_range(block[k], channel, files[fi], channel, t0 + k)
    return block


def _check_labels(a: np.ndarray, spec: _Spec) -> None:
    if spec.policy == "none":
        return
    ok = a.size == 0 or (a.min() >= 0 and a.max() <= 2 and (a.dtype.kind in "iub" or np.all(a == np.round(a))))
    if not ok:
        bad = ~np.isin(a, FLAG_VALUES)
        found = np.unique(a[bad])[:5]
        raise DataError(
            f"{spec.path}: variable {LABEL_VAR}: expected values in {{0, 1, 2}}, found {found.tolist()} "
            f"({int(bad.sum())} cells) at time index {spec.t_global}"
        )


def _check_finite(a: np.ndarray, spec: _Spec) -> np.ndarray:
    if spec.policy == "none" or np.isfinite(np.add.reduce(a, axis=None)):
        return a  # one fast reduction: finite unless some value is NaN/inf
    fin = np.isfinite(a)
    if fin.all():
        return a
    if spec.policy == "mask":
        return np.where(fin, a, np.nan).astype(a.dtype, copy=False)
    raise DataError(
        f"{spec.path}: variable {spec.name}: expected finite values, found {int((~fin).sum())} NaN/inf at time "
        f"index {spec.t_global} (pass nan_policy='mask' to open_run to mask them as NaN)"
    )


def _read_spec(spec: _Spec) -> np.ndarray:
    """One step of one (non-DeepCAM) variable as (1, lat, lon)."""
    a = _read_h5(spec.path, spec.key, spec.t, spec.perm, None)
    a = a[0] if spec.t is not None else a
    return _finish_step(a, spec)[None]


def _deepcam_channel(data: np.ndarray, spec: _Spec) -> np.ndarray:
    """Channel ``spec.channel`` of a DeepCAM (lat, lon, C) array as (1, lat, lon)."""
    return _finish_step(np.ascontiguousarray(data[..., spec.channel]), spec)[None]


def _spec_graph(name: str, specs: list[_Spec], nlat: int, nlon: int, dtype) -> Any:
    """A dask array with one task per step, each reading its file directly."""
    import dask.array as da

    dsk: dict = {}
    for k, spec in enumerate(specs):
        if spec.channel is not None:
            rk = ("deepcam-read-" + _token(spec.path),)
            dsk[rk] = (_read_h5, spec.path, spec.key)
            dsk[(name, k, 0, 0)] = (_deepcam_channel, rk, spec)
        else:
            dsk[(name, k, 0, 0)] = (_read_spec, spec)
    return da.Array(dsk, name, ((1,) * len(specs), (nlat,), (nlon,)), dtype=dtype)


def _token_specs(specs: list[_Spec]) -> str:
    from dask.base import tokenize

    first, last = specs[0], specs[-1]
    stats = [os.stat(sp.path).st_mtime_ns for sp in (first, last)]
    return tokenize(len(specs), first, last, stats, [sp.path for sp in specs[:: max(1, len(specs) // 64)]])


def _token(path: str) -> str:
    from dask.base import tokenize

    st = os.stat(path)
    return tokenize(path, st.st_mtime_ns, st.st_size)


def _spec_of(ds: xr.Dataset, name: str, t: int) -> _Spec | None:
    """The direct-read spec of step ``t`` of ``name`` if its graph is open_run's own, else None."""
    import dask.array as da

    arr = ds[name].variable._data
    if not isinstance(arr, da.Array) or arr.numblocks[0] != ds.sizes["time"] or arr.numblocks[1:] != (1, 1):
        return None
    layer = arr.dask.layers.get(arr.name)
    task = layer.get((arr.name, t, 0, 0)) if layer is not None and hasattr(layer, "get") else None
    if isinstance(task, tuple) and task and task[0] in (_read_spec, _deepcam_channel):
        return task[-1]
    return None


def read_step(
    ds: xr.Dataset,
    t: int,
    names: Sequence[str],
    out: np.ndarray | None = None,
    *,
    check: bool = True,
    offset: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    fill_value: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read time step ``t`` of ``names`` into one float32 array, fast.

    For runs opened by :func:`open_run` from netCDF4/HDF5 files (and not transformed
    since), each channel's step is read with one HDF5 call straight into ``out``, and
    normalized and checked while it is in the CPU cache; no dask graph is built. Other
    datasets are computed through dask (one graph) or taken from memory.

    Parameters
    ----------
    ds
        The run.
    t
        Time index.
    names
        Variables to read; channels go into ``out`` in this order, ``LABELS`` (if among
        ``names``) is returned separately.
    out
        float32 ``(n_channels, lat, lon)`` to fill (allocated if None), e.g. a
        shared-memory tensor's numpy view.
    check
        Apply open_run's value checks (NaN/inf raise :class:`DataError` naming file,
        variable and step, or become NaN with ``nan_policy="mask"``).
    offset, scale
        Per-channel ``(x - offset) * scale`` applied in place (normalization).
    fill_value
        Replace NaN (masked values) by this after normalization.

    Returns
    -------
    x, labels
        ``x`` is ``out``; ``labels`` ``(lat, lon)`` or None.
    """
    import dask
    import dask.array as da

    chans = [n for n in names if n != LABEL_VAR]
    nlat, nlon = ds.sizes["lat"], ds.sizes["lon"]
    if out is None:
        out = np.empty((len(chans), nlat, nlon), np.float32)
    specs = {n: _spec_of(ds, n, t) for n in names}
    lab = None
    if any(sp is None for sp in specs.values()):  # general case: through dask or numpy
        arrs = [ds[n].data[t] for n in names]
        vals = dask.compute(*arrs, scheduler="synchronous") if any(isinstance(a, da.Array) for a in arrs) else arrs
        got = dict(zip(names, vals))
        for i, c in enumerate(chans):
            out[i] = got[c]
        lab = np.asarray(got[LABEL_VAR]) if LABEL_VAR in got else None
        specs = {}
    deepcam: dict[str, np.ndarray] = {}
    for i, c in enumerate(chans):
        sp = specs.get(c)
        direct = False
        if sp is not None:
            if sp.channel is not None:
                if sp.path not in deepcam:
                    deepcam[sp.path] = _read_h5(sp.path, sp.key)
                out[i] = _finish_step(deepcam[sp.path][..., sp.channel], sp if check else
                                      dataclasses.replace(sp, policy="none"))
            elif (sp.t is not None and sp.perm == (0, 1, 2) and not sp.flip and not sp.shift
                  and sp.fill is None and sp.scale == 1.0 and sp.offset == 0.0 and sp.check_range is None
                  and _h5(sp.path)[sp.key].dtype == np.float32):
                try:
                    _h5(sp.path)[sp.key].read_direct(out[i : i + 1], source_sel=np.s_[sp.t : sp.t + 1])
                except OSError as exc:
                    raise DataError(f"{sp.path}: variable {sp.key}: cannot be read, file truncated or corrupt "
                                    f"({exc})") from exc
                direct = True
            else:
                out[i] = _read_spec(sp if check else dataclasses.replace(sp, policy="none"))[0]
        xi = out[i]
        if offset is not None:
            xi -= offset[i]
            xi *= scale[i]
        if (direct and check and sp.policy != "none") or fill_value is not None:
            if not np.isfinite(np.add.reduce(xi, axis=None)):  # cheap: the channel is in cache
                if direct and check and sp.policy == "raise":
                    _check_finite(xi, sp)  # raises with file, variable and step
                np.copyto(xi, np.float32(np.nan), where=~np.isfinite(xi))
                if fill_value is not None:
                    np.nan_to_num(xi, copy=False, nan=fill_value)
    if LABEL_VAR in specs:
        lab = _read_spec(specs[LABEL_VAR])[0]
    return out, lab


def _open_deepcam(path: Path, f, user_channels: Sequence[str] | str | None = None,
                  first: bool = True) -> _FilePart:
    if DEEPCAM_DATA not in f:
        raise DataError(f"{path}: HDF5 file without '{DEEPCAM_DATA}' (expected a DeepCAM file); found {list(f)}")
    dset = f[DEEPCAM_DATA]
    if dset.ndim != 3:
        raise DataError(
            f"{path}: variable {DEEPCAM_DATA}: expected rank 3 (lat, lon, channel), found shape {dset.shape}"
        )
    chans = dset.attrs.get("channels")
    from_attr = chans is not None
    if chans is not None:
        chans = [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(chans)]
    elif isinstance(user_channels, (list, tuple)) and len(user_channels) == dset.shape[2]:
        chans = list(user_channels)  # the order the user states
    else:
        raise DataError(
            f"{path}: variable {DEEPCAM_DATA}: no 'channels' attribute, so the order of its {dset.shape[2]} "
            f"channels is unknown; pass channels=[...] to open_run with all {dset.shape[2]} names in the "
            f"file's order (e.g. {list(CHANNELS)})"
        )
    if dset.shape[2] != len(chans):
        raise DataError(
            f"{path}: variable {DEEPCAM_DATA}: expected {len(chans)} channels in the last axis "
            f"(lat, lon, channel), found shape {dset.shape}"
        )
    nlat, nlon = dset.shape[:2]
    lat, lon = grid_coords((nlat, nlon))
    specs = {c: [_Spec(str(path), DEEPCAM_DATA, c, None, (0, 1, 2), channel=j)] for j, c in enumerate(chans)}
    lab_key = next((k for k in DEEPCAM_LABELS if k in f), None)
    if lab_key is not None:
        ld = f[lab_key]
        if ld.shape != (nlat, nlon):
            raise DataError(
                f"{path}: variable {lab_key}: expected shape {(nlat, nlon)} (the grid of {DEEPCAM_DATA}), "
                f"found {ld.shape}"
            )
        specs[LABEL_VAR] = [_Spec(str(path), lab_key, LABEL_VAR, None, (0, 1))]
    t_attr = f.attrs.get("time")
    if t_attr is not None:
        t_attr = t_attr.decode() if isinstance(t_attr, bytes) else str(t_attr)
        try:
            times = np.array([np.datetime64(pd.Timestamp(t_attr), "ns")])
        except ValueError as exc:
            raise DataError(f"{path}: attribute time: expected an ISO 8601 date, found {t_attr!r}") from exc
    else:
        t = _time_from_name(path)
        times = None if t is None else np.array([t])
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items() if k != "time"}
    dtypes = {c: np.dtype(np.float32) if dset.dtype.kind != "f" else dset.dtype for c in chans}
    if lab_key is not None:
        dtypes[LABEL_VAR] = f[lab_key].dtype
    if first:
        _check_deepcam_order(path, dset, chans, from_attr)
    from climviz.data.units import CANONICAL_UNITS

    order = "its 'channels' attribute" if from_attr else "the channels= given to open_run"
    var_attrs = {c: {"units": CANONICAL_UNITS[c],
                     "climviz_source": f"{DEEPCAM_DATA}[..., {j}] (channel order from {order}); DeepCAM files "
                                       "are in CAM5's (canonical) units, checked against plausible ranges"}
                 for j, c in enumerate(chans) if c in CANONICAL_UNITS}
    return _FilePart(path, times, lat, lon, {}, attrs, var_attrs, "deepcam", specs, dtypes)


def _check_deepcam_order(path: Path, dset, chans: list[str], from_attr: bool) -> None:
    """Plausibility ranges per channel (climviz.data.units.PLAUSIBLE_RANGES) catch swapped channels."""
    from climviz.data.units import plausible, PLAUSIBLE_RANGES

    step = max(1, min(dset.shape[0], dset.shape[1]) // 48)
    try:
        sample = np.asarray(dset[::step, ::step, :], dtype=np.float64)
    except OSError as exc:
        raise DataError(f"{path}: variable {DEEPCAM_DATA}: cannot be read, file truncated or corrupt ({exc})") from exc
    bad = []
    for j, c in enumerate(chans):
        ok, lo, hi = plausible(sample[..., j], c)
        if not ok:
            bad.append(f"{c} (index {j}): found {lo:.4g}..{hi:.4g}, expected {PLAUSIBLE_RANGES[c][0]:g}.."
                       f"{PLAUSIBLE_RANGES[c][1]:g}")
    if bad:
        said = "its 'channels' attribute" if from_attr else "channels="
        raise DataError(
            f"{path}: variable {DEEPCAM_DATA}: values not plausible for the channel order given by {said} "
            f"(swapped channels or non-canonical units?): " + "; ".join(bad)
        )


_NC_INTERNAL = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid", "_Netcdf4Coordinates",
                "_NCProperties", "_nc3_strict", "_FillValue"}


def _clean_attrs(attrs) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if k in _NC_INTERNAL:
            continue
        if isinstance(v, bytes):
            v = v.decode(errors="replace")
        elif isinstance(v, np.ndarray) and v.size == 1:
            v = v.item()
            v = v.decode(errors="replace") if isinstance(v, bytes) else v
        out[k] = v
    return out


def _open_nc4_fast(path: Path, f, channels: Sequence[str], first: bool = True) -> _FilePart | None:
    """netCDF4 (HDF5) file read with h5py: metadata only, one read task per variable and step.

    Returns None for files this fast path does not handle (groups, packed values, odd
    dimension scales); those go through xarray.
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
    if first and any(("scale_factor" in dsets[n].attrs or "add_offset" in dsets[n].attrs) for n in want):
        return None
    ref = dims_of[channels[0]]
    lat_n = next((n for n in _LAT_NAMES if n in ref), None)
    lon_n = next((n for n in _LON_NAMES if n in ref), None)
    if lat_n is None or lon_n is None:
        raise DataError(f"{path}: variable {channels[0]}: expected dimensions lat/latitude and lon/longitude, "
                        f"found {tuple(ref)} with shape {f[channels[0]].shape}")
    time_in_file = "time" in f
    n_file_times = f["time"].shape[0] if time_in_file and isinstance(f["time"], h5py.Dataset) and \
        f["time"].ndim == 1 else 0
    sizes = dict(zip(ref, f[channels[0]].shape))
    nlat, nlon = sizes[lat_n], sizes[lon_n]
    specs: dict[str, list[_Spec]] = {}
    dtypes: dict[str, np.dtype] = {}
    var_attrs: dict[str, dict] = {}
    for name in want:
        d = dsets[name]
        dims = dims_of[name]
        canon = ["time" if x == "time" else "lat" if x == lat_n else "lon" if x == lon_n else x for x in dims]
        ok = set(canon) == {"time", "lat", "lon"} or (set(canon) == {"lat", "lon"} and (name == LABEL_VAR or "time" not in sizes))
        if ok and set(canon) == {"lat", "lon"} and name != LABEL_VAR and n_file_times > 1:
            ok = False  # a 2-D field in a time series: which step would it be?
        if not ok:
            raise DataError(f"{path}: variable {name}: expected dimensions (time, lat, lon), "
                            f"found {tuple(dims)} with shape {d.shape}"
                            + (f" in a file with {n_file_times} time steps" if n_file_times > 1 else ""))
        shp = dict(zip(canon, d.shape))
        if (shp["lat"], shp["lon"]) != (nlat, nlon):
            raise DataError(f"{path}: variable {name}: expected grid (lat, lon) = {(nlat, nlon)}, "
                            f"found {(shp['lat'], shp['lon'])}")
        fill = d.attrs.get("_FillValue") if d.dtype.kind == "f" else None
        fill = float(np.asarray(fill).ravel()[0]) if fill is not None else None
        if "time" in canon:
            perm = tuple(canon.index(x) for x in ("time", "lat", "lon"))
            specs[name] = [_Spec(str(path), name, name, k, perm, fill) for k in range(shp["time"])]
        else:
            perm = tuple(canon.index(x) for x in ("lat", "lon"))
            # labels without time in a file with time: the same labels at each step
            specs[name] = [_Spec(str(path), name, name, None, perm, fill)] * sizes.get("time", 1)
        dtypes[name] = d.dtype if (d.dtype.kind == "f" or name == LABEL_VAR) else np.dtype(np.float32)
        if first:
            var_attrs[name] = _clean_attrs(d.attrs)

    def coord(n: str, size: int, which: int) -> np.ndarray:
        if n in f and isinstance(f[n], h5py.Dataset) and f[n].shape == (size,) and \
                not str(f[n].attrs.get("NAME", b"")).count("This is a netCDF dimension"):
            return np.asarray(f[n][()], dtype=float)
        return grid_coords((nlat, nlon))[which]

    lat, lon = coord(lat_n, nlat, 0), coord(lon_n, nlon, 1)
    times = None
    if time_in_file and "units" in f["time"].attrs and "time" in sizes:
        from xarray.coding.times import decode_cf_datetime

        ta = _clean_attrs(f["time"].attrs)
        try:
            times = np.asarray(decode_cf_datetime(np.asarray(f["time"][()]), ta["units"], ta.get("calendar")))
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{path}: variable time: cannot decode units {ta['units']!r}: {exc}") from exc
    elif "time" not in sizes:
        t = f.attrs.get("time")
        if t is not None:
            try:
                times = np.array([np.datetime64(pd.Timestamp(str(t.decode() if isinstance(t, bytes) else t)), "ns")])
            except ValueError:
                times = None
        if times is None:
            tn = _time_from_name(path)
            times = None if tn is None else np.array([tn])
    return _FilePart(path, times, lat, lon, {}, _clean_attrs(f.attrs) if first else {}, var_attrs, "netcdf",
                     specs, dtypes)


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
        if not hasattr(arr, "cdata_shape"):
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


def _open_xarray(path: Path, kind: str, channels: Sequence[str], ds: xr.Dataset | None = None) -> _FilePart:
    if ds is None:
        ds = _xr_open(path, kind)
    lat_n, lon_n = _dim_name(ds, _LAT_NAMES), _dim_name(ds, _LON_NAMES)
    if lat_n is None or lon_n is None:
        raise DataError(
            f"{path}: expected dimensions lat/latitude and lon/longitude, found dimensions {dict(ds.sizes)}"
        )
    ren = {k: v for k, v in ((lat_n, "lat"), (lon_n, "lon")) if k != v}
    if ren:
        ds = ds.rename(ren)
    time_n = "time" if "time" in ds.dims else None
    present = [v for v in ds.data_vars]
    missing = [c for c in channels if c not in ds.data_vars]
    if missing:
        raise DataError(
            f"{path}: missing channel(s) {missing}; expected {list(channels)}; found variables {present}"
        )
    nlat, nlon = ds.sizes["lat"], ds.sizes["lon"]
    lat = ds["lat"].values.astype(float) if "lat" in ds.coords else grid_coords((nlat, nlon))[0]
    lon = ds["lon"].values.astype(float) if "lon" in ds.coords else grid_coords((nlat, nlon))[1]
    want = [*channels] + ([LABEL_VAR] if LABEL_VAR in ds.data_vars else [])
    arrays, var_attrs = {}, {}
    for name in want:
        var = ds[name]
        dims = set(var.dims)
        ok = dims == {"time", "lat", "lon"} or (dims == {"lat", "lon"} and (name == LABEL_VAR or time_n is None))
        if not ok:
            raise DataError(
                f"{path}: variable {name}: expected dimensions (time, lat, lon), "
                f"found {var.dims} with shape {var.shape}"
                + (f" in a file with {ds.sizes['time']} time steps" if time_n is not None else "")
            )
        if "time" in dims:
            var = var.transpose("time", "lat", "lon")
            arr = var.data
        else:
            var = var.transpose("lat", "lon")
            arr = var.data[None]
            if time_n is not None:  # labels without time in a file with time: same labels each step
                import dask.array as da

                arr = da.broadcast_to(arr, (ds.sizes["time"], nlat, nlon))
        arrays[name] = arr
        var_attrs[name] = dict(var.attrs)
    times = None
    if time_n is not None and "time" in ds.coords:
        times = ds["time"].values
    elif time_n is None:
        t = ds.attrs.get("time")
        tn = _time_from_name(path)
        if t is not None:
            try:
                times = np.array([np.datetime64(pd.Timestamp(str(t)), "ns")])
            except ValueError:
                times = None
        if times is None and tn is not None:
            times = np.array([tn])
    return _FilePart(path, times, lat, lon, arrays, dict(ds.attrs), var_attrs, "zarr" if kind == "zarr" else "netcdf")


def _orient(part: _FilePart) -> _FilePart:
    """Latitude ascending, longitude in [0, 360) increasing; errors for irregular axes."""
    lat, lon = part.lat, part.lon
    if lat.ndim != 1 or lon.ndim != 1:
        raise DataError(f"{part.path}: expected 1-D lat and lon coordinates, found lat{lat.shape} lon{lon.shape}")
    if not (np.isfinite(lat).all() and np.abs(lat).max() <= 90.0):
        raise DataError(f"{part.path}: variable lat: expected values in [-90, 90], found {lat.min()}..{lat.max()}")
    if lat.size > 1 and np.all(np.diff(lat) < 0):
        if part.specs is not None:
            part.specs = {k: [dataclasses.replace(sp, flip=True) for sp in v] for k, v in part.specs.items()}
        else:
            part.arrays = {k: a[:, ::-1, :] for k, a in part.arrays.items()}
        lat = lat[::-1]
    elif lat.size > 1 and not np.all(np.diff(lat) > 0):
        raise DataError(f"{part.path}: variable lat: expected strictly monotonic latitudes, found {lat[:6]}...")
    if not np.isfinite(lon).all():
        raise DataError(f"{part.path}: variable lon: expected finite longitudes, found NaN/inf")
    lon360 = np.mod(lon, 360.0)
    shift = int(np.argmin(lon360))
    if shift:
        if part.specs is not None:
            part.specs = {k: [dataclasses.replace(sp, shift=-shift) for sp in v] for k, v in part.specs.items()}
        else:
            part.arrays = {k: _roll_lon(a, -shift) for k, a in part.arrays.items()}
        lon360 = np.roll(lon360, -shift)
    if lon360.size > 1 and not np.all(np.diff(lon360) > 0):
        raise DataError(
            f"{part.path}: variable lon: expected distinct longitudes increasing around the globe "
            f"(in [0, 360) or [-180, 180)), found {lon[:6]}..."
        )
    part.lat, part.lon = lat, lon360
    return part


def _roll_lon(a, shift: int):
    import dask.array as da

    return da.roll(a, shift, axis=2)


def _direct(names: Iterable[str], channels: Sequence[str] | str, channel_map) -> list[str] | None:
    """The channels to read under their own names (ClimateNet/CESM files), or None: product path."""
    names = set(names)
    if channel_map:
        return None
    if isinstance(channels, str):  # "available": a ClimateNet file with all 16 channels
        return list(CHANNELS) if all(c in names for c in CHANNELS) else None
    return list(channels) if all(c in names for c in channels) else None


def _open_part(path: Path, channels: Sequence[str] | str, first: bool = True, *, channel_map=None,
               assume_units=None, user_channels: Any = None) -> _FilePart:
    kind = _sniff(path)
    if kind == "grib":
        from climviz.data.formats.grib import open_variables

        variables, attrs = open_variables(path)
        return _orient(_product_part(path, variables, attrs, channels, channel_map, assume_units, "grib"))
    if kind == "hdf5":
        try:
            f = _h5(str(path))
            if DEEPCAM_DATA in f:
                return _orient(_open_deepcam(path, f, user_channels if user_channels is not None else channels,
                                             first))
            direct = _direct(f.keys(), channels, channel_map)
            if direct is not None:
                part = _open_nc4_fast(path, f, direct, first)
                if part is not None:
                    return _orient(part)
        except DataError:
            raise
        except OSError as exc:
            raise DataError(f"{path}: HDF5/netCDF4 file is truncated or corrupt: {exc}") from exc
    ds = _xr_open(path, kind)
    direct = _direct(ds.data_vars, channels, channel_map)
    if direct is None:
        return _orient(_product_part(path, dict(ds.data_vars), dict(ds.attrs), channels, channel_map,
                                     assume_units, "zarr" if kind == "zarr" else "netcdf"))
    return _orient(_open_xarray(path, kind, direct, ds))


def _product_part(path, variables: dict, attrs: dict, channels, channel_map, assume_units, fmt: str) -> _FilePart:
    """A file of a real product (ERA5, CMIP6, CESM, GFS...): channels found and made canonical."""
    import dask.array as da

    from climviz.data.formats.products import canonical_variables

    chans = channels if isinstance(channels, str) else list(channels)
    out = canonical_variables(variables, chans, channel_map=channel_map, assume_units=assume_units, file=path)
    if not out:
        raise DataError(
            f"{path}: no climviz channel found (by CF standard_name, climviz/CESM, ERA5, CMIP6 or GFS names); "
            f"found variables {sorted(map(str, variables))[:60]}; name yours with channel_map={{'PSL': 'var', ...}}"
        )
    ref = next(iter(out.values()))
    for ch, a in out.items():
        if a.shape[1:] != ref.shape[1:] or a.sizes["time"] != ref.sizes["time"]:
            raise DataError(f"{path}: variable {a.attrs.get('climviz_source', ch)}: grid/time {dict(a.sizes)} differs "
                            f"from that of {next(iter(out))} {dict(ref.sizes)}")
    arrays, var_attrs = {}, {}
    for ch, a in out.items():
        d = a.data
        arrays[ch] = d.rechunk((1, -1, -1)) if isinstance(d, da.Array) else da.from_array(d, chunks=(1, -1, -1))
        var_attrs[ch] = dict(a.attrs)
    lab = variables.get(LABEL_VAR)
    if lab is not None:
        try:
            lab_tll = lab.rename({k: v for k, v in (("latitude", "lat"), ("longitude", "lon")) if k in lab.dims})
            if "time" not in lab_tll.dims:
                lab_tll = lab_tll.expand_dims(time=ref.sizes["time"])
            lab_tll = lab_tll.transpose("time", "lat", "lon")
            ld = lab_tll.data
            arrays[LABEL_VAR] = ld if isinstance(ld, da.Array) else da.from_array(ld, chunks=(1, -1, -1))
            var_attrs[LABEL_VAR] = dict(lab.attrs)
        except ValueError as exc:
            raise DataError(f"{path}: variable {LABEL_VAR}: expected dimensions (time, lat, lon), "
                            f"found {lab.dims}") from exc
    times = ref["time"].values if "time" in ref.coords else None
    if times is not None and np.asarray(times).dtype.kind not in "Mm" and np.asarray(times).dtype != object:
        times = None
    lat = np.asarray(ref["lat"].values, dtype=float)
    lon = np.asarray(ref["lon"].values, dtype=float)
    keep = {k: v for k, v in attrs.items() if isinstance(v, (str, int, float, np.integer, np.floating))}
    return _FilePart(path, times, lat, lon, arrays, keep, var_attrs, fmt)


# --------------------------------------------------------------------------------------
# lazy value checks
# --------------------------------------------------------------------------------------
def _check_block(block: np.ndarray, *, name: str, starts: np.ndarray, files: tuple[str, ...], policy: str,
                 block_info=None) -> np.ndarray:
    t0 = block_info[0]["array-location"][0][0] if block_info else 0
    if name == LABEL_VAR:
        bad = ~np.isin(block, FLAG_VALUES)
        if bad.any():
            ti = int(np.nonzero(bad.any(axis=(1, 2)))[0][0])
            fi = int(np.searchsorted(starts, t0 + ti, side="right") - 1)
            found = np.unique(block[bad])[:5]
            raise DataError(
                f"{files[fi]}: variable {LABEL_VAR}: expected values in {{0, 1, 2}}, found {found.tolist()} "
                f"({int(bad.sum())} cells) at time index {t0 + ti}"
            )
        return block
    fin = np.isfinite(block)
    if fin.all():
        return block
    if policy == "mask":
        return np.where(fin, block, np.nan).astype(block.dtype, copy=False)
    ti = int(np.nonzero(~fin.all(axis=(1, 2)))[0][0])
    fi = int(np.searchsorted(starts, t0 + ti, side="right") - 1)
    raise DataError(
        f"{files[fi]}: variable {name}: expected finite values, found {int((~fin).sum())} NaN/inf at time "
        f"index {t0 + ti} (pass nan_policy='mask' to open_run to mask them as NaN)"
    )


def _checked(arr, name, starts, files, policy):
    fn = functools.partial(_check_block, name=name, starts=starts, files=files, policy=policy)
    from dask.base import tokenize

    # a unique key name: two runs checked in one graph (a.PSL - b.PSL) must not share keys
    return arr.map_blocks(fn, dtype=arr.dtype, name=f"check-{name}-{tokenize(arr.name, name, policy, files)}")


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def open_run(
    paths: PathLike | Sequence[PathLike] | xr.Dataset,
    *,
    channels: Sequence[str] | None = None,
    chunks: dict[str, int] | None = None,
    nan_policy: str = "raise",
    check_values: str = "lazy",
    expect_grid: tuple[int, int] | None = None,
    require_labels: bool = False,
    channel_map: dict[str, str] | None = None,
    assume_units: str | dict[str, str] | None = None,
) -> xr.Dataset:
    """Open a climate run lazily as one dataset with the canonical layout.

    Parameters
    ----------
    paths
        A file, a list of files, a glob (``"runs/*.nc"``), a directory, a Zarr store, or an
        ``xr.Dataset`` (validated and normalized the same way).
    channels
        Channels required (default: the 16 of :data:`~climviz.data.schema.CHANNELS`); only
        these (in this order) and ``LABELS`` are kept. ``"available"``: every channel the
        file has (the 16 and ``VORT850``, the 850 hPa relative vorticity in s-1), none
        required. Any other string is a :class:`~climviz.errors.ConfigError`.
    chunks
        Dask chunk sizes, e.g. ``{"time": 4}``; default one time step per chunk and the
        whole grid.
    nan_policy
        ``"raise"`` (default): NaN/inf in a channel raise :class:`DataError` naming the file,
        the variable and the time step when read. ``"mask"``: they become NaN.
    check_values
        ``"lazy"`` (default, checks as data are read), ``"eager"`` (reads everything now,
        in a streaming pass, see :func:`validate_run`) or ``"none"``.
    expect_grid
        ``(nlat, nlon)`` the run must have, e.g. :data:`~climviz.data.schema.PAPER_GRID`.
    require_labels
        Raise if the run has no ``LABELS``.
    channel_map
        Your variable names: ``{"PSL": "slp", "U850": "uwnd"}`` (a variable with a pressure
        coordinate is taken at the channel's level).
    assume_units
        Units of channels that have no ``units`` attribute: one string for all, or
        ``{"PSL": "hPa"}``. Without it a channel with no units is accepted only when its
        values are plausible in the canonical unit (a warning says so; see
        :mod:`climviz.data.units`).

    Files that do not carry every channel under its ClimateNet name (ERA5, CMIP6, CESM/CAM,
    GFS GRIB...) are read through :mod:`climviz.data.formats.products`: channels are found
    by CF ``standard_name``, then by known product names, selected at their pressure level and
    converted. Every channel's ``climviz_source`` attribute and the dataset's
    ``channel_sources`` attribute (and ``history``) say where it came from and how it was
    converted. Units are always converted to the canonical ones (Pa, K, m s-1, kg m-2,
    kg kg-1, m) or refused with a :class:`DataError`.

    Returns
    -------
    xarray.Dataset
        Dask-backed, dims ``(time, lat, lon)``, latitude ascending, longitude in [0, 360),
        CF attributes; attribute ``source_files`` lists the files.

    Raises
    ------
    DataError
        Missing file, not netCDF/HDF5/Zarr, truncated or corrupt file, missing channel,
        wrong rank or grid, grids differing between files, duplicate or unsorted times,
        labels outside {0, 1, 2}, NaN/inf (see ``nan_policy``). The message names the file,
        the variable, what was expected and what was found.
    """
    if nan_policy not in ("raise", "mask"):
        raise DataError(f"open_run: nan_policy must be 'raise' or 'mask', found {nan_policy!r}")
    if check_values not in ("lazy", "eager", "none"):
        raise DataError(f"open_run: check_values must be 'lazy', 'eager' or 'none', found {check_values!r}")
    user_channels = channels
    if isinstance(channels, str):
        if channels != AVAILABLE:
            from climviz.errors import ConfigError

            raise ConfigError(f"open_run: channels must be a list of channel names or 'available', found {channels!r}")
        chans: Sequence[str] | str = AVAILABLE
    else:
        chans = tuple(CHANNELS if channels is None else channels)
        bad = [c for c in chans if not isinstance(c, str)]
        if bad:
            from climviz.errors import ConfigError

            raise ConfigError(f"open_run: channels must be names (str), found {bad[:5]}")
    if isinstance(paths, xr.Dataset):
        parts = [_part_from_dataset(paths, chans, channel_map, assume_units)]
    else:
        files = find_files(paths)
        deepcam_order = None if user_channels is None else (
            AVAILABLE if isinstance(user_channels, str) else list(user_channels))
        parts = [_open_part(files[0], chans, channel_map=channel_map, assume_units=assume_units,
                            user_channels=deepcam_order if deepcam_order is not None else AVAILABLE)]
        if isinstance(chans, str):  # "available": what the first file has, required in the others
            chans = tuple(n for n in parts[0].names if n != LABEL_VAR)
        # later files: attributes are taken from the first file only (reading them is slow)
        parts += [_open_part(p, chans, first=False, channel_map=channel_map, assume_units=assume_units,
                             user_channels=deepcam_order if deepcam_order is not None else AVAILABLE)
                  for p in files[1:]]
    if isinstance(chans, str):
        chans = tuple(n for n in parts[0].names if n != LABEL_VAR)
    for part in parts:
        missing = [c for c in chans if c not in part.names]
        if missing:
            raise DataError(
                f"{part.path}: missing channel(s) {missing}; expected {list(chans)}; "
                f"found {[k for k in part.names if k != LABEL_VAR]}"
            )
    ds = _combine(parts, chans, chunks, nan_policy, check_values != "none", assume_units)
    if expect_grid is not None and (ds.sizes["lat"], ds.sizes["lon"]) != tuple(expect_grid):
        raise DataError(
            f"{parts[0].path}: expected grid (lat, lon) = {tuple(expect_grid)}, "
            f"found {(ds.sizes['lat'], ds.sizes['lon'])}"
        )
    if require_labels and LABEL_VAR not in ds:
        raise DataError(f"{parts[0].path}: variable {LABEL_VAR}: expected labels, found none")
    if check_values == "eager":
        validate_run(ds, channels=list(chans))
    return ds


def _part_from_dataset(ds: xr.Dataset, chans: Sequence[str] | str, channel_map=None,
                       assume_units=None) -> _FilePart:
    import dask.array as da

    name = Path(str(ds.encoding.get("source", "<dataset>")))
    direct = _direct(ds.data_vars, chans, channel_map)
    if direct is None and isinstance(chans, str):
        present = [c for c in CHANNELS if c in ds.data_vars]
        # "available" on an in-memory run named the climviz way (a subset of the 16)
        direct = present if present and not channel_map and not any(
            _is_product_name(v) for v in ds.data_vars if v not in present) else None
    if direct is None:
        return _orient(_product_part(name, dict(ds.data_vars), dict(ds.attrs), chans, channel_map,
                                     assume_units, "dataset"))
    chans = direct
    lat_n, lon_n = _dim_name(ds, _LAT_NAMES), _dim_name(ds, _LON_NAMES)
    if lat_n is None or lon_n is None:
        raise DataError(f"{name}: expected dimensions lat and lon, found {dict(ds.sizes)}")
    ds = ds.rename({k: v for k, v in ((lat_n, "lat"), (lon_n, "lon")) if k != v})
    missing = [c for c in chans if c not in ds.data_vars]
    if missing:
        raise DataError(f"{name}: missing channel(s) {missing}; expected {list(chans)}; found {list(ds.data_vars)}")
    arrays, var_attrs = {}, {}
    for v in [*chans] + ([LABEL_VAR] if LABEL_VAR in ds else []):
        var = ds[v]
        if set(var.dims) == {"lat", "lon"} and "time" not in ds.dims:
            var = var.expand_dims("time")
        if set(var.dims) != {"time", "lat", "lon"}:
            raise DataError(f"{name}: variable {v}: expected dimensions (time, lat, lon), found {var.dims}")
        var = var.transpose("time", "lat", "lon")
        data = var.data
        arrays[v] = data if isinstance(data, da.Array) else da.from_array(data, chunks=(1, -1, -1))
        var_attrs[v] = dict(var.attrs)
    times = ds["time"].values if "time" in ds.coords else None
    nlat, nlon = ds.sizes["lat"], ds.sizes["lon"]
    lat = ds["lat"].values.astype(float) if "lat" in ds.coords else grid_coords((nlat, nlon))[0]
    lon = ds["lon"].values.astype(float) if "lon" in ds.coords else grid_coords((nlat, nlon))[1]
    return _orient(_FilePart(name, times, lat, lon, arrays, dict(ds.attrs), var_attrs, "dataset"))


def _is_product_name(v) -> bool:
    from climviz.data.formats.products import PRODUCT_NAMES, STANDARD_NAMES  # noqa: F401

    return any(str(v) == n for names in PRODUCT_NAMES.values() for _, n in names)


def _combine(parts: list[_FilePart], chans, chunks, nan_policy, check, assume_units=None) -> xr.Dataset:
    import dask.array as da

    from climviz.data import units as _units

    ref = parts[0]
    sources: list[str] = []
    assumed: list[str] = []
    for p in parts[1:]:
        if p.lat.shape != ref.lat.shape or p.lon.shape != ref.lon.shape:
            raise DataError(
                f"{p.path}: grid differs between files: expected (lat, lon) = {(ref.lat.size, ref.lon.size)} "
                f"as in {ref.path}, found {(p.lat.size, p.lon.size)}"
            )
        if not (np.allclose(p.lat, ref.lat, atol=1e-4) and np.allclose(p.lon, ref.lon, atol=1e-4)):
            raise DataError(
                f"{p.path}: grid differs between files: latitudes/longitudes do not match those of {ref.path} "
                f"(largest difference {max(np.abs(p.lat - ref.lat).max(), np.abs(p.lon - ref.lon).max()):.4g} deg)"
            )
    has_labels = [LABEL_VAR in p.names for p in parts]
    if any(has_labels) and not all(has_labels):
        bad = parts[has_labels.index(False)]
        raise DataError(f"{bad.path}: variable {LABEL_VAR}: expected labels as in {parts[has_labels.index(True)].path}, found none")
    # time axis
    if all(p.times is not None for p in parts):
        kinds = {np.asarray(p.times).dtype.kind for p in parts}
        if len(kinds) > 1:
            raise DataError(f"{parts[0].path}: time: expected one calendar/type in all files, found {kinds}")
        for p in parts:
            t = np.asarray(p.times)
            if t.size > 1 and not all(t[1:] > t[:-1]):
                dup = pd.Index(t).duplicated()
                what = f"duplicate time {t[dup][0]}" if dup.any() else "times not increasing"
                raise DataError(f"{p.path}: variable time: expected strictly increasing times, found {what}")
        order = sorted(range(len(parts)), key=lambda i: parts[i].times[0])
        parts = [parts[i] for i in order]
        times = np.concatenate([np.asarray(p.times) for p in parts])
        if times.size > 1 and not all(times[1:] > times[:-1]):
            k = int(np.nonzero(~(times[1:] > times[:-1]))[0][0])
            starts = np.cumsum([0] + [p.n_times for p in parts])
            fa = parts[int(np.searchsorted(starts, k, side="right") - 1)].path
            fb = parts[int(np.searchsorted(starts, k + 1, side="right") - 1)].path
            raise DataError(
                f"{fb}: variable time: expected times not already in the run, found duplicate/overlapping "
                f"time {times[k + 1]} (also in {fa})"
            )
    else:
        n = sum(p.n_times for p in parts)
        times = np.arange(n)
    starts = np.cumsum([0] + [p.n_times for p in parts])[:-1]
    files = tuple(str(p.path) for p in parts)
    tchunk = (chunks or {}).get("time", 1)
    data_vars = {}
    names = [*chans] + ([LABEL_VAR] if all(has_labels) else [])
    fast = all(p.specs is not None for p in parts)
    for name in names:
        want = (tchunk, (chunks or {}).get("lat", -1), (chunks or {}).get("lon", -1))
        if fast:
            # one task per step reading its file directly: cheap graphs, and read_step() can
            # bypass dask entirely
            specs = [dataclasses.replace(sp, t_global=int(s0 + k), policy=nan_policy if check else "none")
                     for p, s0 in zip(parts, starts) for k, sp in enumerate(p.specs[name])]
            dtype = parts[0].dtypes[name]
            arr = _spec_graph(f"read-{name}-{_token_specs(specs)}", specs, ref.lat.size, ref.lon.size, dtype)
            if tchunk != 1 or want[1:] != (-1, -1):
                arr = arr.rechunk(want)
        else:
            for p in parts:
                if p.specs is not None and name not in p.arrays:
                    quiet = [dataclasses.replace(sp, policy="none") for sp in p.specs[name]]  # checked below
                    p.arrays[name] = _spec_graph(f"read-{name}-part-{_token_specs(quiet)}", quiet,
                                                 ref.lat.size, ref.lon.size, p.dtypes[name])
            arr = da.concatenate([p.arrays[name] for p in parts], axis=0) if len(parts) > 1 else parts[0].arrays[name]
            arr = arr.rechunk(want)
            if name != LABEL_VAR and arr.dtype.kind != "f":
                arr = arr.astype(np.float32)
            if check:
                arr = _checked(arr, name, np.asarray(starts), files, nan_policy)
        attrs = dict(ref.var_attrs.get(name, {}))
        if name == LABEL_VAR:
            attrs.update(label_attrs())
        else:
            exp = CHANNEL_ATTRS.get(name, {})
            for key in ("_FillValue", "missing_value", "coordinates"):
                attrs.pop(key, None)
            # units: converted to the canonical unit, or a DataError (climviz.data.units)
            conv, how = _units.resolve(name, attrs, None, file=ref.path, variable=name, assume_units=assume_units,
                                       defer=True)
            if conv.note == "assumed":  # no units: canonical assumed, plausible range checked as read
                assumed.append(name)
                if fast:
                    specs = [dataclasses.replace(sp, check_range=name) for sp in specs]
                    arr = _spec_graph(f"read-{name}-{_token_specs(specs)}-r", specs, ref.lat.size, ref.lon.size,
                                      parts[0].dtypes[name])
                    if tchunk != 1 or want[1:] != (-1, -1):
                        arr = arr.rechunk(want)
                elif check:
                    from dask.base import tokenize

                    fn = functools.partial(_range_block, channel=name, starts=np.asarray(starts), files=files)
                    arr = arr.map_blocks(fn, dtype=arr.dtype, name=f"range-{name}-{tokenize(arr.name, files)}")
            if not conv.identity:
                if fast:
                    specs = [dataclasses.replace(sp, scale=conv.scale, offset=conv.offset) for sp in specs]
                    arr = _spec_graph(f"read-{name}-{_token_specs(specs)}-u", specs, ref.lat.size, ref.lon.size,
                                      parts[0].dtypes[name])
                    if tchunk != 1 or want[1:] != (-1, -1):
                        arr = arr.rechunk(want)
                else:
                    arr = _units.convert_values(arr, conv)
            if not conv.identity or conv.note not in ("", "assumed"):
                attrs["units_converted_from"] = conv.found
            if conv.note == "assumed":
                attrs["units_assumed"] = how
            attrs.update({k: v for k, v in exp.items() if k not in attrs or k == "units"})
            if name == _units.VORT850:
                attrs["units"] = "s-1"
            attrs.setdefault("climviz_source", f"variable {name!r}, found by its climviz/CESM name; {how}")
            sources.append(f"{name}: {attrs['climviz_source']}")
        data_vars[name] = (("time", "lat", "lon"), arr, attrs)
    if assumed:
        import warnings

        from climviz.data.units import CANONICAL_UNITS

        warnings.warn(
            f"{ref.path}: no units attribute for {', '.join(assumed)}: assumed the canonical units "
            f"({', '.join(f'{c} {CANONICAL_UNITS[c]}' for c in assumed)}); values are checked against plausible "
            "ranges as they are read (climviz.data.units.PLAUSIBLE_RANGES); pass assume_units= to state them",
            stacklevel=3,
        )
    lat, lon = ref.lat, ref.lon
    coords = {
        "time": ("time", times, {"standard_name": "time", "axis": "T"} if times.dtype.kind != "i"
                 else {"long_name": "time step index (no time information in the files)"}),
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"}),
    }
    attrs = {k: v for k, v in ref.attrs.items() if isinstance(v, (str, int, float, np.integer, np.floating))}
    attrs["source_files"] = list(files) if len(files) <= 1000 else [*files[:1000], f"... {len(files) - 1000} more"]
    attrs.setdefault("Conventions", "CF-1.8")
    # where every channel came from (also in each variable's climviz_source attribute)
    attrs["channel_sources"] = "\n".join(sources)
    if any(("converted" in x or "found by" in x and "climviz/CESM name" not in x or "assumed" in x) for x in sources):
        line = f"climviz open_run read {ref.path} ({ref.fmt}): " + "; ".join(sources)
        attrs["history"] = (str(attrs.get("history", "")) + "\n" + line).strip()
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def validate_run(ds: xr.Dataset | PathLike | Sequence[PathLike], *, values: bool = True,
                 channels: Sequence[str] | None = None) -> xr.Dataset:
    """Check a run fully: structure and (with ``values=True``) every value, in one streaming pass.

    Parameters
    ----------
    ds
        A dataset from :func:`open_run` (or anything :func:`open_run` accepts).
    values
        Also read all data (chunk by chunk, bounded memory) to find NaN/inf and bad labels.
    channels
        Channels required (default all 16).

    Returns
    -------
    xarray.Dataset
        The (opened) dataset, unchanged.

    Raises
    ------
    DataError
        Naming the file, the variable, what was expected and what was found.
    """
    import dask
    import dask.array as da

    if not isinstance(ds, xr.Dataset) or "source_files" not in ds.attrs:
        ds = open_run(ds, channels=channels, check_values="none" if not values else "lazy")
        if not values:
            return ds
    chans = tuple(CHANNELS if channels is None else channels)
    missing = [c for c in chans if c not in ds]
    if missing:
        src = ds.attrs.get("source_files", ["<dataset>"])
        raise DataError(f"{src[0]}: missing channel(s) {missing}; expected {list(chans)}; found {list(ds.data_vars)}")
    if values:
        # one streaming pass: a tiny reduction per variable makes dask read every chunk once
        # (the per-chunk checks raise DataError naming file, variable and time step)
        src = ds.attrs.get("source_files") or ["<dataset>"]
        tasks = []
        for name in [c for c in chans] + ([LABEL_VAR] if LABEL_VAR in ds else []):
            arr = ds[name].data
            if not isinstance(arr, da.Array):
                arr = da.from_array(np.asarray(arr), chunks=(1, -1, -1))
            arr = _checked(arr, name, np.array([0]), (str(src[0]),), "raise") \
                if "source_files" not in ds.attrs else arr
            tasks.append(arr.max())
        dask.compute(*tasks)
    return ds


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------
def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("netcdf", "zarr", "deepcam"):
            raise DataError(f"write_run: format must be 'netcdf', 'zarr' or 'deepcam', found {fmt!r}")
        return fmt
    suf = path.suffix.lower()
    if suf in _NC_SUFFIXES:
        return "netcdf"
    if suf == ".zarr":
        return "zarr"
    if suf in _H5_SUFFIXES:
        return "deepcam"
    raise DataError(f"{path}: cannot tell the format from the suffix {suf!r}; expected .nc, .zarr or .h5")


def write_run(
    ds: xr.Dataset,
    path: PathLike,
    *,
    overwrite: bool = False,
    format: str | None = None,
    complevel: int = 4,
) -> Path:
    """Write a run atomically (temporary file + rename; an interrupted write keeps the old file).

    Parameters
    ----------
    ds
        A run with dims ``(time, lat, lon)`` (e.g. from :func:`open_run` or
        :func:`~climviz.data.synthetic.synthetic_run`).
    path
        ``*.nc`` (ClimateNet netCDF4, all steps in one file, zlib-compressed), ``*.zarr``
        (Zarr store) or ``*.h5`` (DeepCAM HDF5: one time step; ``climate/data`` (lat, lon, 16)
        float32 in the canonical channel order and ``climate/labels_0`` uint8; root attribute
        ``time``). With ``format="deepcam"`` and a path without a suffix, a directory of
        one DeepCAM file per step (``data-YYYY-MM-DD-HH-1.h5``) is written.
    overwrite
        Replace an existing file/store; otherwise raise :class:`~climviz.errors.OutputExistsError`
        (a ``FileExistsError``).
    format
        ``"netcdf"``, ``"zarr"`` or ``"deepcam"``; default from the suffix.
    complevel
        zlib level for netCDF (0 = uncompressed) and gzip level for HDF5.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
    if fmt == "deepcam":
        if path.suffix.lower() not in _H5_SUFFIXES:
            path.mkdir(parents=True, exist_ok=True)
            for i in range(ds.sizes.get("time", 1)):
                step = ds.isel(time=[i])
                t = pd.Timestamp(step.time.values[0]) if step.time.dtype.kind == "M" else None
                stamp = t.strftime("%Y-%m-%d-%H") if t is not None else f"{i:06d}"
                write_run(step, path / f"data-{stamp}-1.h5", overwrite=overwrite, format="deepcam",
                          complevel=complevel)
            return path
        _write_deepcam(ds, path, complevel)
        return path
    out = ds.copy()
    out.attrs = {k: v for k, v in out.attrs.items() if k != "source_files"}
    if "source_files" in ds.attrs:
        out.attrs["history"] = (str(ds.attrs.get("history", "")) + "\nwritten by climviz.write_run from "
                                + ", ".join(map(str, ds.attrs["source_files"][:20]))).strip()
    for v in out.variables.values():
        v.encoding = {}
    if fmt == "netcdf":
        enc = {}
        for name, var in out.data_vars.items():
            e: dict[str, Any] = {}
            if complevel:
                e.update(zlib=True, complevel=int(complevel), shuffle=True)
                if set(var.dims) == {"time", "lat", "lon"}:
                    e["chunksizes"] = (1, var.sizes["lat"], var.sizes["lon"])
            if var.dtype.kind == "f":
                e["_FillValue"] = None
            enc[name] = e
        for c in ("lat", "lon"):
            if c in out.coords:
                enc[c] = {"_FillValue": None}
        if "time" in out.coords and out.time.dtype.kind == "M":
            enc["time"] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian",
                           "dtype": "float64"}
        with atomic_path(path, overwrite=overwrite) as tmp:
            out.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=enc)
    else:
        out = out.chunk({"time": 1}) if "time" in out.dims else out
        for v in out.variables.values():
            v.encoding = {}
        with atomic_path(path, overwrite=overwrite) as tmp:
            out.to_zarr(tmp, mode="w", consolidated=False)
    return path


def _write_deepcam(ds: xr.Dataset, path: Path, complevel: int) -> None:
    import h5py

    if "time" in ds.dims and ds.sizes["time"] != 1:
        raise DataError(
            f"{path}: DeepCAM HDF5 holds one time step per file, found {ds.sizes['time']} steps; "
            "select one step or pass a directory with format='deepcam'"
        )
    missing = [c for c in CHANNELS if c not in ds]
    if missing:
        raise DataError(f"{path}: missing channel(s) {missing} for DeepCAM HDF5 (needs all {len(CHANNELS)})")
    one = ds.isel(time=0) if "time" in ds.dims else ds
    one = one.transpose("lat", "lon", ...)
    data = np.stack([np.asarray(one[c].values, dtype=np.float32) for c in CHANNELS], axis=-1)
    comp = {"compression": "gzip", "compression_opts": int(complevel), "shuffle": True} if complevel else {}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            d = f.create_dataset(DEEPCAM_DATA, data=data, chunks=(min(96, data.shape[0]), data.shape[1], 16)
                                 if complevel else None, **comp)
            d.attrs["channels"] = np.array(CHANNELS, dtype=h5py.string_dtype())
            if LABEL_VAR in one:
                f.create_dataset(DEEPCAM_LABELS[0], data=np.asarray(one[LABEL_VAR].values, dtype=np.uint8), **comp)
            if "time" in ds.coords and ds.time.dtype.kind == "M":
                f.attrs["time"] = str(np.datetime_as_string(np.atleast_1d(ds.time.values)[0], unit="s"))
            for k, v in ds.attrs.items():
                if k != "source_files" and isinstance(v, (str, int, float, np.integer, np.floating)):
                    f.attrs[k] = v
