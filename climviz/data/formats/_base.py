"""Shared reading machinery of the file formats.

One file as oriented lazy arrays (:class:`_FilePart`), direct HDF5 reads per (variable, time
step) (:class:`_Spec`), value checks as data are read.

Moved here from :mod:`climviz.data.io` (which imports these names back); internal API.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from climviz.data.grid import LAT_NAMES, LON_NAMES, orientation
from climviz.data.schema import (
    FLAG_VALUES,
    LABEL_VAR,
)
from climviz.errors import DataError

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


_NC3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")


# the accepted coordinate names are those of the one grid module (climviz.data.grid)
_LAT_NAMES = LAT_NAMES


_LON_NAMES = LON_NAMES


_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})-(\d{2})")


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


def _time_from_name(path: Path) -> np.datetime64 | None:
    m = _TIME_RE.search(path.name)
    if not m:
        return None
    y, mo, d, h = (int(g) for g in m.groups())
    try:
        return np.datetime64(pd.Timestamp(year=y, month=mo, day=d, hour=h), "ns")
    except ValueError:
        return None


_H5_HANDLES: dict[tuple, Any] = {}


_H5_PID = [os.getpid()]


_H5_MAX_OPEN = 64


def _h5(path: str):
    """An open read-only h5py.File for ``path``, cached per process (reopened after fork)."""
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
        f = _file_class()(path, "r")
        _H5_HANDLES[key] = f
    return f


_H5_FILE_CLASS: list[Any] = []


def _file_class() -> Any:
    """h5py.File whose ``f[name]`` objects are kept while it is open.

    Building an h5py object costs ~50 us, a quarter of the time of a per-step read of
    a channel (read_step looks each channel up every step); handles are cached per
    process (see _h5), so their children can be too.
    """
    if not _H5_FILE_CLASS:
        import h5py

        class _File(h5py.File):
            def __getitem__(self, name: Any) -> Any:
                if not isinstance(name, str):
                    return super().__getitem__(name)
                items = self.__dict__.setdefault("_climviz_items", {})
                obj = items.get(name)
                if obj is None:
                    obj = items[name] = super().__getitem__(name)
                return obj

        _H5_FILE_CLASS.append(_File)
    return _H5_FILE_CLASS[0]


def _read_h5(path: str, key: str, t: int | None = None, perm: tuple[int, ...] | None = None,
             fill: float | None = None) -> np.ndarray:
    """Read ``key`` (one step ``t`` along axis ``perm[0]`` when given), as (1, lat, lon) if 2-D after."""
    try:
        dset = _h5(path)[key]
        if t is None:
            a = dset[()]
        else:
            assert perm is not None  # a step is read along perm[0]
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


def _orient(part: _FilePart) -> _FilePart:
    """Latitude ascending, longitude increasing from [0, 360); errors for irregular axes.

    The rules are those of :func:`climviz.data.grid.orientation` (a descending
    latitude axis is flipped, a [-180, 180) run is rolled, a regional grid across
    0°E stays in one piece); the flip and roll are applied to the part's arrays (or
    recorded in its direct-read specs).
    """
    lat, lon = part.lat, part.lon
    if lat.ndim != 1 or lon.ndim != 1:
        raise DataError(f"{part.path}: expected 1-D lat and lon coordinates, found lat{lat.shape} lon{lon.shape}")
    if not np.isfinite(lat).all():
        raise DataError(f"{part.path}: variable lat: expected values in [-90, 90], found NaN/inf")
    if not np.isfinite(lon).all():
        raise DataError(f"{part.path}: variable lon: expected finite longitudes, found NaN/inf")
    o = orientation(lat, lon, str(part.path))
    if o.flip_lat:
        if part.specs is not None:
            part.specs = {k: [dataclasses.replace(sp, flip=True) for sp in v] for k, v in part.specs.items()}
        else:
            part.arrays = {k: a[:, ::-1, :] for k, a in part.arrays.items()}
    if o.lon_shift:
        shift = o.lon_shift
        if part.specs is not None:
            part.specs = {k: [dataclasses.replace(sp, shift=-shift) for sp in v] for k, v in part.specs.items()}
        else:
            part.arrays = {k: _roll_lon(a, -shift) for k, a in part.arrays.items()}
    part.lat, part.lon = o.lat, o.lon
    return part


def _roll_lon(a, shift: int):
    import dask.array as da

    return da.roll(a, shift, axis=2)
