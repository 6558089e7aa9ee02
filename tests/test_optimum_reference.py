"""The optimum against an independent reference, and the batch solvers against the
single ones.

The reference is separate code: its own tax function, its own worker solve (bisection on
the first-order condition along every linear segment of the budget, the best segment
picked), its own rebate (fixed-point iteration ``R <- mean T(R)``), its own welfare, and
a brute-force optimiser (a grid of every rate pair, refined twice around the best).  On
a small population and a two-bracket schedule with a deduction (so candidate budgets are
non-convex wherever the top rate is below the bottom one) the library's optimum must
match it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.economy.best_response import (
    best_response,
    best_response_batch,
    equilibrium,
    equilibrium_batch,
    tax_batch,
)
from simulator.economy.optimum import optimal_schedule, welfare_of_rates, welfare_of_rates_batch
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility

THRESHOLDS = (0.0, 40_000.0)
DEDUCTION = 10_000.0
HOURS = (0.0, 100.0)


# --------------------------------------------------------------------------- reference
# Every function takes m candidate rate pairs at once: rates (m, 2), incomes (m, n).
def ref_tax(z, rates):
    """Tax on gross income z: rate k on the taxable income inside bracket k."""
    x = np.maximum(np.asarray(z, float) - DEDUCTION, 0.0)
    edges = list(THRESHOLDS) + [np.inf]
    return sum(rates[:, k:k + 1] * np.clip(x - edges[k], 0.0, edges[k + 1] - edges[k])
               for k in range(len(THRESHOLDS)))


def ref_utility(c, l, eta, e, psi):
    p = 1.0 + 1.0 / e
    cons = np.log(np.maximum(c, 1.0)) if eta == 1.0 else c - 1.0
    return cons - psi * l**p / p


def ref_hours(w, rates, rebate, eta, e, psi):
    """Each worker's best hours: on every segment of gross income (0 % below the
    deduction, then each bracket) utility is concave in hours, so bisection on its
    derivative gives the segment's best point; the best segment wins."""
    edges = np.array([0.0, DEDUCTION, DEDUCTION + THRESHOLDS[1], np.inf])
    seg_rates = np.hstack([np.zeros((len(rates), 1)), rates])
    reb = np.asarray(rebate, float).reshape(-1, 1)
    shape = (len(rates), w.size)
    best_l, best_u = np.zeros(shape), np.full(shape, -np.inf)
    for j in range(3):
        a = np.broadcast_to(np.clip(edges[j] / w, *HOURS), shape)
        b = np.broadcast_to(np.clip(edges[j + 1] / w, *HOURS), shape)
        net = w * (1.0 - seg_rates[:, j:j + 1])

        def d_utility(l, net=net):
            c = w * l - ref_tax(w * l, rates) + reb
            u_c = 1.0 / np.maximum(c, 1.0) if eta == 1.0 else 1.0
            return u_c * net - psi * l ** (1.0 / e)

        lo, hi = a.copy(), b.copy()
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            up = d_utility(mid) > 0
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        l = np.where(d_utility(a) <= 0, a, np.where(d_utility(b) >= 0, b, 0.5 * (lo + hi)))
        u = ref_utility(w * l - ref_tax(w * l, rates) + reb, l, eta, e, psi)
        u = np.where(b > a, u, -np.inf)
        better = u > best_u
        best_l, best_u = np.where(better, l, best_l), np.where(better, u, best_u)
    return best_l


def ref_welfare(rates, w, pop, eta, e, psi, swf):
    """Welfare of each candidate; the rebate by fixed-point iteration R <- mean T(R)
    (a contraction: the income effect on taxes is well below one dollar per dollar)."""
    rates = np.atleast_2d(rates)
    pop = pop / pop.sum()
    rebate = np.zeros(len(rates))
    for _ in range(200):
        new = ref_tax(w * ref_hours(w, rates, rebate, eta, e, psi), rates) @ pop
        if np.max(np.abs(new - rebate)) < 1e-9:
            break
        rebate = new
    rebate = new
    l = ref_hours(w, rates, rebate, eta, e, psi)
    z = w * l
    u = ref_utility(z - ref_tax(z, rates) + rebate[:, None], l, eta, e, psi)
    if swf == "utilitarian":
        return u @ pop
    g = pop / np.maximum(z, 1_000.0)  # inverse_income, floor $1,000
    return (g * u).sum(axis=1) / g.sum(axis=1)


def brute_force(f):
    """Best rate pair on a 0.05 grid of [0, 1]^2, refined on 0.01 and 0.002 grids."""
    centre = None
    for step, half in ((0.05, None), (0.01, 5), (0.002, 5)):
        if half is None:
            axes = [np.linspace(0, 1, 21)] * 2
        else:
            axes = [np.clip(c + step * np.arange(-half, half + 1), 0, 1) for c in centre]
        grid = np.array(list(itertools.product(*axes)))
        vals = f(grid)
        centre, best = grid[np.argmax(vals)], float(vals.max())
    return centre, best


CASES = {
    # log utility (income effects: the rebate is a fixed point), utilitarian, equal weights
    "log_utilitarian": dict(eta=1.0, swf="utilitarian", weighted=False),
    # no income effects, inverse-income weights, survey weights
    "linear_inverse_income": dict(eta=0.0, swf="inverse_income", weighted=True),
}


@pytest.mark.parametrize("case", CASES)
def test_optimum_matches_a_brute_force_reference(case):
    eta, swf, weighted = CASES[case]["eta"], CASES[case]["swf"], CASES[case]["weighted"]
    rng = np.random.default_rng(20)
    n, e = 40, 0.5
    w = rng.lognormal(np.log(900.0), 0.8, n)
    pop = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    psi = 40.0**-3 if eta == 1.0 else 1000.0 * 40.0**-2  # 40 h at net wage $1,000
    util = IsoelasticUtility(eta=eta, frisch=e, psi=psi)
    sched = TaxSchedule(THRESHOLDS, [0.2, 0.3], deduction=DEDUCTION)

    ref_x, ref_w = brute_force(lambda x: ref_welfare(x, w, pop, eta, e, psi, swf))
    res = optimal_schedule(sched, w, util, objective=swf, weights=pop if weighted else None,
                           max_evaluations=1500)
    x = res.schedule.rate_array
    # the library's welfare of its optimum is the reference's welfare of the same rates
    assert ref_welfare(x, w, pop, eta, e, psi, swf)[0] == pytest.approx(res.welfare, abs=1e-8)
    # and it is at least the brute force's best, with the same rates
    assert res.welfare >= ref_w - 1e-9
    np.testing.assert_allclose(x, ref_x, atol=0.01)


# --------------------------------------------------------------------------- batch solvers
def _candidates(rng, k):
    rising = np.sort(rng.random((6, k)), axis=1)
    return np.vstack([rng.random((10, k)), rising, np.full((1, k), 0.3), np.zeros((1, k)),
                      np.ones((1, k))])


@pytest.mark.parametrize("utility", [
    IsoelasticUtility(),  # log utility
    IsoelasticUtility(eta=2.0, frisch=0.4),
    IsoelasticUtility(eta=0.0, frisch=0.3),
    QuasiLinearUtility(psi=2.0, delta=2.5),
], ids=["log", "crra2", "linear", "quasi_linear"])
def test_batch_solvers_equal_the_single_ones(utility):
    rng = np.random.default_rng(3)
    w = np.concatenate([rng.lognormal(np.log(1_200), 0.9, 700), [0.0, 5.0, 1e5]])
    sched = TaxSchedule.us_federal(2024, standard_deduction=True)
    rates = _candidates(rng, sched.n_brackets)
    bounds = (0.0, 100.0)
    hb = best_response_batch(sched, rates, w, utility, 7_000.0, bounds)
    for i, r in enumerate(rates):
        s = sched.with_rates(r)
        np.testing.assert_allclose(hb[i], best_response(s, w, utility, 7_000.0, bounds), atol=1e-7)
    np.testing.assert_allclose(tax_batch(sched, rates, w[None, :] * hb),
                               [sched.with_rates(r).tax(w * h) for r, h in zip(rates, hb, strict=True)], rtol=1e-12)
    he, reb = equilibrium_batch(sched, rates, w, utility, 1.0, bounds)
    warm_he, warm_reb = equilibrium_batch(sched, rates, w, utility, 1.0, bounds, rebate_guess=reb * 1.01)
    same = []  # candidates where both solvers found the same fixed point
    for i, r in enumerate(rates):
        h1, r1 = equilibrium(sched.with_rates(r), w, utility, 1.0, bounds)
        same.append(abs(reb[i] - r1) <= max(1e-5, 1e-9 * r1))
        s = sched.with_rates(r)
        if s.is_progressive:  # a unique fixed point: the same rebate and hours
            assert reb[i] == pytest.approx(r1, rel=1e-9, abs=1e-5)
            assert warm_reb[i] == pytest.approx(r1, rel=1e-9, abs=1e-5)
            np.testing.assert_allclose(he[i], h1, atol=1e-6)
            continue
        # falling rates: a worker's choice can jump with the rebate, and the fixed point
        # then sits on the jump; the batch rebates are on it (the gap changes sign there)
        for rb in (reb[i], warm_reb[i]):
            def gap(x, s=s):
                return np.mean(s.tax(w * best_response(s, w, utility, x, bounds))) - x
            g = gap(rb)
            assert abs(g) <= max(1e-6, 1e-9 * rb) or gap(rb - 1e-3) > 0 > gap(rb + 1e-3), (i, rb, g)
    vals, _ = welfare_of_rates_batch(rates, sched, w, utility, "utilitarian", hours_bounds=bounds)
    single = [welfare_of_rates(r, sched, w, utility, "utilitarian", hours_bounds=bounds) for r in rates]
    assert sum(same) >= len(rates) - 2
    np.testing.assert_allclose(vals[same], np.array(single)[same], rtol=1e-9, atol=1e-9)


def test_batch_best_response_with_per_agent_parameters_and_an_hours_floor():
    rng = np.random.default_rng(5)
    n = 400
    w = rng.lognormal(np.log(1_000), 0.7, n)
    util = IsoelasticUtility(eta=1.0, frisch=rng.uniform(0.2, 0.9, n))
    sched = TaxSchedule([0, 20_000, 80_000], [0.1, 0.4, 0.2])
    rates = _candidates(rng, 3)
    hb = best_response_batch(sched, rates, w, util, 3_000.0, (10.0, 60.0))
    for i, r in enumerate(rates):
        np.testing.assert_allclose(
            hb[i], best_response(sched.with_rates(r), w, util, 3_000.0, (10.0, 60.0)), atol=1e-7)
