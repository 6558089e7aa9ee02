"""The us_current_law budget: compiled segments equal the components, the exact best
response on it is never beaten by brute force over a fine hours grid (every household
type), the planner's brackets map onto every filing status, and reforms apply."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.economy.best_response import CHUNK, best_response
from simulator.economy.tax import TaxSchedule
from simulator.economy.taxbenefit import components
from simulator.economy.taxbenefit.params import load
from simulator.economy.taxbenefit.system import (
    Households,
    Reform,
    ReformError,
    USTaxBenefit,
    schedule_params,
)
from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility, subset_utility

YEARS = (2023, 2024, 2025, 2026)


def every_type() -> Households:
    """Every household type the components distinguish, with a few spouse wages."""
    rows = []
    for fs, ch, age in itertools.product((1, 2, 3, 4), range(5), (22, 40, 70)):
        if fs == 1 and ch > 0:
            continue
        if fs == 4 and ch == 0:
            continue
        spouses = [(0.0, 0.0)] if fs != 2 else [(0.0, 38.0), (18_000.0, 23.0), (65_000.0, 67.0),
                                                 (250_000.0, 45.0)]
        for sw, sa in spouses:
            rows.append((fs, ch, min(ch, 3), age, sa, sw, 2 if sw > 0 else 1))
    a = np.array(rows, dtype=float)
    return Households(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2].astype(int), a[:, 3],
                      a[:, 4], a[:, 5], a[:, 6].astype(int))


@pytest.mark.parametrize("year", YEARS)
def test_segments_equal_the_components_everywhere(year):
    h = every_type()
    system = USTaxBenefit(h, year)
    rng = np.random.default_rng(year)
    for sched in (TaxSchedule.us_federal(year, "single"),
                  TaxSchedule.us_federal(year, "single").with_rates([0.4, 0.05, 0.3, 0.1, 0.5, 0.2, 0.6])):
        b = system.bind(sched)
        tab = b.segment_table
        n = len(h)
        for z in (rng.uniform(0, 60_000, (20, n)), rng.uniform(0, 900_000, (20, n)),
                  tab.agent_segments()["lower"].T):
            for row in z:
                row = np.where(np.isfinite(row), row, 0.0)
                for dz in (-1.0, 0.0, 1.0):
                    zz = np.maximum(row + dz, 0.0)
                    np.testing.assert_allclose(tab.net_tax(zz), b.tax(zz), atol=1e-3)


def _brute(b, wages, utility, rebate, grid):
    n = wages.size
    best = np.empty(n)
    best_u = np.empty(n)
    for i in range(n):
        z = wages[i] * grid
        bb = b.subset(np.full(grid.size, i))
        c = z + bb.spouse_wages - bb.tax(z) + rebate
        u = subset_utility(utility, [i])(c, grid) if np.ndim(getattr(utility, "frisch", 0)) else utility(c, grid)
        j = int(np.argmax(u))
        best[i], best_u[i] = grid[j], u[j]
    return best, best_u


@pytest.mark.parametrize("utility_name", ["log", "eta2_per_agent", "quasi_linear"])
@pytest.mark.parametrize("rebate", [0.0, 6_000.0, -2_500.0])
def test_best_response_beats_brute_force_for_every_household_type(utility_name, rebate):
    h = every_type()
    n = len(h)
    rng = np.random.default_rng(7)
    # three wages per type: low (EITC phase-in), middle (phase-out), high
    idx = np.repeat(np.arange(n), 3)
    hh = h.take(idx)
    wages = np.tile([180.0, 600.0, 2_500.0], n) * rng.uniform(0.8, 1.25, idx.size)
    utility = {
        "log": IsoelasticUtility(),
        "eta2_per_agent": IsoelasticUtility(eta=2.0, frisch=rng.uniform(0.2, 1.0, idx.size)),
        "quasi_linear": QuasiLinearUtility(),
    }[utility_name]
    system = USTaxBenefit(hh, 2024)
    b = system.bind(TaxSchedule.us_federal(2024, "single"))
    hours = best_response(b, wages, utility, rebate)
    grid = np.linspace(0.0, 100.0, 4001)
    _, brute_u = _brute(b, wages, utility, rebate, grid)
    c = wages * hours + b.spouse_wages - b.tax(wages * hours) + rebate
    u = np.array([subset_utility(utility, [i])(c[i:i + 1], hours[i:i + 1])[0] for i in range(idx.size)])
    assert np.all(u >= brute_u - 1e-9 * np.maximum(1.0, np.abs(brute_u)))
    assert np.all((hours >= 0) & (hours <= 100))


@pytest.mark.parametrize("year", YEARS)
def test_statutory_schedule_reproduces_the_law_for_every_status(year):
    law = load(year)
    p = schedule_params(law, TaxSchedule.us_federal(year, "single"))
    ti = np.linspace(0, 1_500_000, 3001)
    for fs in (1, 2, 3, 4):
        np.testing.assert_allclose(components.bracket_tax(ti, np.full(ti.size, fs), p),
                                   components.bracket_tax(ti, np.full(ti.size, fs), law), atol=1e-6)


def test_planner_rates_are_the_income_tax_lever():
    sched = TaxSchedule.us_federal(2024, "single")
    p = schedule_params(load(2024), sched.with_rates([0.0] * 7))
    h = every_type()
    b = USTaxBenefit(h, 2024).bind(sched.with_rates([0.0] * 7))
    c = b.components(np.full(len(h), 80_000.0))
    assert np.all(c["income_tax_before_credits"] == 0)
    assert np.all(p.II_rt == 0)


def test_reforms_apply_and_bad_reforms_are_refused():
    law = load(2024)
    twice = Reform(eitc_scale=2.0).apply(law)
    args = (10_000.0, 10_000.0, 4, 2, 35, 0)
    assert components.eitc(*args, twice) == pytest.approx(2 * components.eitc(*args, law))
    no_payroll = Reform(payroll_tax=False).apply(law)
    assert components.payroll_tax_employee(50_000.0, 0.0, 1, no_payroll) == 0
    assert Reform(ctc_per_child=3_000.0).apply(law).CTC_c == 3_000.0
    assert Reform().is_current_law
    for bad in ({"eitc_scale": -1}, {"eitc_scale": float("nan")}, {"ctc_per_child": -5},
                {"actc_per_child": 1e9}):
        with pytest.raises(ReformError):
            Reform(**bad)


def test_a_two_earner_couple_carries_half_its_units_amounts():
    h = every_type()
    b = USTaxBenefit(h, 2024).bind(TaxSchedule.us_federal(2024, "single"))
    z = np.full(len(h), 30_000.0)
    np.testing.assert_allclose(b.attributed_tax(z) * h.unit_earners, b.tax(z))


@pytest.mark.parametrize("n", [CHUNK - 1, CHUNK + 1, 2 * CHUNK + 1])
def test_every_block_of_workers_is_solved(n):
    """Blocks of CHUNK workers: each worker's hours equal a solve of that worker alone
    (the block boundaries, the thread pool and a partial last block change nothing)."""
    rng = np.random.default_rng(n)
    h = every_type()
    idx = rng.integers(0, len(h), n)
    wages = rng.lognormal(np.log(900), 0.8, n)
    b = USTaxBenefit(h.take(idx), 2024).bind(TaxSchedule.us_federal(2024, "single"))
    u = IsoelasticUtility()
    hours = best_response(b, wages, u, 1_000.0)
    probe = np.unique(np.concatenate([[0, n - 1, CHUNK - 1], rng.integers(0, n, 40),
                                      np.arange(CHUNK - 2, min(CHUNK + 3, n))]))
    probe = probe[probe < n]
    alone = best_response(b.subset(probe), wages[probe], u, 1_000.0)
    np.testing.assert_allclose(hours[probe], alone, atol=1e-9)
    assert np.all(np.isfinite(hours)) and np.all((hours >= 0) & (hours <= 100))


def test_marginal_rate_is_the_right_derivative_of_the_components():
    """The segments' rate equals a finite difference of the components (independent of
    the compile) wherever no kink lies within the step, and known statutory rates."""
    h = every_type()
    b = USTaxBenefit(h, 2024).bind(TaxSchedule.us_federal(2024, "single"))
    rng = np.random.default_rng(5)
    for _ in range(20):
        z = rng.uniform(0, 400_000, len(h))
        dz = 0.5
        fd = (b.tax(z + dz) - b.tax(z)) / dz
        mr = b.marginal_rate(z)
        tab = b.segment_table
        near = np.array([np.any((tab.kinks(i) > z[i]) & (tab.kinks(i) <= z[i] + dz)) for i in range(len(h))])
        np.testing.assert_allclose(mr[~near], fd[~near], atol=1e-6)
    # 2024: single 40 at $30,000 is in the 12 % bracket plus 7.65 % payroll, EITC phased out
    one = Households(np.array([1, 4]), np.array([0, 2]), np.array([0, 2]), np.array([40.0, 35.0]),
                     np.zeros(2), np.zeros(2), np.ones(2, int))
    bb = USTaxBenefit(one, 2024).bind(TaxSchedule.us_federal(2024, "single"))
    np.testing.assert_allclose(bb.marginal_rate(np.array([30_000.0, 30_000.0])),
                               [0.12 + 0.0765, 0.2106 + 0.10 + 0.0765], atol=1e-9)
