"""Open, validate and write climate runs (ClimateNet/CESM netCDF, DeepCAM HDF5, Zarr, GRIB, real products).

This module is the entry point; the readers live in :mod:`climviz.data.formats` (one module per
format: ``netcdf``, ``deepcam``, ``zarr``, ``grib``; ``products`` for the naming conventions of
ERA5, CMIP6, CESM/CAM and GFS), units in :mod:`climviz.data.units`.

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
    a ``channels`` attribute of ``climate/data`` when present, else from ``channels=``
    (all of them, in the file's order), else the open fails; plausible ranges per channel
    catch swapped channels. The time is read from a root attribute ``time`` (ISO 8601), else from a
    ``YYYY-MM-DD-HH`` stamp in the file name (``data-2106-01-02-00-1.h5``), else the
    time steps are numbered 0, 1, ... in file order.
Zarr
    A directory store written by :func:`write_run` or by xarray (``to_zarr``). A chunk missing
    from the store is a :class:`DataError` naming the store, the variable and the chunk.
GRIB 1/2
    Read with ecCodes (:mod:`climviz.data.formats.grib`), multi-field messages included.
Real products (ERA5, CMIP6, CESM/CAM, GFS...)
    Files that do not carry the channels under their ClimateNet names: channels are found by
    CF ``standard_name``, then product names, at their pressure level, and converted
    (:mod:`climviz.data.formats.products`); ``channel_map=`` names your own variables.

Units are converted to the canonical ones (:mod:`climviz.data.units`) or refused with a
:class:`DataError`; ``channels="available"`` returns whatever channels a file has (plus
``VORT850``, the 850 hPa relative vorticity, where a product has it). Every channel's
``climviz_source`` attribute and the run's ``channel_sources`` say where it came from.

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

import dataclasses
import functools
import glob as _glob
import os
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.formats._base import (
    _HDF5_MAGIC,
    _LAT_NAMES,
    _LON_NAMES,
    _NC3_MAGIC,
    _check_finite,
    _deepcam_channel,
    _FilePart,
    _finish_step,
    _h5,
    _orient,
    _range_block,
    _read_h5,
    _read_spec,
    _Spec,
    _spec_graph,
    _token_specs,
)
from climviz.data.formats.deepcam import DEEPCAM_DATA, DEEPCAM_LABELS, _open_deepcam, _write_deepcam
from climviz.data.formats.netcdf import (
    _dim_name,
    _open_nc4_fast,
    _open_xarray,
    _xr_open,
)
from climviz.data.formats.zarr import _is_zarr_dir
from climviz.data.grid import TIME_NAMES
from climviz.data.schema import (
    CHANNEL_ATTRS,
    CHANNELS,
    FLAG_VALUES,
    LABEL_VAR,
    label_attrs,
)
from climviz.data.synthetic import grid_coords
from climviz.errors import DataError, OutputExistsError
from climviz.utils.atomic import atomic_path

__all__ = ["DEEPCAM_DATA", "DEEPCAM_LABELS", "find_files", "open_run", "read_step", "validate_run", "write_run"]

#: ``open_run(nan_policy=)``: a non-finite value is an error, or is masked (NaN kept).
NanPolicy = Literal["raise", "mask"]
#: ``open_run(check_values=)``: values checked as they are read, all at open, or not at all.
CheckValues = Literal["lazy", "eager", "none"]
#: ``write_run(format=)``.
RunFormat = Literal["netcdf", "zarr", "deepcam"]

PathLike = str | os.PathLike
#: What ``open_run`` (and the functions that take a run, e.g. ``label_run``) accept: a file,
#: a glob, a directory, a Zarr store, a list of them, or a dataset already open.
RunLike = PathLike | Sequence[PathLike] | xr.Dataset
_NC_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
_H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_GRIB_SUFFIXES = (".grb", ".grib", ".grb2", ".grib2", ".grib1")
#: ``open_run(channels=AVAILABLE)``: every channel the file has.
AVAILABLE = "available"
# --------------------------------------------------------------------------------------
# finding files
# --------------------------------------------------------------------------------------


def find_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """Resolve a file, a list, a glob or a directory into a list of run files/stores.

    A directory that is a Zarr store is itself the run; another directory contributes
    its ``*.nc``, ``*.nc4``, ``*.h5``, ``*.hdf5`` files and ``*.zarr`` stores (sorted by name).

    Raises
    ------
    DataError
        A path that does not exist, a glob that matches nothing, an empty directory.

    Examples
    --------
    Files are found by name (not opened); a directory lists its run files only:

    >>> from pathlib import Path
    >>> for name in ("run_b.nc", "run_a.nc", "notes.txt"):
    ...     Path(name).touch()
    >>> [p.name for p in cv.data.find_files("run_*.nc")], [p.name for p in cv.data.find_files(".")]
    (['run_a.nc', 'run_b.nc'], ['run_a.nc', 'run_b.nc'])
    >>> cv.data.find_files("nothing*.nc")
    Traceback (most recent call last):
    ...
    climviz.errors.DataError: nothing*.nc: glob pattern matches no files (expected netCDF/HDF5/Zarr files)
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


# --------------------------------------------------------------------------------------
# HDF5 readers (module-level functions so dask graphs pickle into worker processes)
# --------------------------------------------------------------------------------------


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

    Examples
    --------
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> x, labels = cv.data.read_step(ds, 2, ["TMQ", "PSL", "LABELS"])
    >>> x.shape, x.dtype.name, labels.shape, labels.dtype.name
    ((2, 32, 48), 'float32', (32, 48), 'uint8')
    >>> bool((x[1] == ds["PSL"][2].values).all()), bool((labels == ds["LABELS"][2].values).all())
    (True, True)

    Normalized on the way, ``(x - offset) * scale`` per channel:

    >>> z, _ = cv.data.read_step(ds, 2, ["TMQ", "PSL"], offset=np.array([17.0, 101000.0]),
    ...                          scale=np.array([1.0, 0.01]))
    >>> bool(np.allclose(z[1], (ds["PSL"][2].values - 101000.0) * 0.01, atol=1e-3))
    True
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
            assert scale is not None  # offset and scale come together (normalization)
            xi -= offset[i]
            xi *= scale[i]
        unchecked = sp if direct and check else None  # read straight from the file: not checked yet
        if (unchecked is not None and unchecked.policy != "none") or fill_value is not None:
            if not np.isfinite(np.add.reduce(xi, axis=None)):  # cheap: the channel is in cache
                if unchecked is not None and unchecked.policy == "raise":
                    _check_finite(xi, unchecked)  # raises with file, variable and step
                np.copyto(xi, np.float32(np.nan), where=~np.isfinite(xi))
                if fill_value is not None:
                    np.nan_to_num(xi, copy=False, nan=fill_value)
    if LABEL_VAR in specs:
        lab_spec = specs[LABEL_VAR]
        assert lab_spec is not None  # specs is emptied above unless every variable has one
        lab = _read_spec(lab_spec)[0]
    return out, lab


def _specs(part: _FilePart, name: str) -> list[_Spec]:
    """The direct-read specs of ``name`` in a fast-path ``part`` (one with specs and dtypes)."""
    assert part.specs is not None
    return part.specs[name]


def _dtype(part: _FilePart, name: str) -> Any:
    """The dtype of ``name`` in a fast-path ``part`` (one with specs and dtypes)."""
    assert part.dtypes is not None
    return part.dtypes[name]


def _direct(names: Iterable[Hashable], channels: Sequence[str] | str, channel_map) -> list[str] | None:
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
    paths: RunLike,
    *,
    channels: Sequence[str] | Literal["available"] | None = None,
    chunks: dict[str, int] | None = None,
    nan_policy: NanPolicy = "raise",
    check_values: CheckValues = "lazy",
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

    Examples
    --------
    >>> path = cv.write_run(cv.synthetic_run(4, shape=(32, 48)), "run.nc")
    >>> ds = cv.open_run(path)
    >>> dict(ds.sizes)
    {'time': 4, 'lat': 32, 'lon': 48}
    >>> list(ds.data_vars)[:3], "LABELS" in ds
    (['TMQ', 'U850', 'V850'], True)
    >>> ds["PSL"].attrs["units"], ds.attrs["source_files"]
    ('Pa', ['run.nc'])

    Only some channels, two time steps per dask chunk:

    >>> small = cv.open_run("run.nc", channels=["TMQ", "PSL"], chunks={"time": 2})
    >>> list(small.data_vars), small["TMQ"].chunks[0]
    (['TMQ', 'PSL', 'LABELS'], (2, 2))
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
    ren = {k: v for k, v in ((lat_n, "lat"), (lon_n, "lon")) if k != v}
    time_other = next((n for n in TIME_NAMES if n in ds.dims), None)
    if time_other not in (None, "time") and "time" not in ds.dims:
        ren[time_other] = "time"  # the time names of climviz.data.grid (valid_time, t)
    ds = ds.rename(ren)
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
    """One run from the files' parts, in stages.

    The parts must agree (grid, labels; :func:`_check_parts_agree`); they are put in time
    order (:func:`_time_axis`); each variable becomes one lazy array (:func:`_read_graph`),
    a channel in its canonical units (:func:`_channel_units`); the run's coordinates and
    attributes say where every channel came from (:func:`_run_coords`, :func:`_run_attrs`).
    """
    _check_parts_agree(parts)
    parts, times = _time_axis(parts)
    files = tuple(str(p.path) for p in parts)
    chunks = chunks or {}
    lay = _Layout(parts, np.cumsum([0] + [p.n_times for p in parts])[:-1], files,
                  (chunks.get("time", 1), chunks.get("lat", -1), chunks.get("lon", -1)), nan_policy, check)
    has_labels = all(LABEL_VAR in p.names for p in parts)
    data_vars, sources, assumed = {}, [], []
    for name in [*chans] + ([LABEL_VAR] if has_labels else []):
        arr, specs = _read_graph(lay, name)
        if name == LABEL_VAR:
            attrs = {**parts[0].var_attrs.get(name, {}), **label_attrs()}
        else:
            arr, attrs, was_assumed = _channel_units(lay, name, arr, specs, assume_units)
            assumed += [name] if was_assumed else []
            sources.append(f"{name}: {attrs['climviz_source']}")
        data_vars[name] = (("time", "lat", "lon"), arr, attrs)
    if assumed:
        _warn_assumed_units(parts[0], assumed)
    return xr.Dataset(data_vars, coords=_run_coords(times, parts[0]), attrs=_run_attrs(parts[0], files, sources))


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What :func:`_combine`'s stages share: the parts in time order and how to read them."""

    parts: list[_FilePart]
    starts: np.ndarray  # first global time index of each part
    files: tuple[str, ...]
    want: tuple[int, int, int]  # dask chunks (time, lat, lon)
    nan_policy: str
    check: bool

    @property
    def ref(self) -> _FilePart:
        return self.parts[0]

    @property
    def fast(self) -> bool:
        """Every part has direct-read specs: one task per step reading its file."""
        return all(p.specs is not None for p in self.parts)

    def graph(self, name: str, specs: list[_Spec], suffix: str = "") -> Any:
        """A direct-read dask array of variable ``name`` from ``specs``, in the wanted chunks."""
        arr = _spec_graph(f"read-{name}-{_token_specs(specs)}{suffix}", specs, self.ref.lat.size,
                          self.ref.lon.size, _dtype(self.ref, name))
        return arr.rechunk(self.want) if self.want != (1, -1, -1) else arr


def _check_parts_agree(parts: list[_FilePart]) -> None:
    """Same grid in every file, and labels in all of them or in none (DataError naming the file)."""
    ref = parts[0]
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
        raise DataError(f"{bad.path}: variable {LABEL_VAR}: expected labels as in "
                        f"{parts[has_labels.index(True)].path}, found none")


def _time_axis(parts: list[_FilePart]) -> tuple[list[_FilePart], np.ndarray]:
    """The parts in time order and the run's times (step indices when the files have no times).

    Times must be of one kind, strictly increasing in each file and not repeated across files.
    """
    if not all(p.times is not None for p in parts):
        return parts, np.arange(sum(p.n_times for p in parts))
    kinds = {np.asarray(p.times).dtype.kind for p in parts}
    if len(kinds) > 1:
        raise DataError(f"{parts[0].path}: time: expected one calendar/type in all files, found {kinds}")
    for p in parts:
        t = np.asarray(p.times)
        if t.size > 1 and not all(t[1:] > t[:-1]):
            dup = pd.Index(t).duplicated()
            what = f"duplicate time {t[dup][0]}" if dup.any() else "times not increasing"
            raise DataError(f"{p.path}: variable time: expected strictly increasing times, found {what}")
    order = sorted(range(len(parts)), key=lambda i: np.asarray(parts[i].times)[0])
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
    return parts, times


def _read_graph(lay: _Layout, name: str) -> tuple[Any, list[_Spec] | None]:
    """The lazy array of variable ``name`` over the run, and its direct-read specs (None: dask path).

    Fast path: one task per step reading its file directly (cheap graphs, and read_step()
    can bypass dask entirely); values are checked as read. Otherwise the parts' arrays are
    concatenated, channels made float and checked by a map over the blocks.
    """
    if lay.fast:
        specs = [dataclasses.replace(sp, t_global=int(s0 + k), policy=lay.nan_policy if lay.check else "none")
                 for p, s0 in zip(lay.parts, lay.starts) for k, sp in enumerate(_specs(p, name))]
        return lay.graph(name, specs), specs
    import dask.array as da

    for p in lay.parts:
        if p.specs is not None and name not in p.arrays:
            quiet = [dataclasses.replace(sp, policy="none") for sp in p.specs[name]]  # checked below
            p.arrays[name] = _spec_graph(f"read-{name}-part-{_token_specs(quiet)}", quiet,
                                         lay.ref.lat.size, lay.ref.lon.size, _dtype(p, name))
    arr = da.concatenate([p.arrays[name] for p in lay.parts], axis=0) if len(lay.parts) > 1 else lay.ref.arrays[name]
    arr = arr.rechunk(lay.want)
    if name != LABEL_VAR and arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    if lay.check:
        arr = _checked(arr, name, np.asarray(lay.starts), lay.files, lay.nan_policy)
    return arr, None


def _channel_units(lay: _Layout, name: str, arr: Any, specs: list[_Spec] | None,
                   assume_units) -> tuple[Any, dict[str, Any], bool]:
    """Channel ``name`` in its canonical units (climviz.data.units), its attributes, whether units were assumed.

    Without a units attribute the canonical unit is assumed and values are checked against
    the plausible range as they are read; a DataError names a unit that cannot be converted.
    """
    from climviz.data import units as _units

    ref = lay.ref
    attrs = dict(ref.var_attrs.get(name, {}))
    for key in ("_FillValue", "missing_value", "coordinates"):
        attrs.pop(key, None)
    conv, how = _units.resolve(name, attrs, None, file=ref.path, variable=name, assume_units=assume_units,
                               defer=True)
    assumed = conv.note == "assumed"
    if assumed and specs is not None:
        specs = [dataclasses.replace(sp, check_range=name) for sp in specs]
        arr = lay.graph(name, specs, "-r")
    elif assumed and lay.check:
        from dask.base import tokenize

        fn = functools.partial(_range_block, channel=name, starts=np.asarray(lay.starts), files=lay.files)
        arr = arr.map_blocks(fn, dtype=arr.dtype, name=f"range-{name}-{tokenize(arr.name, lay.files)}")
    if not conv.identity:
        if specs is not None:
            specs = [dataclasses.replace(sp, scale=conv.scale, offset=conv.offset) for sp in specs]
            arr = lay.graph(name, specs, "-u")
        else:
            arr = _units.convert_values(arr, conv)
    if not conv.identity or conv.note not in ("", "assumed"):
        attrs["units_converted_from"] = conv.found
    if assumed:
        attrs["units_assumed"] = how
    attrs.update({k: v for k, v in CHANNEL_ATTRS.get(name, {}).items() if k not in attrs or k == "units"})
    if name == _units.VORT850:
        attrs["units"] = "s-1"
    attrs.setdefault("climviz_source", f"variable {name!r}, found by its climviz/CESM name; {how}")
    return arr, attrs, assumed


def _warn_assumed_units(ref: _FilePart, assumed: list[str]) -> None:
    import warnings

    from climviz.data.units import CANONICAL_UNITS

    warnings.warn(
        f"{ref.path}: no units attribute for {', '.join(assumed)}: assumed the canonical units "
        f"({', '.join(f'{c} {CANONICAL_UNITS[c]}' for c in assumed)}); values are checked against plausible "
        "ranges as they are read (climviz.data.units.PLAUSIBLE_RANGES); pass assume_units= to state them",
        stacklevel=4,  # _warn_assumed_units < _combine < open_run < its caller
    )


def _run_coords(times: np.ndarray, ref: _FilePart) -> dict[str, Any]:
    """CF coordinates of the run: time (or step index), latitude, longitude (degrees)."""
    return {
        "time": ("time", times, {"standard_name": "time", "axis": "T"} if times.dtype.kind != "i"
                 else {"long_name": "time step index (no time information in the files)"}),
        "lat": ("lat", ref.lat, {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude",
                                 "axis": "Y"}),
        "lon": ("lon", ref.lon, {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude",
                                 "axis": "X"}),
    }


def _run_attrs(ref: _FilePart, files: tuple[str, ...], sources: list[str]) -> dict[str, Any]:
    """The first file's plain attributes, the source files, where every channel came from, history."""
    attrs: dict[str, Any] = {k: v for k, v in ref.attrs.items()
                             if isinstance(v, (str, int, float, np.integer, np.floating))}
    attrs["source_files"] = list(files) if len(files) <= 1000 else [*files[:1000], f"... {len(files) - 1000} more"]
    attrs.setdefault("Conventions", "CF-1.8")
    # where every channel came from (also in each variable's climviz_source attribute)
    attrs["channel_sources"] = "\n".join(sources)
    if any(("converted" in x or "found by" in x and "climviz/CESM name" not in x or "assumed" in x) for x in sources):
        line = f"climviz open_run read {ref.path} ({ref.fmt}): " + "; ".join(sources)
        attrs["history"] = (str(attrs.get("history", "")) + "\n" + line).strip()
    return attrs


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

    Examples
    --------
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> _ = cv.write_run(ds, "run.nc")
    >>> run = cv.open_run("run.nc", check_values="none")
    >>> cv.validate_run(run) is run  # every value read once, chunk by chunk
    True

    A NaN in the third time step (time index 2):

    >>> bad = ds.copy()
    >>> bad["TS"] = bad["TS"].where(bad["time"] != bad["time"][2])
    >>> _ = cv.write_run(bad, "bad.nc")
    >>> cv.validate_run("bad.nc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    climviz.errors.DataError: bad.nc: variable TS: expected finite values, found 1536 NaN/inf at time index 2 ...
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
    format: RunFormat | None = None,
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

    Examples
    --------
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> cv.write_run(ds, "run.nc")
    PosixPath('run.nc')
    >>> cv.write_run(ds, "run.zarr").is_dir()
    True
    >>> sorted(p.name for p in cv.write_run(ds, "deepcam", format="deepcam").iterdir())
    ['data-2000-01-01-00-1.h5', 'data-2000-01-01-03-1.h5', 'data-2000-01-01-06-1.h5', 'data-2000-01-01-09-1.h5']
    >>> cv.write_run(ds, "run.nc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    climviz.errors.OutputExistsError: run.nc exists; pass overwrite=True to replace it
    >>> cv.open_run("run.zarr")["TMQ"].equals(cv.open_run("run.nc")["TMQ"])
    True
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


