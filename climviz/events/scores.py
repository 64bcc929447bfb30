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

from typing import Any

import numpy as np
import pandas as pd

from climviz.data.schema import CLASSES
from climviz.errors import DataError
from climviz.events.geometry import EARTH_RADIUS_KM
from climviz.events.labelling import Geo, LabelOptions, _label_block, resolve_periodic

__all__ = ["skill"]


def skill(
    pred: Any,
    truth: Any,
    *,
    classes: tuple[int, ...] = (1, 2),
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
        Classes to score.
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

    if not 0 < min_iou <= 1:
        raise DataError(f"min_iou: expected a value in (0, 1], found {min_iou}")
    sp = MaskSource.from_any(pred, None, lat=lat, lon=lon, name="pred")
    st = MaskSource.from_any(truth, None, lat=lat, lon=lon, name="truth")
    if sp.shape != st.shape:
        raise DataError(f"pred/truth: expected the same (time, lat, lon) shape, found {sp.shape} and {st.shape}")
    geo = Geo.of(sp.lat, sp.lon, radius_km)
    area = geo.rows[:, None] * geo.cols[None, :]
    opts = LabelOptions(float(min_area_km2), int(min_cells), resolve_periodic(None, sp.lon))
    ncls = max(classes) + 1
    inter = np.zeros(ncls)
    union = np.zeros(ncls)
    inter_a = np.zeros(ncls)
    union_a = np.zeros(ncls)
    n_true = np.zeros(ncls, dtype=np.int64)
    n_pred = np.zeros(ncls, dtype=np.int64)
    detected = np.zeros(ncls, dtype=np.int64)
    matched_pred = np.zeros(ncls, dtype=np.int64)
    slices = sp.slices(block_steps)
    for sl in slices:
        p = sp._get(sp.mask, sl)
        t = st._get(st.mask, sl)
        from climviz.events.labelling import _check_mask_array

        p = _check_mask_array(np.asarray(p), "pred")
        t = _check_mask_array(np.asarray(t), "truth")
        for c in classes:
            pc, tc = p == c, t == c
            i, u = pc & tc, pc | tc
            inter[c] += i.sum()
            union[c] += u.sum()
            inter_a[c] += (i * area).sum()
            union_a[c] += (u * area).sum()
        lp, _, _ = _label_block(p, geo=geo, opts=opts)
        lt, _, _ = _label_block(t, geo=geo, opts=opts)
        assert lp is not None and lt is not None  # want_labels=True
        T, H, W = p.shape
        HW = H * W
        # event sizes (cells) and classes, keyed by (step, id)
        kp = int(lp.max()) + 1
        kt = int(lt.max()) + 1
        steps = np.arange(T)[:, None, None]
        fp = lp > 0
        ft = lt > 0
        key_p = (steps * kp + lp)[fp]
        key_t = (steps * kt + lt)[ft]
        size_p = np.bincount(key_p, minlength=T * kp)
        size_t = np.bincount(key_t, minlength=T * kt)
        cls_p = np.zeros(T * kp, dtype=np.int64)
        cls_p[key_p] = p[fp]
        cls_t = np.zeros(T * kt, dtype=np.int64)
        cls_t[key_t] = t[ft]
        # overlaps of same-class cells
        both = fp & ft & (p == t)
        if both.any():
            tt = np.broadcast_to(steps, lp.shape)[both].astype(np.int64)
            a = lp[both].astype(np.int64)
            b = lt[both].astype(np.int64)
            pair = (tt * kp + a) * kt + b
            uniq, cnt = np.unique(pair, return_counts=True)
            s = uniq // (kp * kt)
            ea = s * kp + (uniq // kt) % kp
            eb = s * kt + uniq % kt
            iou = cnt / (size_p[ea] + size_t[eb] - cnt)
            ok = iou >= min_iou
            det = np.zeros(T * kt, dtype=bool)
            det[eb[ok]] = True
            mp = np.zeros(T * kp, dtype=bool)
            mp[ea[ok]] = True
        else:
            det = np.zeros(T * kt, dtype=bool)
            mp = np.zeros(T * kp, dtype=bool)
        for c in classes:
            true_c = (size_t > 0) & (cls_t == c)
            pred_c = (size_p > 0) & (cls_p == c)
            n_true[c] += int(true_c.sum())
            n_pred[c] += int(pred_c.sum())
            detected[c] += int((det & true_c).sum())
            matched_pred[c] += int((mp & pred_c).sum())
        del HW
    rows = []
    for c in classes:
        fa = int(n_pred[c] - matched_pred[c])
        with np.errstate(invalid="ignore", divide="ignore"):
            rows.append({
                "class": int(c), "name": CLASSES.get(int(c), f"class_{c}"),
                "iou": inter[c] / union[c] if union[c] else np.nan,
                "iou_area": inter_a[c] / union_a[c] if union_a[c] else np.nan,
                "n_true": int(n_true[c]), "n_pred": int(n_pred[c]),
                "detected": int(detected[c]), "missed": int(n_true[c] - detected[c]), "false_alarms": fa,
                "pod": detected[c] / n_true[c] if n_true[c] else np.nan,
                "far": fa / n_pred[c] if n_pred[c] else np.nan,
                "csi": detected[c] / (n_true[c] + fa) if (n_true[c] + fa) else np.nan,
            })
    return pd.DataFrame(rows)
