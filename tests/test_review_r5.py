"""Review r5 (issues 10 and 16): defects found while checking pooling and the vLLM path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_checkpoint import ROOT, _start_cli, _wait_for, assert_same_run

from simulator.config.loading import load_scenario, scenario_from_dict
from simulator.llm.factory import build_llm
from simulator.results import load_run
from simulator.run.runner import run_scenario
from simulator.run.state import digest_path, finished_years
from simulator.sim.model import EconomyModel

BASE = ["llm.backend=scripted", "llm.cache=off", "population.size=300", "planner.kind=us_federal",
        "run.tax_years=3", "workers.llm.pooling.budget=40"]


def _pooled(extra):
    sc = load_scenario("scenarios/quickstart.yaml", BASE + extra)
    m = EconomyModel(sc, llm=build_llm(sc.llm), agent_objects=False)
    m.run()
    return m


def test_pooling_check_is_a_measurement_that_does_not_change_the_run():
    """pooling.check asks N extra workers directly; drawing them must not move the run's
    own random stream (representatives of later years, planner seeds)."""
    with_check = _pooled(["workers.llm.pooling.check=30"])
    without = _pooled(["workers.llm.pooling.check=0"])
    assert with_check.history[1]["pool_check_n"] == 30
    for y in range(3):
        assert np.array_equal(with_check.agent_years[y]["hours"], without.agent_years[y]["hours"]), y


# --------------------------------------------------------------------------- checkpoint
POOLED = {
    "name": "pooled-ckpt",
    "population": {"size": 3000, "source": "census"},
    "workers": {"policy": "llm", "llm": {"bounded": True, "history": 2,
                                         "pooling": {"budget": 60, "check": 25}}},
    "planner": {"kind": "llm"},
    "democracy": {"enabled": True, "election_every": 2, "winner_mode": "planner"},
    "run": {"tax_years": 6, "seed": 5, "steps_per_year": 2},
    "llm": {"backend": "scripted", "cache": "off"},
}


@pytest.mark.slow
def test_pooled_run_sigkilled_then_resumed_equals_uninterrupted(tmp_path):
    """A pooled run (hours, satisfaction and ballots asked of representatives, check on)
    SIGKILLed after its first checkpoint and resumed equals the uninterrupted run in
    every table but timing columns: the pooling state (Neyman spreads, ask counter) is
    part of the checkpoint."""
    ref = tmp_path / "ref"
    run_scenario(scenario_from_dict(POOLED, "test"), ref, progress=False, stream=open(os.devnull, "w"))
    years = load_run(ref).years
    assert years["pool_check_n"].gt(0).all() and years["pool_calls"].gt(years["pool_representatives"]).all()
    assert load_run(ref).tables["llm"]["tag"].isin(["voter"]).any()
    out = tmp_path / "run"
    proc = _start_cli(tmp_path, POOLED, out)
    _wait_for(digest_path(out, 1), proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    assert finished_years(out)[-1] < 5
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "simulator.cli.main", "resume", str(out), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert load_run(out).status == "completed"
    assert_same_run(out, ref)


# --------------------------------------------------------------------------- benchmarks
def _bench(name):
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(ROOT) / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name,argv", [
    ("llm_step", ["--prompts", "0"]),
    ("llm_step", ["--pooled-n", "-5"]),
    ("llm_step", ["--pooled-budget", "0"]),
    ("scale", ["--sizes", "0", "--no-embedded"]),
    ("scale", ["--years", "0", "--no-embedded"]),
    ("scale", ["--budget", "0", "--no-embedded"]),
    ("scale", ["--embedded-budget", "0"]),
    ("vllm_gpu", ["--model", "m", "--params", "8", "--gpu", "h200", "--tensor-parallel-size", "0"]),
    ("vllm_gpu", ["--model", "m", "--params", "8", "--gpu", "h200", "--batch", "0"]),
])
def test_benchmark_argument_errors_exit_2_before_running(name, argv, capsys):
    mod = _bench(name)
    with pytest.raises(SystemExit) as e:
        mod.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr()
    assert "error:" in err.err and not err.out  # nothing measured, nothing printed as a result


def test_vllm_gpu_without_vllm_is_one_line_exit_2(capsys, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_vllm(name, *a, **k):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    mod = _bench("vllm_gpu")
    rc = mod.main(["--model", "/nonexistent", "--params", "8", "--gpu", "h200", "--workers", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "needs vLLM" in err[0], err


# --------------------------------------------------------------------------- vLLM through a run
from test_llm_vllm import FakeLLM, fake_vllm  # noqa: E402,F401  (fixture: a fake vllm package)


def _vllm_scenario(tmp_path, engine_args, pooling=None):
    import yaml
    llm_workers = {"history": 1, "temperature": 0.7}
    if pooling:
        llm_workers["pooling"] = pooling
    data = {"name": "vllm-e2e", "population": {"size": 40, "source": "census"},
            "workers": {"policy": "llm", "llm": llm_workers}, "planner": {"kind": "us_federal"},
            "run": {"tax_years": 3, "seed": 1},
            "llm": {"backend": "vllm", "model": "/models/x", "cache": "off",
                    "vllm": {"engine_args": engine_args}}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("pooling", [None, {"budget": 30, "check": 5}])
def test_a_run_whose_vllm_engine_dies_ends_failed_non_zero(fake_vllm, tmp_path, capsys, pooling):  # noqa: F811
    """Chunked prefill on + seeded sampling kills the (fake) engine in the first step: the run
    stops through the failure policy (status failed, exit 1) naming the engine's cause, and
    the dead engine is called once, not once per request or per retry."""
    from simulator.cli.main import main as cli_main

    out = tmp_path / "run"
    rc = cli_main(["run", str(_vllm_scenario(tmp_path, {"enable_chunked_prefill": True}, pooling)),
                   "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1, err
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "failed"
    assert "CPU Generator does not use offset" in man["reason"], man["reason"]
    assert "CPU Generator does not use offset" in err
    assert len(FakeLLM.instances) == 1 and len(FakeLLM.instances[0].calls) == 1
    assert FakeLLM.instances[0].shut  # the runner shut the dead engine down


def test_a_run_on_vllm_with_the_cpu_default_completes(fake_vllm, tmp_path, capsys):  # noqa: F811
    from simulator.cli.main import main as cli_main

    out = tmp_path / "run"
    rc = cli_main(["run", str(_vllm_scenario(tmp_path, {})), "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert load_run(out).status == "completed"


def test_unknown_vllm_engine_arg_in_a_run_is_one_line_exit_2_before_loading(fake_vllm, tmp_path, capsys):  # noqa: F811
    from simulator.cli.main import main as cli_main

    out = tmp_path / "run"
    rc = cli_main(["run", str(_vllm_scenario(tmp_path, {"enable_chunked_prefil": False})),
                   "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "enable_chunked_prefil" in err[0], err
    assert FakeLLM.instances == []  # refused before any engine was built
    assert not out.exists()  # a user error before the first tax year leaves no half-made run


@pytest.mark.parametrize("budget", ["0", "12"])
def test_vllm_gpu_benchmark_runs_end_to_end_on_the_fake_engine(fake_vllm, capsys, budget):  # noqa: F811
    """The script's plumbing without a GPU: one step through econsim's vLLM backend (the
    fake engine), its printed figures consistent with the calls it made."""
    mod = _bench("vllm_gpu")
    rc = mod.main(["--model", "/models/x", "--params", "8", "--gpu", "h100", "--workers", "40",
                   "--budget", budget])
    out = capsys.readouterr().out
    assert rc == 0, out
    calls = sum(len(p) for p, _ in FakeLLM.instances[0].calls)
    assert f"workers 40, calls {calls}," in out
    assert calls == 40 if budget == "0" else calls <= 12
    assert "decode limit" in out and "prefix-cache hit rate n/a" in out


def test_validate_counts_the_first_attributes_values_in_a_population_file(tmp_path, capsys):
    """A budget below the occupied values of a file column that comes first is refused by
    validate (one line, exit 2), not only once the run has started."""
    import pandas as pd

    from simulator.cli.main import main as cli_main

    pd.DataFrame({"wage": np.linspace(300, 3000, 30), "region": list("abc") * 10}).to_csv(
        tmp_path / "p.csv", index=False)
    path = tmp_path / "s.yaml"
    path.write_text("population: {source: file, path: p.csv}\n"
                    "workers: {policy: llm, llm: {pooling: {budget: 2, attributes: [region, wage_band]}}}\n")
    rc = cli_main(["validate", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "budget: 2 is below the 3" in err[0] and "'region'" in err[0], err
    path.write_text(path.read_text().replace("budget: 2", "budget: 3"))
    assert cli_main(["validate", str(path)]) == 0


def test_benchmarks_exit_non_zero_when_nothing_was_measured(monkeypatch, capsys):
    scale = _bench("scale")
    monkeypatch.setattr(scale, "run_child", lambda cfg: {**cfg, "error": "MemoryError"})
    assert scale.main(["--sizes", "1000", "--no-embedded"]) == 1
    assert "error: MemoryError" in capsys.readouterr().out
    step = _bench("llm_step")

    def broken(*a, **k):
        raise RuntimeError("no model")

    monkeypatch.setattr(step, "measure", broken)
    assert step.main(["--backends", "embedded"]) == 1
    assert "embedded: skipped (RuntimeError: no model)" in capsys.readouterr().out
