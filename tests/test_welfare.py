"""Welfare functions and inequality measures against direct formulas."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.welfare import (
    Outcome,
    atkinson_ede,
    atkinson_index,
    equality_times_productivity,
    gini,
    inverse_income_weighted,
    maxmin,
    social_welfare,
    utilitarian,
    utilitarian_sum,
)


def gini_pairs(x):
    """Mean absolute difference over all ordered pairs / (2 mean): O(n^2), independent."""
    x = np.asarray(x, float)
    return np.abs(x[:, None] - x[None, :]).mean() / (2 * x.mean())


@settings(max_examples=150, deadline=None)
# incomes of at least a micro-dollar in total: below it the O(n^2) reference underflows
# (values [0, 5e-324] give it 0/0)
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=60).filter(lambda v: sum(v) > 1e-6))
def test_gini_equals_pairwise_formula(values):
    assert gini(values) == pytest.approx(gini_pairs(values), abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(1, 1e5), min_size=1, max_size=15),
    st.lists(st.integers(1, 4), min_size=15, max_size=15),
)
def test_weighted_gini_equals_replicated_sample(values, counts):
    counts = counts[: len(values)]
    replicated = np.repeat(values, counts)
    assert gini(values, weights=counts) == pytest.approx(gini_pairs(replicated), abs=1e-9)


def test_gini_known_values():
    assert gini([5, 5, 5]) == 0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)  # (n-1)/n for one holder
    assert gini(np.arange(1, 101)) == pytest.approx(gini_pairs(np.arange(1, 101)))


def test_atkinson_closed_forms():
    x = np.array([10_000.0, 40_000.0, 90_000.0])
    assert atkinson_ede(x, 0) == pytest.approx(x.mean())
    assert atkinson_ede(x, 1) == pytest.approx(np.prod(x) ** (1 / 3))
    assert atkinson_ede(x, 2) == pytest.approx(1 / np.mean(1 / x))  # harmonic mean
    assert atkinson_ede(x, 0.5) == pytest.approx(np.mean(np.sqrt(x)) ** 2)
    assert atkinson_index(x, 1) == pytest.approx(1 - np.prod(x) ** (1 / 3) / x.mean())
    assert atkinson_index(np.full(4, 7.0), 2) == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError):
        atkinson_ede(np.array([0.0, 1.0]), 1)


def test_utilitarian_inverse_income_maxmin():
    u = np.array([1.0, 2.0, 6.0])
    z = np.array([0.0, 10_000.0, 40_000.0])
    assert utilitarian(u) == pytest.approx(3.0)
    assert utilitarian_sum(u) == pytest.approx(9.0)
    assert utilitarian(u, weights=[2, 1, 1]) == pytest.approx((2 + 2 + 6) / 4)
    g = 1 / np.maximum(z, 1_000.0)
    assert inverse_income_weighted(u, z, income_floor=1_000.0) == pytest.approx(
        np.sum(g * u) / g.sum()
    )
    assert maxmin(u) == 1.0
    assert maxmin(u, weights=[0, 1, 1]) == 2.0
    with pytest.raises(ValueError):
        inverse_income_weighted(u, z, income_floor=0)


def test_equality_times_productivity():
    c = np.array([10.0, 30.0])
    z = np.array([0.0, 40.0])
    g = gini(c)
    assert equality_times_productivity(c, z) == pytest.approx((1 - 2 * g) * 20.0)


def test_rebate_balances_budget():
    taxes = np.array([0.0, 1_000.0, 5_000.0])
    assert lump_sum_rebate(taxes) == pytest.approx(2_000.0)
    assert lump_sum_rebate(taxes, share=0.5) == pytest.approx(1_000.0)
    w = np.array([1.0, 2.0, 1.0])
    r = lump_sum_rebate(taxes, weights=w)
    assert np.dot(w, np.full(3, r)) == pytest.approx(np.dot(w, taxes))
    with pytest.raises(ValueError):
        lump_sum_rebate(taxes, share=1.5)


def test_social_welfare_registry():
    o = Outcome(
        hours=np.array([10.0, 40.0]),
        pre_tax=np.array([5_000.0, 80_000.0]),
        tax=np.array([0.0, 10_000.0]),
        rebate=5_000.0,
        post_tax=np.array([10_000.0, 75_000.0]),
        utility=np.array([1.0, 3.0]),
    )
    assert social_welfare("utilitarian", o) == 2.0
    assert social_welfare("maxmin", o) == 1.0
    assert social_welfare("revenue", o) == 5_000.0
    assert social_welfare("atkinson", o, epsilon=1) == pytest.approx(np.sqrt(10_000 * 75_000))
    with pytest.raises(ValueError, match="unknown welfare function"):
        social_welfare("happiness", o)


def test_inverse_income_sum_is_the_reference_objective():
    from simulator.economy.welfare import inverse_income_sum

    u = np.array([3.0, 4.0])
    z = np.array([0.0, 200.0])
    assert inverse_income_sum(u, z, income_floor=1.0) == pytest.approx(3.0 / 1 + 4.0 / 200)
