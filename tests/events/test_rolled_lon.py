"""A mask whose longitudes are rolled (180 … 360, 0 … 180, the order data, labels and viz accept)
gives the events of the same mask on the sorted axis, up to the order of the longitude columns.

The reference is the sorted mask labelled as usual, and, for the partition, scipy.ndimage
per class on the sorted grid with the seam joined by hand; nothing is compared with
the rolled call's own output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

from climviz.errors import DataError
from climviz.events import label, label_step, label_table, table

from .conftest import as_dataarray, regular_grid

ROLL = 32  # of 64 columns: the axis starts at 180 degrees


@pytest.fixture
def sorted_and_rolled(random_masks):
    lat, lon = regular_grid(40, 64)
    lon_r = np.roll(lon, ROLL)
    assert lon_r[0] == 180.0 and lon_r[ROLL] == 0.0  # 180 … 354.375, 0 … 174.375
    return random_masks, lat, lon, np.roll(random_masks, ROLL, axis=-1), lon_r


def seam_joined_reference(mask: np.ndarray) -> np.ndarray:
    """Per-class 8-connected components of one sorted (lat, lon) step, joined across the 0/360 seam."""
    H, W = mask.shape
    ref = np.zeros(mask.shape, dtype=np.int64)
    n = 0
    for c in (1, 2):
        lab, k = ndimage.label(mask == c, structure=np.ones((3, 3), dtype=bool))
        ref[lab > 0] = lab[lab > 0] + n
        n += k
    parent = np.arange(n + 1)

    def find(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for r in range(H):
        for rr in (r - 1, r, r + 1):
            if 0 <= rr < H and ref[r, W - 1] and ref[rr, 0] and mask[r, W - 1] == mask[rr, 0]:
                parent[find(int(ref[r, W - 1]))] = find(int(ref[rr, 0]))
    return np.vectorize(lambda v: find(int(v)) if v else 0)(ref)


def test_numpy_rolled_lon_gives_the_sorted_events(sorted_and_rolled):
    masks, lat, lon, masks_r, lon_r = sorted_and_rolled
    want = label(masks, lat=lat, lon=lon)
    got = label(masks_r, lat=lat, lon=lon_r)
    np.testing.assert_array_equal(got, np.roll(want, ROLL, axis=-1))
    for t in range(masks.shape[0]):  # and the sorted labels are the seam-joined scipy partition
        ref = seam_joined_reference(masks[t])
        fg = masks[t] > 0
        pairs = np.unique(np.stack([want[t][fg], ref[fg]]), axis=1)
        assert pairs.shape[1] == np.unique(want[t][fg]).size == np.unique(ref[fg]).size
    lab, n = label_step(masks_r[0], lat=lat, lon=lon_r)
    np.testing.assert_array_equal(lab, got[0])
    assert n == int(got[0].max())


def test_dataarray_rolled_lon_keeps_its_coordinates(sorted_and_rolled):
    masks, lat, lon, masks_r, lon_r = sorted_and_rolled
    da = as_dataarray(masks, lat, lon)
    da_r = as_dataarray(masks_r, lat, lon_r)
    ev = label(da, min_area_km2=1e5)
    ev_r = label(da_r, min_area_km2=1e5)
    np.testing.assert_array_equal(ev_r["lon"].values, lon_r)
    xr.testing.assert_equal(ev_r.sortby("lon"), ev)
    assert ev_r.attrs["periodic"] == 1  # the rolled global axis is still periodic
    # dask-backed, chunked in time
    ev_rd = label(da_r.chunk({"time": 2}))
    np.testing.assert_array_equal(ev_rd.values, np.roll(label(da).values, ROLL, axis=-1))


def test_rolled_lon_tables_equal_the_sorted_tables(sorted_and_rolled):
    masks, lat, lon, masks_r, lon_r = sorted_and_rolled
    psl = np.random.default_rng(1).normal(101000.0, 500.0, size=masks.shape)
    da, da_r = as_dataarray(masks, lat, lon), as_dataarray(masks_r, lat, lon_r)
    f = xr.DataArray(psl, dims=da.dims, coords=da.coords)
    f_r = xr.DataArray(np.roll(psl, ROLL, axis=-1), dims=da_r.dims, coords=da_r.coords)
    lab, tab = label_table(da, {"PSL": f}, stats=["min", "mean"])
    lab_r, tab_r = label_table(da_r, {"PSL": f_r}, stats=["min", "mean"])
    np.testing.assert_array_equal(lab_r["lon"].values, lon_r)
    xr.testing.assert_equal(lab_r.sortby("lon"), lab)
    pd.testing.assert_frame_equal(tab_r, tab)
    # the separate calls, numpy input
    sep_r = table(label(masks_r, lat=lat, lon=lon_r), masks_r, lat=lat, lon=lon_r)
    sep = table(label(masks, lat=lat, lon=lon), masks, lat=lat, lon=lon)
    pd.testing.assert_frame_equal(sep_r, sep)
    assert len(tab) > 20


def test_shuffled_lon_is_refused(random_masks):
    lat, lon = regular_grid(40, 64)
    bad = lon.copy()
    bad[[3, 40]] = bad[[40, 3]]
    with pytest.raises(DataError, match="increasing around the globe"):
        label(random_masks, lat=lat, lon=bad)
    with pytest.raises(DataError, match="increasing around the globe"):
        label_table(as_dataarray(random_masks, lat, bad))


def test_compare_maps_of_a_rolled_mask_sit_at_their_longitudes():
    """compare()'s frequency maps are labelled with coordinates: a rolled mask's map, read at a
    longitude, is the class frequency of that longitude (counted by hand), as for the sorted mask."""
    from climviz.events import compare

    lat, lon = regular_grid(8, 16)
    a = np.zeros((8, 8, 16), dtype=np.uint8)
    a[:, 3, 2] = 1              # TC at lon[2] every step
    a[:4, 5, 11] = 1            # and at lon[11] half the steps
    b = np.zeros_like(a)
    lon_r = np.roll(lon, 8)     # 180 … 337.5, 0 … 157.5
    for masks, x in (((a, b), lon), ((np.roll(a, 8, axis=-1), np.roll(b, 8, axis=-1)), lon_r)):
        res = compare(as_dataarray(masks[0], lat, x), as_dataarray(masks[1], lat, x), classes="tc",
                      block_steps=2, n_boot=10, seed=0)
        fa = res.maps["frequency_a_tropical_cyclone"]
        assert float(fa.sel(lat=lat[3], lon=lon[2])) == 1.0
        assert float(fa.sel(lat=lat[5], lon=lon[11])) == 0.5
        assert float(fa.sum()) == 1.5
    # the same mask given once rolled and once sorted: the same grid, no difference anywhere
    same = compare(as_dataarray(np.roll(a, 8, axis=-1), lat, lon_r), as_dataarray(a, lat, lon), classes="tc",
                   block_steps=2, n_boot=10, seed=0)
    assert float(np.abs(same.maps["difference_tropical_cyclone"]).max()) == 0.0
