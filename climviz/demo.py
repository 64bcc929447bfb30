"""``climviz demo`` and ``climviz report``: the whole workflow on the bundled sample.

The demo opens the bundled synthetic sample run (``data_samples/``; generated on
the fly if the folder is not there), trains the ``tiny`` DeepLabv3+ briefly on a
local Ray, predicts masks over the run, finds and tracks events, and writes a
report folder: maps as PNG, an HTML explorer, tables as CSV, and a printed
summary. ``climviz report`` builds the same report from existing predictions.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from climviz.utils.atomic import atomic_path

log = logging.getLogger(__name__)

#: where the sample run lives in a source checkout
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data_samples"


def sample_paths(samples_dir: str | Path | None = None) -> list[Path]:
    """The ClimateNet-style netCDF files of the bundled sample run (sorted), or [] if absent."""
    root = Path(samples_dir) if samples_dir is not None else SAMPLES_DIR
    return sorted(p for p in (root / "climatenet").glob("*.nc")) if (root / "climatenet").is_dir() else sorted(
        root.glob("*.nc")
    )


@dataclass
class DemoReport:
    """What the demo wrote: the report folder and the files in it."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def register(subparsers: Any) -> None:
    """Add ``demo`` and ``report`` to the ``climviz`` command line."""
    p = subparsers.add_parser(
        "demo",
        help="train, predict, find events and write a report on the bundled sample (local Ray)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="climviz_demo", help="report folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="smallest settings, for CI (about a minute or two)")
    p.add_argument("--no-ray", action="store_true", help="train in this process instead of on a local Ray")
    p.add_argument("--num-workers", type=int, default=2, help="Ray training workers (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: 8, or 2 with --quick)")
    p.add_argument("--data", default=None, help="run to use instead of the bundled sample (path or glob)")
    p.set_defaults(func=_run_demo)

    r = subparsers.add_parser("report", help="write the report (maps, explorer, tables) from existing predictions")
    r.add_argument("masks", help="mask dataset written by `climviz predict` or `climviz label` (netCDF or Zarr)")
    r.add_argument("--run", default=None, help="the run the masks were computed from (fields for the maps)")
    r.add_argument("--out", default="climviz_report", help="report folder (default: %(default)s)")
    r.set_defaults(func=_run_report)


def _run_demo(args: argparse.Namespace) -> int:
    rep = demo(
        out=args.out,
        quick=args.quick,
        use_ray=not args.no_ray,
        num_workers=args.num_workers,
        epochs=args.epochs,
        data=args.data,
    )
    _print_report(rep)
    return 0


def _print_report(rep: "DemoReport") -> None:
    print(format_summary(rep.summary))
    print(f"report written to {rep.out}/ ({len(rep.files)} files)")


def _run_report(args: argparse.Namespace) -> int:
    from climviz.data.masks import validate_mask_dataset

    masks = validate_mask_dataset(_open_any(args.masks), args.masks)
    run = None
    if args.run:
        from climviz.data.io import open_run

        run = open_run(args.run)
    _print_report(report(masks, run=run, out=args.out))
    return 0


def _open_any(path: str | Path):
    """Open a mask dataset (netCDF or Zarr); DataError naming the file if it cannot be read."""
    import xarray as xr

    from climviz.errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or Zarr store (expected a mask dataset from `climviz predict`)")
    try:
        if p.suffix == ".zarr" or (p.is_dir() and (p / "zarr.json").exists()):
            return xr.open_zarr(p)
        return xr.open_dataset(p)
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: expected a netCDF file or Zarr store with a 'mask' variable, "
                        f"but it could not be read: {exc}") from exc


def _write_csv(frame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for a summary dict."""
    width = max((len(k) for k in summary), default=0)
    lines = ["climviz summary", "-" * 40]
    for k, v in summary.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines)


def demo(
    out: str | Path = "climviz_demo",
    *,
    quick: bool = False,
    use_ray: bool = True,
    num_workers: int = 2,
    epochs: int | None = None,
    data: Any = None,
) -> DemoReport:
    """Run the whole climviz workflow on the bundled sample and write a report.

    Parameters
    ----------
    out
        Report folder (created).
    quick
        Smallest settings (2 epochs), for CI.
    use_ray
        Train on a local Ray (default) or in this process.
    num_workers
        Ray training workers.
    epochs
        Training epochs (default 8, or 2 when ``quick``).
    data
        A run (path, glob, list or Dataset) instead of the bundled sample.

    Returns
    -------
    DemoReport
    """
    from tqdm.auto import tqdm

    import climviz as cv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    steps = tqdm(total=4, desc="climviz demo", unit="stage")

    steps.set_postfix_str("open run")
    if data is None:
        paths = sample_paths()
        if paths:
            data = [str(p) for p in paths]
        else:
            log.warning("data_samples/ not found: generating a synthetic sample run")
            data = str(cv.write_run(cv.synthetic_run(16, shape=(96, 144), seed=0), out / "synthetic_sample.nc",
                                    overwrite=True))
    ds = cv.open_run(data)
    steps.update()

    steps.set_postfix_str("train")
    n_epochs = epochs if epochs is not None else (2 if quick else 8)
    cfg = cv.TrainConfig(
        model="deeplabv3plus",
        preset="tiny",
        epochs=n_epochs,
        batch_size=2,
        lr=3e-3,
        schedule="cosine",
        min_lr_factor=0.1,
        class_weights="inverse_sqrt",
        dice_weight=0.5,
        random_roll=True,
        seed=0,
        val_fraction=0.25,
    )
    kwargs: dict[str, Any] = dict(use_ray=use_ray, storage_path=str((out / "runs").resolve()), name="demo")
    if use_ray:
        kwargs["num_workers"] = num_workers
    res = cv.train(cfg, data, **kwargs)
    _write_csv(res.metrics, out / "training_metrics.csv")
    steps.update()

    steps.set_postfix_str("predict")
    masks = cv.predict(res.checkpoint, ds, out=out / "masks.nc", overwrite=True, progress=False)
    steps.update()

    steps.set_postfix_str("events + report")
    rep = report(masks, run=ds, out=out)
    steps.update()
    steps.close()

    rep.files["training_metrics"] = out / "training_metrics.csv"
    rep.files["masks"] = out / "masks.nc"
    last = res.metrics.iloc[-1]
    rep.summary = {
        "run": f"{ds.sizes['time']} time steps on a {ds.sizes['lat']}x{ds.sizes['lon']} grid",
        "synthetic": str(ds.attrs.get("synthetic", "unknown")),
        "model": f"{cfg.model} ({cfg.preset})",
        "epochs": int(last["epoch"]),
        "val mIoU": float(last["miou"]),
        "val IoU TC": float(last["iou_tc"]),
        "val IoU AR": float(last["iou_ar"]),
        "images/s": float(last["images_per_s"]),
        **rep.summary,
        "wall time [s]": time.perf_counter() - t0,
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(rep.summary, indent=2, default=str))
    rep.files["summary"] = out / "summary.json"
    return rep


def report(masks, *, run=None, out: str | Path = "climviz_report") -> DemoReport:
    """Write tables (CSV), maps (PNG), and an HTML explorer for a mask dataset.

    Parameters
    ----------
    masks
        Mask dataset (``mask`` variable, CF flags) from :func:`climviz.predict`
        or :func:`climviz.labels.label_run`.
    run
        The run the masks were computed from; its ``TMQ`` is drawn under the masks.
    out
        Report folder.
    """
    from climviz import events, viz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    fields = None
    if run is not None:
        fields = {k: run[k] for k in ("PSL", "TMQ", "PRECT") if k in run}
    labels = events.label(masks["mask"])
    tab = events.table(labels, masks["mask"], fields=fields)
    _write_csv(tab, out / "events.csv")
    files["events"] = out / "events.csv"
    trk = events.track(tab, labels)
    tracks_table = trk.tracks if hasattr(trk, "tracks") else trk
    _write_csv(tracks_table, out / "tracks.csv")
    files["tracks"] = out / "tracks.csv"

    field0 = run["TMQ"].isel(time=0) if run is not None and "TMQ" in run else None
    target = field0 if field0 is not None else masks["mask"].isel(time=0)
    viz.save_png(target, out / "map_first_step.png", mask=masks["mask"].isel(time=0), title="first time step")
    files["map"] = out / "map_first_step.png"
    for cls, key in ((1, "tc"), (2, "ar")):
        freq = events.frequency(masks["mask"], cls)
        viz.save_png(freq, out / f"frequency_{key}.png", title=f"{key.upper()} frequency")
        files[f"frequency_{key}"] = out / f"frequency_{key}.png"
    app = viz.explore(run if run is not None else masks, masks=masks, events=tab)
    viz.save_html(app, out / "explorer.html")
    files["explorer"] = out / "explorer.html"

    summary = {
        "events (time, event rows)": int(len(tab)),
        "TC events": int((tab["class"] == 1).sum()) if len(tab) else 0,
        "AR events": int((tab["class"] == 2).sum()) if len(tab) else 0,
        "tracks": int(len(tracks_table)),
    }
    return DemoReport(out=out, files=files, summary=summary)
