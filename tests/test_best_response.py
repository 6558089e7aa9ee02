"""Exact best responses against brute-force grid search, and utility properties."""

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personas.gb2 import sample_gb2
from simulator.economy.best_response import best_response, equilibrium
from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility

br_module = importlib.import_module("simulator.economy.best_response")
GRID = np.linspace(0.0, 100.0, 20_001)  # 0.005-hour steps


def brute_force_utility(schedule, wages, utility, rebate):
    z = wages[:, None] * GRID[None, :]
    c = schedule.net_income(z) + rebate
    hours = np.broadcast_to(GRID, z.shape)
    return utility(c, hours).max(axis=1)


def achieved_utility(schedule, wages, utility, rebate, hours):
    return utility(schedule.net_income(wages * hours) + rebate, hours)


utilities = st.one_of(
    st.builds(
        IsoelasticUtility,
        eta=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
        frisch=st.floats(0.1, 1.5),
    ),
    st.builds(QuasiLinearUtility, psi=st.floats(1e-5, 5e-3), delta=st.floats(1.5, 5.0)),
)
schedules = st.integers(1, 7).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(1_000, 800_000), min_size=k - 1, max_size=k - 1, unique=True),
        st.lists(st.floats(0, 0.95), min_size=k, max_size=k),
        st.sampled_from([0.0, 14_600.0]),
    )
)


@settings(max_examples=120, deadline=None)
@given(
    schedules,
    utilities,
    st.lists(st.floats(50, 20_000), min_size=1, max_size=12),
    st.floats(0, 30_000),
)
def test_best_response_beats_grid_search(spec, utility, wages, rebate):
    edges, rates, deduction = spec
    sched = TaxSchedule([0.0] + sorted(edges), rates, deduction=deduction)
    w = np.asarray(wages)
    h = best_response(sched, w, utility, rebate)
    assert np.all((h >= 0) & (h <= 100))
    ours = achieved_utility(sched, w, utility, rebate, h)
    grid = brute_force_utility(sched, w, utility, rebate)
    scale = np.maximum(1.0, np.abs(grid))
    # never worse than the best grid point (up to float noise)
    assert np.all(ours >= grid - 1e-9 * scale), (ours - grid)


def test_per_agent_parameters_and_chunking(monkeypatch):
    rng = np.random.default_rng(3)
    n = 3_000
    w = rng.lognormal(np.log(1_300), 0.7, n)
    util = IsoelasticUtility(eta=1.0, frisch=rng.uniform(0.2, 1.0, n))
    sched = TaxSchedule.us_federal(2024, standard_deduction=True)
    whole = best_response(sched, w, util, 4_000.0)
    monkeypatch.setattr(br_module, "CHUNK", 256)  # forces the threaded block path
    np.testing.assert_array_equal(best_response(sched, w, util, 4_000.0), whole)
    # each agent individually, with its own scalar parameters
    for i in rng.choice(n, 5, replace=False):
        single = IsoelasticUtility(eta=1.0, frisch=float(util.frisch[i]))
        assert best_response(sched, w[i : i + 1], single, 4_000.0)[0] == pytest.approx(
            whole[i], abs=1e-9
        )


def test_closed_form_interior_solution():
    """eta = 0: hours = (w (1 - t) / psi) ** e exactly on a flat tax."""
    util = IsoelasticUtility(eta=0.0, frisch=0.4, psi=1e-3)
    w = np.array([300.0, 1_000.0, 2_000.0])
    h = best_response(TaxSchedule.flat(0.3), w, util)
    np.testing.assert_allclose(h, np.minimum((w * 0.7 / 1e-3) ** 0.4, 100), rtol=1e-12)


def test_frisch_elasticity_of_hours():
    """d log l / d log net wage = e with no income effects."""
    util = IsoelasticUtility(eta=0.0, frisch=0.35, psi=1e-2)
    w = np.array([1_000.0])
    h1 = best_response(TaxSchedule.flat(0.20), w, util)[0]
    h2 = best_response(TaxSchedule.flat(0.21), w, util)[0]
    assert np.log(h2 / h1) / np.log(0.79 / 0.80) == pytest.approx(0.35, rel=1e-9)
    assert QuasiLinearUtility(delta=3.5).frisch_elasticity == pytest.approx(0.4)


def test_log_utility_hours_independent_of_wage_without_rebate():
    util = IsoelasticUtility()  # eta = 1, default psi: 40 hours under any flat tax
    w = np.array([200.0, 1_000.0, 50_000.0])
    np.testing.assert_allclose(best_response(TaxSchedule.flat(0.3), w, util), 40.0, rtol=1e-9)


def test_share_at_hours_cap_reference_vs_default():
    rng = np.random.default_rng(0)
    income = sample_gb2(rng, 20_000)
    w = income / 40.0
    sched = TaxSchedule.us_federal(2024, standard_deduction=False)  # the reference: from the first dollar
    ref = best_response(sched, w, QuasiLinearUtility(), 0.0)
    ours, _ = equilibrium(sched, w, IsoelasticUtility())
    share_ref = np.mean(ref >= 100 - 1e-9)
    share_ours = np.mean(ours >= 100 - 1e-9)
    assert share_ref > 0.85  # the reference's defaults: most agents at the cap
    assert share_ours < 0.01  # ours: interior solutions
    assert 20 < np.median(ours) < 45


def test_equilibrium_rebate_is_self_consistent():
    rng = np.random.default_rng(1)
    w = rng.lognormal(np.log(1_300), 0.8, 5_000)
    sched = TaxSchedule.us_federal(2024, standard_deduction=False)
    util = IsoelasticUtility()
    h, r = equilibrium(sched, w, util, rebate_share=1.0)
    assert r == pytest.approx(lump_sum_rebate(sched.tax(w * h)), rel=1e-6)
    np.testing.assert_allclose(best_response(sched, w, util, r), h, atol=1e-6)
    # income effects: a larger rebate lowers hours
    assert best_response(sched, w, util, r + 10_000).mean() < h.mean()


def test_zero_wage_and_bounds():
    util = IsoelasticUtility()
    h = best_response(TaxSchedule.flat(0.1), np.array([0.0, 1_000.0]), util, 0.0, (10.0, 30.0))
    assert h[0] == 10.0 and 10.0 <= h[1] <= 30.0
    with pytest.raises(ValueError):
        best_response(TaxSchedule.flat(0.1), np.array([1.0]), util, 0.0, (50.0, 10.0))
