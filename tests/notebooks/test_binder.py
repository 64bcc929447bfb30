"""The Binder files alone build an environment that runs the quickstart notebook."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.notebooks.conftest import NOTEBOOKS, ROOT


def test_binder_files_are_complete():
    req = (ROOT / "binder" / "requirements.txt").read_text()
    assert "torch==2.13.0" in req and "whl/cpu" in req, "Binder must get CPU-only torch"
    assert "-e .[" in req and "viz" in req and "notebooks" in req
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)


@pytest.mark.notebook
def test_fresh_venv_from_binder_requirements_runs_quickstart(tmp_path):
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    # What repo2docker does: pip install -r binder/requirements.txt from the repository root. The one
    # line dropped is the PyTorch CPU index, which this offline machine cannot reach (every lookup
    # there would wait for a network time-out); torch==2.13.0 then comes from the local wheel store.
    req = tmp_path / "requirements.txt"
    req.write_text("".join(line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines(True)
                           if "download.pytorch.org" not in line))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(req)],
                   cwd=ROOT, env=env, check=True, timeout=1500)
    subprocess.run(["bash", "binder/postBuild"], cwd=ROOT, env={**env, "PATH": f"{venv}/bin:{env['PATH']}",
                                                               "HOME": str(tmp_path)}, check=True)
    script = textwrap.dedent(f"""
        import os, nbformat
        from nbclient import NotebookClient
        os.environ.update(CLIMVIZ_NB_QUICK="1", CLIMVIZ_ROOT={str(ROOT)!r}, MPLBACKEND="Agg")
        nb = nbformat.read({str(NOTEBOOKS / '01_quickstart.ipynb')!r}, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={{"metadata": {{"path": {str(tmp_path)!r}}}}}).execute()
        import climviz, sys
        assert climviz.__file__.startswith({str(ROOT)!r}), climviz.__file__
        print("binder ok", sys.executable)
    """)
    out = subprocess.run([str(py), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "binder ok" in out.stdout and str(venv) in out.stdout
