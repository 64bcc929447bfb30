"""Segmentation metrics from a confusion matrix, summed across batches and workers.

IoU is computed from the *summed* confusion matrix (never by averaging per-batch or
per-worker IoUs): ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``.
"""

from __future__ import annotations

import numpy as np
import torch

from climviz.data.schema import CLASS_KEYS

__all__ = [
    "all_reduce_sum",
    "confusion_matrix",
    "iou_from_confusion",
    "metrics_from_confusion",
    "pixel_accuracy",
]


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int = 3) -> torch.Tensor:
    """Confusion matrix ``cm[true, predicted]`` (int64, shape (C, C)) of two label tensors.

    Examples
    --------
    Four pixels; the third is a true AR (2) predicted as TC (1):

    >>> import torch
    >>> cm = cv.training.confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    >>> cm
    tensor([[1, 0, 0],
            [0, 1, 0],
            [0, 1, 1]])
    >>> int(cm.sum()), int(cm.trace())  # pixels, correct pixels
    (4, 3)
    """
    if pred.shape != target.shape:
        raise ValueError(f"confusion_matrix: pred {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} differ in shape")
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(cm) -> np.ndarray:
    """Per-class IoU ``TP / (TP + FP + FN)``; NaN for a class absent from both.

    Examples
    --------
    TC (1): 1 hit, 1 false alarm, IoU 1/2; AR (2): 1 hit, 1 miss, IoU 1/2:

    >>> import torch
    >>> cm = cv.training.confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    >>> cv.training.iou_from_confusion(cm)
    array([1. , 0.5, 0.5])
    >>> cv.training.iou_from_confusion(np.diag([5, 0, 2]))  # no TC in either: NaN, not 0
    array([ 1., nan,  1.])
    """
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


def pixel_accuracy(cm) -> float:
    """Fraction of pixels classified correctly."""
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def metrics_from_confusion(cm, class_keys=CLASS_KEYS) -> dict[str, float]:
    """``iou_<class>`` per class, ``miou`` (mean over classes present), ``pixel_accuracy``."""
    iou = iou_from_confusion(cm)
    keys = list(class_keys) if len(class_keys) == len(iou) else [str(i) for i in range(len(iou))]
    out = {f"iou_{k}": float(v) for k, v in zip(keys, iou)}
    out["miou"] = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    out["pixel_accuracy"] = pixel_accuracy(cm)
    return out


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all workers in place when torch.distributed is initialised.

    Returns ``t`` (unchanged in a single process).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
