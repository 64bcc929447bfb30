"""Dense noisy masks (what a half-trained model predicts) against an independent scipy computation.

The reference labels each class on its own with ``scipy.ndimage.label``
(8-connectivity), then joins components that touch across the 0/360 seam
with a written-out union-find over the first and last columns; cell areas
are the closed form R² Δλ (sin φ_north − sin φ_south). The events code uses
run-length components and prefix sums, so agreement is not the code checking
itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from climviz.events import label, label_table, table

from .conftest import regular_grid

R = 6371.0


def dense_noisy_masks(n: int, shape: tuple[int, int], fraction: float = 0.35, seed: int = 7) -> np.ndarray:
    """Smoothed noise above its (1 - fraction) quantile; TC where a smoother field is positive, else AR."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n,) + shape, dtype=np.uint8)
    for i in range(n):
        z = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5, mode="wrap")
        c = ndimage.gaussian_filter(rng.standard_normal(shape), 4.0, mode="wrap")
        inside = z > np.quantile(z, 1.0 - fraction)
        out[i][inside & (c > 0)] = 1
        out[i][inside & (c <= 0)] = 2
    return out


def reference_components(mask: np.ndarray) -> np.ndarray:
    """Component ids (0 = background) per class, 8-connected, joined across the longitude seam."""
    H, W = mask.shape
    ref = np.zeros(mask.shape, dtype=np.int64)
    offset = 0
    for cls in np.unique(mask[mask > 0]):
        lab, n = ndimage.label(mask == cls, structure=np.ones((3, 3), dtype=bool))
        ref[lab > 0] = lab[lab > 0] + offset
        offset += n
    parent = list(range(offset + 1))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for r in range(H):
        for dr in (-1, 0, 1):
            rr = r + dr
            if not 0 <= rr < H:
                continue
            a, b = ref[r, W - 1], ref[rr, 0]
            if a and b and mask[r, W - 1] == mask[rr, 0]:
                parent[find(a)] = find(b)
    return np.vectorize(lambda v: find(v) if v else 0)(ref)


def cell_areas(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    dlat = 180.0 / lat.size
    dlon = math.radians(360.0 / lon.size)
    rows = [R**2 * dlon * (math.sin(math.radians(p + dlat / 2)) - math.sin(math.radians(p - dlat / 2)))
            for p in lat]
    return np.repeat(np.array(rows)[:, None], lon.size, axis=1)


@pytest.fixture(scope="module")
def dense():
    masks = dense_noisy_masks(3, (48, 72))
    lat, lon = regular_grid(48, 72)
    return masks, lat, lon


def test_dense_masks_are_dense(dense):
    masks, _, _ = dense
    assert 0.33 < (masks > 0).mean() < 0.37
    assert (masks == 1).any() and (masks == 2).any()


def test_dense_labels_are_the_reference_partition(dense):
    masks, lat, lon = dense
    labels, tab = label_table(masks, lat=lat, lon=lon)
    np.testing.assert_array_equal(labels, label(masks, lat=lat, lon=lon))
    for t, m in enumerate(masks):
        ref = reference_components(m)
        ours = labels[t]
        np.testing.assert_array_equal(ours > 0, m > 0)
        ev = m > 0
        pairs = np.unique(np.stack([ours[ev], ref[ev]]), axis=1)
        # a bijection between our events and the reference components
        assert pairs.shape[1] == np.unique(ours[ev]).size == np.unique(ref[ev]).size
        # ids 1..n within the step
        assert set(np.unique(ours[ev])) == set(range(1, np.unique(ref[ev]).size + 1))
        assert (tab["step"] == t).sum() == np.unique(ref[ev]).size
    assert len(tab) > 60  # many ragged events: the dense case
    # the seam is exercised: some events hold cells in both the first and the last column
    across = [np.intersect1d(labels[t][:, 0], labels[t][:, -1]) for t in range(len(masks))]
    assert sum(int((a > 0).sum()) for a in across) >= 2


def test_dense_table_areas_cells_and_classes_match_the_reference(dense):
    masks, lat, lon = dense
    areas = cell_areas(lat, lon)
    labels, tab = label_table(masks, lat=lat, lon=lon)
    for t, m in enumerate(masks):
        ref = reference_components(m)
        rows = tab[tab["step"] == t].set_index("event")
        for comp in np.unique(ref[ref > 0]):
            cells = ref == comp
            ev = int(np.unique(labels[t][cells])[0])
            row = rows.loc[ev]
            assert row["n_cells"] == cells.sum()
            assert row["area_km2"] == pytest.approx(areas[cells].sum(), rel=1e-12)
            assert row["class"] == int(np.unique(m[cells])[0])
    # the separate calls give the same table
    sep = table(label(masks, lat=lat, lon=lon), masks, lat=lat, lon=lon)
    cols = ["step", "event", "class", "n_cells", "area_km2", "centroid_lat", "length_km", "width_km"]
    np.testing.assert_allclose(sep[cols].to_numpy(float), tab[cols].to_numpy(float), rtol=1e-12)


def test_compiled_labels_and_axes_equal_the_numpy_path(dense, random_masks, monkeypatch):
    """With numba installed, big blocks are labelled and their axes summed in compiled loops: same results."""
    pytest.importorskip("numba")
    from climviz.events import _kernels

    masks, lat, lon = dense
    psl = np.random.default_rng(3).normal(101000.0, 800.0, size=masks.shape)
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "1")
    assert _kernels.kernels(10**9) is None
    ref_labels, ref = label_table(masks, lat=lat, lon=lon)
    _, ref_3d = label_table(masks, {"PSL": psl}, lat=lat, lon=lon, centroid="cartesian")
    others = {(p, c, mc): label(random_masks, periodic=p, connectivity=c, min_cells=mc)
              for p in (True, False) for c in (8, 4) for mc in (1, 4)}
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "0")
    monkeypatch.setattr(_kernels, "MIN_CELLS", 0)
    assert _kernels.kernels(1) is not None
    labels, tab = label_table(masks, lat=lat, lon=lon)
    np.testing.assert_array_equal(labels, ref_labels)
    for (p, c, mc), want in others.items():
        np.testing.assert_array_equal(label(random_masks, periodic=p, connectivity=c, min_cells=mc), want)
    exact = ["step", "event", "class", "n_cells", "area_km2", "centroid_lat", "centroid_lon", "lat_min", "lat_max"]
    np.testing.assert_array_equal(tab[exact].to_numpy(float), ref[exact].to_numpy(float))
    _, tab_3d = label_table(masks, {"PSL": psl}, lat=lat, lon=lon, centroid="cartesian")
    cols = ["centroid_lat", "centroid_lon", "PSL_min", "PSL_max", "PSL_mean"]
    np.testing.assert_allclose(tab_3d[cols].to_numpy(float), ref_3d[cols].to_numpy(float), rtol=1e-12)
    np.testing.assert_allclose(tab["length_km"], ref["length_km"], rtol=1e-11)
    np.testing.assert_allclose(tab["width_km"], ref["width_km"], rtol=1e-11)
    assert (tab["length_km"] >= tab["width_km"]).all()


def test_compiled_labels_of_one_cell_runs_equal_the_numpy_path(monkeypatch):
    """A mask of alternating classes (a run per cell) overflows the compiled scan's first guess of the run count."""
    pytest.importorskip("numba")
    from climviz.events import _kernels

    rng = np.random.default_rng(5)
    masks = rng.integers(0, 3, size=(2, 24, 40)).astype(np.uint8)
    masks[:, ::2, ::2] = 1
    masks[:, 1::2, 1::2] = 2
    lat, lon = regular_grid(24, 40)
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "1")
    ref_labels, ref = label_table(masks, lat=lat, lon=lon)
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "0")
    monkeypatch.setattr(_kernels, "MIN_CELLS", 0)
    labels, tab = label_table(masks, lat=lat, lon=lon)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(tab["n_cells"], ref["n_cells"])
    np.testing.assert_allclose(tab["length_km"], ref["length_km"], rtol=1e-11)


def test_compiled_axes_of_large_events_equal_the_numpy_path(monkeypatch):
    """Events reaching 30-90 degrees and beyond 90 degrees from their centroid take the compiled loops'
    half-angle, quarter-angle and atan2 branches: the same lengths and widths as the NumPy path."""
    pytest.importorskip("numba")
    from climviz.events import _kernels

    lat, lon = regular_grid(36, 72)
    masks = np.zeros((3, 36, 72), dtype=np.uint8)
    masks[0, 14:22, 10:40] = 1  # 150 x 40 degrees at the equator: cells up to ~75 degrees away
    masks[1, 2:30, 30:34] = 2  # 140 degrees along a meridian
    masks[2, 30:34, :] = 1  # a ring around the pole
    masks[2, 10:12, 0:70] = 2  # nearly around the globe
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "1")
    _, ref = label_table(masks, lat=lat, lon=lon)
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "0")
    monkeypatch.setattr(_kernels, "MIN_CELLS", 0)
    _, tab = label_table(masks, lat=lat, lon=lon)
    assert len(tab) == 4
    np.testing.assert_allclose(tab["length_km"], ref["length_km"], rtol=1e-11)
    np.testing.assert_allclose(tab["width_km"], ref["width_km"], rtol=1e-11)


def test_compiled_field_statistics_equal_the_numpy_path(dense, monkeypatch):
    """Every statistic, float32 / integer fields and NaN cells (NaN spreads to the event, as in NumPy)."""
    pytest.importorskip("numba")
    from climviz.events import _kernels

    masks, lat, lon = dense
    rng = np.random.default_rng(11)
    tmq = rng.uniform(0.0, 60.0, size=masks.shape).astype(np.float32)
    for t in (0, 1):  # a few event cells of two steps are missing values
        r, c = np.nonzero(masks[t])
        pick = rng.choice(r.size, size=4, replace=False)
        tmq[t, r[pick], c[pick]] = np.nan
    count = rng.integers(0, 9, size=masks.shape)
    half = rng.normal(0.0, 10.0, size=masks.shape).astype(np.float16)
    fields = {"TMQ": tmq, "COUNT": count, "HALF": half}
    stats = ["min", "max", "sum", "mean", "integral"]
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "1")
    _, ref = label_table(masks, fields, stats=stats, lat=lat, lon=lon)
    monkeypatch.setenv("CLIMVIZ_NO_NUMBA", "0")
    monkeypatch.setattr(_kernels, "MIN_CELLS", 0)
    _, tab = label_table(masks, fields, stats=stats, lat=lat, lon=lon)
    assert tab["TMQ_min"].isna().sum() >= 1  # the NaN cells reach some events
    cols = [f"{f}_{s}" for f in fields for s in stats]
    for c in cols:
        exact = c.endswith(("_min", "_max")) or c.startswith("COUNT_sum")
        if exact:
            np.testing.assert_array_equal(tab[c].to_numpy(), ref[c].to_numpy(), err_msg=c)
        else:
            np.testing.assert_allclose(tab[c].to_numpy(), ref[c].to_numpy(), rtol=1e-12, err_msg=c)
    # and an independent check of one event: TMQ over its cells, from the labels
    labels, _ = label_table(masks, lat=lat, lon=lon)
    row = tab[(tab["step"] == 2)].iloc[0]
    cells = labels[2] == row["event"]
    assert row["TMQ_max"] == pytest.approx(float(tmq[2][cells].max()))
    assert row["COUNT_sum"] == int(count[2][cells].sum())


def test_compiled_runs_of_given_labels_equal_the_numpy_path(dense, monkeypatch):
    """table() finds the runs of (label, class) in the given labels: compiled and NumPy give the same runs,
    also for labels that split a class inside a row (ids not made by label) and for every id dtype."""
    pytest.importorskip("numba")
    from climviz.events import _kernels
    from climviz.events.labelling import find_runs

    masks, lat, lon = dense
    labels = label(masks, lat=lat, lon=lon)
    odd = labels.astype(np.int64) * 3
    odd[:, :, 36:] += (odd[:, :, 36:] > 0)  # the same class under two ids within a row
    for lab in (labels, odd, labels.astype(np.uint16)):
        flat, mflat = lab.reshape(-1), masks.reshape(-1)
        monkeypatch.setattr(_kernels, "MIN_CELLS", 10**12)
        ref = find_runs(flat, mflat, masks.shape[2], masks.shape)
        monkeypatch.setattr(_kernels, "MIN_CELLS", 0)
        got = find_runs(flat, mflat, masks.shape[2], masks.shape)
        for f in ("start", "length", "ids", "cls"):
            np.testing.assert_array_equal(getattr(got, f), getattr(ref, f), err_msg=f)
            assert getattr(got, f).dtype == getattr(ref, f).dtype, f
    monkeypatch.setattr(_kernels, "MIN_CELLS", 10**12)
    ref_tab = table(labels, masks, lat=lat, lon=lon)
    monkeypatch.setattr(_kernels, "MIN_CELLS", 0)
    tab = table(labels, masks, lat=lat, lon=lon)
    exact = ["step", "event", "class", "n_cells", "area_km2", "centroid_lat", "centroid_lon", "lat_min", "lat_max"]
    np.testing.assert_array_equal(tab[exact].to_numpy(float), ref_tab[exact].to_numpy(float))
