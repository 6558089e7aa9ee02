"""Incentive checks: elasticity of taxable income and the income effect of the rebate.

Pure functions over replies: hours a week per worker under each schedule or rebate.
"""

from __future__ import annotations

import numpy as np

from simulator.config.validity_names import OUTSIDE, WITHIN
from simulator.economy.elasticity import ElasticityEstimate, estimate_elasticity
from simulator.economy.tax import TaxSchedule
from simulator.validity.result import CheckResult, mean_se, ranged, unmeasurable

#: Fewer workers than this: no interval is reported.
MIN_WORKERS = 10


def eti_from_incomes(
    base: TaxSchedule,
    perturbations: tuple[float, ...],
    incomes: np.ndarray,
    weights: np.ndarray | None = None,
) -> ElasticityEstimate:
    """ETI from already collected pre-tax incomes, shape ``(n, len(perturbations))``
    (dollars a year): the same estimator as :func:`estimate_elasticity`."""
    cols = iter(np.asarray(incomes, dtype=float).T)
    return estimate_elasticity(lambda _s: next(cols), base, perturbations, weights)


def eti_check(est: ElasticityEstimate | None, rational: ElasticityEstimate | None, n: int,
              why: str = "") -> CheckResult:
    """Within range when the 95 % interval excludes 0 and meets the literature range."""
    rat = rational.value if rational is not None else float("nan")
    if n < MIN_WORKERS:
        return unmeasurable("incentives.eti", f"needs at least {MIN_WORKERS} workers, have {n}", n, rat)
    if est is None:
        return unmeasurable("incentives.eti", why or "the elasticity could not be estimated", n, rat)
    res = ranged("incentives.eti", value=est.value, ci_low=est.ci_low, ci_high=est.ci_high,
                 rational=rat, n=est.n_agents,
                 detail=f"{est.n_dropped} workers dropped with zero income" if est.n_dropped else "")
    meets = est.ci_high >= res.range_low and est.ci_low <= res.range_high
    res.verdict = WITHIN if (est.ci_low > 0 and meets) else OUTSIDE
    if est.ci_low <= 0 <= est.ci_high:
        res.detail = ("the interval includes 0: no measurable response to taxes; " + res.detail).rstrip("; ")
    return res


def marginal_propensity_to_earn(
    wages: np.ndarray, hours_before: np.ndarray, hours_after: np.ndarray, rebate_change: float,
) -> np.ndarray:
    """Per-worker change of pre-tax earnings per dollar of extra rebate ($ per $)."""
    return np.asarray(wages, float) * (np.asarray(hours_after, float) - np.asarray(hours_before, float)) / rebate_change


def income_effect_check(
    wages: np.ndarray, hours_before: np.ndarray, hours_after: np.ndarray, rebate_change: float,
    weights: np.ndarray | None, rational: float,
) -> CheckResult:
    """Within range when the 95 % interval of the mean MPE excludes 0 and meets the range."""
    n = len(wages)
    if n < MIN_WORKERS:
        return unmeasurable("incentives.income_effect",
                            f"needs at least {MIN_WORKERS} workers, have {n}", n, rational)
    mpe = marginal_propensity_to_earn(wages, hours_before, hours_after, rebate_change)
    m, se = mean_se(mpe, weights)
    res = ranged("incentives.income_effect", value=m, ci_low=m - 1.96 * se, ci_high=m + 1.96 * se,
                 rational=rational, n=n, detail=f"rebate raised by ${rebate_change:,.0f} a year")
    meets = res.ci_high >= res.range_low and res.ci_low <= res.range_high
    res.verdict = WITHIN if (res.ci_high < 0 and meets) else OUTSIDE
    return res
