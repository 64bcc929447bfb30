"""Weighted loss: checked against hand computations on tiny examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from climviz.errors import DataError
from climviz.training.loss import (
    WeightedLoss,
    class_counts,
    class_weights_from_counts,
    class_weights_from_labels,
    soft_overlap_loss,
)


def test_inverse_frequency_weights_by_hand():
    # 10 pixels: 7 background, 2 TC, 1 AR -> f = (0.7, 0.2, 0.1)
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 2], dtype=np.uint8)
    assert class_counts(labels).tolist() == [7, 2, 1]
    w = class_weights_from_labels(labels, mode="inverse")
    # w_c = 1 / (C f_c) so that sum_c f_c w_c = 1
    np.testing.assert_allclose(w, [1 / (3 * 0.7), 1 / (3 * 0.2), 1 / (3 * 0.1)])
    ws = class_weights_from_labels(labels, mode="inverse_sqrt")
    raw = np.array([1 / math.sqrt(0.7), 1 / math.sqrt(0.2), 1 / math.sqrt(0.1)])
    np.testing.assert_allclose(ws, raw / (0.7 * raw[0] + 0.2 * raw[1] + 0.1 * raw[2]))
    np.testing.assert_allclose(class_weights_from_labels(labels, mode="none"), [1, 1, 1])


def test_absent_class_gets_a_finite_weight():
    w = class_weights_from_counts(np.array([99, 1, 0]))
    assert np.isfinite(w).all() and w[2] >= w[1] > w[0]


def test_bad_labels_are_named():
    with pytest.raises(DataError, match="found 3"):
        class_counts(np.array([0, 1, 3]))
    with pytest.raises(DataError, match="empty"):
        class_weights_from_counts(np.array([0, 0, 0]))


def test_weighted_cross_entropy_equals_hand_computation_on_2x3():
    # one sample, 3 classes, a 2x3 grid; logits chosen so the softmax is easy by hand
    target = torch.tensor([[[0, 0, 1], [0, 2, 0]]])
    logits = torch.zeros(1, 3, 2, 3)
    logits[0, 0, 0, 0] = math.log(2.0)   # pixel (0,0): exp = (2, 1, 1) -> p0 = 1/2
    logits[0, 1, 0, 2] = math.log(3.0)   # pixel (0,2): exp = (1, 3, 1) -> p1 = 3/5
    logits[0, 2, 1, 1] = math.log(4.0)   # pixel (1,1): exp = (1, 1, 4) -> p2 = 4/6
    # every other pixel has uniform logits -> p = 1/3
    weights = [0.5, 2.0, 4.0]
    nll = {  # (pixel): (weight of its class, -log p of its class)
        (0, 0): (0.5, -math.log(1 / 2)),
        (0, 1): (0.5, -math.log(1 / 3)),
        (0, 2): (2.0, -math.log(3 / 5)),
        (1, 0): (0.5, -math.log(1 / 3)),
        (1, 1): (4.0, -math.log(4 / 6)),
        (1, 2): (0.5, -math.log(1 / 3)),
    }
    expected = sum(w * nl for w, nl in nll.values()) / sum(w for w, _ in nll.values())
    loss = WeightedLoss(weights)(logits, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # unweighted = plain mean of the six -log p
    assert WeightedLoss(None)(logits, target).item() == pytest.approx(
        sum(nl for _, nl in nll.values()) / 6, rel=1e-6)


def test_soft_dice_and_jaccard_by_hand():
    # two pixels, two classes: probabilities (0.8, 0.2) and (0.4, 0.6); targets 0 and 1
    p = torch.tensor([[0.8, 0.4], [0.2, 0.6]])             # (class, pixel)
    logits = p.log().reshape(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    # class 0: inter 0.8, |P| = 1.2, |T| = 1; class 1: inter 0.6, |P| = 0.8, |T| = 1
    dice = 1 - ((2 * 0.8) / 2.2 + (2 * 0.6) / 1.8) / 2
    jacc = 1 - (0.8 / (2.2 - 0.8) + 0.6 / (1.8 - 0.6)) / 2
    assert soft_overlap_loss(logits, target, "dice", smooth=0).item() == pytest.approx(dice, rel=1e-5)
    assert soft_overlap_loss(logits, target, "jaccard", smooth=0).item() == pytest.approx(jacc, rel=1e-5)
    # the combined loss adds dice_weight * dice to the cross entropy
    ce = -(math.log(0.8) + math.log(0.6)) / 2
    combo = WeightedLoss(None, dice_weight=0.5, overlap="dice")(logits, target).item()
    dice_smooth1 = 1 - ((2 * 0.8 + 1) / 3.2 + (2 * 0.6 + 1) / 2.8) / 2
    assert combo == pytest.approx(ce + 0.5 * dice_smooth1, rel=1e-5)


def test_inverse_weights_balance_the_classes():
    """Unweighted, predicting all background is nearly free; with inverse-frequency
    weights every class carries the same total weight, so ignoring the rare class
    costs as much as ignoring the background."""
    target = torch.zeros(1, 4, 8, dtype=torch.long)
    target[0, 0, 0] = 1                                  # 1 TC pixel out of 32
    all_bg = torch.full((1, 3, 4, 8), -5.0)
    all_bg[:, 0] = 5.0
    all_tc = torch.full((1, 3, 4, 8), -5.0)
    all_tc[:, 1] = 5.0
    plain = WeightedLoss(None)
    assert plain(all_bg, target) < plain(all_tc, target) / 10
    weighted = WeightedLoss(class_weights_from_labels(target.numpy(), mode="inverse"))
    torch.testing.assert_close(weighted(all_bg, target), weighted(all_tc, target))


def test_climatenet_jaccard_loss_by_hand():
    """ClimateNet's CGNet loss: 1 - mean_c I_c / (U_c + 1e-7) on softmax probabilities,
    sums over batch and grid, recomputed by hand on a 1 x 2 grid with 2 classes."""
    from climviz.training.config import TrainConfig
    from climviz.training.loss import JaccardLoss, build_loss, jaccard_loss

    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])   # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    # pixel 1: p = (1/2, 1/2), label 0; pixel 2: p = (3/4, 1/4), label 1
    i0, c0 = 0.5, (0.5 + 0.75) + 1          # class 0: intersection, |P| + |T|
    i1, c1 = 0.25, (0.5 + 0.25) + 1
    expect = 1 - (i0 / (c0 - i0 + 1e-7) + i1 / (c1 - i1 + 1e-7)) / 2
    assert float(jaccard_loss(logits, target)) == pytest.approx(expect, rel=1e-6)
    assert expect == pytest.approx(1 - (0.5 / 1.75 + 0.25 / 1.5) / 2)
    # a perfect, confident prediction has loss ~0
    sure = torch.tensor([[[[20.0, -20.0]], [[-20.0, 20.0]]]])
    assert float(jaccard_loss(sure, target)) == pytest.approx(0.0, abs=1e-6)
    assert isinstance(build_loss(TrainConfig(loss="jaccard")), JaccardLoss)
    with pytest.raises(ValueError, match="expected logits"):
        JaccardLoss()(logits[0], target)
