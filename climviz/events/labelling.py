"""Connected components of class masks on a periodic latitude-longitude grid.

Components are found per time step and per class with 8-connectivity (or
4-connectivity on request); on a global grid the first and last longitude
columns are neighbours (the 0°/360° seam), on a regional grid they are not
(detected from the longitudes, see :func:`resolve_periodic`); the poles are
never neighbours. Ids are int32, 0 = no event, numbered 1..n within each time step in
raster order of their first cell (south-west first for ascending latitude).

Implementation, per block of time steps (all vectorized, no loops over cells):

1. the block is scanned once for *runs*: maximal stretches of one class along
   a grid row (``np.flatnonzero`` of the class changes);
2. runs that touch are paired: same class, consecutive rows of one time step,
   column ranges overlapping or meeting diagonally (8-connectivity; only
   overlapping with 4-connectivity), found
   with two ``np.searchsorted`` calls; with ``periodic`` the runs ending in the
   last column are paired with runs starting in the first column of the same
   and the neighbouring rows (the seam);
3. ``scipy.sparse.csgraph.connected_components`` joins the run graph (a few
   thousand nodes for a 768 x 1152 step, instead of 885,000 cells);
4. components below ``min_cells`` / ``min_area_km2`` are removed, ids are
   numbered per step, and the ids are written to the event cells only.

When numba is installed (the ``fast`` extra), steps 1-3 run as one compiled
scan that records each row's runs without a branch per cell and joins each
run to the touching runs of the previous row with a union-find as it goes
(``climviz.events._kernels``; same components, same ids; blocks of >= 20k
cells); ids and labels then take one more pass over the runs. The runs are
kept and reused by :func:`climviz.events.label_table` for the event table.
``_label_block_ndimage`` is the same contract built on ``scipy.ndimage.label``
plus a seam union-find, in stages; the tests check that both group cells
identically.

Longitudes are used in increasing order; a rolled axis (180 … 360, 0 … 180)
is oriented by :func:`climviz.data.grid.orient_lon` first and the labels
rolled back (:func:`events_lon`), so it gives the events of the sorted axis.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from climviz.data import grid as _grid
from climviz.errors import DataError
from climviz.events._kernels import kernels
from climviz.events.geometry import EARTH_RADIUS_KM, is_global_lon, lat_edges, lon_widths

__all__ = ["label", "label_step", "LabelOptions", "resolve_periodic", "events_lon"]

_STRUCT_2D = np.ones((3, 3), dtype=bool)
_STRUCT_3D = np.zeros((3, 3, 3), dtype=bool)
_STRUCT_3D[1] = True  # connect within a time step only
_STRUCT_2D_4 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
_STRUCT_3D_4 = np.zeros((3, 3, 3), dtype=bool)
_STRUCT_3D_4[1] = _STRUCT_2D_4

# the accepted dimension names are those of the one grid module (climviz.data.grid)
LAT_NAMES = _grid.LAT_NAMES
LON_NAMES = _grid.LON_NAMES


@dataclass(frozen=True)
class LabelOptions:
    """Options of :func:`label`.

    Attributes
    ----------
    min_area_km2
        Remove components smaller than this area (km²). Needs cell areas,
        i.e. ``lat``/``lon`` coordinates.
    min_cells
        Remove components with fewer cells.
    periodic
        Treat the first and last longitude columns as neighbours.
    connectivity
        8 (cells touching at a corner are connected, TempestExtremes'
        DetectBlobs and ClimateNet's default) or 4 (only cells sharing an edge).
    """

    min_area_km2: float = 0.0
    min_cells: int = 1
    periodic: bool = True
    connectivity: int = 8

    def __post_init__(self) -> None:
        if self.connectivity not in (4, 8):
            raise DataError(f"connectivity: expected 4 or 8, found {self.connectivity!r}")
        if self.min_cells < 1:
            raise DataError(f"min_cells: expected an integer >= 1, found {self.min_cells}")
        if not self.min_area_km2 >= 0:
            raise DataError(f"min_area_km2: expected a value >= 0, found {self.min_area_km2}")


def resolve_periodic(periodic: bool | None, lon: npt.ArrayLike | None) -> bool:
    """Whether labelling joins the first and last longitude columns.

    ``periodic=None`` (the default everywhere in :mod:`climviz.events`) means:
    periodic exactly when the longitudes cover the globe
    (:func:`climviz.events.geometry.is_global_lon`, the rule that also sizes
    the cells in :func:`~climviz.events.geometry.lon_widths`); a regional grid
    such as 100–180°E is not wrapped. Without longitudes (plain numpy input
    and no ``lon``) the grid is taken to be global. True/False force it.
    """
    if periodic is not None:
        return bool(periodic)
    if lon is None:
        return True
    lon = np.asarray(lon, dtype=np.float64)
    if lon.ndim != 1 or lon.size < 2:
        return lon.size > 1
    return is_global_lon(lon)


def events_lon(lon: npt.ArrayLike, label: str = "lon") -> tuple[np.ndarray, int]:
    """Longitudes in the order the events code works in, and the roll of the data that gets there.

    Strictly increasing longitudes (e.g. [0, 360), [-180, 180), 100-180°E) are used as
    given (roll 0), so ids and coordinates do not change. Any other order that
    :func:`climviz.data.grid.orient_lon` accepts (a rolled axis such as 180 … 358.75,
    0 … 178.75, the order data, labels and viz accept) is oriented by it: the data are
    rolled by ``numpy.roll(data, -shift, axis=-1)`` before labelling, and results
    rolled back, so a rolled mask gives the events of the sorted one.

    Raises
    ------
    DataError
        For longitudes that cannot be oriented (repeated, shuffled).
    """
    lon = np.asarray(lon, dtype=np.float64)
    if lon.ndim != 1 or lon.size < 2 or bool(np.all(np.diff(lon) > 0)):
        return lon, 0
    return _grid.orient_lon(lon, label)


def mask_variable(mask: Any, name: str = "mask") -> Any:
    """The ``mask`` variable of a mask Dataset; any other input is returned unchanged.

    Raises
    ------
    DataError
        For a Dataset without a ``mask`` variable (naming ``name`` and the variables found).
    """
    import xarray as xr

    if isinstance(mask, xr.Dataset):
        if "mask" not in mask:
            raise DataError(f"{name}: expected a Dataset with a variable 'mask', found {list(mask.data_vars)}")
        return mask["mask"]
    return mask


def find_dim(obj: Any, names: tuple[str, ...], what: str) -> str:
    """Name of the latitude/longitude dimension of an xarray object.

    With the names of :mod:`climviz.data.grid` (:data:`LAT_NAMES`, :data:`LON_NAMES`)
    this is :func:`climviz.data.grid.find_dim` (which also refuses rotated-pole
    ``rlat``/``rlon`` dimensions with a clear error); other ``names`` are looked up as given.
    """
    kind = {"latitude": "lat", "longitude": "lon"}.get(what)
    if kind is not None and tuple(names) == (LAT_NAMES if kind == "lat" else LON_NAMES):
        return _grid.find_dim(obj, kind, str(getattr(obj, "name", None) or "mask"))
    for name in names:
        if name in obj.dims:
            return name
    raise DataError(
        f"{getattr(obj, 'name', None) or 'mask'}: expected a {what} dimension named one of {names}, "
        f"found dims {tuple(obj.dims)}"
    )


def _check_mask_array(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    if mask.ndim < 2:
        raise DataError(f"{name}: expected an array with (..., lat, lon) dims, found shape {mask.shape}")
    if mask.dtype == bool:
        return mask.view(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        if np.issubdtype(mask.dtype, np.floating):
            if np.isnan(mask).any():
                raise DataError(f"{name}: expected integer class values, found NaN")
            if np.any(mask != np.round(mask)):
                raise DataError(f"{name}: expected integer class values, found fractional values")
            mask = mask.astype(np.int64)
        else:
            raise DataError(f"{name}: expected an integer class array, found dtype {mask.dtype}")
    if mask.dtype == np.uint8:
        return mask
    if mask.size and np.issubdtype(mask.dtype, np.signedinteger) and mask.min() < 0:
        raise DataError(f"{name}: expected non-negative class values, found {mask.min()}")
    if mask.dtype.itemsize > 1:
        if mask.size and mask.max() > 255:
            raise DataError(f"{name}: expected class values below 256, found {mask.max()}")
        mask = mask.astype(np.uint8)
    elif mask.dtype != np.uint8:
        mask = mask.view(np.uint8)
    return mask


def _union_min(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Union-find on a few label pairs: map every label 0..n-1 to the smallest label of its group."""
    parent = np.arange(n, dtype=np.int64)
    while True:
        pa, pb = parent[a], parent[b]
        low = np.minimum(pa, pb)
        before = parent.copy()
        np.minimum.at(parent, pa, low)
        np.minimum.at(parent, pb, low)
        parent = parent[parent]
        parent = parent[parent]
        if np.array_equal(parent, before):
            return parent


@dataclass
class Geo:
    """Grid geometry: per-row areas and cumulative per-column sums along longitude.

    ``area[i, j] = rows[i] * cols[j]`` (km²); ``cw``, ``cs``, ``cc`` are the
    cumulative sums (with a leading 0) of ``cols``, ``cols·sin(lon)`` and
    ``cols·cos(lon)``, so that sums over a run of cells ``[c0, c1)`` in one row
    are differences of two entries. The other arrays are derived once per grid
    for the event table: ``cw3`` the cumulative sums of ``cols³``, ``dphi2`` the
    squared latitude extent of each row (radians²), ``sin_lat``/``cos_lat`` per
    row and ``lon_rad``, ``cos_lon``, ``sin_lon`` per column.
    """

    lat: np.ndarray
    lon: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    cw: np.ndarray
    cs: np.ndarray
    cc: np.ndarray
    radius_km: float = EARTH_RADIUS_KM
    cw3: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1))
    dphi2: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    sin_lat: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    cos_lat: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    lon_rad: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    cos_lon: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    sin_lon: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.cos_lon.size != self.lon.size:  # built field by field: derive the rest
            edges = np.deg2rad(lat_edges(self.lat))
            latr, lr = np.deg2rad(self.lat), np.deg2rad(self.lon)
            self.cw3 = np.concatenate([[0.0], np.cumsum(self.cols ** 3)])
            self.dphi2 = np.diff(edges) ** 2
            self.sin_lat, self.cos_lat = np.sin(latr), np.cos(latr)
            self.lon_rad, self.cos_lon, self.sin_lon = lr, np.cos(lr), np.sin(lr)

    @classmethod
    def of(cls, lat: npt.ArrayLike, lon: npt.ArrayLike, radius_km: float = EARTH_RADIUS_KM) -> "Geo":
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        return _geo_cached(lat.tobytes(), lon.tobytes(), float(radius_km))

    @classmethod
    def _build(cls, lat: np.ndarray, lon: np.ndarray, radius_km: float) -> "Geo":
        edges = np.deg2rad(lat_edges(lat))
        rows = float(radius_km) ** 2 * np.abs(np.diff(np.sin(edges)))
        cols = np.deg2rad(lon_widths(lon))
        lr = np.deg2rad(lon)
        latr = np.deg2rad(lat)

        def cum(x: np.ndarray) -> np.ndarray:
            return np.concatenate([[0.0], np.cumsum(x)])

        return cls(lat, lon, rows, cols, cum(cols), cum(cols * np.sin(lr)), cum(cols * np.cos(lr)),
                   float(radius_km), cw3=cum(cols ** 3), dphi2=np.diff(edges) ** 2, sin_lat=np.sin(latr),
                   cos_lat=np.cos(latr), lon_rad=lr, cos_lon=np.cos(lr), sin_lon=np.sin(lr))


@functools.lru_cache(maxsize=16)
def _geo_cached(lat_b: bytes, lon_b: bytes, radius_km: float) -> Geo:
    lat = np.frombuffer(lat_b, dtype=np.float64).copy()
    lon = np.frombuffer(lon_b, dtype=np.float64).copy()
    return Geo._build(lat, lon, radius_km)


@dataclass
class Runs:
    """Runs of event cells along longitude: one row of one event, contiguous in memory.

    Attributes
    ----------
    start
        Flat index (into the (T, H, W) block) of the run's first cell.
    length
        Number of cells in the run.
    ids
        Event id of the run.
    cls
        Class of the run.
    shape
        Shape (T, H, W) of the block.
    """

    start: np.ndarray
    length: np.ndarray
    ids: np.ndarray
    cls: np.ndarray
    shape: tuple[int, int, int]

    @classmethod
    def empty(cls, shape: tuple[int, int, int]) -> "Runs":
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, np.zeros(0, np.int32), np.zeros(0, np.uint8), shape)

    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of all cells of all runs, and the offset of each run in that list."""
        total = int(self.length.sum())
        offsets = np.cumsum(self.length) - self.length
        idx = np.repeat(self.start - offsets, self.length) + np.arange(total)
        return idx, offsets


def find_runs(lab_flat: np.ndarray, mask_flat: np.ndarray, W: int, shape: tuple[int, int, int],
              *, labels_follow_mask: bool = False) -> Runs:
    """Runs of equal (label, class) cells within each grid row; background runs dropped.

    With ``labels_follow_mask=True`` (labels made by connected components of
    this mask, where two different events of one class can never touch) the
    run boundaries are found from the uint8 mask alone.
    """
    n = lab_flat.size
    if n == 0:
        return Runs.empty(shape)
    compiled = kernels(n)
    if compiled is not None and n % W == 0:  # one pass, no temporaries the size of the grid
        lab_c, mask_c = np.ascontiguousarray(lab_flat), np.ascontiguousarray(mask_flat)
        starts, lengths, ids, cls, count = compiled["label_runs"](lab_c, mask_c, W, n // 8 + W + 1)
        if count < 0:
            starts, lengths, ids, cls, count = compiled["label_runs"](lab_c, mask_c, W, n + W + 1)
        return Runs(starts, lengths, ids, cls, shape)
    b = np.empty(n, dtype=bool)
    b[0] = True
    np.not_equal(mask_flat[1:], mask_flat[:-1], out=b[1:])
    if not labels_follow_mask:
        b[1:] |= lab_flat[1:] != lab_flat[:-1]
    b[::W] = True
    starts = np.flatnonzero(b)
    ids = lab_flat[starts]
    keep = ids != 0
    lengths = np.diff(np.append(starts, n))[keep]
    starts = starts[keep]
    return Runs(starts, lengths, ids[keep], mask_flat[starts], shape)


def _runs_of_mask(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal non-zero class along each grid row of a (T, H, W) uint8 block.

    Returns flat start indices, lengths and classes, in raster order.
    """
    T, H, W = mask.shape
    flat = mask.reshape(-1)
    n = flat.size
    b = np.empty(n, dtype=bool)
    b[0] = True
    np.not_equal(flat[1:], flat[:-1], out=b[1:])
    b[::W] = True
    starts = np.flatnonzero(b)
    cls = flat[starts]
    keep = cls != 0
    lengths = np.diff(np.append(starts, n))[keep]
    return starts[keep], lengths, cls[keep]


def _run_edges(start: np.ndarray, length: np.ndarray, cls: np.ndarray, shape: tuple[int, int, int],
               periodic: bool, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of runs that touch (same class, same time step).

    Runs in consecutive rows touch when their column ranges overlap, or, with
    8-connectivity, meet diagonally; with ``periodic`` a run ending in the last
    column touches runs starting in the first column of the same row (and,
    with 8-connectivity, of the neighbouring rows).
    """
    diag = 1 if connectivity == 8 else 0
    T, H, W = shape
    end = start + length  # exclusive
    rowid = start // W  # global row (t * H + row)
    row = rowid % H
    # next-row neighbours: flat range [lo, hi] in row rowid + 1
    has_next = row < H - 1
    i_idx = np.flatnonzero(has_next)
    base = (rowid[i_idx] + 1) * W
    c0 = start[i_idx] - rowid[i_idx] * W
    c1 = end[i_idx] - rowid[i_idx] * W
    lo = base + np.maximum(c0 - diag, 0)
    hi = base + np.minimum(c1 - 1 + diag, W - 1)  # inclusive
    jlo = np.searchsorted(end, lo, side="right")  # first run ending after lo
    jhi = np.searchsorted(start, hi, side="right")  # first run starting after hi
    cnt = np.maximum(jhi - jlo, 0)
    total = int(cnt.sum())
    ia = np.repeat(i_idx, cnt)
    ja = np.repeat(jlo, cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    same = cls[ia] == cls[ja]
    a_parts, b_parts = [ia[same]], [ja[same]]
    if periodic and W > 1:
        left = np.flatnonzero(start == rowid * W)  # runs starting in column 0
        right = np.flatnonzero(end == (rowid + 1) * W)  # runs ending in the last column
        if left.size and right.size:
            left_of_row = np.full(T * H, -1, dtype=np.int64)
            left_of_row[rowid[left]] = left
            r = rowid[right]
            rr = row[right]
            shifts = ((0, np.ones(right.size, dtype=bool)), (-1, rr > 0), (1, rr < H - 1))
            for d, ok in shifts[: 3 if diag else 1]:
                cand = np.full(right.size, -1, dtype=np.int64)
                cand[ok] = left_of_row[r[ok] + d]
                sel = (cand >= 0)
                sel[sel] &= cls[cand[sel]] == cls[right[sel]]
                a_parts.append(right[sel])
                b_parts.append(cand[sel])
    return np.concatenate(a_parts), np.concatenate(b_parts)


def _ids_per_step(kept: np.ndarray, steps: np.ndarray, T: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Event ids 1..k within each step for the kept components (given in id order within each step).

    Returns a lookup ``component -> id`` (int32, 0 for dropped components) of length ``n``
    and the number of events per step (length ``T``).
    """
    per_step = np.bincount(steps, minlength=T)
    first = np.concatenate([[0], np.cumsum(per_step)[:-1]])
    lut = np.zeros(n, dtype=np.int32)
    lut[kept] = (np.arange(kept.size) - first[steps] + 1).astype(np.int32)
    return lut, per_step


def _no_events(shape: tuple[int, ...], want_labels: bool) -> tuple[np.ndarray | None, np.ndarray, Runs]:
    """What :func:`_label_block` returns for a block without event cells."""
    T, H, W = shape
    out = np.zeros(shape, dtype=np.int32) if want_labels else None
    return out, np.zeros(T, dtype=np.int64), Runs.empty((T, H, W))


def _run_components(mask: np.ndarray, opts: LabelOptions, compiled: dict[str, Any] | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Stage 1 of :func:`_label_block`: runs (start, length, class) in raster order and their components.

    Components are numbered 0.. in order of their first run. Compiled: one scan
    with a union-find as the runs are found; NumPy: runs from the class
    changes, touching runs paired with ``searchsorted``, and
    ``scipy.sparse.csgraph.connected_components`` on the run graph.
    """
    T, H, W = mask.shape
    if compiled is not None:
        mask = np.ascontiguousarray(mask)
        args = (bool(opts.periodic), 1 if opts.connectivity == 8 else 0)
        # room for one run per 8 cells (noisy masks have ~1 per 30), else for one per cell
        start, length, cls, comp, ncomp = compiled["run_components"](mask, *args, mask.size // 8 + W + 1)
        if ncomp < 0:
            start, length, cls, comp, ncomp = compiled["run_components"](mask, *args, mask.size + W + 1)
        return start, length, cls, comp, int(ncomp)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    start, length, cls = _runs_of_mask(mask)
    nr = start.size
    if nr == 0:
        return start, length, cls, np.zeros(0, dtype=np.int64), 0
    a, b = _run_edges(start, length, cls, (T, H, W), opts.periodic, opts.connectivity)
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(nr, nr)).tocsr()
    ncomp, comp = connected_components(graph, directed=False)
    return start, length, cls, comp, int(ncomp)


def _kept_components(start: np.ndarray, length: np.ndarray, comp: np.ndarray, ncomp: int,
                     shape: tuple[int, int, int], geo: Geo | None, opts: LabelOptions) -> np.ndarray:
    """Stage 2 of :func:`_label_block`: which components pass ``min_cells`` and ``min_area_km2``."""
    T, H, W = shape
    keep = np.ones(ncomp, dtype=bool)
    if opts.min_cells > 1 or opts.min_area_km2 > 0:
        cells = np.bincount(comp, weights=length, minlength=ncomp)
        keep &= cells >= opts.min_cells
        if opts.min_area_km2 > 0:
            if geo is None:
                raise DataError("min_area_km2 needs cell areas: give lat and lon coordinates")
            pix = start % (H * W)
            r = pix // W
            c0 = pix - r * W
            run_area = geo.rows[r] * (geo.cw[c0 + length] - geo.cw[c0])
            area = np.bincount(comp, weights=run_area, minlength=ncomp)
            keep &= area >= opts.min_area_km2 * (1 - 1e-12)
    return keep


def _label_block(
    mask: np.ndarray,
    *,
    geo: Geo | None,
    opts: LabelOptions,
    want_labels: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, Runs]:
    """Label a (T, H, W) uint8 block by run-length connected components.

    The block is scanned once for runs of equal class along rows; runs that
    touch (consecutive rows, same class, 8-connectivity, and across the seam
    if periodic) are joined into components (:func:`_run_components`), which
    is orders of magnitude less work than the grid; components below the
    size limits are dropped (:func:`_kept_components`), ids numbered 1..n per
    step in raster order and written to the event cells.

    Returns labels (int32, (T, H, W)), events per step, and the runs of event cells.
    """
    T, H, W = mask.shape
    HW = H * W
    compiled = kernels(mask.size)
    if T == 0 or H == 0 or W == 0:
        return _no_events(mask.shape, want_labels)
    start, length, cls, comp, ncomp = _run_components(mask, opts, compiled)
    if start.size == 0:
        return _no_events(mask.shape, want_labels)
    if compiled is not None and opts.min_cells <= 1 and opts.min_area_km2 <= 0:
        # nothing dropped: ids and labels in one pass over the runs
        lab = np.zeros(mask.shape if want_labels else (1,), dtype=np.int32)
        ids, per_step = compiled["number_runs"](start, length, comp, ncomp, T, HW, lab.reshape(-1), want_labels)
        return (lab if want_labels else None), per_step, Runs(start, length, ids, cls, (T, H, W))
    keep = _kept_components(start, length, comp, ncomp, (T, H, W), geo, opts)
    # components are numbered in order of their first run (raster order), hence by time step
    comp_step = np.empty(ncomp, dtype=np.int64)
    comp_step[comp] = start // HW
    kept = np.flatnonzero(keep)
    lut, per_step = _ids_per_step(kept, comp_step[kept], T, ncomp)
    ids = lut[comp]
    runs = Runs(start, length, ids, cls, (T, H, W))
    if kept.size < ncomp:
        sel = ids != 0
        runs = Runs(start[sel], length[sel], ids[sel], cls[sel], (T, H, W))
    out = np.zeros(mask.shape, dtype=np.int32) if want_labels else None
    if out is not None:
        if compiled is not None:
            compiled["write_runs"](out.reshape(-1), runs.start, runs.length, runs.ids)
        else:
            idx, _ = runs.pixels()
            out.reshape(-1)[idx] = np.repeat(runs.ids, runs.length)
    return out, per_step, runs


def _split_mixed(out: np.ndarray, mask: np.ndarray, runs: Runs, ids: np.ndarray, n: int,
                 s3: np.ndarray) -> tuple[np.ndarray, int, bool]:
    """Stage 2 of :func:`_label_block_ndimage`: split components that hold more than one class.

    ``ndimage.label`` joins touching cells of any class; each such component is
    labelled again, class by class, inside its bounding box, and gets new labels
    above ``n`` (written into ``out``). Returns the run ids, the largest label and
    whether anything changed.
    """
    from scipy import ndimage

    T, H, W = mask.shape
    HW = H * W
    flat = out.reshape(-1)
    nmax = n
    NC = int(runs.cls.max()) + 1
    # count (label, class) pairs over runs
    pairs = np.bincount(ids * NC + runs.cls, minlength=(n + 1) * NC).reshape(n + 1, NC)
    mixed = np.flatnonzero(np.count_nonzero(pairs, axis=1) > 1)
    for lab in mixed:
        sel = np.flatnonzero(ids == lab)
        pix = runs.start[sel]
        t = int(pix[0] // HW)
        rows = (pix % HW) // W
        c0 = pix % W
        r0, r1 = int(rows.min()), int(rows.max()) + 1
        cmin, cmax = int(c0.min()), int((c0 + runs.length[sel]).max())
        sub_lab = out[t, r0:r1, cmin:cmax]
        sub_cls = mask[t, r0:r1, cmin:cmax]
        inside = sub_lab == lab
        classes = np.flatnonzero(pairs[lab])
        # one label call: each class on its own plane, planes not connected
        planes = inside[None] & (sub_cls[None] == classes[:, None, None])
        new = np.zeros(planes.shape, dtype=np.int32)
        k = ndimage.label(planes, structure=s3, output=new)
        merged = new.sum(axis=0, dtype=np.int32)  # planes are disjoint
        pick = merged > 0
        sub_lab[pick] = merged[pick] + nmax
        nmax += k
        ids[sel] = flat[pix]
    return ids, nmax, bool(mixed.size)


def _seam_merge(out: np.ndarray, mask: np.ndarray, ids: np.ndarray, nmax: int,
                opts: LabelOptions) -> tuple[np.ndarray, bool]:
    """Stage 3 of :func:`_label_block_ndimage`: join labels across the longitude seam.

    Same class, first and last column, same row (and the neighbouring rows with
    8-connectivity). Returns each run's label after the merge (the smallest of
    its group) and whether anything was merged.
    """
    T, H, W = mask.shape
    if not opts.periodic or W < 2:
        return ids, False
    left, right = out[:, :, 0], out[:, :, -1]
    lc, rc = mask[:, :, 0], mask[:, :, -1]
    pa, pb = [], []
    for d in ((-1, 0, 1) if opts.connectivity == 8 else (0,)):
        a = left[:, max(0, -d): H - max(0, d)]
        b = right[:, max(0, d): H - max(0, -d)]
        ok = (a > 0) & (b > 0)
        if ok.any():
            ok &= (lc[:, max(0, -d): H - max(0, d)] == rc[:, max(0, d): H - max(0, -d)]) & (a != b)
            pa.append(a[ok])
            pb.append(b[ok])
    if not (pa and sum(p.size for p in pa)):
        return ids, False
    rep = _union_min(np.concatenate(pa).astype(np.int64), np.concatenate(pb).astype(np.int64), nmax + 1)
    return rep[ids], True


def _size_filter(runs: Runs, final: np.ndarray, nfinal: int, geo: Geo | None, opts: LabelOptions) -> np.ndarray:
    """Stage 4 of :func:`_label_block_ndimage`: which labels 0..nfinal-1 are kept (``min_cells``, ``min_area_km2``)."""
    T, H, W = runs.shape
    keep = np.ones(nfinal, dtype=bool)
    keep[0] = False
    if opts.min_cells > 1 or opts.min_area_km2 > 0:
        cells = np.bincount(final, weights=runs.length, minlength=nfinal)
        keep &= cells >= opts.min_cells
        if opts.min_area_km2 > 0:
            if geo is None:
                raise DataError("min_area_km2 needs cell areas: give lat and lon coordinates")
            pix = runs.start % (H * W)
            row = pix // W
            c0 = pix - row * W
            run_area = geo.rows[row] * (geo.cw[c0 + runs.length] - geo.cw[c0])
            area = np.bincount(final, weights=run_area, minlength=nfinal)
            keep &= area >= opts.min_area_km2 * (1 - 1e-12)
    return keep


def _renumber(out: np.ndarray, runs: Runs, final: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, Runs]:
    """Stage 5 of :func:`_label_block_ndimage`: ids 1..n per step in raster order, written into ``out``.

    Returns the events per step and the runs with their new ids (dropped events removed).
    """
    T, H, W = runs.shape
    HW = H * W
    nfinal = keep.size
    flat = out.reshape(-1)
    present = np.zeros(nfinal, dtype=bool)
    present[final] = True
    dropped = bool(np.any(present[1:] & ~keep[1:]))
    keep = keep & present
    step_of = np.zeros(nfinal, dtype=np.int64)
    if T > 1:
        step_of[final] = runs.start // HW
    kept = np.flatnonzero(keep)
    kept = kept[np.lexsort((kept, step_of[kept]))]
    lut, per_step = _ids_per_step(kept, step_of[kept], T, nfinal)
    new_ids = lut[final]
    redo = new_ids != flat[runs.start]
    if redo.any():
        sub = Runs(runs.start[redo], runs.length[redo], new_ids[redo], runs.cls[redo], runs.shape)
        idx, _ = sub.pixels()
        flat[idx] = np.repeat(sub.ids, sub.length)
    runs = Runs(runs.start, runs.length, new_ids, runs.cls, runs.shape)
    if dropped:
        sel = new_ids != 0
        runs = Runs(runs.start[sel], runs.length[sel], new_ids[sel], runs.cls[sel], runs.shape)
    return per_step, runs


def _label_block_ndimage(
    mask: np.ndarray,
    *,
    geo: Geo | None,
    opts: LabelOptions,
) -> tuple[np.ndarray, np.ndarray, Runs]:
    """Label a (T, H, W) uint8 block with ``scipy.ndimage.label``: the reference for :func:`_label_block`.

    Stages: 1. ``ndimage.label`` of all event cells (per step) and their runs;
    2. components mixing classes split (:func:`_split_mixed`); 3. labels joined
    across the longitude seam (:func:`_seam_merge`); 4. the size filter
    (:func:`_size_filter`); 5. ids renumbered per step (:func:`_renumber`).

    Returns labels (int32, (T, H, W)), events per step, and the runs of event cells.
    """
    from scipy import ndimage

    s2, s3 = (_STRUCT_2D, _STRUCT_3D) if opts.connectivity == 8 else (_STRUCT_2D_4, _STRUCT_3D_4)
    T, H, W = mask.shape
    if T == 0 or H == 0 or W == 0:
        return np.zeros(mask.shape, dtype=np.int32), np.zeros(T, dtype=np.int64), Runs.empty(mask.shape)
    out = np.empty(mask.shape, dtype=np.int32)
    if T == 1:
        n = ndimage.label(mask[0], structure=s2, output=out[0])
    else:
        n = ndimage.label(mask, structure=s3, output=out)
    if n == 0:
        return out, np.zeros(T, dtype=np.int64), Runs.empty(mask.shape)
    runs = find_runs(out.reshape(-1), mask.reshape(-1), W, mask.shape, labels_follow_mask=True)
    ids, nmax, split = _split_mixed(out, mask, runs, runs.ids.astype(np.int64), n, s3)
    final, merged = _seam_merge(out, mask, ids, nmax, opts)
    keep = _size_filter(runs, final, nmax + 1, geo, opts)
    filtered = opts.min_cells > 1 or opts.min_area_km2 > 0
    if not (split or merged or filtered) and T == 1:
        return out, np.array([n], dtype=np.int64), runs
    per_step, runs = _renumber(out, runs, final, keep)
    return out, per_step, runs


def _geo_for(lat: npt.ArrayLike | None, lon: npt.ArrayLike | None, shape: tuple[int, int],
             radius_km: float) -> Geo | None:
    if lat is None or lon is None:
        return None
    lat = np.asarray(lat)
    lon = np.asarray(lon)
    if (lat.size, lon.size) != shape:
        raise DataError(f"lat/lon: expected sizes {shape} matching the mask's last two dims, "
                        f"found ({lat.size}, {lon.size})")
    return Geo.of(lat, lon, radius_km)


def label_step(
    mask: npt.ArrayLike,
    *,
    lat: npt.ArrayLike | None = None,
    lon: npt.ArrayLike | None = None,
    min_area_km2: float = 0.0,
    min_cells: int = 1,
    periodic: bool | None = None,
    radius_km: float = EARTH_RADIUS_KM,
    connectivity: int = 8,
) -> tuple[np.ndarray, int]:
    """Label one (lat, lon) mask; return ``(labels, n_events)``.

    See :func:`label` for the rules; this is the plain-numpy single-step form.
    """
    arr = _check_mask_array(np.asarray(mask))
    if arr.ndim != 2:
        raise DataError(f"mask: expected a 2-D (lat, lon) array, found shape {arr.shape}")
    shift = 0
    if lon is not None:
        lon, shift = events_lon(lon)
    geo = _geo_for(lat, lon, arr.shape, radius_km)
    opts = LabelOptions(float(min_area_km2), int(min_cells), resolve_periodic(periodic, lon), int(connectivity))
    out, per, _ = _label_block(np.roll(arr, -shift, axis=-1)[None] if shift else arr[None], geo=geo, opts=opts)
    assert out is not None  # want_labels=True
    return (np.roll(out[0], shift, axis=-1) if shift else out[0]), int(per[0])


def _label_numpy(mask: np.ndarray, geo: Geo | None, opts: LabelOptions, lon_shift: int = 0) -> np.ndarray:
    """Labels of a (..., lat, lon) mask; ``lon_shift``: the roll of :func:`events_lon` (undone on the result)."""
    arr = _check_mask_array(mask)
    shape = arr.shape
    block = arr.reshape((-1,) + shape[-2:])
    if lon_shift:
        block = np.roll(block, -lon_shift, axis=-1)
    out, _, _ = _label_block(block, geo=geo, opts=opts)
    assert out is not None  # want_labels=True
    if lon_shift:
        out = np.roll(out, lon_shift, axis=-1)
    return out.reshape(shape)


def label(
    mask: Any,
    *,
    min_area_km2: float = 0.0,
    min_cells: int = 1,
    periodic: bool | None = None,
    lat: npt.ArrayLike | None = None,
    lon: npt.ArrayLike | None = None,
    radius_km: float = EARTH_RADIUS_KM,
    connectivity: int = 8,
) -> Any:
    """Connected components (events) of a class mask, per time step and class.

    Parameters
    ----------
    mask
        Class mask (0 = background, 1 = TC, 2 = AR, any other positive integer
        is its own class): a numpy array ``(..., lat, lon)``, or an
        ``xarray.DataArray`` with ``lat``/``lon`` dims (numpy- or dask-backed;
        dask arrays are processed chunk by chunk over time, so memory stays
        bounded by the chunk size). An ``xarray.Dataset`` with a ``mask``
        variable is accepted too. Longitudes may come in any order that
        :func:`climviz.data.grid.orient_lon` accepts (e.g. a rolled axis
        180 … 360, 0 … 180): the events are those of the sorted axis, returned
        in the input's order.
    min_area_km2
        Remove events smaller than this area (km², cell areas on a sphere of
        radius ``radius_km``). Needs ``lat``/``lon`` (taken from the
        DataArray's coordinates).
    min_cells
        Remove events with fewer grid cells.
    periodic
        Treat the first and last longitude columns as neighbours. None (the
        default): only when the longitudes cover the globe (see
        :func:`resolve_periodic`; numpy input without ``lon`` counts as
        global), so the edge columns of a regional grid stay apart. The poles
        are never connected.
    lat, lon
        Cell-centre coordinates (degrees) for numpy input.
    radius_km
        Sphere radius (km).
    connectivity
        8 (default; diagonal neighbours connect, as in TempestExtremes'
        DetectBlobs and ClimateNet) or 4 (only edge neighbours).

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        int32 event ids, 0 = no event, unique within each time step (1..n).
        Same shape and coordinates as ``mask``; the DataArray is named
        ``event`` and is dask-backed if the mask was.

    Examples
    --------
    Two TC cells at either end of the top row touch across the 0/360 seam of
    a global grid; classes never join, and ids restart at 1 in each step:

    >>> import numpy as np
    >>> from climviz.events import label
    >>> mask = np.array([[1, 0, 0, 0, 1],
    ...                  [0, 0, 2, 2, 0],
    ...                  [1, 1, 0, 0, 0]], dtype=np.uint8)
    >>> label(mask)
    array([[1, 0, 0, 0, 1],
           [0, 0, 2, 2, 0],
           [3, 3, 0, 0, 0]], dtype=int32)
    >>> label(mask, periodic=False)  # a regional grid: the edge columns stay apart
    array([[1, 0, 0, 0, 2],
           [0, 0, 3, 3, 0],
           [4, 4, 0, 0, 0]], dtype=int32)

    A DataArray of masks gives a DataArray of event ids on the same grid:

    >>> import climviz as cv
    >>> masks = cv.synthetic_run(4, shape=(32, 48))["LABELS"]
    >>> events = label(masks)
    >>> events.name, events.dims
    ('event', ('time', 'lat', 'lon'))
    >>> bool(((events > 0) == (masks > 0)).all())
    True
    """
    import xarray as xr

    opts = LabelOptions(float(min_area_km2), int(min_cells), True, int(connectivity))
    mask = mask_variable(mask)
    if not isinstance(mask, xr.DataArray):
        arr = np.asarray(mask)
        shift = 0
        if lon is not None:
            lon, shift = events_lon(lon)
        geo = _geo_for(lat, lon, arr.shape[-2:], radius_km) if arr.ndim >= 2 else None
        opts = dataclasses.replace(opts, periodic=resolve_periodic(periodic, lon))
        return _label_numpy(arr, geo, opts, shift)

    latd = find_dim(mask, LAT_NAMES, "latitude")
    lond = find_dim(mask, LON_NAMES, "longitude")
    other = [d for d in mask.dims if d not in (latd, lond)]
    da = mask.transpose(*other, latd, lond)
    geo = None
    lon_v: np.ndarray | None = None
    shift = 0
    if lond in da.coords:
        lon_v, shift = events_lon(da[lond].values, f"{mask.name or 'mask'}: coordinate {lond!r}")
    opts = dataclasses.replace(opts, periodic=resolve_periodic(periodic, lon_v))
    if latd in da.coords and lon_v is not None:
        geo = Geo.of(da[latd].values, lon_v, radius_km)
    elif opts.min_area_km2 > 0:
        raise DataError(f"{mask.name or 'mask'}: min_area_km2 needs '{latd}' and '{lond}' coordinates")
    if da.chunks is not None:
        da = da.chunk({latd: -1, lond: -1})
    result = xr.apply_ufunc(
        _label_numpy,
        da,
        kwargs={"geo": geo, "opts": opts, "lon_shift": shift},
        input_core_dims=[[latd, lond]],
        output_core_dims=[[latd, lond]],
        dask="parallelized",
        output_dtypes=[np.int32],
        keep_attrs=False,
    )
    result = result.transpose(*mask.dims)
    result.name = "event"
    result.attrs = {
        "long_name": "event id (connected component per time step and class)",
        "units": "1",
        "comment": (f"0 = no event; ids unique within a time step; {opts.connectivity}-connectivity, "
                    + ("periodic in longitude" if opts.periodic else "not periodic in longitude (regional grid)")),
        "min_area_km2": opts.min_area_km2,
        "min_cells": opts.min_cells,
        "connectivity": opts.connectivity,
        "periodic": int(opts.periodic),
    }
    return result
