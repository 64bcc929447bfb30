"""Training: config, engine, checkpoints and the Ray launcher.

The per-process engine covers AMP, the weighted loss, LAMB/LARC and IoU.

``import climviz.training`` is light; torch (and ray) are imported on first use of
a name that needs them.
"""

from __future__ import annotations

from climviz.utils.lazy import lazy_exports

_LAZY = {
    "TrainConfig": "climviz.training.config",
    "scale_lr": "climviz.training.config",
    "TrainResult": "climviz.training.result",
    "METRIC_COLUMNS": "climviz.training.result",
    "save_checkpoint": "climviz.training.checkpoint",
    "load_checkpoint": "climviz.training.checkpoint",
    "load_model": "climviz.training.checkpoint",
    "checkpoint_sha256": "climviz.training.checkpoint",
    "find_latest_checkpoint": "climviz.training.checkpoint",
    "build_model": "climviz.training.checkpoint",
    "release_workers": "climviz.training.workers",
    "WeightedLoss": "climviz.training.loss",
    "class_weights_from_labels": "climviz.training.loss",
    "build_optimizer": "climviz.training.optim",
    "build_scheduler": "climviz.training.optim",
    "LAMB": "climviz.training.optim",
    "LARC": "climviz.training.optim",
    "confusion_matrix": "climviz.training.metrics",
    "iou_from_confusion": "climviz.training.metrics",
    "resolve_precision": "climviz.training.precision",
    "run_training": "climviz.training.loop",
    "DivergenceError": "climviz.training.loop",
    "TrainState": "climviz.training.state",
    "JaccardLoss": "climviz.training.loss",
    "train": "climviz.training.api",
    "train_on_ray": "climviz.training.ray",
    "connect": "climviz.training.cluster",
    "ClusterInfo": "climviz.training.cluster",
    "submit_training": "climviz.training.jobs",
    "TrainingJob": "climviz.training.jobs",
    "make_progress": "climviz.training.progress",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
