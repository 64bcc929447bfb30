"""Climate-run data: open/validate/write runs, synthetic runs, normalization, PyTorch loading, fetching.

Public names (imported on first use, so ``import climviz.data`` stays light):

* :func:`open_run`, :func:`validate_run`, :func:`write_run`, :func:`read_step`, :func:`find_files`
  (``climviz.data.io``)
* :func:`canonicalize_units`, :func:`to_canonical`, :data:`CANONICAL_UNITS`, :data:`PLAUSIBLE_RANGES`,
  :data:`VORT850` (``climviz.data.units``: convert channels to canonical units or raise DataError)
* :func:`synthetic_run` (``climviz.data.synthetic``)
* :class:`Normalizer` (``climviz.data.normalize``)
* :class:`SegmentationDataset`, :func:`make_loader`, :func:`time_split` (``climviz.data.torchdata``)
* :func:`fetch_file`, :func:`fetch_files`, :func:`make_fetcher`, :func:`load_registry`,
  :data:`CLIMATENET_REGISTRY` (``climviz.data.fetch``)
"""

from __future__ import annotations

from climviz.data.schema import (
    AR,
    CHANNEL_ATTRS,
    CHANNELS,
    CLASS_KEYS,
    CLASSES,
    FLAG_MEANINGS,
    FLAG_VALUES,
    LABEL_VAR,
    NUM_CLASSES,
    PAPER_GRID,
    TC,
    label_attrs,
)
from climviz.utils.lazy import lazy_exports

_LAZY = {
    "open_run": "climviz.data.io",
    "validate_run": "climviz.data.io",
    "write_run": "climviz.data.io",
    "read_step": "climviz.data.io",
    "find_files": "climviz.data.io",
    "canonicalize_units": "climviz.data.units",
    "to_canonical": "climviz.data.units",
    "CANONICAL_UNITS": "climviz.data.units",
    "PLAUSIBLE_RANGES": "climviz.data.units",
    "VORT850": "climviz.data.units",
    "synthetic_run": "climviz.data.synthetic",
    "grid_coords": "climviz.data.synthetic",
    "Normalizer": "climviz.data.normalize",
    "SegmentationDataset": "climviz.data.torchdata",
    "make_loader": "climviz.data.torchdata",
    "time_split": "climviz.data.torchdata",
    "fetch_file": "climviz.data.fetch",
    "fetch_files": "climviz.data.fetch",
    "make_fetcher": "climviz.data.fetch",
    "load_registry": "climviz.data.fetch",
    "CLIMATENET_BASE_URL": "climviz.data.fetch",
    "CLIMATENET_REGISTRY": "climviz.data.fetch",
}

__all__ = [
    "AR", "CHANNEL_ATTRS", "CHANNELS", "CLASS_KEYS", "CLASSES", "FLAG_MEANINGS", "FLAG_VALUES",
    "LABEL_VAR", "NUM_CLASSES", "PAPER_GRID", "TC", "label_attrs", *_LAZY,
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
