"""Cost of splitting long functions into named stages: the staged code against its one-body baseline.

Issue 20 split ``data.io._combine``, ``data.formats.netcdf._open_nc4_fast``,
``labels.tc._plan``/``stitch_nodes`` and ``labels.ar.region_geometry`` into stages of a
screen each, and moved ``TCConfig``/``ARConfig`` validation onto ``climviz._fields``.
This script loads the one-body versions from a baseline git revision (default
``780ca06``, before the split) next to the current ones and times both in the same run,
on the same inputs:

* ``open_run`` of 48 one-step netCDF4 files at 96 x 144 (the h5py fast reader and the
  combination of the parts; lazy, no values read);
* ``region_geometry`` of the AR-like regions of 4 steps at 768 x 1152;
* ``stitch_nodes`` of 400 nodes over 200 steps (assignment method);
* ``TCConfig()`` and ``ARConfig()`` construction (validation included).

Each ratio is current / baseline median time (1.0: the split costs nothing); the two
are timed alternately (``_common.paired``: one call each per round, who goes first
alternating), so that load on a shared machine hits both alike. The run also checks
that both versions give equal outputs.

Usage::

    python benchmarks/bench_stages.py [--quick] [--baseline REV] [--out benchmarks/results/stages.json]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from _common import baseline_module, machine_info, paired, save_result  # benchmarks/_common.py (this script's folder)



def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer files and steps, 3 repeats")
    ap.add_argument("--baseline", default="780ca06", help="git revision of the one-body versions")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/stages[_quick].json)")
    args = ap.parse_args(argv)
    machine = machine_info()
    repeats = 3 if args.quick else 11
    n_files, geo_steps = (12, 1) if args.quick else (48, 4)

    import climviz.data.io as io_new
    from climviz.data.synthetic import synthetic_run
    from climviz.labels import ARConfig, TCConfig, stitch_nodes
    from climviz.labels._grid import Grid, label_periodic
    from climviz.labels.ar import region_geometry

    baseline_module(args.baseline, "climviz/data/formats/netcdf.py", "_stages_netcdf_old")  # imported by io_old
    io_old = baseline_module(args.baseline, "climviz/data/io.py", "_stages_io_old",
                             {"from climviz.data.formats.netcdf import (": "from _stages_netcdf_old import ("})
    fix = {"from climviz.labels._config import DictConfig": "from climviz._fields import DictConfig"}
    tc_old = baseline_module(args.baseline, "climviz/labels/tc.py", "_stages_tc_old", fix)
    ar_old = baseline_module(args.baseline, "climviz/labels/ar.py", "_stages_ar_old", fix)

    figures: dict[str, dict] = {}
    equal: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = synthetic_run(n_files, shape=(96, 144), seed=1)
        for k in range(n_files):
            io_new.write_run(run.isel(time=[k]), Path(tmp) / f"step-{k:03d}.nc")
        files = sorted(Path(tmp).glob("*.nc"))
        a, b = io_new.open_run(files), io_old.open_run(files)
        equal["open_run"] = bool(a.identical(b) or a.load().identical(b.load()))
        figures["open_run"] = paired(lambda: io_new.open_run(files), lambda: io_old.open_run(files), repeats)

    lat = np.linspace(-89.9, 89.9, 768)
    lon = np.arange(1152) * (360 / 1152)
    grid = Grid.from_coords(lat, lon)
    big = synthetic_run(geo_steps, shape=(768, 1152), seed=2)
    ivt = (big["TMQ"] * np.hypot(big["U850"], big["V850"])).values
    labels, off = [], 0
    for t in range(geo_steps):
        lab, n = label_periodic(ivt[t] > 250.0, True)
        labels.append(np.where(lab > 0, lab + off, 0))
        off += n
    lab3 = np.stack(labels)
    equal["region_geometry"] = region_geometry(lab3, grid, 2000.0).equals(ar_old.region_geometry(lab3, grid, 2000.0))
    figures["region_geometry"] = paired(lambda: region_geometry(lab3, grid, 2000.0),
                                        lambda: ar_old.region_geometry(lab3, grid, 2000.0), repeats)

    rng = np.random.default_rng(3)
    steps = np.repeat(np.arange(200), 2)
    tracks = np.tile([0, 1], 200)
    nodes = pd.DataFrame({"time_index": steps, "time": pd.date_range("2000", periods=200, freq="6h")[steps],
                          "lat": np.where(tracks == 0, 10.0, -15.0) + 0.1 * steps + rng.normal(0, 0.2, steps.size),
                          "lon": (120.0 + 60.0 * tracks - 0.8 * steps) % 360, "psl_pa": 99000.0,
                          "max_wind_ms": 30.0})
    hours = np.arange(200) * 6.0
    cfg_new, cfg_old = TCConfig(min_duration_h=24.0), tc_old.TCConfig(min_duration_h=24.0)
    ids_new, tr_new = stitch_nodes(nodes, hours, config=cfg_new)
    ids_old, tr_old = tc_old.stitch_nodes(nodes, hours, cfg_old)
    equal["stitch_nodes"] = bool(np.array_equal(ids_new, ids_old) and tr_new.equals(tr_old))
    figures["stitch_nodes"] = paired(lambda: stitch_nodes(nodes, hours, config=cfg_new),
                                     lambda: tc_old.stitch_nodes(nodes, hours, cfg_old), repeats)

    def many(make):
        return lambda: [make() for _ in range(200)]

    figures["TCConfig_x200"] = paired(many(TCConfig), many(tc_old.TCConfig), repeats)
    figures["ARConfig_x200"] = paired(many(ARConfig), many(ar_old.ARConfig), repeats)
    equal["TCConfig.to_dict"] = TCConfig().to_dict() == tc_old.TCConfig().to_dict()

    ratios = {k: v["current"]["median_s"] / v["baseline"]["median_s"] for k, v in figures.items()}
    # the fastest call of each is the least disturbed by other jobs on a shared machine
    ratios_of_fastest = {k: v["current"]["min_s"] / v["baseline"]["min_s"] for k, v in figures.items()}
    for k, r in ratios.items():
        cur, base = figures[k]["current"], figures[k]["baseline"]
        print(f"{k:16s} current/baseline {r:5.2f} (fastest calls {ratios_of_fastest[k]:5.2f}); current "
              f"{cur['median_s'] * 1e3:8.2f} ms; spread {cur['spread']:.0%} / {base['spread']:.0%}")
    print("equal outputs:", equal)
    save_result("stages", figures, ratios,
                f"current / baseline ({args.baseline}) median wall time, both measured in this run on the same "
                "inputs, alternately; ratios_of_fastest compare the fastest calls; config figures are 200 "
                "constructions. Outputs compared for equality (equal_outputs).",
                quick=args.quick, out=args.out, machine=machine, packages=("xarray", "h5py", "pandas"),
                baseline=args.baseline, equal_outputs=equal, ratios_of_fastest=ratios_of_fastest)
    return {"ratios": ratios, "equal": equal}


if __name__ == "__main__":
    main()
