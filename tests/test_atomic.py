"""Issue 18.8: a write killed half-way leaves a temporary; the next write of the same target removes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from climviz.errors import OutputError, OutputExistsError
from climviz.utils.atomic import atomic_path, remove_stale_temps
from climviz.utils.output import check_output_location, translate_write_errors

KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from climviz.utils.atomic import atomic_path

    with atomic_path(sys.argv[1]) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"\\0" * 3_000_000)          # a few MB written ...
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # ... and the process is killed
""")


def test_killed_write_leaves_a_temporary_that_the_rerun_removes(tmp_path):
    target = tmp_path / "pred.nc"
    target.write_bytes(b"old result")
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], check=False)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and left[0].name.startswith(".pred.nc.") and left[0].name.endswith(".tmp")
    assert left[0].stat().st_size == 3_000_000 and target.read_bytes() == b"old result"
    (tmp_path / "other.nc").write_bytes(b"not ours")
    (tmp_path / ".pred.nc.backup").write_bytes(b"not our pattern")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new result")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".pred.nc.backup", "other.nc", "pred.nc"]
    assert target.read_bytes() == b"new result"


def test_remove_stale_temps_only_touches_its_own_pattern(tmp_path):
    target = tmp_path / "masks.zarr"
    ours = [tmp_path / ".masks.zarr.0123abcd.tmp", tmp_path / ".masks.zarr.89abcdef.old",
            tmp_path / ".masks.zarr.00000000.probe"]
    ours[0].mkdir()
    (ours[0] / "chunk").write_bytes(b"x")
    for p in ours[1:]:
        p.write_bytes(b"x")
    others = [tmp_path / ".masks.zarr.0123abcg.tmp", tmp_path / ".masks.zarr.0123abcd.tmp.keep",
              tmp_path / ".other.zarr.0123abcd.tmp", tmp_path / "masks.zarr.0123abcd.tmp"]
    for p in others:
        p.write_bytes(b"keep")
    assert sorted(remove_stale_temps(target)) == sorted(ours)
    assert sorted(tmp_path.iterdir()) == sorted(others)


def test_check_output_location(tmp_path):
    existing = tmp_path / "out.nc"
    existing.write_bytes(b"x")
    with pytest.raises(OutputExistsError, match=rf"--out {existing}: exists"):
        check_output_location(existing, what="--out")
    assert check_output_location(existing, overwrite=True) == existing
    blocker = tmp_path / "afile"
    blocker.write_text("file")
    with pytest.raises(OutputError, match=rf"{blocker}/x.nc: cannot write: cannot create directory "
                                          rf"{blocker}: .*\[(ENOTDIR|EEXIST)\]"):
        check_output_location(blocker / "x.nc")
    with pytest.raises(OutputError, match="disk nearly full"):
        check_output_location(tmp_path / "new.nc", min_free_bytes=1 << 62)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "out.nc"]   # no probe left


def test_translate_write_errors_passes_bugs_through(tmp_path):
    import errno

    with pytest.raises(OutputError, match=rf"output {tmp_path}/x: cannot write: read-only file system"):
        with translate_write_errors(tmp_path / "x"):
            raise OSError(errno.EROFS, "Read-only file system")
    with pytest.raises(KeyError):
        with translate_write_errors(tmp_path / "x"):
            raise KeyError("a bug stays a bug")
    with pytest.raises(RuntimeError, match="unrelated"):
        with translate_write_errors(tmp_path / "x"):
            raise RuntimeError("unrelated")
