"""The fast exact paths of the default case (log utility on a convex budget): the wage
thresholds that replace the segment search, the slope of tax in the rebate, and the
Newton step on the rebate, each against an independent computation."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import IsoelasticUtility

brm = importlib.import_module("simulator.economy.best_response")
GRID = np.linspace(0.0, 100.0, 20_001)  # 0.005-hour steps


def grid_best(schedule, w, utility, rebate, lo=0.0, hi=100.0):
    """Brute force: the best of 20,001 hours in [lo, hi] for every agent."""
    g = GRID[(GRID >= lo) & (GRID <= hi)]
    z = w[:, None] * g[None, :]
    u = utility(schedule.net_income(z) + rebate, np.broadcast_to(g, z.shape))
    return u.max(axis=1)


progressive = st.integers(1, 7).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(1_000, 800_000), min_size=k - 1, max_size=k - 1, unique=True),
        st.lists(st.floats(0, 0.97), min_size=k, max_size=k).map(sorted),  # rates never fall
        st.sampled_from([0.0, 14_600.0]),
    )
)


@settings(max_examples=150, deadline=None)
@given(progressive, st.floats(0.1, 1.0), st.floats(1e-7, 1e-3),
       st.lists(st.floats(20, 30_000), min_size=1, max_size=16), st.floats(1.0, 60_000),
       st.sampled_from([(0.0, 100.0), (10.0, 60.0), (0.0, 35.0)]))
def test_fast_path_beats_brute_force_and_equals_the_binary_search(spec, frisch, psi, wages, rebate, bounds):
    edges, rates, deduction = spec
    sched = TaxSchedule([0.0] + sorted(edges), rates, deduction=deduction)
    assert sched.is_progressive
    u = IsoelasticUtility(frisch=frisch, psi=psi)
    assert brm._log_fast(sched, u, rebate)
    w = np.asarray(wages)
    fast = brm.best_response(sched, w, u, rebate, bounds)
    # the general path (binary search on marginal gains), with the rebate per agent so
    # the fast path is not taken
    general = brm.best_response(sched, w, u, np.full(w.size, rebate), bounds)
    assert np.all((fast >= bounds[0]) & (fast <= bounds[1]))
    ours = u(sched.net_income(w * fast) + rebate, fast)
    grid = grid_best(sched, w, u, rebate, *bounds)
    scale = np.maximum(1.0, np.abs(grid))
    assert np.all(ours >= grid - 1e-9 * scale), ours - grid
    np.testing.assert_allclose(fast, general, rtol=1e-9, atol=1e-9)


def test_fast_path_is_taken_only_where_it_is_exact():
    us = TaxSchedule.us_federal(2024, "single")
    log = IsoelasticUtility()
    assert brm._log_fast(us, log, 5_000.0)
    assert not brm._log_fast(us, log, 0.0)  # consumption at zero earnings below the floor
    assert not brm._log_fast(us, log, np.full(3, 5_000.0))  # a rebate per agent
    assert not brm._log_fast(us, IsoelasticUtility(eta=2.0), 5_000.0)
    assert not brm._log_fast(us, IsoelasticUtility(frisch=1.5), 5_000.0)
    assert not brm._log_fast(us, IsoelasticUtility(frisch=np.array([0.5, 0.4])), 5_000.0)


def test_many_agents_in_blocks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(3)
    w = 1300.0 * np.exp(rng.normal(0.0, 0.8, 5_000))
    w[:7] = 0.0
    us = TaxSchedule.us_federal(2024, "single")
    u = IsoelasticUtility()
    whole = brm.best_response(us, w, u, 7_000.0)
    monkeypatch.setattr(brm, "CHUNK", 512)
    blocks = brm.best_response(us, w, u, 7_000.0)
    np.testing.assert_array_equal(whole, blocks)  # every result depends on its agent alone
    assert np.all(blocks[:7] == 0.0)


def test_slope_of_tax_in_the_rebate_matches_finite_differences():
    rng = np.random.default_rng(1)
    w = 1300.0 * np.exp(rng.normal(0.0, 0.8, 4_000))
    us = TaxSchedule.us_federal(2024, "single")
    u = IsoelasticUtility()
    r, d = 9_000.0, 0.5
    h, dtax, tax_here = brm._hours_and_dtax(us, w, u, r, (0.0, 100.0))
    np.testing.assert_allclose(tax_here, us.tax(w * h), rtol=1e-12, atol=1e-7)  # from the segment
    tax = lambda rr: us.tax(w * brm.best_response(us, w, u, rr))  # noqa: E731
    fd = (tax(r + d) - tax(r - d)) / (2 * d)
    # agents at a kink have slope 0 on both sides unless within d of leaving it
    close = np.abs(fd - dtax) <= 1e-6 + 1e-4 * np.abs(fd)
    assert close.mean() > 0.995
    assert np.all(dtax <= 0)  # leisure is normal: more rebate, less work, less tax
    # and the mean, which Newton's step uses, to high accuracy
    assert dtax.mean() == pytest.approx(fd.mean(), rel=1e-3)


@pytest.mark.parametrize("share,requirement,weights", [
    (1.0, 0.0, None), (0.6, 0.0, None), (1.0, 4_000.0, None), (1.0, 0.0, "random")])
def test_newton_equilibrium_is_the_fixed_point_in_at_most_three_passes(share, requirement, weights,
                                                                       monkeypatch):
    rng = np.random.default_rng(2)
    n = 20_000
    w = 1300.0 * np.exp(rng.normal(0.0, 0.8, n))
    wt = rng.uniform(0.5, 2.0, n) if weights else None
    us = TaxSchedule.us_federal(2024, "single")
    u = IsoelasticUtility()
    calls = []
    real = brm._hours_and_dtax
    monkeypatch.setattr(brm, "_hours_and_dtax", lambda *a, **k: calls.append(1) or real(*a, **k))
    h, r = brm.equilibrium(us, w, u, rebate_share=share, weights=wt, requirement=requirement)
    assert 1 <= len(calls) <= 3
    # the fixed point: the rebate the hours imply, and the hours are the best response to it
    assert r == pytest.approx(lump_sum_rebate(us.tax(w * h), share, wt, requirement), abs=1e-5)
    np.testing.assert_allclose(h, brm.best_response(us, w, u, np.full(n, r)), rtol=1e-8, atol=1e-8)
    # and the same fixed point as brentq on the gap, the method before Newton
    from scipy.optimize import brentq

    def gap(x):
        return lump_sum_rebate(us.tax(w * brm.best_response(us, w, u, np.full(n, x))), share, wt,
                               requirement) - x

    assert r == pytest.approx(brentq(gap, 1.0, 40_000.0, xtol=1e-7), abs=1e-4)


nonconvex = st.integers(2, 7).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(1_000, 800_000), min_size=k - 1, max_size=k - 1, unique=True),
        st.lists(st.floats(0, 0.95), min_size=k, max_size=k),
        st.sampled_from([0.0, 14_600.0]),
    )
)


@settings(max_examples=150, deadline=None)
@given(nonconvex, st.floats(0.1, 1.0), st.floats(1e-7, 1e-3),
       st.lists(st.floats(20, 30_000), min_size=1, max_size=16), st.floats(1.0, 60_000),
       st.sampled_from([(0.0, 100.0), (10.0, 60.0), (0.0, 35.0)]))
def test_pieces_path_on_non_convex_budgets_beats_brute_force_and_equals_every_segment(
        spec, frisch, psi, wages, rebate, bounds):
    edges, rates, deduction = spec
    sched = TaxSchedule([0.0] + sorted(edges), rates, deduction=deduction)
    u = IsoelasticUtility(frisch=frisch, psi=psi)
    if sched.is_progressive or not brm._log_fast(sched, u, rebate):
        return
    w = np.asarray(wages)
    fast = brm.best_response(sched, w, u, rebate, bounds)
    every = brm.best_response(sched, w, u, np.full(w.size, rebate), bounds)  # all segments solved
    ours = u(sched.net_income(w * fast) + rebate, fast)
    theirs = u(sched.net_income(w * every) + rebate, every)
    grid = grid_best(sched, w, u, rebate, *bounds)
    scale = np.maximum(1.0, np.abs(grid))
    assert np.all(ours >= grid - 1e-9 * scale), ours - grid
    assert np.all(ours >= theirs - 1e-12 * scale)  # as good as solving every segment
