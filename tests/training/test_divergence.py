"""A diverging run stops with a clear error and writes no checkpoint (issue 18 item 3).

With ``lr=1e12`` the first AdamW step moves every weight by about 1e12; the next
forward pass overflows float32 and every later loss is NaN.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from climviz.errors import ClimvizError
from climviz.training.loop import DivergenceError, run_training

REPO = Path(__file__).resolve().parents[2]


def test_nonfinite_losses_stop_training_before_any_checkpoint(small_run, tiny_config, tmp_path):
    cfg = tiny_config(lr=1e12, epochs=2, max_steps_per_epoch=None, max_nonfinite_steps=3,
                      warmup_epochs=0)
    steps = []
    with pytest.raises(DivergenceError) as info:
        run_training(cfg, small_run, checkpoint_dir=tmp_path, step_callback=steps.append)
    msg = str(info.value)
    assert isinstance(info.value, ClimvizError)
    # step 1 is finite and applied; steps 2 and 3 are NaN and skipped; step 4 is the third
    assert [s["applied"] for s in steps] == [True, False, False]
    assert all(s["loss"] != s["loss"] for s in steps[1:])            # NaN
    assert "epoch 1, step 4" in msg and "3 consecutive" in msg
    assert "lower the learning rate" in msg and "lr=1e+12" in msg
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.glob("epoch_*"))


def test_nonfinite_weights_are_caught_at_the_end_of_the_epoch(small_run, tiny_config, tmp_path):
    """With the step limit off, the NaN BatchNorm statistics of the skipped steps still
    stop the run before its checkpoint is written."""
    cfg = tiny_config(lr=1e12, epochs=1, max_steps_per_epoch=3, max_nonfinite_steps=None,
                      warmup_epochs=0)
    with pytest.raises(DivergenceError, match=r"epoch 1 .*non-finite values.*learning rate"):
        run_training(cfg, small_run, checkpoint_dir=tmp_path)
    assert not list(tmp_path.rglob("*.pt"))


def test_climviz_train_cli_exits_with_one_line(tmp_path, small_run):
    data = tmp_path / "run.nc"
    small_run.to_netcdf(data)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: deeplabv3plus\npreset: tiny\nepochs: 1\nbatch_size: 2\n"
                   "precision: fp32\nmax_steps_per_epoch: 6\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "climviz", "train", str(cfg), "--data", str(data),
                          "--no-ray", "--quiet", "--storage-path", str(tmp_path / "runs"),
                          "--name", "nan", "--set", "lr=1e12"],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode != 0
    # (library warnings on stderr are another matter: the error itself is one line)
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("climviz")]
    assert len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith("climviz train: error: training diverged at epoch 1, step 6")
    assert "Traceback" not in out.stderr and "learning rate" in lines[0]
    assert not list((tmp_path / "runs").rglob("*.pt"))
