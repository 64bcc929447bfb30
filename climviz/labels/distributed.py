"""The heuristic detectors over a long run on Ray workers (``label_run(..., use_ray=True)``).

Each Ray task takes a block of time steps and runs the per-step work there: TC node
detection (:func:`~climviz.labels.tc.detect_tc_nodes`: candidates, merging, closed
contours, thresholds) and AR detection (:func:`~climviz.labels.ar.detect_ar`: IVT,
threshold, regions, geometry), both independent from one step to the next. The driver
then does what links the steps, serially: stitching the TC nodes into tracks
(:func:`~climviz.labels.tc.stitch_nodes`, cheap next to detection) and painting the TC
mask of the kept nodes. The result is identical to the serial path's.

An AR threshold taken as a percentile over the whole run (``percentile_scope="global"``)
is computed first, on the driver, and handed to the workers as an absolute threshold; a
per-cell percentile threshold is a (lat, lon) field that the workers cannot share through
:class:`~climviz.labels.ar.ARConfig`, so it is refused on this path with a clear error.

With ``work_dir`` every finished block (node table, AR mask and regions) is saved, so a
killed job resumes where it stopped (:mod:`climviz.parallel`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from climviz.data.grid import orientation
from climviz.errors import ConfigError
from climviz.labels.ar import ARConfig, ARResult, detect_ar, integrated_vapour_transport
from climviz.labels.ar import _ivt_source
from climviz.labels.ar import _threshold as _ar_threshold
from climviz.labels.tc import TCConfig, TCResult, detect_tc_nodes, tc_from_nodes
from climviz.labels.tc import _plan as _tc_plan

__all__ = ["detect_in_blocks", "detect_on_ray", "needed_variables"]


def needed_variables(ds: xr.Dataset, tc: TCConfig | None, ar: ARConfig | None) -> list[str]:
    """The variables the detectors read (a block loads only these, not the whole run's)."""
    names: set[str] = set()
    if tc is not None:
        names.update(_tc_plan(ds, tc).needed)
    if ar is not None:
        src = _ivt_source(ds, ar)
        names.update(src)
        north = ar.ivt_north_var
        if ar.min_poleward_ivt is not None and len(src) == 1 and north and north in ds.data_vars:
            names.add(north)
    return [str(v) for v in ds.data_vars if v in names]  # the run's order


def _block(blk: xr.Dataset, start: int, *, tc: TCConfig | None, ar: ARConfig | None) -> dict[str, Any]:
    """TC nodes and AR mask/regions of one block (in memory), time indices made global."""
    out: dict[str, Any] = {}
    if tc is not None:
        nodes = detect_tc_nodes(blk, config=tc).copy()
        nodes["time_index"] = nodes["time_index"].astype(np.int64) + int(start)
        out["nodes"] = nodes
        out["rejected"] = pd.DataFrame({k: [int(v)] for k, v in nodes.attrs.get("rejected", {}).items()})
    if ar is not None:
        res = detect_ar(blk, config=ar)
        regions = res.regions.copy()
        regions["time_index"] = regions["time_index"].astype(np.int64) + int(start)
        out["ar_mask"] = np.asarray(res.mask.values, dtype=bool)
        out["ar_regions"] = regions
    return out


def _absolute_ar_config(ds: xr.Dataset, cfg: ARConfig) -> tuple[ARConfig, float]:
    """The AR settings with a run-wide percentile turned into the absolute threshold it gives."""
    if cfg.percentile is None:
        return cfg, float(cfg.threshold)
    if cfg.percentile_scope == "cell":
        raise ConfigError(
            "label_run(use_ray=True): a per-cell percentile AR threshold (ARConfig.percentile_scope='cell') "
            "needs every step of a cell at once; use percentile_scope='global', an absolute threshold, "
            "or use_ray=False"
        )
    thr = float(_ar_threshold(integrated_vapour_transport(ds, config=cfg), cfg))
    return dataclasses.replace(cfg, percentile=None, threshold=thr), thr


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Blocks' tables in order.

    Blocks without rows are left out (their empty float columns would turn integer
    columns into floats), unless every block is empty.
    """
    full = [t for t in tables if len(t)]
    return pd.concat(full or tables[:1], ignore_index=True)


def _assemble(parts: list[dict[str, Any]], ds: xr.Dataset, tc: TCConfig | None, ar: ARConfig | None,
              ar_abs: ARConfig | None, thr: float) -> tuple[TCResult | None, ARResult | None]:
    """The results ``detect_tc``/``detect_ar`` give, from the per-block parts (in time order)."""
    tc_res = ar_res = None
    if tc is not None:
        nodes = _concat([p["nodes"] for p in parts])
        if len(nodes):
            nodes["time"] = ds["time"].values[nodes["time_index"].to_numpy(dtype=np.int64)]
        counts = [p["rejected"] for p in parts if "rejected" in p]  # absent in blocks saved by 0.1.0
        rejected = pd.concat(counts, ignore_index=True).sum() if counts else pd.Series(dtype=np.int64)
        plan = _tc_plan(ds, tc)
        nodes.attrs.update(criteria=list(plan.criteria), skipped=list(plan.skipped),
                           rejected={str(k): int(v) for k, v in rejected.items()}, config=tc.to_dict())
        tc_res = tc_from_nodes(nodes, ds, config=tc)
    if ar is not None and ar_abs is not None:
        mask = np.concatenate([p["ar_mask"] for p in parts], axis=0)
        regions = _concat([p["ar_regions"] for p in parts])
        if len(regions):
            regions["time"] = ds["time"].values[regions["time_index"].to_numpy(dtype=np.int64)]
        grid = orientation(ds["lat"].values, ds["lon"].values)  # the orientation normalize_run applies
        coords = {"time": ds["time"].values, "lat": grid.lat, "lon": grid.lon}
        m = xr.DataArray(mask, dims=("time", "lat", "lon"), coords=coords, name="ar_mask",
                         attrs={"long_name": "atmospheric river mask (heuristic)"})
        ar_res = ARResult(regions=regions, mask=m, threshold=thr, config=ar)
    return tc_res, ar_res


def _load_block(ds: xr.Dataset, start: int, stop: int) -> xr.Dataset:
    """One block in memory: every chunk of the needed variables read once.

    Dask's default scheduler: this process is alone, its threads may decompress chunks
    side by side.
    """
    return ds.isel(time=slice(start, stop)).load()


def detect_in_blocks(
    ds: xr.Dataset,
    tc: TCConfig | None,
    ar: ARConfig | None,
    *,
    block_steps: int = 8,
) -> tuple[TCResult | None, ARResult | None]:
    """The detectors in this process, block by block; the results ``detect_tc``/``detect_ar`` give.

    Each block of ``block_steps`` time steps of the variables the detectors need is read
    into memory once (for a file-backed run: one read of each chunk, rather than a lazy
    read per detector and per derived field), then both detectors run on it. A per-cell
    percentile AR threshold needs the whole run: AR then runs on the whole run
    (:func:`~climviz.labels.ar.detect_ar`) and only TC goes by blocks.

    Parameters
    ----------
    ds : xarray.Dataset
        The run (canonical units, as :func:`climviz.labels.run.open_data` returns it).
    tc, ar : TCConfig or ARConfig, optional
        Resolved detector settings (None: detector off).
    block_steps : int
        Time steps read and processed at once (memory grows with it).

    Returns
    -------
    (TCResult or None, ARResult or None)
    """
    from climviz.parallel import plan_blocks

    whole_ar = ar is not None and ar.percentile is not None and ar.percentile_scope == "cell"
    ar_blocks = None if whole_ar else ar
    ar_abs, thr = _absolute_ar_config(ds, ar_blocks) if ar_blocks is not None else (None, 0.0)
    plan = plan_blocks(ds.sizes["time"], block_steps)
    tc_res = ar_res = None
    if tc is not None or ar_abs is not None:
        sub = ds[needed_variables(ds, tc, ar_abs)]
        parts = [_block(_load_block(sub, a, b), a, tc=tc, ar=ar_abs) for a, b in plan]
        tc_res, ar_res = _assemble(parts, ds, tc, ar_blocks, ar_abs, thr)
    if whole_ar:
        ar_res = detect_ar(ds, config=ar)
    return tc_res, ar_res


def detect_on_ray(
    ds: xr.Dataset,
    tc: TCConfig | None,
    ar: ARConfig | None,
    *,
    block_steps: int = 8,
    address: str | None = None,
    num_workers: int | None = None,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[TCResult | None, ARResult | None]:
    """Run the detectors on Ray workers, block by block; the results ``detect_tc``/``detect_ar`` give.

    Parameters
    ----------
    ds : xarray.Dataset
        The run (canonical units, as :func:`climviz.labels.run.open_data` returns it).
        Lazy (dask) runs stay lazy on the driver: each worker reads its own block, only
        the variables the detectors need.
    tc, ar : TCConfig or ARConfig, optional
        Resolved detector settings (None: detector off).
    block_steps : int
        Time steps per Ray task.
    address, num_workers, work_dir, progress
        See :func:`climviz.parallel.map_blocks` (``work_dir`` is its ``out_dir``).

    Returns
    -------
    (TCResult or None, ARResult or None)
    """
    from climviz.parallel import map_blocks

    ar_abs, thr = _absolute_ar_config(ds, ar) if ar is not None else (None, 0.0)
    key = {"what": "label_run", "tc": tc.to_dict() if tc is not None else None,
           "ar": ar_abs.to_dict() if ar_abs is not None else None}
    sub = ds[needed_variables(ds, tc, ar_abs)]
    parts = map_blocks(functools.partial(_block, tc=tc, ar=ar_abs), lambda a, b: sub.isel(time=slice(a, b)),
                       ds.sizes["time"], block_steps=block_steps, address=address, num_workers=num_workers,
                       out_dir=work_dir, key=_jsonable(key), progress=progress, desc="label")
    return _assemble(parts, ds, tc, ar, ar_abs, thr)


def _jsonable(value: Any) -> Any:
    """Settings as plain JSON values (tuples as lists), for the resumable block folder's key."""
    import json

    return json.loads(json.dumps(value, default=str))
