"""Every notebook runs top to bottom in a real Jupyter kernel; outputs are stripped in git."""

import json
import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_three_notebooks_with_outputs_stripped():
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name
        # plots inline: no notebook forces a non-interactive backend
        assert "matplotlib.use(" not in path.read_text(), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_in_a_kernel(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="install econsim[notebooks] to execute notebooks")
    nbclient = pytest.importorskip("nbclient", reason="install econsim[notebooks] to execute notebooks")
    pytest.importorskip("ipykernel", reason="install econsim[notebooks] to execute notebooks")
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "plots should appear inline"
    if "compare" in path.stem:
        assert (tmp_path / "runs" / "notebook-compare" / "report" / "report.html").stat().st_size > 10_000
