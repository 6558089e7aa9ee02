"""The us_current_law world in the simulation: accounting identities, totals that count
each tax unit once, the revenue-requirement fiscal rule's fixed point, reforms, and the
income-tax-only world left as it was."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from simulator.config.loading import scenario_from_dict
from simulator.economy.best_response import best_response, equilibrium
from simulator.economy.outcome import evaluate
from simulator.economy.tax import TaxSchedule
from simulator.economy.taxbenefit.system import Households, USTaxBenefit
from simulator.economy.utility import IsoelasticUtility
from simulator.sim.model import EconomyModel


def us(size=1500, years=1, **economy):
    eco = {"world": "us_current_law", "fiscal_rule": "revenue_requirement", **economy}
    return scenario_from_dict({
        "name": "us_test",
        "population": {"size": size, "source": "census"},
        "economy": eco,
        "planner": {"kind": "us_federal"},
        "workers": {"policy": "rational"},
        "run": {"tax_years": years, "seed": 11},
    })


@pytest.fixture(scope="module")
def model():
    m = EconomyModel(us(), agent_objects=False)
    m.run()
    return m


def test_accounting_identities_per_worker(model):
    a = model.agents_frame()
    np.testing.assert_allclose(a.net_tax, a.income_tax + a.payroll_tax, atol=1e-6)
    np.testing.assert_allclose(
        a.income_tax,
        a.income_tax_before_credits - a.elderly_credit - a.ctc - a.actc - a.eitc, atol=1e-6)
    np.testing.assert_allclose(a.post_tax, a.pre_tax + a.spouse_wages - a.net_tax + a.rebate, atol=1e-6)
    share = np.where(model.population["unit_earners"].to_numpy() == 2, 0.5, 1.0)
    np.testing.assert_allclose(a.tax, a.net_tax * share, atol=1e-6)
    # households came from the population, and some workers get each credit
    assert set(a.filing_status.unique()) <= {1, 2, 3, 4} and (a.filing_status == 2).any()
    assert (a.eitc > 0).any() and (a.actc > 0).any() and (a.ctc > 0).any()


def test_year_totals_count_each_unit_once(model):
    a = model.agents_frame()
    rec = model.history[-1]
    w = model.weights if model.weights is not None else np.ones(len(a))
    share = 1.0 / model.population["unit_earners"].to_numpy()
    for col, key in (("eitc", "eitc_cost"), ("ctc", "ctc_cost"), ("actc", "actc_cost"),
                     ("payroll_tax", "payroll_revenue"), ("income_tax", "income_tax_revenue")):
        assert rec[key] == pytest.approx(np.dot(w, a[col] * share) / w.sum(), rel=1e-9)
    assert rec["eitc_recipients"] == pytest.approx(np.dot(w, (a.eitc > 0) * share) / w.sum())
    assert rec["revenue"] == pytest.approx(rec["income_tax_revenue"] + rec["payroll_revenue"], rel=1e-9)


def test_revenue_requirement_at_current_law_returns_about_nothing(model):
    rec = model.history[-1]
    # the requirement is current law's revenue at the rational hours with no transfer, so
    # the fixed point under current law is a zero transfer
    assert rec["revenue_requirement"] == pytest.approx(rec["revenue"], rel=1e-6)
    assert abs(rec["rebate"]) < 1.0


def test_a_lower_tax_is_paid_for_lump_sum_and_the_transfer_is_a_fixed_point():
    m = EconomyModel(us(size=800), agent_objects=False)
    sched = m.base_schedule.with_rates(np.array(m.base_schedule.rates) * 0.5)
    b = m.budget(sched)
    h, r = equilibrium(b, m.wages, m.utility, m.rebate_share, m.hours_bounds, m.weights,
                       requirement=m.revenue_requirement)
    assert r < -100.0  # a shortfall collected lump-sum
    out = m.evaluate(sched, h)
    assert out.rebate == pytest.approx(r, abs=1e-3)
    # and the hours are the best response to that transfer
    np.testing.assert_allclose(h, best_response(b, m.wages, m.utility, r, m.hours_bounds), atol=1e-9)


def test_scalar_equilibrium_with_a_requirement_is_a_fixed_point():
    rng = np.random.default_rng(2)
    n = 600
    h = Households(np.full(n, 1), np.zeros(n, int), np.zeros(n, int), np.full(n, 40.0),
                   np.zeros(n), np.zeros(n), np.ones(n, int))
    wages = rng.lognormal(np.log(900), 0.7, n)
    u = IsoelasticUtility()
    b = USTaxBenefit(h, 2024).bind(TaxSchedule.us_federal(2024, "single"))
    for req in (0.0, 5_000.0, 30_000.0):
        hours, reb = equilibrium(b, wages, u, requirement=req)
        out = evaluate(b, wages, hours, u, requirement=req)
        assert out.rebate == pytest.approx(reb, abs=1e-3 + 1e-6 * abs(reb))


def test_a_bigger_eitc_costs_more_and_pays_the_same_people():
    base = EconomyModel(us(size=800, fiscal_rule="rebate_all"), agent_objects=False)
    more = EconomyModel(us(size=800, fiscal_rule="rebate_all", reform={"eitc_scale": 1.5}),
                        agent_objects=False)
    z = base.wages * 35.0
    e0 = base.budget(base.schedule).components(z)["eitc"]
    e1 = more.budget(more.schedule).components(z)["eitc"]
    np.testing.assert_allclose(e1, 1.5 * e0, rtol=1e-12)
    off = EconomyModel(us(size=200, reform={"payroll_tax": False}), agent_objects=False)
    c = off.budget(off.schedule).components(off.wages * 40.0)
    assert np.all(c["payroll_tax"] == 0) and np.all(c["payroll_tax_employer"] == 0)


def test_the_income_tax_only_world_is_unchanged():
    sc = scenario_from_dict({"name": "paper", "population": {"size": 50, "source": "census"},
                             "workers": {"policy": "rational"}, "planner": {"kind": "us_federal"},
                             "run": {"tax_years": 1, "seed": 3}})
    m = EconomyModel(sc, agent_objects=False)
    assert m.world is None and m.budget(m.schedule) is m.schedule and m.revenue_requirement == 0.0
    m.run()
    assert "eitc_cost" not in m.history[-1] and "eitc" not in m.agents_frame().columns


@pytest.mark.parametrize("override", [
    "economy.reform.eitc_scale=-1", "economy.reform.ctc_per_child=99999999",
    "economy.world=mars", "economy.fiscal_rule=spend_it_all", "economy.revenue_requirement=-5",
])
def test_bad_world_settings_are_one_line_exit_2(override, tmp_path):
    r = subprocess.run([sys.executable, "-m", "simulator.cli.main", "validate", "quickstart",
                        "--set", override], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and override.split("=")[0].split(".")[-1] in lines[0], r.stderr
