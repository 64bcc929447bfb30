"""Benchmark: how responsive are interactive maps of paper-sized grids (768 x 1152)?

Measures, for one time step of a synthetic run on the ClimateNet grid:

* ``full``: ``climviz.viz.map(..., max_shape=None)``: every cell goes to the browser;
* ``decimated``: the default ``max_shape`` (block means, TC/AR kept);
* ``bare``: a plain ``holoviews.Image`` of the full grid with no coastlines or masks
  (the baseline: what HoloViews alone costs for the same data).

For each: time to build the HoloViews object + render the Bokeh figure (s), and
the size of the self-contained HTML page (bytes), which is what a browser must
parse and hold per frame. Ratios compare climviz maps with the bare baseline and
decimated with full, measured in the same run.

Usage::

    python benchmarks/bench_viz.py           # 768 x 1152, writes benchmarks/results/viz.json
    python benchmarks/bench_viz.py --quick   # 192 x 288,  writes benchmarks/results/viz_quick.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


from _common import machine_info, save_result  # benchmarks/_common.py (this script's folder)

PACKAGES = ("xarray", "holoviews", "geoviews", "bokeh", "panel", "cartopy", "shapely")



def timed(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small grid (192 x 288)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    machine = machine_info()

    import holoviews as hv

    import climviz as cv
    import climviz.viz as viz
    from climviz.viz._backend import ensure_bokeh

    ensure_bokeh()
    shape = (192, 288) if args.quick else (768, 1152)
    ds = cv.synthetic_run(1, shape=shape, seed=0).load()
    field, mask = ds["TMQ"].isel(time=0), ds["LABELS"].isel(time=0)
    lat, lon = ds["lat"].values, ds["lon"].values

    def bare():
        img = hv.Image((lon, lat, field.values), kdims=["lon", "lat"], vdims=["TMQ"])
        return img, hv.render(img)

    def decimated():
        m = viz.map(field, mask)
        return m, hv.render(m)

    def full():
        m = viz.map(field, mask, max_shape=None)
        return m, hv.render(m)

    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("bare", bare), ("decimated", decimated), ("full", full)):
            fn()  # warm up (imports, caches)
            t, (obj, _) = timed(fn, args.repeat)
            html = viz.save_html(obj, Path(tmp) / f"{name}.html")
            img = [e for e in (obj if isinstance(obj, hv.Overlay) else [obj]) if e.group == "Image"][0]
            figures[name] = {"build_and_render_s": t, "html_bytes": html.stat().st_size,
                             "image_shape": list(img.dimension_values(2, flat=False).shape)}
            fig = figures[name]
            print(f"{name:10s} {t:7.3f} s  {fig['html_bytes'] / 1e6:7.2f} MB  image {fig['image_shape']}")

    render = {k: figures[k]["build_and_render_s"] for k in ("decimated", "full", "bare")}
    ratios = {
        "map_decimated_vs_full_render_time": render["decimated"] / render["full"],
        "map_decimated_vs_full_html_bytes": figures["decimated"]["html_bytes"] / figures["full"]["html_bytes"],
        "map_decimated_vs_bare_image_render_time": render["decimated"] / render["bare"],
        "map_full_vs_bare_image_render_time": render["full"] / render["bare"],
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    notes = ("best of --repeat runs; build = climviz.viz.map (wrap, decimate, contour masks, coastlines) + "
             "hv.render to a Bokeh figure; html = save_html with inlined BokehJS (~3 MB fixed cost). "
             "The 2-core machine was shared with other jobs while measuring (see load average).")
    save_result("viz", figures, ratios, notes, quick=args.quick, machine=machine, packages=PACKAGES, grid=list(shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
