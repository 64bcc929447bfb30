"""Outputs are atomic, resumable after an interruption, and never clobbered by accident."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import climviz as cv
from climviz.inference.writer import OutputError, OutputExistsError


class Interrupt(Exception):
    """Raised by the test hook to simulate a crash half-way."""


def stop_after(n: int, seen: list):
    def hook(info: dict) -> None:
        seen.append((info["start"], info["stop"]))
        if len(seen) >= n:
            raise Interrupt(f"stopped after {n} blocks")
    return hook


@pytest.fixture(scope="module")
def expected(checkpoint, run):
    return cv.predict(checkpoint, run, batch_size=3, progress=False)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_interrupted_prediction_resumes_without_gaps_or_duplicates(
        checkpoint, run, expected, tmp_path, suffix):
    out = tmp_path / f"masks{suffix}"
    first: list = []
    with pytest.raises(Interrupt):
        cv.predict(checkpoint, run, out=out, batch_size=3, progress=False,
                   on_batch=stop_after(2, first))
    assert first == [(0, 3), (3, 6)]
    assert not out.exists()  # no half-written output appears
    work = tmp_path / f".masks{suffix}.work.zarr"
    done = xr.open_zarr(work, consolidated=False)["climviz_done"].values
    np.testing.assert_array_equal(done, [1] * 6 + [0] * 6)

    second: list = []
    ds = cv.predict(checkpoint, run, out=out, batch_size=3, progress=False,
                    on_batch=lambda info: second.append((info["start"], info["stop"])))
    assert second == [(6, 9), (9, 12)]  # only the missing blocks are computed
    ds.close()
    with xr.open_dataset(out, engine="zarr" if suffix == ".zarr" else None) as got:
        times = got["time"].values
        assert len(np.unique(times)) == len(times) == run.sizes["time"]
        np.testing.assert_array_equal(times, run["time"].values)
        np.testing.assert_array_equal(got["mask"].values, expected["mask"].values)
    assert not work.exists()


def test_resume_keeps_the_block_size_it_started_with(checkpoint, run, expected, tmp_path):
    out = tmp_path / "masks.zarr"
    with pytest.raises(Interrupt):
        cv.predict(checkpoint, run, out=out, batch_size=4, progress=False,
                   on_batch=stop_after(1, []))
    seen: list = []
    ds = cv.predict(checkpoint, run, out=out, batch_size=5, progress=False,
                    on_batch=lambda info: seen.append((info["start"], info["stop"])))
    assert seen == [(4, 8), (8, 12)]
    np.testing.assert_array_equal(ds["mask"].values, expected["mask"].values)


def test_unfinished_prediction_of_another_checkpoint_is_not_mixed_in(
        checkpoint, run, tmp_path):
    import torch

    from climviz.training.checkpoint import save_checkpoint

    out = tmp_path / "masks.nc"
    with pytest.raises(Interrupt):
        cv.predict(checkpoint, run, out=out, batch_size=3, progress=False,
                   on_batch=stop_after(1, []))
    payload = torch.load(checkpoint, weights_only=True)  # same model, other weights
    payload["model_state"] = {k: v + 0.01 if v.is_floating_point() else v
                              for k, v in payload["model_state"].items()}
    other = save_checkpoint(tmp_path / "other", payload)
    with pytest.raises(OutputExistsError, match="checkpoint_sha256"):
        cv.predict(other, run, out=out, batch_size=3, progress=False)
    ds = cv.predict(other, run.isel(time=slice(0, 2)), out=out, batch_size=3,
                    progress=False, overwrite=True)
    assert ds.sizes["time"] == 2
    assert ds.attrs["checkpoint_sha256"] != cv.predict(checkpoint, run.isel(time=slice(0, 1)),
                                                       progress=False).attrs["checkpoint_sha256"]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_existing_output_is_not_clobbered(checkpoint, run, tmp_path, suffix):
    out = tmp_path / f"masks{suffix}"
    if suffix == ".nc":
        out.write_bytes(b"precious")
    else:
        out.mkdir()
        (out / "precious.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        cv.predict(checkpoint, run, out=out, progress=False)
    if suffix == ".nc":
        assert out.read_bytes() == b"precious"
    else:
        assert (out / "precious.txt").read_text() == "keep me"
    sub = run.isel(time=slice(0, 2))
    ds = cv.predict(checkpoint, sub, out=out, overwrite=True, progress=False)
    assert ds["mask"].shape == (2, *run["TMQ"].shape[1:])
    ds.close()
    assert not (out / "precious.txt").exists()
    with xr.open_dataset(out, engine="zarr" if suffix == ".zarr" else None) as got:
        assert got.sizes["time"] == 2 and got["mask"].dtype == np.uint8


def test_unwritable_output_is_a_clear_error(checkpoint, run, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("I am a file, not a directory")
    with pytest.raises(OutputError, match="cannot write"):
        cv.predict(checkpoint, run, out=blocker / "masks.nc", progress=False)
    with pytest.raises(OutputError, match=r"\.nc.*\.zarr"):
        cv.predict(checkpoint, run, out=tmp_path / "masks.csv", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
