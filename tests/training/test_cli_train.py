"""``climviz train CONFIG.yaml``: arguments, overrides, exit codes, the result line.

The Ray path of the command runs as the entry point of the Ray Job test
(tests/training/test_jobs.py); here a real in-process run (``--no-ray``) checks the
result line and its JSON round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from climviz.errors import ConfigError
from climviz.training import cli

REPO = Path(__file__).resolve().parents[2]


def parse(argv):
    parser = argparse.ArgumentParser(prog="climviz")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_arguments_and_defaults():
    a = parse(["cfg.yaml"])
    assert a.func is cli.run and a.config == "cfg.yaml"
    assert (a.address, a.num_workers, a.use_gpu, a.resume, a.max_failures, a.no_ray) == \
        (None, None, False, False, 0, False)
    a = parse(["cfg.yaml", "--address", "ray://head:10001", "--num-workers", "4", "--use-gpu",
               "--resume", "--name", "r1", "--max-failures", "2", "--data", "a.nc", "b.nc",
               "--set", "epochs=3", "--set", "crop=[32, 64]"])
    assert a.address == "ray://head:10001" and a.num_workers == 4 and a.use_gpu
    assert a.resume is True and a.name == "r1" and a.max_failures == 2
    assert a.data == ["a.nc", "b.nc"]
    assert parse(["cfg.yaml", "--resume", "run/epoch_0002"]).resume == "run/epoch_0002"


def test_set_values_are_parsed_as_yaml():
    assert cli._overrides(["epochs=3", "lr=2e-3", "crop=[32, 64]", "data=a.nc"]) == \
        {"epochs": 3, "lr": 2e-3, "crop": [32, 64], "data": "a.nc"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cli._overrides(["epochs"])


def test_bad_config_exits_2_and_names_the_key(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: deeplabv3plus\nepochz: 3\n")
    assert cli.main([str(cfg), "--no-ray"]) == 2
    err = capsys.readouterr().err
    assert "epochz" in err and "epochs" in err                 # did you mean 'epochs'?
    assert cli.main([str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("model: deeplabv3plus\n")
    assert cli.main([str(good), "--set", "epochs=-1", "--no-ray"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_unreachable_cluster_exits_1(tmp_path, capsys, small_run):
    from climviz.training.cluster import free_port

    data = tmp_path / "run.nc"
    small_run.to_netcdf(data)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: deeplabv3plus\npreset: tiny\nepochs: 1\n")
    code = cli.main([str(cfg), "--data", str(data), "--address", f"127.0.0.1:{free_port()}",
                     "--connect-timeout", "5", "--name", "x", "--storage-path", str(tmp_path)])
    assert code == 1
    assert "Cannot reach the Ray cluster" in capsys.readouterr().err


def test_in_process_run_prints_a_result_line(tmp_path, small_run):
    data = tmp_path / "run.nc"
    small_run.to_netcdf(data)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: deeplabv3plus\npreset: tiny\nepochs: 1\nbatch_size: 2\n"
                   "precision: fp32\nmax_steps_per_epoch: 2\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "climviz.training.cli", str(cfg), "--data",
                          str(data), "--no-ray", "--storage-path", str(tmp_path / "runs"),
                          "--name", "cli", "--result-json", str(tmp_path / "res.json")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith(cli.RESULT_PREFIX)][-1]
    payload = json.loads(line[len(cli.RESULT_PREFIX):])
    assert payload == json.loads((tmp_path / "res.json").read_text())
    res = cli.result_from_json(payload)
    assert res.checkpoint == tmp_path / "runs" / "cli" / "epoch_0001" / "checkpoint.pt"
    assert res.checkpoint.is_file()
    assert res.metrics["epoch"].tolist() == [1] and res.config.max_steps_per_epoch == 2
    assert 0.0 <= res.metrics["miou"].iloc[0] <= 1.0


@pytest.mark.ray
def test_ray_run_prints_no_ray_notices(tmp_path, small_run):
    """`climviz train` on a local Ray (1 worker): the run's own lines and the result line,
    none of Ray's notices (its token-authentication warning, "Started a local Ray
    instance"), which `ray.init` prints at its default logging level."""
    pytest.importorskip("ray")
    data = tmp_path / "run.nc"
    small_run.to_netcdf(data)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: deeplabv3plus\npreset: tiny\nepochs: 1\nbatch_size: 2\n"
                   "precision: fp32\nmax_steps_per_epoch: 2\nloader_workers: 0\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", RAY_AUTH_MODE="token")
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-m", "climviz.training.cli", str(cfg), "--data",
                          str(data), "--num-workers", "1", "--storage-path",
                          str(tmp_path / "runs"), "--name", "cli-ray"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "checkpoint: " in out.stdout and cli.RESULT_PREFIX in out.stdout
    assert "Token authentication" not in text and "Started a local Ray" not in text, text[-3000:]
    assert " WARNING " not in text and " INFO " not in text, text[-3000:]
