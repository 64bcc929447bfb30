"""Regenerate the bundled synthetic sample data (run from the repository root).

    python data_samples/make_samples.py            # rewrite data_samples/
    python data_samples/make_samples.py --out DIR  # write elsewhere

Writes, atomically:

* ``climatenet/data-YYYY-MM-DD-00-1.nc``: the sample run in ClimateNet netCDF form, one
  file per day of eight 3-hourly steps (16 channels + LABELS, zlib-compressed float32).
* ``deepcam/data-YYYY-MM-DD-HH-1.h5``: its first time step in DeepCAM HDF5 form
  (``climate/data`` (lat, lon, 16) float32, ``climate/labels_0``).
* ``features.csv``: the constructed storms and rivers behind the labels (one row per
  time step and feature), from ``synthetic_run(..., return_features=True)``.

Everything is **synthetic** (``climviz.synthetic_run``), not climate model output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Arguments of :func:`climviz.synthetic_run` for the sample run.
SAMPLE = {"n_times": 24, "shape": (96, 144), "seed": 0, "n_tc": 3, "n_ar": 2, "start": "2000-09-01",
          "freq": "3h"}
#: Time steps per netCDF file (one day of 3-hourly fields).
STEPS_PER_FILE = 8


def make(out: Path, complevel: int = 9) -> list[Path]:
    """Write the sample files under ``out`` (zlib/gzip level ``complevel``); returns the paths written."""
    from climviz.data.io import write_run
    from climviz.data.synthetic import synthetic_run
    from climviz.utils.atomic import atomic_path

    ds, features = synthetic_run(**SAMPLE, return_features=True)
    written = []
    for start in range(0, ds.sizes["time"], STEPS_PER_FILE):
        part = ds.isel(time=slice(start, start + STEPS_PER_FILE))
        day = str(part.time.values[0])[:10]
        written.append(write_run(part, out / "climatenet" / f"data-{day}-00-1.nc", overwrite=True, complevel=complevel))
    first = ds.isel(time=[0])
    stamp = str(first.time.values[0])[:13].replace("T", "-")
    written.append(write_run(first, out / "deepcam" / f"data-{stamp}-1.h5", overwrite=True, complevel=complevel))
    with atomic_path(out / "features.csv") as tmp:
        features.to_csv(tmp, index=False, float_format="%.6g")
    written.append(out / "features.csv")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    for p in make(args.out):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
