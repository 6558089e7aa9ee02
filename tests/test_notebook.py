"""The tour notebook's code cells run top to bottom (no Jupyter needed)."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def test_tour_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "tour.ipynb").read_text())
    env: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "tour.ipynb", "exec"), env)  # noqa: S102
    assert len(env["run"].years) == 4
    assert env["hours"].shape == env["wages"].shape
