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
    d = stats.paired_differences(final, "a", ["revenue", "swf_utilitarian"])
    rev = d[(d.variant == "b") & (d.metric == "revenue")].iloc[0]
    assert rev.diff_mean == pytest.approx((2 + 1 + 3) / 3)
    assert rev.baseline_mean == pytest.approx(20.0) and rev.n_seeds == 3
    # differences 2, 1, 3: mean 2, sd 1, t(2 df, 0.975) = 4.302653 -> 2 -+ 4.302653 / sqrt(3)
    assert (rev.ci_low, rev.ci_high) == pytest.approx((2 - 4.302653 / 3 ** 0.5, 2 + 4.302653 / 3 ** 0.5), rel=1e-6)
    assert rev.diff_sd == pytest.approx(1.0)
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
    c = stats.tax_rate_curves(TaxSchedule([0, 10_000], [0.1, 0.3]), incomes=np.array([5_000.0, 20_000.0]),
                              rebate=1000)
    assert list(c["tax"]) == pytest.approx([500.0, 4000.0])
    assert list(c["average_rate"]) == pytest.approx([0.1, 0.2])
    assert list(c["marginal_rate"]) == pytest.approx([0.1, 0.3])
    assert list(c["net_average_rate"]) == pytest.approx([-0.1, 0.15])
    us = TaxSchedule.us_federal(2024, "single")
    assert stats.bracket_labels(us.thresholds)[:2] == ["$0–11,600", "$11,600–47,150"]


def test_t_interval_matches_scipy_vectorised_and_skips_missing_values():
    rng = np.random.default_rng(4)
    x = rng.normal(3.0, 2.0, size=(50, 7))
    x[3, 2] = np.nan  # a failed run: left out, its row has 6 seeds
    lo, hi = stats.t_interval(x, 0.9)
    for i in range(50):
        row = x[i][np.isfinite(x[i])]
        ref = sps.t.interval(0.9, row.size - 1, loc=row.mean(), scale=sps.sem(row))
        assert (lo[i], hi[i]) == pytest.approx(ref, rel=1e-10)
    assert np.isnan(stats.t_interval([1.0])[0]) and np.isnan(stats.t_interval([1.0, np.nan])[1])
    assert stats.t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    # along another axis: the same intervals
    lo2, hi2 = stats.t_interval(x.T, 0.9, axis=0)
    assert np.allclose(lo2, lo) and np.allclose(hi2, hi)


def test_seeds_for_half_width_against_brute_force():
    for sd, h, level in [(1.0, 1.0, 0.95), (1.0, 0.1, 0.95), (2.5, 0.4, 0.9), (0.02, 0.03, 0.99)]:
        n = 2
        while sps.t.ppf((1 + level) / 2, n - 1) * sd / np.sqrt(n) > h:
            n += 1
        assert stats.seeds_for_half_width(sd, h, level) == n
    assert stats.seeds_for_half_width(1.0, 1.0) == 7  # t(5) 2.571/sqrt(6) = 1.05 > 1; t(6) 2.447/sqrt(7) = 0.925
    assert abs(stats.seeds_for_half_width(1.0, 0.1) - (1.96 / 0.1) ** 2) < 6  # large n: (z s / h)^2
    with pytest.raises(ValueError):
        stats.seeds_for_half_width(1.0, 0.0)


def test_outlying_seeds():
    d = [-0.020, -0.018, -0.024, -0.022, -0.137, -0.019]
    assert stats.outlying_seeds(d, [1, 2, 3, 4, 57, 6]) == [57]
    assert stats.outlying_seeds(d[:3], [1, 2, 3]) == []  # too few to tell
    assert stats.outlying_seeds([1.0, 1.0, 1.0, 1.0, 5.0], range(5)) == []  # MAD 0: no scale


def test_incidence_intervals_over_seeds():
    tables = []
    vals = {"1": [1.0, 2.0, 4.0], "2": [-1.0, -2.0, -1.5], "all": [0.0, 0.5, 1.0]}
    for k in range(3):
        tables.append(pd.DataFrame({"group": list(vals), "d_post_tax": [vals[g][k] for g in vals],
                                    "d_post_tax_pct": [10 * vals[g][k] for g in vals],
                                    "d_utility": [0.1 * vals[g][k] for g in vals], "share_gaining": 0.5}))
    t = stats.mean_over_seeds(tables, 0.95).set_index("group")
    for g, v in vals.items():
        v = np.array(v)
        ref = sps.t.interval(0.95, 2, loc=v.mean(), scale=sps.sem(v))
        assert (t.loc[g, "d_post_tax_low"], t.loc[g, "d_post_tax_high"]) == pytest.approx(ref)
        assert (t.loc[g, "d_post_tax_pct_low"], t.loc[g, "d_post_tax_pct_high"]) == pytest.approx(10 * np.array(ref))
        assert t.loc[g, "n_seeds"] == 3 and t.loc[g, "d_post_tax"] == pytest.approx(v.mean())
    assert list(t.index) == ["1", "2", "all"]
    one = stats.mean_over_seeds(tables[:1])
    assert one["d_post_tax_low"].isna().all()  # one seed: no interval


def test_verdict_by_hand():
    final = pd.DataFrame({
        "variant": ["b"] * 5 + ["x"] * 5 + ["y"] * 5, "seed": list(range(5)) * 3,
        "swf_utilitarian": [1.0] * 5 + [1.10, 1.12, 1.09, 1.11, 1.13] + [1.01, 0.98, 1.03, 0.99, 1.00],
        "revenue": [100.0] * 5 + [90.0, 92.0, 91.0, 89.0, 93.0] + [100.0] * 5,
    })
    diffs = stats.paired_differences(final, "b", ["swf_utilitarian", "revenue"])
    ce = pd.DataFrame({"variant": ["x", "y"], "metric": "swf_utilitarian", "n_seeds": 5,
                       "ce_pct_mean": [11.0, 0.2], "ce_low": [9.0, -2.0], "ce_high": [13.0, 2.5]})
    dec = [{"variant": "x", "grouping": "income_decile", "group": str(g),
            "d_post_tax_pct": 5.0 - g, "d_post_tax_pct_low": 4.0 - g, "d_post_tax_pct_high": 6.0 - g,
            "share_gaining": 0.0, "share_losing": 0.0} for g in range(1, 11)]
    dec.append({"variant": "x", "grouping": "income_decile", "group": "all", "d_post_tax_pct": 1.0,
                "share_gaining": 0.4, "share_losing": 0.3})
    v = stats.verdict(diffs, ce, pd.DataFrame(dec), "b", "utilitarian").set_index("variant")
    assert list(v.index) == ["x", "y"]
    assert v.loc["x", "distinguishable"] and v.loc["x", "winner"] == "x" and v.loc["x", "seeds_needed"] == -1
    assert v.loc["x", "gaining_deciles"] == "1,2,3" and v.loc["x", "losing_deciles"] == "7,8,9,10"
    assert v.loc["x", "share_gaining"] == 0.4 and v.loc["x", "revenue_diff"] == pytest.approx(-9.0)
    assert v.loc["x", "ce_pct"] == 11.0 and v.loc["x", "reliability"] == "ok"
    # y: +0.002 on average, interval across zero: no winner, the seeds needed for that size
    assert not v.loc["y", "distinguishable"] and v.loc["y", "winner"] == "" and v.loc["y", "higher"] == "y"
    sd = np.std([0.01, -0.02, 0.03, -0.01, 0.0], ddof=1)
    assert v.loc["y", "seeds_needed"] == stats.seeds_for_half_width(sd, 0.002)
    three = stats.verdict(stats.paired_differences(final[final.seed < 3], "b"), ce.iloc[:0], pd.DataFrame(),
                          "b", "utilitarian")
    assert set(three["reliability"]) == {"unreliable"}
    assert stats.reliability(1) == "no interval" and stats.reliability(5) == "ok"
