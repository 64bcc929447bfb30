"""``climviz label DATA --out masks.nc`` on real files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from climviz.cli import main
from climviz.data.io import write_run
from climviz.data.masks import validate_mask_dataset
from climviz.labels import label_run


def test_label_writes_the_same_masks_as_label_run(tmp_path, synthetic_sample):
    ds, _ = synthetic_sample
    run = tmp_path / "run.nc"
    write_run(ds, run)
    cfg = tmp_path / "labels.yaml"
    cfg.write_text("tc:\n  min_duration_h: 24.0\nar:\n  threshold: 300.0\n")
    out = tmp_path / "masks.nc"
    tracks = tmp_path / "nodes.csv"
    assert main(["label", str(run), "--out", str(out), "--config", str(cfg), "--tracks", str(tracks)]) == 0
    with xr.open_dataset(out) as written:
        validate_mask_dataset(written)
        expected = label_run(ds, tc={"min_duration_h": 24.0}, ar={"threshold": 300.0})
        np.testing.assert_array_equal(written["mask"].values, expected["mask"].values)
        assert str(run.resolve()) in written.attrs["source_files"]
    nodes = pd.read_csv(tracks)
    assert {"lat", "lon", "psl_pa", "track_id"} <= set(nodes.columns) and (nodes["track_id"] >= 0).any()
    # an existing output is kept unless --overwrite
    assert main(["label", str(run), "--out", str(out), "--no-tc"]) == 1
    assert main(["label", str(run), "--out", str(out), "--no-tc", "--overwrite"]) == 0
    with xr.open_dataset(out) as written:
        assert set(np.unique(written["mask"].values)) == {0, 2}


def test_label_reports_bad_arguments(tmp_path, synthetic_sample, capsys):
    ds, _ = synthetic_sample
    run = tmp_path / "run.nc"
    write_run(ds.isel(time=slice(0, 2)), run)
    assert main(["label", str(run), "--out", str(tmp_path / "masks.txt")]) == 1
    assert ".nc or .zarr" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("tc:\n  closed_contour_radius_km: -5\n")
    assert main(["label", str(run), "--out", str(tmp_path / "m.nc"), "--config", str(bad)]) == 1
    assert "closed_contour_radius_km" in capsys.readouterr().err
    assert not (tmp_path / "m.nc").exists()
