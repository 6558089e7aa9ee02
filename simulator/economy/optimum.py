"""The numerical optimum of a welfare function over bracket rates for rational workers.

Every candidate rate vector is evaluated exactly: the workers' best responses at the
self-consistent lump-sum rebate (:func:`~simulator.economy.best_response.equilibrium_batch`,
many candidates at once over the whole population), then the welfare function of the
outcome (:func:`~simulator.economy.outcome.evaluate`, the simulation's accounting).

The search (deterministic):

1. score, in one batch, the given schedule, ``flat_grid`` flat schedules on
   ``linspace(rate_bounds)`` and any ``starts`` (e.g. the Saez rates);
2. refine the best ``n_refine`` (1) of them with bounded Powell (derivative-free: the
   objective has kinks where workers bunch or switch segments; ``xtol``, ``ftol``
   1e-10), each evaluation warm-started at the rebate of the point evaluated before;
3. polish the best point by coordinate moves: every rate up and down by a step, all
   2K moves scored in one batch, the best improving move taken, until none improves;
   steps of 5, 2, 1, 0.5 and 0.2 points.  Powell can stall on the kinks; after the
   polish no single rate moved by 0.2 points improves the objective.

Evaluations are cached and capped at ``max_evaluations``.  Finally the
``FINAL_RANKED`` (20) best points are evaluated again as the simulation evaluates a
schedule (:func:`welfare_of_rates`: where a worker's choice jumps with the rebate the
batch and single fixed-point solvers may stop on different sides of the jump) and the
best of them is returned with that welfare, so the result's welfare is the objective the
simulation records.  This optimum is the target the other planners are judged against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize, minimize_scalar

from simulator.economy.best_response import DEFAULT_HOURS_BOUNDS, equilibrium, equilibrium_batch
from simulator.economy.outcome import evaluate
from simulator.economy.participation import has_participation
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import Utility
from simulator.economy.welfare import social_welfare

#: coordinate polish steps (rate points / 100), largest first
POLISH_STEPS = (0.05, 0.02, 0.01, 0.005, 0.002)
#: best candidates of the search evaluated again exactly as the simulation does
FINAL_RANKED = 20


@dataclass
class OptimumResult:
    """The best schedule found, its welfare, and the search's cost.

    ``welfare`` is the objective of ``schedule`` on the agents the search was given;
    ``evaluations`` counts candidate rate vectors evaluated (each one equilibrium over
    every agent), ``batches`` the vectorised calls they were evaluated in.
    """

    schedule: TaxSchedule
    welfare: float
    evaluations: int
    start_welfare: float
    history: list[tuple[tuple[float, ...], float]] = field(default_factory=list, repr=False)
    batches: int = 0


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
    requirement: float = 0.0,
) -> float:
    """Welfare when rational workers face ``schedule`` with ``rates`` (the simulation's
    own path: :func:`equilibrium`, then :func:`evaluate`).  ``schedule`` may be a
    household budget of the us_current_law world (its income-tax rates are searched),
    ``utility`` may carry fixed costs of working (the participation choice);
    ``requirement`` is the fiscal rule's revenue requirement per person."""
    return _welfare_and_rebate(rates, schedule, wages, utility, objective, objective_params,
                               rebate_share, weights, hours_bounds, requirement)[0]


def _welfare_and_rebate(rates, schedule, wages, utility, objective, objective_params,
                        rebate_share, weights, hours_bounds, requirement):
    sched = schedule.with_rates(np.clip(np.asarray(rates, dtype=float), 0.0, 1.0))
    hours, rebate = equilibrium(sched, wages, utility, rebate_share, hours_bounds, weights,
                                requirement=requirement)
    out = evaluate(sched, wages, hours, utility, rebate_share, weights, requirement=requirement)
    return social_welfare(objective, out, **(objective_params or {})), rebate


def welfare_of_rates_batch(
    rates: ArrayLike,
    schedule: TaxSchedule,
    wages: np.ndarray,
    utility: Utility,
    objective: str,
    objective_params: dict | None = None,
    rebate_share: float = 1.0,
    weights: np.ndarray | None = None,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
    rebate_guess: ArrayLike | None = None,
    requirement: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Welfare of every row of ``rates`` (m, K), and each row's equilibrium rebate
    (dollars a year per person); row i equals :func:`welfare_of_rates` of ``rates[i]``
    to the equilibrium's tolerance.  Household budgets (us_current_law), fixed costs of working and a revenue
    requirement are solved one candidate at a time by :func:`welfare_of_rates`'s path."""
    r = np.clip(np.atleast_2d(np.asarray(rates, dtype=float)), 0.0, 1.0)
    if getattr(schedule, "per_agent", False) or requirement != 0.0 or has_participation(utility):
        pairs = [_welfare_and_rebate(x, schedule, wages, utility, objective, objective_params,
                                     rebate_share, weights, hours_bounds, requirement) for x in r]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    hours, rebates = equilibrium_batch(
        schedule, r, wages, utility, rebate_share, hours_bounds, weights, rebate_guess=rebate_guess
    )
    params = objective_params or {}
    values = np.array([
        social_welfare(objective, evaluate(schedule.with_rates(x), wages, h, utility,
                                           rebate_share, weights), **params)
        for x, h in zip(r, hours, strict=True)
    ])
    return values, rebates


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
    n_refine: int = 1,
    max_evaluations: int = 1_000,
    xtol: float = 1e-3,
    ftol: float = 1e-10,
    starts: Sequence[ArrayLike] = (),
    requirement: float = 0.0,
) -> OptimumResult:
    """Search bracket rates of ``schedule`` (same thresholds) maximising ``objective``.

    ``wages`` in dollars a year per weekly hour (one per agent: pass the whole
    population for its optimum).  ``rate_bounds`` bound every rate.  ``starts``: extra
    rate vectors scored with the flat grid (e.g. the Saez rates).  Returns the best
    schedule found; the search is deterministic.
    """
    w = np.asarray(wages, dtype=float)
    wts = None if weights is None else np.asarray(weights, dtype=float)
    lo, hi = rate_bounds
    k = schedule.n_brackets
    history: list[tuple[tuple[float, ...], float]] = []
    cache: dict[tuple[float, ...], tuple[float, float]] = {}  # rates -> (welfare, rebate)
    # the refinement stops short of the budget so that the polish always has some left
    reserve = min(max_evaluations // 4, 4 * k * len(POLISH_STEPS))
    state = {"batches": 0, "limit": max_evaluations}

    def key(x: np.ndarray) -> tuple[float, ...]:
        return tuple(np.round(np.clip(x, lo, hi), 12))

    def score(xs: Sequence[np.ndarray]) -> np.ndarray:
        """Welfare of each candidate (cached; -inf past the budget)."""
        keys = [key(x) for x in xs]
        todo = list(dict.fromkeys(kk for kk in keys if kk not in cache))
        todo = todo[: max(0, state["limit"] - len(cache))]
        if todo:
            guess = None
            if cache:  # warm start: the rebate of the nearest candidate evaluated so far
                pts = np.array(list(cache))
                rebs = np.array([rb for _, rb in cache.values()])
                near = np.argmin(((np.array(todo)[:, None, :] - pts[None]) ** 2).sum(-1), axis=1)
                guess = rebs[near]
            vals, rebs = welfare_of_rates_batch(
                np.array(todo), schedule, w, utility, objective, objective_params,
                rebate_share, wts, hours_bounds, rebate_guess=guess, requirement=requirement,
            )
            state["batches"] += 1
            for kk, v, rb in zip(todo, vals, rebs, strict=True):
                cache[kk] = (float(v), float(rb))
                history.append((kk, float(v)))
        return np.array([cache[kk][0] if kk in cache else -np.inf for kk in keys])

    def f(x: np.ndarray) -> float:
        val = score([np.asarray(x, dtype=float)])[0]
        if not np.isfinite(val):  # budget spent: stay put
            return -max(v for v, _ in cache.values())
        return -val

    start = np.clip(schedule.rate_array, lo, hi)
    grid = [np.full(k, r) for r in np.linspace(lo, hi, flat_grid)]
    extra = [np.clip(np.asarray(s, dtype=float), lo, hi) for s in starts]
    candidates = [start, *grid, *extra]
    values = score(candidates)
    start_welfare = float(values[0])
    order = np.argsort(-values, kind="stable")[: max(1, n_refine)]
    state["limit"] = max_evaluations - reserve
    for i in order:
        x0 = candidates[i]
        if k == 1:
            minimize_scalar(lambda r: f(np.array([r])), bounds=(lo, hi), method="bounded",
                            options={"xatol": xtol})
        else:
            minimize(f, x0, method="Powell", bounds=[(lo, hi)] * k,
                     options={"xtol": xtol, "ftol": ftol, "maxfev": max_evaluations})
    # coordinate polish: every rate up and down by the step, scored in one batch
    state["limit"] = max_evaluations
    best = np.array(max(cache, key=lambda kk: cache[kk][0]))
    for step in POLISH_STEPS:
        while len(cache) < max_evaluations:
            best_val = cache[key(best)][0]
            moves = []
            for j in range(k):
                for sign in (1.0, -1.0):
                    trial = best.copy()
                    trial[j] = np.clip(trial[j] + sign * step, lo, hi)
                    moves.append(trial)
            vals = score(moves)
            i = int(np.argmax(vals))
            if not vals[i] > best_val + 1e-12 * max(1.0, abs(best_val)):
                break
            best = np.array(key(moves[i]))
    # the simulation solves each schedule with :func:`equilibrium`; where a worker's choice
    # jumps with the rebate the two solvers can stop on either side of the jump, so the
    # best candidates are ranked again by the simulation's own evaluation
    top = sorted(cache, key=lambda kk: cache[kk][0], reverse=True)[:FINAL_RANKED]
    final = {kk: welfare_of_rates(np.array(kk), schedule, w, utility, objective, objective_params,
                                  rebate_share, wts, hours_bounds, requirement) for kk in top}
    best_key = max(final, key=final.get)
    best_schedule = schedule.with_rates(np.array(best_key))
    return OptimumResult(
        schedule=getattr(best_schedule, "schedule", best_schedule),
        welfare=final[best_key],
        evaluations=len(cache) + len(final),
        start_welfare=start_welfare,
        history=history,
        batches=state["batches"],
    )
