"""Skill of one mask against another (e.g. predictions against labels): pixels and events.

Pixel skill: intersection over union per class, summed over all time steps
(cell counts, and area-weighted on the sphere).

Event skill: in each time step, a true event is *detected* if a predicted
event of the same class overlaps it with an intersection over union of at
least ``min_iou``; a predicted event is a *false alarm* if no true event of
its class matches it that way. POD = detected / true events; FAR = false
alarms / predicted events; CSI = detected / (true + false alarms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from climviz._compat import ClassesLike, class_ids
from climviz.data.schema import CLASSES
from climviz.errors import DataError
from climviz.events.geometry import EARTH_RADIUS_KM
from climviz.events.labelling import Geo, LabelOptions, _label_block, resolve_periodic

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["skill"]


@dataclass
class _Counts:
    """Running totals per class (indexed by class value) over the blocks of time steps."""

    inter: np.ndarray       # cells in both masks' class
    union: np.ndarray       # cells in either
    inter_a: np.ndarray     # the same, area-weighted (km2)
    union_a: np.ndarray
    n_true: np.ndarray      # events
    n_pred: np.ndarray
    detected: np.ndarray    # true events matched by a prediction
    matched_pred: np.ndarray  # predicted events matching a true event

    @classmethod
    def zeros(cls, ncls: int) -> _Counts:
        f = [np.zeros(ncls) for _ in range(4)]
        i = [np.zeros(ncls, dtype=np.int64) for _ in range(4)]
        return cls(*f, *i)


def _add_pixels(n: _Counts, p: np.ndarray, t: np.ndarray, classes: tuple[int, ...], area: np.ndarray) -> None:
    """Pixel intersection and union per class (cells and km2)."""
    for c in classes:
        pc, tc = p == c, t == c
        i, u = pc & tc, pc | tc
        n.inter[c] += i.sum()
        n.union[c] += u.sum()
        n.inter_a[c] += (i * area).sum()
        n.union_a[c] += (u * area).sum()


def _sizes(lab: np.ndarray, mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``k`` (ids per step), event sizes (cells) and classes keyed by ``step * k + id``."""
    T = lab.shape[0]
    k = int(lab.max()) + 1
    steps = np.arange(T)[:, None, None]
    fg = lab > 0
    key = (steps * k + lab)[fg]
    size = np.bincount(key, minlength=T * k)
    cls = np.zeros(T * k, dtype=np.int64)
    cls[key] = mask[fg]
    return k, size, cls


def _matches(lp: np.ndarray, lt: np.ndarray, p: np.ndarray, t: np.ndarray, min_iou: float,
             sp: tuple[int, np.ndarray], st: tuple[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Which true events are detected and which predicted events match one (IoU >= ``min_iou``).

    ``sp``, ``st``: ``(k, size)`` of the predicted and true events (see :func:`_sizes`).
    """
    (kp, size_p), (kt, size_t) = sp, st
    T = lp.shape[0]
    det = np.zeros(T * kt, dtype=bool)
    mp = np.zeros(T * kp, dtype=bool)
    both = (lp > 0) & (lt > 0) & (p == t)   # overlaps of same-class cells
    if not both.any():
        return det, mp
    tt = np.broadcast_to(np.arange(T)[:, None, None], lp.shape)[both].astype(np.int64)
    a = lp[both].astype(np.int64)
    b = lt[both].astype(np.int64)
    pair = (tt * kp + a) * kt + b
    uniq, cnt = np.unique(pair, return_counts=True)
    s = uniq // (kp * kt)
    ea = s * kp + (uniq // kt) % kp
    eb = s * kt + uniq % kt
    iou = cnt / (size_p[ea] + size_t[eb] - cnt)
    ok = iou >= min_iou
    det[eb[ok]] = True
    mp[ea[ok]] = True
    return det, mp


def _add_events(n: _Counts, p: np.ndarray, t: np.ndarray, classes: tuple[int, ...], min_iou: float,
                geo: Geo, opts: LabelOptions) -> None:
    """Label both masks of a block and count true, predicted, detected and matched events."""
    lp, _, _ = _label_block(p, geo=geo, opts=opts)
    lt, _, _ = _label_block(t, geo=geo, opts=opts)
    assert lp is not None and lt is not None  # want_labels=True
    kp, size_p, cls_p = _sizes(lp, p)
    kt, size_t, cls_t = _sizes(lt, t)
    det, mp = _matches(lp, lt, p, t, min_iou, (kp, size_p), (kt, size_t))
    for c in classes:
        true_c = (size_t > 0) & (cls_t == c)
        pred_c = (size_p > 0) & (cls_p == c)
        n.n_true[c] += int(true_c.sum())
        n.n_pred[c] += int(pred_c.sum())
        n.detected[c] += int((det & true_c).sum())
        n.matched_pred[c] += int((mp & pred_c).sum())


def _rows(n: _Counts, classes: tuple[int, ...]) -> pd.DataFrame:
    """One row of scores per class."""
    rows = []
    for c in classes:
        fa = int(n.n_pred[c] - n.matched_pred[c])
        nt, npr, d = n.n_true[c], n.n_pred[c], n.detected[c]
        with np.errstate(invalid="ignore", divide="ignore"):
            rows.append({
                "class": int(c), "name": CLASSES.get(int(c), f"class_{c}"),
                "iou": n.inter[c] / n.union[c] if n.union[c] else np.nan,
                "iou_area": n.inter_a[c] / n.union_a[c] if n.union_a[c] else np.nan,
                "n_true": int(nt), "n_pred": int(npr),
                "detected": int(d), "missed": int(nt - d), "false_alarms": fa,
                "pod": d / nt if nt else np.nan,
                "far": fa / npr if npr else np.nan,
                "csi": d / (nt + fa) if (nt + fa) else np.nan,
            })
    return pd.DataFrame(rows)


def skill(
    pred: np.ndarray | xr.DataArray | xr.Dataset,
    truth: np.ndarray | xr.DataArray | xr.Dataset,
    *,
    classes: ClassesLike = (1, 2),
    min_iou: float = 0.1,
    min_cells: int = 1,
    min_area_km2: float = 0.0,
    lat: Any = None,
    lon: Any = None,
    radius_km: float = EARTH_RADIUS_KM,
    block_steps: int | None = None,
) -> pd.DataFrame:
    """Pixel IoU and event detection skill of ``pred`` against ``truth``.

    Parameters
    ----------
    pred, truth
        Class masks of the same shape: numpy (time, lat, lon) with ``lat``/``lon``,
        or DataArrays / mask Datasets (numpy or dask; read block by block).
    classes
        Classes to score: one (``1``, ``"tc"``) or several (``(1, 2)``,
        ``["tc", "ar"]``; default both).
    min_iou
        Intersection over union needed for two events to match (0 < value <= 1).
    min_cells, min_area_km2
        Event filters applied to both masks before matching.

    Returns
    -------
    pandas.DataFrame
        One row per class: ``class, name, iou, iou_area, n_true, n_pred,
        detected, missed, false_alarms, pod, far, csi``.

    Examples
    --------
    A prediction that equals the truth scores perfectly:

    >>> import climviz as cv
    >>> masks = cv.synthetic_run(4, shape=(32, 48))["LABELS"]
    >>> cv.events.skill(masks, masks)[["name", "iou", "pod", "far", "csi"]]
                    name  iou  pod  far  csi
    0   tropical_cyclone  1.0  1.0  0.0  1.0
    1  atmospheric_river  1.0  1.0  0.0  1.0

    Removing every TC from the prediction misses them all:

    >>> no_tc = masks.where(masks != 1, 0)
    >>> cv.events.skill(no_tc, masks)[["name", "n_pred", "pod", "csi"]]
                    name  n_pred  pod  csi
    0   tropical_cyclone       0  0.0  0.0
    1  atmospheric_river      10  1.0  1.0
    """
    from climviz.events._source import MaskSource
    from climviz.events.labelling import _check_mask_array

    classes = class_ids(classes)
    if not 0 < min_iou <= 1:
        raise DataError(f"min_iou: expected a value in (0, 1], found {min_iou}")
    sp = MaskSource.from_any(pred, None, lat=lat, lon=lon, name="pred")
    st = MaskSource.from_any(truth, None, lat=lat, lon=lon, name="truth")
    if sp.shape != st.shape:
        raise DataError(f"pred/truth: expected the same (time, lat, lon) shape, found {sp.shape} and {st.shape}")
    geo = Geo.of(sp.lat, sp.lon, radius_km)
    area = geo.rows[:, None] * geo.cols[None, :]
    opts = LabelOptions(float(min_area_km2), int(min_cells), resolve_periodic(None, sp.lon))
    n = _Counts.zeros(max(classes) + 1)
    for sl in sp.slices(block_steps):
        p = _check_mask_array(np.asarray(sp._get(sp.mask, sl)), "pred")
        t = _check_mask_array(np.asarray(st._get(st.mask, sl)), "truth")
        _add_pixels(n, p, t, classes, area)
        _add_events(n, p, t, classes, min_iou, geo, opts)
    return _rows(n, classes)
