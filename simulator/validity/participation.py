"""Participation checks: does the population choose *whether* to work as people do?

* ``participation.employment``: the employment rate at the starting schedule against the
  population's CPS 2024 employment target (the weighted mean of ``employment_target``:
  the employment-population ratios the fixed costs are calibrated to);
* ``participation.elasticity``: the extensive-margin elasticity, the response of the
  employment rate to a 10 % rise in every person's net gain from working (an in-work
  benefit ``b_i = 0.1 * (c_i(work) - c_i(0))`` shown in the take-home table): ``log(P1 /
  P0) / log(1.1)`` with a delta-method interval over the paired replies.

Both are pure functions of the replies; ``collect`` asks for them.
"""

from __future__ import annotations

import numpy as np

from simulator.config.validity_names import OUTSIDE, WITHIN
from simulator.economy.fixed_costs import REFORM_RATIO
from simulator.validity.result import CheckResult, ranged, unmeasurable

MIN_PEOPLE = 30


def _weights(w: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if w is None else np.asarray(w, dtype=float)


def employment_check(hours: np.ndarray, target: float, weights: np.ndarray | None,
                     rational: float) -> CheckResult:
    """Within range when the 95 % interval of (employment rate - target) meets the range
    (in shares)."""
    n = hours.size
    if n < MIN_PEOPLE:
        return unmeasurable("participation.employment", f"needs at least {MIN_PEOPLE} people, have {n}",
                            n, rational)
    w = _weights(weights, n)
    x = (hours > 0).astype(float)
    p = float(np.average(x, weights=w))
    n_eff = w.sum() ** 2 / np.sum(w**2)
    se = float(np.sqrt(max(p * (1 - p), 1e-12) / n_eff))
    d = p - target
    res = ranged("participation.employment", value=d, ci_low=d - 1.96 * se, ci_high=d + 1.96 * se,
                 rational=rational, n=n,
                 detail=f"employment rate {p:.1%} against the CPS 2024 target {target:.1%}")
    res.verdict = WITHIN if res.ci_high >= res.range_low and res.ci_low <= res.range_high else OUTSIDE
    return res


def elasticity_value(h0: np.ndarray, h1: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
    """The arc elasticity and its delta-method standard error from paired replies
    (``h0`` at the starting schedule, ``h1`` with the in-work benefit)."""
    n = h0.size
    w = _weights(weights, n)
    w = w / w.sum()
    x0, x1 = (h0 > 0).astype(float), (h1 > 0).astype(float)
    p0, p1 = float(w @ x0), float(w @ x1)
    if p0 <= 0 or p1 <= 0:
        return float("nan"), float("nan")
    el = float(np.log(p1 / p0) / np.log(REFORM_RATIO))
    # influence function of log(p1) - log(p0) per person
    infl = (x1 - p1) / p1 - (x0 - p0) / p0
    var = float(np.sum(w**2 * infl**2))
    return el, float(np.sqrt(var) / np.log(REFORM_RATIO))


def elasticity_check(h0: np.ndarray, h1: np.ndarray, weights: np.ndarray | None, rational: float) -> CheckResult:
    """Within range when the 95 % interval of the elasticity excludes 0 (a measurable
    response) and meets the literature's range, as the ETI check judges."""
    n = h0.size
    if n < MIN_PEOPLE:
        return unmeasurable("participation.elasticity", f"needs at least {MIN_PEOPLE} people, have {n}",
                            n, rational)
    el, se = elasticity_value(h0, h1, weights)
    if not np.isfinite(el):
        return unmeasurable("participation.elasticity", "nobody works at the starting schedule or with the "
                            "in-work benefit", n, rational)
    res = ranged("participation.elasticity", value=el, ci_low=el - 1.96 * se, ci_high=el + 1.96 * se,
                 rational=rational, n=n,
                 detail=f"in-work benefit of {REFORM_RATIO - 1:.0%} of each person's net gain from working")
    meets = res.ci_high >= res.range_low and res.ci_low <= res.range_high
    res.verdict = WITHIN if (res.ci_low > 0 and meets) else OUTSIDE
    if res.ci_low <= 0 <= res.ci_high:
        res.detail += "; the interval includes 0: no measurable response of employment"
    return res
