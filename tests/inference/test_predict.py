"""predict(): masks equal an independent forward pass; files are plain CF netCDF / Zarr."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import climviz as cv
from climviz.data.schema import CHANNELS, FLAG_MEANINGS
from climviz.errors import CheckpointError, ConfigError, DataError
from climviz.training.checkpoint import checkpoint_sha256

from .conftest import assert_masks_match, reference_masks


@pytest.fixture(scope="module")
def reference(checkpoint, run):
    return reference_masks(checkpoint, run)


@pytest.fixture(scope="module")
def in_memory(checkpoint, run):
    return cv.predict(checkpoint, run, batch_size=5, progress=False)


def test_masks_equal_an_independent_forward_pass(in_memory, reference, run):
    ref, gap = reference
    assert in_memory["mask"].dtype == np.uint8
    assert_masks_match(in_memory["mask"].values, ref, gap)
    # the briefly trained model is not trivial: it predicts more than one class
    assert len(np.unique(ref)) >= 2
    np.testing.assert_array_equal(in_memory["time"].values, run["time"].values)
    np.testing.assert_array_equal(in_memory["lat"].values, run["lat"].values)


def test_netcdf_round_trip_opens_with_plain_xarray(checkpoint, run_files, reference, tmp_path):
    out = tmp_path / "masks.nc"
    glob = str(run_files[0].parent / "run_part*.nc")
    returned = cv.predict(checkpoint, glob, out=out, batch_size=4, progress=False)
    returned.close()
    with xr.open_dataset(out) as ds:
        mask = ds["mask"]
        assert mask.dtype == np.uint8 and mask.dims == ("time", "lat", "lon")
        assert list(mask.attrs["flag_values"]) == [0, 1, 2]
        assert mask.attrs["flag_meanings"] == FLAG_MEANINGS == "background tropical_cyclone atmospheric_river"
        assert "_FillValue" not in mask.encoding
        assert ds.attrs["model"] == "deeplabv3plus"
        assert ds.attrs["checkpoint_sha256"] == checkpoint_sha256(checkpoint)
        assert ds.attrs["climviz_version"] == cv.__version__
        assert ds.attrs["Conventions"].startswith("CF-")
        assert "date_created" in ds.attrs
        assert [p.name for p in run_files] == [s.rsplit("/", 1)[-1] for s in ds.attrs["source_files"].split("\n")]
        ref, gap = reference
        assert_masks_match(mask.values, ref, gap)
    # nothing else is left beside the output (work store and temporaries are gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.nc"]


def test_zarr_output_with_probabilities(checkpoint, run, in_memory, tmp_path):
    out = tmp_path / "masks.zarr"
    cv.predict(checkpoint, run, out=out, batch_size=5, probabilities="float16", progress=False)
    ds = xr.open_dataset(out, engine="zarr")
    assert "climviz_done" not in ds
    np.testing.assert_array_equal(ds["mask"].values, in_memory["mask"].values)
    p = ds["probability"]
    assert p.dtype == np.float16 and p.dims == ("class", "time", "lat", "lon")
    pv = p.values.astype(np.float32)
    np.testing.assert_allclose(pv.sum(axis=0), 1.0, atol=3e-3)  # softmax sums to one
    # the mask is the most probable class (up to float16 rounding near ties)
    top = np.sort(pv, axis=0)
    clear = top[-1] - top[-2] > 2e-3
    np.testing.assert_array_equal(pv.argmax(0)[clear], ds["mask"].values[clear])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks.zarr"]


def test_other_grid_than_training_grid(checkpoint):
    # trained on 32 x 64; predict on 40 x 72 and on a grid smaller than the models'
    # 32-cell minimum (padded by predict, wrapping around in longitude)
    for shape in [(40, 72), (20, 30)]:
        ds = cv.synthetic_run(2, shape=shape, seed=9)
        masks = cv.predict(checkpoint, ds, batch_size=2, progress=False)
        assert masks["mask"].shape == (2, *shape)
        if min(shape) >= 32:
            ref, gap = reference_masks(checkpoint, ds)
            assert_masks_match(masks["mask"].values, ref, gap)


def test_small_grid_padding_wraps_longitude(checkpoint):
    """On a 20 x 30 grid, the mask equals a forward pass on the grid tiled around in
    longitude and edge-padded in latitude to 32 x 32 (built here with numpy)."""
    import torch

    from climviz import models

    ds = cv.synthetic_run(1, shape=(20, 30), seed=4)
    masks = cv.predict(checkpoint, ds, batch_size=1, progress=False)
    payload = torch.load(checkpoint, weights_only=True)
    kw = payload["model_kwargs"]
    net = models.build(payload["model"], preset="tiny", in_channels=16, num_classes=3,
                       **kw["overrides"])
    net.load_state_dict(payload["model_state"])
    net.eval()
    norm = payload["normalizer"]
    x = np.stack([(ds[c].values[0] - m) / s for c, m, s in
                  zip(CHANNELS, norm["mean"], norm["std"])]).astype(np.float32)
    x = np.concatenate([x, x[:, :, :2]], axis=2)  # 30 -> 32 columns, wrapping around
    x = np.pad(x, ((0, 0), (6, 6), (0, 0)), mode="edge")  # 20 -> 32 rows
    with torch.no_grad():
        logits = net(torch.from_numpy(x)[None])[0, :, 6:26, :30]
    top = torch.topk(logits, 2, dim=0).values
    clear = (top[0] - top[1]).numpy() > 1e-3
    np.testing.assert_array_equal(masks["mask"].values[0][clear], logits.argmax(0).numpy()[clear])


def test_tiramisu_checkpoint(run, tmp_path):
    import torch

    from climviz import models

    from .conftest import normalizer_dict, save_tiny

    torch.manual_seed(1)
    net = models.build("tiramisu", preset="tiny", in_channels=16, num_classes=3).eval()
    ckpt = save_tiny(tmp_path / "tira", net, normalizer_dict(run), model="tiramisu")
    sub = run.isel(time=slice(0, 3))
    masks = cv.predict(ckpt.parent, sub, batch_size=2, progress=False)  # directory accepted
    ref, gap = reference_masks(ckpt, sub)
    assert_masks_match(masks["mask"].values, ref, gap)
    assert masks.attrs["model"] == "tiramisu"


def test_missing_channel_is_named(checkpoint, run):
    with pytest.raises(DataError, match="PSL"):
        cv.predict(checkpoint, run.drop_vars("PSL"), progress=False)


def test_channel_order_of_the_run_does_not_matter(checkpoint, run, in_memory):
    shuffled = run[list(reversed(CHANNELS))].isel(time=slice(0, 5))
    masks = cv.predict(checkpoint, shuffled, batch_size=5, progress=False)
    np.testing.assert_array_equal(masks["mask"].values, in_memory["mask"].values[:5])


def test_latitude_descending_input_is_flipped(checkpoint, run, in_memory):
    flipped = run.isel(time=slice(0, 5), lat=slice(None, None, -1))
    masks = cv.predict(checkpoint, flipped, batch_size=5, progress=False)
    assert np.all(np.diff(masks["lat"].values) > 0)
    np.testing.assert_array_equal(masks["mask"].values, in_memory["mask"].values[:5])


def test_bad_checkpoints_are_clear_errors(run, tmp_path):
    import torch

    with pytest.raises(CheckpointError, match="not found"):
        cv.predict(tmp_path / "nowhere", run, progress=False)
    junk = tmp_path / "junk" / "checkpoint.pt"
    junk.parent.mkdir()
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        cv.predict(junk, run, progress=False)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a climviz checkpoint"):
        cv.predict(foreign, run, progress=False)


def test_checkpoint_without_normalizer(checkpoint, run, tmp_path):
    import torch

    from climviz.training.checkpoint import save_checkpoint

    payload = torch.load(checkpoint, weights_only=True)
    payload["normalizer"] = None
    bad = save_checkpoint(tmp_path / "nonorm", payload)
    with pytest.raises(CheckpointError, match="normalization"):
        cv.predict(bad, run, progress=False)


def test_bad_arguments(checkpoint, run):
    with pytest.raises(ConfigError, match="batch_size"):
        cv.predict(checkpoint, run, batch_size=0, progress=False)
    with pytest.raises(ConfigError, match="probabilities"):
        cv.predict(checkpoint, run, probabilities="int8", progress=False)
    with pytest.raises(DataError, match="expected a path"):
        cv.predict(checkpoint, 42, progress=False)


def test_public_names_survive_importing_the_submodule():
    import importlib

    importlib.import_module("climviz.inference.predict")
    from climviz.inference import predict

    assert callable(predict) and predict is cv.predict
    assert cv.inference.OutputExistsError.__mro__[1].__name__ == "OutputError"


def test_predict_reads_product_names_and_units_like_open_run(tmp_path):
    """ERA5 names (msl, tcwv) and PSL in hPa give the masks of the ClimateNet-named run in Pa."""
    import climviz as cv
    from pathlib import Path

    ckpt = Path(__file__).resolve().parents[2] / "data_samples" / "checkpoint" / "checkpoint.pt"
    ds = cv.synthetic_run(2, shape=(32, 48), seed=1).load()
    era = ds.rename({"PSL": "msl", "TMQ": "tcwv"})
    era["msl"] = era["msl"] / 100.0
    era["msl"].attrs.update(units="hPa", standard_name="air_pressure_at_mean_sea_level")
    era["tcwv"].attrs["units"] = "kg m-2"
    want = cv.predict(ckpt, ds, progress=False)["mask"].values
    got = cv.predict(ckpt, era, progress=False)["mask"].values
    assert (want > 0).sum() > 50
    np.testing.assert_array_equal(got, want)
