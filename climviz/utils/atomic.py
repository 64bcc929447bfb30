"""Atomic writes: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from climviz.errors import OutputExistsError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Works for files and for directories (e.g. Zarr stores). If the body raises,
    the temporary is removed and an existing ``path`` is left untouched. The
    temporary lives in the same directory, so the final ``os.replace`` is a
    rename on one file system (atomic for files; for directories the old one is
    moved aside first and removed only after the new one is in place).

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
        if tmp.exists():
            _remove(tmp)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
