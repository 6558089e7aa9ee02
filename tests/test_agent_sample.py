"""output.agents_sample: per-agent tables of a fixed random subsample of workers, the
same every year, drawn from the run seed without touching the run's own random stream."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.config.loading import scenario_from_dict
from simulator.errors import UserError
from simulator.results import load_run
from simulator.run.agent_sample import SAMPLE_STREAM, sample_positions
from simulator.run.resume import resume_run
from simulator.run.runner import run_scenario
from simulator.run.state import finished_years
from simulator.sim.model import EconomyModel

N, POP, YEARS, SEED = 12, 40, 3, 3

#: LLM workers (bounded: satisfaction table) and elections (ballots table), scripted.
BASE = {
    "name": "sample",
    "population": {"size": POP, "source": "census"},
    "workers": {"policy": "llm", "llm": {"bounded": True, "history": 2}},
    "planner": {"kind": "llm"},
    "democracy": {"enabled": True, "election_every": 2, "winner_mode": "planner"},
    "run": {"tax_years": YEARS, "seed": SEED, "steps_per_year": 2},
    "llm": {"backend": "scripted", "cache": "off"},
}
PER_AGENT = {"agents": "id", "satisfaction": "id", "ballots": "voter"}
TIMING = ("latency", "wall")


def scenario(sample: int | None = N, **run):
    data = json.loads(json.dumps(BASE))
    data["run"].update(run)
    if sample is not None:
        data["output"] = {"agents_sample": sample}
    return scenario_from_dict(data, "test")


def _run(sc, out: Path) -> Path:
    run_scenario(sc, out, progress=False, stream=open(os.devnull, "w"))
    return out


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    res = load_run(run_dir)
    out = {"years": res.years, "agents": res.agents, "population": res.population, **res.tables}
    return {k: v for k, v in out.items() if v is not None}


def _same(x: pd.DataFrame, y: pd.DataFrame, name: str) -> None:
    cols = [c for c in x.columns if not any(d in c for d in TIMING)]
    assert cols == [c for c in y.columns if not any(d in c for d in TIMING)], name
    conv = lambda v: v.tolist() if isinstance(v, np.ndarray) else v  # noqa: E731
    pd.testing.assert_frame_equal(x[cols].reset_index(drop=True).map(conv),
                                  y[cols].reset_index(drop=True).map(conv), check_exact=True, obj=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return _run(scenario(None), root / "full"), _run(scenario(N), root / "sampled")


def test_sample_is_n_fixed_workers_equal_to_the_full_rows(runs):
    full_dir, samp_dir = runs
    full, samp = _tables(full_dir), _tables(samp_dir)
    # the sample, drawn independently here from the documented stream of the seed
    rng = np.random.default_rng(np.random.SeedSequence([SEED, SAMPLE_STREAM]))
    pop = full["population"]
    want = set(pop["id"].to_numpy()[rng.choice(POP, size=N, replace=False)].tolist())
    a = samp["agents"]
    assert a["id"].nunique() == N and set(a["id"]) == want
    assert len(a) == N * YEARS
    for _, g in a.groupby("year"):
        assert set(g["id"]) == want  # the same workers every year
    # row for row the full run's rows of those workers, in the full run's order
    fa = full["agents"]
    assert len(fa) == POP * YEARS
    _same(a[fa.columns.tolist()], fa[fa["id"].isin(want)], "agents")
    # weights: population weight, and the expansion weight workers / N times it
    w = a[["id"]].merge(pop[["id", "weight"]], on="id", how="left")["weight"].to_numpy()
    np.testing.assert_array_equal(a["weight"].to_numpy(), w)
    np.testing.assert_allclose(a["sample_weight"].to_numpy(), w * POP / N, rtol=1e-12)
    # the other per-agent tables are cut to the same workers; every other table is unchanged
    assert sorted(full) == sorted(samp)
    for name, df in full.items():
        if name == "agents":
            continue
        if name in PER_AGENT:
            col = PER_AGENT[name]
            assert set(samp[name][col]) == want and len(samp[name]) < len(df)
            _same(samp[name], df[df[col].isin(want)], name)
        else:
            _same(samp[name], df, name)  # years.parquet included: the option changes no result


def test_manifest_records_the_sample(runs):
    full_dir, samp_dir = runs
    man = json.loads((samp_dir / "manifest.json").read_text())
    entry = man["agents_sample"]
    assert entry["sampled"] is True and entry["size"] == N and entry["requested"] == N
    assert entry["population"] == POP and entry["seed"] == SEED
    assert entry["weight_column"] == "sample_weight" and entry["id_column"]["agents"] == "id"
    assert "agents_sample" not in json.loads((full_dir / "manifest.json").read_text())


def test_sample_is_deterministic_under_the_seed_and_leaves_the_global_rng():
    state = np.random.get_state()[1].copy()
    a, b = sample_positions(7, 1000, 50), sample_positions(7, 1000, 50)
    np.testing.assert_array_equal(a, b)
    assert a.size == 50 and np.unique(a).size == 50 and (np.diff(a) > 0).all()
    assert not np.array_equal(a, sample_positions(8, 1000, 50))
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert sample_positions(7, 1000, None) is None
    assert sample_positions(7, 1000, 1000) is None and sample_positions(7, 1000, 5000) is None


def test_resume_after_a_crash_keeps_the_same_sample(tmp_path, monkeypatch, runs):
    _, samp_dir = runs
    real = EconomyModel.step

    def step_then_crash(self):
        if self.year == 1 and self.step_in_year == 1:
            raise RuntimeError("simulated crash")
        real(self)

    monkeypatch.setattr(EconomyModel, "step", step_then_crash)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(scenario(N), out)
    monkeypatch.undo()
    assert finished_years(out) == [0]
    # the failed run's tables already hold the sample (of the year it finished)
    assert set(pd.read_parquet(out / "agents.parquet")["id"]) == set(load_run(samp_dir).agents["id"])
    resume_run(out, progress=False, stream=open(os.devnull, "w"))
    ref, got = _tables(samp_dir), _tables(out)
    assert sorted(ref) == sorted(got)
    for name in ref:
        _same(got[name], ref[name], name)


def test_interrupted_run_writes_the_sampled_agents_of_its_finished_years(tmp_path, monkeypatch):
    real = EconomyModel.step

    def step_then_stop(self):
        if self.year == 1 and self.step_in_year == 0:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(EconomyModel, "step", step_then_stop)
    sc = scenario_from_dict({"population": {"size": 30}, "run": {"tax_years": 3, "seed": 4},
                             "output": {"agents_sample": 5}}, "test")
    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, tmp_path / "run", progress=False, stream=open(os.devnull, "w"))
    a = pd.read_parquet(tmp_path / "run" / "agents.parquet")
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "interrupted"
    assert a["year"].tolist() == [0] * 5 and a["id"].nunique() == 5
    np.testing.assert_allclose(a["sample_weight"], a["weight"] * 30 / 5)


def test_sample_at_least_the_population_keeps_every_worker(tmp_path):
    base = {"population": {"size": 25}, "run": {"tax_years": 2, "seed": 1}}
    ref = _run(scenario_from_dict(base, "test"), tmp_path / "ref")
    big = _run(scenario_from_dict({**base, "output": {"agents_sample": 25}}, "test"), tmp_path / "big")
    _same(load_run(big).agents, load_run(ref).agents, "agents")
    entry = json.loads((big / "manifest.json").read_text())["agents_sample"]
    assert entry["sampled"] is False and entry["size"] == 25 and entry["weight_column"] is None


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "many"])
def test_bad_sample_sizes_are_refused(bad):
    with pytest.raises(UserError, match="agents_sample"):
        scenario_from_dict({"output": {"agents_sample": bad}}, "test")


def test_million_scenarios_sample_ten_thousand_workers():
    root = Path(__file__).resolve().parents[1]
    a, b = root / "scenarios" / "million.yaml", root / "simulator" / "scenarios" / "million.yaml"
    assert a.read_text() == b.read_text()
    from simulator.config.loading import load_scenario

    sc = load_scenario(a)
    assert sc.output.agents_table is True and sc.output.agents_sample == 10_000
