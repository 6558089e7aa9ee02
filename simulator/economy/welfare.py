"""Social welfare functions and inequality measures.

All functions are vectorised over agents and accept optional population ``weights``
(e.g. survey or stratification weights; default: every agent counts once).

Formulas (``u_i`` utility, ``z_i`` pre-tax income, ``c_i`` post-tax income incl. rebate,
``w_i`` population weights normalised to sum to 1):

* utilitarian mean      ``W = sum_i w_i u_i``  (``utilitarian_sum`` multiplies by n)
* inverse-income weighted ``W = sum_i g_i u_i / sum_i g_i`` with
  ``g_i = w_i / max(z_i, floor)``; the income floor (dollars a year) keeps the weight of
  zero earners finite.  This is what the LLM Economist code calls "Rawlsian"; it is not
  Rawlsian: it is a utilitarian sum with welfare weights falling in income.
* inverse-income sum    ``W = sum_i u_i / max(z_i, floor)``, unnormalised: exactly the LLM
  Economist's planner objective (floor $1), kept for comparison.
* max-min (Rawlsian)    ``W = min_i u_i`` (over agents with positive weight)
* Atkinson              ``EDE_eps = (sum_i w_i c_i^(1-eps))^(1/(1-eps))`` (geometric mean at
  ``eps = 1``), the equally-distributed-equivalent income; the Atkinson index is
  ``A = 1 - EDE / mean(c)``.
* equality x productivity (AI Economist, Zheng et al. 2022)
  ``W = (1 - n/(n-1) * Gini(c)) * mean(z)``; the AI Economist uses the sum of incomes,
  we use the mean so that populations of different sizes compare.
* Gini                  exact, from sorted values in O(n log n):
  ``G = sum_i (2 F_i - w_i) x_i / sum_i w_i x_i - 1`` with ``F_i`` the cumulative weight
  (for equal weights ``G = 2 sum_i i x_(i) / (n sum x) - (n + 1)/n``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_INCOME_FLOOR = 1_000.0  # dollars a year


def _weights(n: int, weights: ArrayLike | None) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n) if n else np.zeros(0)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {w.shape}")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative and not all zero")
    return w / w.sum()


def gini(x: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Exact Gini coefficient of ``x`` (negative values allowed; 0 for equal values)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    if n == 0:
        return 0.0
    if weights is None:  # the values in order suffice: a sort, not an argsort
        xs = np.sort(x)
        total = xs.sum()
        if total == 0:
            return 0.0
        i = np.arange(1, n + 1)
        return float(2.0 * np.dot(i, xs) / (n * total) - (n + 1.0) / n)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    w = _weights(n, weights)[order]
    total = np.dot(w, xs)
    if total == 0:
        return 0.0
    cum = np.cumsum(w)
    return float(np.dot(2.0 * cum - w, w * xs) / total - 1.0)


def utilitarian(utility: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Population-weighted mean utility."""
    u = np.asarray(utility, dtype=float)
    return float(np.dot(_weights(u.size, weights), u))


def utilitarian_sum(utility: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Sum of utilities (mean times the number of agents)."""
    u = np.asarray(utility, dtype=float)
    return utilitarian(u, weights) * u.size


def inverse_income_weighted(
    utility: ArrayLike,
    income: ArrayLike,
    income_floor: float = DEFAULT_INCOME_FLOOR,
    weights: ArrayLike | None = None,
) -> float:
    """Utility weighted by 1 / max(pre-tax income, ``income_floor``), normalised."""
    u = np.asarray(utility, dtype=float)
    if income_floor <= 0:
        raise ValueError("income_floor must be > 0 dollars a year")
    g = _weights(u.size, weights) / np.maximum(np.asarray(income, dtype=float), income_floor)
    return float(np.dot(g, u) / g.sum())


def inverse_income_sum(
    utility: ArrayLike,
    income: ArrayLike,
    income_floor: float = 1.0,
    weights: ArrayLike | None = None,
) -> float:
    """The LLM Economist's objective: ``sum_i u_i / max(z_i, floor)`` (not normalised).

    Kept for comparison with the reference; unlike :func:`inverse_income_weighted` its
    scale changes with the number of workers and with the incomes themselves.  With
    population weights it is ``n * sum_i w_i u_i / max(z_i, floor)`` (w normalised).
    """
    u = np.asarray(utility, dtype=float)
    if income_floor <= 0:
        raise ValueError("income_floor must be > 0 dollars a year")
    terms = u / np.maximum(np.asarray(income, dtype=float), income_floor)
    return float(u.size * np.dot(_weights(u.size, weights), terms))


def maxmin(utility: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Rawlsian (max-min) welfare: the utility of the worst-off agent."""
    u = np.asarray(utility, dtype=float)
    if weights is not None:
        u = u[np.asarray(weights) > 0]
    return float(u.min())


def atkinson_ede(income: ArrayLike, epsilon: float, weights: ArrayLike | None = None) -> float:
    """Equally-distributed-equivalent income with inequality aversion ``epsilon`` >= 0."""
    x = np.asarray(income, dtype=float)
    if epsilon < 0:
        raise ValueError("epsilon must be >= 0")
    w = _weights(x.size, weights)
    if epsilon == 0:
        return float(np.dot(w, x))
    if np.any(x <= 0):
        raise ValueError("Atkinson welfare with epsilon > 0 needs positive incomes")
    if epsilon == 1:
        return float(np.exp(np.dot(w, np.log(x))))
    return float(np.dot(w, x ** (1.0 - epsilon)) ** (1.0 / (1.0 - epsilon)))


def atkinson_index(income: ArrayLike, epsilon: float, weights: ArrayLike | None = None) -> float:
    """Atkinson inequality index ``1 - EDE / mean`` in [0, 1)."""
    x = np.asarray(income, dtype=float)
    return 1.0 - atkinson_ede(x, epsilon, weights) / float(np.dot(_weights(x.size, weights), x))


def equality_times_productivity(
    post_tax_income: ArrayLike, pre_tax_income: ArrayLike, weights: ArrayLike | None = None,
    gini_post_tax: float | None = None,
) -> float:
    """AI-Economist objective: ``(1 - n/(n-1) Gini(post-tax)) * mean(pre-tax income)``.

    ``gini_post_tax``: the Gini of ``post_tax_income`` when already known (an
    :class:`Outcome` computes it once)."""
    c = np.asarray(post_tax_income, dtype=float)
    n = c.size
    if n < 2:
        return float(np.mean(pre_tax_income)) if n else 0.0
    # small-sample factor n/(n-1); with weights, n is the effective sample size
    w = _weights(n, weights)
    n_eff = 1.0 / np.sum(w**2)
    g = gini(c, weights) if gini_post_tax is None else gini_post_tax
    equality = 1.0 - n_eff / (n_eff - 1.0) * g if n_eff > 1 else 1.0
    return float(equality * np.dot(_weights(n, weights), np.asarray(pre_tax_income, float)))


@dataclass(frozen=True)
class Outcome:
    """Everything welfare needs about one step: arrays of shape ``(n,)``.

    ``pre_tax``, ``tax``, ``post_tax`` in dollars a year (``post_tax`` includes the
    rebate), ``hours`` in hours a week, ``rebate`` per person in dollars a year.
    """

    hours: np.ndarray
    pre_tax: np.ndarray
    tax: np.ndarray
    rebate: float
    post_tax: np.ndarray
    utility: np.ndarray
    weights: np.ndarray | None = None

    @property
    def revenue(self) -> float:
        """Mean tax per person (dollars a year)."""
        return utilitarian(self.tax, self.weights)

    # each inequality measure once per outcome (a sort of a million values is the
    # costliest statistic of a year; the record, the data collector and the welfare
    # functions all ask for it)
    @cached_property
    def gini_pre_tax(self) -> float:
        """:func:`gini` of pre-tax income."""
        return gini(self.pre_tax, self.weights)

    @cached_property
    def gini_post_tax(self) -> float:
        """:func:`gini` of post-tax income (rebate included)."""
        return gini(self.post_tax, self.weights)


def _swf_registry() -> dict[str, Callable[..., float]]:
    return {
        "utilitarian": lambda o, **k: utilitarian(o.utility, o.weights),
        "inverse_income": lambda o, income_floor=DEFAULT_INCOME_FLOOR, **k: (
            inverse_income_weighted(o.utility, o.pre_tax, income_floor, o.weights)
        ),
        "inverse_income_sum": lambda o, income_floor=1.0, **k: inverse_income_sum(
            o.utility, o.pre_tax, income_floor, o.weights
        ),
        "maxmin": lambda o, **k: maxmin(o.utility, o.weights),
        "atkinson": lambda o, epsilon=1.0, **k: atkinson_ede(
            np.maximum(o.post_tax, 1.0), epsilon, o.weights
        ),
        "equality_productivity": lambda o, **k: equality_times_productivity(
            o.post_tax, o.pre_tax, o.weights, o.gini_post_tax
        ),
        "revenue": lambda o, **k: o.revenue,
    }


SWF_NAMES: tuple[str, ...] = tuple(_swf_registry())

SWF_DESCRIPTIONS: dict[str, str] = {
    "utilitarian": "mean utility over all workers",
    "inverse_income": "mean utility weighted by 1/max(pre-tax income, income floor)",
    "inverse_income_sum": "sum of utility / max(pre-tax income, income floor): the LLM Economist's objective",
    "maxmin": "utility of the worst-off worker (Rawlsian max-min)",
    "atkinson": "Atkinson equally-distributed-equivalent post-tax income (inequality aversion epsilon)",
    "equality_productivity": "(1 - n/(n-1) Gini of post-tax income) x mean pre-tax income (AI Economist)",
    "revenue": "tax revenue per person",
}


def social_welfare(name: str, outcome: Outcome, **params: float) -> float:
    """Evaluate the welfare function ``name`` (one of :data:`SWF_NAMES`)."""
    registry = _swf_registry()
    if name not in registry:
        raise ValueError(f"unknown welfare function {name!r}; choose one of {', '.join(registry)}")
    return float(registry[name](outcome, **params))
