"""SIGKILL in the middle of a tax year of a real ``econsim run`` on the embedded model,
then ``resume``: the same outputs as an uninterrupted run (replies held by the cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest_llm import needs_llama
from test_checkpoint import ROOT, _start_cli, _wait_for, assert_same_run

from simulator.config.loading import scenario_from_dict
from simulator.results import load_run
from simulator.run.resume import resume_run
from simulator.run.runner import run_scenario
from simulator.run.state import digest_path, finished_years

pytestmark = [needs_llama, pytest.mark.embedded, pytest.mark.slow, pytest.mark.timeout(900)]


def data(cache, years: int) -> dict:
    return {
        "name": "ckpt-embedded",
        "population": {"size": 2, "source": "census"},
        "workers": {"policy": "llm", "llm": {"temperature": 0.0, "history": 1}},
        "planner": {"kind": "llm", "llm": {"action": "delta", "max_step": 0.05}},
        "run": {"tax_years": years, "seed": 5},
        "llm": {"backend": "embedded", "cache": "readwrite", "cache_path": str(cache),
                "embedded_processes": 1, "embedded_quantize": False},
    }


def test_sigkill_mid_year_on_the_embedded_model_then_resume(tmp_path):
    cache = tmp_path / "cache.sqlite"
    quiet = open(os.devnull, "w")
    # the cache holds the replies of year 0; year 1 needs the model, so it lasts long
    # enough to be killed in
    run_scenario(scenario_from_dict(data(cache, 1), "test"), tmp_path / "warm", progress=False, stream=quiet)
    out = tmp_path / "run"
    proc = _start_cli(tmp_path, data(cache, 2), out)
    # the checkpoint is whole once its digest record is written (after the data)
    _wait_for(digest_path(out, 0), proc, timeout=600)
    proc.kill()
    proc.communicate(timeout=60)
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert finished_years(out) == [0]
    res = resume_run(out, progress=False, stream=quiet)
    assert res.status == "completed" and res.years["year"].tolist() == [0, 1]
    # the uninterrupted run, all of whose replies the cache now holds
    ref = run_scenario(scenario_from_dict(data(cache, 2), "test"), tmp_path / "ref", progress=False, stream=quiet)
    assert ref.years["llm_cache_hits"].tolist() == ref.years["llm_requests"].tolist()
    assert_same_run(out, tmp_path / "ref", drop=("latency", "wall", "cache_hits"))
    # the CLI resume of a finished run refuses with one line
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    again = subprocess.run([sys.executable, "-m", "simulator.cli.main", "resume", str(out)],
                           env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert load_run(out).status == "completed"
