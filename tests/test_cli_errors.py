"""Issue 18.11 and 18.6: every command reports a user's mistake as one line, and unwritable outputs clearly.

The real ``climviz`` console script is run in subprocesses on bad inputs for every
subcommand: exit code 1 (``train``: non-zero), one line ``climviz <cmd>: error: ...``
naming the bad path, no traceback; ``--debug`` adds the traceback. An exception
that is not a ``ClimvizError`` is a bug and keeps its traceback. Outputs on a
read-only or full file system (a real tmpfs) are an ``OutputError`` line naming
the path, reported before the work, and what was there before stays intact.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from climviz.cli import main
from tests.faults import fill, read_only, tiny_filesystem, tree

CLIMVIZ = str(Path(sys.executable).with_name("climviz"))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLIMVIZ, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


def _error_lines(stderr: str, cmd: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(f"climviz {cmd}: error: ")]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """(command, argv, text the error line must contain) for each subcommand, and the folder."""
    d = tmp_path_factory.mktemp("cli")
    (d / "afile").write_text("a file, not a directory")
    (d / "cfg.yaml").write_text("model: tiramisu\nepochs: -3\n")
    missing = str(d / "missing.nc")
    return d, [
        ("demo", ["demo", "--data", missing, "--no-ray", "--quick", "--out", str(d / "demo")], missing),
        ("report", ["report", missing, "--out", str(d / "report")], missing),
        ("train", ["train", str(d / "nope.yaml"), "--no-ray"], "nope.yaml"),
        ("train", ["train", str(d / "cfg.yaml"), "--data", missing, "--no-ray"], "epochs"),
        ("predict", ["predict", str(d / "missing.pt"), missing, "--out", str(d / "p.nc")], "missing.pt"),
        ("predict", ["predict", str(d / "missing.pt"), missing, "--out", str(d / "afile" / "p.nc")],
         str(d / "afile")),
        ("label", [ "label", missing, "--out", str(d / "l.nc")], missing),
        ("label", ["label", missing, "--out", str(d / "l.txt")], "l.txt"),
        ("events", ["events", missing, "--out", str(d / "ev")], missing),
        ("events", ["events", missing, "--out", str(d / "afile")], str(d / "afile")),
        ("fetch", ["fetch", "../x.nc", "--allow-unverified", "--cache-dir", str(d / "c")], "'../x.nc'"),
    ]


def test_every_command_prints_one_error_line_without_traceback(bad_inputs):
    d, cases = bad_inputs
    procs = [subprocess.Popen([CLIMVIZ, *argv], cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _, argv, _ in cases]
    problems = []
    for (cmd, argv, needle), proc in zip(cases, procs):
        out, err = proc.communicate(timeout=600)
        lines = _error_lines(err, cmd)
        ok = (proc.returncode != 0 and (proc.returncode == 1 or cmd == "train")
              and "Traceback" not in err and len(lines) == 1 and needle in lines[0])
        if not ok:
            problems.append(f"{argv}: rc={proc.returncode}\n{err[-2000:]}")
    assert not problems, "\n\n".join(problems)
    assert not (d / "p.nc").exists() and not (d / "l.nc").exists()
    assert (d / "afile").read_text() == "a file, not a directory"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(bad_inputs, where):
    d, _ = bad_inputs
    args = ["predict", str(d / "missing.pt"), str(d / "x.nc"), "--out", str(d / "p.nc")]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    proc = _run(args, d)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "climviz.errors.CheckpointError" in proc.stderr
    assert len(_error_lines(proc.stderr, "predict")) == 1


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch, capsys):
    import climviz.data.cli

    def broken(args):
        return 1 / 0

    monkeypatch.setattr(climviz.data.cli, "run", broken)
    with pytest.raises(ZeroDivisionError):
        main(["fetch", "x.nc"])
    assert "error:" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- outputs (issue 18.6)
@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    from climviz.data.io import write_run
    from climviz.data.synthetic import synthetic_run

    d = tmp_path_factory.mktemp("small")
    ds = synthetic_run(4, shape=(32, 48), seed=3)
    write_run(ds, d / "run.nc")
    xr.Dataset({"mask": ds["LABELS"].astype(np.uint8)}).to_netcdf(d / "masks.nc")
    return d / "run.nc", d / "masks.nc"


def test_label_to_a_read_only_filesystem(small_files, tmp_path, capsys):
    run, _ = small_files
    with tiny_filesystem(tmp_path / "fs", "1m") as fs:
        (fs / "masks.nc").write_bytes(b"previous")
        with read_only(fs):
            assert main(["label", str(run), "--out", str(fs / "masks.nc"), "--overwrite"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"climviz label: error: --out {fs}/masks.nc: cannot write")
        assert "read-only file system [EROFS]" in err
        assert tree(fs) == {"masks.nc": b"previous"}


def test_label_to_a_full_disk_is_refused_before_the_detectors(small_files, tmp_path, capsys,
                                                               monkeypatch):
    import climviz.labels.run

    run, _ = small_files
    called = []
    monkeypatch.setattr(climviz.labels.run, "label_run", lambda *a, **k: called.append(1))
    with tiny_filesystem(tmp_path / "fs", "1m") as fs:
        fill(fs, leave=64 * 1024)
        before = tree(fs)
        assert main(["label", str(run), "--out", str(fs / "m.nc")]) == 1
        err = capsys.readouterr().err
        assert f"climviz label: error: --out {fs}/m.nc: only" in err and "disk nearly full" in err
        assert tree(fs) == before and called == []


def test_events_refuses_to_overwrite_before_processing(small_files, tmp_path, capsys):
    _, masks = small_files
    out = tmp_path / "ev"
    out.mkdir()
    (out / "frequency.nc").write_bytes(b"previous maps")
    assert main(["events", str(masks), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "time steps" not in captured.out                      # not a single step was processed
    assert captured.err.strip() == (f"climviz events: error: {out}/frequency.nc: exists; "
                                    "pass --overwrite to replace it")
    assert tree(out) == {"frequency.nc": b"previous maps"}


def test_events_to_a_read_only_directory(small_files, tmp_path, capsys):
    _, masks = small_files
    with tiny_filesystem(tmp_path / "fs", "1m") as fs:
        (fs / "ev").mkdir()
        with read_only(fs):
            assert main(["events", str(masks), "--out", str(fs / "ev")]) == 1
        captured = capsys.readouterr()
        assert "time steps" not in captured.out
        assert captured.err.startswith(f"climviz events: error: --out {fs}/ev: cannot write")
        assert "read-only file system [EROFS]" in captured.err
        assert tree(fs) == {}


def test_events_write_failure_keeps_the_previous_output(small_files, tmp_path, capsys, monkeypatch):
    _, masks = small_files
    out = tmp_path / "ev"
    out.mkdir()
    (out / "frequency.nc").write_bytes(b"previous maps")

    def enospc(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", enospc)
    assert main(["events", str(masks), "--out", str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"climviz events: error: --out {out}/frequency.nc: cannot write: no space left "
                   "on the device (disk full) [ENOSPC]")
    assert (out / "frequency.nc").read_bytes() == b"previous maps"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
