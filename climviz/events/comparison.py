"""Compare two runs (e.g. historical vs. warmer): differences with block-bootstrap confidence intervals.

Time steps of a climate run are autocorrelated (an atmospheric river lasts
days), so resampling single steps would give confidence intervals that are
far too narrow. Both runs are cut into blocks of consecutive steps
(``block_steps``); each bootstrap replicate draws blocks with replacement,
independently for the two runs, and recomputes every statistic. The
interval of ``b - a`` is the percentile interval of the replicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from climviz.data.schema import CLASSES
from climviz.errors import DataError
from climviz.events.geometry import EARTH_RADIUS_KM, cell_areas

__all__ = ["compare", "Comparison", "default_block_steps"]


@dataclass
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    table
        Tidy DataFrame, one row per (class, statistic): ``class, name,
        statistic, units, a, b, difference (b - a), ci_low, ci_high,
        significant, p_value``.
    maps
        xarray Dataset with, per class key (``tropical_cyclone``...):
        ``frequency_a_<key>``, ``frequency_b_<key>``, ``difference_<key>`` (b - a),
        ``ci_low_<key>``, ``ci_high_<key>`` and ``significant_<key>`` (the
        interval excludes 0).
    block_steps, n_boot, ci
        The bootstrap settings used.
    """

    table: pd.DataFrame
    maps: Any
    block_steps: int
    n_boot: int
    ci: float


def default_block_steps(times: Any, n: int) -> int:
    """Block length: 5 days of steps for datetime times, else about n**(1/3) steps."""
    t = np.asarray(times)
    if np.issubdtype(t.dtype, np.datetime64) and t.size > 1:
        dt = float((t[1] - t[0]) / np.timedelta64(1, "s"))
        if dt > 0:
            return max(1, min(n, int(round(5 * 86400.0 / dt))))
    return max(1, int(round(n ** (1.0 / 3.0))))


def _block_means(x: np.ndarray, L: int) -> np.ndarray:
    """Means over blocks of L consecutive steps along axis 0 (incomplete last block dropped)."""
    nb = x.shape[0] // L
    if nb < 2:
        raise DataError(f"compare: need at least 2 blocks of {L} steps, found {x.shape[0]} steps")
    return x[: nb * L].reshape((nb, L) + x.shape[1:]).mean(axis=1)


def _weights(n_boot: int, nb: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, nb) resampling weights: counts of each block in a draw of nb blocks, divided by nb."""
    idx = rng.integers(0, nb, size=(n_boot, nb))
    w = np.zeros((n_boot, nb), dtype=np.float64)
    np.add.at(w, (np.repeat(np.arange(n_boot), nb), idx.ravel()), 1.0)
    return w / nb


def _interval(d: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = np.nanpercentile(d, [50 * (1 - ci), 50 * (1 + ci)], axis=0)
    n = np.sum(np.isfinite(d), axis=0)
    p = 2 * np.minimum(np.sum(d <= 0, axis=0), np.sum(d >= 0, axis=0)) / np.maximum(n, 1)
    return lo, hi, np.minimum(p, 1.0)


def _series(mask: Any, classes: tuple[int, ...], radius_km: float, min_cells: int, min_area_km2: float,
            block_steps: int | None) -> tuple[dict[str, np.ndarray], Any]:
    """Per-step series per class: covered area fraction, event count, total event area."""
    from climviz.events._source import MaskSource
    from climviz.events.tables import label_table

    src = MaskSource.from_any(mask)
    _, tab = label_table(mask, return_labels=False, min_cells=min_cells, min_area_km2=min_area_km2,
                         radius_km=radius_km, block_steps=block_steps)
    nt = src.shape[0]
    total_area = float(cell_areas(src.lat, src.lon, radius_km).sum())
    out: dict[str, np.ndarray] = {}
    for c in classes:
        e = tab[tab["class"] == c]
        out[f"count_{c}"] = np.bincount(e["step"], minlength=nt).astype(np.float64)
        out[f"area_{c}"] = np.bincount(e["step"], weights=e["area_km2"], minlength=nt)
        out[f"cover_{c}"] = out[f"area_{c}"] / total_area
    return out, src


def compare(
    a: Any,
    b: Any,
    *,
    classes: tuple[int, ...] = (1, 2),
    block_steps: int | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    maps: bool = True,
    min_cells: int = 1,
    min_area_km2: float = 0.0,
    radius_km: float = EARTH_RADIUS_KM,
    max_cells_per_chunk: int = 4_000_000,
) -> Comparison:
    """Compare the events of two runs with block-bootstrap confidence intervals.

    Parameters
    ----------
    a, b
        Class masks (DataArray (time, lat, lon) or mask Datasets, numpy or
        dask) on the same grid; the runs may differ in length.
    classes
        Classes to compare.
    block_steps
        Steps per bootstrap block (default :func:`default_block_steps`: 5 days).
    n_boot
        Bootstrap replicates.
    ci
        Confidence level of the intervals.
    seed
        Random seed (the result is reproducible).
    maps
        Also compare frequency maps cell by cell.
    min_cells, min_area_km2
        Event filters for the event statistics (see :func:`climviz.events.label`).
    max_cells_per_chunk
        Bound on ``n_boot x cells`` processed at once for the maps (memory).

    Returns
    -------
    Comparison
        ``.table`` (tidy statistics: ``coverage_fraction`` (mean fraction of the
        globe's area in the class), ``events_per_step``, ``mean_event_area_km2``,
        and ``events_per_year`` for datetime runs) and ``.maps``.

    Examples
    --------
    A run compared with itself differs by nothing, and nothing is significant
    (2-step bootstrap blocks, as the example run is only 8 steps long):

    >>> import climviz as cv
    >>> run = cv.synthetic_run(8, shape=(32, 48))["LABELS"]
    >>> cmp = cv.events.compare(run, run, block_steps=2, n_boot=100, maps=False)
    >>> cmp.table[["name", "statistic", "difference", "significant"]].head(4)
                   name             statistic  difference  significant
    0  tropical_cyclone     coverage_fraction         0.0        False
    1  tropical_cyclone       events_per_step         0.0        False
    2  tropical_cyclone  event_steps_per_year         0.0        False
    3  tropical_cyclone   mean_event_area_km2         0.0        False
    """
    import xarray as xr

    from climviz.events.stats import _mask_da, run_years

    da_a, da_b = _mask_da(a, "a"), _mask_da(b, "b")
    if not (0 < ci < 1):
        raise DataError(f"ci: expected a level in (0, 1), found {ci}")
    if n_boot < 10:
        raise DataError(f"n_boot: expected at least 10 replicates, found {n_boot}")
    sa, src_a = _series(da_a, classes, radius_km, min_cells, min_area_km2, None)
    sb, src_b = _series(da_b, classes, radius_km, min_cells, min_area_km2, None)
    if src_a.lat.shape != src_b.lat.shape or not np.allclose(src_a.lat, src_b.lat) or \
            src_a.lon.shape != src_b.lon.shape or not np.allclose(src_a.lon, src_b.lon):
        raise DataError("compare: runs a and b must be on the same lat/lon grid")
    La = block_steps or default_block_steps(src_a.times, src_a.shape[0])
    Lb = block_steps or default_block_steps(src_b.times, src_b.shape[0])
    rng = np.random.default_rng(seed)
    nb_a, nb_b = src_a.shape[0] // La, src_b.shape[0] // Lb
    if nb_a < 2 or nb_b < 2:
        raise DataError(f"compare: need at least 2 blocks per run; a has {src_a.shape[0]} steps, "
                        f"b has {src_b.shape[0]}, block_steps={La}/{Lb}")
    wa = _weights(n_boot, nb_a, rng)
    wb = _weights(n_boot, nb_b, rng)
    ya, yb = run_years(src_a.times), run_years(src_b.times)
    steps_per_year_a = src_a.shape[0] / ya if np.isfinite(ya) else np.nan
    steps_per_year_b = src_b.shape[0] / yb if np.isfinite(yb) else np.nan

    rows = []
    for c in classes:
        key = CLASSES.get(int(c), f"class_{c}")
        ba = {k: _block_means(sa[f"{k}_{c}"], La) for k in ("count", "area", "cover")}
        bb = {k: _block_means(sb[f"{k}_{c}"], Lb) for k in ("count", "area", "cover")}
        # point estimates over the complete blocks, replicates from the resampled blocks
        stats = {
            "coverage_fraction": ("1", lambda m: m["cover"]),
            "events_per_step": ("1", lambda m: m["count"]),
            "mean_event_area_km2": ("km2", None),
        }
        for name, (units, fn) in stats.items():
            if fn is not None:
                pa, pb = fn(ba).mean(), fn(bb).mean()
                ra, rb = wa @ fn(ba), wb @ fn(bb)
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    pa = ba["area"].sum() / ba["count"].sum()
                    pb = bb["area"].sum() / bb["count"].sum()
                    ra = (wa @ ba["area"]) / (wa @ ba["count"])
                    rb = (wb @ bb["area"]) / (wb @ bb["count"])
            lo, hi, p = _interval(rb - ra, ci)
            rows.append({"class": int(c), "name": key, "statistic": name, "units": units, "a": pa, "b": pb,
                         "difference": pb - pa, "ci_low": float(lo), "ci_high": float(hi),
                         "significant": bool(lo > 0 or hi < 0), "p_value": float(p)})
            if name == "events_per_step" and np.isfinite(steps_per_year_a) and np.isfinite(steps_per_year_b):
                ra_y, rb_y = ra * steps_per_year_a, rb * steps_per_year_b
                lo, hi, p = _interval(rb_y - ra_y, ci)
                rows.append({"class": int(c), "name": key, "statistic": "event_steps_per_year", "units": "1/yr",
                             "a": pa * steps_per_year_a, "b": pb * steps_per_year_b,
                             "difference": pb * steps_per_year_b - pa * steps_per_year_a,
                             "ci_low": float(lo), "ci_high": float(hi), "significant": bool(lo > 0 or hi < 0),
                             "p_value": float(p)})
    table = pd.DataFrame(rows)

    ds = xr.Dataset(coords={src_a.dims[1]: src_a.lat, src_a.dims[2]: src_a.lon})
    if maps:
        H, W = src_a.shape[1:]
        chunk = max(1, max_cells_per_chunk // n_boot)
        for c in classes:
            key = CLASSES.get(int(c), f"class_{c}")
            fa = _block_means_lazy(da_a, c, La, src_a)
            fb = _block_means_lazy(da_b, c, Lb, src_b)
            ma, mb = fa.mean(axis=0), fb.mean(axis=0)
            lo = np.empty(H * W, np.float32)
            hi = np.empty(H * W, np.float32)
            pv = np.empty(H * W, np.float32)
            fa2, fb2 = fa.reshape(nb_a, -1), fb.reshape(nb_b, -1)
            for s in range(0, H * W, chunk):
                sl = slice(s, min(H * W, s + chunk))
                d = (wb @ fb2[:, sl]) - (wa @ fa2[:, sl])
                lo[sl], hi[sl], pv[sl] = _interval(d, ci)
            dims = (src_a.dims[1], src_a.dims[2])
            attrs = {"units": "1", "class": int(c)}
            ds[f"frequency_a_{key}"] = (dims, ma.astype(np.float32),
                                        {**attrs, "long_name": f"{key} frequency in run a"})
            ds[f"frequency_b_{key}"] = (dims, mb.astype(np.float32),
                                        {**attrs, "long_name": f"{key} frequency in run b"})
            ds[f"difference_{key}"] = (dims, (mb - ma).astype(np.float32),
                                       {**attrs, "long_name": f"{key} frequency difference b - a"})
            ds[f"ci_low_{key}"] = (dims, lo.reshape(H, W), {**attrs, "long_name": f"lower {ci:.0%} bound of b - a"})
            ds[f"ci_high_{key}"] = (dims, hi.reshape(H, W), {**attrs, "long_name": f"upper {ci:.0%} bound of b - a"})
            sig = (lo > 0) | (hi < 0)
            ds[f"significant_{key}"] = (dims, sig.reshape(H, W).astype(np.uint8),
                                        {"long_name": f"{key} difference significant at {ci:.0%} (block bootstrap)",
                                         "flag_values": [0, 1], "flag_meanings": "not_significant significant"})
            ds[f"p_value_{key}"] = (dims, pv.reshape(H, W), {"units": "1", "long_name": "bootstrap p-value"})
    ds.attrs = {"comment": "b - a with block-bootstrap confidence intervals over time",
                "block_steps_a": La, "block_steps_b": Lb, "n_boot": n_boot, "ci": ci, "seed": seed}
    return Comparison(table=table, maps=ds, block_steps=La, n_boot=n_boot, ci=ci)


def _block_means_lazy(da: Any, c: int, L: int, src: Any) -> np.ndarray:
    """Block means of the class indicator (nb, H, W), computed chunk-wise for dask input."""
    t, la, lo = src.dims
    nb = src.shape[0] // L
    ind = (da.transpose(t, la, lo).isel({t: slice(0, nb * L)}) == c).astype(np.float32)
    out = ind.coarsen({t: L}).mean()
    return np.asarray(out.values, dtype=np.float32)
