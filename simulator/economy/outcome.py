"""From hours to incomes, taxes, rebate and utility: one step of accounting."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import Utility
from simulator.economy.welfare import Outcome


def evaluate(
    schedule: TaxSchedule,
    wages: ArrayLike,
    hours: ArrayLike,
    utility: Utility,
    rebate_share: float = 1.0,
    weights: ArrayLike | None = None,
    requirement: float = 0.0,
) -> Outcome:
    """Incomes (dollars a year), taxes, the budget-balanced rebate and utilities.

    ``wages`` in dollars a year per weekly hour, ``hours`` in hours a week;
    ``requirement`` the revenue per person the government spends (see
    :func:`~simulator.economy.rebate.lump_sum_rebate`).  ``schedule`` is a
    :class:`TaxSchedule` (the income-tax-only world) or a household budget of the
    us_current_law world (``simulator.economy.taxbenefit.system.HouseholdBudget``): then
    ``tax`` is each worker's share of its unit's net tax (what totals add up) and
    ``post_tax`` the unit's consumption: own earnings + spouse's wages - net tax + rebate.
    """
    w = np.asarray(wages, dtype=float)
    h = np.asarray(hours, dtype=float)
    z = w * h
    if getattr(schedule, "per_agent", False):
        net = schedule.tax(z)
        tax = net * schedule.share
        rebate = lump_sum_rebate(tax, rebate_share, weights, requirement)
        post = z + schedule.spouse_wages - net + rebate
    else:
        tax = schedule.tax(z)
        rebate = lump_sum_rebate(tax, rebate_share, weights, requirement)
        post = z - tax + rebate
    return Outcome(
        hours=h,
        pre_tax=z,
        tax=tax,
        rebate=rebate,
        post_tax=post,
        utility=utility(post, h),
        weights=None if weights is None else np.asarray(weights, dtype=float),
    )
