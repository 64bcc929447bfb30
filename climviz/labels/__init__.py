"""Heuristic detectors: label tropical cyclones and atmospheric rivers in runs that have no labels.

* :func:`detect_tc_nodes` / :func:`detect_tc` (:mod:`climviz.labels.tc`): TC
  nodes as TempestExtremes' DetectNodes finds them (PSL minima merged on the
  sphere, :class:`ClosedContour` and :class:`Threshold` criteria on field
  expressions: PSL rise, warm core, cyclonic vorticity, wind; latitude bounds),
  StitchNodes-style tracks and a mask; :data:`COARSE_GRID` for 2° grids.
* :func:`detect_ar` (:mod:`climviz.labels.ar`): ARTMIP-style AR detection
  (IVT threshold, long and narrow regions on the sphere, poleward transport).
* :func:`label_run` (:mod:`climviz.labels.run`): both, as the same CF mask
  dataset that :func:`climviz.predict` returns.

Submodules are imported on first use.
"""

from __future__ import annotations

from climviz.utils.lazy import lazy_exports

_LAZY = {
    "TCConfig": "climviz.labels.tc",
    "TCResult": "climviz.labels.tc",
    "ClosedContour": "climviz.labels.tc",
    "Threshold": "climviz.labels.tc",
    "COARSE_GRID": "climviz.labels.tc",
    "detect_tc": "climviz.labels.tc",
    "tc_from_nodes": "climviz.labels.tc",
    "detect_tc_nodes": "climviz.labels.tc",
    "stitch_nodes": "climviz.labels.tc",
    "tc_mask": "climviz.labels.tc",
    "ARConfig": "climviz.labels.ar",
    "ARResult": "climviz.labels.ar",
    "detect_ar": "climviz.labels.ar",
    "integrated_vapour_transport": "climviz.labels.ar",
    "region_geometry": "climviz.labels.ar",
    "label_run": "climviz.labels.run",
    "LabelResult": "climviz.labels.run",
    "relative_vorticity": "climviz.labels._grid",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
