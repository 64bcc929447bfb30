"""What a training run returns: checkpoints, per-epoch metrics, config and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from climviz.training.config import TrainConfig

__all__ = ["TrainResult", "METRIC_COLUMNS"]

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

    checkpoint: Path
    best_checkpoint: Path
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
    def from_dict(cls, d: dict[str, Any]) -> "TrainResult":
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
