"""Exact rational labour supply under a piecewise-linear tax schedule plus a rebate.

For each agent with wage ``w`` (dollars a year per weekly hour, so gross income
``z = w * l``) the budget on tax segment k is linear in hours:
``c = w * (1 - t_k) * l + I_k + R`` where ``I_k`` is the segment's intercept and ``R`` the
lump-sum rebate.  The best response is found exactly:

* on a convex budget set (marginal rates never fall) utility is concave in hours, so the
  optimum lies on the last segment whose right-derivative of utility at its start is
  positive; one exact segment solve per agent;
* otherwise every segment's constrained optimum (interior point, kink or bound) is
  computed and the best is picked.

Everything is vectorised over agents (arrays of shape ``(n,)`` or ``(n, segments)``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import (
    IsoelasticUtility,
    QuasiLinearUtility,
    Utility,
    subset_utility,
)

DEFAULT_HOURS_BOUNDS = (0.0, 100.0)
#: Agents per block in large problems: blocks fit in cache and run on a thread pool
#: (numpy releases the GIL inside its array loops).
CHUNK = 65_536


def _chunked(schedule, w, utility, rebate, bounds) -> np.ndarray:
    out = np.empty_like(w)
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)

    def work(start: int) -> None:
        sl = slice(start, min(start + CHUNK, w.size))
        out[sl] = best_response(schedule, w[sl], subset_utility(utility, sl), r[sl], bounds)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(work, range(0, w.size, CHUNK)))
    return out


def _segment_arrays(schedule, wages, rebate, bounds):
    lower, upper, rate, intercept = schedule.segments()
    w = np.asarray(wages, dtype=float)[:, None]
    lmin, lmax = bounds
    safe_w = np.where(w > 0, w, 1.0)
    lo = np.clip(lower[None, :] / safe_w, lmin, lmax)
    hi = np.clip(upper[None, :] / safe_w, lmin, lmax)
    nw = w * (1.0 - rate[None, :])
    v = intercept[None, :] + np.asarray(rebate, dtype=float).reshape(-1, 1)
    return lo, hi, nw, v


def best_response(
    schedule: TaxSchedule,
    wages: ArrayLike,
    utility: Utility,
    rebate: ArrayLike = 0.0,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
) -> np.ndarray:
    """Utility-maximising hours a week for every agent.

    ``wages`` in dollars a year per weekly hour; ``rebate`` (dollars a year, scalar or
    per agent) is taken as given.  Returns hours within ``hours_bounds``.
    """
    w = np.asarray(wages, dtype=float)
    if w.ndim != 1:
        raise ValueError("wages must be a one-dimensional array")
    lmin, lmax = map(float, hours_bounds)
    if not 0 <= lmin <= lmax:
        raise ValueError(f"invalid hours bounds {hours_bounds}")
    n = w.size
    if n == 0:
        return np.zeros(0)
    if n > 2 * CHUNK:
        return _chunked(schedule, w, utility, rebate, (lmin, lmax))
    if schedule.is_progressive:
        hours = _progressive_best_response(schedule, w, utility, rebate, lmin, lmax)
    else:
        lo, hi, nw, v = _segment_arrays(schedule, w, rebate, (lmin, lmax))
        cand = utility.segment_argmax(nw, v, lo, hi)
        u = utility(nw * cand + v, cand)
        u = np.where(hi > lo, u, -np.inf)
        hours = cand[np.arange(n), np.argmax(u, axis=1)]
    return np.where(w > 0, hours, lmin)


def _progressive_best_response(schedule, w, utility, rebate, lmin, lmax):
    """Convex budget set: binary search for the last segment whose start has a positive
    marginal gain (utility is concave in hours), then one exact segment solve."""
    lower, upper, rate, intercept = schedule.segments()
    safe_w = np.where(w > 0, w, 1.0)
    inv_w = 1.0 / safe_w
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)
    # segments holding the lower and upper hours bounds
    first = (
        np.zeros(w.shape, dtype=np.intp) if lmin == 0.0
        else np.searchsorted(lower, lmin * safe_w, side="right") - 1
    )
    last = np.maximum(np.searchsorted(lower, lmax * safe_w, side="left") - 1, first)
    lo_idx, hi_idx = first, last
    # ceil(log2(K)) rounds of a vectorised binary search over all agents at once
    for _ in range(int(np.ceil(np.log2(max(len(lower), 2))))):
        open_ = lo_idx < hi_idx
        mid = (lo_idx + hi_idx + 1) // 2
        start = np.maximum(np.take(lower, mid) * inv_w, lmin)
        nw = safe_w * (1.0 - np.take(rate, mid))
        gain = utility.marginal_gain(start, nw, np.take(intercept, mid) + r)
        p = gain > 0
        lo_idx = np.where(open_ & p, mid, lo_idx)
        hi_idx = np.where(open_ & ~p, mid - 1, hi_idx)
    k = lo_idx
    lo = np.clip(np.take(lower, k) * inv_w, lmin, lmax)
    hi = np.clip(np.take(upper, k) * inv_w, lmin, lmax)
    return utility.segment_argmax(safe_w * (1.0 - np.take(rate, k)), np.take(intercept, k) + r, lo, hi)


def equilibrium(
    schedule: TaxSchedule,
    wages: ArrayLike,
    utility: Utility,
    rebate_share: float = 1.0,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
    weights: ArrayLike | None = None,
    tol: float = 1e-6,
) -> tuple[np.ndarray, float]:
    """Hours and the self-consistent lump-sum rebate (rational expectations).

    Solves ``R = share * mean(T(w * l(R)))`` where ``l(R)`` is the best response given
    rebate ``R``.  The gap is decreasing in ``R`` (leisure is normal), so the fixed point
    is unique and bracketed by ``[0, share * mean(T(w * l(0)))]``.  Returns
    ``(hours, rebate)`` with the rebate in dollars a year per person.
    """
    w = np.asarray(wages, dtype=float)

    def hours_at(r: float) -> np.ndarray:
        return best_response(schedule, w, utility, r, hours_bounds)

    def rebate_of(h: np.ndarray) -> float:
        return lump_sum_rebate(schedule.tax(w * h), rebate_share, weights)

    h0 = hours_at(0.0)
    r0 = rebate_of(h0)
    no_income_effects = isinstance(utility, QuasiLinearUtility) or (
        isinstance(utility, IsoelasticUtility) and utility.eta == 0.0
    )
    if r0 <= 0 or no_income_effects:
        return h0, r0
    cache: dict[float, tuple[np.ndarray, float]] = {0.0: (h0, r0)}

    def gap(r: float) -> float:
        if r not in cache:
            h = hours_at(r)
            cache[r] = (h, rebate_of(h))
        return cache[r][1] - r

    # The gap is smooth and close to linear (slope just below -1), so a secant iteration
    # from (0, r0) converges in a few best-response passes; brentq on [0, r0] is the
    # safeguard.
    tol_r = max(tol, 1e-9 * r0)
    a_r, g_a = 0.0, r0
    b_r = r0
    g_b = gap(b_r)
    r = None
    for _ in range(8):
        if abs(g_b) <= tol_r:
            r = b_r
            break
        if g_b == g_a:
            break
        nxt = b_r - g_b * (b_r - a_r) / (g_b - g_a)
        if not 0.0 <= nxt <= r0 or not np.isfinite(nxt):
            break
        a_r, g_a, b_r = b_r, g_b, nxt
        g_b = gap(b_r)
    if r is None:
        if gap(r0) >= 0:
            r = r0
        else:
            r = brentq(gap, 0.0, r0, xtol=tol_r, rtol=1e-12)
    if r in cache:
        return cache[r]
    h = hours_at(r)
    return h, rebate_of(h)
