"""Fixtures for the inference tests: a small run and a briefly trained tiny checkpoint.

Everything is built once per session and kept tiny (a 32 x 64 grid, 12 time steps)
so that the whole inference suite runs in well under a minute of model time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from climviz.data.schema import CHANNELS, LABEL_VAR
from climviz.data.synthetic import synthetic_run

GRID = (32, 64)
N_TIMES = 12


def normalizer_dict(ds) -> dict:
    """Per-channel statistics of ``ds`` as a stored ``Normalizer.to_dict()``."""
    from climviz.data.normalize import Normalizer

    return Normalizer.fit(ds, channels=CHANNELS).to_dict()


def train_tiny(ds, model: str = "deeplabv3plus", steps: int = 6, seed: int = 0):
    """Train a tiny network a few Adam steps on ``ds`` (labels); return (net, normalizer dict)."""
    from climviz import models

    torch.manual_seed(seed)
    net = models.build(model, preset="tiny", in_channels=len(CHANNELS), num_classes=3)
    norm = normalizer_dict(ds)
    mean = np.asarray(norm["mean"], np.float32)[:, None, None]
    std = np.asarray(norm["std"], np.float32)[:, None, None]
    x = np.stack([ds[c].values for c in CHANNELS], axis=1).astype(np.float32)
    x = torch.from_numpy((x - mean) / std)
    y = torch.from_numpy(ds[LABEL_VAR].values.astype(np.int64))
    weight = torch.tensor([1.0, 20.0, 20.0])  # the classes are rare: weigh them up
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    net.train()
    for step in range(steps):
        idx = torch.arange(step * 4, step * 4 + 4) % x.shape[0]
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), norm


def save_tiny(path: Path, net, norm: dict, model: str = "deeplabv3plus", grid=GRID) -> Path:
    """Write a full checkpoint payload for ``net`` with ``save_checkpoint``."""
    from climviz.training.checkpoint import save_checkpoint

    kw = net.build_kwargs()
    return save_checkpoint(path, {
        "model": model,
        "preset": "tiny",
        "model_kwargs": {"in_channels": kw["in_channels"], "num_classes": kw["num_classes"],
                         "overrides": kw["overrides"]},
        "channels": list(CHANNELS),
        "normalizer": norm,
        "config": {"model": model, "preset": "tiny"},
        "grid": list(grid),
        "epoch": 1,
        "global_step": 6,
        "metrics": [],
        "model_state": net.state_dict(),
        "optimizer_state": None,
        "scheduler_state": None,
        "scaler_state": None,
    })


@pytest.fixture(scope="session")
def run():
    """A 12-step synthetic run on a 32 x 64 grid with a few storms and rivers."""
    return synthetic_run(N_TIMES, shape=GRID, seed=5, n_tc=3, n_ar=2)


@pytest.fixture(scope="session")
def checkpoint(run, tmp_path_factory) -> Path:
    """A tiny DeepLabv3+ trained six steps on ``run``; the ``checkpoint.pt`` path."""
    net, norm = train_tiny(run)
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "tiny", net, norm)


@pytest.fixture(scope="session")
def run_files(run, tmp_path_factory) -> list[Path]:
    """``run`` written as two netCDF files (7 + 5 time steps)."""
    d = tmp_path_factory.mktemp("run")
    paths = [d / "run_part1.nc", d / "run_part2.nc"]
    run.isel(time=slice(0, 7)).to_netcdf(paths[0])
    run.isel(time=slice(7, None)).to_netcdf(paths[1])
    return paths


def reference_masks(checkpoint: Path, ds) -> tuple[np.ndarray, np.ndarray]:
    """Independent forward pass: classes and top-2 logit gap for every time step of ``ds``.

    Reads the checkpoint with plain ``torch.load``, rebuilds the network with
    ``climviz.models.build``, normalizes with numpy from the stored statistics and
    runs all time steps in one batch.
    """
    from climviz import models

    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    kw = payload["model_kwargs"]
    net = models.build(payload["model"], preset=payload["preset"], in_channels=kw["in_channels"],
                       num_classes=kw["num_classes"], **kw["overrides"])
    net.load_state_dict(payload["model_state"])
    net.eval()
    norm = payload["normalizer"]
    order = [list(norm["channels"]).index(c) for c in payload["channels"]]
    mean = np.asarray(norm["mean"], np.float64)[order][:, None, None]
    std = np.asarray(norm["std"], np.float64)[order][:, None, None]
    x = np.stack([(ds[c].values - mean[i]) / std[i] for i, c in enumerate(payload["channels"])],
                 axis=1).astype(np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x))
    top2 = torch.topk(logits, 2, dim=1).values
    return logits.argmax(1).numpy().astype(np.uint8), (top2[:, 0] - top2[:, 1]).numpy()


def assert_masks_match(mask: np.ndarray, ref: np.ndarray, gap: np.ndarray, tol: float = 1e-3) -> None:
    """Equal wherever the reference's top-2 logits differ by more than ``tol`` (near ties
    may flip with a different batch composition); near ties must be rare."""
    assert mask.shape == ref.shape
    clear = gap > tol
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(mask[clear], ref[clear])
