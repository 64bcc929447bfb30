"""A real headless Chromium: saved maps and the served explorer render, and their sliders work.

Needs Debian's ``chromium`` (``apt-get install -y --no-install-recommends chromium``)
and the ``playwright`` Python package (no Playwright browser download).
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import time

import numpy as np
import pytest

import climviz.viz as viz

pytestmark = pytest.mark.browser


def watch(page) -> dict[str, list[str]]:
    """Record JavaScript errors and every requested URL of a page."""
    seen: dict[str, list[str]] = {"errors": [], "requests": []}
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: seen["requests"].append(r.url))
    return seen


def wait_for_bokeh(page) -> None:
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].roots().length > 0",
                           timeout=60_000)
    page.wait_for_timeout(800)


def map_pixels(page) -> np.ndarray:
    """Screenshot of the largest canvas on the page (the map), as an RGB array."""
    from PIL import Image

    boxes = [b for b in (c.bounding_box() for c in page.locator("canvas").all()) if b]
    box = max(boxes, key=lambda b: b["width"] * b["height"])
    png = page.screenshot(clip=box)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def assert_not_blank(rgb: np.ndarray) -> None:
    colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
    non_white = (rgb.sum(axis=-1) < 700).mean()
    assert colours > 40 and non_white > 0.3, (colours, non_white)


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b).sum(axis=-1) > 30).mean())


# True when some element, in the page or any (nested) shadow root, shows the text.
SHADOW_TEXT = """(text) => {
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot && (el.shadowRoot.textContent.includes(text) || walk(el.shadowRoot))) return true;
    }
    return false;
  };
  return document.body.innerText.includes(text) || walk(document);
}"""


def step_slider(page) -> None:
    handle = page.locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowRight")


def test_saved_map_renders_offline_and_its_slider_changes_the_image(run, tmp_path, browser, bokeh):
    path = viz.save_html(viz.map(run, mask="LABELS"), tmp_path / "map.html")
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    seen = watch(page)
    page.goto(path.as_uri())
    wait_for_bokeh(page)
    before = map_pixels(page)
    assert_not_blank(before)
    step_slider(page)
    page.wait_for_timeout(1000)
    after = map_pixels(page)
    assert_not_blank(after)
    # TMQ rises by 10 kg m-2 per step and the TC moves: a large part of the map changes.
    assert changed_fraction(before, after) > 0.2
    assert seen["errors"] == []
    assert [u for u in seen["requests"] if not u.startswith(("file:", "data:", "blob:"))] == []
    page.close()


@contextlib.contextmanager
def served(app, browser, *, height: int):
    """Serve ``app`` (a climviz explorer) on 127.0.0.1 and open it: ``(page, seen, port)``; stopped after."""
    import panel as pn

    port = free_port()
    server = pn.serve(app.layout, port=port, address="127.0.0.1", websocket_origin=[f"127.0.0.1:{port}"],
                      show=False, threaded=True, start=True)
    try:
        page = browser.new_page(viewport={"width": 1300, "height": height})
        seen = watch(page)
        deadline = time.time() + 60
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}/")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        wait_for_bokeh(page)
        yield page, seen, port
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_explorer_reacts_to_slider_and_table_clicks(run, browser, bokeh):
    import pandas as pd

    events = pd.DataFrame({"time": run.time.values, "event": 1, "class": 1, "centroid_lat": 22.5,
                           "centroid_lon": 82.5 + 7.5 * np.arange(run.sizes["time"]),
                           "area_km2": [111111.0, 222222.0, 333333.0], "track_id": 1})
    app = viz.explore(run, events=events)
    with served(app, browser, height=1000) as (page, seen, port):
        before = map_pixels(page)
        assert_not_blank(before)
        step_slider(page)  # -> Python callback -> new map
        page.wait_for_function("() => true")
        for _ in range(40):
            page.wait_for_timeout(250)
            if int(app.time.value) == 1 and changed_fraction(before, map_pixels(page)) > 0.2:
                break
        assert int(app.time.value) == 1
        assert changed_fraction(before, map_pixels(page)) > 0.2
        # Click the event's row in the table: its details appear on the page.
        page.locator(".tabulator-row .tabulator-cell[tabulator-field='area_km2']").first.click()
        for _ in range(40):
            if app.selected is not None:
                break
            page.wait_for_timeout(250)
        assert app.selected is not None and app.selected["area_km2"] == 222222.0
        page.wait_for_function(SHADOW_TEXT, arg="222222", timeout=20_000)
        assert seen["errors"] == []
        assert [u for u in seen["requests"] if not u.startswith((f"http://127.0.0.1:{port}", "ws://127.0.0.1",
                                                                  "data:", "blob:"))] == []
        page.close()


# Text of every tooltip element in the page and its shadow roots.
TOOLTIP_TEXT = """() => { const out = []; const walk = (root) => { for (const el of root.querySelectorAll('*')) {
  const tip = el.classList && [...el.classList].some(c => c.includes('tooltip'));
  if (tip && el.textContent.trim()) out.push(el.textContent);
  if (el.shadowRoot) walk(el.shadowRoot); } }; walk(document); return out; }"""

# The page's own BokehJS formatters applied to map x values: [tick text, hover text] per x.
FORMAT_XS = """(xs) => { const ms = [...Bokeh.documents[0].all_models];
  const tick = ms.find(m => m.type === 'CustomJSTickFormatter' && m.code.includes("'°E'"));
  const hover = ms.find(m => m.type === 'CustomJSHover' && m.code.includes("'°E'"));
  const ticks = tick.doFormat(xs, {loc: 0});
  return xs.map((x, i) => [ticks[i], hover.format(x, '', {})]); }"""


def _signed_lon(text: str) -> float:
    """'125°W' -> -125, '30.00°E' -> 30, '180°' -> 180."""
    text = text.strip()
    value = float(text.rstrip("°EW").rstrip("°"))
    return -value if text.endswith("W") else value


@pytest.mark.parametrize("center", [0.0, 180.0])
def test_hover_and_axis_read_longitude_the_same_way(run, tmp_path, browser, bokeh, center):
    import cartopy.crs as ccrs

    m = viz.map(run, mask="LABELS", time=0, projection=ccrs.PlateCarree(central_longitude=center))
    path = viz.save_html(m, tmp_path / "map.html")
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    seen = watch(page)
    page.goto(path.as_uri())
    wait_for_bokeh(page)
    xs = [-179.0, -125.0, -90.5, -0.5, 0.0, 45.0, 135.0, 180.0]
    pairs = page.evaluate(FORMAT_XS, xs)
    for x, (tick, hover) in zip(xs, pairs):
        expected = (x + center + 180.0) % 360.0 - 180.0  # the longitude at map x, in (-180, 180]
        if expected == -180.0:
            expected = 180.0
        assert _signed_lon(tick) == pytest.approx(expected, abs=0.01), (x, tick)
        assert _signed_lon(hover) == pytest.approx(expected, abs=0.01), (x, hover)
        assert tick.endswith(("°E", "°W", "°")) and hover.endswith(("°E", "°W", "°"))
    # A real hover over the western part of the map shows °W, as the axis there does (no 235.00°E).
    box = max((c.bounding_box() for c in page.locator("canvas").all()), key=lambda b: b["width"] * b["height"])
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.wait_for_timeout(800)
    tip = " ".join(page.evaluate(TOOLTIP_TEXT))
    lon = re.search(r"lon:\s*([0-9.]+°[EW]?)", tip)
    assert lon, tip
    west = center == 0.0  # 30 % across the canvas: ~90°W on a 0-centred map, ~90°E on a 180-centred one
    assert lon.group(1).endswith("°W" if west else "°E"), tip
    assert 30.0 < abs(_signed_lon(lon.group(1))) < 150.0, tip
    assert re.search(r"class:\s*(none|TC|AR)", tip), tip  # classes by name
    assert seen["errors"] == []
    page.close()


def test_notebook_exported_to_html_draws_its_maps_offline(tmp_path, browser):
    """A notebook that shows a map, exported with viz.notebook_html, draws it with the network cut off."""
    import nbformat
    from nbclient import NotebookClient

    from tests.notebooks.conftest import ROOT, render_problems

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a map"),
                nbformat.v4.new_code_cell("import climviz.viz as viz\nfrom tests.viz.conftest import make_run\n"
                                          "run = make_run()"),
                nbformat.v4.new_code_cell("viz.map(run, mask='LABELS', time=0)"),
                nbformat.v4.new_code_cell("viz.histogram(__import__('pandas').DataFrame("
                                          "{'area_km2': [1e6, 2e6, 2.5e6], 'class': [1, 2, 2]}))")]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    html = viz.notebook_html(nb, tmp_path / "nb.html")
    text = html.read_text()
    assert "cdn.bokeh.org" not in text and "cdn.holoviz.org" not in text  # BokehJS and Panel inline
    problems, drawn = render_problems(html, browser, min_maps=2)
    assert problems == [] and drawn >= 2


def test_notebook03_explorer_renders_and_a_row_click_draws_the_track(browser, bokeh):
    """Notebook 03's explorer (sample run, LABELS as masks, the tracks' event rows), served as in a kernel."""

    import climviz as cv
    from tests.notebooks.conftest import ROOT

    ds = cv.open_run(ROOT / "data_samples" / "climatenet")
    masks = ds[["LABELS"]].rename({"LABELS": "mask"})
    lab = cv.events.label(masks["mask"])
    tab = cv.events.table(lab, masks["mask"], fields={"PSL": ds["PSL"]})
    trk = cv.events.track(tab, lab)
    app = viz.explore(ds, masks=masks, events=trk.events)
    n_rows = len(app.table.value)
    assert n_rows == int((trk.events["time"] == ds["time"].values[0]).sum()) > 0
    with served(app, browser, height=1100) as (page, seen, port):
        page.wait_for_selector(".tabulator-row", timeout=30_000)
        # The table renders (Tabulator loaded) with one row per event of the step, classes by name.
        assert page.locator(".tabulator-row").count() == n_rows
        page.wait_for_function(SHADOW_TEXT, arg="°N", timeout=20_000)
        before = map_pixels(page)
        assert_not_blank(before)
        # Click the row of the first TC: its whole track is drawn and its details appear.
        cells = page.locator(".tabulator-row .tabulator-cell[tabulator-field='class']").all()
        classes = [c.inner_text() for c in cells]
        row = classes.index("TC")
        page.locator(".tabulator-row").nth(row).locator(".tabulator-cell[tabulator-field='area_km2']").click()
        def drawn_track():  # the server thread sets `selected`, then redraws the map
            return [e for e in app.map_pane.object if e.group == "SelectedTrack"]

        for _ in range(60):
            if app.selected is not None and drawn_track():
                break
            page.wait_for_timeout(250)
        assert app.selected is not None and app.selected["class"] == 1
        track = drawn_track()
        steps = int((trk.events["track_id"] == app.selected["track_id"]).sum())
        assert len(track) == 1 and steps > 1
        assert sum(len(p.dimension_values("x")) for p in track[0].split()) >= steps
        # The sample's TCs move ~10 degrees in 3 days: a short line of some 20 x 4 pixels.
        n_pix = before.shape[0] * before.shape[1]
        for _ in range(40):
            page.wait_for_timeout(250)
            if changed_fraction(before, map_pixels(page)) * n_pix > 40:
                break
        assert changed_fraction(before, map_pixels(page)) * n_pix > 40  # the track line appeared on the map
        page.wait_for_function(SHADOW_TEXT, arg="track: steps", timeout=20_000)
        assert seen["errors"] == []
        page.close()
