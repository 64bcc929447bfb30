"""Every teaching notebook runs top to bottom on the bundled sample through a real Jupyter kernel."""

from __future__ import annotations

import pytest

from tests.notebooks.conftest import NOTEBOOKS

NAMES = ["01_quickstart", "02_train_on_ray", "03_event_statistics", "04_compare_runs",
         "05_performance_and_scaling"]


def test_every_notebook_in_the_folder_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.notebook
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, run_notebook, tmp_path):
    nb = run_notebook(NOTEBOOKS / f"{name}.ipynb", tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code teaches nothing here"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # teaching material: prose before code, and at least one picture
    assert nb.cells[0].cell_type == "markdown"
    pictures = [o for c in code for o in c.get("outputs", [])
                if o.get("output_type") in ("display_data", "execute_result")
                and any(k.startswith("image/") or k in ("text/html", "application/vnd.holoviews_load.v0+json")
                        for k in o.get("data", {}))]
    assert pictures, f"{name} shows no picture"
