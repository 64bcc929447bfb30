"""``climviz predict CHECKPOINT DATA... --out FILE``: masks for a run from a trained model."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict",
        help="predict TC/AR masks for a run with a trained checkpoint",
        description="Predict tropical cyclone / atmospheric river masks for every time step "
        "of a run and write them as a CF mask file (netCDF or Zarr). An interrupted "
        "prediction resumes when run again with the same arguments.",
    )
    p.add_argument("checkpoint", help="checkpoint.pt file or the directory holding it")
    p.add_argument("data", nargs="+", help="input files, globs or a Zarr store")
    p.add_argument("--out", "-o", required=True, help="output .nc file or .zarr store")
    p.add_argument("--batch-size", type=int, default=4, help="time steps per forward pass (4)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--probabilities", nargs="?", const="float16", default=False,
                   choices=["float16", "float32"], help="also write class probabilities")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--ray", action="store_true", help="run with Ray Data (read tasks + model actors)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --ray)")
    p.add_argument("--num-workers", type=int, default=None, help="model actors (with --ray)")
    p.add_argument("--tile", type=int, nargs=2, metavar=("LAT", "LON"), default=None,
                   help="predict in tiles of LAT x LON cells (very large grids)")
    p.add_argument("--tile-overlap", type=int, default=16, help="tile margin in cells (16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``climviz predict``; returns the exit code."""
    from climviz.inference.predict import predict

    data = args.data[0] if len(args.data) == 1 else list(args.data)
    ds = predict(
        args.checkpoint, data, out=args.out, batch_size=args.batch_size, device=args.device,
        address=args.address, num_workers=args.num_workers, probabilities=args.probabilities,
        overwrite=args.overwrite, use_ray=args.ray, progress=not args.no_progress,
        tile=args.tile, tile_overlap=args.tile_overlap,
    )
    print(f"wrote {args.out}: masks for {ds.sizes['time']} time steps on a "
          f"{ds.sizes['lat']} x {ds.sizes['lon']} grid (model {ds.attrs.get('model')})")
    ds.close()
    return 0
