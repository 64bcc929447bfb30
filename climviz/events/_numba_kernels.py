"""numba kernels of :mod:`climviz.events._kernels` (imported only when numba is installed and used).

Module-level functions, so that numba caches the compiled code on disk
(``cache=True``) and a new process loads it instead of compiling again.
"""

from __future__ import annotations

import math

import numba
import numpy as np


#: Coefficients of theta / sin(theta) = asin(q) / q = sum_k C[k] q^(2k), q = sin(theta).
_C1, _C2, _C3, _C4 = 1.0 / 6.0, 3.0 / 40.0, 5.0 / 112.0, 35.0 / 1152.0
_C5, _C6, _C7 = 63.0 / 2816.0, 231.0 / 13312.0, 143.0 / 10240.0
#: q² below which the series (to q^14) is used: q < 1/8, where the next term is below 1e-16.
_Q2_SERIES = 0.015625

@numba.njit(cache=True, nogil=True)
def _run_exact(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b, c, d):
    """Sums w x, w y, w x², w y², w x y over the cells of one run, theta / sin(theta) from atan2 where needed.

    For runs with a cell beyond the range of the series used by :func:`axes_moments`.
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for col in range(col0, col1):
        cdl = cos_lon[col] * cc + sin_lon[col] * sc
        u = (sin_lon[col] * cc - cos_lon[col] * sc) * cp
        v = a - cdl * b
        dot = cdl * d + c
        q2 = u * u + v * v
        if dot > 0 and q2 < _Q2_SERIES:
            q4 = q2 * q2
            q8 = q4 * q4
            scale = ((1.0 + _C1 * q2) + q4 * (_C2 + _C3 * q2)) + q8 * ((_C4 + _C5 * q2) + q4 * (_C6 + _C7 * q2))
        else:
            sin_d = math.sqrt(q2)
            scale = math.atan2(sin_d, dot) / sin_d if sin_d > 0 else 1.0
        x = u * scale
        y = v * scale
        w = colw[col]
        wx = w * x
        wy = w * y
        s0 += wx
        s1 += wy
        s2 += wx * x
        s3 += wy * y
        s4 += wx * y
    return s0, s1, s2, s3, s4


# fastmath: reassociation lets the per-cell work of a run overlap (and vectorize); the sums change
# by rounding only (~1e-14 relative); no value is NaN or infinite here (centroids are finite unit
# vectors, and the range checks are made outside the fast loop).
@numba.njit(cache=True, nogil=True, fastmath=True)
def _run_series(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b):
    """The sums of :func:`_run_exact` for a run within ~7.2 degrees of the centroid (tier 0 of :func:`_run_tier`)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for col in range(col0, col1):
        cl = cos_lon[col]
        sl = sin_lon[col]
        # cos and sin of (lon - centroid lon) by the addition formulas: no trigonometry per cell
        cdl = cl * cc + sl * sc
        u = (sl * cc - cl * sc) * cp
        v = a - cdl * b
        q2 = u * u + v * v
        q4 = q2 * q2
        q8 = q4 * q4  # Estrin's scheme: short dependency chains
        scale = ((1.0 + _C1 * q2) + q4 * (_C2 + _C3 * q2)) + q8 * ((_C4 + _C5 * q2) + q4 * (_C6 + _C7 * q2))
        x = u * scale
        y = v * scale
        w = colw[col]
        wx = w * x
        wy = w * y
        s0 += wx
        s1 += wy
        s2 += wx * x
        s3 += wy * y
        s4 += wx * y
    return s0, s1, s2, s3, s4


#: Tier 1 of :func:`_run_tier`: cells closer than 14.5 degrees (q² < 1/16); the series to q^24,
#: whose first omitted term is below 2e-18 there.
_Q2_LONG = 0.0625
_L8, _L9, _L10 = 6435 / 557056, 12155 / 1245184, 46189 / 5505024
_L11, _L12 = 88179 / 12058624, 676039 / 104857600


@numba.njit(cache=True, nogil=True, fastmath=True)
def _run_series_long(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b):
    """:func:`_run_series` with the series to q^24, for runs within ~14.5 degrees of the centroid."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for col in range(col0, col1):
        cl = cos_lon[col]
        sl = sin_lon[col]
        cdl = cl * cc + sl * sc
        u = (sl * cc - cl * sc) * cp
        v = a - cdl * b
        q2 = u * u + v * v
        q4 = q2 * q2
        q8 = q4 * q4
        q16 = q8 * q8
        scale = ((((1.0 + _C1 * q2) + q4 * (_C2 + _C3 * q2)) + q8 * ((_C4 + _C5 * q2) + q4 * (_C6 + _C7 * q2)))
                 + q16 * (((_L8 + _L9 * q2) + q4 * (_L10 + _L11 * q2)) + q8 * _L12))
        x = u * scale
        y = v * scale
        w = colw[col]
        wx = w * x
        wy = w * y
        s0 += wx
        s1 += wy
        s2 += wx * x
        s3 += wy * y
        s4 += wx * y
    return s0, s1, s2, s3, s4


#: asin(x) / x = sum_k _ASIN[k] x^(2k), k = 0..17: for x² <= sin²(22.5°) = 0.1464 the first
#: omitted term is below 4e-18.
_ASIN = np.array([1.0, 1 / 6, 3 / 40, 5 / 112, 35 / 1152, 63 / 2816, 231 / 13312, 143 / 10240,
                  6435 / 557056, 12155 / 1245184, 46189 / 5505024, 88179 / 12058624, 676039 / 104857600,
                  1300075 / 226492416, 5014575 / 973078528, 9694845 / 2080374784,
                  100180065 / 23622320128, 116680311 / 30064771072])


@numba.njit(cache=True, nogil=True, fastmath=True)
def _run_quarter(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b, c, d):
    """The sums of :func:`_run_exact` for a run whose cells all lie within 90 degrees of the centroid.

    theta = 4 asin(sin(theta / 4)), with sin²(theta / 4) = (1 - cos(theta / 2)) / 2 formed without
    cancellation (1 - cos theta = sin² theta / (1 + cos theta), the same for theta / 2), and
    asin(x) / x from its series (x <= sin(22.5°)): no atan2, and the loop vectorizes.
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for col in range(col0, col1):
        cl = cos_lon[col]
        sl = sin_lon[col]
        cdl = cl * cc + sl * sc
        u = (sl * cc - cl * sc) * cp
        v = a - cdl * b
        dot = cdl * d + c
        q2 = u * u + v * v
        cos_half = math.sqrt(0.5 * (1.0 + dot))
        x2 = 0.25 * (q2 / (1.0 + dot)) / (1.0 + cos_half)  # sin²(theta / 4)
        ser = _ASIN[17]
        for j in range(16, -1, -1):
            ser = ser * x2 + _ASIN[j]
        q = math.sqrt(q2)
        scale = 4.0 * math.sqrt(x2) * ser / q if q > 0.0 else 1.0
        x = u * scale
        y = v * scale
        w = colw[col]
        wx = w * x
        wy = w * y
        s0 += wx
        s1 += wy
        s2 += wx * x
        s3 += wy * y
        s4 += wx * y
    return s0, s1, s2, s3, s4


#: Tier 2 of :func:`_run_tier`: cells closer than 30 degrees to the centroid (sin² theta < 1/4).
_Q2_HALF = 0.25
_H = [1.0, 1 / 6, 3 / 40, 5 / 112, 35 / 1152, 63 / 2816, 231 / 13312, 143 / 10240, 6435 / 557056,
      12155 / 1245184, 46189 / 5505024, 88179 / 12058624]
_H0, _H1, _H2, _H3, _H4, _H5, _H6, _H7, _H8, _H9, _H10, _H11 = _H


@numba.njit(cache=True, nogil=True, fastmath=True)
def _run_half(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b, c, d):
    """The sums of :func:`_run_exact` for a run whose cells all lie within 30 degrees of the centroid.

    theta = 2 asin(x), x = sin(theta / 2), x² = sin² theta / (2 (1 + cos theta)) (no
    cancellation), and theta / sin theta = (asin(x) / x) / cos(theta / 2) with asin(x) / x from
    its series to x^22 (x <= sin 15°: the first omitted term is below 1e-16): no atan2, and
    the loop vectorizes.
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    for col in range(col0, col1):
        cl = cos_lon[col]
        sl = sin_lon[col]
        cdl = cl * cc + sl * sc
        u = (sl * cc - cl * sc) * cp
        v = a - cdl * b
        opd = 1.0 + cdl * d + c  # 1 + cos theta
        x2 = 0.5 * (u * u + v * v) / opd
        x4 = x2 * x2
        x8 = x4 * x4
        ser = (((_H0 + _H1 * x2) + x4 * (_H2 + _H3 * x2)) + x8 * ((_H4 + _H5 * x2) + x4 * (_H6 + _H7 * x2))
               + x8 * x8 * ((_H8 + _H9 * x2) + x4 * (_H10 + _H11 * x2)))
        scale = ser / math.sqrt(0.5 * opd)
        x = u * scale
        y = v * scale
        w = colw[col]
        wx = w * x
        wy = w * y
        s0 += wx
        s1 += wy
        s2 += wx * x
        s3 += wy * y
        s4 += wx * y
    return s0, s1, s2, s3, s4


@numba.njit(cache=True, nogil=True)
def _run_tier(col0, col1, lonr, cos_lon, sin_lon, cc, sc, cp, a, b, c, d):
    """Which loop sums a run, by the largest distance theta of its cells to the centroid.

    0: :func:`_run_series` (theta < 7.2°), 1: :func:`_run_series_long` (< 14.5°), 2:
    :func:`_run_half` (< 30°), 3: :func:`_run_quarter` (< 90°), 4: :func:`_run_exact` (cell
    by cell with atan2, anything else).

    Along a row the distance theta to the centroid grows with |lon - centroid lon| up to 180
    degrees (cos theta = sin phi sin phi_c + cos phi cos phi_c cos dlon, d >= 0), so on a run
    that spans less than 90 degrees and whose two ends lie within 90 degrees of the centroid's
    meridian (never reaching the opposite one) theta is largest at an end: checking the two
    ends bounds theta on every cell.
    """
    last = col1 - 1
    if not lonr[last] - lonr[col0] < 0.5 * math.pi:
        return 4
    tier = 0
    for col in (col0, last):
        cdl = cos_lon[col] * cc + sin_lon[col] * sc
        u = (sin_lon[col] * cc - cos_lon[col] * sc) * cp
        v = a - cdl * b
        dot = cdl * d + c
        if not (cdl > 0.0 and dot > 0.0):
            return 4
        q2 = u * u + v * v
        if not q2 < _Q2_SERIES:
            tier = max(tier, 1 if q2 < _Q2_LONG else 2 if q2 < _Q2_HALF else 3)
    return tier


@numba.njit(cache=True, nogil=True)
def axes_moments(row, c0, length, key, sin_lat, cos_lat, rows_area,
                 slat_e, clat_e, cos_c, sin_c, lonr, cos_lon, sin_lon, colw, nk):
    """Sums of w x, w y, w x², w y², w x y per event key (x, y: azimuthal equidistant, radians), shape (nk, 5).

    One entry per run: its row, first column, length and key; per row the sin/cos
    of latitude and the area factor; per key the sin/cos of the centroid's latitude
    and longitude; per column the longitude (radians, increasing), its cos/sin and the width.
    theta / sin(theta) comes from its series (q = sin(theta): to q^14 for runs
    within ~7.2 degrees of the centroid, to q^24 within ~14.5 degrees; the
    first omitted term is below 1e-16), from the half- and quarter-angle
    series within 30 and 90 degrees (:func:`_run_half`, :func:`_run_quarter`),
    else cell by cell (:func:`_run_exact`, atan2); :func:`_run_tier` decides
    from the ends of the run. Each
    run's cells are summed first, then multiplied by the row's area factor
    and added to its event.
    """
    out = np.zeros((nk, 5))  # one event's sums side by side (one cache line per update)
    for i in range(row.size):
        k = key[i]
        r = row[i]
        cp = cos_lat[r]
        sp = sin_lat[r]
        a = clat_e[k] * sp
        b = slat_e[k] * cp
        c = slat_e[k] * sp
        d = clat_e[k] * cp  # >= 0
        cc = cos_c[k]
        sc = sin_c[k]
        col0 = c0[i]
        col1 = col0 + length[i]
        tier = _run_tier(col0, col1, lonr, cos_lon, sin_lon, cc, sc, cp, a, b, c, d)
        if tier == 0:
            s0, s1, s2, s3, s4 = _run_series(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b)
        elif tier == 1:
            s0, s1, s2, s3, s4 = _run_series_long(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b)
        elif tier == 2:
            s0, s1, s2, s3, s4 = _run_half(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b, c, d)
        elif tier == 3:
            s0, s1, s2, s3, s4 = _run_quarter(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b, c, d)
        else:
            s0, s1, s2, s3, s4 = _run_exact(col0, col1, cos_lon, sin_lon, colw, cc, sc, cp, a, b, c, d)
        ra = rows_area[r]
        out[k, 0] += s0 * ra
        out[k, 1] += s1 * ra
        out[k, 2] += s2 * ra
        out[k, 3] += s3 * ra
        out[k, 4] += s4 * ra
    return out


@numba.njit(cache=True, nogil=True)
def axes_km(row, c0, length, key, sin_lat, cos_lat, rows_area, vec, area, ex, ey, present, lonr, cos_lon, sin_lon,
            colw, radius_km):
    """Length and width (km) of the events ``present``: :func:`axes_moments` and the principal axes.

    ``vec`` (nk, 3): per key the area-weighted sum of the cells' 3-D unit vectors
    (its direction is the centroid; (0, 0, 1) where it vanishes); ``area``,
    ``ex``, ``ey``: per key the area and the sums of the cells' own extents
    (area x (cos lat x width)², area x height², radians²). The covariance
    of the azimuthal equidistant positions plus the cells' extents / 12, times
    R², has eigenvalues l1 >= l2; length = sqrt(12 l1), width = sqrt(12 l2).
    """
    nk = vec.shape[0]
    slat_e = np.empty(nk)
    clat_e = np.empty(nk)
    cos_c = np.empty(nk)
    sin_c = np.empty(nk)
    for k in range(nk):  # the centroid's direction: sin/cos of its latitude and longitude, no trigonometry
        x = vec[k, 0]
        y = vec[k, 1]
        z = vec[k, 2]
        norm = math.sqrt(x * x + y * y + z * z)
        if not (norm > 0.0 and norm < math.inf):
            x, y, z, norm = 0.0, 0.0, 1.0, 1.0
        rho = math.sqrt(x * x + y * y)
        slat_e[k] = z / norm
        clat_e[k] = rho / norm
        cos_c[k] = x / rho if rho > 0.0 else 1.0
        sin_c[k] = y / rho if rho > 0.0 else 0.0
    mom = axes_moments(row, c0, length, key, sin_lat, cos_lat, rows_area, slat_e, clat_e, cos_c, sin_c, lonr,
                       cos_lon, sin_lon, colw, nk)
    R2 = radius_km * radius_km
    n = present.size
    out_l = np.empty(n)
    out_w = np.empty(n)
    for j in range(n):
        k = present[j]
        sw = area[k]
        mx = mom[k, 0] / sw
        my = mom[k, 1] / sw
        cxx = R2 * (mom[k, 2] / sw + ex[k] / sw / 12.0 - mx * mx)
        cyy = R2 * (mom[k, 3] / sw + ey[k] / sw / 12.0 - my * my)
        cxy = R2 * (mom[k, 4] / sw - mx * my)
        half = 0.5 * (cxx + cyy)
        disc = math.sqrt(max(0.25 * (cxx - cyy) ** 2 + cxy * cxy, 0.0))
        out_l[j] = math.sqrt(12.0 * max(half + disc, 0.0))
        out_w[j] = math.sqrt(12.0 * max(half - disc, 0.0))
    return out_l, out_w


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
def run_components(mask, periodic, diag, cap):
    """Runs of equal non-zero class along rows of a (T, H, W) uint8 block and their components.

    Returns (start, length, cls, comp, ncomp): flat start index, length and
    class of each run in raster order, and its component (numbered 0.. in
    order of the component's first run). ``cap`` bounds the number of runs
    (``T * H * W`` always suffices); with more runs than that, ncomp is -1 and
    the caller calls again with a larger ``cap``.
    """
    T, H, W = mask.shape
    start = np.empty(cap, np.int64)
    length = np.empty(cap, np.int64)
    cls = np.empty(cap, np.uint8)
    parent = np.empty(cap, np.int64)
    n = 0
    flat = mask.reshape(-1)
    seg_start = np.empty(W + 2, np.int64)  # segments (of any class, 0 included) of one row
    seg_cls = np.empty(W + 2, np.uint8)
    for t in range(T):
        p0 = -1  # first run of the previous row (-1: none yet in this step)
        p1 = -1  # one past its last run
        for r in range(H):
            r0 = n
            base = (t * H + r) * W
            if n + W > cap:  # room for a row of one-cell runs
                return start[:0].copy(), length[:0].copy(), cls[:0].copy(), parent[:0].copy(), -1
            # segments of equal class, recorded without branches: every cell writes its index to
            # the next free slot, which is kept (m += 1) only where the class changes
            m = 0
            prev = -1
            for f in range(base, base + W):
                k = flat[f]
                seg_start[m] = f
                seg_cls[m] = k
                m += k != prev
                prev = k
            seg_start[m] = base + W
            for i in range(m):
                q = seg_cls[i]
                if q != 0:
                    start[n] = seg_start[i]
                    length[n] = seg_start[i + 1] - seg_start[i]
                    cls[n] = q
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
def event_sums(key, row, c0, length, cls, rows_area, lat, cos_lat, sin_lat, cw, cs, cc, cw3, dphi2, nk, H):
    """Per-event sums and extremes over runs for the event table, in run order (as ``np.bincount`` adds them).

    Returns a (10, nk) float array: cells, area, area x latitude, the two sums
    of the circular longitude mean, the three components of the area-weighted
    3-D unit vector, and the sums of the cells' own extents along longitude
    (area x cos² lat x width², via ``cw3``) and latitude (area x height²); and
    a (4, nk) int64 array: smallest and largest class, first and last row
    (``H`` / 0 and ``H`` / -1 where a key has no run).
    """
    out = np.zeros((nk, 10))  # one event's sums side by side
    ext = np.empty((nk, 4), np.int64)
    for k in range(nk):
        ext[k, 0] = 32767
        ext[k, 1] = 0
        ext[k, 2] = H
        ext[k, 3] = -1
    for i in range(key.size):
        k = key[i]
        r = row[i]
        a = c0[i]
        b = a + length[i]
        rowa = rows_area[r]
        run_area = rowa * (cw[b] - cw[a])
        dc = cc[b] - cc[a]
        ds = cs[b] - cs[a]
        out[k, 0] += length[i]
        out[k, 1] += run_area
        out[k, 2] += run_area * lat[r]
        out[k, 3] += rowa * ds
        out[k, 4] += rowa * dc
        out[k, 5] += rowa * cos_lat[r] * dc
        out[k, 6] += rowa * cos_lat[r] * ds
        out[k, 7] += run_area * sin_lat[r]
        out[k, 8] += rowa * cos_lat[r] * cos_lat[r] * (cw3[b] - cw3[a])
        out[k, 9] += run_area * dphi2[r]
        q = np.int64(cls[i])
        if q < ext[k, 0]:
            ext[k, 0] = q
        if q > ext[k, 1]:
            ext[k, 1] = q
        if r < ext[k, 2]:
            ext[k, 2] = r
        if r > ext[k, 3]:
            ext[k, 3] = r
    return out.T, ext.T


@numba.njit(cache=True, nogil=True)
def number_runs(start, length, comp, ncomp, T, HW, out, write):
    """Event ids 1..n per time step for components numbered in raster order; labels written if ``write``.

    Components are numbered in order of their first run, so those of one step
    are consecutive: id = component - (first component of the step) + 1.
    With ``write`` the ids are written into the cells of the runs in the flat,
    zeroed ``out`` (a fresh ``np.zeros`` costs less than writing the background).
    Returns (ids int32, events per step).
    """
    first = np.full(T + 1, -1, np.int64)  # first component of each step (its first run's)
    first[T] = ncomp
    t = 0
    for j in range(start.size):  # runs in raster order: walk the steps (no division)
        while start[j] >= (t + 1) * HW:
            t += 1
        if first[t] < 0:
            first[t] = comp[j]
    for t in range(T - 1, -1, -1):  # steps without runs start where the next step starts
        if first[t] < 0:
            first[t] = first[t + 1]
    per_step = np.empty(T, np.int64)
    for t in range(T):
        per_step[t] = first[t + 1] - first[t]
    ids = np.empty(start.size, np.int32)
    t = 0
    for j in range(start.size):
        while start[j] >= (t + 1) * HW:
            t += 1
        v = comp[j] - first[t] + 1
        ids[j] = v
        if write:
            for f in range(start[j], start[j] + length[j]):
                out[f] = v
    return ids, per_step


@numba.njit(cache=True, nogil=True)
def run_keys(start, ids, T, H, W):
    """Per run: event key (step * K + id), row and first column; and K (largest id + 1)."""
    n = start.size
    K = 1
    for j in range(n):
        if ids[j] + 1 > K:
            K = ids[j] + 1
    key = np.empty(n, np.int64)
    row = np.empty(n, np.int64)
    c0 = np.empty(n, np.int64)
    rg = 0  # global row (step * H + row) of run j, walked forward while the runs are in raster order
    t = 0
    r = 0
    for j in range(n):
        if start[j] < rg * W:  # not in raster order: start again from this run
            rg = start[j] // W
            t = rg // H
            r = rg - t * H
        while start[j] >= (rg + 1) * W:
            rg += 1
            r += 1
            if r == H:
                r = 0
                t += 1
        key[j] = t * K + ids[j]
        row[j] = r
        c0[j] = start[j] - rg * W
    return key, row, c0, K


@numba.njit(cache=True, nogil=True)
def field_stats(start, length, key, row, c0, values, colw, rows_area, nk):
    """Per event key: minimum, maximum, sum and area-weighted sum of ``values`` over its runs' cells.

    ``values``: the flat field of the block (any real dtype, read as float64).
    Returns a (4, nk) array in the order and with the NaN rules of the NumPy
    path: a NaN cell makes its event's minimum, maximum and sums NaN; each
    run is reduced first (the weighted sum is sum(value x width) x the row's
    area factor), then the runs are combined into their event in run order.
    """
    out = np.empty((nk, 4))
    for k in range(nk):
        out[k, 0] = np.inf
        out[k, 1] = -np.inf
        out[k, 2] = 0.0
        out[k, 3] = 0.0
    for i in range(start.size):
        k = key[i]
        s = start[i]
        c = c0[i] - s  # column of flat index f: f + c
        lo = np.inf
        hi = -np.inf
        total = 0.0
        wsum = 0.0
        nan = False
        for f in range(s, s + length[i]):
            v = np.float64(values[f])
            nan |= v != v
            lo = v if v < lo else lo  # selects, not branches
            hi = v if v > hi else hi
            total += v
            wsum += v * colw[f + c]
        if nan:
            lo = np.nan
            hi = np.nan
        mn = out[k, 0]
        if mn == mn:  # NaN stays NaN
            out[k, 0] = lo if (lo != lo or lo < mn) else mn
        mx = out[k, 1]
        if mx == mx:
            out[k, 1] = hi if (hi != hi or hi > mx) else mx
        out[k, 2] += total
        out[k, 3] += wsum * rows_area[row[i]]
    return out.T


@numba.njit(cache=True, nogil=True)
def label_runs(lab, cls, W, cap):
    """Runs of equal (label, class) along the rows of flat labels and mask; background runs dropped.

    Returns (start, length, ids, classes) in raster order (ids in the labels'
    dtype), or ``n = -1`` as a fifth value when there are more than ``cap``
    runs (the caller calls again with a larger ``cap``). Each row's changes
    are recorded without a branch per cell, as in :func:`run_components`.
    """
    n_cells = lab.size
    start = np.empty(cap, np.int64)
    length = np.empty(cap, np.int64)
    ids = np.empty(cap, lab.dtype)
    classes = np.empty(cap, cls.dtype)
    seg = np.empty(W + 1, np.int64)
    n = 0
    for base in range(0, n_cells, W):
        m = 0
        pl = -1
        pc = -1
        for f in range(base, base + W):
            lv = lab[f]
            cv = cls[f]
            seg[m] = f
            m += (lv != pl) | (cv != pc)
            pl = lv
            pc = cv
        seg[m] = base + W
        if n + m > cap:
            return start[:0].copy(), length[:0].copy(), ids[:0].copy(), classes[:0].copy(), -1
        for i in range(m):
            f = seg[i]
            if lab[f] != 0:
                start[n] = f
                length[n] = seg[i + 1] - f
                ids[n] = lab[f]
                classes[n] = cls[f]
                n += 1
    return start[:n].copy(), length[:n].copy(), ids[:n].copy(), classes[:n].copy(), n
