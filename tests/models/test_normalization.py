"""SegmentationNet.set_normalization keeps the network usable when it refuses statistics."""

from __future__ import annotations

import pytest
import torch

from climviz import models
from climviz.errors import DataError


def test_refused_statistics_leave_the_previous_normalization_in_place():
    """A network that normalizes its raw input must not silently stop doing so because a
    later set_normalization call was refused (wrong number of channels)."""
    net = models.build("cgnet", "tiny", in_channels=2, seed=0).eval()
    net.set_normalization({"channels": ["a", "b"], "mean": [280.0, 1.0e5], "std": [10.0, 1000.0]})
    x = torch.tensor([[290.0, 1.01e5]]).reshape(1, 2, 1, 1).expand(1, 2, 32, 32).contiguous()
    with torch.no_grad():
        before = net(x)
    with pytest.raises(DataError, match="normalization for 3 channels, but the network takes 2"):
        net.set_normalization({"channels": ["a", "b", "c"], "mean": [0.0] * 3, "std": [1.0] * 3})
    assert net.input_norm is not None
    assert net.input_norm.mean.tolist() == [280.0, 1.0e5]
    with torch.no_grad():
        assert torch.equal(net(x), before)
