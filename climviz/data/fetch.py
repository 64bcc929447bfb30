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
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

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
]

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
        File missing, or a line that is not ``name`` followed by a 64-hex-digit sha256.
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
        out[parts[0]] = digest
    return out


def _norm_hash(h: str | None) -> str | None:
    if h is None:
        return None
    h = h.strip().lower().removeprefix("sha256:")
    if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise FetchError(f"sha256: expected 64 hex digits, found {h!r}")
    return h


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
        Seconds to wait for the server.
    retries
        Extra attempts after a network error or hash mismatch.

    Returns
    -------
    pathlib.Path
        The cached file.

    Raises
    ------
    FetchError
        No known hash (and not ``allow_unverified``), HTTP error, connection failure,
        truncated transfer or hash mismatch; nothing is left in the cache under ``name``.
    """
    import pooch
    import requests

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
    fetcher = make_fetcher(base_url, reg, cache_dir, retries=retries)
    url = fetcher.get_url(name)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    try:
        path = Path(fetcher.fetch(name, downloader=downloader))
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
