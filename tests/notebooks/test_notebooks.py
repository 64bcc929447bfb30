"""Every teaching notebook runs top to bottom on the bundled sample through a real Jupyter kernel,
and reads cleanly: no error output, no warning from climviz or its plotting stack, and exported
to HTML it draws its maps offline in a real browser without a JavaScript error."""

from __future__ import annotations

import pytest

from tests.notebooks.conftest import NOTEBOOKS, output_problems, render_problems, stderr_problem

NAMES = ["01_quickstart", "02_train_on_ray", "03_event_statistics", "04_compare_runs",
         "05_performance_and_scaling", "06_real_data"]


def test_every_notebook_in_the_folder_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.notebook
@pytest.mark.browser
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, run_notebook, tmp_path, browser):
    import climviz.viz as viz

    nb = run_notebook(NOTEBOOKS / f"{name}.ipynb", tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code teaches nothing here"
    assert output_problems(nb) == []
    # teaching material: prose before code, and at least one picture
    assert nb.cells[0].cell_type == "markdown"
    pictures = [o for c in code for o in c.get("outputs", [])
                if o.get("output_type") in ("display_data", "execute_result")
                and any(k.startswith("image/") or k in ("text/html", "application/vnd.holoviews_load.v0+json")
                        for k in o.get("data", {}))]
    assert pictures, f"{name} shows no picture"
    # What a reader opens: the notebook as one HTML file, offline, in a real browser.
    # Displayed plots and apps (the extension's own root output has no text/plain repr).
    maps = sum(1 for c in code for o in c.get("outputs", []) if {"application/vnd.holoviews_exec.v0+json",
                                                                "text/plain"} <= set(o.get("data", {})))
    html = viz.notebook_html(nb, tmp_path / f"{name}.html")
    if maps:
        problems, drawn = render_problems(html, browser, min_maps=maps)
        assert problems == []


def test_output_checks_catch_what_a_reader_would_meet():
    """The checks above can fail: they flag the warnings of issue 22 and leave ordinary output alone."""
    import nbformat

    bad = [
        "WARNING:param.main: DataTabulator was not imported on instantiation and may not render in a notebook.",
        "WARNING:bokeh.core.validation.check:W-1005 (FIXED_SIZING_MODE): 'fixed' sizing mode requires width",
        "/x/site-packages/pyproj/network.py:59: UserWarning: pyproj unable to set PROJ database path.",
        "/work/main/climviz/labels/tc.py:584: UserWarning: TC detection: the run spans 9 h",
    ]
    ok = ["100%|██████████| 24/24 [00:03<00:00,  7.1it/s]", "[climviz] epoch 1/2  train loss 0.5",
          "2026-01-01 INFO worker.py:1 -- Started a local Ray instance."]
    assert all(stderr_problem(b) for b in bad) and not any(stderr_problem(o) for o in ok)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x")]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stderr", text="\n".join(bad[:1] + ok)),
                           nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    assert output_problems(nb) == [f"cell 0 stderr: {bad[0]}", "cell 0: ValueError: boom"]


@pytest.mark.parametrize("name", ["01_quickstart", "03_event_statistics"])
def test_teaching_notebooks_use_the_accessor_and_named_classes(name):
    """Issue 20: the notebooks show the idiomatic entry point, not hand-written equivalents."""
    import re

    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert ".climviz." in code
    assert "from climviz.data import" in code
    assert 'rename({"LABELS"' not in code  # the accessor and the explorer read LABELS themselves
    # no class given as a bare 1 or 2 (a comparison with, or a class argument of, a literal number)
    assert not re.search(r"==\s*[12]\b|frequency(_map)?\([^)]*,\s*[12]\)", code)
