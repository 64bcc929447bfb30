"""Ray Data mode (read tasks + model actors) gives the same masks as local mode."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import climviz as cv

pytestmark = pytest.mark.ray


def test_ray_data_equals_local_mode_and_resumes_a_local_start(
        ray_local, checkpoint, run_files, tmp_path):
    files = [str(p) for p in run_files]
    local = cv.predict(checkpoint, files, batch_size=3, progress=False, probabilities="float32")

    # start locally and stop after the first block ...
    out = tmp_path / "masks.zarr"

    def stop(info):
        raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        cv.predict(checkpoint, files, out=out, batch_size=3, progress=False,
                   probabilities="float32", on_batch=stop)
    assert not out.exists()

    # ... and let Ray Data finish (on the session's local Ray, ``ray_local``): it computes the other
    # blocks, written in time order
    rest: list = []
    ds = cv.predict(checkpoint, files, out=out, batch_size=3, use_ray=True, num_workers=1,
                    progress=False, probabilities="float32",
                    on_batch=lambda info: rest.append((info["start"], info["stop"], info["mode"])))
    assert rest == [(3, 6, "ray"), (6, 9, "ray"), (9, 12, "ray")]
    ds.close()
    with xr.open_dataset(out, engine="zarr") as got:
        np.testing.assert_array_equal(got["time"].values, local["time"].values)
        np.testing.assert_array_equal(got["mask"].values, local["mask"].values)
        np.testing.assert_allclose(got["probability"].values, local["probability"].values,
                                   rtol=1e-5, atol=1e-6)
