"""`climviz events`: real files in, tables and maps out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

from climviz.cli import main
from climviz.data.io import write_run
from climviz.data.synthetic import synthetic_run


@pytest.fixture
def run_and_masks(tmp_path):
    ds = synthetic_run(6, shape=(32, 48), seed=3)
    run_path = tmp_path / "run.nc"
    write_run(ds, run_path)
    masks = xr.Dataset({"mask": ds["LABELS"].astype(np.uint8)})
    masks_path = tmp_path / "masks.nc"
    masks.to_netcdf(masks_path)
    return ds, run_path, masks_path


def test_events_cli_writes_tables_and_maps(run_and_masks, tmp_path, capsys):
    ds, run_path, masks_path = run_and_masks
    out = tmp_path / "out"
    assert main(["events", str(masks_path), "--out", str(out), "--run", str(run_path)]) == 0
    events = pd.read_csv(out / "events.csv")
    tracks = pd.read_csv(out / "tracks.csv")
    assert (out / "track_edges.csv").exists() and (out / "summary.csv").exists()
    # independent count: scipy per step and class, plus seam merges counted by hand
    labels = ds["LABELS"].values
    expected = 0
    for t in range(labels.shape[0]):
        for c in (1, 2):
            lab, n = ndimage.label(labels[t] == c, structure=np.ones((3, 3)))
            seam = {(a, b) for a, b in zip(lab[:, 0], lab[:, -1]) if a and b}
            for d in (-1, 1):
                seam |= {(a, b) for a, b in zip(lab[max(0, -d):lab.shape[0] - max(0, d), 0],
                                                 lab[max(0, d):lab.shape[0] - max(0, -d), -1]) if a and b}
            merged = len({frozenset(p) for p in seam if p[0] != p[1]})
            expected += n - merged
    assert expected > 0 and len(events) == expected
    assert {"PSL_min", "WSP850_max", "TMQ_mean", "PRECT_integral", "track_id"} <= set(events.columns)
    # PSL minimum inside an event is at least the global minimum of that step
    for r in events.head(5).to_dict("records"):
        assert r["PSL_min"] >= float(ds["PSL"].isel(time=r["step"]).min()) - 1e-3
    assert set(events["track_id"]) == set(tracks["track_id"])
    maps = xr.open_dataset(out / "frequency.nc")
    f_ar = (labels == 2).mean(axis=0)
    np.testing.assert_allclose(maps["frequency_atmospheric_river"].values, f_ar, atol=1e-6)
    maps.close()
    assert "tracks" in capsys.readouterr().out


def test_events_cli_refuses_to_overwrite_and_reports_missing_variables(run_and_masks, tmp_path):
    _, _, masks_path = run_and_masks
    out = tmp_path / "out"
    assert main(["events", str(masks_path), "--out", str(out), "--format", "parquet"]) == 0
    assert len(pd.read_parquet(out / "events.parquet")) > 0
    assert main(["events", str(masks_path), "--out", str(out), "--format", "parquet"]) == 1
    assert main(["events", str(masks_path), "--out", str(out), "--var", "nope"]) == 1
