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

from simulator.economy.participation import FixedCostUtility, no_income_effects, take_home
from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.tax import TaxSchedule
from simulator.economy.utility import (
    IsoelasticUtility,
    Utility,
    _log_utility_hours,
    subset_utility,
)

DEFAULT_HOURS_BOUNDS = (0.0, 100.0)
#: Agents per block in large problems: blocks fit in cache and run on a thread pool
#: (numpy releases the GIL inside its array loops).
CHUNK = 65_536
#: Candidates x agents solved together by the batch solvers: past a few tens of thousands
#: of elements a larger block is no faster per element (measured: benchmarks/optimum.py).
BATCH_ELEMENTS = 32_768


def _chunked(schedule, w, utility, rebate, bounds) -> np.ndarray:
    out = np.empty_like(w)
    scalar = np.ndim(rebate) == 0  # one rebate for everyone stays a scalar (the fast path)
    r = float(rebate) if scalar else np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)

    def work(start: int) -> None:
        sl = slice(start, min(start + CHUNK, w.size))
        out[sl] = best_response(schedule, w[sl], subset_utility(utility, sl), r if scalar else r[sl],
                                bounds)

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
    if isinstance(utility, FixedCostUtility):  # an extensive margin: work at all?
        return _participation_best_response(schedule, w, utility, rebate, (lmin, lmax))
    if getattr(schedule, "per_agent", False):  # a household budget (us_current_law world)
        return budget_best_response(schedule.segment_table, w, utility, rebate, (lmin, lmax))
    if n > 2 * CHUNK:
        return _chunked(schedule, w, utility, rebate, (lmin, lmax))
    if schedule.is_progressive and _log_fast(schedule, utility, rebate):
        # (consumption never reaches the floor here: no floor candidate to compare)
        hours = _progressive_log_best_response(schedule, w, utility, float(rebate), lmin, lmax)[0]
        return np.where(w > 0, hours, lmin)
    if schedule.is_progressive:
        hours = _progressive_best_response(schedule, w, utility, rebate, lmin, lmax)
    elif _log_fast(schedule, utility, rebate):
        # (consumption never reaches the floor here: no floor candidate to compare)
        hours = _pieces_log_best_response(schedule, w, utility, float(rebate), lmin, lmax)
        return np.where(w > 0, hours, lmin)
    else:
        lo, hi, nw, v = _segment_arrays(schedule, w, rebate, (lmin, lmax))
        floor = getattr(utility, "c_floor", None) if getattr(utility, "eta", 0.0) > 0 else None
        if floor is not None:
            # a segment starting below the consumption floor (a negative transfer) is
            # solved from where consumption reaches the floor: utility is flat in
            # consumption below it, so not concave in hours (the lower hours are another
            # segment's candidate, or this segment's whole range when it never gets there)
            with np.errstate(divide="ignore", invalid="ignore"):
                l_f = np.where(nw > 0, (floor - v) / nw, np.inf)
            lo = np.where((nw * lo + v < floor) & (l_f <= hi), l_f, lo)
        cand = utility.segment_argmax(nw, v, lo, hi)
        u = utility(nw * cand + v, cand)
        u = np.where(hi > lo, u, -np.inf)
        hours = cand[np.arange(n), np.argmax(u, axis=1)]
    hours = _floor_candidate(schedule, w, utility, rebate, hours, lmin)
    return np.where(w > 0, hours, lmin)


def _floor_candidate(schedule, w, utility, rebate, hours, lmin):
    """Where consumption at the lower hours bound sits below an isoelastic utility's
    floor, the bound itself competes with the solves above the floor (utility is flat in
    consumption below it, so fewer hours are better there): the better of the two."""
    floor = getattr(utility, "c_floor", None) if getattr(utility, "eta", 0.0) > 0 else None
    if floor is None:
        return hours
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)
    z_min = lmin * w
    c_min = z_min - schedule.tax(z_min) + r
    below = c_min < floor
    if not below.any():
        return hours
    z = w * hours
    at_min = np.full(w.shape, lmin)
    better = utility(c_min, at_min) > utility(z - schedule.tax(z) + r, hours)
    return np.where(below & better, lmin, hours)


def _participation_best_response(schedule, w, utility: FixedCostUtility, rebate, bounds):
    """Hours with the participation choice (see :mod:`simulator.economy.participation`):
    the best positive hours with the fixed cost paid (the intensive best response with
    the transfer less the cost), kept where its utility beats not working (hours 0, the
    take-home at zero earnings); exact because the intensive best response is."""
    q = np.broadcast_to(np.asarray(utility.fixed_cost, dtype=float), w.shape)
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)
    finite = np.isfinite(q)
    base = utility.base
    h = np.asarray(best_response(schedule, w, base, r - np.where(finite, q, 0.0), bounds))
    zero = np.zeros_like(w)
    c_work = take_home(schedule, w * h) + r - q
    c_not = take_home(schedule, zero) + r + np.asarray(utility.nonwork_income, dtype=float)
    works = finite & (h > 0) & (base(c_work, h) > base(c_not, zero))
    return np.where(works, h, 0.0)


def _log_fast(schedule, utility, rebate) -> bool:
    """The default case has a faster exact path (:func:`_progressive_log_best_response`):
    log utility (``IsoelasticUtility`` with ``eta = 1``) with scalar ``psi`` and a
    scalar Frisch elasticity of at most 1, one rebate for everyone, and a virtual
    income at or above the consumption floor on every segment (so the floor never binds
    on a solution)."""
    if not isinstance(utility, IsoelasticUtility) or utility.eta != 1.0:
        return False
    if np.ndim(utility.psi) or np.ndim(utility.frisch) or float(utility.frisch) > 1.0:
        return False
    if np.ndim(rebate):
        return False
    intercept = schedule.segments()[3]
    return bool(np.all(intercept + float(rebate) >= utility.c_floor))


def _wage_thresholds(lower, net, intercept, rebate: float, psi: float, p: float, lmax: float) -> np.ndarray:
    """Per segment k, the wage above which log utility's marginal gain at the segment's
    start is positive: ``(psi z_k^p c_k / (1 - t_k))^(1/(p+1))`` with ``c_k`` the
    consumption there (``inf`` where the net rate is not positive), raised to
    ``z_k / lmax`` so a segment starting at or past the hours cap is never chosen."""
    c_start = net * lower + intercept + rebate  # consumption at each segment's start
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        theta = np.where(net > 0, (psi * lower**p * c_start / net) ** (1.0 / (p + 1.0)), np.inf)
        if lmax > 0:
            return np.maximum(theta, lower / lmax)
        return np.where(lower > 0, np.inf, theta)


def _keep_better(best_h, best_u, h, u):
    """The better of two candidate hours per agent by utility (the first on ties)."""
    if best_h is None:
        return h, u
    better = u > best_u
    return np.where(better, h, best_h), np.where(better, u, best_u)


def _progressive_log_best_response(schedule, w, utility, rebate: float, lmin: float, lmax: float,
                                   slope: bool = False):
    """Exact hours under log utility on a convex budget, with one search per agent.

    Under ``u = log c - psi l**p / p`` (``p = 1/e``) the marginal gain at the start of
    segment k (gross income ``z_k``, consumption ``c_k``, net rate ``1 - t_k``) is
    positive exactly when ``w**(p+1) > psi z_k**p c_k / (1 - t_k)``: a threshold
    ``theta_k`` on the wage that is the same for every agent.  On a convex budget the
    agents with a positive gain at a segment's start are a prefix of the segments, so
    ``theta`` is non-decreasing and the binary search of
    :func:`_progressive_best_response` is one ``searchsorted`` of the wages.  The
    segment solve is :func:`~simulator.economy.utility._log_utility_hours`'s.

    Returns ``(hours, dtax, tax)``: with ``slope``, ``dtax`` is each agent's d tax / d
    rebate (dollars per dollar: the marginal rate times the wage times d hours / d
    rebate, ``-l / (p c + nw l)`` at an interior solution, 0 at a kink or bound) and
    ``tax`` its tax at those hours from its segment (``t_k z - I_k``, dollars a year),
    else both None.
    """
    lower, upper, rate, intercept = schedule.segments()
    p = 1.0 / float(utility.frisch)
    psi = float(utility.psi)
    net = 1.0 - rate
    theta = np.maximum.accumulate(_wage_thresholds(lower, net, intercept, rebate, psi, p, lmax)[1:])
    safe_w = np.where(w > 0, w, 1.0)
    k = np.searchsorted(theta, safe_w, side="left")
    if lmin > 0:  # at least the segment holding the lower hours bound
        k = np.maximum(k, np.searchsorted(lower[1:], lmin * safe_w, side="right"))
    inv_w = 1.0 / safe_w
    lo = np.minimum(np.maximum(lower[k] * inv_w, lmin), lmax)
    hi = np.maximum(np.minimum(upper[k] * inv_w, lmax), lo)
    nw = safe_w * net[k]
    v = intercept[k] + rebate
    h = _log_utility_hours(nw, v, utility.frisch, psi, lo, hi)
    if not slope:
        return h, None, None
    interior = (h > lo) & (h < hi)
    dh = np.where(interior, -h / (p * (nw * h + v) + nw * h), 0.0)
    t_k = rate[k]
    return h, t_k * safe_w * dh, t_k * (safe_w * h) - intercept[k]


def _pieces_log_best_response(schedule, w, utility, rebate: float, lmin: float, lmax: float):
    """Exact hours under log utility on a non-convex budget (some rate falls), by pieces.

    The budget splits into convex pieces (maximal runs of segments whose rates never
    fall). On each piece the wage thresholds of :func:`_progressive_log_best_response`
    find the piece's best segment (the last one whose start has a positive gain, within
    the piece), one segment solve gives the piece's best hours, and the piece with the
    highest utility wins (the first on ties, as the all-segments solve picks the first
    best segment).  A budget whose rates fall j times costs j + 1 segment solves per
    agent instead of one per segment."""
    lower, upper, rate, intercept = schedule.segments()
    p = 1.0 / float(utility.frisch)
    psi = float(utility.psi)
    net = 1.0 - rate
    theta = _wage_thresholds(lower, net, intercept, rebate, psi, p, lmax)
    piece = np.concatenate([[0], np.cumsum(np.diff(rate) < 0)])
    safe_w = np.where(w > 0, w, 1.0)
    inv_w = 1.0 / safe_w
    best_h = best_u = None
    for q in range(int(piece[-1]) + 1):
        seg = np.flatnonzero(piece == q)
        a, b = int(seg[0]), int(seg[-1])
        # the piece meets the hours range [lmin, lmax] of the agent
        meets = (lower[a] < lmax * safe_w) | (a == 0)
        if b + 1 < lower.size:
            meets &= upper[b] > lmin * safe_w
        k = a + np.searchsorted(np.maximum.accumulate(theta[a + 1:b + 1]), safe_w, side="left")
        if lmin > 0:  # at least the piece's segment holding the lower hours bound
            k = np.maximum(k, np.minimum(np.searchsorted(lower[1:], lmin * safe_w, side="right"), b))
        lo = np.minimum(np.maximum(lower[k] * inv_w, lmin), lmax)
        hi = np.maximum(np.minimum(upper[k] * inv_w, lmax), lo)
        nw = safe_w * net[k]
        v = intercept[k] + rebate
        h = _log_utility_hours(nw, v, utility.frisch, psi, lo, hi)
        best_h, best_u = _keep_better(best_h, best_u, h, np.where(meets, utility(nw * h + v, h), -np.inf))
    return best_h


def _hours_and_dtax(schedule, w, utility, rebate: float, bounds):
    """``(hours, d tax / d rebate, tax)`` per agent on the fast path, or None elsewhere.

    The slope is what :func:`equilibrium`'s Newton step on the rebate needs, the tax
    (dollars a year, from each agent's segment) what its rebate adds up; blocks of
    agents run on the thread pool as :func:`best_response`'s do."""
    if (isinstance(utility, FixedCostUtility) or getattr(schedule, "per_agent", False)
            or not schedule.is_progressive or not _log_fast(schedule, utility, rebate)):
        return None
    lmin, lmax = bounds
    hours, dtax, tax = np.empty_like(w), np.empty_like(w), np.empty_like(w)

    def work(start: int) -> None:
        sl = slice(start, min(start + CHUNK, w.size))
        hours[sl], dtax[sl], tax[sl] = _progressive_log_best_response(schedule, w[sl], utility, rebate,
                                                                      lmin, lmax, slope=True)

    if w.size > 2 * CHUNK:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(work, range(0, w.size, CHUNK)))
    else:
        work(0) if w.size <= CHUNK else [work(s) for s in range(0, w.size, CHUNK)]
    positive = w > 0
    if positive.all():
        return hours, dtax, tax
    h = np.where(positive, hours, lmin)
    return h, np.where(positive, dtax, 0.0), np.where(positive, tax, schedule.tax(np.maximum(w, 0.0) * h))


def _progressive_best_response(schedule, w, utility, rebate, lmin, lmax):
    """Convex budget set: binary search for the last segment whose start has a positive
    marginal gain (utility is concave in hours), then one exact segment solve."""
    lower, upper, rate, intercept = schedule.segments()
    safe_w = np.where(w > 0, w, 1.0)
    inv_w = 1.0 / safe_w
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)
    # where consumption at the lower hours bound sits below an isoelastic utility's
    # floor (a negative transfer: utility is flat in consumption there, so not concave
    # in hours), the search starts where the take-home reaches the floor
    lb = np.full(w.shape, lmin)
    floor = getattr(utility, "c_floor", None) if getattr(utility, "eta", 0.0) > 0 else None
    if floor is not None:
        th_start = lower * (1.0 - rate) + intercept  # take-home at segment starts
        z_min = lmin * safe_w
        k0 = np.clip(np.searchsorted(lower, z_min, side="right") - 1, 0, len(lower) - 1)
        below = (1.0 - np.take(rate, k0)) * z_min + np.take(intercept, k0) + r < floor
        if below.any():
            need = floor - r[below]
            k = np.clip(np.searchsorted(th_start, need, side="right") - 1, 0, len(lower) - 1)
            nw_k = 1.0 - np.take(rate, k)
            with np.errstate(divide="ignore", invalid="ignore"):
                z_f = np.take(lower, k) + np.where(nw_k > 0, (need - np.take(th_start, k)) / nw_k, np.inf)
            lb[below] = np.clip(z_f * inv_w[below], lmin, lmax)
    # segments holding the lower and upper hours bounds
    first = (
        np.zeros(w.shape, dtype=np.intp) if lmin == 0.0 and not np.any(lb > lmin)
        else np.maximum(np.searchsorted(lower, lb * safe_w, side="right") - 1, 0)
    )
    last = np.maximum(np.searchsorted(lower, lmax * safe_w, side="left") - 1, first)
    lo_idx, hi_idx = first, last
    # ceil(log2(K)) rounds of a vectorised binary search over all agents at once
    for _ in range(int(np.ceil(np.log2(max(len(lower), 2))))):
        open_ = lo_idx < hi_idx
        mid = (lo_idx + hi_idx + 1) // 2
        start = np.maximum(np.take(lower, mid) * inv_w, lb)
        nw = safe_w * (1.0 - np.take(rate, mid))
        gain = utility.marginal_gain(start, nw, np.take(intercept, mid) + r)
        p = gain > 0
        lo_idx = np.where(open_ & p, mid, lo_idx)
        hi_idx = np.where(open_ & ~p, mid - 1, hi_idx)
    k = lo_idx
    lo = np.clip(np.maximum(np.take(lower, k) * inv_w, lb), lmin, lmax)
    hi = np.maximum(np.clip(np.take(upper, k) * inv_w, lmin, lmax), lo)
    return utility.segment_argmax(safe_w * (1.0 - np.take(rate, k)), np.take(intercept, k) + r, lo, hi)


def _equilibrium_bracketed(hours_at, rebate_of, lo: float, hi: float, tol: float):
    """The rebate's fixed point inside ``[lo, hi]`` where ``gap(lo) >= 0 >= gap(hi)``
    (the gap falls with the rebate): brentq, then the hours there."""
    cache: dict[float, tuple[np.ndarray, float]] = {}

    def gap(r: float) -> float:
        if r not in cache:
            h = hours_at(r)
            cache[r] = (h, rebate_of(h))
        return cache[r][1] - r

    tol_r = max(tol, 1e-9 * max(abs(lo), abs(hi)))
    if gap(lo) <= 0:
        r = lo
    elif gap(hi) >= 0:
        r = hi
    else:
        r = brentq(gap, lo, hi, xtol=tol_r, rtol=1e-12)
    if r in cache:
        return cache[r]
    h = hours_at(r)
    return h, rebate_of(h)


def equilibrium(
    schedule: TaxSchedule,
    wages: ArrayLike,
    utility: Utility,
    rebate_share: float = 1.0,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
    weights: ArrayLike | None = None,
    tol: float = 1e-6,
    requirement: float = 0.0,
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

    per_agent = getattr(schedule, "per_agent", False)

    def rebate_of(h: np.ndarray) -> float:
        z = w * h
        tax = schedule.tax(z) * schedule.share if per_agent else schedule.tax(z)
        return lump_sum_rebate(tax, rebate_share, weights, requirement)

    if not no_income_effects(utility):
        found = _equilibrium_newton(schedule, w, utility, rebate_share, hours_bounds, weights, tol,
                                    requirement, rebate_of)
        if found is not None:
            return found
    h0 = hours_at(0.0)
    r0 = rebate_of(h0)
    if no_income_effects(utility) or (r0 <= 0 and requirement == 0.0):
        return h0, r0
    if r0 < 0:  # a shortfall collected lump-sum: the fixed point lies in [r0, 0]
        return _equilibrium_bracketed(hours_at, rebate_of, r0, 0.0, tol)
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


def _equilibrium_newton(schedule, w, utility, rebate_share, hours_bounds, weights, tol,
                        requirement, rebate_of, passes: int = 6):
    """:func:`equilibrium` by Newton steps on the rebate, where the best response also
    gives its slope (:func:`_hours_and_dtax`); None where it does not, or where the
    steps do not converge (the caller's secant and brentq then decide).

    The gap ``g(R) = share * (mean T(w l(R)) - requirement) - R`` has the slope
    ``g'(R) = share * mean(dT/dR) - 1 <= -1`` (leisure is normal), so Newton's step
    ``R - g / g'`` never overshoots far; it starts from the rebate at hours that need no
    best response: the hours every worker would choose under a flat tax with no rebate
    (``psi**(-1/(p+1))``, 40 by default), about where the fixed point is.  Each pass
    is one best response; stops when ``|g| <= tol`` (as :func:`equilibrium`)."""
    if not isinstance(utility, IsoelasticUtility) or utility.eta != 1.0 or np.ndim(utility.psi):
        return None
    if np.ndim(utility.frisch) or float(utility.frisch) > 1.0 or getattr(schedule, "per_agent", False):
        return None
    lmin, lmax = map(float, hours_bounds)
    p = 1.0 / float(utility.frisch)
    l_flat = min(max(float(utility.psi) ** (-1.0 / (p + 1.0)), lmin), lmax)
    r = rebate_of(np.full(w.shape, l_flat))
    wn = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    for _ in range(passes):
        if not np.isfinite(r) or r < 0:
            return None
        got = _hours_and_dtax(schedule, w, utility, r, (lmin, lmax))
        if got is None:
            return None
        h, dtax, tax = got
        implied = lump_sum_rebate(tax, rebate_share, weights, requirement)
        g = implied - r
        if abs(g) <= max(tol, 1e-9 * abs(r)):
            return h, implied
        slope = rebate_share * (dtax.mean() if wn is None else float(wn @ dtax)) - 1.0
        if not slope < 0:
            return None
        r = r - g / slope
    return None


# --------------------------------------------------------------------------- batches
# Many candidate rate vectors on the same brackets at once (the optimum's search): the
# rows of a batch share the thresholds and deduction, so the segment edges are common
# and only each row's rates and intercepts differ.  Candidates x agents are flattened
# into one vectorised problem; the solves are the same as :func:`best_response`'s.


def _batch_segments(schedule: TaxSchedule, rates: np.ndarray):
    """``schedule``'s segments of gross income for every row of ``rates`` (m, K).

    Returns ``(lower, upper, rate, intercept)``: ``lower``, ``upper`` of shape (S,) (shared;
    S = K, plus a leading 0 % segment with a deduction), ``rate`` and ``intercept`` of
    shape (m, S), as :meth:`TaxSchedule.segments` computes them for one rate vector.
    """
    thr = schedule.threshold_array
    m = rates.shape[0]
    tax_lo = np.concatenate(
        [np.zeros((m, 1)), np.cumsum(np.diff(thr)[None, :] * rates[:, :-1], axis=1)], axis=1
    )
    lower = thr + schedule.deduction
    rate = rates
    if schedule.deduction > 0:
        lower = np.concatenate([[0.0], lower])
        rate = np.concatenate([np.zeros((m, 1)), rates], axis=1)
        tax_lo = np.concatenate([np.zeros((m, 1)), tax_lo], axis=1)
    upper = np.concatenate([lower[1:], [np.inf]])
    intercept = rate * lower[None, :] - tax_lo
    return lower, upper, rate, intercept


def tax_batch(schedule: TaxSchedule, rates: ArrayLike, incomes: ArrayLike) -> np.ndarray:
    """Tax (dollars a year) on gross ``incomes`` (m, n) under each row of ``rates`` (m, K)
    on ``schedule``'s brackets and deduction; row i equals
    ``schedule.with_rates(rates[i]).tax(incomes[i])``."""
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    z = np.asarray(incomes, dtype=float)
    thr = schedule.threshold_array
    tax_lo = np.concatenate(
        [np.zeros((r.shape[0], 1)), np.cumsum(np.diff(thr)[None, :] * r[:, :-1], axis=1)], axis=1
    )
    x = np.maximum(z - schedule.deduction, 0.0)
    k = np.searchsorted(thr, x, side="right") - 1
    return np.take_along_axis(tax_lo, k, 1) + np.take_along_axis(r, k, 1) * (x - thr[k])


def best_response_batch(
    schedule: TaxSchedule,
    rates: ArrayLike,
    wages: ArrayLike,
    utility: Utility,
    rebate: ArrayLike = 0.0,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
) -> np.ndarray:
    """Utility-maximising hours a week of every agent under each of many schedules.

    ``rates`` (m, K): candidate bracket rates on ``schedule``'s thresholds and deduction;
    ``wages`` (n,) in dollars a year per weekly hour; ``rebate`` (dollars a year, a scalar
    or one per candidate) taken as given.  Returns hours of shape (m, n); row i is
    :func:`best_response` under ``schedule.with_rates(rates[i])`` (the same exact solves,
    to rounding).
    """
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    w = np.asarray(wages, dtype=float)
    if w.ndim != 1:
        raise ValueError("wages must be a one-dimensional array")
    if r.ndim != 2 or r.shape[1] != schedule.n_brackets:
        raise ValueError(f"rates must have shape (m, {schedule.n_brackets})")
    lmin, lmax = map(float, hours_bounds)
    if not 0 <= lmin <= lmax:
        raise ValueError(f"invalid hours bounds {hours_bounds}")
    m, n = r.shape[0], w.size
    reb = np.broadcast_to(np.asarray(rebate, dtype=float), (m,))
    out = np.empty((m, n))
    if n == 0 or m == 0:
        return out
    if n > 2 * CHUNK:  # one candidate already fills the blocks: the threaded single solve
        for i in range(m):
            out[i] = best_response(schedule.with_rates(r[i]), w, utility, reb[i], (lmin, lmax))
        return out
    lower, upper, rate, intercept = _batch_segments(schedule, r)
    per_block = max(1, BATCH_ELEMENTS // n)  # candidates per block
    for s in range(0, m, per_block):
        blk = slice(s, min(s + per_block, m))
        h = _rows_by_pieces(lower, upper, rate[blk], intercept[blk], w, utility, reb[blk],
                            lmin, lmax)
        out[blk] = h.reshape(-1, n)
    out[:, w <= 0] = lmin
    return out


def _tiled(utility: Utility, n: int, p: int) -> Utility:
    """``utility`` for p stacked copies of its n agents (per-agent parameters tiled)."""
    return subset_utility(utility, np.tile(np.arange(n), p))


def _rows_by_pieces(lower, upper, rate, intercept, w, utility, rebate, lmin, lmax):
    """Exact hours for p candidates x n agents, the budget split into convex pieces.

    A piece is a maximal run of segments whose rates never fall.  On a piece's hours
    interval the budget is concave, so utility is concave in hours there and the
    piece's best point is found as :func:`_progressive_best_response` finds it: a binary
    search for the piece's last segment whose start has a positive marginal gain, then
    one exact segment solve.  The best piece is picked by utility (the first on ties, as
    the all-segments solve picks the first best segment).  A progressive candidate has
    one piece; a candidate whose rates fall j times has j + 1 pieces, so this costs
    j + 1 segment solves per agent instead of one per segment.
    """
    p, n = rate.shape[0], w.size
    n_seg = rate.shape[1]
    row = np.repeat(np.arange(p), n)
    base = row * n_seg  # flat index of each element's row in (p, S) arrays
    rate_f, icpt_f = rate.ravel(), intercept.ravel()
    util = _tiled(utility, n, p)
    per_agent = util is not utility
    safe_w1 = np.where(w > 0, w, 1.0)
    safe_w = np.tile(safe_w1, p)
    inv_w = 1.0 / safe_w
    r = rebate[row]
    # segments holding the lower and upper hours bounds (as in the progressive solve)
    first1 = (
        np.zeros(n, dtype=np.intp) if lmin == 0.0
        else np.searchsorted(lower, lmin * safe_w1, side="right") - 1
    )
    last1 = np.maximum(np.searchsorted(lower, lmax * safe_w1, side="left") - 1, first1)
    first, last = np.tile(first1, p), np.tile(last1, p)
    # piece of every segment of every candidate: a new piece starts where the rate falls
    piece = np.concatenate(
        [np.zeros((p, 1), dtype=np.intp), np.cumsum(np.diff(rate, axis=1) < 0, axis=1)], axis=1
    )
    rounds = int(np.ceil(np.log2(max(n_seg, 2))))
    best_h = best_u = None
    for q in range(int(piece[:, -1].max()) + 1):
        in_q = piece == q  # (p, S)
        has = in_q.any(axis=1)
        a = np.where(has, np.argmax(in_q, axis=1), n_seg)  # first segment of piece q
        b = np.where(has, n_seg - 1 - np.argmax(in_q[:, ::-1], axis=1), -1)  # its last
        if q == 0:  # every candidate's first piece starts at segment 0
            lo_idx, hi_idx, ok = first, np.minimum(b[row], last), None
        else:
            lo_idx = np.maximum(a[row], first)
            hi_idx = np.minimum(b[row], last)
            ok = lo_idx <= hi_idx  # the piece meets the hours bounds
            if not ok.any():
                continue
            lo_idx = np.where(ok, lo_idx, first)
            hi_idx = np.where(ok, hi_idx, first)
        for _ in range(rounds):
            open_ = lo_idx < hi_idx
            if not open_.any():
                break
            mid = (lo_idx + hi_idx + 1) // 2
            start = np.maximum(np.take(lower, mid) * inv_w, lmin)
            j = base + mid
            gain = util.marginal_gain(start, safe_w * (1.0 - rate_f[j]), icpt_f[j] + r)
            pos = gain > 0
            lo_idx = np.where(open_ & pos, mid, lo_idx)
            hi_idx = np.where(open_ & ~pos, mid - 1, hi_idx)
        k = lo_idx
        j = base + k
        lo = np.clip(np.take(lower, k) * inv_w, lmin, lmax)
        hi = np.clip(np.take(upper, k) * inv_w, lmin, lmax)
        nw = safe_w * (1.0 - rate_f[j])
        v = icpt_f[j] + r
        if per_agent:  # as columns: the per-element solve of 1-D arrays assumes scalars
            h = util.segment_argmax(nw[:, None], v[:, None], lo[:, None], hi[:, None])[:, 0]
        else:
            h = util.segment_argmax(nw, v, lo, hi)
        if int(piece[:, -1].max()) == 0:  # progressive candidates only: one piece
            return h
        u = util(nw * h + v, h)
        if ok is not None:
            u = np.where(ok, u, -np.inf)
        best_h, best_u = _keep_better(best_h, best_u, h, u)
    return best_h


def equilibrium_batch(
    schedule: TaxSchedule,
    rates: ArrayLike,
    wages: ArrayLike,
    utility: Utility,
    rebate_share: float = 1.0,
    hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
    weights: ArrayLike | None = None,
    tol: float = 1e-6,
    rebate_guess: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`equilibrium` for each row of ``rates`` (m, K) on ``schedule``'s brackets.

    Solves ``R_i = share * mean(T_i(w * l_i(R_i)))`` for every candidate i at once.  The
    gap ``g(R) = share * mean(T(w * l(R))) - R`` is decreasing in ``R`` (slope <= -1:
    leisure is normal), so a secant step per candidate inside its current bracket
    converges in a few best-response passes; a step that leaves the bracket is replaced
    by bisection (or, while no upper end is known, by the fixed-point step
    ``R + g(R)``), and after six steps every other step bisects: where a worker's
    choice jumps with the rebate (falling rates) the gap jumps too, the fixed point is
    the jump, and the bracket closes on it to the tolerance.  Cold (``rebate_guess`` None) the search starts, as
    :func:`equilibrium` does, from ``R = 0`` and the bracket ``[0, share * mean(T(w *
    l(0)))]``; warm it starts at ``rebate_guess`` (dollars a year, one per candidate:
    e.g. a nearby candidate's rebate), which saves passes when the guess is close.  The
    tolerance is :func:`equilibrium`'s.  Only candidates not yet converged are solved
    again.  Returns ``(hours, rebates)`` of shapes (m, n) and (m,), rebates in dollars a
    year per person.
    """
    r = np.atleast_2d(np.asarray(rates, dtype=float))
    w = np.asarray(wages, dtype=float)
    m = r.shape[0]
    if weights is None:
        wn = np.full(w.size, 1.0 / max(w.size, 1))
    else:
        wts = np.asarray(weights, dtype=float)
        wn = wts / wts.sum()

    def solve(rows: np.ndarray, reb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = best_response_batch(schedule, r[rows], w, utility, reb, hours_bounds)
        if w.size == 0:
            return h, np.zeros(rows.size)
        return h, rebate_share * (tax_batch(schedule, r[rows], w[None, :] * h) @ wn)

    everyone = np.arange(m)
    if isinstance(utility, FixedCostUtility):
        raise ValueError("equilibrium_batch has no extensive margin: solve candidates one by one")
    flat_income = no_income_effects(utility)
    hours = np.empty((m, w.size))
    rebates = np.zeros(m)
    if flat_income or rebate_guess is None:
        h0, r0 = solve(everyone, np.zeros(m))
        hours[:], rebates[:] = h0, r0
        act = np.flatnonzero(r0 > 0) if not flat_income else everyone[:0]
        if act.size == 0:
            return hours, rebates
        # secant from (0, r0) to r0 inside [0, r0]
        a_r, g_a, lo_b, hi_b = np.zeros(act.size), r0[act], np.zeros(act.size), r0[act].copy()
        b_r = r0[act].copy()
        tol_r = np.maximum(tol, 1e-9 * r0[act])
        h_b, reb_b = solve(act, b_r)
        g_b = reb_b - b_r
        done = (np.abs(g_b) <= tol_r) | (g_b >= 0)  # gap(r0) >= 0: the rebate is r0
    else:
        act = everyone
        b_r = np.maximum(np.broadcast_to(np.asarray(rebate_guess, dtype=float), (m,)), 0.0).copy()
        h_b, reb_b = solve(act, b_r)
        g_b = reb_b - b_r
        a_r, g_a = np.full(m, np.nan), np.full(m, np.nan)
        lo_b = np.where(g_b > 0, b_r, 0.0)
        hi_b = np.where(g_b > 0, np.inf, b_r)
        tol_r = np.maximum(tol, 1e-9 * reb_b)
        done = np.abs(g_b) <= tol_r
    for it in range(120):
        if done.any():
            hours[act[done]] = h_b[done]
            rebates[act[done]] = b_r[done]
            keep = ~done
            act, tol_r, lo_b, hi_b = act[keep], tol_r[keep], lo_b[keep], hi_b[keep]
            a_r, g_a, b_r, g_b, h_b = a_r[keep], g_a[keep], b_r[keep], g_b[keep], h_b[keep]
        if act.size == 0:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            nxt = b_r - g_b * (b_r - a_r) / (g_b - g_a)
        # no secant yet, or it left the bracket: bisect, or step to R + g(R) (the
        # fixed-point map) while the bracket has no upper end
        bad = ~np.isfinite(nxt) | (nxt <= lo_b) | (nxt >= hi_b)
        if it >= 6 and it % 2 == 0:  # still open: a worker's jump sits inside the bracket,
            bad = bad | np.isfinite(hi_b)  # where secant steps stall; bisect every other step
        fallback = np.where(np.isfinite(hi_b), 0.5 * (lo_b + hi_b), b_r + g_b)
        nxt = np.where(bad, fallback, nxt)
        a_r, g_a = b_r, g_b
        b_r = nxt
        h_b, reb_b = solve(act, b_r)
        g_b = reb_b - b_r
        lo_b = np.where(g_b > 0, np.maximum(lo_b, b_r), lo_b)
        hi_b = np.where(g_b > 0, hi_b, np.minimum(hi_b, b_r))
        done = (np.abs(g_b) <= tol_r) | (hi_b - lo_b <= tol_r)
    if act.size:  # not converged in 120 steps (never seen): the last iterate
        hours[act], rebates[act] = h_b, b_r
    return hours, rebates


# --------------------------------------------------------------------------- budgets
# One compiled budget per household type (simulator.economy.taxbenefit.system.SegmentTable):
# every worker has its own segments of own earnings, split into convex pieces.


def budget_best_response(table, wages: ArrayLike, utility: Utility, rebate: ArrayLike = 0.0,
                         hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS) -> np.ndarray:
    """Utility-maximising hours a week of every worker on its own compiled budget.

    ``table`` is a ``SegmentTable`` (``table.agent_segments`` composes each worker's
    segments of own earnings with net-income rates and intercepts); ``wages`` (n,) dollars a year
    per weekly hour; ``rebate`` the lump-sum transfer taken as given (dollars a year,
    scalar or per worker).  Exact: on each convex piece of a worker's budget utility is
    concave in hours, so the piece's best point is the solve on its last segment whose
    start has a positive marginal gain (a binary search); the best piece is picked by
    utility (the first on ties).  Blocks of workers run on a thread pool.
    """
    w = np.asarray(wages, dtype=float)
    lmin, lmax = map(float, hours_bounds)
    n = w.size
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)
    out = np.empty(n)
    if n == 0:
        return out

    def work(start: int) -> None:
        sl = slice(start, min(start + CHUNK, n))
        out[sl] = _budget_block(table, sl, w[sl], subset_utility(utility, sl), r[sl], lmin, lmax)

    if n > 2 * CHUNK:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(work, range(0, n, CHUNK)))
    else:
        for start in range(0, n, CHUNK):
            work(start)
    return np.where(w > 0, out, lmin)


def _has_per_agent_params(utility) -> bool:
    """True when some utility parameter is an array over agents."""
    return bool(getattr(utility, "per_agent_params", False)) or any(
        np.ndim(getattr(utility, f, 0.0)) > 0 for f in ("psi", "frisch", "delta"))


def _budget_block(table, sl, w, utility, rebate, lmin, lmax):
    """Exact hours of workers ``sl`` (see :func:`budget_best_response`)."""
    n = w.size
    seg = table.agent_segments(sl)  # (n, S), composed once per budget
    lower, rate = seg["lower"], seg["rate"]
    icpt = seg["intercept"]
    S = lower.shape[1]
    rows = np.arange(n)
    safe_w = np.where(w > 0, w, 1.0)
    inv_w = 1.0 / safe_w
    # the lower bound in hours, raised where consumption sits below the utility's floor
    # (utility is flat in consumption there, so not concave in hours)
    lo_bound = np.full(n, lmin)
    floor = getattr(utility, "c_floor", None) if getattr(utility, "eta", 0.0) > 0 else None
    if floor is not None and np.any(icpt[:, 0] + rebate < floor):  # at zero earnings
        c_start = lower * (1.0 - rate) + icpt + rebate[:, None]  # consumption at segment starts
        below = c_start[:, 0] < floor
        if below.any():
            j = np.clip((c_start <= floor).sum(axis=1) - 1, 0, S - 1)
            nw_j = 1.0 - rate[rows, j]
            with np.errstate(divide="ignore", invalid="ignore"):
                z_f = lower[rows, j] + np.where(nw_j > 0, (floor - c_start[rows, j]) / nw_j, np.inf)
            lo_bound = np.where(below, np.minimum(np.maximum(z_f * inv_w, lmin), lmax), lmin)
    # segments holding the lower and upper hours bounds
    j0 = np.clip((lower <= (lmin * safe_w)[:, None]).sum(axis=1) - 1, 0, S - 1)
    first = j0 if not np.any(lo_bound > lmin) else np.clip(
        (lower <= (lo_bound * safe_w)[:, None]).sum(axis=1) - 1, 0, S - 1)
    last = np.clip((lower < (lmax * safe_w)[:, None]).sum(axis=1) - 1, 0, S - 1)
    last = np.maximum(last, first)
    # the lower hours bound itself is always a candidate (on its own segment)
    nw0 = safe_w * (1.0 - rate[rows, j0])
    best_h = np.full(n, lmin)
    best_u = utility(nw0 * lmin + icpt[rows, j0] + rebate, best_h)
    starts, ends = seg["piece_start"], seg["piece_end"]
    lower_f, rate_f, icpt_f = lower.ravel(), rate.ravel(), icpt.ravel()
    # the end of segment k is the next breakpoint (the last segment has none)
    upper_f = np.append(lower_f[1:], np.inf)
    upper_f[S - 1::S] = np.inf
    per_agent = _has_per_agent_params(utility)
    for q in range(starts.shape[1]):
        a = np.maximum(starts[:, q], first)
        b = np.minimum(ends[:, q], last)
        who = np.flatnonzero(a <= b)  # workers whose piece q meets their hours range
        if who.size == 0:
            continue
        util = subset_utility(utility, who) if per_agent else utility
        base = who * S
        lo_idx, hi_idx = a[who], b[who]
        iw, sw_, lb, rb = inv_w[who], safe_w[who], lo_bound[who], rebate[who]
        for _ in range(int(np.ceil(np.log2(max(int((hi_idx - lo_idx).max()) + 1, 2))))):
            open_ = lo_idx < hi_idx
            if not open_.any():
                break
            mid = (lo_idx + hi_idx + 1) // 2
            j = base + mid
            start = np.maximum(np.take(lower_f, j) * iw, lb)
            gain = util.marginal_gain(start, sw_ * (1.0 - np.take(rate_f, j)), np.take(icpt_f, j) + rb)
            pos = gain > 0
            lo_idx = np.where(open_ & pos, mid, lo_idx)
            hi_idx = np.where(open_ & ~pos, mid - 1, hi_idx)
        j = base + lo_idx
        lo = np.clip(np.maximum(np.take(lower_f, j) * iw, lb), lmin, lmax)
        hi = np.maximum(np.clip(np.take(upper_f, j) * iw, lmin, lmax), lo)
        nw = sw_ * (1.0 - np.take(rate_f, j))
        v = np.take(icpt_f, j) + rb
        h = util.segment_argmax(nw, v, lo, hi)
        u = util(nw * h + v, h)
        better = u > best_u[who]
        best_h[who] = np.where(better, h, best_h[who])
        best_u[who] = np.where(better, u, best_u[who])
    return best_h
