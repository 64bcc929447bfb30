"""Inference: predict masks over whole climate runs, locally or with Ray Data.

:func:`predict` turns a checkpoint plus a run into a CF mask dataset (``mask``
uint8 with ``flag_values``/``flag_meanings``, optional ``probability``), in
memory or written to netCDF / Zarr (atomically, resumable after an interruption).

``import climviz.inference`` is light; torch and ray load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

# ``predict`` is bound eagerly (predict.py imports only xarray at the top): a lazy
# binding would be shadowed by the submodule ``climviz.inference.predict`` once imported.
from climviz.inference.predict import predict

_LAZY = {
    "MaskPredictor": "climviz.inference.runner",
    "load_spec": "climviz.inference.runner",
    "tiled_logits": "climviz.inference.tiling",
    "padded_logits": "climviz.inference.tiling",
    "OutputError": "climviz.inference.writer",
    "OutputExistsError": "climviz.inference.writer",
}

__all__ = sorted(["predict", *_LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'climviz.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
