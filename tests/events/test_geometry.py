"""Cell areas, great-circle distances and circular means against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from climviz.errors import DataError
from climviz.events.geometry import cell_areas, circular_mean_deg, great_circle_km, lat_edges

R = 6371.0


def test_regular_grid_cell_areas_sum_to_the_sphere():
    lat = np.linspace(-89.5, 89.5, 180)
    lon = np.arange(360) + 0.5
    areas = cell_areas(lat, lon)
    assert areas.shape == (180, 360)
    assert areas.sum() == pytest.approx(4 * math.pi * R**2, rel=1e-12)


def test_one_cell_matches_the_written_out_formula():
    lat = np.array([-45.0, 0.0, 45.0])  # edges: -67.5, -22.5, 22.5, 67.5
    lon = np.arange(0.0, 360.0, 90.0)  # widths: 90 degrees
    areas = cell_areas(lat, lon)
    expected_middle = R**2 * (math.pi / 2) * (math.sin(math.radians(22.5)) - math.sin(math.radians(-22.5)))
    expected_north = R**2 * (math.pi / 2) * (math.sin(math.radians(67.5)) - math.sin(math.radians(22.5)))
    assert areas[1, 0] == pytest.approx(expected_middle, rel=1e-12)
    assert areas[2, 3] == pytest.approx(expected_north, rel=1e-12)
    assert np.allclose(areas[0], areas[2])  # symmetric hemispheres


def test_outer_edges_clipped_at_the_poles():
    # DeepCAM-like grid with centres exactly at the poles: the polar cells are half cells
    lat = np.linspace(-90, 90, 7)  # spacing 30
    edges = lat_edges(lat)
    assert edges[0] == -90.0 and edges[-1] == 90.0
    assert edges[1] == pytest.approx(-75.0)
    areas = cell_areas(lat, np.arange(0, 360, 60.0))
    polar = R**2 * math.radians(60) * (1 - math.sin(math.radians(75)))
    assert areas[-1, 0] == pytest.approx(polar, rel=1e-12)
    assert areas.sum() == pytest.approx(4 * math.pi * R**2, rel=1e-12)


def test_irregular_latitudes_use_midpoint_edges():
    lat = np.array([-60.0, -10.0, 0.0, 30.0, 80.0])
    lon = np.arange(0, 360, 30.0)
    areas = cell_areas(lat, lon)
    edges = [-85.0, -35.0, -5.0, 15.0, 55.0, 90.0]  # -60-25, midpoints, 80+25 clipped to 90
    for i in range(5):
        expected = R**2 * math.radians(30) * (math.sin(math.radians(edges[i + 1])) - math.sin(math.radians(edges[i])))
        assert areas[i, 7] == pytest.approx(expected, rel=1e-12)


def test_descending_latitudes_give_the_same_areas_reversed():
    lat = np.linspace(-80, 80, 9)
    lon = np.arange(0, 360, 45.0)
    assert np.allclose(cell_areas(lat[::-1], lon), cell_areas(lat, lon)[::-1])


def test_bad_coordinates_are_clear_errors():
    with pytest.raises(DataError, match="lat"):
        cell_areas([0.0, 0.0, 1.0], [0.0, 10.0])
    with pytest.raises(DataError, match="lat"):
        cell_areas([[0.0]], [0.0])
    with pytest.raises(DataError, match="lon"):
        cell_areas([0.0, 10.0], [10.0, 0.0])


def test_great_circle_quarter_and_half_circumference():
    assert great_circle_km(0, 0, 0, 180) == pytest.approx(math.pi * R)
    assert great_circle_km(0, 0, 90, 0) == pytest.approx(math.pi * R / 2)
    # across the dateline: 1 degree of longitude at the equator
    assert great_circle_km(0, 359.5, 0, 0.5) == pytest.approx(2 * math.pi * R / 360)
    d = great_circle_km(np.array([0, 10]), 0, 0, np.array([[0], [90]]))
    assert d.shape == (2, 2)
    # spherical law of cosines, written out
    p1, p2, dl = map(math.radians, (10, 0, 90))
    expected = R * math.acos(math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl))
    assert d[1, 1] == pytest.approx(expected)


def test_circular_mean_across_the_dateline():
    assert circular_mean_deg([350.0, 10.0]) == pytest.approx(0.0, abs=1e-9)
    assert circular_mean_deg([350.0, 20.0]) == pytest.approx(5.0)
    assert circular_mean_deg([10.0, 20.0], weights=[3, 1]) == pytest.approx(
        math.degrees(math.atan2(3 * math.sin(math.radians(10)) + math.sin(math.radians(20)),
                                3 * math.cos(math.radians(10)) + math.cos(math.radians(20)))))
    out = circular_mean_deg([[350.0, 30.0], [100.0, 120.0]], axis=1)
    assert np.allclose(out, [10.0, 110.0])
    assert np.isnan(circular_mean_deg([0.0, 180.0]))
    assert 0.0 <= circular_mean_deg([-1e-14, 1e-14]) < 360.0
