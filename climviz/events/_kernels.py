"""Compiled inner loops of the events code, used when numba is installed (optional).

numba is not a dependency of climviz; it comes with the ``viz`` extra
(datashader needs it). Where it is importable, per-cell sums that NumPy
would make in ~40 passes over the event cells are fused into one loop
(the same sums in the same order; the cosine and sine of the longitude
difference come from the addition formulas instead of per-cell
trigonometry, so results agree with the NumPy path to ~1e-15 relative,
see ``tests/events/test_dense.py``). Small inputs
always take the NumPy path, so a short session never pays the compilation
(about a second, cached on disk afterwards); ``CLIMVIZ_NO_NUMBA=1`` turns
the compiled path off.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

#: Event cells in one block from which the compiled path is used (when numba is importable).
MIN_CELLS = 20_000

_KERNELS: dict[str, Callable[..., Any]] | None = None


def _build() -> dict[str, Callable[..., Any]]:
    import math

    import numba

    @numba.njit(cache=True, nogil=True)
    def axes_moments(row, c0, length, key, sphi, cphi, rowa,  # pragma: no cover
                     slat_e, clat_e, clon_e, lonr, colw, nk):
        out = np.zeros((5, nk))
        cos_lon = np.cos(lonr)
        sin_lon = np.sin(lonr)
        cos_c = np.cos(clon_e)
        sin_c = np.sin(clon_e)
        for i in range(row.size):
            k = key[i]
            cp = cphi[i]
            a = clat_e[k] * sphi[i]
            b = slat_e[k] * cp
            c = slat_e[k] * sphi[i]
            d = clat_e[k] * cp
            ra = rowa[i]
            cc = cos_c[k]
            sc = sin_c[k]
            for col in range(c0[i], c0[i] + length[i]):
                # cos and sin of (lon - centroid lon) by the addition formulas: no trigonometry per cell
                cdl = cos_lon[col] * cc + sin_lon[col] * sc
                u = (sin_lon[col] * cc - cos_lon[col] * sc) * cp
                v = a - cdl * b
                dot = cdl * d + c
                sin_d = math.sqrt(u * u + v * v)
                scale = math.atan2(sin_d, dot) / sin_d if sin_d > 0 else 1.0
                x = u * scale
                y = v * scale
                w = colw[col] * ra
                wx = w * x
                wy = w * y
                out[0, k] += wx
                out[1, k] += wy
                out[2, k] += wx * x
                out[3, k] += wy * y
                out[4, k] += wx * y
        return out

    return {"axes_moments": axes_moments}


def kernels(n_cells: int) -> dict[str, Callable[..., Any]] | None:
    """The compiled kernels for a block of ``n_cells`` event cells, or None to use NumPy.

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
