"""Fixtures of the model tests: small random climate-like inputs and tiny networks."""

from __future__ import annotations

import pytest
import torch

from climviz.models import build


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep each test on the two cores of the CI machine and restore torch's setting."""
    old = torch.get_num_threads()
    torch.set_num_threads(min(old, 2))
    yield
    torch.set_num_threads(old)


@pytest.fixture(params=["deeplabv3plus", "tiramisu"])
def tiny_name(request) -> str:
    """Name of each network, used with the cheap ``tiny`` preset."""
    return request.param


@pytest.fixture
def tiny_net(tiny_name):
    """A tiny network in eval mode with seeded weights."""
    return build(tiny_name, "tiny", seed=0).eval()


@pytest.fixture
def make_fields():
    """Factory of standard-normal input fields ``(n, c, h, w)``."""

    def make(n: int, h: int, w: int, c: int = 16, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, c, h, w, generator=g)

    return make
