"""Atomic writes: write to a temporary sibling, then rename over the target.

Temporaries are named ``.<name>.<8 hex>.tmp`` (and ``.<name>.<8 hex>.old`` for
a directory moved aside while it is replaced), in the directory of the target.
A process killed in the middle of a write leaves such a file behind; the next
:func:`atomic_path` for the same target (a rerun, a resume) removes them first
(:func:`remove_stale_temps`), so they never pile up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from climviz.errors import OutputExistsError

__all__ = ["atomic_path", "remove_stale_temps", "temp_name_pattern"]

log = logging.getLogger(__name__)


def temp_name_pattern(name: str) -> re.Pattern[str]:
    """Regular expression matching the temporaries :func:`atomic_path` makes for ``name``.

    ``.<name>.<8 hex digits>.tmp``, ``.<name>.<8 hex>.old`` and ``.<name>.<8 hex>.probe``
    (the write probe of :func:`climviz.utils.output.check_output_location`).
    """
    return re.compile(rf"^\.{re.escape(name)}\.[0-9a-f]{{8}}\.(tmp|old|probe)$")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove leftover temporaries of earlier (killed) atomic writes of ``path``.

    Only names of the form ``.<name>.<8 hex>.tmp|.old|.probe`` beside ``path`` are
    touched (see :func:`temp_name_pattern`); anything else is left alone. A write of
    the same target that is running at this very moment in another process would
    lose its temporary and fail loudly -- climviz never writes one target from two
    processes.

    Parameters
    ----------
    path : str or os.PathLike
        The final target (file or directory) whose temporaries are removed.

    Returns
    -------
    list of pathlib.Path
        The temporaries removed.
    """
    final = Path(path)
    parent = final.parent
    if not parent.is_dir():
        return []
    pattern = temp_name_pattern(final.name)
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for p in entries:
        if pattern.match(p.name):
            try:
                _remove(p, strict=True)
            except OSError as exc:  # not ours to fail on: the real write reports problems
                log.debug("cannot remove stale temporary %s: %s", p, exc)
                continue
            removed.append(p)
    if removed:
        log.info("removed %d stale temporary file(s) of an interrupted write: %s",
                 len(removed), ", ".join(str(p) for p in removed))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Works for files and for directories (e.g. Zarr stores). If the body raises,
    the temporary is removed and an existing ``path`` is left untouched. The
    temporary lives in the same directory, so the final ``os.replace`` is a
    rename on one file system (atomic for files; for directories the old one is
    moved aside first and removed only after the new one is in place).
    Temporaries left by earlier, killed writes of the same ``path`` are removed
    first (:func:`remove_stale_temps`).

    Parameters
    ----------
    path
        Final destination.
    overwrite
        If False and ``path`` exists, raise :class:`~climviz.errors.OutputExistsError` (a
        ``FileExistsError``) before writing.
    """
    final = Path(path)
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} exists; pass overwrite=True to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if tmp.is_dir() and final.exists():
            old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def _remove(p: Path, strict: bool = False) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=not strict)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
