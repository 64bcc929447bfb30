"""The real GFS forecast in data_samples/real opens with channels="available" in canonical units, and its
numbers agree with ecCodes read independently and with the IBTrACS best track (issue 16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from climviz.data.io import open_run

REAL = Path(__file__).resolve().parents[2] / "data_samples" / "real"
GRIB = REAL / "gfs_2011100800_f072_2p5deg.grb"
EXPECTED = ["TMQ", "U850", "V850", "QREFHT", "PS", "PSL", "T200", "T500", "PRECT", "TS", "TREFHT", "Z1000", "Z200",
            "VORT850"]


@pytest.fixture(scope="module")
def gfs():
    return open_run(GRIB, channels="available").load()


def _eccodes_field(short_name: str, type_of_level: str, level: int) -> np.ndarray:
    """One field straight from ecCodes (multi-field messages on), rows as in the file (90N first)."""
    import eccodes

    eccodes.codes_grib_multi_support_on()
    try:
        with open(GRIB, "rb") as fh:
            while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
                try:
                    if (eccodes.codes_get(h, "shortName"), eccodes.codes_get(h, "typeOfLevel"),
                            eccodes.codes_get(h, "level")) == (short_name, type_of_level, level):
                        return eccodes.codes_get_values(h).reshape(73, 144)
                finally:
                    eccodes.codes_release(h)
    finally:
        eccodes.codes_grib_multi_support_off()
    raise AssertionError(f"{short_name} {type_of_level} {level} not in {GRIB}")


def test_gfs_opens_with_the_expected_channels_in_canonical_units(gfs):
    assert list(gfs.data_vars) == EXPECTED
    assert dict(gfs.sizes) == {"time": 1, "lat": 73, "lon": 144}
    assert gfs.time.values[0] == np.datetime64("2011-10-11T00:00")  # init 2011-10-08 00Z + 72 h
    np.testing.assert_allclose(gfs.lat.values, np.arange(-90, 90.1, 2.5))  # ascending after the flip
    units = {c: gfs[c].attrs["units"] for c in EXPECTED}
    assert units == {"TMQ": "kg m-2", "U850": "m s-1", "V850": "m s-1", "QREFHT": "kg kg-1", "PS": "Pa",
                     "PSL": "Pa", "T200": "K", "T500": "K", "PRECT": "m s-1", "TS": "K", "TREFHT": "K",
                     "Z1000": "m", "Z200": "m", "VORT850": "s-1"}
    for c in EXPECTED:  # a real forecast: finite everywhere, in physically plausible ranges
        assert np.isfinite(gfs[c].values).all(), c
    assert 95_000 < gfs.PSL.min() and gfs.PSL.max() < 105_000
    assert 190 < gfs.T200.min() and gfs.T500.max() < 280 and 0 <= gfs.TMQ.min() and gfs.TMQ.max() < 90
    assert 10_000 < gfs.Z200.min() and gfs.Z200.max() < 13_000
    # where each came from, recorded
    src = gfs.attrs["channel_sources"]
    assert "V850: variable 'v@isobaricInhPa' at 850 hPa" in src
    assert "PSL: variable 'prmsl@meanSea'" in src and "absolute vorticity minus the Coriolis parameter" in src


def test_values_match_eccodes_read_independently(gfs):
    # rows: the file runs 90N..90S, climviz south to north
    # climviz keeps float32 (ecCodes decodes to float64)
    np.testing.assert_allclose(gfs.PSL.values[0], _eccodes_field("prmsl", "meanSea", 0)[::-1], rtol=1e-7)
    np.testing.assert_allclose(gfs.V850.values[0], _eccodes_field("v", "isobaricInhPa", 850)[::-1], rtol=1e-7,
                               atol=1e-6)
    np.testing.assert_allclose(gfs.PRECT.values[0], _eccodes_field("prate", "surface", 0)[::-1] / 1000.0,
                               rtol=1e-6)  # kg m-2 s-1 / (1000 kg m-3) = m s-1
    absv = _eccodes_field("absv", "isobaricInhPa", 850)[::-1]
    f = 2 * 7.2921e-5 * np.sin(np.radians(np.arange(-90, 90.1, 2.5)))[:, None]
    np.testing.assert_allclose(gfs.VORT850.values[0], absv - f, atol=1e-9)
    # V is a real field, not a copy of U
    assert not np.allclose(gfs.U850.values, gfs.V850.values)


def test_jova_forecast_low_near_the_best_track(gfs):
    box = gfs.PSL.isel(time=0).sel(lat=slice(10, 25), lon=slice(240, 265))
    i, j = np.unravel_index(int(np.argmin(box.values)), box.shape)
    assert (float(box.lat[i]), float(box.lon[j])) == (17.5, 255.0)
    assert float(box.values[i, j]) / 100 == pytest.approx(990.15, abs=0.05)  # README: about 990 hPa
    best = pd.read_csv(REAL / "ibtracs_jtwc_2011-10.csv", parse_dates=["time"])
    jova = best[(best.track_id == "2011279N10257") & (best.time == "2011-10-11 00:00")].iloc[0]
    assert (jova.lat, jova.lon % 360) == (16.8, pytest.approx(253.8))
    lat1, lon1, lat2, lon2 = np.radians([jova.lat, jova.lon % 360, 17.5, 255.0])
    km = 6371 * np.arccos(np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * np.cos(lon2 - lon1))
    assert km < 200  # within one 2.5 degree cell of the observed centre
    # a cyclonic (positive, northern hemisphere) 850 hPa vortex at the forecast low
    assert float(gfs.VORT850.isel(time=0).sel(lat=17.5, lon=255.0)) > 5e-5


def test_required_channels_the_forecast_lacks_are_named():
    from climviz.errors import DataError

    with pytest.raises(DataError, match=r"gfs_2011100800_f072_2p5deg\.grb: missing channel\(s\) \['UBOT', 'ZBOT'\]"):
        open_run(GRIB, channels=["PSL", "UBOT", "ZBOT"])


def test_accumulated_precipitation_becomes_the_same_rate_as_prate(gfs):
    # GFS tp@surface: kg m-2 accumulated over forecast hours 66-72; prate: the 66-72 h mean rate (kg m-2 s-1)
    opened = open_run(GRIB, channels=["PRECT"], channel_map={"PRECT": "tp@surface"})
    acc = opened.PRECT.values
    # by hand: kg m-2 / (6 * 3600 s) / (1000 kg m-3) = m s-1
    by_hand = _eccodes_field("tp", "surface", 0)[::-1] / 21600.0 / 1000.0
    np.testing.assert_allclose(acc[0], by_hand, rtol=1e-6, atol=1e-12)
    # and it agrees with the rate GFS itself gives, within GRIB packing precision (0.3% of the maximum)
    np.testing.assert_allclose(acc, gfs.PRECT.values, atol=0.005 * float(gfs.PRECT.max()))
    assert "divided by 21600 s, GRIB step range 66-72 h" in opened.PRECT.attrs["climviz_source"]
