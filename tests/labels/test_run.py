"""label_run on the synthetic sample: the detectors recover the constructed storms.

Scores are computed here from LABELS and the constructed features, independently
of the detectors. Measured on this sample (seed 0, 96 x 144, 24 steps): TC pixel
IoU 0.69, AR pixel IoU 0.64, TC node detection 71/72, TC events in tracks long
enough to stitch all found, AR events all found, no false alarms. The margins
below are conservative but fail if a detector breaks (e.g. a wrong hemisphere
sign, a lost seam, a mask radius off by a factor of two).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from climviz.data.masks import validate_mask_dataset
from climviz.errors import ConfigError
from climviz.labels import ARConfig, TCConfig, detect_ar, detect_tc, label_run
from climviz.labels._grid import label_periodic


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def centre_cells(ds, feats):
    """Time, row and column index of the grid cell nearest each feature centre."""
    ti = np.searchsorted(ds.time.values, feats["time"].values)
    ii = np.abs(ds.lat.values[None, :] - feats["lat"].values[:, None]).argmin(1)
    dlon = (ds.lon.values[None, :] - feats["lon"].values[:, None] + 180) % 360 - 180
    return ti, ii, np.abs(dlon).argmin(1)


def overlap_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of the connected components of ``a`` that overlap ``b``."""
    lab, n = label_periodic(a)
    hits = np.bincount(lab.ravel(), weights=b.ravel(), minlength=n + 1)[1:] > 0
    return float(hits.mean()) if n else float("nan")


@pytest.fixture(scope="module")
def labelled(synthetic_sample):
    ds, feats = synthetic_sample
    masks, details = label_run(ds, return_details=True)
    return ds, feats, masks, details


def test_mask_dataset_has_the_predict_form(labelled):
    ds, _, masks, details = labelled
    validate_mask_dataset(masks)
    assert masks["mask"].dtype == np.uint8 and masks["mask"].dims == ("time", "lat", "lon")
    assert masks["mask"].attrs["flag_meanings"] == "background tropical_cyclone atmospheric_river"
    for c in ("time", "lat", "lon"):
        np.testing.assert_array_equal(masks[c].values, ds[c].values)
    assert masks.attrs["model"] == "heuristic" and "TC:" in masks.attrs["method"]
    assert '"min_length_km": 2000.0' in masks.attrs["ar_config"]
    assert set(np.unique(masks["mask"].values)) == {0, 1, 2}
    assert details.tc.stitched  # the run spans 69 h >= 54 h


def test_tc_pixels_and_events_are_recovered(labelled):
    ds, feats, masks, details = labelled
    lab, m = ds["LABELS"].values, masks["mask"].values
    assert iou(m == 1, lab == 1) >= 0.55
    # every storm present for at least min_duration_h inside the run is found at its centre
    tc = feats[feats["kind"] == "tc"]
    span = tc.groupby("feature_id")["time"].agg(lambda t: (t.max() - t.min()) / np.timedelta64(1, "h"))
    long_lived = tc[tc["feature_id"].isin(span.index[span >= 54.0])]
    assert len(long_lived) >= 48
    ti, ii, jj = centre_cells(ds, long_lived)
    assert (m[ti, ii, jj] == 1).mean() >= 0.95
    # no detected TC lies away from a constructed one
    assert overlap_fraction(m == 1, lab == 1) >= 0.95
    # one track per long-lived storm
    assert len(details.tc.tracks) == long_lived["feature_id"].nunique()


def test_tc_nodes_find_every_storm_at_every_step(synthetic_sample):
    ds, feats = synthetic_sample
    res = detect_tc(ds, config=TCConfig(stitch=False))
    tc = feats[feats["kind"] == "tc"]
    ti, ii, jj = centre_cells(ds, tc)
    pod = (res.mask.values[ti, ii, jj]).mean()
    assert pod >= 0.95
    assert len(res.nodes) <= len(tc)  # nothing else in the run looks like a TC


def test_ar_pixels_and_events_are_recovered(labelled, synthetic_sample):
    ds, _, masks, _ = labelled
    lab, m = ds["LABELS"].values, masks["mask"].values
    assert iou(m == 2, lab == 2) >= 0.5
    assert overlap_fraction(lab == 2, m == 2) >= 0.95  # probability of detection of AR events
    ar = detect_ar(ds)
    assert overlap_fraction(ar.mask.values, lab == 2) >= 0.9  # few false alarms
    assert ar.regions["is_ar"].sum() == pytest.approx(2 * ds.sizes["time"], rel=0.1)  # n_ar = 2 at every step


def test_other_orientations_give_the_same_masks(synthetic_sample, labelled):
    ds, _ = synthetic_sample
    flipped = ds.isel(lat=slice(None, None, -1))
    flipped = flipped.assign_coords(lon=((flipped.lon + 180) % 360) - 180).sortby("lon")
    masks2 = label_run(flipped)
    np.testing.assert_array_equal(masks2["mask"].values, labelled[2]["mask"].values)


def test_single_detectors_and_settings_as_dicts(synthetic_sample):
    ds, _ = synthetic_sample
    short = ds.isel(time=slice(0, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        only_tc = label_run(short, ar=False, tc={"mask_method": "fixed", "mask_radius_km": 500.0})
    assert set(np.unique(only_tc["mask"].values)) == {0, 1}
    only_ar = label_run(short, tc=False)
    assert set(np.unique(only_ar["mask"].values)) == {0, 2}
    assert only_ar.attrs["tc_config"] == "off"
    with pytest.raises(ConfigError, match="both detectors are off"):
        label_run(short, tc=False, ar=False)
    with pytest.raises(ConfigError, match="mask_radius"):
        label_run(short, tc={"mask_radius": 3})


@pytest.fixture(scope="module")
def zarr_run(synthetic_sample, tmp_path_factory):
    """The sample's detector fields written to Zarr (5 steps a chunk) and opened lazily,
    with an extra variable that must never be read (computing it raises)."""
    import dask.array as dsa
    import xarray as xr

    ds, _ = synthetic_sample
    path = tmp_path_factory.mktemp("zarr_run") / "run.zarr"
    ds[["PSL", "U850", "V850", "T200", "T500", "TMQ"]].chunk({"time": 5}).to_zarr(path, mode="w")
    lazy = xr.open_zarr(path)

    def boom(block):
        raise AssertionError("label_run read a variable the detectors do not need")

    unused = dsa.zeros(lazy["PSL"].shape, chunks=lazy["PSL"].data.chunks, dtype="f4").map_blocks(
        boom, meta=np.empty((0, 0, 0), dtype="f4"))
    return ds, lazy.assign(UNUSED=(lazy["PSL"].dims, unused))


@pytest.mark.parametrize("block_steps", [5, 7, 24])
def test_block_reading_equals_the_whole_run_detectors(zarr_run, block_steps):
    """label_run reads blocks of the lazy run once; same answers as the old serial path
    (detect_tc and detect_ar over the whole lazy run) and its mask painted here by hand."""
    _, lazy = zarr_run
    masks, det = label_run(lazy, block_steps=block_steps, return_details=True)
    tc, ar = detect_tc(lazy), detect_ar(lazy)
    by_hand = np.zeros(tc.mask.shape, dtype=np.uint8)
    by_hand[ar.mask.values] = 2
    by_hand[tc.mask.values] = 1
    assert (by_hand == 1).sum() > 0 and (by_hand == 2).sum() > 0
    np.testing.assert_array_equal(masks["mask"].values, by_hand)
    pd.testing.assert_frame_equal(det.tc.nodes, tc.nodes)
    assert det.tc.nodes.attrs == tc.nodes.attrs and sum(tc.nodes.attrs["rejected"].values()) > 0
    pd.testing.assert_frame_equal(det.tc.tracks, tc.tracks)
    assert det.tc.criteria == tc.criteria and det.tc.stitched == tc.stitched
    pd.testing.assert_frame_equal(det.ar.regions, ar.regions)
    np.testing.assert_array_equal(det.ar.mask.values, ar.mask.values)
    assert det.ar.threshold == ar.threshold


@pytest.mark.parametrize("scope", ["global", "cell"])
def test_block_reading_with_percentile_thresholds_equals_the_whole_run(zarr_run, scope):
    _, lazy = zarr_run
    cfg = {"percentile": 90.0, "percentile_scope": scope}
    masks, det = label_run(lazy, tc=False, ar=cfg, block_steps=5, return_details=True)
    ar = detect_ar(lazy, config=ARConfig(**cfg))
    np.testing.assert_array_equal(masks["mask"].values == 2, ar.mask.values)
    assert (masks["mask"].values == 2).sum() > 0
    pd.testing.assert_frame_equal(det.ar.regions, ar.regions)
    if scope == "global":
        assert det.ar.threshold == ar.threshold
    else:
        np.testing.assert_array_equal(det.ar.threshold.values, ar.threshold.values)


@pytest.mark.parametrize("periodic", [True, False])
def test_candidate_window_minimum_equals_scipys_running_minimum(periodic):
    """TC merging takes the smallest candidate rank in a run of columns at the candidates
    only; scipy's 1-D running minimum of the whole rank field is the reference."""
    from scipy import ndimage

    from climviz.labels.tc import _RowRanks

    rng = np.random.default_rng(3)
    shape = (3, 17, 29)
    flat = np.sort(rng.choice(np.prod(shape), size=120, replace=False))
    t, i, j = np.unravel_index(flat, shape)
    rank = rng.permutation(flat.size).astype(np.float64)
    field = np.full(shape, np.inf)
    field[t, i, j] = rank
    ranks = _RowRanks(t, i, j, rank, shape[1], shape[2])
    qt, qi, qj = (rng.integers(0, n, 400) for n in shape)
    for width in (0, 1, 5, 13, 14, 29):
        ref = ndimage.minimum_filter1d(field, size=2 * width + 1, axis=2, cval=np.inf,
                                       mode="wrap" if periodic else "constant")
        if periodic and 2 * width + 1 >= shape[2]:
            ref = np.broadcast_to(field.min(axis=2, keepdims=True), shape)
        got = ranks.window_min(qt, qi, qj, np.full(qt.size, width), periodic)
        np.testing.assert_array_equal(got, ref[qt, qi, qj])
        assert np.isfinite(got).any()
