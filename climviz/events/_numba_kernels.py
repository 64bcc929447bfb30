"""numba kernels of :mod:`climviz.events._kernels` (imported only when numba is installed and used).

Module-level functions, so that numba caches the compiled code on disk
(``cache=True``) and a new process loads it instead of compiling again.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def axes_moments(row, c0, length, key, sphi, cphi, rowa,
                 slat_e, clat_e, clon_e, lonr, colw, nk):
    """Sums of w x, w y, w x², w y², w x y per event key (x, y: azimuthal equidistant, radians).

    One entry per run: its row, first column, length, key, the row's sin/cos
    of latitude and area factor; per key the centroid's sin/cos of latitude
    and its longitude (radians); per column longitude (radians) and width.
    """
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
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        for col in range(c0[i], c0[i] + length[i]):
            # cos and sin of (lon - centroid lon) by the addition formulas: no trigonometry per cell
            cdl = cos_lon[col] * cc + sin_lon[col] * sc
            u = (sin_lon[col] * cc - cos_lon[col] * sc) * cp
            v = a - cdl * b
            dot = cdl * d + c
            q2 = u * u + v * v
            if dot > 0 and q2 < 0.015625:
                # theta / sin(theta) = asin(q) / q, q = sin(theta) < 1/8: its series to q^14
                # (the next term is below 1e-16 there), avoiding atan2 and a division
                scale = 1.0 + q2 * (1.0 / 6.0 + q2 * (3.0 / 40.0 + q2 * (5.0 / 112.0 + q2 * (
                    35.0 / 1152.0 + q2 * (63.0 / 2816.0 + q2 * (231.0 / 13312.0 + q2 * (143.0 / 10240.0)))))))
            else:
                sin_d = math.sqrt(q2)
                scale = math.atan2(sin_d, dot) / sin_d if sin_d > 0 else 1.0
            x = u * scale
            y = v * scale
            w = colw[col] * ra
            wx = w * x
            wy = w * y
            s0 += wx
            s1 += wy
            s2 += wx * x
            s3 += wy * y
            s4 += wx * y
        # one update per run (sums of the run's cells first)
        out[0, k] += s0
        out[1, k] += s1
        out[2, k] += s2
        out[3, k] += s3
        out[4, k] += s4
    return out

@numba.njit(cache=True, nogil=True)
def _find(parent, a):
    """Root of ``a`` (with path compression)."""
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:  # path compression
        nxt = parent[a]
        parent[a] = root
        a = nxt
    return root

@numba.njit(cache=True, nogil=True)
def _union(parent, a, b):
    """Join the sets of ``a`` and ``b``; the smaller index becomes the root."""
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb

@numba.njit(cache=True, nogil=True)
def run_components(mask, words, periodic, diag):
    """Runs of equal non-zero class along rows of a (T, H, W) uint8 block and their components.

    Returns (start, length, cls, comp, ncomp): flat start index, length and
    class of each run in raster order, and its component (numbered 0.. in
    order of the component's first run).
    """
    T, H, W = mask.shape
    cap = T * H * W + 1  # at most one run per cell (classes alternating); pages untouched stay free
    start = np.empty(cap, np.int64)
    length = np.empty(cap, np.int64)
    cls = np.empty(cap, np.uint8)
    parent = np.empty(cap, np.int64)
    n = 0
    for t in range(T):
        p0 = -1  # first run of the previous row (-1: none yet in this step)
        p1 = -1  # one past its last run
        for r in range(H):
            r0 = n
            base = (t * H + r) * W
            c = 0
            while c < W:
                k = mask[t, r, c]
                if k == 0:
                    # skip background 8 cells at a time where the flat index is word-aligned
                    f = base + c + 1
                    c += 1
                    while c < W and f % 8 != 0 and mask[t, r, c] == 0:
                        c += 1
                        f += 1
                    while c + 8 <= W and f % 8 == 0 and f // 8 < words.size and words[f // 8] == 0:
                        c += 8
                        f += 8
                    continue
                a = c
                while c < W and mask[t, r, c] == k:
                    c += 1
                start[n] = base + a
                length[n] = c - a
                cls[n] = k
                parent[n] = n
                n += 1
            # runs of the previous row that touch: column ranges overlap, or meet diagonally
            if p0 >= 0:
                q0 = p0
                for j in range(r0, n):
                    a = start[j] - base
                    b = a + length[j]  # exclusive
                    lo = a - diag
                    hi = b - 1 + diag
                    pbase = base - W
                    while q0 < p1 and start[q0] - pbase + length[q0] - 1 < lo:
                        q0 += 1
                    q = q0
                    while q < p1 and start[q] - pbase <= hi:
                        if cls[q] == cls[j]:
                            _union(parent, j, q)
                        q += 1
            # the 0/360 seam: the last run of a row (ending in the last column) touches
            # the first run of the same row and, diagonally, of the previous row (and vice versa)
            if periodic and W > 1 and n > r0:
                first, last = r0, n - 1
                f_at0 = start[first] == base
                l_atw = start[last] + length[last] == base + W
                if f_at0 and l_atw and cls[first] == cls[last]:
                    _union(parent, first, last)
                if diag and p0 >= 0 and p1 > p0:
                    pbase = base - W
                    pf, pl = p0, p1 - 1
                    if l_atw and start[pf] == pbase and cls[pf] == cls[last]:
                        _union(parent, last, pf)
                    if f_at0 and start[pl] + length[pl] == pbase + W and cls[pl] == cls[first]:
                        _union(parent, first, pl)
            p0, p1 = r0, n
    comp = np.empty(n, np.int64)
    ncomp = 0
    for j in range(n):
        root = _find(parent, j)
        if root == j:
            comp[j] = ncomp
            ncomp += 1
        else:
            comp[j] = comp[root]  # root < j: numbered already
    return start[:n].copy(), length[:n].copy(), cls[:n].copy(), comp, ncomp

@numba.njit(cache=True, nogil=True)
def write_runs(out, start, length, ids):
    """``out[start[i]:start[i] + length[i]] = ids[i]`` for every run (flat ``out``)."""
    for i in range(start.size):
        v = ids[i]
        for j in range(start[i], start[i] + length[i]):
            out[j] = v


@numba.njit(cache=True, nogil=True)
def group_min_max(key, values, nk, low, high):
    """Per-key minimum and maximum of ``values`` (``high`` / ``low`` where a key has none)."""
    vmin = np.full(nk, high, dtype=values.dtype)
    vmax = np.full(nk, low, dtype=values.dtype)
    for i in range(key.size):
        k = key[i]
        v = values[i]
        if v < vmin[k]:
            vmin[k] = v
        if v > vmax[k]:
            vmax[k] = v
    return vmin, vmax


@numba.njit(cache=True, nogil=True)
def run_sums(key, row, c0, length, rows_area, lat, cos_lat, sin_lat, cw, cs, cc, nk):
    """Per-event sums over runs for the event table, in run order (as ``np.bincount`` adds them).

    Returns an (8, nk) array: cells, area, area x latitude, the two sums of
    the circular longitude mean, and the three components of the area-weighted
    3-D unit vector.
    """
    out = np.zeros((8, nk))
    for i in range(key.size):
        k = key[i]
        r = row[i]
        a = c0[i]
        b = a + length[i]
        rowa = rows_area[r]
        run_area = rowa * (cw[b] - cw[a])
        dc = cc[b] - cc[a]
        ds = cs[b] - cs[a]
        out[0, k] += length[i]
        out[1, k] += run_area
        out[2, k] += run_area * lat[r]
        out[3, k] += rowa * ds
        out[4, k] += rowa * dc
        out[5, k] += rowa * cos_lat[r] * dc
        out[6, k] += rowa * cos_lat[r] * ds
        out[7, k] += run_area * sin_lat[r]
    return out
