"""Label a whole run with the heuristic detectors, as the same CF mask dataset as ``predict``."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from climviz.data.masks import make_mask_dataset
from climviz.data.schema import AR, BACKGROUND, TC
from climviz.errors import ConfigError, DataError
from climviz.labels.ar import ARConfig, ARResult
from climviz.labels.distributed import detect_in_blocks
from climviz.labels.tc import TCConfig, TCResult, resolve_config

if TYPE_CHECKING:
    from climviz.data.io import RunLike

__all__ = ["LabelResult", "label_run", "open_data"]


@dataclass
class LabelResult:
    """Details of :func:`label_run` (``return_details=True``).

    Attributes
    ----------
    tc
        Nodes, tracks and mask of the TC detector (None if it was off).
    ar
        Regions, mask and threshold of the AR detector (None if it was off).
    """

    tc: TCResult | None
    ar: ARResult | None


def open_data(data: RunLike) -> tuple[xr.Dataset, list[str]]:
    """A run from a Dataset, a path, a glob or a list of paths; and its source files."""
    if isinstance(data, xr.Dataset):
        from climviz.data.units import canonicalize_units  # PSL in hPa, T in degC...: as open_run does

        return canonicalize_units(data), []
    if isinstance(data, (str, os.PathLike, list, tuple)):
        from climviz.data.io import open_run

        items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        files: list[str] = []
        for item in items:
            s = os.fspath(item)
            files.extend(sorted(glob.glob(s)) if glob.has_magic(s) else [s])
        return open_run(data), [str(Path(f).resolve()) for f in files]
    raise DataError(
        f"data: expected a path, a glob, a list of paths or an xarray.Dataset, found {type(data).__name__}"
    )


def _config(value: Any, cls: type, name: str) -> Any:
    if value is False or value is None:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls.from_dict(value)  # type: ignore[attr-defined]
    raise ConfigError(f"label_run: {name} expected True, False, a {cls.__name__} or a dict, found {value!r}")


def label_run(
    data: RunLike,
    *,
    tc: bool | TCConfig | dict | None = True,
    ar: bool | ARConfig | dict | None = True,
    return_details: bool = False,
    use_ray: bool = False,
    address: str | None = None,
    num_workers: int | None = None,
    block_steps: int = 8,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> xr.Dataset | tuple[xr.Dataset, LabelResult]:
    """Label tropical cyclones and atmospheric rivers with the heuristic detectors.

    Parameters
    ----------
    data
        A run (:class:`xarray.Dataset` on (time, lat, lon)) or path(s) opened with
        :func:`climviz.open_run`. TC detection needs ``PSL``, a warm-core field
        (``T200``/``T500``, or heights ``Z300``/``Z500``; ``Z200``/``Z1000`` on
        2° grids) and ``U850``/``V850`` (or ``UBOT``/``VBOT``) or ``VORT850``
        (see :func:`climviz.labels.detect_tc_nodes`); AR detection ``TMQ`` with
        the 850 hPa winds, or ``IVT``.
    tc, ar
        True (default settings; for TC, with :data:`climviz.labels.COARSE_GRID`
        on grids of 2° or coarser), False/None (detector off), a
        :class:`~climviz.labels.TCConfig` / :class:`~climviz.labels.ARConfig`,
        or a dict of their fields.
    return_details
        Also return a :class:`LabelResult` with the TC nodes/tracks and AR regions.
    use_ray
        Run the per-step work (TC node detection, AR detection) on Ray workers, one
        block of ``block_steps`` time steps per task; stitching TC nodes into tracks and
        painting their masks stay serial on this process (they are cheap). Same result
        as ``use_ray=False`` (see :mod:`climviz.labels.distributed`).
    address
        Where Ray runs: None (a local Ray, or the one this process already uses),
        ``"auto"``, ``"host:port"`` or ``"ray://host:port"``.
    num_workers
        Ray tasks at once (default: the cluster's CPUs).
    block_steps
        Time steps read and processed at once: each block of the variables the detectors
        need is read into memory once, then both detectors run on it (one block per Ray
        task with ``use_ray``). Memory grows with it (the block's fields and the
        detectors' work arrays), not with the run.
    work_dir
        Folder for per-block results, so that a killed job resumes (Ray path only).
    progress
        Progress bar over the blocks (Ray path only).

    Returns
    -------
    xarray.Dataset
        The CF mask dataset of :func:`climviz.data.masks.make_mask_dataset`:
        ``mask`` uint8 (time, lat, lon), 0 background, 1 TC, 2 AR (a TC wins
        where both apply), on the run's grid with latitude ascending and
        longitude in [0, 360). Global attributes ``model="heuristic"``,
        ``method``, the detector settings as JSON (``tc_config``, ``ar_config``)
        and ``source_files``.

    Examples
    --------
    The TC detector needs a grid of about 2 degrees or finer (the 32 x 48 grid of the other
    examples is 5.6 degrees); these 4 steps span 9 h, too short to stitch tracks:

    >>> ds = cv.synthetic_run(4, shape=(96, 144))
    >>> masks, details = cv.labels.label_run(ds, tc={"stitch": False}, return_details=True)
    >>> masks["mask"].dims, masks.attrs["model"]
    (('time', 'lat', 'lon'), 'heuristic')
    >>> len(details.tc.nodes), int(details.ar.regions["is_ar"].sum())  # 3 TCs and 2 ARs per step
    (12, 8)

    Agreement with the synthetic run's own labels (intersection over union per class):

    >>> for cls in (1, 2):
    ...     found, truth = masks["mask"] == cls, ds["LABELS"] == cls
    ...     print(cls, round(float((found & truth).sum() / (found | truth).sum()), 1))
    1 0.7
    2 0.7
    """
    tc_cfg = _config(tc, TCConfig, "tc")
    ar_cfg = _config(ar, ARConfig, "ar")
    if tc_cfg is None and ar_cfg is None:
        raise ConfigError("label_run: both detectors are off (tc=False, ar=False); nothing to label")
    ds, files = open_data(data)
    # tc=True: the defaults, with the coarse-grid changes on 2-degree grids (see climviz.labels.tc.COARSE_GRID)
    resolved = resolve_config(None if tc is True else tc_cfg, ds) if tc_cfg is not None else None
    if use_ray:
        from climviz.labels.distributed import detect_on_ray

        tc_res, ar_res = detect_on_ray(ds, resolved, ar_cfg, block_steps=block_steps, address=address,
                                       num_workers=num_workers, work_dir=work_dir, progress=progress)
    else:
        tc_res, ar_res = detect_in_blocks(ds, resolved, ar_cfg, block_steps=block_steps)
    like = (tc_res.mask if tc_res is not None else ar_res.mask)  # type: ignore[union-attr]
    mask = np.full(like.shape, BACKGROUND, dtype=np.uint8)
    if ar_res is not None:
        mask[ar_res.mask.values] = AR
    if tc_res is not None:
        mask[tc_res.mask.values] = TC
    methods = []
    if tc_res is not None:
        methods.append("TC: TempestExtremes DetectNodes-style{}: {}".format(
            ", stitched tracks" if tc_res.stitched else ", not stitched", "; ".join(tc_res.criteria)))
    if ar_cfg is not None:
        methods.append(f"AR: IVT threshold, length >= {ar_cfg.min_length_km:g} km, "
                       f"length/width >= {ar_cfg.min_aspect:g}, poleward transport (ARTMIP-style)")
    attrs: dict[str, Any] = {
        "model": "heuristic",
        "method": "; ".join(methods),
        "tc_config": json.dumps(tc_res.config.to_dict()) if tc_res is not None else "off",
        "ar_config": json.dumps(ar_cfg.to_dict()) if ar_cfg is not None else "off",
    }
    if files:
        attrs["source_files"] = files
    if tc_res is not None:
        attrs["tc_tracks"] = int(len(tc_res.tracks))
        attrs["tc_nodes"] = int((tc_res.nodes["track_id"] >= 0).sum() if tc_res.stitched else len(tc_res.nodes))
    if isinstance(ds, xr.Dataset) and ds.attrs.get("synthetic") == "yes":
        attrs["source_synthetic"] = "yes"
    out = make_mask_dataset(mask, like.to_dataset(name="m"), attrs=attrs)
    if return_details:
        return out, LabelResult(tc=tc_res, ar=ar_res)
    return out
