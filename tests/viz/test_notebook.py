"""In a real Jupyter kernel, maps and the explorer display inline without any set-up call."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.notebook


def test_map_and_explorer_display_in_a_kernel(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import climviz.viz as viz\nfrom tests.viz.conftest import make_run\n"
                                  "run = make_run()"),
        nbformat.v4.new_code_cell("viz.map(run, mask='LABELS')"),
        nbformat.v4.new_code_cell("viz.explore(run)"),
    ]
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    for cell in nb.cells[1:]:
        mimes = {m for out in cell.outputs if out.output_type in ("display_data", "execute_result")
                 for m in out.get("data", {})}
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, errors
        # A live Bokeh/Panel view, not a text repr of the object.
        assert "application/vnd.holoviews_exec.v0+json" in mimes, mimes
    # No "DataTabulator was not imported ... pn.extension('tabulator')" or other stack warning.
    from tests.notebooks.conftest import output_problems

    assert output_problems(nb) == []
