"""Welfare differences in consumption-equivalent terms.

The consumption equivalent of a welfare gap is the uniform proportional change in every
worker's consumption (post-tax income, dollars a year), hours held fixed, that moves the
welfare of an outcome to a target level.  For mean log utility it has the closed form
``exp(W_target - W) - 1``; in general it is found by a bracketed root search, since
every welfare function here that depends on consumption increases in a uniform scaling
of it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import brentq

from simulator.economy.utility import Utility
from simulator.economy.welfare import Outcome, social_welfare


def scaled_welfare(
    outcome: Outcome, scale: float, utility: Utility, swf: str, params: dict | None = None
) -> float:
    """Welfare of ``outcome`` with every worker's consumption multiplied by ``scale`` (hours fixed)."""
    c = outcome.post_tax * scale
    scaled = replace(outcome, post_tax=c, utility=utility(c, outcome.hours))
    return social_welfare(swf, scaled, **(params or {}))


def consumption_equivalent(
    outcome: Outcome,
    target_welfare: float,
    utility: Utility,
    swf: str = "utilitarian",
    params: dict | None = None,
    max_gain: float = 100.0,
) -> float:
    """Uniform % change of consumption (as a fraction) taking ``outcome`` to ``target_welfare``.

    Positive when the target is above the outcome's welfare (e.g. ``0.01``: everyone would
    need 1 % more consumption to be as well off as at the target), negative below.
    Raises ValueError when the welfare function does not respond to consumption or the
    target cannot be reached with a change between -99.9 % and ``max_gain``.
    """
    def gap(lam: float) -> float:
        return scaled_welfare(outcome, 1.0 + lam, utility, swf, params) - target_welfare

    g0 = gap(0.0)
    if g0 == 0.0:
        return 0.0
    if g0 < 0:  # the target is higher: search upwards
        lo, hi = 0.0, 0.01
        while gap(hi) < 0:
            lo, hi = hi, hi * 4.0
            if hi > max_gain:
                raise ValueError(f"{swf}: target welfare not reached with {max_gain:.0%} more consumption")
    else:  # the target is lower: search downwards
        lo, hi = -0.01, 0.0
        while gap(lo) > 0:
            if lo <= -0.999:
                raise ValueError(f"{swf}: target welfare not reached with 99.9 % less consumption")
            lo, hi = max(lo * 4.0, -0.999), lo
    if not (np.isfinite(gap(lo)) and np.isfinite(gap(hi))):
        raise ValueError(f"{swf}: welfare is not finite near the target")
    return float(brentq(gap, lo, hi, xtol=1e-12, rtol=1e-10))
