"""``climviz events MASKS --out DIR``: event tables, tracks, summaries and frequency maps of a mask run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]

#: Statistics of run fields written by default when ``--run`` is given (if the variables exist).
DEFAULT_FIELD_STATS: dict[str, list[str]] = {
    "PSL": ["min"],
    "WSP850": ["max"],  # derived: hypot(U850, V850)
    "TMQ": ["mean", "max"],
    "PRECT": ["max", "integral"],
}


def register(subparsers: Any) -> None:
    """Add the ``events`` subcommand."""
    p = subparsers.add_parser(
        "events",
        help="event tables, tracks and frequency maps from a mask file",
        description="Label connected events (per time step and class, periodic in longitude) in a mask "
        "file written by `climviz predict` or `climviz label`, link them into tracks, and write the "
        "event table, the tracks, the track graph and a summary (CSV or Parquet) plus frequency maps "
        "(netCDF) into DIR. Streams over time: memory stays bounded for long runs.",
    )
    p.add_argument("masks", help="mask file (.nc) or Zarr store with a 'mask' variable (or --var)")
    p.add_argument("--out", "-o", required=True, help="output directory")
    p.add_argument("--var", default=None, help="mask variable name (default: 'mask', else 'LABELS')")
    p.add_argument("--run", nargs="+", default=None,
                   help="the climate run (files/glob/Zarr) for field statistics inside events")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="table format (default csv)")
    p.add_argument("--min-area-km2", type=float, default=0.0, help="drop events smaller than this (km²)")
    p.add_argument("--min-cells", type=int, default=1, help="drop events with fewer grid cells")
    p.add_argument("--min-overlap", type=float, default=0.1,
                   help="overlap fraction (of the smaller event) linking events of consecutive steps")
    p.add_argument("--max-distance-km", type=float, default=600.0,
                   help="centroid-distance fallback for cyclones (km); 0 disables it")
    p.add_argument("--min-steps", type=int, default=1, help="drop tracks with fewer time steps")
    p.add_argument("--min-lifetime-h", type=float, default=0.0, help="drop tracks living shorter (hours)")
    p.add_argument("--land", default=None,
                   help="netCDF file with a land fraction/mask (variable --land-var) for landfall counts")
    p.add_argument("--land-var", default="LANDFRAC", help="land variable name (default LANDFRAC)")
    p.add_argument("--chunk", type=int, default=64, help="time steps read per block (default 64)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def _open_masks(path: str, var: str | None, chunk: int) -> Any:
    import xarray as xr

    from climviz.errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: mask file not found")
    try:
        if p.is_dir() or p.suffix == ".zarr":
            ds = xr.open_zarr(p, chunks={"time": chunk})
        else:
            ds = xr.open_dataset(p, chunks={"time": chunk})
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot open as netCDF/Zarr ({exc})") from exc
    name = var or ("mask" if "mask" in ds else "LABELS" if "LABELS" in ds else None)
    if name is None or name not in ds:
        raise DataError(f"{path}: expected a variable {var or 'mask'!r} (or 'LABELS'), "
                        f"found {sorted(map(str, ds.data_vars))}")
    da = ds[name]
    if "time" not in da.dims:
        da = da.expand_dims("time")
    return da


def _fields(run_paths: list[str] | None, mask: Any) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    if not run_paths:
        return None, {}
    import numpy as np

    from climviz.data.io import open_run
    from climviz.errors import DataError

    ds = open_run(run_paths if len(run_paths) > 1 else run_paths[0], chunks={"time": int(mask.chunks[0][0])
                                                                                  if mask.chunks else 1})
    if ds.sizes["time"] != mask.sizes["time"]:
        raise DataError(f"--run: expected {mask.sizes['time']} time steps like the masks, found {ds.sizes['time']}")
    fields: dict[str, Any] = {}
    for k in ("PSL", "TMQ", "PRECT"):
        if k in ds:
            fields[k] = ds[k]
    if "U850" in ds and "V850" in ds:
        fields["WSP850"] = np.hypot(ds["U850"], ds["V850"])
    fields = {k: v.assign_coords(time=mask["time"].values) for k, v in fields.items()}
    stats = {k: DEFAULT_FIELD_STATS[k] for k in fields}
    return fields, stats


def _check_free(target: Path, overwrite: bool) -> None:
    from climviz.errors import OutputExistsError

    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target}: exists; pass --overwrite to replace it")


def _outputs(out: Path, fmt: str) -> list[Path]:
    """Every file ``climviz events`` writes into ``out``."""
    return [out / f"{name}.{fmt}" for name in ("events", "tracks", "track_edges")] + [
        out / "summary.csv", out / "frequency.nc"]


def _write_table(df: Any, path: Path, fmt: str, overwrite: bool) -> Path:
    from climviz.utils.atomic import atomic_path
    from climviz.utils.output import translate_write_errors

    target = path.with_suffix(f".{fmt}")
    _check_free(target, overwrite)
    with translate_write_errors(target, what="--out"), atomic_path(target) as tmp:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return target


def _read_land(path: str, var: str) -> Any:
    """The land mask/fraction ``var`` of the file ``path`` (first time step if it has several)."""
    import xarray as xr

    from climviz.errors import DataError

    try:
        with xr.open_dataset(path) as lds:
            if var not in lds:
                raise DataError(f"{path}: expected a land variable {var!r}, "
                                f"found {sorted(map(str, lds.data_vars))}")
            land = lds[var].load()
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc})") from exc
    return land.isel(time=0) if "time" in land.dims else land


def _frequency_maps(mask: Any, source: str) -> Any:
    """Per class (TC, AR): the frequency map, and by season for datetime runs (lazy)."""
    import numpy as np
    import xarray as xr

    from climviz.data.schema import CLASSES
    from climviz.events.stats import frequency

    maps = xr.Dataset()
    datetime_time = np.issubdtype(mask["time"].dtype, np.datetime64)
    for c in sorted(k for k in CLASSES if k):
        f = frequency(mask, c)
        maps[f.name] = f
        if datetime_time:
            maps[f"{f.name}_season"] = frequency(mask, c, by="season")
    maps.attrs = {"Conventions": "CF-1.8", "source_masks": source,
                  "comment": "fraction of time steps each cell is inside the class"}
    return maps


def run(args: argparse.Namespace) -> int:
    """Run ``climviz events``; returns the exit code."""
    from climviz.data.schema import CLASSES
    from climviz.events.stats import summarize
    from climviz.events.tracking import TrackConfig, track_masks
    from climviz.utils.atomic import atomic_path
    from climviz.utils.output import check_output_location, translate_write_errors

    out = Path(args.out)
    # the output directory and every output file are checked before any time step is processed
    check_output_location(out, directory=True, what="--out")
    for target in _outputs(out, args.format):
        _check_free(target, args.overwrite)
    mask = _open_masks(args.masks, args.var, args.chunk)
    fields, stats = _fields(args.run, mask)
    cfg = TrackConfig(min_overlap=args.min_overlap,
                      max_distance_km=args.max_distance_km if args.max_distance_km > 0 else None,
                      min_steps=args.min_steps, min_lifetime_h=args.min_lifetime_h)

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} time steps", end="", flush=True)

    trk = track_masks(mask, fields, stats=stats, config=cfg, min_area_km2=args.min_area_km2,
                      min_cells=args.min_cells, progress=progress)
    print()
    land = _read_land(args.land, args.land_var) if args.land else None
    check_output_location(out, directory=True, what="--out")   # still writable after the work
    for target in _outputs(out, args.format):
        _check_free(target, args.overwrite)
    written = [
        _write_table(trk.events, out / "events", args.format, args.overwrite),
        _write_table(trk.tracks, out / "tracks", args.format, args.overwrite),
        _write_table(trk.edges, out / "track_edges", args.format, args.overwrite),
        _write_table(summarize(trk, land=land), out / "summary", "csv", args.overwrite),
    ]
    target = out / "frequency.nc"
    _check_free(target, args.overwrite)
    maps = _frequency_maps(mask, str(args.masks)).load()
    with translate_write_errors(target, what="--out"), atomic_path(target) as tmp:
        maps.to_netcdf(tmp)
    written.append(target)
    n_tracks = trk.tracks.groupby("class").size().to_dict() if len(trk.tracks) else {}
    print(f"{len(trk.events)} event rows, {len(trk.tracks)} tracks "
          f"({', '.join(f'{CLASSES.get(int(k), k)}: {v}' for k, v in n_tracks.items()) or 'none'})")
    for p in written:
        print(f"wrote {p}")
    return 0
