"""IoU and accuracy from a confusion matrix, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from climviz.training.metrics import (all_reduce_sum, confusion_matrix, iou_from_confusion,
                                      metrics_from_confusion, pixel_accuracy)


def test_confusion_matrix_and_iou_by_hand():
    target = torch.tensor([[0, 0, 0, 1], [1, 2, 2, 0]])
    pred = torch.tensor([[0, 0, 1, 1], [0, 2, 0, 0]])
    # rows = true class, columns = predicted class
    # true 0 (4 pixels): predicted 0,0,1,0 -> [3, 1, 0]
    # true 1 (2 pixels): predicted 1,0      -> [1, 1, 0]
    # true 2 (2 pixels): predicted 2,0      -> [1, 0, 1]
    hand = np.array([[3, 1, 0], [1, 1, 0], [1, 0, 1]])
    cm = confusion_matrix(pred, target, 3)
    np.testing.assert_array_equal(cm.numpy(), hand)
    # IoU_0 = 3 / (4 + 5 - 3) = 1/2, IoU_1 = 1 / (2 + 2 - 1) = 1/3, IoU_2 = 1 / (2 + 1 - 1) = 1/2
    np.testing.assert_allclose(iou_from_confusion(cm), [1 / 2, 1 / 3, 1 / 2])
    assert pixel_accuracy(cm) == pytest.approx(5 / 8)
    m = metrics_from_confusion(cm)
    assert m["iou_background"] == pytest.approx(0.5)
    assert m["iou_tc"] == pytest.approx(1 / 3)
    assert m["iou_ar"] == pytest.approx(0.5)
    assert m["miou"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)


def test_confusion_matrices_add_over_batches():
    rng = np.random.default_rng(1)
    a, b = (torch.from_numpy(rng.integers(0, 3, (2, 5, 7))) for _ in range(2))
    whole = confusion_matrix(a.reshape(-1), b.reshape(-1))
    parts = confusion_matrix(a[0], b[0]) + confusion_matrix(a[1], b[1])
    np.testing.assert_array_equal(whole.numpy(), parts.numpy())
    assert int(whole.sum()) == a.numel()


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = np.array([[5, 0, 0], [0, 0, 0], [1, 0, 2]])
    iou = iou_from_confusion(cm)
    assert np.isnan(iou[1])
    m = metrics_from_confusion(cm)
    assert m["miou"] == pytest.approx((5 / 6 + 2 / 3) / 2)


def test_all_reduce_is_identity_in_one_process():
    t = torch.arange(4)
    assert all_reduce_sum(t) is t and t.tolist() == [0, 1, 2, 3]
