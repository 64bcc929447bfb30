"""``climviz fetch NAME...``: download (verified) ClimateNet files into the local cache."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``fetch`` subcommand."""
    p = subparsers.add_parser(
        "fetch",
        help="download ClimateNet files into the local cache (sha256-verified)",
        description="Download files (e.g. train/data-....nc) from the public ClimateNet folder, or any "
        "--base-url, into a cache directory. A file is kept only when its sha256 matches the known "
        "hash (--sha256 or a --registry file of 'name sha256' lines); a mismatch or a truncated "
        "download leaves nothing in the cache. Prints the cached paths.",
    )
    p.add_argument("names", nargs="+", help="file names relative to the base URL")
    p.add_argument("--base-url", default=None, help="folder URL (default: the public ClimateNet folder)")
    p.add_argument("--sha256", default=None, help="known sha256 (only with a single NAME)")
    p.add_argument("--registry", default=None, help="registry file with 'name sha256' lines")
    p.add_argument("--cache-dir", default=None, help="cache directory (default: $CLIMVIZ_DATA_DIR or ~/.cache/climviz)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept files without a known hash (their sha256 is printed so you can pin it)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the server at each step; after that long the download "
                   "must average at least --min-rate (60)")
    p.add_argument("--min-rate", type=float, default=10_000.0,
                   help="slowest accepted average rate in bytes/s once --timeout has passed (10000; 0: off)")
    p.add_argument("--max-time", type=float, default=None,
                   help="seconds the whole download of one file may take (default: no overall limit)")
    p.add_argument("--retries", type=int, default=0, help="extra attempts after a failure (0)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``climviz fetch``; returns the exit code (FetchError propagates to the main CLI)."""
    from climviz.data.fetch import CLIMATENET_BASE_URL, fetch_file, file_sha256
    from climviz.errors import FetchError

    if args.sha256 is not None and len(args.names) != 1:
        raise FetchError("--sha256: expected a single NAME, found " + str(len(args.names)))
    for name in args.names:
        path = fetch_file(
            name,
            base_url=args.base_url or CLIMATENET_BASE_URL,
            sha256=args.sha256,
            registry=args.registry,
            cache_dir=args.cache_dir,
            allow_unverified=args.allow_unverified,
            progress=args.progress,
            timeout=args.timeout,
            retries=args.retries,
            min_rate=args.min_rate,
            max_time=args.max_time,
        )
        print(f"{path}  sha256:{file_sha256(path)}")
    return 0
