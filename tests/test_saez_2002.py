"""Saez (2002): optimal taxes with intensive and extensive (participation) margins.

Checked against independent calculations: the intensive-only discrete formula, Saez's
extensive-only closed form, and the numerical optimum of explicit discrete-choice
economies (solved here with scipy from their primitives, not from the formula).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import integrate, optimize, special

from simulator.economy.saez import (
    saez_2002_bracket_rates,
    saez_2002_taxes,
    saez_bracket_rates,
)
from simulator.economy.tax import TaxSchedule
from simulator.sim.planners import saez as saez_planner_module
from simulator.sim.planners.saez import SaezPlanner
from simulator.sim.stats import YearStats

# a stylised economy of Saez's kind: non-workers, three working occupations (dollars a year)
Z = np.array([0.0, 12_000.0, 30_000.0, 60_000.0])
H = np.array([0.15, 0.25, 0.35, 0.25])
G = np.array([2.4, 1.3, 0.7, 0.35])  # falling with earnings; normalised inside


def normalised(h, g):
    hs = h / h.sum()
    return hs, g / np.dot(hs, g)


# ------------------------------------------------------------------ eta = 0 and eta -> the extensive limit
def test_eta_zero_is_the_intensive_only_discrete_formula():
    """With eta = 0: (T_i - T_{i-1}) / (c_i - c_{i-1}) = A_i with
    A_i = sum_{j >= i} h_j (1 - g_j) / (zeta_i h_i), so the marginal rate is A_i / (1 + A_i);
    computed here term by term, and T_0 from the budget sum_j h_j T_j = E."""
    zeta = np.array([0.3, 0.5, 0.4])
    hs, gn = normalised(H, G)
    expected_m = []
    for i in range(1, 4):
        a = sum(hs[j] * (1 - gn[j]) for j in range(i, 4)) / (zeta[i - 1] * hs[i])
        expected_m.append(a / (1 + a))
    expected_m = np.array(expected_m)
    res = saez_2002_taxes(Z, H, G, zeta, 0.0, revenue=2_000.0)
    assert res.converged and res.method == "closed form"
    np.testing.assert_allclose(res.marginal_rates, expected_m, rtol=1e-12)
    # taxes from the marginal rates, T_0 from the budget
    steps = expected_m * np.diff(Z)
    t0 = 2_000.0 - sum(hs[i] * steps[:i].sum() for i in range(1, 4))
    np.testing.assert_allclose(res.taxes, t0 + np.concatenate([[0.0], np.cumsum(steps)]), rtol=1e-12)
    assert np.dot(hs, res.taxes) == pytest.approx(2_000.0)
    assert res.guaranteed_income == pytest.approx(-t0)
    # the iterative solver agrees as eta -> 0
    tiny = saez_2002_taxes(Z, H, G, zeta, 1e-9, revenue=2_000.0)
    assert tiny.method != "closed form" and tiny.converged
    np.testing.assert_allclose(tiny.marginal_rates, expected_m, atol=1e-7)


def test_extensive_limit_is_saez_closed_form():
    """As zeta -> 0 every condition i holds only if each term of the sum vanishes, so
    (T_i - T_0) / (c_i - c_0) -> (1 - g_i) / eta_i (Saez 2002's extensive-only result)."""
    eta = np.array([1.5, 0.8, 0.5])
    hs, gn = normalised(H, G)
    res = saez_2002_taxes(Z, H, G, 1e-5, eta)
    assert res.converged
    t, c = res.taxes, Z - res.taxes
    ratio = (t[1:] - t[0]) / (c[1:] - c[0])
    # the gap is made of the zeta_i h_i (T_i - T_{i-1}) / (c_i - c_{i-1}) terms over
    # eta_i h_i: O(zeta * ratio / eta), a few 1e-5 here
    np.testing.assert_allclose(ratio, (1 - gn[1:]) / eta, atol=1e-3)
    assert ratio[0] < 0  # g_1 > 1: a participation subsidy


def test_eitc_with_participation_nit_without():
    """The key result: with g_1 > 1 and responses concentrated on the extensive margin (a
    large participation elasticity at the bottom, small intensive ones) the optimal
    participation tax rate of the lowest occupation is negative (an EITC: a negative
    marginal rate from not working to working); with eta = 0 it is positive, with a
    guaranteed income taxed away at high rates (a negative income tax)."""
    hs, gn = normalised(H, G)
    assert gn[1] > 1
    nit = saez_2002_taxes(Z, H, G, 0.4, 0.0)
    assert nit.participation_tax_rates[0] > 0.3
    assert np.all(nit.marginal_rates > 0)
    assert nit.guaranteed_income > 0
    zeta, eta = 0.05, np.array([2.0, 0.5, 0.5])
    eitc = saez_2002_taxes(Z, H, G, zeta, eta)
    assert eitc.converged
    assert eitc.participation_tax_rates[0] < 0
    assert eitc.marginal_rates[0] < 0  # phase-in
    assert eitc.marginal_rates[1] > 0  # phase-out
    assert 0 < eitc.guaranteed_income < nit.guaranteed_income
    # every condition holds at the returned taxes (recomputed here, not read back)
    t, c = eitc.taxes, Z - eitc.taxes
    for i in range(1, 4):
        lhs = (t[i] - t[i - 1]) / (c[i] - c[i - 1])
        rhs = sum(hs[j] * (1 - gn[j] - eta[j - 1] * (t[j] - t[0]) / (c[j] - c[0]))
                  for j in range(i, 4)) / (zeta * hs[i])
        assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9)


def test_solver_on_many_random_economies():
    """Random sufficient statistics (weights falling with earnings): every solve converges
    and satisfies the conditions and the budget, recomputed here."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        z = np.concatenate([[0.0], np.cumsum(rng.uniform(1e3, 5e4, n))])
        h = rng.uniform(0.01, 1, n + 1)
        g = np.sort(rng.uniform(0, 4, n + 1))[::-1]
        zeta, eta = rng.uniform(0.05, 1.5, n), rng.uniform(0, 4, n)
        rev = float(rng.uniform(0, 10_000))
        res = saez_2002_taxes(z, h, g, zeta, eta, revenue=rev)
        assert res.converged, (z, h, g, zeta, eta)
        hs, gn = normalised(h, g)
        t, c = res.taxes, z - res.taxes
        assert np.all(np.diff(c) > 0)
        p = (t[1:] - t[0]) / (c[1:] - c[0])
        rhs = np.cumsum((hs[1:] * (1 - gn[1:] - eta * p))[::-1])[::-1] / (zeta * hs[1:])
        np.testing.assert_allclose(np.diff(t) / np.diff(c), rhs, rtol=1e-7, atol=1e-7)
        assert np.dot(hs, t) == pytest.approx(rev, abs=1e-6 * z[-1])


# ------------------------------------------------------------------ brute force: an explicit economy
class DiscreteChoiceEconomy:
    """An explicit economy of occupations ``z_0 = 0 < ... < z_I`` (thousands of dollars).

    People have quasi-linear utility (consumption less a cost), so there are no income
    effects.  Groups: ``A`` people who never work (occupation 0); for each ``i >= 1``,
    ``N_i`` *participants* who work in ``i`` iff ``c_i - c_0 >= q`` (logistic cost ``q``,
    location ``muP_i``, scale ``sP_i``), else not at all; and ``K_i`` *movers* who take
    ``i`` iff ``c_i - c_{i-1} >= q`` (logistic ``muM_i``, ``sM_i``), else ``i - 1``.  So
    ``h_i`` responds to ``c_i - c_0`` through participants only (``eta_i``) and to
    ``c_i - c_{i-1}`` and ``c_{i+1} - c_i`` through movers only (``zeta_i``): Saez's
    structure, exactly.  Social welfare is ``sum over people of w_group * psi(u)`` with
    ``psi(u) = -exp(-kappa u) / kappa``; its integrals over the logistic costs are
    incomplete beta functions (``E[exp(kappa q); q <= x]``, checked by quadrature in
    the test), so welfare, masses, welfare weights and elasticities are closed forms.
    """

    def __init__(self, z, A, N, muP, sP, K, muM, sM, kappa, wA=1.0, wP=1.0, wM=1.0):
        self.z = np.asarray(z, float)
        self.I = self.z.size - 1
        self.A, self.kappa, self.wA = A, kappa, wA
        self.N, self.muP, self.sP, self.K, self.muM, self.sM = (
            np.asarray(v, float) for v in (N, muP, sP, K, muM, sM))
        self.wP = np.broadcast_to(np.asarray(wP, float), self.N.shape)
        self.wM = np.broadcast_to(np.asarray(wM, float), self.K.shape)
        self.total = A + self.N.sum() + self.K.sum()
        assert np.all(kappa * self.sP < 1) and np.all(kappa * self.sM < 1)

    def shares(self, c):
        F = special.expit((c[1:] - c[0] - self.muP) / self.sP)  # participants working
        G = special.expit((np.diff(c) - self.muM) / self.sM)  # movers moving up
        return F, G

    def masses(self, c):
        F, G = self.shares(c)
        h = np.zeros(self.I + 1)
        h[0] = self.A + np.sum(self.N * (1 - F)) + self.K[0] * (1 - G[0])
        h[1:] += self.N * F + self.K * G
        h[1:-1] += self.K[1:] * (1 - G[1:])
        return h

    def exp_cost(self, F, mu, s):
        """E[exp(kappa q); q <= x] for a logistic(mu, s) cost, F = its CDF at x."""
        a, b = 1 + self.kappa * s, 1 - self.kappa * s
        return np.exp(self.kappa * mu) * special.betainc(a, b, F) * special.beta(a, b)

    def marginal_welfare(self, c):
        """sum over the people of each occupation of w * psi'(u) (u = c - cost)."""
        F, G = self.shares(c)
        d = np.exp(-self.kappa * c)
        m = np.zeros(self.I + 1)
        m[0] = (self.wA * self.A + np.sum(self.wP * self.N * (1 - F))
                + self.wM[0] * self.K[0] * (1 - G[0])) * d[0]
        m[1:] += self.wP * self.N * d[1:] * self.exp_cost(F, self.muP, self.sP)
        m[1:] += self.wM * self.K * d[1:] * self.exp_cost(G, self.muM, self.sM)
        m[1:-1] += self.wM[1:] * self.K[1:] * (1 - G[1:]) * d[1:-1]
        return m

    def welfare(self, c):  # psi = -psi' / kappa for every person
        return -np.sum(self.marginal_welfare(c)) / self.kappa / self.total

    def revenue(self, c):
        return np.dot(self.masses(c), self.z - c) / self.total

    def sufficient_statistics(self, c):
        """h, g (mean w psi' per occupation), zeta, eta at consumption c."""
        F, G = self.shares(c)
        h = self.masses(c)
        zeta = np.diff(c) * self.K * G * (1 - G) / self.sM / h[1:]
        eta = (c[1:] - c[0]) * self.N * F * (1 - F) / self.sP / h[1:]
        return h, self.marginal_welfare(c) / h, zeta, eta

    def optimum(self, revenue=0.0):
        """max welfare over c_0..c_I subject to revenue per person = ``revenue`` (SLSQP)."""
        res = optimize.minimize(
            lambda c: -self.welfare(c), self.z.copy(), method="SLSQP",
            constraints=[{"type": "eq", "fun": lambda c: self.revenue(c) - revenue}],
            options={"ftol": 1e-15, "maxiter": 3000})
        assert res.success, res.message
        return res.x


def test_economy_closed_forms_match_quadrature():
    e = DiscreteChoiceEconomy([0, 12, 30, 60], 0.05, [0.3] * 3, [6, 14, 25], [3, 6, 10],
                              [0.01, 0.02, 0.02], [4, 8, 12], [3, 5, 8], kappa=0.04)
    mu, s, x = 6.0, 3.0, 10.0
    pdf = lambda q: special.expit((q - mu) / s) * (1 - special.expit((q - mu) / s)) / s  # noqa: E731
    quad = integrate.quad(lambda q: np.exp(0.04 * q) * pdf(q), -400, x)[0]
    assert e.exp_cost(special.expit((x - mu) / s), mu, s) == pytest.approx(quad, rel=1e-9)
    c = np.array([3.0, 14.0, 27.0, 50.0])
    assert e.masses(c).sum() == pytest.approx(e.total)
    # zeta and eta are the elasticities of h_i: finite differences of the masses
    h, _, zeta, eta = e.sufficient_statistics(c)
    step = 1e-6
    for i in range(1, 4):
        # raise c_i - c_{i-1} alone (c_i up, c_i - c_0 up too): participants and movers move
        up = c.copy()
        up[i:] += step  # shifts c_i - c_{i-1} only; c_j - c_0 rises for j >= i
        dh = (e.masses(up)[i] - h[i]) / step
        assert dh * (c[i] - c[i - 1]) / h[i] == pytest.approx(
            zeta[i - 1] + eta[i - 1] * (c[i] - c[i - 1]) / (c[i] - c[0]), rel=1e-4)


BRUTE_FORCE_ECONOMIES = {
    # participation at every occupation, little intensive response, weights > 1 at the bottom
    "extensive": (dict(A=0.05, N=[0.3, 0.3, 0.3], muP=[6, 14, 25], sP=[3, 6, 10],
                       K=[0.01, 0.02, 0.02], muM=[4, 8, 12], sM=[3, 5, 8], kappa=0.04), 0.0),
    # the same earnings and welfare, only movers between adjacent occupations (eta = 0),
    # with a revenue requirement of $3,000 a person
    "intensive": (dict(A=0.05, N=[0.0, 0.0, 0.0], muP=[6, 14, 25], sP=[3, 6, 10],
                       K=[0.3, 0.3, 0.3], muM=[4, 8, 12], sM=[3, 5, 8], kappa=0.04), 3.0),
}


@pytest.mark.parametrize("name", list(BRUTE_FORCE_ECONOMIES))
def test_formula_agrees_with_the_numerical_optimum(name):
    """Maximise the explicit economy's welfare over c (so over T = z - c) under its budget
    with scipy; the formula, fed the sufficient statistics (h, g, zeta, eta) measured at
    that optimum, must return the same taxes, and the optimum must satisfy each condition.

    Tolerance: the formula is exact for this economy (its structure is Saez's), so the
    only gap is the optimiser's.  SLSQP stops at ftol 1e-15 on welfare of order 1; its
    argmax is then off by about 1e-5 (thousand dollars) at most in these economies, a
    cent, so taxes are asserted to $1 and rates to 1e-4."""
    params, revenue = BRUTE_FORCE_ECONOMIES[name]
    e = DiscreteChoiceEconomy([0, 12, 30, 60], **params)
    c = e.optimum(revenue)
    assert np.all(np.diff(c) > 0)
    z_thousand = e.z
    t_opt = (z_thousand - c) * 1_000.0  # dollars a year
    h, g, zeta, eta = e.sufficient_statistics(c)
    if name == "intensive":
        assert np.all(eta == 0)
    res = saez_2002_taxes(z_thousand * 1_000.0, h, g, zeta, eta, revenue=revenue * 1_000.0)
    assert res.converged
    np.testing.assert_allclose(res.taxes, t_opt, atol=1.0)
    ptr_opt = (t_opt[1:] - t_opt[0]) / (z_thousand[1:] * 1_000.0)
    np.testing.assert_allclose(res.participation_tax_rates, ptr_opt, atol=1e-4)
    np.testing.assert_allclose(res.marginal_rates, np.diff(t_opt) / np.diff(z_thousand * 1_000.0), atol=1e-4)
    # the first-order conditions of the numerical optimum are the formula's
    hs, gn = normalised(h, g)
    p = (t_opt[1:] - t_opt[0]) / ((c[1:] - c[0]) * 1_000.0)
    rhs = np.cumsum((hs[1:] * (1 - gn[1:] - eta * p))[::-1])[::-1] / (zeta * hs[1:])
    np.testing.assert_allclose(np.diff(t_opt) / (np.diff(c) * 1_000.0), rhs, atol=1e-3)
    # Saez (2002): participation responses and g_1 > 1 give an EITC, intensive ones an NIT
    if name == "extensive":
        assert gn[1] > 1 and eta[0] > 0.2
        assert ptr_opt[0] < -0.1
        # the check has power: the intensive-only formula misses this optimum by far
        wrong = saez_2002_taxes(z_thousand * 1_000.0, h, g, zeta, 0.0, revenue=revenue * 1_000.0)
        assert np.max(np.abs(wrong.taxes - t_opt)) > 1_000.0
    else:
        assert ptr_opt[0] > 0.3
        assert res.guaranteed_income > 0


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"zeta": -0.1}, "zeta must be > 0"),
        ({"zeta": 0.0}, "zeta must be > 0"),
        ({"eta": np.array([0.2, -0.1, 0.2])}, "eta must be >= 0"),
        ({"z": np.array([0.0, 30_000.0, 12_000.0, 60_000.0])}, "sorted strictly increasing"),
        ({"z": np.array([5.0, 12_000.0, 30_000.0, 60_000.0])}, "z_0 = 0"),
        ({"h": np.array([0.1, 0.0, 0.3, 0.2])}, "masses h"),
        ({"h": np.array([-0.1, 0.3, 0.3, 0.2])}, "masses h"),
        ({"g": np.array([1.0, -1.0, 1.0, 1.0])}, "welfare weights g"),
        ({"h": np.array([0.1, 0.3, 0.3])}, "one entry per occupation"),
        ({"zeta": np.array([0.3, 0.3])}, "one entry per working occupation"),
        ({"revenue": float("nan")}, "revenue requirement"),
    ],
)
def test_bad_inputs_raise_one_line(kwargs, message):
    args = {"z": Z, "h": H, "g": G, "zeta": 0.3, "eta": 0.2} | kwargs
    with pytest.raises(ValueError, match=message) as info:
        saez_2002_taxes(**args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"edges": [1_000.0, 20_000.0]}, "start at 0"),
        ({"edges": [0.0, 20_000.0, 10_000.0]}, "increase strictly"),
        ({"pre_tax": [-5.0, 10_000.0, 30_000.0]}, ">= 0"),
        ({"employed": [False, False, False]}, "nobody is employed"),
        ({"zeta": [0.3, 0.3, 0.3]}, "one entry per bracket"),
        ({"eta": -0.5}, "eta must be >= 0"),
        ({"population_weights": [1.0, -1.0, 1.0]}, "population weights"),
    ],
)
def test_bracket_rates_bad_inputs(kwargs, message):
    args = {"pre_tax": [0.0, 10_000.0, 30_000.0], "employed": None,
            "edges": [0.0, 20_000.0], "zeta": 0.3, "eta": 0.2} | kwargs
    with pytest.raises(ValueError, match=message) as info:
        saez_2002_bracket_rates(**args)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ occupations from a population
def test_bracket_rates_build_occupations_by_hand():
    pre_tax = np.array([0.0, 0.0, 3_000.0, 5_000.0, 8_000.0, 40_000.0, 50_000.0, 200_000.0])
    employed = np.array([False, False, False, True, True, True, True, True])  # 3,000: not working
    pw = np.array([2.0, 1.0, 1.0, 1.0, 3.0, 2.0, 1.0, 1.0])
    edges = np.array([0.0, 20_000.0, 100_000.0, 500_000.0])  # the top bracket is empty
    res = saez_2002_bracket_rates(pre_tax, employed, edges, 0.3, 0.5, weights="inverse_income",
                                  population_weights=pw, income_floor=1_000.0)
    occ = res.occupations
    p = pw / pw.sum()
    gi = 1 / np.maximum(pre_tax, 1_000.0)
    gi = gi / np.dot(p, gi)
    groups = [[0, 1, 2], [3, 4], [5, 6], [7]]
    for i, members in enumerate(groups):
        m = np.array(members)
        assert occ.masses[i] == pytest.approx(p[m].sum())
        assert occ.welfare_weights[i] == pytest.approx(np.dot(p[m], gi[m]) / p[m].sum())
        if i > 0:
            assert occ.earnings[i] == pytest.approx(np.dot(p[m], pre_tax[m]) / p[m].sum())
    assert occ.earnings[0] == 0.0
    np.testing.assert_array_equal(res.occupation_bracket, [0, 1, 2])
    # the same model solved directly
    direct = saez_2002_taxes(occ.earnings, occ.masses, occ.welfare_weights, 0.3, 0.5)
    np.testing.assert_allclose(res.rates[:3], direct.marginal_rates, rtol=1e-12)
    assert res.rates[3] == res.rates[2]  # empty: the nearest populated bracket below
    np.testing.assert_allclose(res.participation_tax_rates[:3], direct.participation_tax_rates)
    assert np.isnan(res.participation_tax_rates[3])
    assert res.participation_tax_rate_bottom == pytest.approx(direct.participation_tax_rates[0])
    # the schedule charges the lowest occupation exactly T_1 - T_0
    assert res.rates[0] * occ.earnings[1] == pytest.approx(direct.taxes[1] - direct.taxes[0])


def test_bracket_rates_empty_bottom_bracket_and_per_bracket_elasticities():
    pre_tax = np.array([0.0, 30_000.0, 40_000.0, 150_000.0])
    edges = np.array([0.0, 20_000.0, 100_000.0])
    res = saez_2002_bracket_rates(pre_tax, None, edges, [9.0, 0.3, 0.4], [9.0, 0.5, 0.2],
                                  weights="inverse_income")
    np.testing.assert_array_equal(res.occupation_bracket, [1, 2])
    np.testing.assert_allclose(res.occupations.zeta, [0.3, 0.4])
    np.testing.assert_allclose(res.occupations.eta, [0.5, 0.2])
    # below the lowest occupation: its rate, the step from not working
    assert res.rates[0] == res.rates[1] == pytest.approx(res.participation_tax_rate_bottom)


def test_revenue_requirement_only_moves_the_guaranteed_income():
    rng = np.random.default_rng(3)
    pre = np.where(rng.random(500) < 0.2, 0.0, rng.lognormal(np.log(40_000), 0.7, 500))
    edges = [0.0, 20_000.0, 60_000.0, 150_000.0]
    a = saez_2002_bracket_rates(pre, None, edges, 0.3, 0.4, weights="inverse_income")
    b = saez_2002_bracket_rates(pre, None, edges, 0.3, 0.4, weights="inverse_income", revenue=5_000.0)
    np.testing.assert_allclose(a.rates, b.rates, rtol=1e-12)
    assert a.guaranteed_income - b.guaranteed_income == pytest.approx(5_000.0)
    for r, rev in ((a, 0.0), (b, 5_000.0)):
        assert np.dot(r.occupations.masses, r.occupations.taxes) == pytest.approx(rev, abs=1e-6)


# ------------------------------------------------------------------ the planner
class StandInModel:
    """The attributes SaezPlanner reads, with the lead's participation attributes."""

    def __init__(self, pre_tax, hours, participation=True, eta=0.25, fiscal_rule="rebate_all",
                 revenue_requirement=0.0, world=None, budget=None):
        self.base_schedule = TaxSchedule.us_federal(2024, standard_deduction=True)
        self.schedule = self.base_schedule
        self.outcome = SimpleNamespace(pre_tax=np.asarray(pre_tax, float),
                                       post_tax=np.asarray(pre_tax, float) + 5_000.0,
                                       hours=np.asarray(hours, float))
        self.settings = SimpleNamespace(
            planner=SimpleNamespace(objective=SimpleNamespace(swf="utilitarian", floor=1_000.0,
                                                              epsilon=1.0)),
            economy=SimpleNamespace(fiscal_rule=fiscal_rule))
        self.utility = SimpleNamespace(eta=1.0)
        self.weights = None
        self.world = world
        self._budget = budget
        self.stats = YearStats()
        self.year = 3
        self.notes: list[str] = []
        self.participation = participation
        self.participation_elasticity = eta
        self.revenue_requirement = revenue_requirement

    def budget(self, schedule):
        return self._budget

    def note(self, message):
        self.notes.append(message)


def population(seed=1, n=400):
    rng = np.random.default_rng(seed)
    wage = rng.lognormal(np.log(1_100), 0.6, n)
    hours = np.where(rng.random(n) < 0.15, 0.0, rng.uniform(10, 50, n))
    return wage * hours, hours


def edges_of(schedule):
    return np.concatenate([[0.0], schedule.threshold_array[1:] + schedule.deduction])


def test_planner_uses_saez_2002_with_participation():
    pre, hours = population()
    m = StandInModel(pre, hours, eta=2.0)
    sched = SaezPlanner(0.3, "inverse_income").propose(m)
    expected = saez_2002_bracket_rates(pre, hours > 0, edges_of(m.base_schedule), 0.3, 2.0,
                                       weights="inverse_income", income_floor=1_000.0)
    np.testing.assert_allclose(sched.rates, np.clip(expected.rates, 0, 1), rtol=1e-12)
    assert sched.thresholds == m.base_schedule.thresholds
    st = m.stats
    assert st["saez_model"] == "intensive-extensive (2002)"
    assert st["saez_participation_elasticity"] == 2.0
    assert st["saez_elasticity"] == 0.3
    assert st["saez_participation_tax_rate_bottom"] == pytest.approx(expected.participation_tax_rate_bottom)
    assert st["saez_guaranteed_income"] == pytest.approx(expected.guaranteed_income)
    outside = (expected.rates < 0) | (expected.rates > 1)
    assert st["saez_clipped_brackets"] == outside.sum()
    gap = np.abs(np.clip(expected.rates, 0, 1) - expected.rates).max()
    assert st["saez_clipped_max"] == pytest.approx(gap)


def test_planner_clips_a_negative_bottom_rate():
    """An EITC case: few non-workers, many high earners, log-utility objective weights (so
    g_1 > 1), a very elastic participation margin and little intensive response.  The
    bottom bracket's optimal effective rate is negative; the income tax can only go to 0,
    and the clipping is recorded."""
    rng = np.random.default_rng(4)
    pre = np.concatenate([np.zeros(20), rng.uniform(8_000, 24_000, 120),
                          rng.uniform(60_000, 250_000, 260)])
    hours = np.where(pre > 0, 40.0, 0.0)
    m = StandInModel(pre, hours, eta=3.0)
    sched = SaezPlanner(0.05, "objective").propose(m)
    g = 1.0 / np.maximum(m.outcome.post_tax, 1.0)
    res = saez_2002_bracket_rates(pre, hours > 0, edges_of(m.base_schedule), 0.05, 3.0,
                                  weights=g, income_floor=1_000.0)
    assert res.occupations.welfare_weights[1] > 1
    assert res.rates[0] < 0 and res.participation_tax_rate_bottom < 0
    assert sched.rates[0] == 0.0
    assert m.stats["saez_participation_tax_rate_bottom"] < 0
    assert m.stats["saez_clipped_brackets"] >= 1
    assert m.stats["saez_clipped_max"] == pytest.approx(max(-res.rates.min(), res.rates.max() - 1, 0))


def test_planner_revenue_requirement_only_under_that_rule():
    pre, hours = population()
    planner = SaezPlanner(0.3, "inverse_income")
    rebate = StandInModel(pre, hours, fiscal_rule="rebate_all", revenue_requirement=4_000.0)
    required = StandInModel(pre, hours, fiscal_rule="revenue_requirement", revenue_requirement=4_000.0)
    a, b = planner.propose(rebate), planner.propose(required)
    np.testing.assert_allclose(a.rates, b.rates)
    gap = rebate.stats["saez_guaranteed_income"] - required.stats["saez_guaranteed_income"]
    assert gap == pytest.approx(4_000.0)


def test_planner_without_participation_is_saez_2001():
    pre, hours = population()
    off = StandInModel(pre, hours, participation=False)
    absent = StandInModel(pre, hours)
    del absent.participation  # a model that predates the extensive margin
    for m in (off, absent):
        sched = SaezPlanner(0.3, "inverse_income").propose(m)
        expected = saez_bracket_rates(pre, edges_of(m.base_schedule), 0.3, weights="inverse_income",
                                      income_floor=1_000.0)
        np.testing.assert_array_equal(sched.rates, expected.rates)
        assert set(m.stats) == {"saez_elasticity", "saez_top_pareto_a"}


def test_planner_objective_weights_reach_the_formula():
    pre, hours = population()
    m = StandInModel(pre, hours)
    sched = SaezPlanner(0.3, "objective").propose(m)
    g = 1.0 / np.maximum(m.outcome.post_tax, 1.0)  # utilitarian, log utility: u_c = 1/c
    expected = saez_2002_bracket_rates(pre, hours > 0, edges_of(m.base_schedule), 0.3, 0.25,
                                       weights=g, income_floor=1_000.0)
    np.testing.assert_allclose(sched.rates, np.clip(expected.rates, 0, 1), rtol=1e-12)


class FakeBudget:
    """A rest-of-system: 7.65 % payroll tax and a 40 % credit phased in to $10,000."""

    def tax(self, z):
        z = np.asarray(z, float)
        return 0.0765 * z - 0.4 * np.minimum(z, 10_000.0)

    def marginal_rate(self, z):
        z = np.asarray(z, float)
        return 0.0765 - np.where(z < 10_000.0, 0.4, 0.0)


def test_planner_us_current_law_subtracts_the_rest_of_the_system():
    pre, hours = population(seed=2)
    m = StandInModel(pre, hours, world=object(), budget=FakeBudget())
    sched = SaezPlanner(0.3, "inverse_income").propose(m)
    edges = edges_of(m.base_schedule)
    emp = hours > 0
    res = saez_2002_bracket_rates(pre, emp, edges, 0.3, 0.25, weights="inverse_income",
                                  income_floor=1_000.0)
    k = np.clip(np.searchsorted(edges, pre, side="right") - 1, 0, len(edges) - 1)
    fb = FakeBudget()
    other = np.zeros(len(edges))
    for j in range(len(edges)):
        sel = emp & (k == j)
        if sel.any():
            other[j] = fb.marginal_rate(pre[sel]).mean()
    bottom = int(res.occupation_bracket[0])
    sel = emp & (k == bottom)
    other[bottom] = np.mean((fb.tax(pre[sel]) - fb.tax(0.0)) / pre[sel])  # participation tax rate
    np.testing.assert_allclose(sched.rates, np.clip(res.rates - other, 0, 1), rtol=1e-12, atol=1e-15)
    assert m.stats["saez_other_participation_tax_rate_bottom"] == pytest.approx(other[bottom])


def test_planner_keeps_the_schedule_when_it_cannot_solve(monkeypatch):
    pre, hours = population()
    m = StandInModel(pre, np.zeros_like(hours))
    assert SaezPlanner(0.3, "inverse_income").propose(m) is m.schedule
    assert any("nobody worked" in n for n in m.notes)

    real = saez_planner_module.saez_2002_bracket_rates

    def unconverged(*args, **kwargs):
        r = real(*args, **kwargs)
        occ = r.occupations.__class__(**{**r.occupations.__dict__, "converged": False, "residual": 0.5})
        return r.__class__(rates=r.rates, participation_tax_rates=r.participation_tax_rates,
                           occupations=occ, occupation_bracket=r.occupation_bracket)

    monkeypatch.setattr(saez_planner_module, "saez_2002_bracket_rates", unconverged)
    m = StandInModel(pre, hours)
    assert SaezPlanner(0.3, "inverse_income").propose(m) is m.schedule
    assert any("did not converge" in n for n in m.notes)
    assert m.stats["saez_converged"] == 0.0
    assert np.isnan(m.stats["saez_participation_tax_rate_bottom"])
