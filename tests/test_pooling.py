"""Archetype pooling of LLM workers (issue 10): cells, allocation, carry-over rules,
streaming, bad input, and the validity test against one call per worker."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from simulator.cli.main import main as cli_main
from simulator.config.loading import scenario_from_dict
from simulator.economy.best_response import best_response
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import IsoelasticUtility
from simulator.llm import build_llm, factory, scripted
from simulator.sim.model import EconomyModel
from simulator.sim.population import build_population
from simulator.sim.workers import streaming
from simulator.sim.workers.pool_plan import (
    Cells,
    Plan,
    PoolingState,
    build_cells,
    carry_ballots,
    carry_choice,
    carry_hours,
    choose_representatives,
    neyman_allocation,
)


# --------------------------------------------------------------------------- unit rules
def test_cells_merge_smallest_within_first_attribute():
    rng = np.random.default_rng(0)
    n = 4000
    codes = np.stack([rng.integers(0, 4, n), rng.integers(0, 6, n), rng.integers(0, 5, n)], 1)
    w = np.ones(n)
    full = np.unique(codes, axis=0).shape[0]
    same = build_cells(codes, w, budget=full)
    assert same.n == full and not any(k[2] for k in same.keys)
    # each cell is exactly one attribute combination
    for c in range(same.n):
        assert np.unique(codes[same.of == c], axis=0).shape[0] == 1
    for budget in (60, 20, 4):
        cells = build_cells(codes, w, budget=budget)
        assert 4 <= cells.n <= budget
        assert cells.count.sum() == n and np.all(np.bincount(cells.of) == cells.count)
        for c in range(cells.n):  # never across the first attribute
            assert np.unique(codes[cells.of == c, 0]).size == 1
        # a merged ("rest") cell is never larger than a kept cell at the same level unless
        # it gathers several small ones: kept cells are at least as massive as any cell
        # that went into a rest cell (the threshold rule)
        kept = [c for c, k in enumerate(cells.keys) if not k[2]]
        if kept and budget < full:
            fine = build_cells(codes, w, budget=full)
            kept_mass = {cells.keys[c][1]: cells.mass[c] for c in kept if cells.keys[c][0] == 3}
            merged_small = [fine.mass[c] for c, k in enumerate(fine.keys) if k[1] not in kept_mass]
            if kept_mass and merged_small:
                assert max(merged_small) <= min(kept_mass.values()) + 1e-9
    with pytest.raises(Exception, match="never merged"):
        build_cells(codes, w, budget=3, first_name="occupation")
    # below the first attribute's 4 values but within the call budget: kept at 4
    assert build_cells(codes, w, budget=2, limit=6).n == 4


def test_neyman_allocation_by_hand():
    mass = np.array([100.0, 100.0, 800.0])
    count = np.array([100, 100, 800])
    spread = np.array([1.0, 4.0, 1.0])
    # 1 each; 10 more in proportion to 100:400:800 -> 0.77, 3.08, 6.15 -> 0, 3, 6 + largest remainder
    assert neyman_allocation(mass, count, spread, 13).tolist() == [2, 4, 7]
    # a cell cannot get more representatives than workers; the rest goes elsewhere
    small = np.array([2, 100, 800])
    assert neyman_allocation(mass, small, np.array([50.0, 1.0, 1.0]), 13).tolist()[0] == 2
    assert neyman_allocation(mass, small, np.array([50.0, 1.0, 1.0]), 13).sum() == 13
    assert neyman_allocation(mass, np.array([1, 1, 1]), spread, 10).tolist() == [1, 1, 1]


def _plan_two_cells():
    # cell 0: workers 0..5 (wages 1..6), cell 1: workers 6..9
    of = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    cells = Cells(of=of, keys=[(1, (0,), False), (1, (1,), False)], count=np.array([6, 4]),
                  mass=np.array([6.0, 4.0]))
    wages = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], float)
    return cells, wages


def test_representatives_are_systematic_and_everyone_maps_to_own_stratum():
    cells, wages = _plan_two_cells()
    plan = choose_representatives(cells, np.array([2, 1]), wages, np.random.default_rng(1))
    assert plan.rep_cell.tolist() == [0, 0, 1]
    assert plan.reps[0] in (0, 1, 2) and plan.reps[1] in (3, 4, 5) and plan.reps[2] in (6, 7, 8, 9)
    assert plan.slot[:3].tolist() == [0, 0, 0] and plan.slot[3:6].tolist() == [1, 1, 1]
    assert np.all(plan.slot[6:] == 2)
    assert np.all(plan.slot[plan.reps] == np.arange(3))


def test_carry_hours_adds_the_representative_deviation_to_own_best_response():
    cells, wages = _plan_two_cells()
    plan = Plan(cells, reps=np.array([1, 4, 7]), rep_cell=np.array([0, 0, 1]),
                slot=np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]), per_cell=np.array([2, 1]))
    rational = np.arange(10, 20, dtype=float)        # 10..19
    replies = np.array([15.0, 10.0, 30.0])            # deviations +4, -4, +13
    fb = np.full(10, 99.0)
    h, used = carry_hours(plan, replies, np.array([True, True, True]), rational, fb, (0, 100))
    assert h.tolist() == [14, 15, 16, 9, 10, 11, 29, 30, 31, 32]
    assert used.all()
    # an invalid representative: its stratum uses the nearest valid one of the same cell
    h, used = carry_hours(plan, replies, np.array([False, True, False]), rational, fb, (0, 100))
    assert h[:6].tolist() == [6, 7, 8, 9, 10, 11]
    assert h[6:].tolist() == [99] * 4 and not used[6:].any() and used[:6].all()
    v, got = carry_choice(plan, np.array(["yes", "no", "no"]), np.array([True, False, True]), "n/a")
    assert v.tolist() == ["yes"] * 6 + ["no"] * 4 and got.all()


def test_carry_ballots_in_own_ranking_terms():
    cells, _ = _plan_two_cells()
    plan = Plan(cells, reps=np.array([0, 6]), rep_cell=np.array([0, 1]),
                slot=np.array([0] * 6 + [1] * 4), per_cell=np.array([1, 1]))
    # 3 platforms; worker 0 prefers A>B>C, worker 1 prefers C>B>A, ... (take-home values)
    vals = np.tile(np.array([[3.0, 2.0, 1.0]]), (10, 1))
    vals[1] = [1.0, 2.0, 3.0]
    vals[6] = [1.0, 3.0, 2.0]   # rep of cell 1: B > C > A
    vals[7] = [3.0, 1.0, 2.0]   # A > C > B
    # plurality: rep 0 votes its own best (A); rep 6 votes its own second best (C)
    b, ok = carry_ballots(plan, np.array([0, 2]), np.array([True, True]), vals, "plurality")
    assert b[0] == 0 and b[1] == 2 and b[6] == 2 and b[7] == 2  # worker 7: 2nd best is C
    assert b[8] == 1  # A > B > C: second best B
    # borda: rep 6 ranks C, A, B = own positions 1, 2, 0
    b, _ = carry_ballots(plan, np.array([[0, 1, 2], [2, 0, 1]]), np.array([True, True]), vals, "borda")
    assert b[1].tolist() == [2, 1, 0] and b[7].tolist() == [2, 1, 0] and b[8].tolist() == [1, 2, 0]
    # approval: rep 0 approves its top two
    b, _ = carry_ballots(plan, np.array([[True, True, False], [False, True, False]]),
                         np.array([True, True]), vals, "approval")
    assert b[1].tolist() == [False, True, True] and b[7].tolist() == [True, False, False]


def test_pooling_state_checkpoint_roundtrip():
    cells, wages = _plan_two_cells()
    plan = choose_representatives(cells, np.array([3, 2]), wages, np.random.default_rng(0))
    st = PoolingState()
    disp = st.remember("hours", plan, np.array([1.0, 3.0, 5.0, 0.0, 4.0]), np.ones(5, bool))
    assert st.spreads["hours"][(1, (0,), False)] == pytest.approx((2.0, 3))
    assert st.spreads["hours"][(1, (1,), False)] == pytest.approx((np.sqrt(8.0), 2))
    assert disp == pytest.approx((6 * 2.0 + 4 * np.sqrt(8.0)) / 10)
    again = PoolingState()
    again.restore_state(pickle.loads(pickle.dumps(st.checkpoint_state())))
    assert again.spreads == st.spreads
    # shrunk towards the pooled SD sqrt((2*4 + 1*8)/3) with 10 prior degrees of freedom
    pooled = 16 / 3
    want = [np.sqrt((2 * 4 + 10 * pooled) / 12), np.sqrt((1 * 8 + 10 * pooled) / 11)]
    assert again.spread_of("hours", cells, 9.0).tolist() == pytest.approx(want)
    assert PoolingState().spread_of("hours", cells, 9.0).tolist() == [9.0, 9.0]


# --------------------------------------------------------------------------- validity
EDU_EFFECT = {"less than": -2.0, "high-school": -1.0, "some college": 0.0, "associate": 0.5,
              "bachelor": 1.0, "master": 2.0, "advanced": 2.0, "doctor": 2.0, "professional": 2.0}
#: a bracket of the compact prompt's schedule line: "12% to $47150" or, the last one, "37% above"
_SCHED = re.compile(r"([\d.]+)% (?:to \$(\d+)|above)")


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def scripted_worker(utility=IsoelasticUtility(), bounds=(0.0, 100.0), noise_sd=2.0):
    """A worker 'model' whose reply is a known function of what its prompt says: the exact
    best response for the wage, schedule and rebate in the prompt, shifted by persona
    fields (sex, age, education, usual hours), plus noise seeded by the request."""
    cache: dict[str, TaxSchedule] = {}

    def reply(req) -> str:
        system, user = req.messages[0]["content"], req.messages[-1]["content"]
        if req.tag == "satisfaction":
            take = _num(re.search(r"took home \$([\d,]+)", user).group(1))
            r = np.random.default_rng(req.seed).random()
            return "yes" if r < min(0.95, take / 80_000) else "no"
        if req.tag == "voter":  # a seeded pick among the letters offered
            opts = req.constraint.options
            return opts[int(np.random.default_rng(req.seed).integers(len(opts)))]
        if req.tag != "worker":  # candidates' platforms, the planner: a valid seeded reply
            return factory.demo_reply(req)
        sched = cache.get(system)
        if sched is None:
            rows = _SCHED.findall(system.split("\nRates", 1)[1])
            uppers = [_num(t) for _, t in rows if t]
            sched = cache[system] = TaxSchedule([0.0, *uppers], [float(r) / 100 for r, _ in rows])
        m = re.search(r"Expected rebate: (-?)\$([\d,]+)", system)
        rebate = (-1 if m.group(1) else 1) * _num(m.group(2))
        wage = _num(re.search(r"Your wage: \$([\d,]+) a year", user).group(1))
        br = float(best_response(sched, np.array([wage]), utility, rebate, bounds)[0])
        age, sex = re.search(r"(\d+)-year-old (man|woman)", user).groups()
        usual = float(re.search(r"You usually work (\d+) hour", user).group(1))
        edu = next((v for k, v in EDU_EFFECT.items() if k in user), 0.0)
        shift = (-2.5 if sex == "woman" else 1.0) - 0.08 * (float(age) - 40) + edu + 0.3 * (usual - 40)
        noise = np.random.default_rng(req.seed).normal(0.0, noise_sd)
        return json.dumps({"hours": int(np.clip(round(br + shift + noise), *bounds))})

    return reply


def _run_pair(n, pooling, years=1, seed=3, noise_sd=2.0, **extra):
    base = {
        "population": {"size": n, "source": "census"},
        "workers": {"policy": "llm", "llm": {"history": 1}},
        "planner": {"kind": "us_federal"},
        "run": {"tax_years": years, "seed": seed, "mesa_agents": False},
        "llm": {"backend": "scripted", "cache": "off"},
        **extra,
    }
    sc_off = scenario_from_dict(base)
    pop = build_population(sc_off.population, np.random.default_rng(seed))
    pooled = json.loads(json.dumps(base))
    pooled["workers"]["llm"]["pooling"] = pooling
    sc_on = scenario_from_dict(pooled)
    out = []
    for sc in (sc_off, sc_on):
        llm = build_llm(sc.llm, script=scripted_worker(noise_sd=noise_sd))
        m = EconomyModel(sc, pop, llm=llm, agent_objects=False)
        m.run()
        out.append((m, llm))
    return out


@pytest.mark.slow
def test_validity_pooled_matches_one_call_per_worker():
    """5,000 workers, 500 calls a step: pooled mean hours, revenue and objective within 1 %
    of one call per worker, SD of hours within 5 % (two tax years: the second has history
    in the prompt, last-year hours bands and Neyman allocation from year-one spreads)."""
    (off, llm_off), (on, llm_on) = _run_pair(5000, {"budget": 500}, years=2)
    calls_on = llm_on.telemetry.summary()["by_tag"]["worker"]["requests"]
    assert calls_on <= 2 * 500
    assert llm_off.telemetry.summary()["by_tag"]["worker"]["requests"] == 2 * 5000
    for y in range(2):
        a, b = off.history[y], on.history[y]
        for k in ("mean_hours", "revenue", "objective"):
            assert abs(b[k] - a[k]) <= 0.01 * abs(a[k]), (y, k, a[k], b[k])
        sd_a, sd_b = np.std(off.agent_years[y]["hours"]), np.std(on.agent_years[y]["hours"])
        assert abs(sd_b - sd_a) <= 0.05 * sd_a, (y, sd_a, sd_b)
        assert b["pool_representatives"] <= 500 and b["pool_cells"] <= 500
        assert b["pool_calls"] == b["pool_representatives"]
        assert b["pool_dispersion"] > 0
    # the rule is not the trivial one: pooled workers do not all copy one number
    assert np.unique(on.agent_years[0]["hours"]).size > 30


def test_pooled_run_records_checks_and_is_deterministic():
    (off, _), (on, llm) = _run_pair(400, {"budget": 60, "check": 40})
    rec = on.history[0]
    assert rec["pool_calls"] == rec["pool_representatives"] + 40
    assert llm.telemetry.summary()["by_tag"]["worker"]["requests"] == rec["pool_calls"]
    assert rec["pool_check_n"] == 40
    for k in ("mean_hours", "revenue", "objective"):
        assert abs(rec[f"pool_check_err_{k}"]) < 0.2
    (_, _), (on2, _) = _run_pair(400, {"budget": 60, "check": 40})
    assert np.array_equal(on.agent_years[0]["hours"], on2.agent_years[0]["hours"])
    (_, _), (on3, _) = _run_pair(400, {"budget": 60, "check": 40}, seed=4)
    assert not np.array_equal(on.agent_years[0]["hours"], on3.agent_years[0]["hours"][:400])


def test_pooled_satisfaction_and_elections_ask_representatives_only():
    extra = {"democracy": {"enabled": True, "election_every": 1, "candidates": 3}}
    base_workers = {"policy": "llm", "llm": {"history": 1, "bounded": True}}
    (off, llm_off), (on, llm_on) = _run_pair(300, {"budget": 40}, years=2, workers=base_workers, **extra)
    tags = llm_on.telemetry.summary()["by_tag"]
    assert tags["satisfaction"]["requests"] <= 2 * 40
    assert tags["voter"]["requests"] <= 40
    assert llm_off.telemetry.summary()["by_tag"]["voter"]["requests"] == 300
    # every worker has an answer; shares close to asking everyone
    s_on, s_off = on.history[0]["satisfied_share"], off.history[0]["satisfied_share"]
    assert abs(s_on - s_off) < 0.12
    ballots = on.planner.strategy.ballots[0]
    assert len(ballots) == 300


def test_streaming_sends_backend_sized_chunks(monkeypatch):
    monkeypatch.setattr(scripted, "SCRIPTED_CHUNK", 70)
    sizes = []
    sc = scenario_from_dict({
        "population": {"size": 300, "source": "gb2"},
        "workers": {"policy": "llm"}, "planner": {"kind": "us_federal"},
        "run": {"tax_years": 1, "seed": 1},
        "llm": {"backend": "scripted", "cache": "off"},
    })

    def reply(req):
        return '{"hours": 40}'

    llm = build_llm(sc.llm, script=reply)
    inner = streaming.backend_of(llm)
    orig = inner.generate

    def spy(reqs):
        sizes.append(len(reqs))
        return orig(reqs)

    monkeypatch.setattr(inner, "generate", spy)
    m = EconomyModel(sc, llm=llm)
    m.run()
    assert sizes == [70, 70, 70, 70, 20]
    assert np.all(m.hours == 40)
    # prompts sharing a start are sent together: each chunk is in persona order
    personas = [r.messages[-1]["content"] for r in inner.seen]
    assert personas == sorted(personas) or all(
        personas[i:i + 70] == sorted(personas[i:i + 70]) for i in range(0, 300, 70))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("sets,needle", [
    (["workers.llm.pooling.budget=0"], "budget: 0"),
    (["workers.llm.pooling.budget=5"], "below the 8 cells"),
    (["workers.llm.pooling.budget=10", "workers.llm.pooling.attributes=[occupation,sex]"], "below the 22 cells"),
    (["workers.llm.pooling.attributes=[occupation,shoe_size]"], "'shoe_size' is not a population column"),
    (["workers.policy=rational"], "needs workers.policy: llm"),
])
def test_validate_rejects_bad_pooling(tmp_path, capsys, sets, needle):
    path = tmp_path / "s.yaml"
    path.write_text("population: {size: 1000}\nworkers: {policy: llm, llm: {pooling: {budget: 100}}}\n"
                    "llm: {backend: embedded, model: /nonexistent.gguf}\n")
    rc = cli_main(["validate", str(path), *[a for s in sets for a in ("--set", s)]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err


def test_validate_checks_file_population_columns(tmp_path, capsys):
    pd.DataFrame({"wage": [1000.0, 2000.0], "region": ["n", "s"]}).to_csv(tmp_path / "p.csv", index=False)
    path = tmp_path / "s.yaml"
    path.write_text("population: {source: file, path: p.csv}\n"
                    "workers: {policy: llm, llm: {pooling: {budget: 5, attributes: [region, sex]}}}\n")
    rc = cli_main(["validate", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "'sex' is not a population column" in err[0]
    path.write_text("population: {source: file, path: p.csv}\n"
                    "workers: {policy: llm, llm: {pooling: {budget: 5, attributes: [region, wage_band]}}}\n")
    assert cli_main(["validate", str(path)]) == 0


def test_pooling_off_spellings():
    for v in (False, "off", None):
        sc = scenario_from_dict({"workers": {"policy": "llm", "llm": {"pooling": v}}})
        assert sc.workers.llm.pooling is None
    sc = scenario_from_dict({"workers": {"policy": "llm", "llm": {"pooling": True}}})
    assert sc.workers.llm.pooling.budget == 500


def test_million_scenario_runs_small_on_the_scripted_backend(tmp_path):
    from pathlib import Path

    from simulator.config.loading import load_scenario
    from simulator.run.runner import run_scenario

    path = Path(__file__).resolve().parents[1] / "scenarios" / "million.yaml"
    full = load_scenario(path)
    assert full.population.size == 1_000_000 and full.workers.llm.pooling.budget >= 8
    sc = load_scenario(path, ["population.size=2000", "run.tax_years=2", "llm.backend=scripted", "llm.cache=off",
                              "output.agents_sample=300"])
    res = run_scenario(sc, tmp_path, progress=False)
    y = res.years
    assert (y["pool_calls"] <= sc.workers.llm.pooling.budget).all()
    assert (y["pool_cells"] <= sc.workers.llm.pooling.budget * sc.workers.llm.pooling.cell_share).all()
    a = res.agents  # per-agent rows of a fixed sample of workers only
    assert len(a) == 2 * 300 and a["id"].nunique() == 300
    assert set(a.loc[a["year"] == 0, "id"]) == set(a.loc[a["year"] == 1, "id"])
    assert y["llm_requests"].iloc[1] == y["pool_calls"].iloc[1] + 1  # + one planner call
