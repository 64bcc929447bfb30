"""Units are converted to climviz's canonical ones or refused (issue 16), checked against hand-made numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from climviz.data.io import open_run, write_run
from climviz.data.units import CANONICAL_UNITS, canonicalize_units, conversion, parse_units, to_canonical
from climviz.errors import DataError

# (channel, unit, canonical -> that unit, written independently of climviz)
CASES = [
    ("PSL", "Pa", lambda x: x),
    ("PSL", "hPa", lambda x: x / 100.0),
    ("PSL", "mbar", lambda x: x / 100.0),
    ("T500", "K", lambda x: x),
    ("T500", "degC", lambda x: x - 273.15),
    ("TMQ", "kg m-2", lambda x: x),
    ("TMQ", "mm", lambda x: x),  # 1 mm of liquid water = 1 kg m-2
    ("PRECT", "m s-1", lambda x: x),
    ("PRECT", "kg m-2 s-1", lambda x: x * 1000.0),  # water density 1000 kg m-3
    ("PRECT", "mm/day", lambda x: x * 1000.0 * 86400.0),
    ("Z200", "m", lambda x: x),
    ("Z200", "m2 s-2", lambda x: x * 9.80665),  # geopotential = g0 * height
    ("Z1000", "gpm", lambda x: x),
    ("QREFHT", "g/kg", lambda x: x * 1000.0),
]


def _with_units(run, channel, unit, forward):
    out = run.copy()
    out[channel] = forward(run[channel].astype("float64")).astype("float32")
    out[channel].attrs = dict(run[channel].attrs, units=unit)
    return out


@pytest.mark.parametrize("channel,unit,forward", CASES, ids=[f"{c}-{u}" for c, u, _ in CASES])
def test_every_unit_case_converts_to_canonical_in_memory_and_from_a_file(tiny_run, tmp_path, channel, unit, forward):
    run = _with_units(tiny_run, channel, unit, forward)
    write_run(run, tmp_path / "r.nc")
    for opened in (open_run(run), open_run(tmp_path / "r.nc")):
        got = opened[channel].values
        want = tiny_run[channel].values.astype("float64")
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * np.abs(want).max())
        assert opened[channel].attrs["units"] == CANONICAL_UNITS[channel]
        if unit not in (CANONICAL_UNITS[channel], "gpm"):  # gpm is metre, spelled otherwise
            assert opened[channel].attrs["units_converted_from"] == unit
            assert unit in opened.attrs["channel_sources"]


def test_conversion_factors_by_hand():
    assert conversion("hPa", "Pa").scale == 100.0
    c = conversion("degC", "K")
    assert (c.scale, c.offset) == (1.0, 273.15)
    assert conversion("m2 s-2", "m", channel="Z200").scale == pytest.approx(1 / 9.80665, rel=1e-12)
    assert conversion("mm/day", "m s-1", channel="PRECT").scale == pytest.approx(1e-3 / 86400, rel=1e-12)
    assert conversion("kg m**-2 s**-1", "m s-1", channel="PRECT").scale == pytest.approx(1e-3)
    assert str(parse_units("kg m-2")) == "kilogram / meter ** 2"


@pytest.mark.parametrize("unit,pattern", [
    ("furlongs per fortnightz", r"units 'furlongs per fortnightz' are not a unit"),
    ("K", r"expected units 'Pa'.*found 'K'"),
    ("kg m-2", r"expected units 'Pa'.*found 'kg m-2'"),
])
def test_nonsense_or_wrong_units_are_a_data_error_naming_file_and_variable(tiny_run, tmp_path, unit, pattern):
    run = tiny_run.copy()
    run["PSL"] = run.PSL.assign_attrs(units=unit)
    write_run(run, tmp_path / "bad.nc")
    with pytest.raises(DataError, match=r"bad\.nc: variable PSL: " + pattern):
        open_run(tmp_path / "bad.nc")
    with pytest.raises(DataError, match=r"variable PSL: " + pattern):
        open_run(run)


def test_relative_humidity_is_not_specific_humidity(tiny_run):
    run = tiny_run.copy()
    run["QREFHT"] = (run.QREFHT * 0 + 80.0).assign_attrs(units="%")
    with pytest.raises(DataError, match=r"variable QREFHT: expected units 'kg kg-1'.*found '%'"):
        open_run(run)


def test_missing_units_plausible_values_are_assumed_and_said(tiny_run, tmp_path):
    run = tiny_run.copy()
    run["PSL"].attrs.pop("units")
    write_run(run, tmp_path / "r.nc")
    with pytest.warns(UserWarning, match=r"r\.nc: no units attribute for PSL: assumed the canonical units \(PSL Pa\)"):
        ds = open_run(tmp_path / "r.nc")
    np.testing.assert_array_equal(ds.PSL.values, tiny_run.PSL.values)
    assert "assumed the canonical unit 'Pa'" in ds.PSL.attrs["units_assumed"]


def test_missing_units_implausible_values_are_an_error_unless_assume_units(tiny_run, tmp_path):
    run = tiny_run.copy()
    run["PSL"] = run.PSL / 100.0  # hPa, but no units attribute
    run["PSL"].attrs = {}
    write_run(run, tmp_path / "hpa.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = open_run(tmp_path / "hpa.nc")
    with pytest.raises(DataError, match=r"hpa\.nc: variable PSL: expected PSL values in 80000\.\.115000 Pa .*found "
                                        r"9\d\d.*assume_units"):
        ds.PSL.load()
    with pytest.raises(DataError, match=r"variable PSL: no units attribute, and the values 9\d\d.* are not plausible"):
        canonicalize_units(run)
    ds = open_run(tmp_path / "hpa.nc", assume_units={"PSL": "hPa"})
    np.testing.assert_allclose(ds.PSL.values, tiny_run.PSL.values, rtol=1e-6)
    assert "assume_units gave 'hPa'" in ds.PSL.attrs["climviz_source"]


def test_to_canonical_on_a_dataarray_records_the_original_unit(tiny_run):
    t = (tiny_run.T200 - 273.15).assign_attrs(units="degC")
    out = to_canonical(t, "T200")
    np.testing.assert_allclose(out.values, tiny_run.T200.values, rtol=1e-6)
    assert out.attrs["units"] == "K" and out.attrs["units_converted_from"] == "degC"


def test_psl_in_hpa_gives_the_same_label_masks_as_in_pa(small_run):
    from climviz.labels import label_run

    hpa = _with_units(small_run, "PSL", "hPa", lambda x: x / 100.0)
    a = label_run(small_run.isel(time=slice(0, 4)))
    b = label_run(hpa.isel(time=slice(0, 4)))
    n_tc = int((a["mask"].values == 1).sum())
    assert n_tc > 0  # the check means something: there are TC cells to find
    np.testing.assert_array_equal(a["mask"].values, b["mask"].values)


def test_psl_in_hpa_gives_the_same_predictions_as_in_pa(small_run):
    from pathlib import Path

    import climviz as cv

    ckpt = Path(__file__).resolve().parents[2] / "data_samples" / "checkpoint"
    ckpt = next(iter(sorted(ckpt.glob("*.pt"))), ckpt)
    run = small_run.isel(time=slice(0, 2))
    hpa = _with_units(run, "PSL", "hPa", lambda x: x / 100.0)
    a = cv.predict(ckpt, run)
    b = cv.predict(ckpt, hpa)
    assert (a["mask"].values > 0).sum() > 0  # something found, so equality means something
    np.testing.assert_array_equal(a["mask"].values, b["mask"].values)


def test_mask_dataset_units_follow_the_same_rule(tiny_run):
    from climviz.data.masks import make_mask_dataset, validate_mask_dataset

    prob = np.zeros((3, *tiny_run.PSL.shape), np.float32)
    prob[0] = 1.0
    masks = make_mask_dataset(np.zeros(tiny_run.PSL.shape, np.uint8), tiny_run, probability=prob)
    pct = masks.copy()
    pct["probability"] = (masks.probability * 100).assign_attrs(units="%")
    out = validate_mask_dataset(pct, "pct.nc")
    np.testing.assert_allclose(out.probability.values, prob)
    assert out.probability.attrs["units"] == "1"
    kelvin = masks.copy()
    kelvin["probability"] = masks.probability.assign_attrs(units="K")
    with pytest.raises(DataError, match=r"k\.nc: variable 'probability': expected units '1'.*found 'K'"):
        validate_mask_dataset(kelvin, "k.nc")
    bogus = masks.copy()
    bogus["mask"].attrs["units"] = "kg"
    with pytest.raises(DataError, match=r"b\.nc: variable 'mask': expected class numbers.*found units 'kg'"):
        validate_mask_dataset(bogus, "b.nc")
