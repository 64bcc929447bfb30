"""One class palette everywhere, readers' units and colour maps per variable, longitudes as people write them."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import climviz.viz as viz
from climviz.viz.style import CLASS_COLORS, MASK_ALPHA, STYLES, display_field, field_style, lat_label, lon_label


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0-1) to CIE Lab (D65), written out from the CIE formulas."""
    a = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = a @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


@pytest.mark.parametrize("variable", ["TMQ", "PRECT", "QREFHT"])
def test_class_fills_stay_distinct_over_the_moisture_colour_maps(variable):
    """A TC/AR fill over any colour of the field stays far from every field colour and from the other class.

    Delta E (CIE76) > 30 is a clearly different colour, not a tint of the field.
    """
    field = mpl.colormaps[STYLES[variable].cmap](np.linspace(0, 1, 64))[:, :3]
    lab_field = _lab(field)
    fills = {}
    for cls, colour in CLASS_COLORS.items():
        fill = MASK_ALPHA * np.array(mcolors.to_rgb(colour)) + (1 - MASK_ALPHA) * field
        fills[cls] = _lab(fill)
        nearest = np.linalg.norm(fills[cls][:, None] - lab_field[None], axis=-1).min()
        assert nearest > 30, (cls, nearest)
    between = np.linalg.norm(fills[1][:, None] - fills[2][None], axis=-1).min()
    assert between > 30, between


def test_every_plot_uses_the_one_palette(bokeh):
    from climviz.viz.overlays import class_overlay

    ov = class_overlay(np.arange(4.0), np.arange(3.0), np.array([[0, 1, 1, 0], [0, 1, 2, 2], [0, 0, 2, 2]]), None)
    assert [el.opts.get().kwargs["line_color"] for el in ov] == [CLASS_COLORS[1], CLASS_COLORS[2]]
    tab = pd.DataFrame({"area_km2": [1e6, 2e6, 3e6], "class": [1, 2, 2]})
    hist = viz.histogram(tab)
    assert [h.opts.get().kwargs["fill_color"] for h in hist] == [CLASS_COLORS[1], CLASS_COLORS[2]]
    assert viz.CLASS_COLORS is CLASS_COLORS and viz.CLASS_SHORT == {1: "TC", 2: "AR"}


def test_display_units_by_hand():
    psl = xr.DataArray([[101325.0, 98000.0]], dims=("lat", "lon"), name="PSL",
                       attrs={"units": "Pa", "long_name": "sea level pressure"})
    shown, name, label, style = display_field(psl)
    assert name == "PSL" and label == "sea level pressure (hPa)"
    assert np.allclose(shown.values, [[1013.25, 980.0]])
    assert psl.values[0, 0] == 101325.0  # the data are not changed
    assert style.kind == "diverging" and style.center == 1013.25
    prect = xr.DataArray([[1e-7]], dims=("lat", "lon"), name="PRECT", attrs={"units": "m s-1"})
    shown, _, label, style = display_field(prect)
    assert shown.item() == pytest.approx(8.64)  # 1e-7 m/s * 86400 s/day * 1000 mm/m
    assert label == "PRECT (mm/day)" and style.fmt == "0.0"
    # Already in hPa: no second conversion, same pressure map.
    hpa = psl / 100
    hpa.attrs = {"units": "hPa"}
    hpa.name = "PSL"
    shown, _, label, style = display_field(hpa)
    assert np.allclose(shown.values, [[1013.25, 980.0]]) and style.center == 1013.25
    # Kinds of colour map: sequential for moisture, diverging for winds and unknown anomalies.
    assert field_style("TMQ", "kg m-2").kind == "sequential"
    assert field_style("U850", "m s-1").kind == "diverging"
    assert field_style("anomaly", "K", np.linspace(-3, 3, 50)).kind == "diverging"
    assert field_style("thing", "1", np.linspace(2, 9, 50)).kind == "sequential"


def test_psl_map_is_drawn_in_hpa_with_limits_centred_on_the_standard_atmosphere(run, bokeh):
    m = viz.map(run, variable="PSL", time=0)
    img = [e for e in m if e.group == "Image"][0]
    vals = img.dimension_values("PSL")
    # Fixture: PSL = 101325 - 10 lat (Pa) -> 1013.25 - 0.1 lat hPa, lat in (-86.25, 86.25).
    assert np.nanmax(vals) == pytest.approx(1013.25 + 8.625, abs=1e-3)
    lo, hi = img.opts.get().kwargs["clim"]
    assert (lo + hi) / 2 == pytest.approx(1013.25)
    assert img.opts.get().kwargs["cmap"] == STYLES["PSL"].cmap


@pytest.mark.parametrize(("lon", "text"), [(235.0, "125.0°W"), (318.8, "41.2°W"), (20.3, "20.3°E"),
                                           (0.0, "0.0°"), (180.0, "180.0°"), (-180.0, "180.0°"), (359.96, "0.0°")])
def test_longitudes_read_east_or_west(lon, text):
    assert lon_label(lon) == text


def test_latitudes_read_north_or_south():
    assert [lat_label(v) for v in (20.31, -15.0, 0.0)] == ["20.3°N", "15.0°S", "0.0°"]
