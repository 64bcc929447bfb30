"""Run notebooks top to bottom through a real Jupyter kernel (nbclient), and check what a reader would see.

A notebook passes only when no cell output carries an error, no stderr line is a
warning or error from climviz or its plotting stack, and the notebook exported to
HTML (:func:`climviz.viz.notebook_html`) renders its maps in a real headless
Chromium with the network cut off and without a JavaScript error.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient


ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

#: Libraries whose warnings a reader must not meet: climviz and its plotting stack.
STACK = ("climviz", "holoviews", "bokeh", "panel", "param", "geoviews", "cartopy", "matplotlib", "pyproj",
         "shapely", "contourpy", "xarray", "PIL", "datashader", "colorcet", "pandas", "numpy")
_PROBLEM = re.compile(r"warning|error|traceback|exception", re.I)
_BOKEH_CODE = re.compile(r"\b[WE]-\d{4}\b")
_STACK_RE = re.compile(r"(?:^|[/\s:.(])(?:" + "|".join(re.escape(s) for s in STACK) + r")(?:[/.:\s]|$)")


def execute_notebook(path: Path, workdir: Path, *, timeout: int = 600,
                     env: dict | None = None) -> nbformat.NotebookNode:
    """Execute ``path`` in ``workdir`` with a fresh kernel; return the executed notebook.

    Sizes are made small through environment variables (``CLIMVIZ_NB_QUICK=1``), never by editing
    cells. Raises ``nbclient.exceptions.CellExecutionError`` naming the failing cell.
    """
    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.update({"CLIMVIZ_NB_QUICK": "1", "CLIMVIZ_ROOT": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
                       "MPLBACKEND": "Agg", **(env or {})})
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def stderr_problem(line: str) -> bool:
    """True for a stderr line that is a warning/error from climviz or its plotting stack (or a Bokeh W-/E- code)."""
    if _BOKEH_CODE.search(line):
        return True
    return bool(_PROBLEM.search(line) and _STACK_RE.search(line))


def output_problems(nb: nbformat.NotebookNode) -> list[str]:
    """Error outputs and stderr warnings of climviz / the plotting stack, one line each (cell index first)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                problems.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif kind == "stream" and out.get("name") == "stderr":
                problems += [f"cell {i} stderr: {ln}" for ln in out.get("text", "").splitlines() if stderr_problem(ln)]
            elif kind in ("display_data", "execute_result"):
                data = out.get("data", {})
                if "application/vnd.jupyter.stderr" in data:
                    problems.append(f"cell {i} stderr: {data['application/vnd.jupyter.stderr'][:300]}")
    return problems


def watch(page) -> dict[str, list[str]]:
    """Record JavaScript errors (uncaught and console.error) and every non-local request of a page."""
    seen: dict[str, list[str]] = {"errors": [], "requests": []}
    page.on("pageerror", lambda e: seen["errors"].append(f"uncaught: {e}"))
    page.on("console", lambda m: seen["errors"].append(f"console.error: {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:", "about:"))
            else seen["requests"].append(r.url))
    return seen


def canvas_is_drawn(png: bytes) -> bool:
    """A plot canvas shows a picture: many colours, and coloured (not grey) pixels on at least 0.5 % of it.

    A plot whose BokehJS failed is empty; axes, text and coastlines alone are grey.
    A field, a colour bar, class regions or histogram bars are coloured.
    """
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
    saturated = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 60
    return colours > 40 and saturated.mean() > 0.005


def render_problems(html_path: Path, browser,  # noqa: F811  (the fixture's value, passed in)
                    min_maps: int = 1) -> tuple[list[str], int]:
    """Open an exported notebook offline in Chromium; return (problems, number of drawn map canvases).

    Problems: JavaScript errors, requests that leave the machine (all are refused),
    no Bokeh document, and fewer than ``min_maps`` large canvases with a picture on them.
    """
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = ctx.new_page()
    seen = watch(page)
    try:
        page.goto(html_path.as_uri())
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
        page.wait_for_timeout(3000)
        problems = list(seen["errors"]) + [f"network request (page must work offline): {u}" for u in seen["requests"]]
        drawn_pictures = set()  # a Bokeh figure stacks several canvases: count distinct pictures
        for canvas in page.locator("canvas").all():
            box = canvas.bounding_box()
            if not box or box["width"] < 300 or box["height"] < 150:
                continue
            canvas.scroll_into_view_if_needed()
            page.wait_for_timeout(150)
            png = canvas.screenshot()
            if canvas_is_drawn(png):
                drawn_pictures.add(hash(png))
        drawn = len(drawn_pictures)
        if drawn < min_maps:
            problems.append(f"{drawn} drawn map canvas(es), expected at least {min_maps} (blank maps?)")
        return problems, drawn
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def run_notebook():
    return execute_notebook
