"""Compiled inner loops of the events code, used when numba is installed (optional).

numba is not a dependency of climviz; it comes with the ``fast`` extra
(``pip install climviz[fast]``; the ``viz`` extra brings it too, for datashader).
Where it is importable, the hot spots run as compiled loops
(:mod:`climviz.events._numba_kernels`):

* labelling: one scan of the block for runs of one class along each row,
  joined with a union-find as they are found (previous row, 8- or
  4-connectivity, the 0/360 seam), numbered in order of each component's
  first run, then ids per step and the labels written in one more pass
  (every cell once); the same components and ids as the NumPy path (runs,
  ``searchsorted`` pairing, ``scipy.sparse.csgraph``), which stays the
  reference;
* the event table: the per-event sums over runs (cells, area, centroid sums,
  extremes) in one loop in ``np.bincount``'s order (bit-identical), and the
  principal axes' per-cell sums, which NumPy makes in ~40 passes over the event
  cells, fused into one loop (cosine and sine of the longitude difference from
  the addition formulas; theta / sin(theta) from its series near the centroid,
  from the half- and quarter-angle series farther out, atan2 only beyond 90
  degrees), so lengths and widths agree with the NumPy path to ~1e-12 relative;
* field statistics: min, max, sum and area-weighted sum of each field over
  each run, then each event, in one pass (NaN spreads as in NumPy).

``tests/events/test_dense.py`` checks both against the NumPy path. Blocks
with fewer than :data:`MIN_CELLS` cells take the NumPy path, so small inputs
never pay the compilation (a few seconds once; numba caches the machine code
on disk); ``CLIMVIZ_NO_NUMBA=1`` turns the compiled path off.
"""

from __future__ import annotations

import os
from typing import Any, Callable

#: Cells in one block (event cells for the table, grid cells for labelling) from which the
#: compiled path is used (when numba is importable).
MIN_CELLS = 20_000

_KERNELS: dict[str, Callable[..., Any]] | None = None


def _build() -> dict[str, Callable[..., Any]]:
    from climviz.events import _numba_kernels as nk

    return {"axes_moments": nk.axes_moments, "axes_km": nk.axes_km, "run_components": nk.run_components,
            "write_runs": nk.write_runs, "event_sums": nk.event_sums, "number_runs": nk.number_runs,
            "run_keys": nk.run_keys, "field_stats": nk.field_stats, "label_runs": nk.label_runs}


def kernels(n_cells: int) -> dict[str, Callable[..., Any]] | None:
    """The compiled kernels for a block of ``n_cells`` cells, or None to use NumPy.

    None when the block is small (below :data:`MIN_CELLS`), when numba is
    not installed, or when ``CLIMVIZ_NO_NUMBA`` is set to a non-empty value
    other than ``0``.
    """
    global _KERNELS
    if n_cells < MIN_CELLS or os.environ.get("CLIMVIZ_NO_NUMBA", "0") not in ("", "0"):
        return None
    if _KERNELS is None:
        try:
            _KERNELS = _build()
        except ImportError:
            _KERNELS = {}
    return _KERNELS or None
