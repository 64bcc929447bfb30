"""Writing predicted masks: in memory, or to Zarr / netCDF with resume after interruption.

Every prediction to a file goes through a *work store*: a Zarr store beside the
output, named ``.<output name>.work.zarr``. It is created (atomically) with the
full shape of the result, chunked by blocks of time steps; each block is written
into its own region, and then marked done in a small ``climviz_done`` array
(Zarr writes each chunk file atomically, so a block is either fully written and
marked, or it will be recomputed). An interrupted prediction, run again with the
same checkpoint and input, finds the work store, checks it belongs to the same
prediction (checkpoint SHA-256, time/lat/lon coordinates, variables) and computes
only the blocks not yet marked.

When every block is done, the output appears in one step: a Zarr output is the
work store renamed into place (the done markers removed); a netCDF output is
converted from the work store into a temporary file that is renamed over the
target. An existing output is therefore never partially overwritten, and it is
only replaced when ``overwrite=True``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import xarray as xr

from climviz.errors import OutputError, OutputExistsError
from climviz.utils.output import translate_write_errors

__all__ = [
    "OutputError",
    "OutputExistsError",
    "OutputPlan",
    "plan_output",
    "mask_template",
    "MemoryWriter",
    "ZarrWorkWriter",
    "BlockProgress",
    "DONE_VAR",
    "STATUS_ATTR",
]

DONE_VAR = "climviz_done"
STATUS_ATTR = "climviz_status"
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")


@dataclass
class BlockProgress:
    """Counts the blocks written and reports each one (local and Ray prediction alike).

    Attributes
    ----------
    total
        Blocks to write in this call.
    mode
        ``"local"`` or ``"ray"``, passed on to ``on_batch``.
    progress
        A tqdm-like bar to ``update(n_time_steps)``, or None.
    on_batch
        Called after each block is written with ``{"start", "stop", "done", "total",
        "mode"}``, or None; an exception raised there stops the prediction.
    written
        Blocks written so far.
    """

    total: int
    mode: str
    progress: Any = None
    on_batch: Any = None
    written: int = 0

    def block_written(self, start: int, stop: int) -> None:
        """Record that time steps ``start:stop`` are written; update the bar, call ``on_batch``."""
        self.written += 1
        if self.progress is not None:
            self.progress.update(stop - start)
        if self.on_batch is not None:
            self.on_batch({"start": start, "stop": stop, "done": self.written, "total": self.total,
                           "mode": self.mode})


@dataclass(frozen=True)
class OutputPlan:
    """Where a prediction goes: ``kind`` is "zarr" or "netcdf"; ``work`` the work store."""

    kind: str
    final: Path
    work: Path


def plan_output(out: str | os.PathLike, *, overwrite: bool = False) -> OutputPlan:
    """Check ``out`` and name its work store; raise before any computation if unusable.

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is False.
    OutputError
        Unknown suffix, or the directory cannot be created or written.
    """
    final = Path(out).expanduser()
    suffix = final.suffix.lower()
    if suffix == ".zarr":
        kind = "zarr"
    elif suffix in _NETCDF_SUFFIXES:
        kind = "netcdf"
    else:
        raise OutputError(
            f"out={str(out)!r}: expected a netCDF file (.nc) or a Zarr store (.zarr), "
            f"found suffix {final.suffix!r}"
        )
    if final.exists() and not overwrite:
        raise OutputExistsError(
            f"out={str(final)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    from climviz.utils.atomic import remove_stale_temps
    from climviz.utils.output import check_output_location

    parent = final.parent
    check_output_location(final, overwrite=True, what=f"out={str(final)!r}")
    remove_stale_temps(final)                      # of an earlier, killed run
    remove_stale_temps(parent / f".{final.name}.work.zarr")
    return OutputPlan(kind, final, parent / f".{final.name}.work.zarr")


def mask_template(
    like: xr.Dataset,
    chunk: int,
    *,
    prob_dtype: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    lazy: bool = True,
) -> xr.Dataset:
    """An empty mask dataset shaped like ``like`` (dask zeros when ``lazy``).

    Variables and attributes are those of
    :func:`climviz.data.masks.make_mask_dataset`; only one time step is ever
    materialized to build them.
    """
    import dask.array as da

    from climviz.data.masks import make_mask_dataset
    from climviz.data.schema import NUM_CLASSES

    nt, ny, nx = like.sizes["time"], like.sizes["lat"], like.sizes["lon"]
    one = like.isel(time=slice(0, 1))
    proto = make_mask_dataset(
        np.zeros((1, ny, nx), np.uint8),
        one,
        probability=None if prob_dtype is None else np.zeros((NUM_CLASSES, 1, ny, nx), prob_dtype),
        attrs=attrs,
    )
    zeros = (lambda s, c, dt: da.zeros(s, chunks=c, dtype=dt)) if lazy else (
        lambda s, c, dt: np.zeros(s, dtype=dt))
    data_vars: dict[str, tuple[tuple[str, ...], Any, Any]] = {
        "mask": (("time", "lat", "lon"), zeros((nt, ny, nx), (chunk, ny, nx), np.uint8),
                 proto["mask"].attrs),
    }
    if prob_dtype is not None:
        data_vars["probability"] = (
            ("class", "time", "lat", "lon"),
            zeros((NUM_CLASSES, nt, ny, nx), (NUM_CLASSES, chunk, ny, nx), prob_dtype),
            proto["probability"].attrs,
        )
    coords = {k: (v.dims, v.values, v.attrs) for k, v in proto.coords.items() if k != "time"}
    coords["time"] = ("time", like["time"].values, proto["time"].attrs)
    return xr.Dataset(data_vars, coords=coords, attrs=dict(proto.attrs))


class MemoryWriter:
    """Collects blocks in numpy arrays (``out=None``); :meth:`finish` returns the Dataset."""

    def __init__(self, template: xr.Dataset, chunk: int) -> None:
        self.template = template
        self.chunk = int(chunk)
        self.mask = np.zeros(template["mask"].shape, np.uint8)
        self.prob = (np.zeros(template["probability"].shape, template["probability"].dtype)
                     if "probability" in template else None)
        self.done: set[int] = set()

    def pending(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of the blocks still to compute, in time order."""
        n = self.mask.shape[0]
        return [(s, min(s + self.chunk, n)) for s in range(0, n, self.chunk)
                if s // self.chunk not in self.done]

    def write(self, start: int, stop: int, mask: np.ndarray, prob: np.ndarray | None) -> None:
        """Store one block ``start:stop`` of the mask (and probabilities)."""
        self.mask[start:stop] = mask
        if self.prob is not None and prob is not None:
            self.prob[:, start:stop] = prob
        self.done.add(start // self.chunk)

    def finish(self) -> xr.Dataset:
        """The finished dataset: the template with the stored mask (and probabilities)."""
        ds = self.template.copy()
        ds["mask"] = (ds["mask"].dims, self.mask, ds["mask"].attrs)
        if self.prob is not None:
            ds["probability"] = (ds["probability"].dims, self.prob, ds["probability"].attrs)
        ds.attrs[STATUS_ATTR] = "complete"
        return ds


def _same_coords(a: xr.Dataset, b: xr.Dataset) -> str | None:
    """Why ``a`` and ``b`` differ in time/lat/lon/variables, or None."""
    for dim in ("time", "lat", "lon"):
        if a.sizes.get(dim) != b.sizes.get(dim):
            return f"{dim} has {a.sizes.get(dim)} values, this prediction {b.sizes.get(dim)}"
        va, vb = a[dim].values, b[dim].values
        same = np.array_equal(va, vb) if va.dtype.kind != "f" else np.allclose(va, vb)
        if not same:
            return f"{dim} coordinates differ"
    for var in ("mask", "probability"):
        if (var in a) != (var in b):
            return f"variable {var!r} {'present' if var in a else 'absent'} there, not here"
        if var in a and a[var].dtype != b[var].dtype:
            return f"variable {var!r} has dtype {a[var].dtype}, this prediction {b[var].dtype}"
    return None


class ZarrWorkWriter:
    """Region-by-region writer into a prediction's work store, with resume.

    Parameters
    ----------
    plan
        From :func:`plan_output`.
    template
        From :func:`mask_template` (lazy).
    chunk
        Time steps per block (and per Zarr chunk) for a new work store; a resumed
        store keeps its own.
    overwrite
        Discard an unfinished work store that belongs to another prediction
        (otherwise that is an :class:`OutputExistsError`).
    """

    def __init__(self, plan: OutputPlan, template: xr.Dataset, chunk: int, *,
                 overwrite: bool = False) -> None:
        import zarr

        self.plan = plan
        self.work = plan.work
        self.resumed = False
        if self.work.exists():
            reason = self._mismatch(template)
            if reason is None:
                self.resumed = True
            elif overwrite:
                shutil.rmtree(self.work)
            else:
                raise OutputExistsError(
                    f"{str(self.work)!r} holds an unfinished prediction that does not match this "
                    f"one ({reason}); pass overwrite=True to discard it"
                )
        if not self.resumed:
            self._create(template, int(chunk))
        self.group = zarr.open_group(str(self.work), mode="r+")
        self.chunk = int(self._array("mask").chunks[0])
        self.n_times = int(self._array("mask").shape[0])

    def _array(self, name: str) -> Any:
        """The array ``name`` of the work store (a flat group of arrays, see :meth:`_create`)."""
        import zarr

        arr = self.group[name]
        assert isinstance(arr, zarr.Array)
        return arr

    def _mismatch(self, template: xr.Dataset) -> str | None:
        try:
            old = xr.open_zarr(self.work, consolidated=False, decode_timedelta=False)
        except Exception as e:  # unreadable: not ours, or damaged beyond resuming
            return f"cannot be opened: {type(e).__name__}: {e}"
        with old:
            if DONE_VAR not in old or old.attrs.get(STATUS_ATTR) != "in_progress":
                return "not a climviz work store"
            for key in ("checkpoint_sha256",):
                if old.attrs.get(key) != template.attrs.get(key):
                    return f"{key} {old.attrs.get(key)!r}, this prediction {template.attrs.get(key)!r}"
            return _same_coords(old, template)

    def _create(self, template: xr.Dataset, chunk: int) -> None:
        from climviz.utils.atomic import atomic_path

        import dask.array as da

        ds = template.copy()
        ds.attrs[STATUS_ATTR] = "in_progress"
        nt = ds.sizes["time"]
        ds[DONE_VAR] = ("time", da.zeros((nt,), chunks=(chunk,), dtype=np.uint8),
                        {"long_name": "1 where the time step's mask is written (work store only)"})
        ny, nx = ds.sizes["lat"], ds.sizes["lon"]
        encoding: dict[str, dict[str, Any]] = {
            "mask": {"chunks": (chunk, ny, nx)},
            DONE_VAR: {"chunks": (chunk,)},
        }
        if "probability" in ds:
            encoding["probability"] = {"chunks": (ds.sizes["class"], chunk, ny, nx)}
        with translate_write_errors(self.plan.final, what="out"), \
                atomic_path(self.work, overwrite=False) as tmp:
            ds.to_zarr(tmp, mode="w-", compute=False, encoding=encoding, consolidated=False)

    def pending(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of the blocks not yet written, in time order."""
        done = np.asarray(self._array(DONE_VAR)[:])
        out = []
        for s in range(0, self.n_times, self.chunk):
            e = min(s + self.chunk, self.n_times)
            if not done[s:e].all():
                out.append((s, e))
        return out

    def write(self, start: int, stop: int, mask: np.ndarray, prob: np.ndarray | None) -> None:
        """Write one block (``start`` on a chunk boundary), then mark it done."""
        if start % self.chunk or (stop - start != self.chunk and stop != self.n_times):
            raise ValueError(f"block {start}:{stop} is not aligned to chunks of {self.chunk}")
        with translate_write_errors(self.plan.final, what="out"):
            self._array("mask")[start:stop] = mask
            if prob is not None and "probability" in self.group:
                self._array("probability")[:, start:stop] = prob
            self._array(DONE_VAR)[start:stop] = 1

    def finish(self) -> xr.Dataset:
        """Publish the output (rename or convert) and return it opened lazily.

        Raises
        ------
        OutputError
            Writing failed (disk full, read-only file system, ...); the work store
            stays, so a rerun resumes, and an earlier output at ``out`` is intact.
        """
        with translate_write_errors(self.plan.final, what="out"):
            self._publish()
        final = self.plan.final
        return xr.open_zarr(final) if self.plan.kind == "zarr" else xr.open_dataset(final)

    def _publish(self) -> None:
        missing = self.pending()
        if missing:
            raise OutputError(f"{self.work}: {len(missing)} block(s) not written yet: {missing[:5]}")
        final = self.plan.final
        if self.plan.kind == "zarr":
            import warnings

            import zarr

            del self.group[DONE_VAR]
            self.group.attrs[STATUS_ATTR] = "complete"
            with warnings.catch_warnings():  # consolidated metadata is a zarr v3 extension
                warnings.simplefilter("ignore")
                zarr.consolidate_metadata(str(self.work))
            _replace_dir(self.work, final)
            return
        from climviz.utils.atomic import atomic_path

        with xr.open_zarr(self.work, consolidated=False) as src:
            ds = src.drop_vars(DONE_VAR)
            ds.attrs[STATUS_ATTR] = "complete"
            ny, nx = ds.sizes["lat"], ds.sizes["lon"]
            encoding: dict[str, dict[str, Any]] = {
                "mask": {"zlib": True, "complevel": 1, "chunksizes": (1, ny, nx), "_FillValue": None},
            }
            if "probability" in ds:  # netCDF has no float16: stored as float32
                encoding["probability"] = {"dtype": "float32", "zlib": True, "complevel": 1,
                                           "chunksizes": (1, 1, ny, nx), "_FillValue": None}
            for v in ds.variables:
                ds[v].encoding.pop("chunks", None)
                ds[v].encoding.pop("preferred_chunks", None)
                ds[v].encoding.pop("compressors", None)
                ds[v].encoding.pop("filters", None)
                ds[v].encoding.pop("serializer", None)
            with atomic_path(final, overwrite=True) as tmp:
                ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        shutil.rmtree(self.work, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename directory ``src`` to ``dst``, replacing an existing ``dst`` last."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(dst, old)
        os.replace(src, dst)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        os.replace(src, dst)
