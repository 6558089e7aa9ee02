"""One writer per run directory (econsim issue 21, part 1): the run-directory lock, two
`econsim run` into one --out, refused output directories, resume of a locked run.

Real processes where the point is two processes; a gate file keeps the first run inside
its second tax year (holding the lock) for exactly as long as the test needs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from simulator.cli.main import main
from simulator.config.loading import scenario_from_dict
from simulator.errors import RunLocked, UserError
from simulator.results import load_run
from simulator.run.lock import LOCK_NAME, RunDirLock, is_locked, lock_run_dir
from simulator.run.resume import resume_run
from simulator.run.runner import run_scenario
from simulator.run.state import finished_years
from simulator.sim.model import EconomyModel

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

#: rational workers, small: a tax year takes milliseconds
FAST = {"name": "lock", "population": {"size": 60, "source": "census"},
        "workers": {"policy": "rational"}, "planner": {"kind": "saez"},
        "run": {"tax_years": 3, "seed": 1, "steps_per_year": 1}}

#: a run that waits for ``GATE`` before its tax year 1 (so it holds the lock meanwhile)
GATED = """
import os, sys, time
from pathlib import Path
from simulator.sim.model import EconomyModel
gate, real = Path(sys.argv[1]), EconomyModel.run_year
def run_year(self):
    if self.year == 1:
        end = time.monotonic() + 120
        while not gate.exists() and time.monotonic() < end:
            time.sleep(0.01)
    return real(self)
EconomyModel.run_year = run_year
from simulator.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

#: holds a run directory's lock until killed
HOLDER = """
import sys, time
from simulator.run.lock import lock_run_dir
lock = lock_run_dir(sys.argv[1])
print("locked", flush=True)
time.sleep(300)
"""


def _quiet():
    return open(os.devnull, "w")


def _wait(cond, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, (what, proc.communicate())
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def _error_line(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("econsim: error: "), err
    return err[0]


# --------------------------------------------------------------------------- the lock
def test_lock_is_exclusive_reentrant_per_thread_and_names_its_holder(tmp_path):
    run = tmp_path / "new" / "run"
    assert not is_locked(run) and RunDirLock.holder_pid(run) is None
    with lock_run_dir(run) as lock:  # creates the directory
        assert run.is_dir() and lock.held and is_locked(run)
        assert RunDirLock.holder_pid(run) == os.getpid()
        assert f"pid={os.getpid()}" in (run / LOCK_NAME).read_text()
        with lock_run_dir(run):  # the same thread again: re-entrant
            pass
        assert is_locked(run)  # still held by the outer one
        errors: list[BaseException] = []

        def other_thread():
            try:
                lock_run_dir(run)
            except RunLocked as exc:
                errors.append(exc)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert len(errors) == 1 and f"in use by process {os.getpid()}" in str(errors[0])
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", f"from simulator.run.lock import lock_run_dir\n"
                               f"lock_run_dir({str(run)!r})"], env=ENV, capture_output=True, text=True)
        assert done.returncode == 1 and time.perf_counter() - t0 < 30
        assert f"RunLocked: run directory {run} is in use by process {os.getpid()} (since " in done.stderr
    assert not is_locked(run) and RunDirLock.holder_pid(run) is None
    assert isinstance(RunLocked(run, 1, None), UserError)  # the CLI prints it as one line, exit 2


def test_a_killed_holder_leaves_a_free_lock(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert is_locked(run) and RunDirLock.holder_pid(run) == holder.pid
        with pytest.raises(RunLocked, match=f"in use by process {holder.pid} \\(since "):
            lock_run_dir(run)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / LOCK_NAME).exists() and not is_locked(run)  # the kernel dropped the flock
    t0 = time.perf_counter()
    with lock_run_dir(run):
        assert RunDirLock.holder_pid(run) == os.getpid()
    assert time.perf_counter() - t0 < 1.0


# --------------------------------------------------------------------------- two runs, one --out
def test_two_runs_into_one_out_the_second_fails_at_once_naming_the_first(tmp_path):
    scen = tmp_path / "fast.yaml"
    scen.write_text(yaml.safe_dump(FAST))
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = subprocess.Popen(
        [sys.executable, "-c", GATED, str(gate), "run", str(scen), "--seed", "1", "--out", str(out),
         "--no-progress"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: finished_years(out) == [0] and is_locked(out), first, "the first run's year 0")
        t0 = time.perf_counter()
        second = subprocess.run(
            [sys.executable, "-m", "simulator.cli.main", "run", str(scen), "--seed", "2", "--out", str(out),
             "--no-progress"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
        took = time.perf_counter() - t0
        assert second.returncode == 2, second.stderr
        err = second.stderr.strip().splitlines()
        assert err == [f"econsim: error: run directory {out} is in use by process {first.pid} "
                       f"(since {err[0].rsplit('(since ', 1)[1]}"], err
        assert took < 30, took  # at once: interpreter start, no waiting on the lock
        assert "results:" not in second.stdout
        assert json.loads((out / "manifest.json").read_text())["seed"] == 1  # untouched
    finally:
        gate.touch()
        _, ferr = first.communicate(timeout=120)
    assert first.returncode == 0, ferr
    res = load_run(out)
    assert res.status == "completed" and res.manifest["seed"] == 1
    assert res.years["year"].tolist() == [0, 1, 2] and finished_years(out) == [0, 1, 2]
    # consistent: exactly the tables of an uninterrupted seed-1 run, nothing of seed 2
    ref = tmp_path / "ref"
    run_scenario(scenario_from_dict(FAST, "test"), ref, progress=False, stream=_quiet())
    import pandas as pd

    pd.testing.assert_frame_equal(res.years.drop(columns=[c for c in res.years if "wall" in c]),
                                  load_run(ref).years.drop(columns=[c for c in res.years if "wall" in c]))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    assert not is_locked(out)


# --------------------------------------------------------------------------- refused --out
def test_out_refuses_the_current_directory_and_a_directory_that_is_not_a_run(tmp_path, capsys, monkeypatch):
    scen = tmp_path / "fast.yaml"
    scen.write_text(yaml.safe_dump(FAST))
    here = tmp_path / "work"
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    mixed = tmp_path / "photos"
    mixed.mkdir()
    (mixed / "cat.jpg").write_bytes(b"\xff\xd8")
    monkeypatch.chdir(here)
    experiment = tmp_path / "seeds.yaml"
    experiment.write_text(yaml.safe_dump({**FAST, "run": {**FAST["run"], "seeds": 2}}))
    t0 = time.perf_counter()
    cases = [
        (["run", str(scen), "--out", ""], "--out '': empty; a run needs a directory of its own"),
        (["run", str(scen), "--out", "."], "--out .: is the current directory"),
        (["run", str(scen), "--out", str(here)], f"--out {here}: is the current directory"),
        (["run", str(scen), "--out", "../work"], "--out ../work: is the current directory"),
        (["run", str(scen), "--out", str(mixed)],
         f"--out {mixed}: not empty and not an econsim run (no manifest.json; holds cat.jpg)"),
        (["run", str(experiment), "--out", "."], "--out .: is the current directory"),
        (["run", str(experiment), "--out", ""], "--out '': empty"),
    ]
    for argv, expected in cases:
        line = _error_line(capsys, argv)
        assert expected in line, (argv, line)
    assert time.perf_counter() - t0 < 60
    assert sorted(p.name for p in here.iterdir()) == ["notes.txt"]  # nothing written, no .lock
    assert sorted(p.name for p in mixed.iterdir()) == ["cat.jpg"]
    # the API refuses the same, and an empty existing directory is fine
    with pytest.raises(UserError, match="not empty and not an econsim run"):
        run_scenario(scenario_from_dict(FAST, "test"), mixed, progress=False, stream=_quiet())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", str(scen), "--out", str(empty), "--no-progress"]) == 0
    assert load_run(empty).status == "completed" and not is_locked(empty)
    # fork: the same checks for its --out
    for out, expected in [(".", "--out .: is the current directory"), ("", "--out '': empty"),
                          (str(mixed), "not empty and not an econsim run")]:
        line = _error_line(capsys, ["fork", str(empty), "--at-year", "0", "--out", out])
        assert expected in line, (out, line)
    assert sorted(p.name for p in here.iterdir()) == ["notes.txt"]


def test_a_user_error_before_the_first_year_leaves_no_directory_and_no_lock(tmp_path):
    out = tmp_path / "bad"
    bad = scenario_from_dict({**FAST, "population": {"source": "file", "path": str(tmp_path / "none.csv")}},
                             "test")
    with pytest.raises(UserError):
        run_scenario(bad, out, progress=False, stream=_quiet())
    assert not out.exists()


# --------------------------------------------------------------------------- resume of a locked run
def test_resume_refuses_a_locked_directory_and_leaves_it_alone(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real = EconomyModel.step

    def crash(self):
        if self.year == 2:
            raise RuntimeError("simulated crash")
        real(self)

    monkeypatch.setattr(EconomyModel, "step", crash)
    with pytest.raises(RuntimeError):
        run_scenario(scenario_from_dict(FAST, "test"), out, progress=False, stream=_quiet())
    monkeypatch.undo()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        line = _error_line(capsys, ["resume", str(out), "--no-progress"])
        assert time.perf_counter() - t0 < 5
        assert line.startswith(f"econsim: error: run directory {out} is in use by process {holder.pid} (since ")
        with pytest.raises(RunLocked):
            resume_run(out, progress=False, stream=_quiet())
        after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        assert {k: v for k, v in after.items() if k != LOCK_NAME} == {
            k: v for k, v in before.items() if k != LOCK_NAME}
        assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert load_run(out).status == "completed" and not is_locked(out)


def test_user_error_before_year_one_under_a_held_lock_keeps_only_the_lock(tmp_path):
    """An experiment worker holds its run's lock, then the run stops on a user error before
    its first tax year: the half-made files go, the directory and its held lock stay."""
    from simulator.results import RunWriter

    run = tmp_path / "run"
    with lock_run_dir(run):
        writer = RunWriter(run, {"name": "x"}, 1)
        writer.write_manifest()
        assert (run / "manifest.json").exists()
        assert writer.discard_if_empty()
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]
        assert is_locked(run)
    assert not is_locked(run)
