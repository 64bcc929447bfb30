"""Connected components: 8-connectivity, classes kept apart, periodic seam, no pole wrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from climviz.errors import DataError
from climviz.events import label, label_step

from .conftest import as_dataarray, regular_grid

EIGHT = np.ones((3, 3), dtype=bool)


def same_partition(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """True if two labelings group the same cells together (ids may differ)."""
    fg = ours > 0
    if not np.array_equal(fg, theirs > 0):
        return False
    pairs = np.unique(np.stack([ours[fg], theirs[fg]]), axis=1)
    return pairs.shape[1] == np.unique(ours[fg]).size == np.unique(theirs[fg]).size


def test_matches_scipy_per_class_away_from_the_seam(random_masks):
    masks = random_masks.copy()
    masks[:, :, 0] = 0
    masks[:, :, -1] = 0  # nothing touches the seam
    labels = label(masks)
    assert labels.dtype == np.int32 and labels.shape == masks.shape
    for t in range(masks.shape[0]):
        n_expected = 0
        for c in (1, 2):
            theirs, n = ndimage.label(masks[t] == c, structure=EIGHT)
            n_expected += n
            ours = np.where(masks[t] == c, labels[t], 0)
            assert same_partition(ours, theirs)
        # ids are exactly 1..n within each step
        assert np.array_equal(np.unique(labels[t][labels[t] > 0]), np.arange(1, n_expected + 1))


def test_event_split_by_the_seam_is_one_event():
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[3:6, 0:2] = 2
    mask[4:7, 18:20] = 2
    lab, n = label_step(mask)
    assert n == 1 and set(np.unique(lab)) == {0, 1}
    _, n_open = label_step(mask, periodic=False)
    assert n_open == 2


def test_diagonal_contact_across_the_seam_connects():
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[4, 19] = 1
    mask[5, 0] = 1
    assert label_step(mask)[1] == 1


def test_diagonal_touching_cells_are_one_event_but_classes_stay_apart():
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2, 2] = 1
    mask[3, 3] = 1  # diagonal neighbour, same class
    mask[5, 5] = 1
    mask[6, 6] = 2  # diagonal neighbour, other class
    lab, n = label_step(mask)
    assert n == 3
    assert lab[2, 2] == lab[3, 3] != lab[5, 5] != lab[6, 6]


def test_classes_touching_do_not_merge_and_a_bridge_does_not_join():
    # AR | TC | AR in one row: the two river pieces touch only through the cyclone
    mask = np.zeros((6, 12), dtype=np.uint8)
    mask[2, 2:5] = 2
    mask[2, 5:7] = 1
    mask[2, 7:10] = 2
    lab, n = label_step(mask)
    assert n == 3
    assert lab[2, 2] != lab[2, 9]
    assert len({lab[2, 3], lab[2, 5], lab[2, 8]}) == 3


def test_poles_are_not_neighbours():
    mask = np.zeros((6, 12), dtype=np.uint8)
    mask[-1, 0] = 1
    mask[-1, 6] = 1  # opposite side of the north pole
    mask[0, 3] = 1
    mask[-1, 3] = 1  # south and north rows are not adjacent
    assert label_step(mask)[1] == 4


def test_ring_around_the_globe_is_one_event():
    mask = np.zeros((6, 12), dtype=np.uint8)
    mask[3, :] = 2
    mask[2, 0] = 2
    assert label_step(mask)[1] == 1


def test_min_cells_and_min_area_filters():
    lat, lon = regular_grid(18, 36)  # 10-degree cells
    mask = np.zeros((18, 36), dtype=np.uint8)
    mask[9, 10] = 1  # one cell just north of the equator
    mask[9:11, 20:22] = 1  # four cells
    cell = 6371.0**2 * math.radians(10) * (math.sin(math.radians(10)) - 0.0)
    assert label_step(mask, min_cells=2)[1] == 1
    lab, n = label_step(mask, lat=lat, lon=lon, min_area_km2=1.5 * cell)
    assert n == 1 and lab[9, 10] == 0 and lab[9, 20] == 1
    assert label_step(mask, lat=lat, lon=lon, min_area_km2=cell)[1] == 2
    with pytest.raises(DataError, match="lat and lon"):
        label_step(mask, min_area_km2=1.0)


def test_ids_are_unique_within_each_step_and_restart_each_step(random_masks):
    labels = label(random_masks)
    for t in range(random_masks.shape[0]):
        ids = np.unique(labels[t][labels[t] > 0])
        assert np.array_equal(ids, np.arange(1, ids.size + 1))
    # each id within a step has one class
    for t in range(random_masks.shape[0]):
        for i in np.unique(labels[t][labels[t] > 0]):
            assert np.unique(random_masks[t][labels[t] == i]).size == 1


def test_time_steps_are_labelled_independently(random_masks):
    stacked = label(random_masks)
    for t in range(random_masks.shape[0]):
        assert np.array_equal(stacked[t], label(random_masks[t]))


def test_dask_path_equals_numpy_path(random_masks):
    lat, lon = regular_grid(*random_masks.shape[1:])
    da = as_dataarray(random_masks, lat, lon)
    lazy = label(da.chunk({"time": 2}), min_cells=3)
    assert lazy.chunks is not None  # still lazy
    eager = label(random_masks, min_cells=3)
    assert isinstance(lazy, xr.DataArray) and lazy.name == "event"
    np.testing.assert_array_equal(lazy.compute().values, eager)
    np.testing.assert_array_equal(label(da, min_cells=3).values, eager)
    assert lazy.dims == ("time", "lat", "lon")


def test_dataarray_in_other_dim_order():
    lat, lon = regular_grid(10, 20)
    mask = np.zeros((2, 10, 20), dtype=np.uint8)
    mask[0, 3:5, 0] = 1
    mask[0, 3:5, 19] = 1
    da = as_dataarray(mask, lat, lon).transpose("lat", "time", "lon")
    out = label(da)
    assert out.dims == ("lat", "time", "lon")
    assert int(out.isel(time=0).max()) == 1


def test_bad_masks_are_clear_errors():
    with pytest.raises(DataError, match="integer"):
        label(np.full((4, 4), 0.5))
    with pytest.raises(DataError, match="non-negative"):
        label(-np.ones((4, 4), dtype=np.int16))
    with pytest.raises(DataError, match="latitude"):
        label(xr.DataArray(np.zeros((3, 4), np.uint8), dims=("a", "b")))


def test_run_length_labelling_groups_cells_like_the_ndimage_path(random_masks):
    """The run-length algorithm against scipy.ndimage.label plus a seam union-find, seam included."""
    from climviz.events.labelling import LabelOptions, _label_block, _label_block_ndimage

    masks = np.concatenate([random_masks, np.roll(random_masks, 7, axis=2)])  # events across the seam
    opts = LabelOptions(min_cells=2)
    rle, per_rle, _ = _label_block(masks, geo=None, opts=opts)
    ndi, per_ndi, _ = _label_block_ndimage(masks, geo=None, opts=opts)
    np.testing.assert_array_equal(per_rle, per_ndi)
    for t in range(masks.shape[0]):
        assert same_partition(rle[t], ndi[t])
    # some events do cross the seam here, so the periodic rule was exercised
    assert any(set(rle[t][:, 0][rle[t][:, 0] > 0]) & set(rle[t][:, -1][rle[t][:, -1] > 0])
               for t in range(masks.shape[0]))


def test_a_dataset_without_a_mask_variable_is_refused_by_name():
    """label, frequency and compare read a mask Dataset's 'mask' variable, and say so when it is missing."""
    import climviz.events as ev

    ds = xr.Dataset({"LABELS": (("time", "lat", "lon"), np.zeros((2, 3, 4), np.uint8))})
    for call in (lambda: ev.label(ds), lambda: ev.frequency(ds, 1), lambda: ev.compare(ds, ds)):
        with pytest.raises(DataError, match=r"expected a Dataset with a variable 'mask', found \['LABELS'\]"):
            call()


def _regional_and_global():
    """Two blobs at the west and east edges of a 100-180E grid, and the same mask on a global grid."""
    lat = np.arange(-20.0, 21.0, 2.5)  # 17 rows
    lon_reg = 100.0 + 2.5 * np.arange(33)  # 100 .. 180 E
    lon_glob = 2.5 * np.arange(144)  # 0 .. 357.5 E
    m_reg = np.zeros((2, lat.size, lon_reg.size), dtype=np.uint8)
    m_reg[:, 6:9, 0:2] = 2  # 100-102.5 E
    m_reg[:, 7:10, -2:] = 2  # 177.5-180 E, rows overlapping: would touch across a seam
    m_glob = np.zeros((2, lat.size, lon_glob.size), dtype=np.uint8)
    m_glob[:, 6:9, 0:2] = 2
    m_glob[:, 7:10, -2:] = 2  # across the 0/360 seam
    return lat, lon_reg, m_reg, lon_glob, m_glob


def test_regional_grid_edges_stay_apart_and_a_global_seam_joins():
    from climviz.events import is_global_lon, label_table
    from climviz.events.tracking import track_masks

    lat, lon_reg, m_reg, lon_glob, m_glob = _regional_and_global()
    assert not is_global_lon(lon_reg) and is_global_lon(lon_glob)
    assert is_global_lon(np.arange(-180.0, 180.0, 1.25))
    reg = xr.DataArray(m_reg, dims=("time", "lat", "lon"), coords={"lat": lat, "lon": lon_reg})
    glob = xr.DataArray(m_glob, dims=("time", "lat", "lon"), coords={"lat": lat, "lon": lon_glob})
    # detected from the coordinates: two events on the regional grid, one on the global grid
    lab_reg = label(reg)
    assert int(lab_reg[0].max()) == 2 and lab_reg.attrs["periodic"] == 0
    assert int(lab_reg[0, 7, 0]) != int(lab_reg[0, 7, -1])
    assert int(label(glob)[0].max()) == 1
    # numpy input with lon behaves the same; periodic= overrides the detection
    assert label_step(m_reg[0], lon=lon_reg)[1] == 2
    assert label_step(m_reg[0], lon=lon_reg, periodic=True)[1] == 1
    assert label_step(m_glob[0], lon=lon_glob)[1] == 1
    assert label_step(m_glob[0], lon=lon_glob, periodic=False)[1] == 2
    # the table: two events with their own centroids near 101.25 E and 178.75 E (not 139.75 E between them)
    _, tab = label_table(reg)
    t0 = tab[tab["step"] == 0].sort_values("centroid_lon")
    assert len(t0) == 2
    assert t0["centroid_lon"].to_numpy() == pytest.approx([101.25, 178.75], abs=1e-9)
    _, tab_g = label_table(glob)
    assert (tab_g["step"] == 0).sum() == 1
    # tracking: two tracks on the regional grid, one on the global grid
    assert len(track_masks(reg).tracks) == 2
    assert len(track_masks(glob).tracks) == 1


def test_four_connectivity_keeps_diagonal_neighbours_apart(random_masks):
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2, 2] = 1
    mask[3, 3] = 1  # diagonal only
    mask[5, 1:4] = 2
    mask[6, 2] = 2  # shares an edge
    assert label_step(mask)[1] == 2
    lab, n = label_step(mask, connectivity=4)
    assert n == 3 and lab[2, 2] != lab[3, 3] and lab[5, 1] == lab[6, 2]
    # against scipy's 4-connected labelling, class by class, away from the seam
    masks = random_masks.copy()
    masks[:, :, 0] = 0
    masks[:, :, -1] = 0
    labels = label(masks, connectivity=4)
    four = ndimage.generate_binary_structure(2, 1)
    for t in range(masks.shape[0]):
        for c in (1, 2):
            theirs, _ = ndimage.label(masks[t] == c, structure=four)
            assert same_partition(np.where(masks[t] == c, labels[t], 0), theirs)
    # a diagonal contact across the seam does not connect with 4-connectivity; an edge contact does
    seam = np.zeros((10, 20), dtype=np.uint8)
    seam[4, 19] = 1
    seam[5, 0] = 1
    assert label_step(seam, connectivity=4)[1] == 2
    seam[4, 0] = 1
    assert label_step(seam, connectivity=4)[1] == 1
    # the run-length and the ndimage implementations agree on 4-connectivity too
    from climviz.events.labelling import LabelOptions, _label_block, _label_block_ndimage

    both = np.concatenate([random_masks, np.roll(random_masks, 7, axis=2)])
    opts = LabelOptions(connectivity=4)
    rle, per_rle, _ = _label_block(both, geo=None, opts=opts)
    ndi, per_ndi, _ = _label_block_ndimage(both, geo=None, opts=opts)
    np.testing.assert_array_equal(per_rle, per_ndi)
    for t in range(both.shape[0]):
        assert same_partition(rle[t], ndi[t])
    with pytest.raises(DataError, match="connectivity"):
        label(mask, connectivity=6)
