"""Small data for the data-layer tests (built once per session, a few hundred kB)."""

from __future__ import annotations

import pytest

from climviz.data.synthetic import synthetic_run


@pytest.fixture(scope="session")
def small_run_and_features():
    """A 96 x 144 synthetic run of 12 three-hourly steps, with its constructed features."""
    return synthetic_run(12, shape=(96, 144), seed=3, n_tc=3, n_ar=2, return_features=True)


@pytest.fixture(scope="session")
def small_run(small_run_and_features):
    return small_run_and_features[0]


@pytest.fixture(scope="session")
def tiny_run():
    """A 16 x 24 run of 6 steps: for file-format tests where size does not matter."""
    return synthetic_run(6, shape=(16, 24), seed=1, n_tc=1, n_ar=1, tc_radius_km=1500.0)
