"""Interactive maps: elements, dimensions, projection, seam handling, decimation, hover, errors."""

from __future__ import annotations

import cartopy.crs as ccrs
import numpy as np
import pytest
import xarray as xr

import climviz.viz as viz
from climviz.errors import DataError
from climviz.viz import _grid
from tests.viz.conftest import AR_ROWS, DLAT, DLON, NLAT, NLON, NT, TC_COLS


def layers(overlay):
    return {(el.group, el.label): el for el in overlay}


def test_map_of_a_run_has_a_time_slider_and_all_layers(run, bokeh):
    m = viz.map(run, mask="LABELS")
    assert isinstance(m, bokeh.HoloMap)
    assert m.kdims[0].name == "time"
    assert len(m.keys()) == NT
    frame = m[m.keys()[0]]
    lay = layers(frame)
    assert set(lay) == {("Image", ""), ("Mask", "TC"), ("Mask", "AR"), ("Coastline", "")}
    img = lay[("Image", "")]
    assert [d.name for d in img.vdims] == ["TMQ", "class"]
    assert img.vdims[0].label == "total precipitable water (kg m-2)"  # long_name, then units
    opts = frame.opts.get("plot").kwargs
    assert isinstance(opts["projection"], ccrs.PlateCarree)
    assert opts["xlim"] == (-180.0, 180.0)


def test_seam_is_rolled_and_closed_with_a_cyclic_column(run, bokeh):
    frame = viz.map(run, mask="LABELS", time=0)
    img = layers(frame)[("Image", "")]
    x = img.dimension_values("lon", expanded=False)
    # Centres -180 ... 172.5 plus the cyclic copy of -180 at 180: the image spans
    # [-183.75, 183.75], so the clipped map [-180, 180] has no empty strip.
    assert x[0] == pytest.approx(-180.0) and x[-1] == pytest.approx(180.0)
    assert np.allclose(np.diff(x), DLON)
    vals = img.dimension_values("TMQ", flat=False)
    vals = vals if vals.shape == (NLAT, NLON + 1) else vals[::-1]
    assert np.array_equal(vals[:, 0], vals[:, -1])
    # Value at map x = -180 is the run's value at lon = 180 (column 24): TMQ(lat) + 180/36.
    expected = run["TMQ"].isel(time=0).sel(lon=180.0).values
    lat = img.dimension_values("lat", expanded=False)
    col0 = vals[:, 0] if lat[0] < lat[-1] else vals[::-1, 0]
    assert np.allclose(col0, expected)
    # The bokeh image covers the cells' edges, not their centres.
    fig = bokeh.render(frame)
    src = fig.renderers[0].data_source.data
    assert src["x"][0] == pytest.approx(-180.0 - DLON / 2)
    assert src["dw"][0] == pytest.approx(360.0 + DLON)


def polygons(el):
    """The element's polygons as shapely polygons (exteriors; the fixtures have no holes)."""
    import shapely

    return [shapely.Polygon(np.column_stack([p.dimension_values(0), p.dimension_values(1)])) for p in el.split()]


def test_region_stored_across_lon_0_is_one_piece_on_the_map(run, bokeh):
    import shapely

    frame = viz.map(run, mask="LABELS", time=0)
    (ar,) = polygons(layers(frame)[("Mask", "AR")])
    # Columns 46, 47, 0, 1 (lon 345 ... 7.5) are contiguous around 0: one polygon from
    # x = 345 - 360 - 3.75 to 7.5 + 3.75, no gap at the storage seam.
    x0, y0, x1, y1 = ar.bounds
    assert (x0, x1) == pytest.approx((-18.75, 11.25))
    # Half-way contour of a 2 x 4-cell block: its cell edges minus a right triangle with legs
    # (DLON/2, DLAT/2) at each of the 4 corners: 8 - 4/8 = 7.5 cells.
    assert shapely.area(ar) == pytest.approx(7.5 * DLON * DLAT)
    assert (y0, y1) == pytest.approx((-90 + DLAT * AR_ROWS.start, -90 + DLAT * AR_ROWS.stop))


def test_tc_polygon_follows_the_storm(run, bokeh):
    m = viz.map(run, mask="LABELS")
    centres = []
    for t in m.keys():
        (poly,) = polygons(layers(m[t])[("Mask", "TC")])
        assert poly.area == pytest.approx(5.5 * DLON * DLAT)  # 2 x 3 cells minus 4 corner triangles
        centres.append(poly.centroid.x)
    # One cell (7.5 degrees) east per step; columns 10-12 at t=0 -> centre lon 82.5.
    assert np.allclose(np.diff(centres), DLON)
    assert centres[0] == pytest.approx((TC_COLS.start + 1) * DLON)


def test_hover_shows_lon_lat_value_and_class(run, bokeh):
    fig = bokeh.render(viz.map(run, mask="LABELS", time=1))
    hovers = [t for t in fig.tools if type(t).__name__ == "HoverTool"]
    tips = dict(hovers[0].tooltips)
    assert set(tips) == {"lon", "lat", "total precipitable water (kg m-2)", "class"}
    assert tips["class"] == "@{class}{custom}"  # named (TC/AR/none) by a formatter, not 1/2
    legend = [item.label.value for item in fig.legend[0].items]
    assert legend == ["TC", "AR"]


def test_time_selection_by_index_label_and_list(run, bokeh):
    by_index = viz.map(run, "LABELS", time=2)
    by_label = viz.map(run, "LABELS", time=str(run.time.values[2]))
    a = layers(by_index)[("Image", "")].dimension_values("TMQ")
    b = layers(by_label)[("Image", "")].dimension_values("TMQ")
    assert np.array_equal(a, b)
    two = viz.map(run, "LABELS", time=[0, 2])
    assert len(two.keys()) == 2
    with pytest.raises(DataError, match="time '1999-01-01' not found; the run has 3 time steps"):
        viz.map(run, time="1999-01-01")


def test_large_grids_are_decimated_but_keep_small_storms(bokeh):
    nlat, nlon = 768, 1152
    lat = -90 + 180 / nlat * (np.arange(nlat) + 0.5)
    lon = 360 / nlon * np.arange(nlon)
    field = xr.DataArray(np.add.outer(np.arange(nlat), np.arange(nlon)).astype(np.float32),
                         dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="TMQ")
    mask = xr.zeros_like(field, dtype=np.uint8)
    mask[400, 700] = 1  # one TC cell
    frame = viz.map(field, mask, max_shape=(192, 288))
    img = layers(frame)[("Image", "")]
    vals = img.dimension_values("TMQ", flat=False)
    assert vals.shape == (192, 288 + 1)  # 4 x 4 blocks, + the cyclic column
    # Block means of i + j over a 4 x 4 block starting at (4a, 4b) = 4a + 4b + 3.
    lat_v = img.dimension_values("lat", expanded=False)
    rows = vals if lat_v[0] < lat_v[-1] else vals[::-1]
    # Exact check: map column 144 is lon 0 (the run's column 0), row 10 is lat rows 40-43.
    assert rows[10, 144] == pytest.approx(np.mean(np.add.outer(np.arange(40, 44), np.arange(0, 4))))
    classes = img.dimension_values("class", flat=False)
    assert (classes == 1).sum() == 1
    assert len(layers(frame)[("Mask", "TC")].data) == 1


def test_projection_by_name_regrids_and_keeps_lon_lat_hover(run, bokeh):
    frame = viz.map(run, mask="LABELS", time=0, projection="Robinson")
    assert isinstance(frame.opts.get("plot").kwargs["projection"], ccrs.Robinson)
    img = layers(frame)[("Image", "")]
    assert [d.name for d in img.vdims] == ["TMQ", "class", "lon_deg", "lat_deg"]
    # Every regridded value is the run's value at the lon/lat carried with it.
    lon = img.dimension_values("lon_deg")
    lat = img.dimension_values("lat_deg")
    val = img.dimension_values("TMQ")
    ok = np.isfinite(val)
    assert ok.mean() > 0.7  # the ellipse of the Robinson map fills ~80 % of its box
    # Leave out target cells whose centre falls exactly on a source cell edge (a tie).
    fy, fx = (lat + 90) / DLAT, lon / DLON
    ok &= (np.abs(fy - np.rint(fy)) > 1e-6) & (np.abs(fx % 1 - 0.5) > 1e-6)
    i = np.floor((lat[ok] + 90) / DLAT).astype(int)
    j = np.rint(lon[ok] / DLON).astype(int) % NLON
    assert np.allclose(val[ok], run["TMQ"].values[0][i, j])
    fig = bokeh.render(frame)
    tips = dict([t for t in fig.tools if type(t).__name__ == "HoverTool"][0].tooltips)
    assert tips["lon"].startswith("@{lon_deg}")


def test_pacific_centred_map_shifts_data_instead_of_regridding(run, bokeh):
    proj = ccrs.PlateCarree(central_longitude=180)
    frame = viz.map(run, mask="LABELS", time=0, projection=proj)
    img = layers(frame)[("Image", "")]
    x = img.dimension_values("lon", expanded=False)
    vals = img.dimension_values("TMQ", flat=False)
    lat_v = img.dimension_values("lat", expanded=False)
    vals = vals if lat_v[0] < lat_v[-1] else vals[::-1]
    # x = 0 is longitude 180.
    col = int(np.argmin(np.abs(x)))
    assert np.allclose(vals[:, col], run["TMQ"].isel(time=0).sel(lon=180.0).values)
    # The AR straddling lon 0 now straddles the map's seam at x = +-180: two pieces that
    # reach the edges exactly and together keep the area of the whole region.
    pieces = polygons(layers(frame)[("Mask", "AR")])
    b = np.array([p.bounds for p in pieces])
    assert len(pieces) == 2
    assert b[:, 0].min() == pytest.approx(-180.0) and b[:, 2].max() == pytest.approx(180.0)
    assert sum(p.area for p in pieces) == pytest.approx(7.5 * DLON * DLAT)


def test_dynamic_map_for_long_runs(run, bokeh):
    dmap = viz.map(run, "LABELS", dynamic=True)
    assert isinstance(dmap, bokeh.DynamicMap)
    frame = dmap[run.time.values[1]]
    assert ("Mask", "TC") in layers(frame)


def test_latitude_descending_and_lon_minus180_input_are_normalized(run, bokeh):
    flipped = run.isel(lat=slice(None, None, -1))
    shifted = flipped.assign_coords(lon=((flipped.lon + 180) % 360) - 180).sortby("lon")
    a = layers(viz.map(run, "LABELS", time=0))[("Image", "")].dimension_values("TMQ")
    b = layers(viz.map(shifted, "LABELS", time=0))[("Image", "")].dimension_values("TMQ")
    assert np.array_equal(a, b)


def test_bad_inputs_are_clear_errors(run, bokeh):
    with pytest.raises(DataError, match="variable 'NOPE' not in the dataset"):
        viz.map(run, variable="NOPE")
    with pytest.raises(DataError, match="expected a latitude dimension"):
        viz.map(run["TMQ"].rename(lat="row"))
    other = run["LABELS"].isel(lat=slice(0, 12))
    with pytest.raises(DataError, match="mask grid does not match the field: lat has 12 values"):
        viz.map(run["TMQ"], other)
    with pytest.raises(DataError, match="classes must be among"):
        viz.map(run, "LABELS", classes=(3,))
    with pytest.raises(DataError, match="unknown projection"):
        viz.map(run, projection="Flat")


def test_grid_helpers_match_hand_calculations():
    da = xr.DataArray(np.arange(8.0)[None].repeat(2, 0), dims=("lat", "lon"),
                      coords={"lat": [-45.0, 45.0], "lon": np.arange(8) * 45.0})
    w = _grid.wrap_lon(da)
    assert list(w.lon.values) == [-180, -135, -90, -45, 0, 45, 90, 135]
    assert list(w.values[0]) == [4, 5, 6, 7, 0, 1, 2, 3]
    c = _grid.add_cyclic(w)
    assert c.lon.values[-1] == 180.0 and c.values[0, -1] == c.values[0, 0]
    m = xr.DataArray(np.array([[2, 2, 0, 0], [2, 1, 0, 2]], np.uint8), dims=("lat", "lon"),
                     coords={"lat": [0.0, 1.0], "lon": [0.0, 90.0, 180.0, 270.0]})
    # 2 x 2 blocks: the first holds a TC cell (TC wins), the second one AR cell.
    assert _grid.coarsen_mask(m, (2, 2)).values.tolist() == [[1, 2]]
    f = _grid.coarsen_field(m.astype(float), (2, 2))
    assert f.values.tolist() == [[7 / 4, 2 / 4]]


def test_colour_limits_are_robust_but_keep_sparse_maxima():
    rng = np.random.default_rng(0)
    smooth = rng.normal(size=10_000)
    smooth[0] = 1e6  # one wild outlier does not stretch the colour bar
    lo, hi = _grid.robust_limits(smooth)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(smooth, [0.5, 99.5])))
    sparse = np.zeros(1000)
    sparse[:3] = [0.2, 0.5, 1.0]  # e.g. an event frequency: mostly zero
    assert _grid.robust_limits(sparse) == (0.0, 1.0)
    assert _grid.robust_limits(np.full(5, 3.0)) == (3.0, 4.0)
    assert _grid.robust_limits(np.full(5, np.nan)) is None


def test_map_classes_by_name_show_the_same_layers_as_by_number(run, bokeh):
    for by_name, by_number in ((("tc",), (1,)), (["AR"], [2]), (("TC", "ar"), (1, 2))):
        named, numbered = viz.map(run, mask="LABELS", classes=by_name), viz.map(run, mask="LABELS", classes=by_number)
        first = named.keys()[0]
        assert set(layers(named[first])) == set(layers(numbered[first]))
    assert set(layers(viz.map(run, mask="LABELS", classes=("tc",))[first])) == {
        ("Image", ""), ("Mask", "TC"), ("Coastline", "")}
