"""Checkpoint, resume and fork: a crashed, killed or stopped run continues exactly, and a
fork without changes continues exactly like its parent."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.cli.main import main
from simulator.config.loading import scenario_from_dict
from simulator.errors import UserError
from simulator.report.markdown import write_report
from simulator.results import load_run
from simulator.run.resume import fork_run, resume_run
from simulator.run.runner import run_scenario
from simulator.run.state import checkpoint_path, digest_path, finished_years, load_checkpoint
from simulator.sim.model import EconomyModel

ROOT = Path(__file__).resolve().parents[1]

#: LLM workers (bounded: satisfaction), an LLM planner and elections whose winners plan.
LLM_DEMOCRACY = {
    "name": "ckpt",
    "population": {"size": 40, "source": "census"},
    "workers": {"policy": "llm", "llm": {"bounded": True, "history": 2}},
    "planner": {"kind": "llm"},
    "democracy": {"enabled": True, "election_every": 2, "winner_mode": "planner"},
    "run": {"tax_years": 5, "seed": 3, "steps_per_year": 2},
    "llm": {"backend": "scripted", "cache": "off"},
}

TIMING = ("latency", "wall")


def _frames(run_dir: Path) -> dict[str, pd.DataFrame]:
    res = load_run(run_dir)
    out = {"years": res.years, "agents": res.agents, "population": res.population, **res.tables}
    return {k: v for k, v in out.items() if v is not None}


def _comparable(v):
    return v.tolist() if isinstance(v, np.ndarray) else v


def assert_same_run(a: Path, b: Path, drop: tuple[str, ...] = TIMING) -> None:
    """Every table of the two runs equal, cell by cell, except timing columns."""
    fa, fb = _frames(a), _frames(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        x, y = fa[name], fb[name]
        cols = [c for c in x.columns if not any(d in c for d in drop)]
        assert cols == [c for c in y.columns if not any(d in c for d in drop)], name
        assert len(x) == len(y), name
        x, y = x[cols].map(_comparable), y[cols].map(_comparable)
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=name)


def scenario(**changes):
    data = json.loads(json.dumps(LLM_DEMOCRACY))
    for k, v in changes.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return scenario_from_dict(data, "test")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "ref"
    run_scenario(scenario(), out, progress=False, stream=open(os.devnull, "w"))
    return out


# --------------------------------------------------------------------------- in-process
def _crash_in_year(monkeypatch, year: int, step: int) -> None:
    real = EconomyModel.step

    def step_then_crash(self):
        if self.year == year and self.step_in_year == step:
            raise RuntimeError("simulated crash")
        real(self)

    monkeypatch.setattr(EconomyModel, "step", step_then_crash)


def test_checkpoint_every_year_and_its_contents(reference):
    assert finished_years(reference) == [0, 1, 2, 3, 4]
    ck = load_checkpoint(checkpoint_path(reference, 2))
    years = load_run(reference).years
    st = ck["model"]
    assert ck["year"] == 2 and st["year"] == 3 and st["step_in_year"] == 0
    assert [r["objective"] for r in st["history"]] == years["objective"].iloc[:3].tolist()
    assert len(st["agent_years"]) == 3
    # planner memory, election state, worker histories and telemetry are all in it
    dem = st["planner"]["state"]
    assert [e["year"] for e in dem["elections"]] == [2]
    assert dem["sitting"]["own"] == dem["elections"][0]["winner"]
    assert len(dem["sitting"]["state"]["tried"]) == 2  # years 1 and 2 judged by its own utility
    assert len(st["policy"]["state"]["adjusted_history"]) == 3
    assert st["telemetry"]["state"]["records"]
    assert len(st["model_vars"]["objective"]) == 3 * 2


@pytest.mark.parametrize("year,step", [(2, 1), (3, 0)])
def test_resume_after_a_crash_equals_the_uninterrupted_run(tmp_path, monkeypatch, reference, year, step):
    out = tmp_path / "run"
    _crash_in_year(monkeypatch, year, step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_scenario(scenario(), out, progress=False, stream=open(os.devnull, "w"))
    monkeypatch.undo()
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "failed" and finished_years(out) == list(range(year))
    res = resume_run(out, progress=False, stream=open(os.devnull, "w"))
    assert res.status == "completed"
    assert res.manifest["resumed"][0]["after_year"] == year - 1
    assert_same_run(out, reference)


def test_resume_a_run_killed_before_its_manifest_listed_any_file(tmp_path, monkeypatch, reference):
    """The state SIGKILL leaves right after the first checkpoint: status running, a dead
    process, no file listed yet; a live process is not resumed behind its back."""
    out = tmp_path / "run"
    _crash_in_year(monkeypatch, 1, 1)
    with pytest.raises(RuntimeError):
        run_scenario(scenario(), out, progress=False, stream=open(os.devnull, "w"))
    monkeypatch.undo()
    man = json.loads((out / "manifest.json").read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        man.update(status="running", files=[], pid=live.pid)
        (out / "manifest.json").write_text(json.dumps(man))
        with pytest.raises(UserError, match=f"still going \\(process {live.pid}\\)"):
            resume_run(out, progress=False)
    finally:
        live.kill()
        live.wait()
    man.update(pid=int(dead))
    (out / "manifest.json").write_text(json.dumps(man))
    resume_run(out, progress=False, stream=open(os.devnull, "w"))
    assert_same_run(out, reference)


@pytest.mark.parametrize("planner", [
    {"kind": "saez", "elasticity": "measured", "saez_remeasure_every": 2},
    {"kind": "optimum", "optimum_max_agents": 30, "optimum_max_evaluations": 300},
    {"kind": "grid", "schedules": [[0.1] * 7, [0.2] * 7, [0.3] * 7]},
])
def test_resume_rational_planners(tmp_path, monkeypatch, planner):
    sc = scenario_from_dict({"population": {"size": 60, "source": "census"},
                             "workers": {"policy": "rational", "expectations": "adaptive"},
                             "planner": planner, "run": {"tax_years": 4, "seed": 5}}, "test")
    run_scenario(sc, tmp_path / "ref", progress=False, stream=open(os.devnull, "w"))
    _crash_in_year(monkeypatch, 2, 0)
    with pytest.raises(RuntimeError):
        run_scenario(sc, tmp_path / "run", progress=False, stream=open(os.devnull, "w"))
    monkeypatch.undo()
    resume_run(tmp_path / "run", progress=False, stream=open(os.devnull, "w"))
    assert_same_run(tmp_path / "run", tmp_path / "ref")


# --------------------------------------------------------------------------- fork
def test_fork_without_changes_continues_like_its_parent(tmp_path, reference):
    res = fork_run(reference, 1, [], tmp_path / "fork", progress=False, stream=open(os.devnull, "w"))
    assert res.manifest["parent"] == {"run_dir": str(reference.resolve()), "fork_year": 1, "set": []}
    assert finished_years(tmp_path / "fork") == [1, 2, 3, 4]
    assert_same_run(tmp_path / "fork", reference)


def test_fork_with_another_planner_and_report(tmp_path, reference):
    out = tmp_path / "flat"
    res = fork_run(reference, 2, ["democracy.enabled=false", "planner.kind=flat", "planner.rate=0.3",
                                  "run.tax_years=6"], out, progress=False, stream=open(os.devnull, "w"))
    parent = load_run(reference)
    y = res.years
    assert y["year"].tolist() == [0, 1, 2, 3, 4, 5]
    rates = [f"rate_{i}" for i in range(7)]
    # the shared history is the parent's, to the last bit
    shared = [c for c in parent.years.columns if "latency" not in c]
    pd.testing.assert_frame_equal(y[shared].iloc[:3], parent.years[shared].iloc[:3], check_exact=True)
    assert np.all(y[rates].iloc[3:].to_numpy() == 0.3)
    assert (y["planner"].iloc[3:] == "flat").all()
    assert res.agents["year"].max() == 5
    # a different planner class starts afresh, and says so
    assert any("planner starts afresh" in n for n in res.manifest["notes"])
    page = write_report(out).read_text()
    assert f"## Fork of {reference.resolve()} after tax year 2" in page
    k3 = y.set_index("year").loc[3]
    p3 = parent.years.set_index("year").loc[3]
    fork_part = page[page.index("## Fork of"):]
    row3 = next(ln for ln in fork_part.splitlines() if ln.startswith("| 3 |"))
    parent_obj, fork_obj, change = (float(c.replace(",", "")) for c in row3.split("|")[2:5])
    assert parent_obj == pytest.approx(p3["objective"], rel=1e-3)
    assert fork_obj == pytest.approx(k3["objective"], rel=1e-3)
    assert change == pytest.approx(k3["objective"] - p3["objective"], rel=1e-2, abs=1e-3)
    # the fork itself resumes from its own checkpoints
    assert finished_years(out) == [2, 3, 4, 5]


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def failed_without_checkpoint(tmp_path, monkeypatch):
    _crash_in_year(monkeypatch, 0, 1)
    with pytest.raises(RuntimeError):
        run_scenario(scenario(), tmp_path / "early", progress=False, stream=open(os.devnull, "w"))
    monkeypatch.undo()
    return tmp_path / "early"


def _cli_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("econsim: error: "), err
    return err[0]


def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, reference, failed_without_checkpoint):
    new = tmp_path / "new"
    cases = [
        (["resume", str(failed_without_checkpoint)], "no checkpoint"),
        (["fork", str(failed_without_checkpoint), "--at-year", "0", "--out", str(new)], "no checkpoint"),
        (["resume", str(tmp_path / "nowhere")], "no such run directory"),
        (["resume", str(reference)], "is completed; nothing to resume"),
        (["fork", str(reference), "--at-year", "5", "--out", str(new)], "checkpoints for tax years 0..4"),
        (["fork", str(reference), "--at-year", "-1", "--out", str(new)], "checkpoints for tax years 0..4"),
        (["fork", str(reference), "--at-year", "1", "--set", "population.size=8", "--out", str(new)],
         "--set population.size=8: a fork shares its parent's history up to tax year 1, so it cannot change the population"),
        (["fork", str(reference), "--at-year", "1", "--set", "run.seed=9", "--out", str(new)],
         "cannot change the seed"),
        (["fork", str(reference), "--at-year", "1", "--set", "tax.us_federal.year=2023", "--out", str(new)],
         "cannot change the tax brackets"),
        (["fork", str(reference), "--at-year", "4", "--out", str(new)], "no tax year to run"),
        (["fork", str(reference), "--at-year", "1", "--set", "planner.kind=nonsense", "--out", str(new)],
         "--set planner.kind=nonsense"),
        (["fork", str(reference), "--at-year", "1", "--out", str(reference)], "is the parent run itself"),
        (["fork", str(reference), "--at-year", "1", "--out", str(failed_without_checkpoint)],
         "already holds a run"),
    ]
    for argv, expected in cases:
        line = _cli_error(capsys, argv)
        assert expected in line, (argv, line)
        assert not new.exists(), argv


def test_checkpoint_of_another_version_or_scenario_is_refused(tmp_path, capsys, reference, monkeypatch):
    # a run stopped after year 1 (status failed) whose checkpoint is swapped
    out = tmp_path / "run"
    _crash_in_year(monkeypatch, 2, 0)
    with pytest.raises(RuntimeError):
        run_scenario(scenario(), out, progress=False, stream=open(os.devnull, "w"))
    monkeypatch.undo()
    path, record = checkpoint_path(out, 1), digest_path(out, 1)
    good, good_record = path.read_bytes(), record.read_bytes()

    def replace(data: bytes) -> None:  # a checkpoint file with a digest record that matches it
        path.write_bytes(data)
        rec = json.loads(good_record)
        rec.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        record.write_text(json.dumps(rec))

    ck = pickle.loads(good)
    ck["econsim_version"] = "0.0.1"
    replace(pickle.dumps(ck))
    line = _cli_error(capsys, ["resume", str(out)])
    assert "written by econsim 0.0.1, this is econsim" in line
    other = scenario(run={"seed": 4})
    run_scenario(other, tmp_path / "other", progress=False, stream=open(os.devnull, "w"))
    path.write_bytes(checkpoint_path(tmp_path / "other", 1).read_bytes())
    record.write_bytes(digest_path(tmp_path / "other", 1).read_bytes())
    line = _cli_error(capsys, ["resume", str(out)])
    assert "belongs to another scenario" in line and "run.seed" in line
    replace(b"not a pickle")
    assert "not a readable econsim checkpoint" in _cli_error(capsys, ["resume", str(out)])
    # the real checkpoint back: the run continues and matches the uninterrupted one
    path.write_bytes(good)
    record.write_bytes(good_record)
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert_same_run(out, reference)


# --------------------------------------------------------------------------- real processes
def _start_cli(tmp_path: Path, data: dict, out: Path) -> subprocess.Popen:
    scen = tmp_path / "scenario.yaml"
    scen.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.cli.main", "run", str(scen), "--out", str(out), "--no-progress"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "no checkpoint in time"
        time.sleep(0.005)


#: bigger than the in-process scenario so that a year lasts long enough to be hit
SLOW_YEARS = {**LLM_DEMOCRACY, "population": {"size": 300, "source": "census"},
              "run": {"tax_years": 6, "seed": 8, "steps_per_year": 2}}


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("slowref") / "ref"
    run_scenario(scenario_from_dict(SLOW_YEARS, "test"), out, progress=False, stream=open(os.devnull, "w"))
    return out


@pytest.mark.slow
def test_sigkill_mid_year_then_resume_equals_uninterrupted(tmp_path, slow_reference):
    out = tmp_path / "run"
    proc = _start_cli(tmp_path, SLOW_YEARS, out)
    _wait_for(digest_path(out, 1), proc)
    proc.kill()
    proc.communicate(timeout=60)
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "running"  # nothing ran after SIGKILL
    assert finished_years(out)[-1] < 5
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "simulator.cli.main", "resume", str(out), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    assert load_run(out).status == "completed"
    assert_same_run(out, slow_reference)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_cleanly_and_resume(tmp_path, slow_reference, sig):
    out = tmp_path / "run"
    proc = _start_cli(tmp_path, SLOW_YEARS, out)
    _wait_for(digest_path(out, 1), proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "interrupted"
    kept = finished_years(out)
    assert man["years_completed"] == kept[-1] + 1 < 6
    assert f"continue with: econsim resume {out}" in err and f"econsim resume {out}" in man["reason"]
    # only whole tax years are on disk, consistent across tables
    part = load_run(out)
    n = kept[-1] + 1
    assert part.years["year"].tolist() == list(range(n))
    assert sorted(part.agents["year"].unique()) == list(range(n))
    assert part.tables["steps"]["year"].max() == n - 1
    assert part.tables["llm"]["period"].astype(int).max() == n - 1
    res = resume_run(out, progress=False, stream=open(os.devnull, "w"))
    assert res.status == "completed"
    assert_same_run(out, slow_reference)
