"""Make the README pictures with climviz.viz from the (synthetic) sample data.

Run from the repository root::

    python docs/make_images.py            # writes docs/images/*.png (about 20 s)

Pictures:

* ``docs/images/sample_map.png``: precipitable water (TMQ) of the sample run at one
  time step, with the labelled tropical cyclones (TC) and atmospheric rivers (AR)
  and the offline GSHHS coastlines (Robinson projection).
* ``docs/images/sample_tracks.png``: TC and AR tracks of the whole sample run
  (labels -> events -> tracks with climviz.events), on a static map.

The data are synthetic (see data_samples/README.md); no network is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_sample():
    import climviz as cv

    sample = ROOT / "data_samples" / "climatenet"
    if sample.is_dir() and any(sample.glob("*.nc")):
        return cv.open_run(sample).load(), "data_samples/climatenet"
    # Fallback: the same generator the sample files were made with.
    ds = cv.synthetic_run(24, shape=(96, 144), seed=0, n_tc=3, n_ar=2, start="2000-09-01", freq="3h")
    return ds, "climviz.synthetic_run(24, shape=(96, 144), seed=0)"


def make_map(ds, source: str, out: Path, step: int) -> Path:
    import climviz.viz as viz

    fig = viz.static_map(ds, mask="LABELS", time=step, projection="Robinson", coastline_resolution="l",
                         cmap="Blues", figsize=(9.0, 5.4))
    fig.axes[0].set_title(f"{fig.axes[0].get_title()}  (synthetic sample: {source})", fontsize=9)
    return viz.save_static(fig, out, dpi=110)


def make_tracks(ds, out: Path) -> Path:
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    import climviz as cv
    import climviz.viz as viz
    from climviz.viz._grid import CLASS_COLORS, CLASS_SHORT
    from climviz.viz.coastlines import coastline_feature, land_feature
    from climviz.viz.track_maps import split_at_seam

    lab = cv.events.label(ds["LABELS"])
    tab = cv.events.table(lab, ds["LABELS"])
    trk = cv.events.track(tab, lab)
    fig = plt.figure(figsize=(9.0, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1, projection=ccrs.PlateCarree())
    ax.add_feature(land_feature("l"))
    ax.add_feature(coastline_feature("l", linewidth=0.4))
    for tid, g in trk.events.sort_values("time").groupby("track_id"):
        cls = int(g["class"].iloc[0])
        for piece in split_at_seam(g["centroid_lon"].to_numpy(), g["centroid_lat"].to_numpy()):
            ax.plot(piece[:, 0], piece[:, 1], color=CLASS_COLORS[cls], lw=2, transform=ccrs.PlateCarree())
        gl = (g["centroid_lon"].iloc[0] + 180) % 360 - 180
        ax.plot(gl, g["centroid_lat"].iloc[0], "o", color=CLASS_COLORS[cls], mec="k", ms=6,
                transform=ccrs.PlateCarree())
    for cls in CLASS_SHORT:
        ax.plot([], [], color=CLASS_COLORS[cls], lw=2, label=f"{CLASS_SHORT[cls]} track (dot: genesis)")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_global()
    n = trk.tracks.groupby("class").size()
    ax.set_title(f"Tracks in the sample run: {int(n.get(1, 0))} TC, {int(n.get(2, 0))} AR "
                 f"({ds.sizes['time']} steps, 3-hourly)", fontsize=10)
    return viz.save_static(fig, out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="output folder")
    p.add_argument("--step", type=int, default=4, help="time step of the map")
    args = p.parse_args(argv)
    ds, source = load_sample()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (make_map(ds, source, args.out / "sample_map.png", args.step),
                 make_tracks(ds, args.out / "sample_tracks.png")):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
