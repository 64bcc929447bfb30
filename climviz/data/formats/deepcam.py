"""DeepCAM HDF5: ``climate/data`` (lat, lon, channel) float32 and ``climate/labels_0`` (lat, lon).

The channel order comes from the ``channels`` attribute of ``climate/data`` or from the user
(``open_run(..., channels=[...])``); without either the open fails. Plausible ranges per channel
(:data:`climviz.data.units.PLAUSIBLE_RANGES`) catch swapped channels either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.formats._base import _FilePart, _Spec, _time_from_name
from climviz.data.schema import (
    CHANNELS,
    LABEL_VAR,
)
from climviz.data.synthetic import grid_coords
from climviz.errors import DataError
from climviz.utils.atomic import atomic_path

DEEPCAM_DATA = "climate/data"


DEEPCAM_LABELS = ("climate/labels_0", "climate/labels")


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
    times: np.ndarray | None
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
    from climviz.data.units import PLAUSIBLE_RANGES, plausible

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
