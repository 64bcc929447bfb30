"""Output locations: check them before long work, and turn write failures into ``OutputError``.

Every command that writes (``predict``, ``train``, ``label``, ``events``,
``report``/``demo``) should

1. call :func:`check_output_location` for each output *before* the long work, so
   an existing output (without ``overwrite``), a read-only or missing-permission
   directory, a path whose parent is a file, or a nearly full disk is reported at
   once, and
2. wrap the actual writing in :func:`translate_write_errors`, so a disk that fills
   up (``ENOSPC``), a read-only file system (``EROFS``), a permission error or a
   library's own wrapper around them (torch's ``inline_container`` ``RuntimeError``,
   netCDF/HDF5 errors) becomes an :class:`~climviz.errors.OutputError` that names
   the path and the cause, instead of a traceback.

Combined with :func:`climviz.utils.atomic.atomic_path`, a failed write leaves
whatever was at the path before intact.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from climviz.errors import ClimvizError, OutputError, OutputExistsError

__all__ = ["check_output_location", "translate_write_errors", "describe_os_error"]

#: errno values that mean "this location cannot take the output" (not a bug of ours)
_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a parent of the path is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "file name too long",
    errno.EFBIG: "file too large for the file system",
    errno.EIO: "input/output error on the device",
    errno.EEXIST: "exists",
    errno.ENOENT: "no such file or directory",
}

#: substrings of library messages that wrap an OS write failure without an errno
_WRAPPED_MESSAGES = (
    ("inline_container", "the checkpoint writer (torch) could not write the file; "
                         "usually the disk is full"),
    ("PytorchStreamWriter", "the checkpoint writer (torch) could not write the file; "
                            "usually the disk is full"),
    ("No space left", "no space left on the device (disk full)"),
    ("Read-only file system", "read-only file system"),
    ("Permission denied", "permission denied"),
    ("Disk quota exceeded", "disk quota exceeded"),
    ("HDF error", "the netCDF/HDF5 library could not write the file (disk full or unwritable?)"),
)


def _root_os_error(exc: BaseException) -> BaseException:
    """The innermost ``OSError`` with an errno in the cause/context chain (else ``exc``)."""
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and isinstance(cur.errno, int):
            return cur
        cur = cur.__cause__ or cur.__context__
    return exc


def describe_os_error(exc: BaseException) -> str:
    """A short human-readable cause for an ``OSError`` (or a library error wrapping one).

    The ``__cause__``/``__context__`` chain is searched for the operating system's
    error number (torch, for one, wraps ``ENOSPC`` into a ``RuntimeError``).
    """
    exc = _root_os_error(exc)
    err = getattr(exc, "errno", None)
    if isinstance(err, int) and err in _WRITE_ERRNOS:
        name = errno.errorcode.get(err, str(err))
        return f"{_WRITE_ERRNOS[err]} [{name}]"
    text = str(exc)
    for needle, cause in _WRAPPED_MESSAGES:
        if needle in text:
            return cause
    strerror = getattr(exc, "strerror", None)
    return f"{type(exc).__name__}: {strerror or text}"


def _is_write_failure(exc: BaseException) -> bool:
    if isinstance(exc, ClimvizError):
        return False
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, RuntimeError):  # torch.save, netCDF4, zarr wrappers
        if isinstance(_root_os_error(exc), OSError):
            return True
        text = str(exc)
        return any(needle in text for needle, _ in _WRAPPED_MESSAGES)
    return False


def check_output_location(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    directory: bool = False,
    min_free_bytes: int = 1 << 20,
    what: str = "output",
) -> Path:
    """Check, before any long work, that ``path`` can be written; raise an ``OutputError`` if not.

    The parent directory (or ``path`` itself with ``directory=True``) is created
    if needed, a small probe file is written and removed there, and the free space
    on its file system is compared with ``min_free_bytes``. Nothing that exists is
    changed.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (or, with ``directory=True``, the output directory).
    overwrite : bool
        Whether an existing output may be replaced later. If False and ``path``
        is a file that exists (for ``directory=True``: never; check the files in
        it separately), :class:`~climviz.errors.OutputExistsError` is raised.
    directory : bool
        ``path`` is a directory that will hold the outputs.
    min_free_bytes : int
        Fewer free bytes than this on the target file system is an error (default
        1 MiB; pass the expected output size when known). 0 disables the check.
    what : str
        How the output is called in messages (e.g. ``"--out"``).

    Returns
    -------
    pathlib.Path
        ``path`` as a ``Path``.

    Raises
    ------
    OutputExistsError
        The output exists and ``overwrite`` is False.
    OutputError
        The location cannot be created or written, or has too little free space;
        the message names the path and the cause.
    """
    target = Path(path).expanduser()
    where = target if directory else target.parent
    if not directory and target.exists() and not overwrite:
        raise OutputExistsError(f"{what} {target}: exists; pass --overwrite (overwrite=True) "
                                "to replace it")
    if not directory and target.is_dir() and not str(target).endswith(".zarr"):
        raise OutputError(f"{what} {target}: is a directory, expected a file path")
    if directory and target.exists() and not target.is_dir():
        raise OutputError(f"{what} {target}: exists and is not a directory")
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {target}: cannot write: cannot create directory {where}: "
                          f"{describe_os_error(exc)}") from exc
    probe = where / f".{target.name if not directory else '_climviz'}.{uuid.uuid4().hex[:8]}.probe"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"climviz write probe\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OutputError(f"{what} {target}: cannot write in directory {where}: "
                          f"{describe_os_error(exc)}") from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    if min_free_bytes > 0:
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            free = None
        if free is not None and free < min_free_bytes:
            raise OutputError(f"{what} {target}: only {free / 2**20:.1f} MiB free on the file "
                              f"system of {where}, expected at least "
                              f"{min_free_bytes / 2**20:.1f} MiB (disk nearly full)")
    return target


@contextlib.contextmanager
def translate_write_errors(path: str | os.PathLike, *, what: str = "output") -> Iterator[None]:
    r"""Turn an operating-system write failure inside the block into an ``OutputError``.

    ``OSError`` (disk full, read-only file system, permission denied, ...) and
    library ``RuntimeError``\ s that wrap one (torch's ``inline_container`` /
    ``PytorchStreamWriter``, HDF5's ``HDF error``) raised in the ``with`` block are
    re-raised as :class:`~climviz.errors.OutputError` naming ``path`` and the cause
    (the original is chained as ``__cause__``). climviz's own errors and any other
    exception pass through unchanged (those are bugs and keep their traceback).

    Parameters
    ----------
    path : str or os.PathLike
        The output being written (named in the message).
    what : str
        How the output is called in messages.

    Examples
    --------
    >>> with translate_write_errors(out), atomic_path(out) as tmp:   # doctest: +SKIP
    ...     ds.to_netcdf(tmp)
    """
    try:
        yield
    except BaseException as exc:
        if not _is_write_failure(exc):
            raise
        raise OutputError(f"{what} {Path(path)}: cannot write: "
                          f"{describe_os_error(exc)}") from exc
