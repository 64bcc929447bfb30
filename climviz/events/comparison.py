"""Compare two runs (e.g. historical vs. warmer): differences with block-bootstrap confidence intervals.

Time steps of a climate run are autocorrelated (an atmospheric river lasts
days), so resampling single steps would give confidence intervals that are
far too narrow. Both runs are cut into blocks of consecutive steps
(``block_steps``); each bootstrap replicate draws blocks with replacement,
independently for the two runs, and recomputes every statistic. The
interval of ``b - a`` is the percentile interval of the replicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from climviz._compat import ClassesLike, class_ids
from climviz.data.schema import CLASSES
from climviz.errors import DataError
from climviz.events.geometry import EARTH_RADIUS_KM, cell_areas

if TYPE_CHECKING:
    import xarray as xr

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
    """Block length: 5 days of steps for datetime times, else about n**(1/3) steps.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> default_block_steps(pd.date_range("2001-01-01", periods=2920, freq="3h"), 2920)  # 5 days
    40
    >>> default_block_steps(np.arange(1000), 1000)
    10
    """
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


@dataclass
class _Run:
    """One run made ready for the bootstrap (a stage's state in :func:`compare`)."""

    da: Any                         # the mask DataArray
    src: Any                        # its MaskSource (grid, times, shape)
    series: dict[str, np.ndarray]   # per-step series per class (see _series)
    L: int = 0                      # steps per block
    nb: int = 0                     # complete blocks
    w: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (n_boot, nb) weights
    steps_per_year: float = np.nan

    @property
    def n(self) -> int:
        return int(self.src.shape[0])


def _prepare(mask: Any, classes: tuple[int, ...], radius_km: float, min_cells: int,
             min_area_km2: float) -> _Run:
    """Stage 1: per-step event series of one run."""
    series, src = _series(mask, classes, radius_km, min_cells, min_area_km2, None)
    return _Run(da=mask, src=src, series=series)


def _check_same_grid(a: _Run, b: _Run) -> None:
    sa, sb = a.src, b.src
    if sa.lat.shape != sb.lat.shape or not np.allclose(sa.lat, sb.lat) or \
            sa.lon.shape != sb.lon.shape or not np.allclose(sa.lon, sb.lon):
        raise DataError("compare: runs a and b must be on the same lat/lon grid")


def _blocks(a: _Run, b: _Run, block_steps: int | None, n_boot: int, seed: int) -> None:
    """Stage 2: block lengths, resampling weights (a's drawn first) and steps per year."""
    from climviz.events.stats import run_years

    for r in (a, b):
        r.L = block_steps or default_block_steps(r.src.times, r.n)
        r.nb = r.n // r.L
    if a.nb < 2 or b.nb < 2:
        raise DataError(f"compare: need at least 2 blocks per run; a has {a.n} steps, "
                        f"b has {b.n}, block_steps={a.L}/{b.L}")
    rng = np.random.default_rng(seed)
    for r in (a, b):
        r.w = _weights(n_boot, r.nb, rng)
    for r in (a, b):
        years = run_years(r.src.times)
        r.steps_per_year = r.n / years if np.isfinite(years) else np.nan


def _row(c: int, statistic: str, units: str, pa: float, pb: float, d: np.ndarray, ci: float) -> dict[str, Any]:
    """One table row: point estimates ``pa``, ``pb`` and the interval of the replicates ``d`` of b - a."""
    lo, hi, p = _interval(d, ci)
    return {"class": int(c), "name": CLASSES.get(int(c), f"class_{c}"), "statistic": statistic, "units": units,
            "a": pa, "b": pb, "difference": pb - pa, "ci_low": float(lo), "ci_high": float(hi),
            "significant": bool(lo > 0 or hi < 0), "p_value": float(p)}


def _class_rows(c: int, a: _Run, b: _Run, ci: float) -> list[dict[str, Any]]:
    """Stage 3: the table rows of one class.

    Point estimates are over the complete blocks, replicates from the resampled blocks.
    """
    ba = {k: _block_means(a.series[f"{k}_{c}"], a.L) for k in ("count", "area", "cover")}
    bb = {k: _block_means(b.series[f"{k}_{c}"], b.L) for k in ("count", "area", "cover")}
    rows = []
    for name, k in (("coverage_fraction", "cover"), ("events_per_step", "count")):
        pa, pb = ba[k].mean(), bb[k].mean()
        ra, rb = a.w @ ba[k], b.w @ bb[k]
        rows.append(_row(c, name, "1", pa, pb, rb - ra, ci))
        if name == "events_per_step" and np.isfinite(a.steps_per_year) and np.isfinite(b.steps_per_year):
            ya, yb = a.steps_per_year, b.steps_per_year
            rows.append(_row(c, "event_steps_per_year", "1/yr", pa * ya, pb * yb, rb * yb - ra * ya, ci))
    with np.errstate(invalid="ignore", divide="ignore"):
        pa = ba["area"].sum() / ba["count"].sum()
        pb = bb["area"].sum() / bb["count"].sum()
        ra = (a.w @ ba["area"]) / (a.w @ ba["count"])
        rb = (b.w @ bb["area"]) / (b.w @ bb["count"])
    rows.append(_row(c, "mean_event_area_km2", "km2", pa, pb, rb - ra, ci))
    return rows


def _class_maps(ds: Any, c: int, a: _Run, b: _Run, ci: float, chunk: int) -> None:
    """Stage 4: cell-by-cell frequency comparison of one class, added to ``ds``."""
    key = CLASSES.get(int(c), f"class_{c}")
    H, W = a.src.shape[1:]
    fa = _block_means_lazy(a.da, c, a.L, a.src)
    fb = _block_means_lazy(b.da, c, b.L, b.src)
    ma, mb = fa.mean(axis=0), fb.mean(axis=0)
    lo = np.empty(H * W, np.float32)
    hi = np.empty(H * W, np.float32)
    pv = np.empty(H * W, np.float32)
    fa2, fb2 = fa.reshape(a.nb, -1), fb.reshape(b.nb, -1)
    for s in range(0, H * W, chunk):
        sl = slice(s, min(H * W, s + chunk))
        d = (b.w @ fb2[:, sl]) - (a.w @ fa2[:, sl])
        lo[sl], hi[sl], pv[sl] = _interval(d, ci)
    dims = (a.src.dims[1], a.src.dims[2])
    attrs = {"units": "1", "class": int(c)}
    ds[f"frequency_a_{key}"] = (dims, ma.astype(np.float32), {**attrs, "long_name": f"{key} frequency in run a"})
    ds[f"frequency_b_{key}"] = (dims, mb.astype(np.float32), {**attrs, "long_name": f"{key} frequency in run b"})
    ds[f"difference_{key}"] = (dims, (mb - ma).astype(np.float32),
                               {**attrs, "long_name": f"{key} frequency difference b - a"})
    ds[f"ci_low_{key}"] = (dims, lo.reshape(H, W), {**attrs, "long_name": f"lower {ci:.0%} bound of b - a"})
    ds[f"ci_high_{key}"] = (dims, hi.reshape(H, W), {**attrs, "long_name": f"upper {ci:.0%} bound of b - a"})
    sig = (lo > 0) | (hi < 0)
    ds[f"significant_{key}"] = (dims, sig.reshape(H, W).astype(np.uint8),
                                {"long_name": f"{key} difference significant at {ci:.0%} (block bootstrap)",
                                 "flag_values": [0, 1], "flag_meanings": "not_significant significant"})
    ds[f"p_value_{key}"] = (dims, pv.reshape(H, W), {"units": "1", "long_name": "bootstrap p-value"})


def compare(
    a: xr.DataArray | xr.Dataset,
    b: xr.DataArray | xr.Dataset,
    *,
    classes: ClassesLike = (1, 2),
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
        Classes to compare: one (``1``, ``"tc"``) or several (``(1, 2)``,
        ``["tc", "ar"]``; default both).
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

    from climviz.events.stats import _mask_da

    classes = class_ids(classes)
    da_a, da_b = _mask_da(a, "a"), _mask_da(b, "b")
    if not (0 < ci < 1):
        raise DataError(f"ci: expected a level in (0, 1), found {ci}")
    if n_boot < 10:
        raise DataError(f"n_boot: expected at least 10 replicates, found {n_boot}")
    ra = _prepare(da_a, classes, radius_km, min_cells, min_area_km2)
    rb = _prepare(da_b, classes, radius_km, min_cells, min_area_km2)
    _check_same_grid(ra, rb)
    _blocks(ra, rb, block_steps, n_boot, seed)
    table = pd.DataFrame([row for c in classes for row in _class_rows(c, ra, rb, ci)])
    ds = xr.Dataset(coords={ra.src.dims[1]: ra.src.lat, ra.src.dims[2]: ra.src.lon})
    if maps:
        chunk = max(1, max_cells_per_chunk // n_boot)
        for c in classes:
            _class_maps(ds, c, ra, rb, ci, chunk)
    ds.attrs = {"comment": "b - a with block-bootstrap confidence intervals over time",
                "block_steps_a": ra.L, "block_steps_b": rb.L, "n_boot": n_boot, "ci": ci, "seed": seed}
    return Comparison(table=table, maps=ds, block_steps=ra.L, n_boot=n_boot, ci=ci)


def _block_means_lazy(da: Any, c: int, L: int, src: Any) -> np.ndarray:
    """Block means of the class indicator (nb, H, W), computed chunk-wise for dask input.

    Longitudes in the order of ``src.lon`` (a rolled axis oriented as the events code does),
    the coordinates the maps are given.
    """
    t, la, lo = src.dims
    nb = src.shape[0] // L
    ind = (da.transpose(t, la, lo).isel({t: slice(0, nb * L)}) == c).astype(np.float32)
    out = np.asarray(ind.coarsen({t: L}).mean().values, dtype=np.float32)
    return np.roll(out, -src.lon_shift, axis=-1) if src.lon_shift else out
