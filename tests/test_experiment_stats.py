"""Statistics of paired experiments, checked against independent computations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility
from simulator.experiments import stats


def test_bootstrap_matches_scipy_percentile():
    x = np.array([0.8, 1.3, -0.2, 2.1, 0.9, 1.7, 0.4, 1.1, 0.0, 1.6])
    lo, hi = stats.bootstrap_ci(x, n_resamples=40_000, level=0.95, seed=3)
    ref = sps.bootstrap((x,), np.mean, n_resamples=40_000, confidence_level=0.95,
                        method="percentile", rng=np.random.default_rng(5)).confidence_interval
    width = ref.high - ref.low
    assert abs(lo - ref.low) < 0.03 * width and abs(hi - ref.high) < 0.03 * width
    # seeded: the same interval twice; constant differences: a point
    assert stats.bootstrap_ci(x, 500, seed=1) == stats.bootstrap_ci(x, 500, seed=1)
    assert stats.bootstrap_ci([2.0, 2.0, 2.0], 500) == (2.0, 2.0)
    assert np.isnan(stats.bootstrap_ci([1.0], 500)[0])


def test_paired_differences_by_hand():
    final = pd.DataFrame({
        "variant": ["a"] * 3 + ["b"] * 3,
        "seed": [0, 1, 2, 2, 0, 1],  # order must not matter: pairs by seed
        "revenue": [10.0, 20.0, 30.0, 33.0, 12.0, 21.0],
        "swf_utilitarian": [1.0, 1.0, 1.0, 1.5, 1.5, 1.5],
    })
    d = stats.paired_differences(final, "a", ["revenue", "swf_utilitarian"], n_resamples=2000)
    rev = d[(d.variant == "b") & (d.metric == "revenue")].iloc[0]
    assert rev.diff_mean == pytest.approx((2 + 1 + 3) / 3)
    assert rev.baseline_mean == pytest.approx(20.0) and rev.n_seeds == 3
    assert 1.0 <= rev.ci_low <= rev.diff_mean <= rev.ci_high <= 3.0
    u = d[(d.variant == "b") & (d.metric == "swf_utilitarian")].iloc[0]
    assert (u.diff_mean, u.ci_low, u.ci_high) == pytest.approx((0.5, 0.5, 0.5))
    assert (d[d.variant == "a"].diff_mean == 0).all()
    assert stats.best_variants(final) == {"swf_utilitarian": "b"}


def _agents(n=200, seed=0):
    rng = np.random.default_rng(seed)
    post = rng.lognormal(10.8, 0.6, n)
    return pd.DataFrame({"id": np.arange(n), "post_tax": post, "pre_tax": post * 1.1,
                         "tax": post * 0.1, "hours": rng.uniform(20, 50, n), "utility": 0.0})


def test_consumption_equivalent_closed_forms():
    a = _agents()
    log_u = IsoelasticUtility(eta=1.0, frisch=0.5)
    w_b = float(np.mean(log_u(a.post_tax, a.hours)))
    for dw in (0.05, -0.1, 0.0):
        lam = stats.consumption_equivalent(a, w_b + dw, log_u, "utilitarian")
        assert lam == pytest.approx(np.exp(dw) - 1, abs=1e-9)  # log: W(lambda) = W + log(1+lambda)
    # Atkinson EDE is homogeneous of degree one in consumption
    ede = float(np.exp(np.mean(np.log(a.post_tax))))
    assert stats.consumption_equivalent(a, 1.03 * ede, log_u, "atkinson", {"epsilon": 1.0}) == pytest.approx(0.03, abs=1e-9)
    # quasi-linear utilitarian: linear in consumption
    ql = QuasiLinearUtility()
    w_q = float(np.mean(ql(a.post_tax, a.hours)))
    lam = stats.consumption_equivalent(a, w_q + 500.0, ql, "utilitarian")
    assert lam == pytest.approx(500.0 / a.post_tax.mean(), rel=1e-8)
    # CRRA eta=2: u = 1 - 1/c - v(l), so W(lambda) = W + mean(1/c) (1 - 1/(1+lambda))
    crra = IsoelasticUtility(eta=2.0, frisch=0.5, psi=1e-9)
    target = float(np.mean(crra(a.post_tax, a.hours))) + float(np.mean(1 / a.post_tax)) * (1 - 1 / 1.07)
    assert stats.consumption_equivalent(a, target, crra, "utilitarian") == pytest.approx(0.07, abs=1e-7)
    assert np.isnan(stats.consumption_equivalent(a, 1.0, log_u, "equality_productivity"))


def test_incidence_by_hand():
    base = pd.DataFrame({"id": [0, 1, 2, 3], "pre_tax": [0.0, 10.0, 20.0, 30.0],
                         "post_tax": [100.0, 110.0, 120.0, 130.0], "utility": [1.0, 2.0, 3.0, 4.0],
                         "hours": 40.0, "tax": 0.0})
    var = base.assign(post_tax=[110.0, 110.5, 120.0, 100.0], utility=[1.5, 2.0, 3.0, 3.0])
    pop = pd.DataFrame({"id": [0, 1, 2, 3], "weight": [1.0, 1.0, 1.0, 1.0],
                        "sex": ["female", "male", "female", "male"], "age": [20, 30, 40, 70]})
    p = stats.paired_workers(base, var, pop)
    assert list(p["age_band"].astype(str)) == ["16-24", "25-34", "35-44", "65+"]
    t = stats.incidence(p, "sex").set_index("group")
    # female: +10 and 0 ; male: +0.5 and -30
    assert t.loc["female", "d_post_tax"] == pytest.approx(5.0)
    assert t.loc["female", "d_post_tax_pct"] == pytest.approx(100 * 10 / 220)
    assert t.loc["male", "share_losing"] == pytest.approx(0.5)  # -30 of 130 > 1 %
    assert t.loc["male", "share_gaining"] == pytest.approx(0.0)  # +0.5 of 110 < 1 %
    assert t.loc["all", "d_utility"] == pytest.approx((0.5 + 0 + 0 - 1) / 4)
    assert t.loc["all", "workers_share"] == pytest.approx(1.0)


def test_deciles_and_rate_curves():
    dec = stats.income_deciles(np.arange(20, 0, -1, dtype=float))
    assert sorted(np.bincount(dec)[1:]) == [2] * 10 and dec[0] == 10 and dec[-1] == 1
    # weights: one heavy worker fills the bottom half
    dec = stats.income_deciles(np.array([1.0, 2.0, 3.0]), np.array([5.0, 2.5, 2.5]))
    assert list(dec) == [3, 7, 9]
    c = stats.tax_rate_curves([0, 10_000], [0.1, 0.3], incomes=np.array([5_000.0, 20_000.0]), rebate=1000)
    assert list(c["tax"]) == pytest.approx([500.0, 4000.0])
    assert list(c["average_rate"]) == pytest.approx([0.1, 0.2])
    assert list(c["marginal_rate"]) == pytest.approx([0.1, 0.3])
    assert list(c["net_average_rate"]) == pytest.approx([-0.1, 0.15])
    us = TaxSchedule.us_federal(2024, "single")
    assert stats.bracket_labels(us.thresholds)[:2] == ["$0–11,600", "$11,600–47,150"]
