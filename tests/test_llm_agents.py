"""LLM workers, the LLM planner and democracy, with a scripted backend (exact plumbing)."""

import json

import numpy as np
import pandas as pd
import pytest

from simulator.config.loading import scenario_from_dict
from simulator.config.schema import LLMPlannerOptions
from simulator.llm import build_llm
from simulator.run.runner import run_scenario
from simulator.sim.model import EconomyModel
from simulator.sim.planners.llm import project_rates
from simulator.sim.voting import approval, borda, plurality, rankings_as_strings


def llm_scenario(**sections):
    base = {
        "population": {"size": 12, "source": "census"},
        "workers": {"policy": "llm"},
        "planner": {"kind": "llm"},
        "run": {"tax_years": 3, "seed": 4},
        "llm": {"backend": "scripted", "cache": "off"},
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return scenario_from_dict(base)


def script_from(table):
    calls = []

    def fn(req):
        calls.append(req)
        reply = table.get(req.tag, "?")
        return reply(req) if callable(reply) else reply

    fn.calls = calls
    return fn


K = 7
SAME = json.dumps({f"b{i + 1}": 30 for i in range(K)})


def test_planner_that_always_proposes_the_same_schedule(tmp_path):
    sc = llm_scenario(planner={"kind": "llm", "llm": {"action": "absolute", "max_step": 1.0}})
    fn = script_from({"worker": '{"hours": 38}', "planner": SAME})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=fn))
    y = res.years
    assert [y[f"rate_{i}"].iloc[0] for i in range(K)] == [0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37]
    for year in (1, 2):
        assert [y[f"rate_{i}"].iloc[year] for i in range(K)] == [0.30] * K
    assert np.all(res.agents["hours"] == 38)
    assert list(y["fallback_rate"]) == [0, 0, 0]
    # every worker asked once per year, planner once per year after the first
    tags = [c.tag for c in fn.calls]
    assert tags.count("worker") == 36 and tags.count("planner") == 2
    # outputs carry the prompts' telemetry
    llm = res.tables["llm"]
    assert set(llm["tag"]) == {"worker", "planner"}
    assert llm.loc[llm.tag == "worker", "requests"].sum() == 36
    assert y["llm_requests"].tolist() == [12, 13, 13]
    assert (res.tables["planner"]["valid"]).all()


def test_worker_prompt_shares_a_prefix_and_carries_persona_and_core_numbers(tmp_path):
    sc = llm_scenario(run={"tax_years": 2})
    fn = script_from({"worker": '{"hours": 40}', "planner": SAME})
    model = EconomyModel(sc, llm=build_llm(sc.llm, script=fn))
    model.run()
    year1 = [c for c in fn.calls if c.tag == "worker"][12:]
    systems = {c.messages[0]["content"] for c in year1}
    assert len(systems) == 1  # the shared part is identical for every worker
    user = year1[3].messages[-1]["content"]
    persona = model.population["persona"].iat[3]
    assert user.startswith(persona)
    # the take-home row for 40 hours equals the core's numbers under year 1's schedule
    sched = model.base_schedule.with_rates([model.history[1][f"rate_{i}"] for i in range(K)])
    z = 40 * model.wages[3]
    rebate = model.history[0]["rebate"]  # the rebate workers expect in year 1
    post = z - float(sched.tax(z)) + rebate
    row = f"40 | ${float(sched.tax(z)):.0f} | ${post:.0f} |"  # the compact layout: hours | tax | take-home
    assert row in user
    assert f"Expected rebate: ${rebate:.0f}." in systems.pop()
    assert "Past years (hours, take-home, utility): year 0: 40, " in user and "(best)" in user
    assert year1[0].constraint.schema["properties"]["hours"] == {"type": "integer", "minimum": 0, "maximum": 100}


def test_bad_worker_replies_fall_back_and_are_counted(tmp_path):
    replies = iter(['{"hours": 20}', "garbage", '{"hours": 250}', "", '{"hours": 10}'] * 100)
    # 60 % of replies unusable: above the default llm.max_failure_rate (0.5), so allow it
    sc = llm_scenario(population={"size": 5}, run={"tax_years": 2},
                      llm={"backend": "scripted", "cache": "off", "max_retries": 0,
                           "max_failure_rate": 1.0})
    fn = script_from({"worker": lambda r: next(replies), "planner": "nonsense"})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=fn))
    assert res.status == "completed_with_warnings"
    y = res.years
    assert y["fallback_rate"].tolist() == [0.6, 0.6]
    assert y["fallbacks"].tolist() == [3, 3]
    a = res.agents
    first = a[a.year == 0].sort_values("id")["hours"].to_numpy()
    second = a[a.year == 1].sort_values("id")["hours"].to_numpy()
    assert first[0] == 20 and first[4] == 10
    assert second[1] == first[1] and second[2] == first[2]  # last year's hours
    # invalid planner replies keep the schedule and are counted
    assert not res.tables["planner"]["valid"].any()
    assert y["rate_3"].tolist() == [0.24, 0.24]
    assert res.manifest["status"] == "completed_with_warnings"  # it degraded, and says so


def test_exploration_steps_within_a_year(tmp_path):
    sc = llm_scenario(run={"tax_years": 1, "steps_per_year": 3}, population={"size": 4})
    fn = script_from({"worker": '{"hours": 30}', "planner": SAME})
    m = EconomyModel(sc, llm=build_llm(sc.llm, script=fn))
    m.run()
    systems = [c.messages[0]["content"] for c in fn.calls if c.tag == "worker"]
    assert sum("Early step: try hours you have not tried" in s for s in systems) == 8
    assert sum("Deciding step:" in s for s in systems) == 4
    temps = {c.temperature for c in fn.calls}
    assert len(temps) == 2


def test_bounded_satisfaction_scales_utility(tmp_path):
    sc = llm_scenario(workers={"policy": "llm", "llm": {"bounded": True, "welfare_on": "adjusted",
                                                         "satisfaction_scale": 0.5}},
                      run={"tax_years": 1}, population={"size": 6})
    answers = iter(["yes", "no"] * 10)
    fn = script_from({"worker": '{"hours": 40}', "satisfaction": lambda r: next(answers)})
    m = EconomyModel(sc, llm=build_llm(sc.llm, script=fn))
    m.run()
    u = m.outcome.utility
    adj = m.policy.adjusted_utility
    np.testing.assert_allclose(adj[0::2], u[0::2])
    np.testing.assert_allclose(adj[1::2], u[1::2] - 0.5 * np.abs(u[1::2]))
    assert m.history[0]["objective"] == pytest.approx(adj.mean())
    assert m.history[0]["welfare_on"] == "adjusted"
    assert m.history[0]["satisfied_share"] == 0.5


def test_project_rates_respects_constraints():
    opts = LLMPlannerOptions(rate_bounds=(0.0, 0.6), max_step=0.1, monotone=True)
    cur = np.array([0.1, 0.2, 0.3])
    r, notes = project_rates(np.array([0.9, -0.5, 0.35]), cur, opts)
    np.testing.assert_allclose(r, [0.2, 0.3, 0.4])
    assert np.all(np.diff(r) >= 0) and np.all(np.abs(r - cur) <= 0.1 + 1e-12)
    assert notes
    # the step limit wins over monotonicity when both cannot hold in one year
    cur = np.array([0.5, 0.1, 0.1])
    opts = LLMPlannerOptions(rate_bounds=(0.0, 0.9), max_step=0.05, monotone=True)
    r, notes = project_rates(cur.copy(), cur, opts)
    np.testing.assert_allclose(r, [0.5, 0.15, 0.15])
    assert any("more than one year" in n for n in notes)
    # revenue floor on last year's incomes
    from simulator.economy.tax import TaxSchedule

    sched = TaxSchedule([0, 50_000], [0.1, 0.2])
    z = np.array([30_000.0, 80_000.0])
    opts = LLMPlannerOptions(rate_bounds=(0.0, 0.9), max_step=1.0, revenue_floor=15_000)
    r, notes = project_rates(np.array([0.0, 0.0]), np.array([0.1, 0.2]), opts, sched, z)
    assert sched.with_rates(r).tax(z).mean() == pytest.approx(15_000, rel=1e-6)
    assert "revenue floor" in notes[0]


@pytest.mark.parametrize("rule", ["plurality", "borda", "approval"])
def test_election_winner_and_ballots(tmp_path, rule):
    sc = llm_scenario(
        democracy={"enabled": True, "election_every": 2, "candidates": 3, "rule": rule},
        run={"tax_years": 4}, population={"size": 10}, planner={"kind": "us_federal"},
    )
    votes = {"plurality": "B", "borda": "BCA", "approval": '{"A": false, "B": true, "C": true}'}
    fn = script_from({"worker": '{"hours": 35}', "voter": votes[rule],
                      "platform": lambda r: json.dumps({f"b{i + 1}": 15 for i in range(K)})})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=fn))
    el = res.tables["elections"]
    assert list(el["year"]) == [2]
    e = el.iloc[0]
    assert e["winner"] in list(e["candidates"])
    assert e["winner"] == e["candidates"][1]  # everyone prefers B
    ballots = res.tables["ballots"]
    assert len(ballots) == e["electorate"] == 10
    if rule == "plurality":
        assert sum(e["scores"]) == e["electorate"]
    plat = res.tables["platforms"]
    assert len(plat) == 3
    assert res.years["rate_0"].tolist()[2:] == [0.15, 0.15]  # the winner's platform
    assert res.years["planner"].iloc[0] == "democracy"


def test_invalid_ballots_fall_back_to_own_interest(tmp_path):
    sc = llm_scenario(democracy={"enabled": True, "election_every": 1, "candidates": 2},
                      run={"tax_years": 2}, population={"size": 6}, planner={"kind": "us_federal"},
                      # every ballot invalid would fail the run (votes are a question of
                      # their own, held to max_failure_rate): here the fallback is the point
                      llm={"backend": "scripted", "cache": "off", "max_retries": 0,
                           "max_failure_rate": 1.0})
    fn = script_from({"worker": '{"hours": 35}', "voter": "Z",
                      "platform": lambda r: json.dumps({f"b{i + 1}": 10 for i in range(K)})})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=fn))
    e = res.tables["elections"].iloc[0]
    assert e["invalid_ballots"] == 6
    assert sum(e["scores"]) == 6
    assert not res.tables["ballots"]["valid"].any()


def test_voting_rules():
    rng = np.random.default_rng(0)
    w, s = plurality(np.array([0, 1, 1, 2]), 3, rng)
    assert w == 1 and s.tolist() == [1, 2, 1]
    w, s = borda(np.array([[0, 1, 2], [1, 0, 2], [1, 2, 0]]), 3, rng)
    assert s.tolist() == [3, 5, 1] and w == 1
    w, s = approval(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], bool), 3, rng)
    assert w == 1 and s.tolist() == [1, 2, 1]
    wins = {plurality(np.array([0, 1]), 2, np.random.default_rng(k))[0] for k in range(30)}
    assert wins == {0, 1}  # random tie-break
    assert len(rankings_as_strings(3)) == 6
    with pytest.raises(ValueError):
        borda(np.array([[0, 0, 1]]), 3, rng)


def test_cached_run_replays_exactly_with_zero_model_calls(tmp_path):
    cache = tmp_path / "cache.sqlite"
    sc = llm_scenario(llm={"backend": "scripted", "cache": "readwrite", "cache_path": str(cache)},
                      workers={"policy": "llm", "llm": {"temperature": 0.9}})
    counter = {"n": 0}

    def noisy(req):
        counter["n"] += 1
        if req.tag == "planner":
            return json.dumps({f"b{i + 1}": int(req.seed % 7) - 3 for i in range(K)})
        return json.dumps({"hours": int(req.seed % 61) + 10})

    first = run_scenario(sc, tmp_path / "a", progress=False, llm=build_llm(sc.llm, script=noisy))
    calls = counter["n"]
    assert calls > 0
    sc_replay = llm_scenario(llm={"backend": "scripted", "cache": "replay", "cache_path": str(cache)},
                             workers={"policy": "llm", "llm": {"temperature": 0.9}})
    second = run_scenario(sc_replay, tmp_path / "b", progress=False,
                          llm=build_llm(sc_replay.llm, script=noisy))
    assert counter["n"] == calls  # zero model calls
    pd.testing.assert_frame_equal(first.agents, second.agents)
    cols = [c for c in first.years.columns if not c.startswith("llm_")]
    pd.testing.assert_frame_equal(first.years[cols], second.years[cols])
    assert second.years["llm_cache_hits"].sum() == second.years["llm_requests"].sum()


def test_behaviour_command_with_scripted_llm(capsys):
    from simulator.sim.behaviour import measure_behaviour

    sc = llm_scenario(population={"size": 30})

    def responsive(req):
        # more hours when the top marginal rate shown is lower
        text = req.messages[0]["content"]
        top = float(text.split("% above")[0].rsplit(" ", 1)[1])  # the compact schedule line's last bracket
        return json.dumps({"hours": int(round(60 - top))})

    rep = measure_behaviour(sc, llm=build_llm(sc.llm, script=responsive))
    assert rep.estimate.value > 0
    assert rep.fallback_share == 0
    assert len(rep.table) == 5
    assert "elasticity of taxable income" in rep.text()


def test_persona_enrichment_through_the_llm_layer(tmp_path):
    sc = llm_scenario(population={"size": 8, "source": "census", "enrich": True},
                      run={"tax_years": 1})

    def fn(req):
        if req.tag == "persona":
            original = req.messages[-1]["content"].split("\n", 1)[1]
            if " woman " in original:
                return "not json at all"
            return json.dumps({"persona": original + " You enjoy long walks after work."})
        return '{"hours": 40}'

    m = EconomyModel(sc, llm=build_llm(sc.llm, script=fn))
    pop = m.population
    men = pop["persona_template"].str.contains(" man ")
    assert men.any() and (~men).any()
    assert (pop["persona"][men] == pop["persona_template"][men] + " You enjoy long walks after work.").all()
    assert (pop["persona"][~men] == pop["persona_template"][~men]).all()
    assert any(f"for {int((~men).sum())} workers" in n for n in m.notes)
    # deterministic: the same persona gets the same request seed
    m2 = EconomyModel(sc, llm=build_llm(sc.llm, script=fn))
    pd.testing.assert_series_equal(m2.population["persona"], pop["persona"])


def test_run_with_fallbacks_replays_exactly(tmp_path):
    cache = tmp_path / "c.sqlite"

    def make(mode):
        return llm_scenario(population={"size": 6}, run={"tax_years": 2, "steps_per_year": 2},
                            # the planner's one reply a year is invalid (b1 moves by 30 >
                            # the max change): held to account, that would fail the run
                            llm={"backend": "scripted", "cache": mode, "cache_path": str(cache),
                                 "max_retries": 0, "max_failure_rate": 1.0})

    def flaky(req):
        if req.tag == "worker" and req.seed % 3 == 0:
            return "garbage"
        return json.dumps({"hours": int(req.seed % 50)}) if req.tag == "worker" else SAME

    a = run_scenario(make("readwrite"), tmp_path / "a", progress=False,
                     llm=build_llm(make("readwrite").llm, script=flaky))
    assert a.years["fallbacks"].sum() > 0
    # fallbacks are summed over the year's steps: 2 steps x 6 workers asked per year
    assert a.years["worker_replies"].tolist() == [12, 12]
    b = run_scenario(make("replay"), tmp_path / "b", progress=False,
                     llm=build_llm(make("replay").llm, script=lambda r: 1 / 0))
    pd.testing.assert_frame_equal(a.agents, b.agents)
    assert a.years["fallbacks"].tolist() == b.years["fallbacks"].tolist()


def test_rerun_into_the_same_directory_is_refused(tmp_path):
    from simulator.errors import UserError

    sc = llm_scenario(workers={"policy": "fixed"}, planner={"kind": "us_federal"},
                      run={"tax_years": 1})
    run_scenario(sc, tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="already holds a run"):
        run_scenario(sc, tmp_path / "r", progress=False)


def test_weighted_population_uses_weights_everywhere(tmp_path):
    sc = scenario_from_dict({
        "population": {"size": 400, "source": "census",
                       "census": {"stratify": "bracket", "min_per_stratum": 40}},
        "run": {"tax_years": 1, "seed": 1},
    })
    m = EconomyModel(sc)
    m.run()
    w = m.weights
    assert w is not None and w.std() > 0
    o = m.outcome
    assert m.history[0]["revenue"] == pytest.approx(np.average(o.tax, weights=w))
    assert o.rebate == pytest.approx(np.average(o.tax, weights=w))
    assert m.history[0]["mean_hours"] == pytest.approx(np.average(o.hours, weights=w))
    from simulator.economy.welfare import inverse_income_sum

    wn = w / w.sum()
    assert inverse_income_sum(o.utility, o.pre_tax, 1.0, w) == pytest.approx(
        len(w) * np.sum(wn * o.utility / np.maximum(o.pre_tax, 1.0)))


def test_every_shipped_scenario_validates():
    from pathlib import Path

    from simulator.config.loading import load_scenario

    files = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        sc = load_scenario(f)
        assert sc.variants(str(f))


def test_winner_planner_logs_survive_later_elections(tmp_path):
    sc = llm_scenario(
        democracy={"enabled": True, "election_every": 1, "candidates": 2, "winner_mode": "planner"},
        run={"tax_years": 4}, population={"size": 6}, planner={"kind": "us_federal"},
    )
    fn = script_from({"worker": '{"hours": 35}', "voter": "A",
                      "platform": json.dumps({f"b{i + 1}": 20 for i in range(K)}),
                      "winner_planner": json.dumps({f"b{i + 1}": 1 for i in range(K)})})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=fn))
    el = res.tables["elections"]
    assert list(el["year"]) == [1, 2, 3]
    log = res.tables["winner_planner"]
    assert sorted(log["year"]) == [1, 2, 3]  # one action per year by that year's winner
    # the winner plans for its own utility and moves rates by +1 point a year
    assert res.years["rate_0"].tolist() == pytest.approx([0.10, 0.11, 0.12, 0.13])
    assert all("your own utility" in c.messages[0]["content"] for c in fn.calls if c.tag == "winner_planner")


def test_shipped_isoelastic_variants_have_interior_hours():
    """Guards against a variant inheriting another utility's calibration (e.g. psi)."""
    from pathlib import Path

    from simulator.config.builders import build_base_schedule, build_utility
    from simulator.config.loading import load_scenario
    from simulator.economy.best_response import equilibrium

    rng = np.random.default_rng(0)
    wages = rng.lognormal(np.log(1_300), 0.8, 500)
    for f in sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml")):
        for label, sc in load_scenario(f).variants(str(f)):
            if sc.economy.utility.form != "isoelastic":
                continue
            h, _ = equilibrium(build_base_schedule(sc), wages, build_utility(sc))
            assert 15 < np.median(h) < 60, (f.name, label, np.median(h))


def test_ballot_text_matches_the_letters_voter_by_voter():
    import numpy as np

    from simulator.sim.planners.democracy import LETTERS, ballot_text

    rng = np.random.default_rng(0)
    plur = rng.integers(0, 4, 50)
    assert ballot_text(plur, 4, "plurality").tolist() == [LETTERS[b] for b in plur]
    borda = np.array([rng.permutation(4) for _ in range(50)])
    assert ballot_text(borda, 4, "borda").tolist() == ["".join(LETTERS[j] for j in b) for b in borda]
    appr = rng.random((50, 4)) < 0.3
    assert ballot_text(appr, 4, "approval").tolist() == [
        "".join(LETTERS[j] for j in range(4) if b[j]) or "-" for b in appr]
