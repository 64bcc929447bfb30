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
from climviz.labels.tc import TCConfig, TCResult, detect_tc_nodes, tc_from_nodes

__all__ = ["detect_on_ray"]


def _block(blk: xr.Dataset, start: int, *, tc: TCConfig | None, ar: ARConfig | None) -> dict[str, Any]:
    """Worker: TC nodes and AR mask/regions of one block, time indices made global."""
    out: dict[str, Any] = {}
    if tc is not None:
        nodes = detect_tc_nodes(blk, config=tc).copy()
        nodes["time_index"] = nodes["time_index"].astype(np.int64) + int(start)
        out["nodes"] = nodes
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
    ivt = integrated_vapour_transport(ds, config=cfg)
    thr = max(float(ivt.quantile(cfg.percentile / 100.0, skipna=False).values), float(cfg.threshold))
    return dataclasses.replace(cfg, percentile=None, threshold=thr), thr


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
        Lazy (dask) runs stay lazy on the driver: workers read their own blocks.
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
    parts = map_blocks(functools.partial(_block, tc=tc, ar=ar_abs), lambda a, b: ds.isel(time=slice(a, b)),
                       ds.sizes["time"], block_steps=block_steps, address=address, num_workers=num_workers,
                       out_dir=work_dir, key=_jsonable(key), progress=progress, desc="label")
    tc_res = ar_res = None
    if tc is not None:
        nodes = pd.concat([p["nodes"] for p in parts], ignore_index=True)
        tc_res = tc_from_nodes(nodes, ds, config=tc)
    if ar is not None and ar_abs is not None:
        mask = np.concatenate([p["ar_mask"] for p in parts], axis=0)
        regions = pd.concat([p["ar_regions"] for p in parts], ignore_index=True)
        if len(regions):
            regions["time"] = ds["time"].values[regions["time_index"].to_numpy(dtype=np.int64)]
        grid = orientation(ds["lat"].values, ds["lon"].values)  # the orientation normalize_run applies
        coords = {"time": ds["time"].values, "lat": grid.lat, "lon": grid.lon}
        m = xr.DataArray(mask, dims=("time", "lat", "lon"), coords=coords, name="ar_mask",
                         attrs={"long_name": "atmospheric river mask (heuristic)"})
        ar_res = ARResult(regions=regions, mask=m, threshold=thr, config=ar)
    return tc_res, ar_res


def _jsonable(value: Any) -> Any:
    """Settings as plain JSON values (tuples as lists), for the resumable block folder's key."""
    import json

    return json.loads(json.dumps(value, default=str))
