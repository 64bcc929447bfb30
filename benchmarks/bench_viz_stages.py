"""Cost of the viz and report stages (issue 20): the staged functions against their one-body baselines.

Issue 20 split ``viz.map``, ``viz.tracks``, ``viz.static_map``, ``report.explorer_page`` and
``report.report`` into named stages of a screen each. This script loads the one-body
versions from a baseline git revision (default ``780ca06``, before the split) beside the
current ones and times both in the same run, alternately, on the same inputs
(``bench_stages.paired``):

* ``map``: a HoloMap of every step of a synthetic run with its labels (the frames are built);
* ``tracks``: the track map of that run's labelled events;
* ``static_map``: a matplotlib/cartopy map of one step, drawn to PNG;
* ``explorer_page``: the report's offline explorer (every frame embedded) written to HTML;
* ``report``: the whole report folder (scorecard, events, tracks, PNGs, explorer, index).

Each ratio is current / baseline median wall time (1.0: the split costs nothing). Outputs
are compared too: Bokeh documents (model ids normalized), PNG pixels and report files.

Usage::

    python benchmarks/bench_viz_stages.py [--quick] [--baseline REV] [--out PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from _common import baseline_module, machine_info, paired, save_result  # benchmarks/_common.py (this script's folder)


def _bokeh_json(obj) -> str:
    """The Bokeh document of a HoloViews object (first frame), model ids normalized."""
    import holoviews as hv
    from bokeh.embed import json_item

    if isinstance(obj, hv.HoloMap):
        obj = obj.last
    return re.sub(r'"p\d+"', '"ID"', json.dumps(json_item(hv.render(obj)), sort_keys=True, default=str))


def _png(fig) -> np.ndarray:
    import matplotlib.image as mi
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    buf.seek(0)
    return mi.imread(buf)


def _folder_text(folder: Path) -> dict[str, str]:
    """Text files of a report folder, Bokeh ids and uuids normalized (PNGs: their pixels' hash)."""
    import hashlib

    import matplotlib.image as mi

    out = {}
    for f in sorted(folder.iterdir()):
        if f.suffix == ".png":
            out[f.name] = hashlib.sha1(mi.imread(f).tobytes()).hexdigest()
        elif f.suffix in (".html", ".csv"):
            t = re.sub(r'"p\d+"', '"ID"', f.read_text())
            out[f.name] = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", t)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller run, 3 repeats")
    ap.add_argument("--baseline", default="780ca06", help="git revision of the one-body versions")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/viz_stages[_quick].json)")
    args = ap.parse_args(argv)
    machine = machine_info()
    warnings.simplefilter("ignore")
    import holoviews as hv
    import matplotlib

    matplotlib.use("Agg")
    hv.extension("bokeh")
    import climviz as cv
    import climviz.report as report_now
    from climviz.viz import export as export_now
    from climviz.viz import maps as maps_now
    from climviz.viz import track_maps as tracks_now

    rev = args.baseline
    maps_old = baseline_module(rev, "climviz/viz/maps.py", "bench_old_maps")
    tracks_old = baseline_module(rev, "climviz/viz/track_maps.py", "bench_old_track_maps")
    export_old = baseline_module(rev, "climviz/viz/export.py", "bench_old_export")
    report_old = baseline_module(rev, "climviz/report.py", "bench_old_report")

    nt, shape, repeats = (6, (48, 72), 3) if args.quick else (12, (96, 144), 5)
    fast = 3 * repeats  # the sub-second figures get more rounds: one slow round weighs less
    run = cv.synthetic_run(nt, shape=shape, seed=0).load()
    masks = run[["LABELS"]].rename({"LABELS": "mask"})
    lab, tab = run.climviz.events(fields=run[["PSL", "TMQ"]], return_labels=True)
    trk = cv.events.track(tab, lab)
    figures, equal = {}, {}

    figures["map"] = paired(lambda: maps_now.map(run, mask="LABELS"), lambda: maps_old.map(run, mask="LABELS"),
                            fast)
    equal["map"] = _bokeh_json(maps_now.map(run, mask="LABELS")) == _bokeh_json(maps_old.map(run, mask="LABELS"))
    figures["tracks"] = paired(lambda: tracks_now.tracks(trk), lambda: tracks_old.tracks(trk), fast)
    equal["tracks"] = _bokeh_json(tracks_now.tracks(trk)) == _bokeh_json(tracks_old.tracks(trk))

    def static(mod):
        return lambda: _png(mod.static_map(run, "LABELS", time=1, coastline_resolution="c"))

    figures["static_map"] = paired(static(export_now), static(export_old), fast)
    equal["static_map"] = bool(np.array_equal(static(export_now)(), static(export_old)()))

    with tempfile.TemporaryDirectory() as tmp:
        def page(mod, name):
            return lambda: mod.explorer_page(run, masks, trk.events, Path(tmp) / name)

        figures["explorer_page"] = paired(page(report_now, "now.html"), page(report_old, "old.html"), repeats)
        equal["explorer_page"] = (_folder_text(Path(tmp)).get("now.html") == _folder_text(Path(tmp)).get("old.html"))

        def folder(mod, name):
            return lambda: mod.report(masks, run=run, out=Path(tmp) / name, overwrite=True, heuristic=False)

        figures["report"] = paired(folder(report_now, "now"), folder(report_old, "old"), max(2, repeats - 2))
        equal["report"] = _folder_text(Path(tmp) / "now") == _folder_text(Path(tmp) / "old")

    ratios = {k: v["current"]["median_s"] / v["baseline"]["median_s"] for k, v in figures.items()}
    ratios_of_fastest = {k: v["current"]["min_s"] / v["baseline"]["min_s"] for k, v in figures.items()}
    for k, r in ratios.items():
        cur, base = figures[k]["current"], figures[k]["baseline"]
        print(f"{k:14s} current/baseline {r:5.2f} (fastest calls {ratios_of_fastest[k]:5.2f}); current "
              f"{cur['median_s'] * 1e3:8.1f} ms; spread {cur['spread']:.0%} / {base['spread']:.0%}")
    print("equal outputs:", equal)
    save_result("viz_stages", figures, ratios,
                f"current / baseline ({rev}) median wall time, both measured in this run on the same inputs "
                f"(synthetic run, {nt} steps at {shape[0]}x{shape[1]}), alternately; ratios_of_fastest compare "
                "the fastest calls. Outputs compared (equal_outputs): Bokeh documents with model ids "
                "normalized, PNG pixels, report files.",
                quick=args.quick, out=args.out, machine=machine, packages=("holoviews", "bokeh", "matplotlib"),
                baseline=rev, equal_outputs=equal, ratios_of_fastest=ratios_of_fastest)
    return {"ratios": ratios, "equal": equal}


if __name__ == "__main__":
    main()
