"""Inference: predict masks over whole climate runs, locally or with Ray Data.

:func:`predict` turns a checkpoint plus a run into a CF mask dataset (``mask``
uint8 with ``flag_values``/``flag_meanings``, optional ``probability``), in
memory or written to netCDF / Zarr (atomically, resumable after an interruption).

``import climviz.inference`` is light; torch and ray load on first use.
"""

from __future__ import annotations

# ``predict`` is bound eagerly (predict.py imports only xarray at the top): a lazy
# binding would be shadowed by the submodule ``climviz.inference.predict`` once imported.
from climviz.inference.predict import predict as predict
from climviz.utils.lazy import lazy_exports

_LAZY = {
    "MaskPredictor": "climviz.inference.runner",
    "load_spec": "climviz.inference.runner",
    "tiled_logits": "climviz.inference.tiling",
    "padded_logits": "climviz.inference.tiling",
    "OutputError": "climviz.inference.writer",
    "OutputExistsError": "climviz.inference.writer",
}

__all__ = sorted(["predict", *_LAZY])


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
