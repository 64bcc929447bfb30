"""The one grid module: names, orientation, periodicity and cell areas, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from climviz.data import grid
from climviz.errors import DataError

R = 6371.0


# --- cell areas: closed forms ---------------------------------------------------------------------

@pytest.mark.parametrize("nlat,nlon", [(3, 4), (36, 72), (96, 144)])
def test_global_areas_sum_to_the_sphere(nlat, nlon):
    lat = -90 + (np.arange(nlat) + 0.5) * 180 / nlat
    lon = np.arange(nlon) * 360 / nlon
    a = grid.cell_areas(lat, lon)
    assert a.shape == (nlat, nlon)
    np.testing.assert_allclose(a.sum(), 4 * np.pi * R**2, rtol=1e-12)


def test_three_band_grid_has_the_closed_form_band_areas():
    # centres -60, 0, 60: edges -90, -30, 30, 90; band areas 2πR²(sin φ2 - sin φ1)
    a = grid.cell_areas([-60.0, 0.0, 60.0], [0.0, 90.0, 180.0, 270.0])
    bands = a.sum(axis=1)
    np.testing.assert_allclose(bands, 2 * np.pi * R**2 * np.array([0.5, 1.0, 0.5]), rtol=1e-12)
    np.testing.assert_allclose(a[1], np.full(4, 2 * np.pi * R**2 / 4), rtol=1e-12)


def test_regional_grid_area_is_the_spherical_rectangle():
    # cells 1 degree wide centred 100.5..139.5 E and 10.5..29.5 N: the patch 100-140 E, 10-30 N
    lat = np.arange(10.5, 30.0, 1.0)
    lon = np.arange(100.5, 140.0, 1.0)
    assert not grid.is_global_lon(lon)
    exact = R**2 * np.deg2rad(40.0) * (np.sin(np.deg2rad(30.0)) - np.sin(np.deg2rad(10.0)))
    np.testing.assert_allclose(grid.cell_areas(lat, lon).sum(), exact, rtol=1e-12)


def test_descending_latitude_gives_the_same_areas_reversed():
    lat = np.linspace(-87.5, 87.5, 36)
    lon = np.arange(0.0, 360.0, 5.0)
    np.testing.assert_allclose(grid.cell_areas(lat[::-1], lon), grid.cell_areas(lat, lon)[::-1], rtol=1e-13)


def test_minus180_grid_has_the_areas_of_the_0_360_grid():
    lat = np.linspace(-87.5, 87.5, 36)
    a = grid.cell_areas(lat, np.arange(-180.0, 180.0, 5.0))
    b = grid.cell_areas(lat, np.arange(0.0, 360.0, 5.0))
    np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_allclose(a.sum(), 4 * np.pi * R**2, rtol=1e-12)


def test_events_geometry_is_the_grid_module():
    from climviz.events import geometry

    for name in ("cell_areas", "lat_edges", "lon_widths", "is_global_lon"):
        assert getattr(geometry, name) is getattr(grid, name)
    assert geometry.EARTH_RADIUS_KM == grid.EARTH_RADIUS_KM == 6371.0


# --- periodicity ------------------------------------------------------------------------------

def test_periodicity_from_the_coordinates():
    assert grid.is_global_lon(np.arange(0.0, 360.0, 1.25))
    assert grid.is_global_lon(np.arange(-180.0, 180.0, 1.25))
    assert not grid.is_global_lon(np.arange(100.0, 180.01, 1.25))
    # one column missing at the seam (gap 2 steps > 1.5 steps): regional
    assert not grid.is_global_lon(np.arange(0.0, 350.0, 10.0))
    assert not grid.is_global_lon([10.0])


# --- orientation ------------------------------------------------------------------------------

def test_orient_lat_flips_descending_and_refuses_disorder():
    lat, flip = grid.orient_lat([30.0, 10.0, -10.0])
    assert flip and lat.tolist() == [-10.0, 10.0, 30.0]
    lat, flip = grid.orient_lat([-10.0, 10.0])
    assert not flip
    with pytest.raises(DataError, match="strictly monotonic"):
        grid.orient_lat([0.0, 10.0, 5.0])
    with pytest.raises(DataError, match=r"\[-90, 90\]"):
        grid.orient_lat([0.0, 95.0])


def test_orient_lon_rolls_a_minus180_run():
    lon = np.arange(-180.0, 180.0, 45.0)  # -180 .. 135
    out, shift = grid.orient_lon(lon)
    assert out.tolist() == [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
    assert shift == 4
    values = np.arange(8)  # a field equal to its column index
    rolled = np.roll(values, -shift)
    # the column now at 0 E is the one that was at 0 E (index 4 in the [-180, 180) run)
    assert rolled[0] == 4 and np.mod(lon[rolled], 360.0).tolist() == out.tolist()


def test_orient_lon_keeps_a_regional_grid_across_the_prime_meridian_in_one_piece():
    lon = np.arange(-30.0, 21.0, 10.0)  # -30 .. 20
    out, shift = grid.orient_lon(lon)
    assert out.tolist() == [330.0, 340.0, 350.0, 360.0, 370.0, 380.0]
    assert shift == 0
    assert not grid.is_global_lon(out)
    # the same grid stored 0..20 then 330..350 (sorted in [0, 360)) is rolled back into one piece
    out2, shift2 = grid.orient_lon([0.0, 10.0, 20.0, 330.0, 340.0, 350.0])
    assert out2.tolist() == out.tolist() and shift2 == 3
    again, shift3 = grid.orient_lon(out)  # idempotent: 330 .. 380 is already oriented
    assert again.tolist() == out.tolist() and shift3 == 0


def test_orient_lon_never_reorders_shuffled_columns():
    with pytest.raises(DataError, match="increasing around the globe"):
        grid.orient_lon([0.0, 20.0, 10.0, 30.0])
    with pytest.raises(DataError, match="increasing around the globe"):
        grid.orient_lon([0.0, 360.0, 10.0])  # 0 and 360 are the same meridian


# --- names and standardize -----------------------------------------------------------------------

def _field(lat_name="lat", lon_name="lon", time_name="time", lat=None, lon=None):
    lat = np.array([-45.0, 0.0, 45.0]) if lat is None else np.asarray(lat)
    lon = np.array([0.0, 90.0, 180.0, 270.0]) if lon is None else np.asarray(lon)
    vals = np.arange(2 * lat.size * lon.size, dtype=float).reshape(2, lat.size, lon.size)
    return xr.DataArray(vals, dims=(time_name, lat_name, lon_name),
                        coords={lat_name: lat, lon_name: lon, time_name: [0, 1]}, name="f")


@pytest.mark.parametrize("lat_name,lon_name,time_name", [
    ("lat", "lon", "time"), ("latitude", "longitude", "valid_time"), ("y", "x", "t"), ("nlat", "nlon", "time"),
])
def test_alternative_names_give_the_same_standard_field(lat_name, lon_name, time_name):
    ref = _field()
    out = grid.standardize(_field(lat_name, lon_name, time_name))
    assert out.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(out.values, ref.values)
    assert out.lat.values.tolist() == ref.lat.values.tolist()


def test_standardize_descending_lat_and_minus180_lon_transposed():
    ref = _field()
    # the same field stored north to south, on [-180, 180), lon before lat
    odd = ref.isel(lat=slice(None, None, -1))
    odd = odd.assign_coords(lon=((odd.lon + 180.0) % 360.0) - 180.0).sortby("lon")  # -180, -90, 0, 90
    odd = odd.transpose("lon", "time", "lat").rename(lat="latitude", lon="longitude")
    out = grid.standardize(odd)
    assert out.dims == ("time", "lat", "lon")
    assert out.lon.values.tolist() == [0.0, 90.0, 180.0, 270.0]
    np.testing.assert_array_equal(out.values, ref.values)


def test_standardize_keeps_dask_lazy_and_datasets():
    import dask.array as da

    ref = _field()
    lazy = ref.copy(data=da.from_array(ref.values, chunks=(1, -1, -1))).isel(lat=slice(None, None, -1))
    out = grid.standardize(lazy.to_dataset())
    assert isinstance(out["f"].data, da.Array)
    np.testing.assert_array_equal(out["f"].values, ref.values)


def test_names_that_are_not_geographic_are_refused():
    rotated = _field("rlat", "rlon")
    with pytest.raises(DataError, match="rotated-pole"):
        grid.standardize(rotated)
    metres = _field("y", "x")
    metres["x"].attrs["units"] = "m"
    with pytest.raises(DataError, match="expected degrees, found units 'm'"):
        grid.standardize(metres)
    with pytest.raises(DataError, match=r"latitude dimension named one of \('lat', 'latitude', 'nlat', 'y'\)"):
        grid.standardize(_field().rename(lat="row"))
    with pytest.raises(DataError, match="no coordinate values"):
        grid.standardize(_field().drop_vars("lon"))


def test_orientation_bundles_the_rules():
    o = grid.orientation([45.0, 0.0, -45.0], np.arange(-180.0, 180.0, 90.0))
    assert o.flip_lat and o.lon_shift == 2 and o.periodic
    assert o.lat.tolist() == [-45.0, 0.0, 45.0] and o.lon.tolist() == [0.0, 90.0, 180.0, 270.0]
    assert not grid.orientation([0.0, 1.0], [100.0, 101.0, 102.0]).periodic


# --- every part accepts the same inputs ------------------------------------------------------------

@pytest.fixture(scope="module")
def small_run():
    import climviz as cv

    return cv.synthetic_run(2, shape=(16, 24)).load()


def _variants(ds):
    """The same run under other names and orientations."""
    odd = ds.isel(lat=slice(None, None, -1))
    odd = odd.assign_coords(lon=((odd.lon + 180.0) % 360.0) - 180.0).sortby("lon")
    return {
        "latitude/longitude, north to south, [-180, 180)": odd.rename(lat="latitude", lon="longitude"),
        "y/x, valid_time": ds.rename(lat="y", lon="x", time="valid_time"),
    }


def test_open_run_and_normalize_run_accept_the_same_variants(small_run):
    from climviz.data import open_run
    from climviz.labels._grid import normalize_run

    ref = open_run(small_run)
    for name, v in _variants(small_run).items():
        got = open_run(v)
        assert got.lon.values.tolist() == ref.lon.values.tolist(), name
        assert got.time.values.tolist() == ref.time.values.tolist(), name
        np.testing.assert_array_equal(got["TMQ"].values, ref["TMQ"].values, err_msg=name)
        np.testing.assert_array_equal(got["LABELS"].values, ref["LABELS"].values, err_msg=name)
        norm = normalize_run(v, ["TMQ", "PSL"])
        assert norm["TMQ"].dims == ("time", "lat", "lon"), name
        assert norm.lat.values.tolist() == small_run.lat.values.tolist(), name
        np.testing.assert_array_equal(norm["TMQ"].values, small_run["TMQ"].values, err_msg=name)


def test_open_run_keeps_a_regional_grid_across_the_prime_meridian_whole(small_run):
    from climviz.data import open_run

    # 12 columns of 15 degrees centred -82.5 .. 82.5: a regional grid crossing 0 E
    reg = small_run.isel(lon=slice(0, 12)).assign_coords(lon=np.arange(-82.5, 90.0, 15.0))
    got = open_run(reg)
    assert got.lon.values.tolist() == (np.arange(-82.5, 90.0, 15.0) + 360.0).tolist()
    np.testing.assert_array_equal(got["TMQ"].values, reg["TMQ"].values)
    assert not grid.is_global_lon(got.lon.values)


def test_events_and_viz_accept_the_same_variants(small_run):
    from climviz.events import label
    from climviz.viz import _grid as viz_grid

    ref_events = label(small_run["LABELS"])
    assert int(ref_events.max()) > 0  # the synthetic run has events to compare
    for name, v in _variants(small_run).items():
        events = grid.standardize(label(v["LABELS"])).values
        ref = ref_events.values
        # the same events; ids are numbered in scan order, so compare the partitions
        assert np.array_equal(events > 0, ref > 0), name
        pairs = {(t, a, b) for t, a, b in zip(np.nonzero(ref > 0)[0], ref[ref > 0], events[ref > 0])}
        assert len({(t, a) for t, a, _ in pairs}) == len(pairs) == len({(t, b) for t, _, b in pairs}), name
        field = viz_grid.standardize(v["TMQ"])
        assert field.dims == ("time", "lat", "lon"), name
        np.testing.assert_array_equal(field.values, small_run["TMQ"].values, err_msg=name)
    rotated = small_run["LABELS"].rename(lat="rlat", lon="rlon")
    for part in (label, viz_grid.standardize):
        with pytest.raises(DataError, match="rotated-pole"):
            part(rotated)
