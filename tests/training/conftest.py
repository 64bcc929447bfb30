"""Small data and configs for the training tests (the Ray tests append fixtures here)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run training tests on one intra-op thread.

    The test machine is shared by many processes; with two OpenMP threads fighting
    for two busy cores a tiny training step is ~30x slower than with one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def storm_run():
    """A mask-rich synthetic run on a 64 x 96 grid: 60 time steps, 12 TCs and 8 ARs alive
    at every step (about 4 % of the pixels are TC or AR), loaded in memory."""
    from climviz.data import synthetic_run

    return synthetic_run(60, shape=(64, 96), seed=3, n_tc=12, n_ar=8).load()


@pytest.fixture(scope="session")
def small_run():
    """A tiny synthetic run (20 time steps, 32 x 64) for fast plumbing tests."""
    from climviz.data import synthetic_run

    return synthetic_run(20, shape=(32, 64), seed=1, n_tc=6, n_ar=4).load()


@pytest.fixture
def tiny_config():
    """Factory of small, fast, deterministic configs.

    The loss is pinned to the paper's (inverse-frequency weighted cross entropy, no Dice
    term), so the engine tests do not move when the library's defaults do.
    """
    from climviz.training.config import TrainConfig

    def make(**overrides):
        base = dict(model="deeplabv3plus", preset="tiny", epochs=2, batch_size=2, lr=3e-3,
                    precision="fp32", max_steps_per_epoch=3, deterministic=True, loader_workers=0,
                    warmup_epochs=0.5, schedule="cosine", seed=7, class_weights="inverse",
                    dice_weight=0.0)
        base.update(overrides)
        return TrainConfig(**base)

    return make
