"""``econsim validate`` rejects what ``econsim run`` rejects before its first tax year, and
contradictory settings are errors (issue 21); ``econsim behaviour`` ends with a verdict
and ``--strict`` gates on it (issue 20)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def econsim(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "simulator.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """``econsim`` in this process (fast), from an empty working directory."""
    from simulator.cli.main import main

    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> Result:
        capsys.readouterr()
        rc = main(list(args))
        out = capsys.readouterr()
        return Result(rc, out.out, out.err)

    return call


def _one_error_line(res, *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


OPENAI = ["--set", "llm.backend=openai", "--set", "llm.cache=off"]
CORRUPT_SETS = ["--set", "population.source=file"]
CASES = {
    "openai without a model": (["quickstart", *OPENAI], ["llm.model"]),
    "openai remote without a key": (
        ["quickstart", *OPENAI, "--set", "llm.model=m", "--set", "llm.base_url=https://api.example.com/v1",
         "--set", "llm.api_key_env=ECONSIM_TEST_NO_SUCH_KEY"], ["ECONSIM_TEST_NO_SUCH_KEY"]),
    "seed flag with a seed list": (["rational", "--seed", "3", "--set", "run.seeds=[1,2]"],
                                   ["--seed", "run.seeds"]),
    "more candidates than workers": (
        ["democratic", "--set", "population.size=4", "--set", "democracy.candidates=20",
         "--set", "compare=[]"], ["democracy.candidates", "4 workers"]),
    "optimum subsample larger than the population": (
        ["rational_baselines", "--set", "population.size=100", "--set", "planner.optimum_max_agents=500"],
        ["[optimum]", "planner.optimum_max_agents is 500", "100 workers"]),
    "baseline names no variant": (["rational_baselines", "--set", "experiment.baseline=nope"],
                                  ["experiment.baseline", "nope"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_and_run_reject_the_same_with_one_line(case, tmp_path, cli, monkeypatch):
    monkeypatch.delenv("ECONSIM_TEST_NO_SUCH_KEY", raising=False)
    args, needles = CASES[case]
    v = cli("validate", *args)
    line_v = _one_error_line(v, *needles)
    r = cli("run", *args, "--out", str(tmp_path / "run"), "--no-progress")
    line_r = _one_error_line(r, *needles)
    assert line_v == line_r  # the same check, the same words
    assert not (tmp_path / "run").exists()  # rejected before anything was written


def test_corrupt_population_file(tmp_path):
    """Through real processes: the exit status and stderr a shell sees."""
    bad = tmp_path / "people.parquet"
    bad.write_bytes(b"PAR1 this is not parquet \x00\x01\x02")
    args = ["rational", "--set", "population.source=file", "--set", f"population.path={bad}"]
    v = econsim("validate", *args, cwd=tmp_path)
    line_v = _one_error_line(v, str(bad))
    r = econsim("run", *args, "--out", str(tmp_path / "run"), "--no-progress", cwd=tmp_path)
    assert _one_error_line(r, str(bad)) == line_v


def test_seed_flag_shifts_a_seed_count(cli):
    v = cli("validate", "rational", "--seed", "7", "--set", "run.seeds=2")
    assert v.returncode == 0, v.stderr
    assert "x 2 seeds" in v.stdout


def test_validate_still_passes_the_shipped_scenarios(cli):
    for name in ("quickstart", "rational", "rational_baselines", "democratic", "bounded"):
        v = cli("validate", name)
        assert v.returncode == 0, (name, v.stderr)


def test_behaviour_verdict_line_and_strict(cli):
    common = ["behaviour", "rational", "--workers", "30", "--no-progress",
              "--set", "workers.policy=fixed"]
    plain = cli(*common)
    assert plain.returncode == 0, plain.stderr
    last = plain.stdout.strip().splitlines()[-1]
    assert last.startswith("verdict: ") and "outside their ranges" in last, last
    n_out = int(last.split()[1])
    assert n_out >= 1  # fixed hours do not respond to incentives
    strict = cli(*common, "--strict")
    assert strict.returncode == 4, (strict.returncode, strict.stderr)
    assert "--strict" in strict.stderr and f"{n_out} check(s) outside" in strict.stderr
