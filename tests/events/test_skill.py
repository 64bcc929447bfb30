"""Pixel and event skill of a prediction against a hand-built truth."""

from __future__ import annotations

import numpy as np
import pytest

from climviz.errors import DataError
from climviz.events import skill

from .conftest import regular_grid


def test_pod_far_and_iou_on_hand_built_events():
    lat, lon = regular_grid(20, 40)
    truth = np.zeros((2, 20, 40), dtype=np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 2:5, 2:5] = 1  # detected: prediction shifted by one column
    pred[0, 2:5, 3:6] = 1
    truth[0, 10:12, 10:12] = 1  # missed: nothing predicted
    truth[1, 15:17, 30:33] = 1  # detected exactly
    pred[1, 15:17, 30:33] = 1
    pred[1, 5:7, 20:22] = 1  # false alarm
    pred[1, 10:12, 10:12] = 2  # right place, wrong class: a false alarm for class 2
    s = skill(pred, truth, lat=lat, lon=lon, classes=(1, 2)).set_index("class")
    assert s.loc[1, "n_true"] == 3 and s.loc[1, "n_pred"] == 3
    assert s.loc[1, "detected"] == 2 and s.loc[1, "missed"] == 1 and s.loc[1, "false_alarms"] == 1
    assert s.loc[1, "pod"] == pytest.approx(2 / 3) and s.loc[1, "far"] == pytest.approx(1 / 3)
    assert s.loc[1, "csi"] == pytest.approx(2 / 4)
    inter = ((pred == 1) & (truth == 1)).sum()
    union = ((pred == 1) | (truth == 1)).sum()
    assert s.loc[1, "iou"] == pytest.approx(inter / union)
    assert s.loc[2, "n_true"] == 0 and s.loc[2, "false_alarms"] == 1 and np.isnan(s.loc[2, "pod"])
    assert s.loc[2, "iou"] == 0.0


def test_min_iou_decides_a_match():
    lat, lon = regular_grid(20, 40)
    truth = np.zeros((1, 20, 40), dtype=np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 5:9, 5:9] = 2  # 16 cells
    pred[0, 5:9, 8:12] = 2  # overlap 4, union 28: IoU 1/7
    assert skill(pred, truth, lat=lat, lon=lon, min_iou=0.1).set_index("class").loc[2, "detected"] == 1
    assert skill(pred, truth, lat=lat, lon=lon, min_iou=0.2).set_index("class").loc[2, "detected"] == 0


def test_shapes_must_match():
    lat, lon = regular_grid(20, 40)
    with pytest.raises(DataError, match="shape"):
        skill(np.zeros((1, 20, 40), np.uint8), np.zeros((2, 20, 40), np.uint8), lat=lat, lon=lon)


def test_classes_as_names_or_one_class():
    """``classes`` takes one class or names: the rows equal those of the numbers, counted by hand."""
    import pandas as pd

    from climviz.errors import ConfigError

    lat, lon = regular_grid(20, 40)
    truth = np.zeros((1, 20, 40), dtype=np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 2:5, 2:5] = 1
    pred[0, 2:5, 3:6] = 1          # TC detected (IoU 6/12)
    truth[0, 10:12, 20:30] = 2     # AR missed
    by_number = skill(pred, truth, lat=lat, lon=lon, classes=(1, 2))
    pd.testing.assert_frame_equal(skill(pred, truth, lat=lat, lon=lon, classes=["tc", "AR"]), by_number)
    one = skill(pred, truth, lat=lat, lon=lon, classes="ar")
    pd.testing.assert_frame_equal(one, by_number.iloc[[1]].reset_index(drop=True))
    assert one.loc[0, "n_true"] == 1 and one.loc[0, "detected"] == 0
    assert skill(pred, truth, lat=lat, lon=lon, classes=1).loc[0, "pod"] == 1.0
    with pytest.raises(ConfigError, match="classes: expected"):
        skill(pred, truth, lat=lat, lon=lon, classes="hail")
