"""Fetch public ClimateNet files into a local cache, verified by sha256 (pooch).

ClimateNet (Prabhat et al. 2021, GMD 14, 107) publishes its expert-labelled CAM5
runs as one netCDF file per time step under :data:`CLIMATENET_BASE_URL`
(``train/`` and ``test/`` folders, names like ``data-YYYY-MM-DD-01-1_N.nc``, about
60 MB each).

Hashes
------
A download is only accepted when its sha256 matches a known hash: from the
registry (``name -> sha256``, pooch's registry-file format ``name sha256`` one per
line, see :func:`load_registry`) or from the ``sha256`` argument. climviz ships
**no verified hashes** for the public ClimateNet files (they could not be checked
when this was written), so :data:`CLIMATENET_REGISTRY` is empty: pin a file's hash
in your own registry file, or pass ``allow_unverified=True`` (``climviz fetch
--allow-unverified``) once; the sha256 of what was downloaded is then reported so
you can pin it.

Safety
------
pooch streams each download into a temporary file inside the cache directory,
checks the hash, and only then renames it to its final name; on a hash mismatch,
an HTTP error or a truncated transfer (fewer bytes than ``Content-Length``) the
temporary is deleted and :class:`~climviz.errors.FetchError` is raised, so the
cache never holds a half-written or unverified file under a real name.

Names must be plain relative paths (``train/data-....nc``): an absolute path, a
``..`` or ``.`` component, an empty component, a backslash, a control character,
or a name that resolves outside the cache directory (through a symbolic link) is
a :class:`~climviz.errors.FetchError` before anything is requested or written
(:func:`check_name`).

A download is bounded in time: every wait for the server is limited to
``timeout`` seconds, the average rate must reach ``min_rate`` bytes/s once
``timeout`` seconds have passed, and the whole transfer must end within
``max_time`` seconds (if given). A server that trickles (announces 1 MB and sends
a byte a second) is therefore a ``FetchError`` after about ``timeout`` seconds,
and the partial temporary is removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Mapping, Sequence

from climviz.errors import FetchError

__all__ = [
    "CLIMATENET_BASE_URL",
    "CLIMATENET_REGISTRY",
    "default_cache_dir",
    "load_registry",
    "make_fetcher",
    "fetch_file",
    "fetch_files",
    "file_sha256",
    "check_name",
    "DEFAULT_MIN_RATE",
]

#: Slowest accepted average download rate (bytes/s) once ``timeout`` seconds have passed.
DEFAULT_MIN_RATE = 10_000.0

log = logging.getLogger(__name__)

#: Root of the public ClimateNet data (``train/`` and ``test/`` hold the netCDF files).
CLIMATENET_BASE_URL = "https://portal.nersc.gov/project/ClimateNet/climatenet_new/"

#: Verified ``name -> sha256`` entries for files under :data:`CLIMATENET_BASE_URL`.
#: Empty on purpose: no hash of the public files could be verified (see the module notes).
CLIMATENET_REGISTRY: dict[str, str] = {}


def default_cache_dir() -> Path:
    """``$CLIMVIZ_DATA_DIR`` if set, else the user cache (``~/.cache/climviz`` on Linux)."""
    env = os.environ.get("CLIMVIZ_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("climviz"))


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def load_registry(path: str | os.PathLike) -> dict[str, str]:
    """Read a registry file: ``name sha256`` per line (``#`` comments and blank lines ignored).

    Raises
    ------
    FetchError
        File missing, a line that is not ``name`` followed by a 64-hex-digit sha256, or a
        name that is not a plain relative path (see :func:`check_name`).
    """
    path = Path(path)
    if not path.is_file():
        raise FetchError(f"{path}: registry file not found")
    out: dict[str, str] = {}
    for no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        digest = parts[1].lower().removeprefix("sha256:") if len(parts) == 2 else ""
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise FetchError(f"{path}:{no}: expected 'name sha256' (64 hex digits), found {line!r}")
        try:
            check_name(parts[0])
        except FetchError as exc:
            raise FetchError(f"{path}:{no}: {exc}") from None
        out[parts[0]] = digest
    return out


def _norm_hash(h: str | None) -> str | None:
    if h is None:
        return None
    h = h.strip().lower().removeprefix("sha256:")
    if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise FetchError(f"sha256: expected 64 hex digits, found {h!r}")
    return h


def check_name(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    r"""Check that a registry name is a plain relative path that stays inside the cache.

    Parameters
    ----------
    name : str
        File name relative to the base URL and the cache, e.g. ``"train/data-....nc"``.
    cache_dir : str or os.PathLike, optional
        The cache directory; when given, ``cache_dir / name`` must resolve (following
        symbolic links that exist) to a path inside it.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    FetchError
        Empty name, absolute path (``/x``, ``C:\x``, ``~/x``), a ``..``, ``.`` or empty
        component, a backslash or control character, or a path escaping the cache.
    """
    if not isinstance(name, str) or not name:
        raise FetchError(f"file name {name!r}: expected a non-empty relative path like "
                         "'train/data-2000-01-01-00-1_0.nc'")
    problem = None
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "contains a control character"
    elif "\\" in name:
        problem = "contains a backslash"
    elif (PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute()
          or PureWindowsPath(name).drive or name.startswith("~")):
        problem = "is an absolute path"
    else:
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            problem = "has an empty, '.' or '..' component"
    if problem is None and cache_dir is not None:
        root = Path(cache_dir).expanduser().resolve()
        target = (root / name).resolve()
        if target != root and root not in target.parents:
            problem = f"resolves to {target}, outside the cache directory {root}"
    if problem is not None:
        raise FetchError(f"file name {name!r} {problem}: names must be plain relative paths "
                         "inside the cache directory; nothing was downloaded or written")
    return name


class _BoundedDownloader:
    """pooch downloader with a per-wait timeout, a minimum average rate and an overall limit."""

    def __init__(self, timeout: float, min_rate: float, max_time: float | None,
                 progress: bool = False) -> None:
        self.timeout = float(timeout)
        self.min_rate = float(min_rate)
        self.max_time = None if max_time is None else float(max_time)
        self.progress = progress

    def __call__(self, url: str, output_file: Any, pooch_obj: Any = None,
                 check_only: bool = False) -> Any:
        import requests
        import urllib3

        if check_only:
            r = requests.head(url, timeout=self.timeout, allow_redirects=True)
            return r.status_code == 200
        start = time.monotonic()
        with requests.get(url, stream=True, timeout=(self.timeout, self.timeout)) as r:
            r.raise_for_status()
            announced = r.headers.get("Content-Length")
            total = int(announced) if announced and announced.isdigit() else None
            encoded = r.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
            raw = r.raw
            bar = None
            if self.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1])
            ispath = not hasattr(output_file, "write")
            fh = open(output_file, "w+b") if ispath else output_file
            received = 0
            try:
                while True:
                    try:
                        chunk = raw.read1(1 << 16, decode_content=True)
                    except (urllib3.exceptions.HTTPError, OSError) as exc:
                        raise FetchError(
                            f"{url}: download failed or was truncated after {raw.tell()} bytes "
                            f"({type(exc).__name__}: {exc}); nothing was cached") from exc
                    if not chunk:
                        break
                    fh.write(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    self._check_time(url, start, raw.tell(), total)
            finally:
                if ispath:
                    fh.close()
                if bar is not None:
                    bar.close()
            if total is not None and not encoded and raw.tell() < total:
                raise FetchError(f"{url}: download failed or was truncated: the server announced {total} bytes "
                                 f"and sent {raw.tell()}; nothing was cached")
        return None

    def _check_time(self, url: str, start: float, received: int, total: int | None) -> None:
        elapsed = time.monotonic() - start
        of = f" of {total}" if total is not None else ""
        if self.max_time is not None and elapsed > self.max_time and (total is None or received < total):
            raise FetchError(f"{url}: download took longer than the overall limit of "
                             f"{self.max_time:g} s ({received}{of} bytes received); "
                             "the partial file was removed, nothing was cached")
        if elapsed > self.timeout and received / elapsed < self.min_rate and (
                total is None or received < total):
            raise FetchError(f"{url}: download too slow: {received}{of} bytes in {elapsed:.1f} s "
                             f"({received / elapsed:.0f} B/s, expected at least "
                             f"{self.min_rate:.0f} B/s after the first {self.timeout:g} s); "
                             "the partial file was removed, nothing was cached")


def make_fetcher(
    base_url: str = CLIMATENET_BASE_URL,
    registry: Mapping[str, str | None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    retries: int = 0,
):
    """A :class:`pooch.Pooch` for ``base_url`` with hashes from ``registry``.

    Parameters
    ----------
    base_url
        URL of the folder holding the files (a trailing ``/`` is added).
    registry
        ``name -> sha256`` (``None`` = unknown hash: not verified); default
        :data:`CLIMATENET_REGISTRY`.
    cache_dir
        Where files are kept (default :func:`default_cache_dir`).
    retries
        Extra download attempts after a network error or hash mismatch.
    """
    import pooch

    reg = dict(CLIMATENET_REGISTRY if registry is None else registry)
    return pooch.create(
        path=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        registry={k: (None if v is None else f"sha256:{_norm_hash(v)}") for k, v in reg.items()},
        retry_if_failed=retries,
    )


def fetch_file(
    name: str,
    *,
    base_url: str = CLIMATENET_BASE_URL,
    sha256: str | None = None,
    registry: Mapping[str, str | None] | str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_unverified: bool = False,
    progress: bool = False,
    timeout: float = 60.0,
    retries: int = 0,
    min_rate: float = DEFAULT_MIN_RATE,
    max_time: float | None = None,
) -> Path:
    """Download ``base_url + name`` into the cache (or reuse a cached, verified copy).

    Parameters
    ----------
    name
        File name relative to ``base_url``, e.g. ``"train/data-....nc"``.
    base_url
        Folder URL (default :data:`CLIMATENET_BASE_URL`).
    sha256
        Known hash of the file; overrides the registry's.
    registry
        ``name -> sha256`` mapping or a registry file (see :func:`load_registry`).
    cache_dir
        Cache directory (default :func:`default_cache_dir`); subfolders of ``name`` are kept.
    allow_unverified
        Accept a file without a known hash (its sha256 is logged so that it can be pinned).
    progress
        Show a tqdm progress bar.
    timeout
        Seconds to wait for the server at each step (connect, each read); also the
        grace period before ``min_rate`` applies.
    retries
        Extra attempts after a network error or hash mismatch.
    min_rate
        Slowest accepted average rate in bytes/s once ``timeout`` seconds have passed
        (default :data:`DEFAULT_MIN_RATE`); 0 disables the check.
    max_time
        Seconds the whole download may take (``None``: no overall limit beyond ``min_rate``).

    Returns
    -------
    pathlib.Path
        The cached file.

    Raises
    ------
    FetchError
        Unsafe name (absolute, ``..``, outside the cache: see :func:`check_name`), no known
        hash (and not ``allow_unverified``), HTTP error, connection failure, a transfer
        slower than ``min_rate`` or longer than ``max_time``, truncated transfer or hash
        mismatch; nothing is left in the cache under ``name``.
    """
    import requests

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    check_name(name, cache)
    if timeout <= 0 or min_rate < 0 or (max_time is not None and max_time <= 0):
        raise FetchError(f"timeout={timeout!r}, min_rate={min_rate!r}, max_time={max_time!r}: "
                         "expected a positive timeout, a rate >= 0 and a positive max_time")
    if registry is not None and not isinstance(registry, Mapping):
        registry = load_registry(registry)
    reg = dict(CLIMATENET_REGISTRY if registry is None else registry)
    known = _norm_hash(sha256) if sha256 is not None else _norm_hash(reg.get(name))
    if known is None and not allow_unverified:
        raise FetchError(
            f"{name}: no known sha256 (expected one in the registry or the sha256 argument); "
            "pass allow_unverified=True (climviz fetch --allow-unverified) to download it unverified"
        )
    reg[name] = known
    fetcher = make_fetcher(base_url, {name: known}, cache, retries=retries)
    url = fetcher.get_url(name)
    downloader = _BoundedDownloader(timeout, min_rate, max_time, progress=progress)
    try:
        path = Path(fetcher.fetch(name, downloader=downloader))
    except FetchError:
        raise
    except ValueError as exc:  # pooch: hash mismatch
        raise FetchError(
            f"{url}: sha256 mismatch, the download was discarded (expected {known}): {exc}"
        ) from exc
    except requests.exceptions.HTTPError as exc:
        raise FetchError(f"{url}: HTTP error, nothing was cached: {exc}") from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise FetchError(
            f"{url}: download failed or was truncated, nothing was cached: {type(exc).__name__}: {exc}"
        ) from exc
    if known is None:
        log.warning("%s: downloaded WITHOUT verification; sha256 %s (pin it in a registry)", url, file_sha256(path))
    return path


def fetch_files(names: Sequence[str], **kwargs) -> list[Path]:
    """:func:`fetch_file` for several names (same options); returns the cached paths in order."""
    return [fetch_file(n, **kwargs) for n in names]
