"""What a training run returns: checkpoints, per-epoch metrics, config and timing.

Also the run-directory layout (:func:`default_run_dir`, :func:`epoch_dir`), how a
result is built from a finished run (:func:`result_from_history`), and the job-result
protocol: ``climviz train`` prints ``RESULT_PREFIX + json`` (:func:`result_to_json`)
as its last line, which :class:`climviz.training.jobs.TrainingJob` reads back
(:func:`result_from_json`).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from climviz.errors import CheckpointError
from climviz.training.checkpoint import checkpoint_file, find_latest_checkpoint
from climviz.training.config import TrainConfig

__all__ = [
    "METRIC_COLUMNS",
    "RESULT_PREFIX",
    "TrainResult",
    "default_run_dir",
    "epoch_dir",
    "metrics_frame",
    "result_from_history",
    "result_from_json",
    "result_to_json",
]

#: Prefix of the result line ``climviz train`` prints at the end of a successful run.
RESULT_PREFIX = "CLIMVIZ_RESULT "

#: Columns of ``TrainResult.metrics`` that every run fills (others may follow).
METRIC_COLUMNS: tuple[str, ...] = (
    "epoch", "global_step", "train_loss", "val_loss",
    "iou_background", "iou_tc", "iou_ar", "miou", "pixel_accuracy",
    "images_per_s", "flops_per_s", "lr", "epoch_time_s", "elapsed_s",
    "peak_memory_mb", "skipped_steps", "world_size", "global_batch_size", "time_to_target_s",
)


@dataclass
class TrainResult:
    """Result of :func:`climviz.train`, the same with and without Ray.

    Attributes
    ----------
    checkpoint
        The last checkpoint file (``.../checkpoint.pt``).
    best_checkpoint
        The checkpoint with the highest validation mean IoU.
    metrics
        One row per epoch: ``epoch, train_loss, val_loss, iou_background, iou_tc, iou_ar,
        miou, pixel_accuracy, images_per_s`` (training samples per second, all workers),
        ``flops_per_s`` (achieved model FLOP/s of the training steps, all workers), ``lr``
        (at the end of the epoch), ``epoch_time_s``, ``elapsed_s`` (since the run started, s),
        ``peak_memory_mb``, ``skipped_steps`` (overflow steps skipped by the grad scaler),
        ``world_size``, ``global_batch_size``, ``time_to_target_s`` (elapsed seconds when ``target_miou`` was first
        reached, NaN before).
    config
        The :class:`TrainConfig` used.
    wall_time_s
        Wall-clock seconds of the whole call.
    run_path
        Directory of the run (Ray storage path or local checkpoint directory), if any.
    """

    checkpoint: Path | None          # None only when a Ray run stored no checkpoint
    best_checkpoint: Path | None
    metrics: pd.DataFrame
    config: TrainConfig
    wall_time_s: float
    run_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def time_to_target_s(self) -> float:
        """Seconds until validation mIoU first reached ``config.target_miou`` (NaN if never)."""
        if "time_to_target_s" not in self.metrics or self.metrics.empty:
            return float("nan")
        s = self.metrics["time_to_target_s"].dropna()
        return float(s.iloc[0]) if len(s) else float("nan")

    @property
    def best_miou(self) -> float:
        """Highest validation mean IoU over the epochs (NaN when no epoch ran)."""
        if "miou" not in self.metrics or self.metrics.empty:
            return float("nan")
        return float(self.metrics["miou"].max())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (paths as strings, metrics as a list of row dicts)."""
        import math

        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in self.metrics.to_dict(orient="records")]
        return {"checkpoint": str(self.checkpoint), "best_checkpoint": str(self.best_checkpoint),
                "metrics": rows, "config": self.config.to_dict(), "wall_time_s": self.wall_time_s,
                "run_path": None if self.run_path is None else str(self.run_path),
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_dict`."""
        rows = [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in d["metrics"]]
        return cls(checkpoint=Path(d["checkpoint"]), best_checkpoint=Path(d["best_checkpoint"]),
                   metrics=metrics_frame(rows), config=TrainConfig.from_dict(d["config"]),
                   wall_time_s=float(d["wall_time_s"]),
                   run_path=None if d.get("run_path") is None else Path(d["run_path"]),
                   extra=dict(d.get("extra") or {}))

    def __repr__(self) -> str:
        n = len(self.metrics)
        return (f"TrainResult(model={self.config.model!r}, preset={self.config.preset!r}, "
                f"epochs={n}, best_miou={self.best_miou:.3f}, wall_time_s={self.wall_time_s:.1f}, "
                f"checkpoint={str(self.checkpoint)!r})")


def metrics_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Metrics rows -> DataFrame with the standard columns first."""
    df = pd.DataFrame(rows)
    first = [c for c in METRIC_COLUMNS if c in df.columns]
    rest = [c for c in df.columns if c not in first]
    return df[first + rest].reset_index(drop=True)


def epoch_dir(checkpoint_dir: str | os.PathLike, epoch: int) -> Path:
    """``checkpoint_dir/epoch_XXXX`` for a completed epoch (1-based)."""
    return Path(checkpoint_dir) / f"epoch_{epoch:04d}"


def default_run_dir(cfg: TrainConfig, storage_path: str | os.PathLike | None,
                    name: str | None) -> Path:
    """``storage_path/name`` (defaults ``./climviz_runs`` and ``<model>-<preset>-<UTC time>``)."""
    root = Path(storage_path) if storage_path is not None else Path("climviz_runs")
    if name is None:
        name = f"{cfg.model}-{cfg.preset}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%d-%H%M%S}"
    return (root / name).resolve()


def result_from_history(history: list[dict], cfg: TrainConfig, checkpoint_dir: Path,
                        wall_time_s: float, run_path: Path | None) -> TrainResult:
    """Build the :class:`TrainResult` of a finished run from its metrics rows and checkpoints."""
    latest = find_latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise CheckpointError(f"{checkpoint_dir}: the run wrote no checkpoint")
    best = latest
    scored = [r for r in history if r.get("miou") == r.get("miou")]   # drop NaN
    for r in sorted(scored, key=lambda r: -r["miou"]):
        f = checkpoint_file(epoch_dir(checkpoint_dir, int(r["epoch"])))
        if f.exists():
            best = f
            break
    return TrainResult(checkpoint=latest, best_checkpoint=best, metrics=metrics_frame(history),
                       config=cfg, wall_time_s=wall_time_s, run_path=run_path)


def _json_clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        try:
            return _json_clean(v.item())
        except (AttributeError, ValueError):
            return str(v)
    if isinstance(v, dict):
        return {str(k): _json_clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_clean(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def result_to_json(res: TrainResult) -> dict[str, Any]:
    """A TrainResult as a JSON-able dict (paths as strings, metrics as records, NaN as None)."""
    return _json_clean({
        "checkpoint": str(res.checkpoint) if res.checkpoint is not None else None,
        "best_checkpoint": str(res.best_checkpoint) if res.best_checkpoint is not None else None,
        "metrics": res.metrics.to_dict("records"),
        "config": res.config.to_dict(),
        "wall_time_s": float(res.wall_time_s),
        "run_path": str(res.run_path) if res.run_path is not None else None,
        "extra": dict(getattr(res, "extra", {}) or {}),
    })


def result_from_json(d: dict[str, Any]) -> TrainResult:
    """Inverse of :func:`result_to_json` (None metrics values come back as NaN)."""
    rows = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in d.get("metrics", [])]
    return TrainResult(
        checkpoint=Path(d["checkpoint"]) if d.get("checkpoint") else None,
        best_checkpoint=Path(d["best_checkpoint"]) if d.get("best_checkpoint") else None,
        metrics=metrics_frame(rows) if rows else pd.DataFrame(),
        config=TrainConfig.from_dict(d["config"]),
        wall_time_s=float(d.get("wall_time_s", float("nan"))),
        run_path=Path(d["run_path"]) if d.get("run_path") else None,
        extra=dict(d.get("extra") or {}),
    )
