"""Issue 18: predict on a full disk, a read-only file system, and after a killed write.

Real faults where possible: a tmpfs of a few hundred kB mounted for the test
(filled up from the ``on_batch`` hook half-way through a prediction), remounted
read-only; a monkeypatched failure of the final netCDF write otherwise.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest
import xarray as xr

import climviz as cv
from climviz.errors import OutputError
from tests.faults import fill, read_only, tiny_filesystem, tree


def test_full_disk_before_the_work_is_reported_at_once(checkpoint, run, tmp_path):
    with tiny_filesystem(tmp_path / "fs", "2m") as fs:
        (fs / "masks.nc").write_bytes(b"previous masks")
        fill(fs, leave=100 * 1024)
        before = tree(fs)
        calls: list = []
        with pytest.raises(OutputError, match=rf"out='{fs}/masks.nc'.*MiB free.*disk nearly full"):
            cv.predict(checkpoint, run, out=fs / "masks.nc", overwrite=True, progress=False,
                       on_batch=calls.append)
        assert calls == []                            # no block was predicted
        assert tree(fs) == before


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_disk_filling_up_during_prediction(checkpoint, run, tmp_path, suffix):
    with tiny_filesystem(tmp_path / "fs", "3m") as fs:
        out = fs / f"masks{suffix}"

        def fill_after_first_block(info):
            if info["start"] == 0:
                fill(fs)                              # someone else takes the rest of the disk

        with pytest.raises(OutputError) as err:
            cv.predict(checkpoint, run, out=out, batch_size=3, progress=False,
                       on_batch=fill_after_first_block)
        msg = str(err.value)
        assert str(out) in msg and "disk full" in msg and "ENOSPC" in msg
        assert not out.exists()
        (fs / "filler.bin").unlink()                  # space again: the rerun resumes and finishes
        done = []
        ds = cv.predict(checkpoint, run, out=out, batch_size=3, progress=False,
                        on_batch=lambda i: done.append(i["start"]))
        assert done and 0 not in done                 # block 0 was kept
        assert ds.sizes["time"] == run.sizes["time"]
        ds.close()


def test_read_only_filesystem_is_reported_and_the_old_output_kept(checkpoint, run, tmp_path):
    with tiny_filesystem(tmp_path / "fs", "1m") as fs:
        (fs / "masks.nc").write_bytes(b"previous masks")
        with read_only(fs):
            with pytest.raises(OutputError, match=rf"{fs}/masks.nc.*read-only file system \[EROFS\]"):
                cv.predict(checkpoint, run, out=fs / "masks.nc", overwrite=True, progress=False)
        assert tree(fs) == {"masks.nc": b"previous masks"}


def test_failed_final_write_keeps_old_output_and_work(checkpoint, run, tmp_path, monkeypatch):
    out = tmp_path / "masks.nc"
    out.write_bytes(b"previous masks")

    def enospc(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", enospc)
    with pytest.raises(OutputError, match=rf"out {out}: cannot write: no space left"):
        cv.predict(checkpoint, run, out=out, overwrite=True, batch_size=4, progress=False)
    monkeypatch.undo()
    assert out.read_bytes() == b"previous masks"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".masks.nc.work.zarr", "masks.nc"]
    again: list = []
    ds = cv.predict(checkpoint, run, out=out, overwrite=True, batch_size=4, progress=False,
                    on_batch=again.append)
    assert again == []                                # everything was predicted already
    assert ds["mask"].dtype == np.uint8 and ds.sizes["time"] == run.sizes["time"]
    ds.close()


def test_stale_temporaries_of_a_killed_run_are_removed(checkpoint, run, tmp_path):
    out = tmp_path / "pred.nc"
    stale = [tmp_path / ".pred.nc.0123abcd.tmp", tmp_path / ".pred.nc.deadbeef.old"]
    for p in stale:
        p.write_bytes(b"\0" * 4096)
    (tmp_path / "..pred.nc.work.zarr.cafe0123.tmp").mkdir()   # killed creating the work store
    keep = [tmp_path / "other.nc", tmp_path / ".pred.nc.notmine.tmp"]
    for p in keep:
        p.write_bytes(b"keep")
    cv.predict(checkpoint, run, out=out, progress=False).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pred.nc", *(p.name for p in keep)])


def test_predict_refuses_a_checkpoint_with_nonfinite_weights(checkpoint, run, tmp_path):
    """Issue 18.3: NaN weights used to give an all-background mask without complaint."""
    import torch

    from climviz.errors import CheckpointError

    payload = torch.load(checkpoint, weights_only=True)
    key = next(k for k, v in payload["model_state"].items() if v.is_floating_point() and v.ndim == 4)
    payload["model_state"][key].view(-1)[0] = float("nan")
    bad = tmp_path / "diverged" / "checkpoint.pt"
    bad.parent.mkdir()
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match=rf"{bad}: 1 non-finite .* {key} \(1\)"):
        cv.predict(bad, run, out=tmp_path / "masks.nc", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diverged"]
