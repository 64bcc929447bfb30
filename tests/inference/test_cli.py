"""``climviz predict`` on the command line."""

from __future__ import annotations

import numpy as np
import xarray as xr

from climviz.cli import main


def test_cli_predict_writes_a_mask_file(checkpoint, run_files, run, tmp_path, capsys):
    import climviz as cv

    out = tmp_path / "cli_masks.nc"
    code = main(["predict", str(checkpoint), *map(str, run_files), "--out", str(out),
                 "--batch-size", "6", "--no-progress"])
    assert code == 0
    assert "12 time steps" in capsys.readouterr().out
    expected = cv.predict(checkpoint, run, batch_size=6, progress=False)
    with xr.open_dataset(out) as ds:
        np.testing.assert_array_equal(ds["mask"].values, expected["mask"].values)

    # a second run refuses to clobber the file: exit code 1 and a message naming the option
    code = main(["predict", str(checkpoint), str(run_files[0]), "--out", str(out), "--no-progress"])
    assert code == 1
    assert "--overwrite" in capsys.readouterr().err


def test_cli_missing_channel_names_it(checkpoint, run, tmp_path, capsys):
    path = tmp_path / "no_tmq.nc"
    run.isel(time=slice(0, 2)).drop_vars("TMQ").to_netcdf(path)
    code = main(["predict", str(checkpoint), str(path), "--out", str(tmp_path / "m.nc"),
                 "--no-progress"])
    assert code == 1
    assert "TMQ" in capsys.readouterr().err
    assert not (tmp_path / "m.nc").exists()
