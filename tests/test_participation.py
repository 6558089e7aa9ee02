"""The extensive margin: the participation choice is exact (never beaten by brute force
over {0} and a fine hours grid), reservation costs are the costs at which the choice
flips, the calibration reproduces its employment targets and elasticity, the calibrated
elasticity is recovered from a simulated reform on a fresh population within its
interval, and the simulation reports employment."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from simulator.economy.best_response import best_response, equilibrium
from simulator.economy.fixed_costs import (
    REFORM_RATIO,
    _consumption_equivalent,
    calibrate_fixed_costs,
    reservation_cost,
)
from simulator.economy.participation import (
    FixedCostUtility,
    participation_tax_rate,
    take_home,
)
from simulator.economy.tax import TaxSchedule
from simulator.economy.taxbenefit.system import Households, USTaxBenefit
from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility, subset_utility
from simulator.validity.participation import elasticity_value

GRID = np.concatenate([[0.0], np.linspace(0.0, 100.0, 4001)[1:]])

SCHEDULES = {
    "progressive": TaxSchedule([0, 20_000, 80_000], [0.1, 0.25, 0.4], deduction=5_000),
    "falling": TaxSchedule([0, 15_000, 60_000], [0.35, 0.1, 0.3]),
}


def _utilities(n):
    rng = np.random.default_rng(3)
    return {
        "log": IsoelasticUtility(),
        "eta2": IsoelasticUtility(eta=2.0, frisch=0.4),
        "per_agent_frisch": IsoelasticUtility(frisch=rng.uniform(0.2, 1.0, n)),
        "quasi_linear": QuasiLinearUtility(psi=0.0005, delta=3.5),
    }


def _brute(schedule, wages, utility: FixedCostUtility, rebate):
    """Best hours over {0} and GRID by direct evaluation, one person at a time."""
    n = wages.size
    best = np.empty(n)
    best_u = np.empty(n)
    for i in range(n):
        z = wages[i] * GRID
        if getattr(schedule, "per_agent", False):  # the components themselves, not the segments
            s = schedule.subset(np.full(GRID.size, i))
            c = z + s.spouse_wages - s.tax(z) + rebate
        else:
            c = z - schedule.tax(z) + rebate
        u_i = subset_utility(utility, [i])
        u = u_i(c, GRID)
        j = int(np.argmax(u))
        best[i], best_u[i] = GRID[j], u[j]
    return best, best_u


def _value(schedule, wages, utility, rebate, hours):
    return utility(take_home(schedule, wages * hours) + rebate, hours)


@pytest.mark.parametrize("sched", sorted(SCHEDULES))
@pytest.mark.parametrize("uname", ["log", "eta2", "per_agent_frisch", "quasi_linear"])
@pytest.mark.parametrize("rebate", [6_000.0, 0.0, -2_500.0])
def test_participation_choice_is_never_beaten_by_brute_force(sched, uname, rebate):
    rng = np.random.default_rng(11)
    n = 60
    wages = np.exp(rng.normal(np.log(600), 0.7, n))
    wages[0] = 0.0
    q = rng.choice([0.0, 2_000.0, 8_000.0, 20_000.0, 45_000.0, np.inf], n)
    base = _utilities(n)[uname]
    if uname == "quasi_linear":
        q = q / 10.0  # its utility is in dollars: keep the choice interesting
    nonwork = rng.choice([0.0, 3_492.0], n) / (10.0 if uname == "quasi_linear" else 1.0)
    u = FixedCostUtility(base, q, nonwork)
    s = SCHEDULES[sched]
    h = best_response(s, wages, u, rebate)
    brute_h, brute_u = _brute(s, wages, u, rebate)
    ours = _value(s, wages, u, rebate, h)
    assert np.all(ours >= brute_u - 1e-9 * np.maximum(1.0, np.abs(brute_u)))
    # the choice to work agrees with brute force wherever the two options are not tied
    assert np.mean((h > 0) == (brute_h > 0)) > 0.95
    assert np.all(h[~np.isfinite(q)] == 0) and h[0] == 0


def _every_household():
    rows = []
    for fs, ch, age in itertools.product((1, 2, 4), range(4), (25, 45, 70)):
        if (fs == 1 and ch > 0) or (fs == 4 and ch == 0):
            continue
        for sw in ((0.0, 30_000.0) if fs == 2 else (0.0,)):
            rows.append((fs, ch, min(ch, 3), age, 40.0 if fs == 2 else 0.0, sw, 2 if sw > 0 else 1))
    a = np.array(rows, dtype=float)
    return Households(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2].astype(int), a[:, 3],
                      a[:, 4], a[:, 5], a[:, 6].astype(int))


@pytest.mark.parametrize("rebate", [0.0, -2_500.0])
def test_participation_choice_in_the_us_world_is_never_beaten(rebate):
    h = _every_household()
    n = len(h)
    b = USTaxBenefit(h, 2024).bind(TaxSchedule.us_federal(2024, "single"))
    rng = np.random.default_rng(5)
    wages = rng.choice([250.0, 450.0, 900.0], n)
    q = rng.choice([0.0, 3_000.0, 9_000.0, 25_000.0], n)
    u = FixedCostUtility(IsoelasticUtility(), q, rng.choice([0.0, 3_492.0], n))
    hours = best_response(b, wages, u, rebate)
    _, brute_u = _brute(b, wages, u, rebate)
    ours = _value(b, wages, u, rebate, hours)
    assert np.all(ours >= brute_u - 1e-9 * np.abs(brute_u))


def test_take_home_and_participation_tax_rate_against_the_components():
    h = _every_household()
    b = USTaxBenefit(h, 2024).bind(TaxSchedule.us_federal(2024, "single"))
    z = np.full(len(h), 18_000.0)
    net1, net0 = b.tax(z), b.tax(np.zeros_like(z))  # the components, not the segments
    np.testing.assert_allclose(participation_tax_rate(b, z), (net1 - net0) / z, atol=1e-9)
    np.testing.assert_allclose(take_home(b, z), z + h.spouse_wages - net1, atol=1e-6)
    # a single parent with two children and low earnings: the EITC makes working pay more
    # than its earnings (a negative participation tax rate)
    i = int(np.flatnonzero((h.filing_status == 4) & (h.children == 2))[0])
    assert participation_tax_rate(b, z)[i] < 0
    s = SCHEDULES["progressive"]
    assert np.isnan(participation_tax_rate(s, np.array([0.0])))[0]
    np.testing.assert_allclose(participation_tax_rate(s, np.array([50_000.0])), s.tax(np.array([50_000.0])) / 5e4)


@pytest.mark.parametrize("uname", ["log", "eta2", "quasi_linear"])
@pytest.mark.parametrize("rebate", [3_000.0, -1_000.0])
def test_reservation_cost_is_where_the_choice_flips(uname, rebate):
    rng = np.random.default_rng(7)
    n = 400
    wages = np.exp(rng.normal(np.log(600), 0.7, n))
    base = _utilities(n)[uname]
    s = SCHEDULES["progressive"]
    nonwork = 2_000.0 if uname != "quasi_linear" else 200.0
    res = reservation_cost(s, wages, base, rebate, nonwork_income=nonwork)
    # independent: bisection on the participation choice itself
    lo, hi = np.zeros(n), np.full(n, 2e6)
    for _ in range(70):
        mid = 0.5 * (lo + hi)
        works = best_response(s, wages, FixedCostUtility(base, mid, nonwork), rebate) > 0
        lo, hi = np.where(works, mid, lo), np.where(works, hi, mid)
    np.testing.assert_allclose(res.cost, 0.5 * (lo + hi), rtol=1e-5, atol=1e-3)
    assert np.all(res.net_gain >= res.cost - 1e-6)  # the gain covers the cost, plus the hours' disutility


def test_consumption_equivalent_inverts_the_consumption_utility():
    c = np.array([500.0, 20_000.0, 90_000.0])
    for u in (IsoelasticUtility(), IsoelasticUtility(eta=2.0), IsoelasticUtility(eta=0.0)):
        np.testing.assert_allclose(_consumption_equivalent(u, u.consumption_utility(c)), c, rtol=1e-10)


def _population(seed, n):
    rng = np.random.default_rng(seed)
    wages = np.exp(rng.normal(np.log(550), 0.65, n))
    cells = rng.integers(0, 4, n)
    targets = np.array([0.55, 0.7, 0.8, 0.9])[cells]
    return wages, cells, targets, rng.standard_normal(n)


def test_calibration_reproduces_targets_and_elasticity():
    s = SCHEDULES["progressive"]
    u = IsoelasticUtility()
    wages, cells, targets, eps = _population(1, 20_000)
    res = reservation_cost(s, wages, u, 0.0)
    cal = calibrate_fixed_costs(res, cells, targets, eps, elasticity=0.25)
    for c in range(4):  # the expected rate is the target: the realised one within sampling error
        m = cells == c
        p = targets[m][0]
        assert abs(cal.employed[m].mean() - p) <= 4 * np.sqrt(p * (1 - p) / m.sum())
    assert abs(cal.employment_rate - cal.target_rate) <= 4 * np.sqrt(0.2 / cells.size)
    assert abs(cal.elasticity - 0.25) < 0.002
    # the expected rates: independent recomputation from the calibrated distribution
    from scipy.stats import norm

    prob = norm.cdf((np.log(np.maximum(res.cost, 1e-300)) - cal.mu[cells]) / cal.sigma)
    for c in range(4):
        assert prob[cells == c].mean() == pytest.approx(targets[cells == c][0], abs=1e-8)
    # the costs reproduce the calibration's employment under the exact choice
    h = best_response(s, wages, FixedCostUtility(u, cal.fixed_cost), 0.0)
    assert np.mean((h > 0) == cal.employed) > 0.9995
    # a larger target elasticity needs less dispersed costs
    cal2 = calibrate_fixed_costs(res, cells, targets, eps, elasticity=0.5)
    assert cal2.sigma < cal.sigma and abs(cal2.elasticity - 0.5) < 0.002


def test_calibrated_elasticity_is_recovered_from_a_simulated_reform():
    """Calibrate on one population; draw a fresh one from the calibrated cost
    distribution; simulate a reform that raises every net gain from working by 10 % (an
    in-work benefit) with full best responses; the arc elasticity's 95 % interval
    holds the calibrated target."""
    s = SCHEDULES["progressive"]
    u = IsoelasticUtility()
    wages, cells, targets, eps = _population(1, 20_000)
    cal = calibrate_fixed_costs(reservation_cost(s, wages, u, 0.0), cells, targets, eps, elasticity=0.25)
    w2, c2, _, e2 = _population(2, 40_000)
    q = np.exp(cal.mu[c2] + cal.sigma * e2)
    h0 = best_response(s, w2, FixedCostUtility(u, q), 0.0)
    # the gain at the hours worked when paying the largest cost at which working pays
    benefit = (REFORM_RATIO - 1.0) * reservation_cost(s, w2, u, 0.0).net_gain
    h1 = best_response(s, w2, FixedCostUtility(u, q - benefit), 0.0)
    el, se = elasticity_value(h0, h1, None)
    assert el - 1.96 * se <= 0.25 <= el + 1.96 * se
    assert 0.1 < el < 0.4


def test_calibration_refuses_bad_targets():
    res = reservation_cost(SCHEDULES["progressive"], np.full(10, 500.0), IsoelasticUtility(), 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibrate_fixed_costs(res, np.zeros(10), np.full(10, 1.5), np.zeros(10))
    with pytest.raises(ValueError, match="no employed person"):
        calibrate_fixed_costs(res, np.zeros(10), np.zeros(10), np.zeros(10))


def test_equilibrium_with_participation_balances_the_budget():
    s = SCHEDULES["progressive"]
    wages, cells, targets, eps = _population(4, 5_000)
    u = IsoelasticUtility()
    cal = calibrate_fixed_costs(reservation_cost(s, wages, u, 0.0), cells, targets, eps)
    fu = FixedCostUtility(u, cal.fixed_cost)
    h, r = equilibrium(s, wages, fu, 1.0)
    assert r > 0
    np.testing.assert_allclose(r, s.tax(wages * h).mean(), rtol=1e-3)
    # a transfer at zero earnings draws some people out of work
    assert (h > 0).mean() < cal.employed.mean()


# --------------------------------------------------------------------------- the model
def _scenario(tmp_path, n=1500, **participation):
    from simulator.config.loading import scenario_from_dict

    pop_path = tmp_path / "pop.parquet"
    if not pop_path.exists():
        base = scenario_from_dict({
            "name": "p", "population": {"size": n, "source": "census"},
            "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement"},
            "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
            "planner": {"kind": "us_federal"}, "workers": {"policy": "rational"}, "run": {"seed": 3}})
        from simulator.sim.population import build_population

        pop = build_population(base.population, np.random.default_rng(0))
        pop["employment_target"] = np.where(pop["age"] < 30, 0.65, 0.82)
        pop["participation_cell"] = (pop["age"] < 30).astype(int)
        pop.to_parquet(pop_path)
    return scenario_from_dict({
        "name": "p", "population": {"source": "file", "path": str(pop_path),
                                    "participation": {"enabled": True, **participation}},
        "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement"},
        "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
        "planner": {"kind": "us_federal"}, "workers": {"policy": "rational"},
        "run": {"seed": 3, "tax_years": 1}})


def test_model_reproduces_employment_targets_and_reports_them(tmp_path):
    from simulator.sim.model import EconomyModel

    m = EconomyModel(_scenario(tmp_path), agent_objects=False)
    rec = m.run_year()
    pop = m.population
    young = (pop["age"] < 30).to_numpy()
    emp = m.hours > 0
    w = pop["weight"].to_numpy(dtype=float)
    # each cell's employment rate is its target, within the draws' sampling error
    for cell, target in ((young, 0.65), (~young, 0.82)):
        n_eff = w[cell].sum() ** 2 / (w[cell] ** 2).sum()
        assert abs(np.average(emp[cell], weights=w[cell]) - target) <= 4 * np.sqrt(target * (1 - target) / n_eff)
    assert rec["employment_rate"] == pytest.approx(np.average(emp, weights=w))
    assert abs(rec["rebate"]) < 1.0  # current law meets the default requirement
    # deciles and household groups: independent recomputation
    wage_rank = pd.Series(m.wages).rank(method="first").to_numpy()
    share_below = np.array([w[wage_rank < r].sum() + 0.5 * w[i] for i, r in enumerate(wage_rank)]) / w.sum()
    d = np.minimum((share_below * 10).astype(int), 9) + 1
    for k in (1, 5, 10):
        assert rec[f"employment_rate_d{k:02d}"] == pytest.approx(np.average(emp[d == k], weights=w[d == k]))
    single = ((pop["filing_status"] == 1) & (pop["children"] == 0) & (pop["eitc_children"] == 0)).to_numpy()
    assert rec["employment_rate_hh_single"] == pytest.approx(np.average(emp[single], weights=w[single]))
    a = m.agents_frame()
    assert {"employed", "participation_tax_rate", "fixed_cost", "potential_earnings"} <= set(a.columns)
    b = m.budget(m.schedule)
    z = a["potential_earnings"].to_numpy()
    ptr = (b.tax(z) - b.tax(np.zeros_like(z))) / z
    np.testing.assert_allclose(a["participation_tax_rate"], ptr, atol=1e-9)
    # the utility counts the fixed cost of those who work
    support = m.settings.population.participation.nonwork_income
    u0 = IsoelasticUtility()(a["post_tax"] - np.where(a["employed"], a["fixed_cost"], -support), a["hours"])
    np.testing.assert_allclose(a["utility"], u0, rtol=1e-12)


def test_calibration_works_for_a_handful_of_people():
    s = SCHEDULES["progressive"]
    wages, cells, targets, eps = _population(9, 16)
    cal = calibrate_fixed_costs(reservation_cost(s, wages, IsoelasticUtility(), 0.0), cells, targets, eps)
    assert abs(cal.elasticity - 0.25) < 0.002 and 0 < cal.employment_rate < 1


def test_model_reads_saved_fixed_costs(tmp_path):
    from simulator.sim.model import EconomyModel

    sc = _scenario(tmp_path)
    m1 = EconomyModel(sc, agent_objects=False)
    m2 = EconomyModel(sc, population=m1.population, agent_objects=False)
    np.testing.assert_array_equal(m2.utility.fixed_cost, m1.utility.fixed_cost)
    np.testing.assert_array_equal(m2.hours, m1.hours)


def test_fixed_cost_scale_moves_employment(tmp_path):
    from simulator.sim.model import EconomyModel

    free = EconomyModel(_scenario(tmp_path, fixed_cost_scale=0.0), agent_objects=False)
    dear = EconomyModel(_scenario(tmp_path, fixed_cost_scale=3.0), agent_objects=False)
    assert (free.hours > 0).mean() > 0.99 > 0.82 > (dear.hours > 0).mean()


def test_bad_participation_input_is_one_line(tmp_path):
    from simulator.errors import UserError
    from simulator.sim.model import EconomyModel

    sc = _scenario(tmp_path)
    pop = pd.read_parquet(tmp_path / "pop.parquet")
    bad = pop.assign(employment_target=pop["employment_target"].where(pop.index != 7, 1.5))
    with pytest.raises(UserError, match=r"'employment_target' row 7: expected a share in \[0, 1\]"):
        EconomyModel(sc, population=bad, agent_objects=False)
    with pytest.raises(UserError, match="no person is employed"):
        EconomyModel(sc, population=pop.assign(employment_target=0.0), agent_objects=False)
    no_target = pop.drop(columns=["employment_target"])
    with pytest.raises(UserError, match="employment_target column"):
        EconomyModel(sc, population=no_target, agent_objects=False)
    # an employed column (survey data) gives each cell its share employed as the target
    rng = np.random.default_rng(0)
    flags = no_target.assign(employed=rng.random(len(pop)) < 0.7)
    m = EconomyModel(sc, population=flags, agent_objects=False)
    young = (flags["participation_cell"] == 1).to_numpy()
    assert m.participation_summary["employment_target"] == pytest.approx(
        np.average(flags["employed"], weights=flags["weight"]))
    with pytest.raises(UserError, match="no person is employed"):
        EconomyModel(sc, population=flags.assign(employed=False), agent_objects=False)
    with pytest.raises(UserError, match=r"'employed' row 3: expected 0 or 1"):
        EconomyModel(sc, population=flags.assign(employed=np.where(np.arange(len(pop)) == 3, 2, 1)),
                     agent_objects=False)
    assert young.any()
    with pytest.raises(UserError, match="fixed_cost_scale"):
        _scenario(tmp_path, fixed_cost_scale=-1.0)



def test_llm_prompt_offers_not_working_and_pooling_carries_the_share(tmp_path):
    from simulator.config.loading import scenario_from_dict
    from simulator.sim.model import EconomyModel
    from simulator.sim.workers.pool_ask import _carry_with_participation
    from simulator.sim.workers.pool_plan import make_plan

    _scenario(tmp_path)
    sc = scenario_from_dict({
        "name": "p", "population": {"source": "file", "path": str(tmp_path / "pop.parquet"), "size": 400,
                                    "participation": {"enabled": True}},
        "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement"},
        "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
        "planner": {"kind": "us_federal"},
        "workers": {"policy": "llm", "llm": {"hour_levels": [20, 40], "pooling": {"budget": 40}}},
        "run": {"seed": 3, "tax_years": 1}, "llm": {"backend": "scripted", "cache": "off"}})
    m = EconomyModel(sc, agent_objects=False)
    pol = m.policy
    part = pol.worker_parts(m, m.schedule, 0.0, np.array([0]))[0]
    assert "\n0 | $" in part and "Working would cost you" in part  # compact layout: hours | tax | take-home
    assert "0 hours: not working" in pol.shared_prefix(m, m.schedule, 0.0, False)
    benefit = np.full(m.n_workers, 1_234.0)
    assert "in-work benefit of $1234" in pol.worker_parts(m, m.schedule, 0.0, np.array([0]), benefit)[0]
    # pooling: representatives answering 0 take their strata out of work
    pc = sc.workers.llm.pooling
    plan = make_plan(m.population, pc, m.weights, m.hours, m.wages, pol.pool_state, "hours", m.rng,
                     scale=m.wages)
    r = plan.reps.size
    rep_hours = np.where(np.arange(r) % 2 == 0, 0.0, 35.0)
    hours, used, _ = _carry_with_participation(m, m.schedule, 0.0, plan, rep_hours, np.ones(r, bool),
                                               m.hours)
    assert used.all()
    # every worker follows its representative's choice to work or not
    works_rep = rep_hours[plan.slot] > 0
    np.testing.assert_array_equal(hours > 0, works_rep)
    assert np.all(hours[works_rep] >= 1)


def test_resume_with_participation_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    """LLM workers (pooled) who may not work: a crash, a resume, the same tables."""
    import os

    from test_checkpoint import assert_same_run

    from simulator.config.loading import scenario_from_dict
    from simulator.run.resume import resume_run
    from simulator.run.runner import run_scenario
    from simulator.sim.model import EconomyModel

    sc = scenario_from_dict({
        "name": "pr", "population": {"size": 300, "source": "census", "participation": {"enabled": True}},
        "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement"},
        "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
        "planner": {"kind": "llm"}, "workers": {"policy": "llm", "llm": {"pooling": {"budget": 60}}},
        "run": {"tax_years": 3, "seed": 4}, "llm": {"backend": "scripted", "cache": "off"}}, "test")
    quiet = open(os.devnull, "w")
    run_scenario(sc, tmp_path / "ref", progress=False, stream=quiet)
    real = EconomyModel.step

    def crash(self):
        if self.year == 2:
            raise RuntimeError("simulated crash")
        real(self)

    monkeypatch.setattr(EconomyModel, "step", crash)
    with pytest.raises(RuntimeError):
        run_scenario(sc, tmp_path / "run", progress=False, stream=quiet)
    monkeypatch.undo()
    resume_run(tmp_path / "run", progress=False, stream=quiet)
    assert_same_run(tmp_path / "run", tmp_path / "ref")
    years = pd.read_parquet(tmp_path / "ref" / "years.parquet")
    assert {"employment_rate", "participation_sigma", "not_working_replies"} <= set(years.columns)
    assert "fixed_cost" in pd.read_parquet(tmp_path / "ref" / "population.parquet").columns


def test_minimum_hours_keep_not_working_as_zero(tmp_path):
    """With a job's minimum hours, a person works at least that or not at all, exactly."""
    from simulator.config.loading import scenario_from_dict
    from simulator.sim.model import EconomyModel

    _scenario(tmp_path)
    sc = scenario_from_dict({
        "name": "p", "population": {"source": "file", "path": str(tmp_path / "pop.parquet"),
                                    "participation": {"enabled": True}},
        "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement", "hours_bounds": [10, 60]},
        "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
        "planner": {"kind": "us_federal"}, "workers": {"policy": "rational"}, "run": {"seed": 3}})
    m = EconomyModel(sc, agent_objects=False)
    m.run_year()
    h = m.hours
    assert (h == 0).any() and ((h == 0) | ((h >= 10) & (h <= 60))).all()
    # exact against brute force over {0} and [10, 60]
    s = SCHEDULES["progressive"]
    rng = np.random.default_rng(2)
    wages = np.exp(rng.normal(np.log(500), 0.7, 40))
    u = FixedCostUtility(IsoelasticUtility(), rng.choice([0.0, 5_000.0, 30_000.0], 40), 3_492.0)
    ours = best_response(s, wages, u, 0.0, (10.0, 60.0))
    grid = np.concatenate([[0.0], np.linspace(10, 60, 2001)])
    for i in range(40):
        c = wages[i] * grid - s.tax(wages[i] * grid)
        ui = subset_utility(u, [i])
        best = ui(c, grid).max()
        mine = ui(np.array([wages[i] * ours[i] - s.tax(np.array([wages[i] * ours[i]]))[0]]), np.array([ours[i]]))[0]
        assert mine >= best - 1e-9 * abs(best)


def test_elasticity_check_needs_a_measurable_response():
    from simulator.validity import OUTSIDE, WITHIN
    from simulator.validity.participation import elasticity_check, employment_check

    rng = np.random.default_rng(0)
    h0 = np.where(rng.random(4000) < 0.7, 40.0, 0.0)
    moved = (h0 == 0) & (rng.random(4000) < 0.06)  # about 6 % of non-workers start: ~0.25
    h1 = np.where(moved, 40.0, h0)
    ok = elasticity_check(h0, h1, None, 0.25)
    assert ok.verdict == WITHIN and ok.ci_low > 0
    # a handful of people: an interval that holds 0 is no evidence of a response
    noisy = elasticity_check(h0[:30], np.where(np.arange(30) == 3, 40.0, h0[:30]), None, 0.25)
    assert noisy.ci_low <= 0 and noisy.verdict == OUTSIDE and "includes 0" in noisy.detail
    emp = employment_check(h0, 0.70, None, 0.0)
    assert emp.verdict == WITHIN and abs(emp.value - ((h0 > 0).mean() - 0.70)) < 1e-12
