"""``climviz label DATA... --out masks.nc``: heuristic TC/AR masks for a run without labels."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``label`` subcommand."""
    p = subparsers.add_parser(
        "label",
        help="label TCs and ARs with heuristic detectors (no model needed)",
        description="Detect tropical cyclones (PSL minima, closed contour, cyclonic vorticity, warm core, "
        "tracks) and atmospheric rivers (IVT threshold, long narrow regions) and write a CF mask file "
        "(netCDF .nc or Zarr .zarr), the same form as `climviz predict` writes.",
    )
    p.add_argument("data", nargs="+", help="input files, globs or a Zarr store")
    p.add_argument("--out", "-o", required=True, help="output .nc file or .zarr store")
    p.add_argument("--config", default=None,
                   help="YAML/JSON file with optional sections `tc:` and `ar:` holding detector settings")
    p.add_argument("--no-tc", action="store_true", help="skip tropical cyclones")
    p.add_argument("--no-ar", action="store_true", help="skip atmospheric rivers")
    p.add_argument("--tracks", default=None, help="also write the TC nodes (with track ids) as CSV here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def _read_config(path: str | None) -> dict[str, Any]:
    from climviz.errors import ConfigError

    if path is None:
        return {}
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read the file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML/JSON ({exc})") from exc
    if not isinstance(cfg, dict) or set(cfg) - {"tc", "ar"}:
        raise ConfigError(
            f"--config {path}: expected a mapping with sections 'tc' and/or 'ar', found "
            f"{sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__}"
        )
    for key in ("tc", "ar"):
        if key in cfg and not isinstance(cfg[key], dict):
            raise ConfigError(f"--config {path}: section {key!r} expected a mapping, found {cfg[key]!r}")
    return cfg


def run(args: argparse.Namespace) -> int:
    """Run ``climviz label``; returns the exit code."""
    from pathlib import Path

    from climviz.labels.run import label_run
    from climviz.utils.atomic import atomic_path
    from climviz.utils.output import check_output_location, translate_write_errors

    out = Path(args.out)
    if out.suffix not in (".nc", ".zarr"):
        from climviz.errors import ConfigError

        raise ConfigError(f"--out {out}: expected a .nc or .zarr path, found suffix {out.suffix!r}")
    # every output checked (exists / writable / free space) before the detectors run
    check_output_location(out, overwrite=args.overwrite, what="--out")
    if args.tracks:
        check_output_location(args.tracks, overwrite=args.overwrite, what="--tracks")
    cfg = _read_config(args.config)
    tc = False if args.no_tc else cfg.get("tc", True)
    ar = False if args.no_ar else cfg.get("ar", True)
    data = args.data[0] if len(args.data) == 1 else list(args.data)
    result = label_run(data, tc=tc, ar=ar, return_details=True)
    assert isinstance(result, tuple)  # return_details=True: (masks, LabelResult)
    masks, details = result
    with translate_write_errors(out, what="--out"), atomic_path(out, overwrite=True) as tmp:
        if out.suffix == ".zarr":
            masks.to_zarr(tmp, mode="w")
        else:
            masks.to_netcdf(tmp)
    if args.tracks and details.tc is not None:
        with translate_write_errors(args.tracks, what="--tracks"), \
                atomic_path(args.tracks, overwrite=True) as tmp:
            details.tc.nodes.to_csv(tmp, index=False)
    counts = {name: int((masks["mask"].values == v).sum()) for name, v in (("tc", 1), ("ar", 2))}
    n_tracks = len(details.tc.tracks) if details.tc is not None else 0
    print(f"wrote {out}: heuristic masks for {masks.sizes['time']} time steps on a {masks.sizes['lat']} x "
          f"{masks.sizes['lon']} grid; TC cells {counts['tc']}, AR cells {counts['ar']}, TC tracks {n_tracks}")
    return 0
