"""Real write faults for tests: a tiny (full) file system and a read-only one.

Both are tmpfs mounts (``mount -t tmpfs``), so they need root (or CAP_SYS_ADMIN).
Where mounting is not allowed, :func:`can_mount` is False and the tests that need
a real file system use ``pytest.skip`` with that reason (they are also covered
by tests that make ``os.replace``/writes fail through monkeypatching).
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


@functools.lru_cache(maxsize=1)
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (tried once)."""
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                            capture_output=True, check=False).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True, check=False)
        return ok


def need_mount() -> None:
    """Skip (visibly) when no tmpfs can be mounted here."""
    if not can_mount():
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched tests cover this")


@contextlib.contextmanager
def tiny_filesystem(where: Path, size: str = "256k") -> Iterator[Path]:
    """Mount an empty tmpfs of ``size`` at ``where`` (created) for the duration."""
    need_mount()
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def read_only(where: Path) -> Iterator[Path]:
    """Make the tmpfs mounted at ``where`` read-only (EROFS, even for root)."""
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(where)], check=False)


def fill(where: Path, leave: int = 0) -> None:
    """Fill the file system at ``where`` until at most ``leave`` bytes are free."""
    import shutil

    block = b"\0" * 4096
    with open(where / "filler.bin", "wb") as fh:
        while shutil.disk_usage(where).free > leave:
            try:
                fh.write(block)
                fh.flush()
            except OSError:
                break


def tree(where: Path) -> dict[str, bytes]:
    """Every file under ``where`` (relative name -> content), to compare before/after."""
    return {p.relative_to(where).as_posix(): p.read_bytes()
            for p in sorted(where.rglob("*")) if p.is_file()}
