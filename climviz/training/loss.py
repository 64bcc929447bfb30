"""Class-weighted cross entropy (+ optional soft Dice / Jaccard) for climate masks.

Background covers > 95 % of the pixels of a climate mask, so an unweighted loss is
minimised by predicting "background" everywhere. As in Kurth et al. (2018), each
class is weighted by its inverse frequency (or the square root of it) on the
training split.

The ClimateNet CGNet recipe (Prabhat et al. 2021, ``andregraubner/ClimateNet``
``climatenet/utils/losses.py``) trains with a softmax Jaccard (IoU) loss alone
instead: :func:`jaccard_loss`, selected by ``TrainConfig(loss="jaccard")``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from climviz.errors import ConfigError, DataError

__all__ = [
    "JaccardLoss",
    "WeightedLoss",
    "build_loss",
    "class_counts",
    "class_weights_from_counts",
    "class_weights_from_labels",
    "jaccard_loss",
    "soft_overlap_loss",
]


def class_counts(labels: np.ndarray | Iterable[np.ndarray], num_classes: int = 3) -> np.ndarray:
    """Pixel count of each class in a label array (or an iterable of label blocks).

    Raises DataError if a label is outside ``0 .. num_classes - 1``.
    """
    blocks = [labels] if isinstance(labels, (np.ndarray, torch.Tensor)) else labels
    counts = np.zeros(num_classes, dtype=np.int64)
    for block in blocks:
        a = np.asarray(block).ravel()
        if a.size == 0:
            continue
        if a.min() < 0 or a.max() >= num_classes:
            bad = a[(a < 0) | (a >= num_classes)][0]
            raise DataError(f"labels: expected classes 0..{num_classes - 1}, found {int(bad)}")
        counts += np.bincount(a.astype(np.int64), minlength=num_classes)
    return counts


def class_weights_from_counts(counts: np.ndarray, mode: str = "inverse") -> np.ndarray:
    """Per-class loss weights from class pixel counts.

    ``inverse``: ``w_c ∝ 1 / f_c``; ``inverse_sqrt``: ``w_c ∝ 1 / sqrt(f_c)``; ``none``: 1.
    ``f_c`` is the class frequency (classes absent from the counts are treated as one
    pixel, so they get a large but finite weight). Weights are normalised so that the
    frequency-weighted mean weight is 1 (``sum_c f_c w_c = 1``), keeping the loss on
    the scale of an unweighted cross entropy.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 2 or (counts < 0).any():
        raise DataError(f"class counts: expected >= 2 non-negative counts, found {counts!r}")
    if counts.sum() <= 0:
        raise DataError("class counts: the training labels are empty (no pixels counted)")
    if mode == "none":
        return np.ones_like(counts)
    freq = np.maximum(counts, 1.0) / counts.sum()
    if mode == "inverse":
        w = 1.0 / freq
    elif mode == "inverse_sqrt":
        w = 1.0 / np.sqrt(freq)
    else:
        raise ConfigError(f"TrainConfig.class_weights: expected 'inverse', 'inverse_sqrt', "
                          f"'none' or a list of numbers, found {mode!r}")
    true_freq = counts / counts.sum()
    return w / float((true_freq * w).sum())


def class_weights_from_labels(labels, num_classes: int = 3, mode: str = "inverse") -> np.ndarray:
    """:func:`class_weights_from_counts` of :func:`class_counts` of ``labels``.

    Examples
    --------
    Class frequencies 0.6, 0.3, 0.1; ``inverse`` weights ``1 / f`` = 1.67, 3.33, 10,
    divided by ``sum_c f_c / f_c = 3`` so that the frequency-weighted mean weight is 1:

    >>> labels = np.array([0] * 6 + [1] * 3 + [2])
    >>> w = cv.training.class_weights_from_labels(labels)
    >>> w.round(4)
    array([0.5556, 1.1111, 3.3333])
    >>> float((np.array([0.6, 0.3, 0.1]) * w).sum())
    1.0
    >>> cv.training.class_weights_from_labels(labels, mode="inverse_sqrt").round(4)
    array([0.7879, 1.1142, 1.9299])

    On the labels of a synthetic run, where background covers 99% of the pixels:

    >>> labels = cv.synthetic_run(4, shape=(32, 48))["LABELS"].values
    >>> np.bincount(labels.ravel()).tolist()
    [6067, 31, 46]
    >>> cv.training.class_weights_from_labels(labels).round(2)
    array([ 0.34, 66.06, 44.52])
    """
    return class_weights_from_counts(class_counts(labels, num_classes), mode)


def soft_overlap_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "dice",
                      smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice (``1 - 2|P∩T| / (|P| + |T|)``) or Jaccard loss averaged over classes.

    ``P`` are the softmax probabilities, ``T`` the one-hot targets, sums run over the
    batch and the grid; ``smooth`` is added to numerator and denominator.
    """
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    card = probs.sum(dims) + onehot.sum(dims)
    if kind == "dice":
        score = (2 * inter + smooth) / (card + smooth)
    elif kind == "jaccard":
        score = (inter + smooth) / (card - inter + smooth)
    else:
        raise ConfigError(f"TrainConfig.overlap_loss: expected 'dice' or 'jaccard', found {kind!r}")
    return 1.0 - score.mean()


class WeightedLoss(nn.Module):
    """Class-weighted cross entropy, optionally plus ``dice_weight`` x soft Dice/Jaccard.

    The cross entropy is the weighted mean ``sum_i w[y_i] * (-log p_i[y_i]) / sum_i w[y_i]``
    over all pixels ``i`` of the batch (as :func:`torch.nn.functional.cross_entropy`
    with ``weight=``). It is computed in float32 even under autocast.

    Parameters
    ----------
    weights
        Per-class weights (length = number of classes), or None for unweighted.
    dice_weight
        Weight of the soft overlap term (0 = cross entropy only).
    overlap
        ``"dice"`` or ``"jaccard"``.

    Examples
    --------
    Uniform logits give every class probability 1/3, so the (weighted or not) cross
    entropy is ``ln 3`` whatever the target:

    >>> import torch
    >>> logits, target = torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 1], [2, 2]]])
    >>> round(float(cv.training.WeightedLoss()(logits, target)), 4), round(float(np.log(3)), 4)
    (1.0986, 1.0986)
    >>> round(float(cv.training.WeightedLoss([0.5, 1.0, 3.0])(logits, target)), 4)
    1.0986

    Confident, correct logits give a loss near 0:

    >>> good = 10 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    >>> float(cv.training.WeightedLoss([0.5, 1.0, 3.0], dice_weight=1.0)(good, target)) < 1e-3
    True
    """

    weight: torch.Tensor | None  # per-class weights (a buffer: moves with the module), or None

    def __init__(self, weights=None, dice_weight: float = 0.0, overlap: str = "dice") -> None:
        super().__init__()
        w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32)
        self.register_buffer("weight", w)
        self.dice_weight = float(dice_weight)
        self.overlap = overlap

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean weighted cross-entropy (plus ``dice_weight`` times the overlap loss) of a batch."""
        if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(f"loss: expected logits (N, C, H, W) and target (N, H, W), found "
                             f"{tuple(logits.shape)} and {tuple(target.shape)}")
        loss = F.cross_entropy(logits.float(), target.long(), weight=self.weight)
        if self.dice_weight > 0:
            loss = loss + self.dice_weight * soft_overlap_loss(logits, target.long(), self.overlap)
        return loss


def jaccard_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Softmax Jaccard (IoU) loss of ClimateNet's CGNet recipe.

    ``1 - mean_c I_c / (U_c + eps)`` with ``P = softmax(logits)``, ``T`` the one-hot
    target, ``I_c = sum P_c T_c`` and ``U_c = sum (P_c + T_c) - I_c``, sums over the
    batch and the grid; classes are averaged with equal weight (as
    ``climatenet.utils.losses.jaccard_loss``). Computed in float32 (dimensionless).
    """
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target.long(), probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    union = (probs + onehot).sum(dims) - inter
    return 1.0 - (inter / (union + eps)).mean()


class JaccardLoss(nn.Module):
    """:func:`jaccard_loss` as a module (``TrainConfig(loss="jaccard")``).

    Examples
    --------
    Uniform logits (P = 1/3 everywhere) on a 2 x 2 target with one background, one TC and
    two AR pixels: ``I/U`` is ``(1/3)/2``, ``(1/3)/2`` and ``(2/3)/(8/3)``, so the loss is
    ``1 - (1/6 + 1/6 + 1/4) / 3 = 29/36``:

    >>> import torch
    >>> loss = cv.training.JaccardLoss()
    >>> round(float(loss(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 1], [2, 2]]]))), 4), round(29 / 36, 4)
    (0.8056, 0.8056)
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of a batch: logits ``(N, C, H, W)``, integer target ``(N, H, W)``."""
        if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(f"loss: expected logits (N, C, H, W) and target (N, H, W), found "
                             f"{tuple(logits.shape)} and {tuple(target.shape)}")
        return jaccard_loss(logits, target, self.eps)


def build_loss(cfg, weights=None) -> nn.Module:
    """The loss module named by ``cfg.loss`` (``weights``: per-class weights for the CE)."""
    if cfg.loss == "jaccard":
        return JaccardLoss()
    if cfg.loss == "weighted_ce":
        return WeightedLoss(weights, cfg.dice_weight, cfg.overlap_loss)
    raise ConfigError(f"TrainConfig.loss: expected 'weighted_ce' or 'jaccard', found {cfg.loss!r}")
