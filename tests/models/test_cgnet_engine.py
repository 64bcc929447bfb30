"""CGNet goes through the same training, checkpoint and prediction paths as the other networks."""

from __future__ import annotations

import numpy as np

from climviz.data import synthetic_run
from climviz.inference import predict
from climviz.training.checkpoint import load_checkpoint
from climviz.training.config import TrainConfig
from climviz.training.loop import run_training


def test_cgnet_trains_with_the_jaccard_recipe_checkpoints_and_predicts(tmp_path):
    ds = synthetic_run(8, shape=(64, 96), seed=0, n_tc=4, n_ar=3).load()
    cfg = TrainConfig(model="cgnet", preset="tiny", epochs=1, batch_size=2, precision="fp32", lr=1e-3,
                      loss="jaccard", max_steps_per_epoch=2)
    rows = run_training(cfg, ds, checkpoint_dir=tmp_path / "ck", device="cpu")
    assert np.isfinite(rows[-1]["train_loss"])
    ckpt = sorted((tmp_path / "ck").glob("epoch_*/checkpoint.pt"))[-1]
    assert (load_checkpoint(ckpt)["model"], load_checkpoint(ckpt)["preset"]) == ("cgnet", "tiny")
    out = predict(ckpt, ds.isel(time=slice(0, 2)), progress=False)
    mask = next(iter(out.data_vars.values())).values
    assert mask.shape[-2:] == (64, 96)
    assert set(np.unique(mask)) <= {0, 1, 2}
