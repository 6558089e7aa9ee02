"""Measuring the elasticity of taxable income (ETI) of any labour-supply rule.

The rule is a function ``respond(schedule) -> pre-tax incomes`` (dollars a year, one per
agent): the rational best response now, an LLM population later.  We scale every
net-of-tax rate of a base schedule by ``(1 + d)`` for a few perturbations ``d``, record
each agent's income, and regress log income on each agent's log net-of-tax rate with agent
fixed effects (as the AI Economist's Saez planner does):

    log z_is = alpha_i + e * log(1 - t_s(z_i)) + error

The slope ``e`` is the ETI.  Standard errors are cluster-robust by agent.  Agents with
zero income in any perturbation are dropped (reported as ``n_dropped``).  Agents
bunching at a kink do not respond to small changes, which biases ``e`` towards zero on
schedules with kinks; measure on a flat base schedule to recover the structural value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from simulator.economy.tax import TaxSchedule


@dataclass(frozen=True)
class ElasticityEstimate:
    """An ETI estimate with its cluster-robust standard error and 95 % interval."""

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n_agents: int
    n_dropped: int
    perturbations: tuple[float, ...]


def perturb_net_of_tax(schedule: TaxSchedule, d: float) -> TaxSchedule:
    """Scale every net-of-tax rate ``1 - t`` by ``(1 + d)`` (rates clipped to [0, 1])."""
    rates = 1.0 - (1.0 - schedule.rate_array) * (1.0 + d)
    return schedule.with_rates(np.clip(rates, 0.0, 1.0))


def estimate_elasticity(
    respond: Callable[[TaxSchedule], np.ndarray],
    base: TaxSchedule,
    perturbations: Sequence[float] = (-0.10, -0.05, 0.0, 0.05, 0.10),
    weights: np.ndarray | None = None,
) -> ElasticityEstimate:
    """Estimate the ETI of ``respond`` around ``base`` (see the module docstring).

    ``weights``: population weights per agent (weighted least squares); default equal.
    """
    ds = tuple(float(d) for d in perturbations)
    if len(set(ds)) < 2:
        raise ValueError("need at least two distinct perturbations")
    if any(d <= -1 for d in ds):
        raise ValueError("perturbations must be > -1")
    schedules = [perturb_net_of_tax(base, d) for d in ds]
    z = np.stack([np.asarray(respond(s), dtype=float) for s in schedules], axis=1)
    # each agent's actual net-of-tax rate in each perturbation, at its reference income
    # (the d = 0 run if present): clipping at 0 or 1 makes it differ from 1 + d
    ref = z[:, ds.index(0.0)] if 0.0 in ds else z[:, 0]
    net = np.stack([1.0 - s.marginal_rate(ref) for s in schedules], axis=1)
    keep = np.all(z > 0, axis=1) & np.all(net > 0, axis=1)
    n_dropped = int((~keep).sum())
    z, net = z[keep], net[keep]
    w = np.ones(keep.sum()) if weights is None else np.asarray(weights, dtype=float)[keep]
    w = w / w.mean() if w.size and w.mean() > 0 else w
    n = z.shape[0]
    if n < 2:
        raise ValueError("fewer than two agents with positive income in every perturbation")
    x = np.log(net)
    y = np.log(z)
    xt = x - x.mean(axis=1, keepdims=True)
    yt = y - y.mean(axis=1, keepdims=True)
    sxx = float(np.sum(w[:, None] * xt * xt))
    if sxx <= 0:
        raise ValueError("the perturbations did not change any agent's net-of-tax rate")
    slope = float(np.sum(w[:, None] * yt * xt) / sxx)
    resid = yt - slope * xt
    score = w * np.sum(resid * xt, axis=1)  # per-agent score (cluster-robust by agent)
    # small-sample correction n / (n - 1) for the clustered variance
    se = float(np.sqrt(np.sum(score**2) * n / max(n - 1, 1)) / sxx)
    return ElasticityEstimate(
        value=slope,
        stderr=se,
        ci_low=slope - 1.96 * se,
        ci_high=slope + 1.96 * se,
        n_agents=n,
        n_dropped=n_dropped,
        perturbations=ds,
    )
