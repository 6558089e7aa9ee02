"""The numerical optimum of a welfare function over bracket rates for rational workers.

Black-box search with scipy: every candidate rate vector is evaluated by solving the
workers' exact best responses (with a self-consistent lump-sum rebate) and computing the
welfare function.  The search starts from a grid of flat schedules and the given
schedule, then refines the best starts with bounded Powell (derivative-free; the
objective has kinks), and finally polishes each rate by small coordinate moves.  This optimum is the target an LLM planner is judged against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from simulator.economy.best_response import DEFAULT_HOURS_BOUNDS, equilibrium
from simulator.economy.outcome import evaluate
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import Utility
from simulator.economy.welfare import social_welfare


@dataclass
class OptimumResult:
    """The best schedule found, its welfare, and the search's cost."""

    schedule: TaxSchedule
    welfare: float
    evaluations: int
    start_welfare: float
    history: list[tuple[tuple[float, ...], float]] = field(default_factory=list, repr=False)


def welfare_of_rates(
    rates: ArrayLike,
    schedule: TaxSchedule,
    wages: np.ndarray,
    utility: Utility,
    objective: str,
    objective_params: dict | None = None,
    rebate_share: float = 1.0,
    weights: np.ndarray | None = None,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
) -> float:
    """Welfare when rational workers face ``schedule`` with ``rates``."""
    sched = schedule.with_rates(np.clip(np.asarray(rates, dtype=float), 0.0, 1.0))
    hours, _ = equilibrium(sched, wages, utility, rebate_share, hours_bounds, weights)
    out = evaluate(sched, wages, hours, utility, rebate_share, weights)
    return social_welfare(objective, out, **(objective_params or {}))


def optimal_schedule(
    schedule: TaxSchedule,
    wages: ArrayLike,
    utility: Utility,
    objective: str = "utilitarian",
    objective_params: dict | None = None,
    rebate_share: float = 1.0,
    weights: ArrayLike | None = None,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
    rate_bounds: tuple[float, float] = (0.0, 1.0),
    flat_grid: int = 11,
    n_refine: int = 2,
    max_evaluations: int = 600,
    xtol: float = 1e-3,
) -> OptimumResult:
    """Search bracket rates of ``schedule`` (same thresholds) maximising ``objective``.

    ``wages`` in dollars a year per weekly hour.  ``rate_bounds`` bound every rate.
    Returns the best schedule found; the search is deterministic.
    """
    w = np.asarray(wages, dtype=float)
    wts = None if weights is None else np.asarray(weights, dtype=float)
    lo, hi = rate_bounds
    k = schedule.n_brackets
    history: list[tuple[tuple[float, ...], float]] = []
    cache: dict[tuple[float, ...], float] = {}

    def f(x: np.ndarray) -> float:
        x = np.clip(x, lo, hi)
        key = tuple(np.round(x, 12))
        if key not in cache:
            if len(cache) >= max_evaluations:
                return -max(v for v in cache.values())  # budget spent: stay put
            val = welfare_of_rates(
                x, schedule, w, utility, objective, objective_params, rebate_share, wts,
                hours_bounds,
            )
            cache[key] = val
            history.append((key, val))
        return -cache[key]

    start = np.clip(schedule.rate_array, lo, hi)
    start_welfare = -f(start)
    starts = [start] + [np.full(k, r) for r in np.linspace(lo, hi, flat_grid)]
    scored = sorted(starts, key=f)[: max(1, n_refine)]
    for x0 in scored:
        if k == 1:
            from scipy.optimize import minimize_scalar

            minimize_scalar(lambda r: f(np.array([r])), bounds=(lo, hi), method="bounded",
                            options={"xatol": xtol})
        else:
            minimize(f, x0, method="Powell", bounds=[(lo, hi)] * k,
                     options={"xtol": xtol, "ftol": 1e-10, "maxfev": max_evaluations})
    # coordinate polish: Powell can stall on the objective's kinks; try small moves of
    # each rate and keep any that improve (deterministic, within the evaluation budget)
    best = np.array(max(cache, key=cache.get))
    for step in (0.05, 0.02, 0.01, 0.005, 0.002):
        improved = True
        while improved and len(cache) < max_evaluations:
            improved = False
            for j in range(k):
                for sign in (1.0, -1.0):
                    trial = best.copy()
                    trial[j] = np.clip(trial[j] + sign * step, lo, hi)
                    if f(trial) < f(best) - 1e-12 * max(1.0, abs(f(best))):
                        best, improved = trial, True
    best_key = max(cache, key=cache.get)
    return OptimumResult(
        schedule=schedule.with_rates(np.array(best_key)),
        welfare=cache[best_key],
        evaluations=len(cache),
        start_welfare=start_welfare,
        history=history,
    )
