"""A real headless Chromium: saved maps and the served explorer render, and their sliders work.

Needs Debian's ``chromium`` (``apt-get install -y --no-install-recommends chromium``)
and the ``playwright`` Python package (no Playwright browser download).
"""

from __future__ import annotations

import io
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_explorer_reacts_to_slider_and_table_clicks(run, browser, bokeh):
    import pandas as pd
    import panel as pn

    events = pd.DataFrame({"time": run.time.values, "event": 1, "class": 1, "centroid_lat": 22.5,
                           "centroid_lon": 82.5 + 7.5 * np.arange(run.sizes["time"]),
                           "area_km2": [111111.0, 222222.0, 333333.0], "track_id": 1})
    app = viz.explore(run, events=events)
    port = free_port()
    server = pn.serve(app.layout, port=port, address="127.0.0.1", websocket_origin=[f"127.0.0.1:{port}"],
                      show=False, threaded=True, start=True)
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
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
    finally:
        server.stop()
