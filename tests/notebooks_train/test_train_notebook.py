"""A notebook cell that calls ``climviz.train`` runs in a real Jupyter kernel.

The kernel (started by nbclient) joins the session's local Ray through ``RAY_ADDRESS``
(what ``address=None`` does when the variable is set), trains with 2 workers, then
trains again in the same kernel (resume). Widget state is stored, so the test reads
what the progress panel showed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.notebook]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _widget_htmls(nb) -> list[str]:
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [m["state"].get("value", "") for m in state.get("state", {}).values()
            if m.get("model_name") == "HTMLModel"]


def test_train_cell_in_a_jupyter_kernel(ray_local, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    path = tmp_path / "train_in_a_notebook.ipynb"
    shutil.copy(HERE / path.name, path)
    monkeypatch.setenv("RAY_ADDRESS", ray_local.address)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}},
                                     store_widget_state=True)
    client.execute()

    train_cell = nb.cells[2]
    kinds = [o.get("output_type") for o in train_cell.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in train_cell.outputs), kinds
    # worker logs stay out of the notebook: no "(RayTrainWorker pid=...)" lines, little text
    text = "".join(o.get("text", "") for c in nb.cells[2:4] for o in c.outputs
                   if o.get("output_type") == "stream")
    assert "RayTrainWorker" not in text and "pid=" not in text
    assert len(text.splitlines()) <= 10, text

    printed = json.loads(nb.cells[4].outputs[-1]["text"])
    assert printed["epochs"] == [1, 2, 3]
    ckpt = Path(printed["checkpoint"])
    assert ckpt == tmp_path / "climviz_runs" / "notebook-run" / "epoch_0003" / "checkpoint.pt"
    assert ckpt.is_file()

    # the first panel's table shows both epochs with the run's mIoU values
    tables = [h for h in _widget_htmls(nb) if "climviz-progress" in h]
    assert len(tables) == 2                                    # one panel per train() call
    first = next(t for t in tables if t.count("<tr>") == 3)   # header + epochs 1, 2
    for v in printed["miou"]:
        assert f"{v:.3f}" in first
    assert any("finished" in h for h in _widget_htmls(nb))
