"""The Saez (2001) optimal marginal tax rates, converted to bracket rates.

With no income effects the optimal marginal rate at income ``z`` satisfies

    tau(z) = (1 - G(z)) / (1 - G(z) + a(z) * e)

where ``e`` is the elasticity of taxable income, ``a(z) = z h(z) / (1 - H(z))`` the local
Pareto parameter of the income distribution ``H`` (density ``h``), and ``G(z)`` the
average social marginal welfare weight of the people above ``z`` relative to the
population average (weights normalised to mean 1).  For a Pareto tail with constant
``a`` and ``G = 0`` this is the Diamond-Saez top rate ``1 / (1 + a e)``.

Discretisation (documented in ``docs/economics.md``):

* ``1 - H`` and ``G`` are exact empirical tail sums over the sorted incomes;
* ``z h(z)`` is the density of log income, estimated on a histogram of log income
  (``bins_per_decade`` bins per factor of 10), evaluated at each agent's income;
* the top bracket uses the maximum-likelihood (Hill) Pareto index of the incomes above
  its threshold, ``a = n / sum(log(z_i / z_top))``;
* each other bracket's rate is the population-weighted mean of ``tau(z_i)`` over the
  agents whose income lies in it; a bracket with nobody in it takes the rate of the
  nearest populated bracket below (0 if no bracket below is populated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from simulator.economy.tax import TaxSchedule
from simulator.economy.welfare import DEFAULT_INCOME_FLOOR


def welfare_weights(
    kind: str | ArrayLike,
    incomes: np.ndarray,
    income_floor: float = DEFAULT_INCOME_FLOOR,
) -> np.ndarray:
    """Social marginal welfare weights per agent (not yet normalised).

    ``kind``: ``"inverse_income"`` (1 / max(z, floor)), ``"revenue_max"`` (all 0: the
    revenue-maximising rates), ``"utilitarian_linear"`` (all 1: utilitarian with
    quasi-linear utility, whose optimum is zero tax), or an explicit array.
    """
    if isinstance(kind, str):
        if kind == "inverse_income":
            return 1.0 / np.maximum(incomes, income_floor)
        if kind == "revenue_max":
            return np.zeros_like(incomes)
        if kind == "utilitarian_linear":
            return np.ones_like(incomes)
        raise ValueError(
            f"unknown welfare weights {kind!r}; use inverse_income, revenue_max, "
            "utilitarian_linear or an array"
        )
    g = np.asarray(kind, dtype=float)
    if g.shape != incomes.shape:
        raise ValueError("explicit welfare weights must have one entry per agent")
    return g


@dataclass(frozen=True)
class SaezResult:
    """Bracket rates and the per-bracket ingredients of the formula."""

    rates: np.ndarray
    pareto_a: np.ndarray  # mean local Pareto parameter per bracket (Hill index at the top)
    g_above: np.ndarray  # mean G(z) per bracket
    elasticity: float

    def schedule(self, thresholds: ArrayLike, deduction: float = 0.0) -> TaxSchedule:
        return TaxSchedule(thresholds, self.rates, deduction=deduction, name="Saez")


def saez_bracket_rates(
    incomes: ArrayLike,
    thresholds: ArrayLike,
    elasticity: float,
    weights: str | ArrayLike = "inverse_income",
    population_weights: ArrayLike | None = None,
    income_floor: float = DEFAULT_INCOME_FLOOR,
    bins_per_decade: int = 20,
    rate_bounds: tuple[float, float] = (0.0, 1.0),
) -> SaezResult:
    """Saez rates for brackets starting at ``thresholds`` (dollars a year of income).

    ``incomes``: pre-tax incomes of the population (dollars a year); ``elasticity``: the
    elasticity of taxable income (> 0); ``weights``: social welfare weights (see
    :func:`welfare_weights`); ``population_weights``: survey weights per agent.
    """
    z = np.asarray(incomes, dtype=float)
    thr = np.asarray(thresholds, dtype=float)
    if elasticity <= 0:
        raise ValueError("the elasticity must be > 0")
    if z.size == 0:
        raise ValueError("no incomes given")
    p = (
        np.full(z.size, 1.0 / z.size)
        if population_weights is None
        else np.asarray(population_weights, float) / np.sum(population_weights)
    )
    g = welfare_weights(weights, z, income_floor)
    mean_g = np.dot(p, g)
    g = g / mean_g if mean_g > 0 else g

    order = np.argsort(z, kind="stable")
    zs, ps, gs = z[order], p[order], g[order]
    # tail mass strictly above each agent and welfare-weight mass above
    tail = np.concatenate([np.cumsum(ps[::-1])[::-1][1:], [0.0]])
    g_tail = np.concatenate([np.cumsum((ps * gs)[::-1])[::-1][1:], [0.0]])
    with np.errstate(divide="ignore", invalid="ignore"):
        G = np.where(tail > 0, g_tail / tail, 0.0)

    # density of log income on a histogram; z h(z) = f_log(log z)
    pos = zs > 0
    a_local = np.full(zs.size, np.nan)
    if pos.sum() >= 2:
        lz = np.log10(zs[pos])
        lo, hi = np.floor(lz.min() * bins_per_decade), np.ceil(lz.max() * bins_per_decade) + 1
        edges = np.arange(lo, hi + 1) / bins_per_decade
        hist, _ = np.histogram(lz, bins=edges, weights=ps[pos])
        width_ln = np.log(10.0) / bins_per_decade  # bin width in natural-log units
        f_log = hist / width_ln
        idx = np.clip(np.searchsorted(edges, lz, side="right") - 1, 0, len(hist) - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            a_local[pos] = np.where(tail[pos] > 0, f_log[idx] / tail[pos], np.nan)

    with np.errstate(divide="ignore", invalid="ignore"):
        tau = (1.0 - G) / (1.0 - G + a_local * elasticity)

    k = len(thr)
    rates = np.full(k, np.nan)
    a_br = np.full(k, np.nan)
    g_br = np.full(k, np.nan)
    bracket = np.searchsorted(thr, zs, side="right") - 1
    for j in range(k - 1):
        m = (bracket == j) & np.isfinite(tau)
        if m.any():
            wj = ps[m] / ps[m].sum()
            rates[j] = np.dot(wj, tau[m])
            a_br[j] = np.dot(wj, a_local[m])
            g_br[j] = np.dot(wj, G[m])
    # top bracket: Hill estimate of the tail index above its threshold
    top = zs > thr[-1]
    if top.sum() >= 2:
        pt = ps[top] / ps[top].sum()
        a_top = 1.0 / np.dot(pt, np.log(zs[top] / thr[-1]))
        g_top = np.dot(pt, gs[top])
        rates[-1] = (1.0 - g_top) / (1.0 - g_top + a_top * elasticity)
        a_br[-1], g_br[-1] = a_top, g_top
    # empty brackets take the rate of the nearest populated one below
    for j in range(k):
        if not np.isfinite(rates[j]):
            below = [i for i in range(j) if np.isfinite(rates[i])]
            rates[j] = rates[below[-1]] if below else 0.0
    rates = np.clip(rates, *rate_bounds)
    return SaezResult(rates=rates, pareto_a=a_br, g_above=g_br, elasticity=float(elasticity))
