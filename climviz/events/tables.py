"""Event tables: one row per (time step, event) with size, position and field statistics.

Sizes, areas and centroids are computed from *runs* (stretches of one event
along a grid row) with cumulative sums along longitude and ``np.bincount``
over a per-(step, event) key, so they cost O(runs); field statistics reduce
each run (``ufunc.reduceat``) and then each event, O(event cells). Nothing
loops over cells, steps or events in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from climviz.errors import DataError
from climviz.events.geometry import EARTH_RADIUS_KM
from climviz.events._kernels import kernels
from climviz.events._source import MaskSource
from climviz.events.labelling import Geo, LabelOptions, Runs, _label_block, find_runs, mask_variable, resolve_periodic

__all__ = ["table", "label_table", "table_runs", "TABLE_COLUMNS", "STATS", "CENTROIDS"]

#: Columns every event table has, in this order (field statistics follow).
TABLE_COLUMNS: tuple[str, ...] = (
    "time", "step", "event", "class", "n_cells", "area_km2",
    "centroid_lat", "centroid_lon", "lat_min", "lat_max", "length_km", "width_km",
)

#: Centroid definitions (``centroid=`` of :func:`table`, :func:`label_table`, ``track_masks``).
CENTROIDS: dict[str, str] = {
    "circular": ("area-weighted mean latitude, and the area-weighted circular mean of longitude "
                 "(the default; each coordinate averaged on its own)"),
    "cartesian": ("direction of the area-weighted mean of the cells' 3-D unit vectors (the centre "
                  "of mass on the sphere, projected to the surface)"),
}

#: Statistics available for fields inside events.
STATS: dict[str, str] = {
    "min": "minimum over the event's cells",
    "max": "maximum over the event's cells",
    "mean": "area-weighted mean over the event's cells",
    "sum": "plain sum over the event's cells",
    "integral": "area integral: sum of value x cell area (value units x km2)",
}

class _Accumulator:
    """Collects per-block columns; one DataFrame is built at the end."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {}

    def add(self, cols: dict[str, np.ndarray]) -> None:
        for k, v in cols.items():
            self.cols.setdefault(k, []).append(v)


def _stat_spec(field_names: list[str], stats: Sequence[str] | Mapping[str, Sequence[str]]
               ) -> dict[str, tuple[str, ...]]:
    if isinstance(stats, Mapping):
        unknown = set(stats) - set(field_names)
        if unknown:
            raise DataError(f"stats: names {sorted(unknown)} are not among the fields {field_names}")
        spec = {}
        for n in field_names:
            v = stats.get(n, ("min", "max", "mean"))
            spec[n] = (v,) if isinstance(v, str) else tuple(v)
    else:
        seq = (stats,) if isinstance(stats, str) else tuple(stats)
        spec = {n: seq for n in field_names}
    for n, ss in spec.items():
        for s in ss:
            if s not in STATS:
                raise DataError(f"stats for field {n!r}: expected one of {sorted(STATS)}, found {s!r}")
    return spec


def _check_centroid(centroid: str) -> str:
    if centroid not in CENTROIDS:
        raise DataError(f"centroid: expected one of {sorted(CENTROIDS)}, found {centroid!r}")
    return centroid


@dataclass
class _RunKeys:
    """Where each run lies: its event key (``step * K + id``), row and columns ``[c0, c1)``."""

    key: np.ndarray
    row: np.ndarray
    c0: np.ndarray
    c1: np.ndarray
    K: int  # keys per step: largest id + 1
    nk: int  # number of keys


@dataclass
class _EventSums:
    """Per-key sums and extremes over runs (see :func:`_event_sums`); ``present``: keys with cells."""

    cnt: np.ndarray
    area: np.ndarray
    lat_c: np.ndarray
    s: np.ndarray
    c: np.ndarray
    vec: np.ndarray  # (nk, 3): area-weighted sums of the cells' 3-D unit vectors
    ex: np.ndarray  # sums of area x (cos(lat) x width)² (radians²)
    ey: np.ndarray  # sums of area x height² (radians²)
    klass: np.ndarray
    kmax: np.ndarray
    rmin: np.ndarray
    rmax: np.ndarray
    present: np.ndarray


def _run_keys(runs: Runs) -> _RunKeys:
    """Stage 1 of :func:`table_runs`: key, row and columns of every run."""
    T, H, W = runs.shape
    compiled = kernels(int(runs.start.size) * 8)
    if compiled is not None:  # one pass instead of a few NumPy ones
        key, row, c0, K = compiled["run_keys"](runs.start, runs.ids, T, H, W)
        return _RunKeys(key, row, c0, c0 + runs.length, int(K), T * int(K))
    ids = runs.ids.astype(np.int64)
    K = int(ids.max()) + 1
    if T > 1:
        t = runs.start // (H * W)
        pix = runs.start - t * (H * W)
        key = t * K + ids
    else:
        pix = runs.start
        key = ids
    row = pix // W
    c0 = pix - row * W
    return _RunKeys(key, row, c0, c0 + runs.length, K, T * K)


def _event_sums(runs: Runs, rk: _RunKeys, geo: Geo) -> _EventSums:
    """Stage 2 of :func:`table_runs`: per-event sums over runs (O(runs), prefix sums along longitude)."""
    key, row, c0, c1, nk = rk.key, rk.row, rk.c0, rk.c1, rk.nk
    H = runs.shape[1]
    compiled = kernels(int(runs.start.size) * 8)  # O(runs) loops: worth it from ~2.5k runs
    if compiled is not None:  # the same sums in the same order, in one loop over the runs
        sums, ext = compiled["event_sums"](key, row, c0, runs.length, runs.cls, geo.rows, geo.lat, geo.cos_lat,
                                           geo.sin_lat, geo.cw, geo.cs, geo.cc, geo.cw3, geo.dphi2, nk, H)
        cnt, area, lat_c, s, c, vx, vy, vz, ex, ey = np.ascontiguousarray(sums)
        klass, kmax = ext[0].astype(np.int16), ext[1].astype(np.int16)
        rmin, rmax = ext[2], ext[3]
    else:
        rowa = geo.rows[row]
        cnt = np.bincount(key, weights=runs.length, minlength=nk)
        run_area = rowa * (geo.cw[c1] - geo.cw[c0])
        area = np.bincount(key, weights=run_area, minlength=nk)
        lat_c = np.bincount(key, weights=run_area * geo.lat[row], minlength=nk)
        s = np.bincount(key, weights=rowa * (geo.cs[c1] - geo.cs[c0]), minlength=nk)
        c = np.bincount(key, weights=rowa * (geo.cc[c1] - geo.cc[c0]), minlength=nk)
        # 3-D centre of mass: sums of area x unit vector (cos lat cos lon, cos lat sin lon, sin lat)
        cos_r = geo.cos_lat[row]
        vx = np.bincount(key, weights=rowa * cos_r * (geo.cc[c1] - geo.cc[c0]), minlength=nk)
        vy = np.bincount(key, weights=rowa * cos_r * (geo.cs[c1] - geo.cs[c0]), minlength=nk)
        vz = np.bincount(key, weights=run_area * geo.sin_lat[row], minlength=nk)
        # each cell's own extent (width along local east, height along north), summed per run
        ex = np.bincount(key, weights=rowa * cos_r * cos_r * (geo.cw3[c1] - geo.cw3[c0]), minlength=nk)
        ey = np.bincount(key, weights=run_area * geo.dphi2[row], minlength=nk)
        cls16 = runs.cls.astype(np.int16)
        klass = np.full(nk, np.iinfo(np.int16).max, dtype=np.int16)
        np.minimum.at(klass, key, cls16)
        kmax = np.zeros(nk, dtype=np.int16)
        np.maximum.at(kmax, key, cls16)
        rmin = np.full(nk, H, dtype=np.int64)
        rmax = np.full(nk, -1, dtype=np.int64)
        np.minimum.at(rmin, key, row)
        np.maximum.at(rmax, key, row)
    return _EventSums(cnt, area, lat_c, s, c, np.stack([vx, vy, vz], axis=-1), ex, ey, klass, kmax, rmin, rmax,
                      np.flatnonzero(cnt))


def _check_one_class(es: _EventSums, K: int, step0: int) -> None:
    """Stage 3 of :func:`table_runs`: every event lies in one class of the mask."""
    mixed = np.flatnonzero((es.klass != es.kmax) & (es.cnt > 0))
    if mixed.size:
        k = int(mixed[0])
        raise DataError(f"labels: event {k % K} at step {k // K + step0} covers classes {es.klass[k]} and "
                        f"{es.kmax[k]} of the mask; expected labels made by climviz.events.label(mask)")


def _position_columns(es: _EventSums, K: int, step0: int, geo: Geo, centroid: str) -> dict[str, np.ndarray]:
    """Stage 4 of :func:`table_runs`: ids, class, size, area, centroid and latitude range per event."""
    present = es.present
    area_p = es.area[present]
    out: dict[str, np.ndarray] = {
        "step": (present // K + step0).astype(np.int64),
        "event": (present % K).astype(np.int32),
        "class": es.klass[present],
        "n_cells": es.cnt[present].astype(np.int64),
        "area_km2": area_p,
    }
    if centroid == "cartesian":
        vec = es.vec[present]
        norm = np.linalg.norm(vec, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cv_p = vec / norm[:, None]
        degenerate = norm <= 1e-9 * area_p
        out["centroid_lat"] = np.where(degenerate, np.nan, np.rad2deg(np.arcsin(np.clip(cv_p[:, 2], -1, 1))))
        lon3 = np.mod(np.rad2deg(np.arctan2(cv_p[:, 1], cv_p[:, 0])), 360.0)
        lon3[degenerate | (np.hypot(cv_p[:, 0], cv_p[:, 1]) <= 1e-12)] = np.nan
        out["centroid_lon"] = np.where(lon3 >= 360.0, 0.0, lon3)
    else:
        sp, cp = es.s[present], es.c[present]
        lon_c = np.mod(np.rad2deg(np.arctan2(sp, cp)), 360.0)
        lon_c[np.hypot(sp, cp) <= 1e-9 * area_p] = np.nan  # a ring around the globe has no mean longitude
        out["centroid_lat"] = es.lat_c[present] / area_p
        out["centroid_lon"] = np.where(lon_c >= 360.0, 0.0, lon_c)
    lat_a = geo.lat[es.rmin[present]]
    lat_b = geo.lat[es.rmax[present]]
    out["lat_min"] = np.minimum(lat_a, lat_b)
    out["lat_max"] = np.maximum(lat_a, lat_b)
    return out


def _axes_sums(runs: Runs, rk: _RunKeys, present: np.ndarray, sw: np.ndarray, clat: np.ndarray,
               clon: np.ndarray, geo: Geo) -> tuple[np.ndarray, ...]:
    """Area-weighted means of x, y, x², y², xy per event (x, y: azimuthal equidistant, radians), NumPy path."""
    length, key, c0, nk = runs.length, rk.key, rk.c0, rk.nk
    total = int(length.sum())
    sphi, cphi = geo.sin_lat[rk.row], geo.cos_lat[rk.row]  # per run
    offsets = np.cumsum(length) - length
    cols = np.repeat(c0 - offsets, length)
    cols += np.arange(total)
    k = np.repeat(key, length)
    slat_k, clat_k = np.sin(clat)[key], np.cos(clat)[key]  # per run
    # per-cell great-circle geometry relative to the event's 3-D centroid
    dl = geo.lon_rad[cols]
    dl -= clon[k]
    cdl = np.cos(dl)
    u = np.sin(dl)
    u *= np.repeat(cphi, length)
    v = cdl * np.repeat(slat_k * cphi, length)
    np.subtract(np.repeat(clat_k * sphi, length), v, out=v)
    dot = cdl
    dot *= np.repeat(clat_k * cphi, length)
    dot += np.repeat(slat_k * sphi, length)
    sin_d = np.hypot(u, v)
    theta = np.arctan2(sin_d, dot)
    scale = np.ones(total)
    np.divide(theta, sin_d, out=scale, where=sin_d > 0)  # theta / sin(theta); 1 at the centroid (u = v = 0 there)
    w = geo.cols[cols]
    w *= np.repeat(geo.rows[rk.row], length)
    x = u
    x *= scale
    y = v
    y *= scale  # x, y in radians (km / R)
    wx = w * x
    wy = w * y

    def m(a: np.ndarray) -> np.ndarray:
        return np.bincount(k, weights=a, minlength=nk)[present] / sw

    return m(wx), m(wy), m(wx * x), m(wy * y), m(wx * y)


def _axes_km(runs: Runs, rk: _RunKeys, es: _EventSums, geo: Geo) -> tuple[np.ndarray, np.ndarray]:
    """Stage 5 of :func:`table_runs`: length and width (km) of each event, the principal axes of its second moments.

    Each cell centre is mapped to the azimuthal equidistant plane centred on the
    event's 3-D centroid (distance from the centroid along the great
    circle, true bearing), and the 2 x 2 covariance of those positions is
    formed with cell areas as weights, adding each cell's own extent
    (``dx²/12``, ``dy²/12`` along the local east and north). Its eigenvalues l1 >= l2 give
    ``length = sqrt(12 l1)`` and ``width = sqrt(12 l2)``: the sides of the
    rectangle with the same second moments (a uniform rectangle of sides a, b
    has variances a²/12, b²/12). Cost O(event cells): a few products per cell
    (compiled) or one cosine, sine, hypot and arctan2 per cell (NumPy); the
    cells' own extents and the total weights are sums over runs (prefix sums
    along longitude, O(runs), from :func:`_event_sums`), and the sphere radius
    is applied to the moments, not the cells.
    """
    present = es.present
    compiled = kernels(int(runs.length.sum()))
    if compiled is not None:  # one fused loop over the cells and the events (numba), the same sums
        return compiled["axes_km"](rk.row, rk.c0, runs.length, rk.key, geo.sin_lat, geo.cos_lat, geo.rows, es.vec,
                                   es.area, es.ex, es.ey, present, geo.lon_rad, geo.cos_lon, geo.sin_lon, geo.cols,
                                   geo.radius_km)
    with np.errstate(invalid="ignore", divide="ignore"):
        cvec = es.vec / np.linalg.norm(es.vec, axis=-1)[:, None]
    cvec = np.where(np.isfinite(cvec), cvec, np.array([0.0, 0.0, 1.0]))
    clat = np.arcsin(np.clip(cvec[:, 2], -1.0, 1.0))
    clon = np.arctan2(cvec[:, 1], cvec[:, 0])
    sw = es.area[present]
    mx, my, sxx, syy, sxy = _axes_sums(runs, rk, present, sw, clat, clon, geo)
    ex = es.ex[present] / sw
    ey = es.ey[present] / sw
    R2 = geo.radius_km ** 2
    cxx = R2 * (sxx + ex / 12.0 - mx * mx)
    cyy = R2 * (syy + ey / 12.0 - my * my)
    cxy = R2 * (sxy - mx * my)
    half = 0.5 * (cxx + cyy)
    disc = np.sqrt(np.maximum(0.25 * (cxx - cyy) ** 2 + cxy * cxy, 0.0))
    l1 = np.maximum(half + disc, 0.0)
    l2 = np.maximum(half - disc, 0.0)
    return np.sqrt(12.0 * l1), np.sqrt(12.0 * l2)


def _field_columns(runs: Runs, rk: _RunKeys, es: _EventSums, fields: Mapping[str, np.ndarray],
                   spec: Mapping[str, tuple[str, ...]], geo: Geo) -> dict[str, np.ndarray]:
    """Stage 6 of :func:`table_runs`: field statistics per event (O(event cells): each run, then each event)."""
    out: dict[str, np.ndarray] = {}
    if not fields:
        return out
    key, nk = rk.key, rk.nk
    compiled = kernels(int(runs.length.sum()))
    if compiled is not None:  # one pass over each field's event cells (numba), the NumPy path's rules
        for name, values in fields.items():
            flat = np.ascontiguousarray(values).reshape(-1)
            if flat.dtype.kind not in "biuf" or flat.dtype.itemsize < 4 and flat.dtype.kind == "f":
                flat = flat.astype(np.float64)  # e.g. float16, which the compiled loop does not read
            mn, mx, total, wsum = compiled["field_stats"](runs.start, runs.length, key, rk.row, rk.c0, flat,
                                                          geo.cols, geo.rows, nk)
            by_stat = {"min": mn, "max": mx, "sum": total, "integral": wsum}
            for st in spec[name]:
                if st == "mean":
                    with np.errstate(invalid="ignore", divide="ignore"):
                        r = wsum / es.area
                else:
                    r = by_stat[st]
                out[f"{name}_{st}"] = r[es.present]
        return out
    idx, offsets = runs.pixels()
    col_pix = np.repeat(rk.c0 - offsets, runs.length) + np.arange(idx.size)
    wcol = geo.cols[col_pix]
    rowa = geo.rows[rk.row]
    for name, values in fields.items():
        v = np.asarray(values).reshape(-1)[idx].astype(np.float64)
        for st in spec[name]:
            if st == "min":
                r = np.full(nk, np.inf)
                np.minimum.at(r, key, np.minimum.reduceat(v, offsets))
            elif st == "max":
                r = np.full(nk, -np.inf)
                np.maximum.at(r, key, np.maximum.reduceat(v, offsets))
            elif st == "sum":
                r = np.bincount(key, weights=np.add.reduceat(v, offsets), minlength=nk)
            else:  # mean, integral: area-weighted sums
                r = np.bincount(key, weights=rowa * np.add.reduceat(v * wcol, offsets), minlength=nk)
                if st == "mean":
                    with np.errstate(invalid="ignore", divide="ignore"):
                        r = r / es.area
            out[f"{name}_{st}"] = r[es.present]
    return out


def table_runs(
    runs: Runs,
    fields: Mapping[str, np.ndarray],
    spec: Mapping[str, tuple[str, ...]],
    geo: Geo,
    step0: int = 0,
    centroid: str = "circular",
) -> dict[str, np.ndarray]:
    """Table columns (one entry per (step, event)) from the runs of a (T, H, W) block.

    Stages: where the runs lie (:func:`_run_keys`), per-event sums over runs
    (:func:`_event_sums`, O(runs): cumulative sums along longitude), one class
    per event (:func:`_check_one_class`), ids, sizes and centroids
    (:func:`_position_columns`), length and width (:func:`_axes_km`, O(event
    cells)) and field statistics (:func:`_field_columns`, O(event cells)).
    """
    if runs.start.size == 0:
        return {}
    rk = _run_keys(runs)
    es = _event_sums(runs, rk, geo)
    _check_one_class(es, rk.K, step0)
    out = _position_columns(es, rk.K, step0, geo, centroid)
    out["length_km"], out["width_km"] = _axes_km(runs, rk, es, geo)
    out.update(_field_columns(runs, rk, es, fields, spec, geo))
    return out


def _frame(cols: dict[str, list[np.ndarray]], names: list[str], times: np.ndarray) -> pd.DataFrame:
    """The event table from its columns (``time`` first, from ``times`` by step)."""
    dtypes = {"step": np.int64, "event": np.int32, "class": np.int16, "n_cells": np.int64}
    arrays: list[np.ndarray] = []
    for k in names:
        parts = cols.get(k)
        if parts:
            arrays.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
        else:
            arrays.append(np.empty(0, dtype=dtypes.get(k, np.float64)))
    arrays.insert(0, np.asarray(times)[arrays[names.index("step")]])
    key = ("time", *names)
    # the public constructor without copies (pandas' private DataFrame._from_arrays is about
    # 0.16 ms faster per 1200-row table, but climviz does not reach into private names)
    return pd.DataFrame(dict(zip(key, arrays)), copy=False)


def canonical_fields(fields: Any) -> Any:
    """Fields with climviz channel names converted to their canonical units (``PSL`` in Pa, ...).

    A field whose name is a climviz channel (a key of
    :data:`climviz.data.units.CANONICAL_UNITS`) and which is an
    ``xarray.DataArray`` with a ``units`` attribute is converted with
    :func:`climviz.data.units.to_canonical` (so PSL in hPa gives the same
    table as PSL in Pa, in Pa); a unit that is unknown or does not convert
    is a :class:`~climviz.errors.DataError` naming the field. Other fields
    (other names, numpy arrays, no ``units`` attribute) are used as given.
    """
    import xarray as xr

    if fields is None:
        return None
    items = dict(fields.data_vars) if isinstance(fields, xr.Dataset) else dict(fields)
    todo = [k for k, v in items.items() if isinstance(v, xr.DataArray) and v.attrs.get("units") is not None]
    if not todo:
        return items
    from climviz.data.units import CANONICAL_UNITS, to_canonical

    for k in todo:
        # a field already in its canonical unit is used as it is (no unit parsing, no pint import)
        if str(k) in CANONICAL_UNITS and str(items[k].attrs["units"]).strip() != CANONICAL_UNITS[str(k)]:
            items[k] = to_canonical(items[k], str(k), variable=str(k), file="fields")
    return items


def _names(field_names: list[str], spec: Mapping[str, tuple[str, ...]]) -> list[str]:
    return list(TABLE_COLUMNS[1:]) + [f"{n}_{s}" for n in field_names for s in spec[n]]


_LABELS_KEY = "__climviz_labels__"


def table(
    labels: Any,
    mask: Any,
    fields: Any = None,
    *,
    stats: Sequence[str] | Mapping[str, Sequence[str]] = ("min", "max", "mean"),
    lat: npt.ArrayLike | None = None,
    lon: npt.ArrayLike | None = None,
    time: npt.ArrayLike | None = None,
    radius_km: float = EARTH_RADIUS_KM,
    block_steps: int | None = None,
    centroid: str = "circular",
) -> pd.DataFrame:
    """One row per (time step, event): size, centroid and field statistics.

    Parameters
    ----------
    labels
        Event ids from :func:`climviz.events.label`: numpy ``(time, lat, lon)``
        or ``(lat, lon)``, or an ``xarray.DataArray`` (numpy- or dask-backed;
        processed one time chunk at a time).
    mask
        The class mask the labels came from (same shape); gives each event's class.
    fields
        Fields to summarize inside each event: an ``xarray.Dataset`` (all its
        variables, with the mask's dims) or a mapping name -> array/DataArray
        of the same shape, e.g. ``{"PSL": ds.PSL, "WSP850": np.hypot(ds.U850, ds.V850)}``.
        Fields named as climviz channels that carry a ``units`` attribute are
        first converted to the channel's canonical unit (PSL in hPa is
        tabulated in Pa; see :func:`canonical_fields`).
    stats
        Statistics per field (see :data:`STATS`): a sequence applied to every
        field, or a mapping field name -> sequence (e.g. ``{"PSL": ["min"],
        "PRECT": ["integral"]}``). Columns are named ``<field>_<stat>``.
    lat, lon
        Cell-centre coordinates (degrees); required for numpy input, taken
        from the coordinates of DataArray input.
    time
        Time values per step for numpy input (default: the step index).
    radius_km
        Sphere radius (km).
    block_steps
        Time steps per block (default: the dask chunks, or ~16 M cells).
    centroid
        ``"circular"`` (default): area-weighted mean latitude and circular mean
        longitude, each averaged on its own; ``"cartesian"``: the direction of
        the area-weighted mean 3-D unit vector (see :data:`CENTROIDS`). They
        agree for small events and nearly so along a meridian; for events long
        in longitude at high latitude the 3-D centroid lies poleward of the
        circular one, because the parallel curves around the pole (a strip at
        65°N from 0 to 80°E: 67.7°N against 65°N; a cap around the pole has its
        3-D centroid at the pole, its circular centroid at its mean latitude).
        The 3-D centroid does not depend on where the grid puts the poles or
        the seam; the circular one treats latitude and longitude separately.

    Returns
    -------
    pandas.DataFrame
        Columns ``time, step, event, class, n_cells, area_km2`` (km²),
        ``centroid_lat, centroid_lon`` (degrees; see ``centroid``; longitude in
        [0, 360), NaN where undefined, e.g. for a ring around the globe),
        ``lat_min, lat_max`` (extreme cell-centre latitudes, degrees),
        ``length_km, width_km`` (the event's principal axes on the sphere, km:
        the sides of the rectangle with the same area-weighted second moments
        in the azimuthal equidistant plane centred on the 3-D centroid, each
        cell counted with its own extent; a lat-lon rectangle at the equator
        40° long and 10° wide gives 4448 x 1118 km, the width stretched 0.5 %
        by the projection; a disc of radius r gives sqrt(3) r both ways) and
        ``<field>_<stat>``; sorted by step then event.

    Examples
    --------
    A grid of four quarter-hemispheres (two latitude rows, four 90° columns):
    each cell covers R² π/2 = 63,758,059 km² on a sphere of radius 6371 km.

    >>> import numpy as np
    >>> from climviz.events import label, table
    >>> lat, lon = np.array([-45.0, 45.0]), np.array([0.0, 90.0, 180.0, 270.0])
    >>> mask = np.array([[0, 0, 0, 0],
    ...                  [1, 1, 0, 2]], dtype=np.uint8)
    >>> tab = table(label(mask), mask, lat=lat, lon=lon)
    >>> tab[["event", "class", "n_cells", "area_km2", "centroid_lat", "centroid_lon"]].round(1)
       event  class  n_cells     area_km2  centroid_lat  centroid_lon
    0      1      1        2  127516118.0          45.0          45.0
    1      2      2        1   63758059.0          45.0         270.0
    """
    import xarray as xr

    if isinstance(labels, xr.Dataset):
        if "event" not in labels:
            raise DataError(f"labels: expected a DataArray or a Dataset with an 'event' variable, "
                            f"found {list(labels.data_vars)}")
        labels = labels["event"]
    if isinstance(labels, xr.DataArray) and not isinstance(mask, (xr.DataArray, xr.Dataset)):
        mask = xr.DataArray(np.asarray(mask), dims=labels.dims, coords=labels.coords)
    mask = mask_variable(mask)
    fields = canonical_fields(fields)
    allf = {_LABELS_KEY: labels, **(dict(fields) if fields is not None else {})}
    src = MaskSource.from_any(mask, allf, lat=lat, lon=lon, time=time)
    field_names = [k for k in src.fields if k != _LABELS_KEY]
    spec = _stat_spec(field_names, stats)
    _check_centroid(centroid)
    geo = Geo.of(src.lat, src.lon, radius_km)
    acc = _Accumulator()
    for sl, m, f in src.blocks(block_steps):
        lab = np.asarray(f.pop(_LABELS_KEY))
        if not np.issubdtype(lab.dtype, np.integer):
            raise DataError(f"labels: expected integer event ids, found dtype {lab.dtype}")
        if lab.size and lab.min() < 0:
            raise DataError(f"labels: expected non-negative event ids, found {lab.min()}")
        runs = find_runs(lab.reshape(-1), m.reshape(-1), m.shape[2], m.shape)
        acc.add(table_runs(runs, f, spec, geo, sl.start, centroid))
    df = _frame(acc.cols, _names(field_names, spec), src.times)
    df.attrs["radius_km"] = float(radius_km)
    return df


def label_table(
    mask: Any,
    fields: Any = None,
    *,
    stats: Sequence[str] | Mapping[str, Sequence[str]] = ("min", "max", "mean"),
    min_area_km2: float = 0.0,
    min_cells: int = 1,
    periodic: bool | None = None,
    connectivity: int = 8,
    lat: npt.ArrayLike | None = None,
    lon: npt.ArrayLike | None = None,
    time: npt.ArrayLike | None = None,
    radius_km: float = EARTH_RADIUS_KM,
    return_labels: bool = True,
    block_steps: int | None = None,
    centroid: str = "circular",
) -> tuple[Any, pd.DataFrame]:
    """Label a mask and tabulate its events in one pass (faster than ``label`` then ``table``).

    The runs of event cells found while labelling are reused for the table,
    so the grid is scanned once. Dask-backed masks are processed one time
    chunk at a time.

    Parameters
    ----------
    mask, fields, stats, lat, lon, time, radius_km, centroid
        As for :func:`climviz.events.label` and :func:`climviz.events.table`.
    min_area_km2, min_cells, periodic, connectivity
        As for :func:`climviz.events.label` (``periodic=None``: only on a
        global grid, detected from the longitudes).
    return_labels
        Also return the labels (in memory). With False only the table is
        kept, and memory stays bounded by one block.
    block_steps
        Time steps per block (default: the dask chunks, or ~16 M cells).

    Returns
    -------
    (labels, table)
        Labels as :func:`label` returns them (numpy for numpy input, a
        DataArray named ``event`` for xarray input; None if
        ``return_labels=False``) and the event table as :func:`table`.

    Examples
    --------
    >>> import climviz as cv
    >>> ds = cv.synthetic_run(4, shape=(32, 48))
    >>> labels, tab = cv.events.label_table(ds["LABELS"], fields=ds[["PSL"]], stats=["min"])
    >>> list(tab.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['time', 'step', 'event', 'class', 'n_cells', 'area_km2', 'centroid_lat', 'centroid_lon',
     'lat_min', 'lat_max', 'length_km', 'width_km', 'PSL_min']

    One row per event and step: as many rows as the highest id of each step, summed.

    >>> len(tab) == int(labels.max(("lat", "lon")).sum())
    True
    >>> sorted(tab["class"].unique().tolist())  # TCs and ARs
    [1, 2]
    """
    import xarray as xr

    numpy_2d = not isinstance(mask, (xr.DataArray, xr.Dataset)) and np.ndim(mask) == 2
    xr_2d = isinstance(mask, xr.DataArray) and mask.ndim == 2
    fields = canonical_fields(fields)
    src = MaskSource.from_any(mask, fields, lat=lat, lon=lon, time=time)
    opts = LabelOptions(float(min_area_km2), int(min_cells), resolve_periodic(periodic, src.lon), int(connectivity))
    geo = Geo.of(src.lat, src.lon, radius_km)
    spec = _stat_spec(list(src.fields), stats)
    _check_centroid(centroid)
    acc = _Accumulator()
    slices = src.slices(block_steps)
    out = None
    if return_labels and len(slices) > 1:
        out = np.zeros(src.shape, dtype=np.int32)
    for sl, m, f in src.blocks(block_steps):
        lab, _, runs = _label_block(m, geo=geo, opts=opts, want_labels=return_labels)
        if return_labels:
            assert lab is not None
            if out is None:
                out = lab  # a single block: no copy
            else:
                out[sl] = lab
        acc.add(table_runs(runs, f, spec, geo, sl.start, centroid))
    df = _frame(acc.cols, _names(list(src.fields), spec), src.times)
    df.attrs["radius_km"] = float(radius_km)
    labels: Any = None
    if out is not None:
        out = src.unroll(out)
        if src.is_xr:
            labels = xr.DataArray(out, dims=src.dims, coords=src.coords(), name="event",
                                  attrs={"long_name": "event id (connected component per time step and class)",
                                         "units": "1"})
            if xr_2d:
                labels = labels.isel({src.dims[0]: 0}, drop=True)
        else:
            labels = out[0] if numpy_2d else out
    return labels, df
