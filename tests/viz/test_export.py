"""Export: self-contained HTML, static PNG/PDF with coastlines and masks, nothing downloaded."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import climviz.viz as viz
from climviz.errors import ConfigError, DataError
from tests.viz.conftest import make_run


def test_save_html_is_self_contained_and_atomic(run, tmp_path, bokeh):
    out = viz.save_html(viz.map(run, "LABELS", time=0), tmp_path / "map.html", title="TMQ")
    html = out.read_text()
    assert "<title>TMQ</title>" in html
    assert "Bokeh" in html and len(html) > 1_000_000  # BokehJS is inlined
    # No resource is loaded from the network: no external script/link tags, no Panel CDN URLs.
    assert not re.search(r"<script[^>]+src=[\"']https?://", html)
    assert not re.search(r"<link[^>]+href=[\"']https?://", html)
    assert "cdn.holoviz.org" not in html
    assert [p.name for p in tmp_path.iterdir()] == ["map.html"]  # no temporary left behind
    with pytest.raises(FileExistsError):
        viz.save_html(viz.map(run, "LABELS", time=0), out, overwrite=False)


def pixel(fig, ax, lon: float, lat: float, rgb: np.ndarray) -> tuple[int, int]:
    """Row/column of the rendered image at a lon/lat (PlateCarree axes)."""
    import cartopy.crs as ccrs

    x, y = ax.projection.transform_point(lon, lat, ccrs.PlateCarree())
    dx, dy = ax.transData.transform((x, y))
    h = rgb.shape[0]
    return int(round(h - dy)), int(round(dx))


def render(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)


def test_static_map_draws_coastlines_over_land_not_over_sea(run, offline_cartopy):
    import matplotlib.pyplot as plt

    # A constant field, so every dark pixel is a coastline (or the frame).
    flat = xr.zeros_like(run["TMQ"])
    fig = viz.static_map(flat, time=0, coastline_resolution="l", clim=(0, 1), colorbar=False,
                         title="")
    ax = fig.axes[0]
    rgb = render(fig)
    dark = rgb.sum(axis=-1) < 200

    def dark_near(lon, lat, r=3):
        i, j = pixel(fig, ax, lon, lat, rgb)
        return dark[i - r:i + r + 1, j - r:j + r + 1].any()

    # Points on well-known coasts are drawn; open sea and continental interiors are not.
    from climviz.viz.coastlines import coastline_lines

    africa_coast = [xy for xy in coastline_lines("l") if len(xy) > 500 and xy[:, 0].mean() > 0
                    and -35 < xy[:, 1].mean() < 35][0]
    samples = africa_coast[:: len(africa_coast) // 20]
    assert np.mean([dark_near(lon, lat) for lon, lat in samples]) > 0.9
    for lon, lat in [(-150, 0), (-30, -30), (80, -40), (20, 20), (100, 62), (-60, -10)]:
        assert not dark_near(lon, lat, r=4), (lon, lat)
    plt.close(fig)
    # Drawing the coastlines downloaded nothing into cartopy's (empty) data folder.
    assert list(offline_cartopy.iterdir()) == []


def test_static_map_fills_mask_regions_with_the_class_colour(run):
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from climviz.viz.style import CLASS_COLORS, MASK_ALPHA, STYLES

    fig = viz.static_map(xr.zeros_like(run["TMQ"]), mask=run["LABELS"], time=0, clim=(0, 1), colorbar=False)
    ax = fig.axes[0]
    rgb = render(fig)
    # Centre of the TC (rows 14-15, columns 10-12 -> lat 22.5, lon 82.5) vs a place far from it.
    i, j = pixel(fig, ax, 82.5, 22.5, rgb)
    tc = np.array(mcolors.to_rgb(CLASS_COLORS[1])) * 255
    import matplotlib as mpl

    white = np.array(mpl.colormaps[STYLES["TMQ"].cmap](0.0)[:3]) * 255  # TMQ's colour map at its minimum
    expected = MASK_ALPHA * tc + (1 - MASK_ALPHA) * white  # the fill's alpha over the field
    assert np.abs(rgb[i, j] - expected).max() < 12
    k, m = pixel(fig, ax, -100.0, -50.0, rgb)
    assert np.abs(rgb[k, m] - white).max() < 12
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["TC", "AR"]
    plt.close(fig)


def test_save_static_png_and_pdf(run, tmp_path):
    png = viz.save_static(run, tmp_path / "tmq.png", mask="LABELS", time=1, dpi=60)
    pdf = viz.save_static(run, tmp_path / "tmq.pdf", mask="LABELS", time=1, projection="Robinson")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # a real picture, not blank
    with pytest.raises(DataError, match="static export writes"):
        viz.save_static(run, tmp_path / "tmq.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmq.pdf", "tmq.png"]


def test_no_cartopy_downloads(offline_cartopy, bokeh):
    # Interactive maps in every projection path, and static maps: the data folder stays empty.
    r = make_run(nt=1)
    bokeh.render(viz.map(r, "LABELS", projection="Mollweide"))
    bokeh.render(viz.map(r, "LABELS"))
    import matplotlib.pyplot as plt

    plt.close(viz.static_map(r, "LABELS", land=True))
    assert list(offline_cartopy.iterdir()) == []


def test_save_png_of_a_frequency_map_and_a_mask_only_explorer(tmp_path, bokeh):
    # What `climviz report` does with a mask dataset and no run.
    import climviz as cv
    from climviz.data.masks import make_mask_dataset

    r = make_run()
    masks = make_mask_dataset(r["LABELS"].values, r)
    freq = viz.class_frequency(masks, 1)
    png = viz.save_png(freq, tmp_path / "freq.png", title="TC frequency")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(DataError, match="save_png writes .png"):
        viz.save_png(freq, tmp_path / "freq.pdf")
    lab = cv.events.label(masks["mask"])
    tab = cv.events.table(lab, masks["mask"])
    app = viz.explore(masks, masks=masks, events=tab)
    assert app.variable.options == ["mask"]
    assert len(app.table.value) == 2  # the TC and the AR at step 0
    viz.save_html(app, tmp_path / "explorer.html")


def test_static_map_takes_class_names_like_numbers(run):
    import matplotlib.pyplot as plt

    legends = []
    for classes in (("tc",), (1,), ["AR", "tropical_cyclone"]):
        fig = viz.static_map(run["TMQ"], mask=run["LABELS"], time=0, classes=classes, colorbar=False)
        legends.append([t.get_text() for t in fig.axes[0].get_legend().get_texts()])
        plt.close(fig)
    assert legends == [["TC"], ["TC"], ["AR", "TC"]]
    with pytest.raises(ConfigError, match="classes: expected a class number"):
        viz.static_map(run["TMQ"], mask=run["LABELS"], time=0, classes=("cyclone",))
