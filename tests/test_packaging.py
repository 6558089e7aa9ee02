"""Packaging: the shipped scenarios are package data, and a wheel install works anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.config.loading import resolve_scenario_path, shipped_scenarios_dir

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_scenarios_are_exact_copies_of_the_package_data():
    pkg = {p.name: p.read_bytes() for p in (ROOT / "simulator" / "scenarios").glob("*.yaml")}
    top = {p.name: p.read_bytes() for p in (ROOT / "scenarios").glob("*.yaml")}
    assert pkg and pkg.keys() == top.keys(), "scenarios/ and simulator/scenarios/ list different files"
    for name in pkg:
        assert pkg[name] == top[name], f"scenarios/{name} differs from simulator/scenarios/{name}"


def test_shipped_scenarios_are_package_data():
    folder = shipped_scenarios_dir()
    assert folder == ROOT / "simulator" / "scenarios"
    assert resolve_scenario_path("quickstart") == folder / "quickstart.yaml"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"simulator" = ["scenarios/*.yaml"]' in pyproject


def _copy_source(dst: Path) -> None:
    keep = ["pyproject.toml", "README.md", "simulator", "personas"]
    for name in keep:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst / name)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    """Build a wheel, install it (not editable) into a fresh virtual environment and run
    ``econsim scenarios`` and a small rational run from an unrelated directory."""
    pytest.importorskip("wheel", reason="building a wheel needs the 'wheel' package (dev extra)")
    src = tmp_path / "src"
    src.mkdir()
    _copy_source(src)
    dist = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(src)], check=True, env=env, cwd=tmp_path, timeout=300)
    wheel = next(dist.glob("econsim-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # econsim's dependencies come from this interpreter's site-packages, appended after the
    # fresh environment's own (a .pth line adds the folder, not its editable finders)
    site = next((venv / "lib").glob("python3*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "zz_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, env=env, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(py), "-c", "import simulator; print(simulator.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where  # the installed wheel, not the checkout
    econsim = [str(py), "-m", "simulator.cli.main"]
    out = subprocess.run([*econsim, "scenarios"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert {"quickstart", "rational", "rational_baselines", "bounded", "democratic"} <= names
    run = subprocess.run([*econsim, "run", "rational_baselines", "--set", "population.size=30",
                          "--set", "run.tax_years=1", "--set", "compare=[]", "--out", "r", "--no-progress"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "r" / "years.parquet").is_file() and "results: r" in run.stdout
    # the installed package's data: households (personas) and current-law parameters
    check = subprocess.run(
        [str(py), "-c", "import pandas as pd; y = pd.read_parquet('r/years.parquet'); "
         "print(y['world'].iloc[0], int(y['eitc_recipients'].iloc[0] >= 0))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert check.stdout.split() == ["us_current_law", "1"], check.stderr
    tax = subprocess.run([*econsim, "tax", "20000", "--year", "2024", "--filing-status",
                          "head_of_household", "--children", "2", "--json"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert tax.returncode == 0, tax.stderr
    assert json.loads(tax.stdout)["eitc"] == 6960.0
