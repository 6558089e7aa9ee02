"""Calibrating the fixed costs of working to employment rates and a participation elasticity.

The procedure (``docs/economics.md``, "The extensive margin"), reproducible from the
seed and the population:

1. **Reservation costs.**  For every person, the largest fixed cost of working ``S``
   (dollars a year) at which working still beats not working under the calibration's
   tax system and transfer (:func:`reservation_cost`: exact and direct, ``S = max_l
   [c(l) - C(u(c(0)) + D(l))]`` with ``C`` the consumption that gives a utility at
   zero hours and ``D`` the disutility of hours, one best response).
2. **Costs.**  ``log q_i = mu_cell + sigma * eps_i`` with ``eps_i ~ N(0, 1)`` from the run's
   stream: a log-normal cost within each employment cell (age band x sex x education).
   A person works at calibration exactly when ``q_i < S_i``, so with probability
   ``Phi((log S_i - mu_cell) / sigma)``.  Given ``sigma``, each cell's ``mu`` makes the
   cell's *expected* employment rate equal its target (CPS 2024 employment-population
   ratios); the realised rate differs from it by the sampling error of the draws (a
   binomial standard error, about 0.5 percentage points in a cell of 10,000 people),
   and the calibration works the same for 16 people as for a million.
3. **Elasticity.**  ``sigma`` is set so that the population's extensive-margin
   elasticity in expectation, ``log(P1 / P0) / log(1.1)`` for a reform that raises every person's net
   gain from working by 10 % (an in-work benefit ``b_i = 0.1 * (c_i(l_i) - c_i(0))``,
   which raises the reservation cost to ``S_i + b_i`` exactly), equals the target
   (0.25 by default: Chetty 2012, Chetty et al. 2011).  A larger ``sigma`` spreads costs
   and puts fewer people at the margin, so the elasticity falls with ``sigma``;
   bisection on ``log sigma``.

All of it is vectorised numpy over people (per-cell sums by ``bincount``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from simulator.economy.best_response import DEFAULT_HOURS_BOUNDS, best_response
from simulator.economy.participation import FixedCostUtility, intensive, take_home
from simulator.economy.utility import QuasiLinearUtility

#: the calibration reform: every net gain from working rises by this factor
REFORM_RATIO = 1.1


@dataclass(frozen=True)
class Reservation:
    """Per person: ``cost`` the reservation fixed cost (dollars a year; 0 for people who
    never gain from working, e.g. a zero wage), ``hours`` the hours chosen when paying
    it, ``net_gain`` the consumption gain from working those hours before the cost
    (dollars a year)."""

    cost: np.ndarray
    hours: np.ndarray
    net_gain: np.ndarray


def _consumption_equivalent(u, value: ArrayLike) -> np.ndarray:
    """``C(x)``: the consumption (dollars a year) that gives utility ``x`` at zero hours
    (the inverse of the consumption part of ``u``)."""
    value = np.asarray(value, dtype=float)
    if isinstance(u, QuasiLinearUtility):
        return value
    if u.eta == 0.0:
        return value + 1.0
    if u.eta == 1.0:
        return np.exp(value)
    base = np.maximum((1.0 - u.eta) * value + 1.0, 1e-300)
    return base ** (1.0 / (1.0 - u.eta))


def _dce(u, c_equiv: np.ndarray) -> np.ndarray:
    """``C'(x)`` at ``C(x) = c_equiv``: ``c_equiv ** eta`` (1 for quasi-linear)."""
    if isinstance(u, QuasiLinearUtility) or u.eta == 0.0:
        return np.ones_like(c_equiv)
    return c_equiv ** u.eta


def _col(p, ndim: int):
    a = np.asarray(p, dtype=float)
    return float(a) if a.ndim == 0 else a.reshape(a.shape + (1,) * (ndim - a.ndim))


@dataclass(frozen=True)
class _Surplus:
    """The objective whose maximum over hours is the reservation cost.

    With utility additively separable in consumption and hours, ``u(c - q) - D(l) >=
    u(c0)`` holds exactly when ``q <= c - C(u(c0) + D(l))``, so the largest cost at which
    working still pays is ``S = max_l [c(l) - C(u0 + D(l))]``: a quasi-linear objective in
    consumption with the convex "disutility" ``C(u0 + D(l))`` (``C`` convex increasing,
    ``D`` convex), concave on every linear piece of the budget, so the same exact best
    response solves it.  ``u0`` is each person's utility of not working.
    """

    base: object
    u0: np.ndarray
    per_agent_params = True

    def _disutility(self, l: np.ndarray):
        b = self.base
        nd = l.ndim
        if isinstance(b, QuasiLinearUtility):
            psi, d = _col(b.psi, nd), _col(b.delta, nd)
            return psi * l**d, psi * d * l ** (d - 1.0)
        e, psi = _col(b.frisch, nd), _col(b.psi, nd)
        p = 1.0 + 1.0 / e
        return psi * l**p / p, psi * l ** (1.0 / e)

    def cost_of_hours(self, l: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``C(u0 + D(l))`` and its derivative in hours."""
        l = np.asarray(l, dtype=float)
        d, dd = self._disutility(l)
        ce = _consumption_equivalent(self.base, _col(self.u0, l.ndim) + d)
        return ce, _dce(self.base, ce) * dd

    def __call__(self, c: ArrayLike, l: ArrayLike) -> np.ndarray:
        return np.asarray(c, dtype=float) - self.cost_of_hours(l)[0]

    def marginal_gain(self, l, net_wage, virtual_income):
        return net_wage - self.cost_of_hours(l)[1]

    def segment_argmax(self, net_wage, virtual_income, lo, hi, iterations: int = 100):
        """The maximiser on ``[lo, hi]``: the gain falls with hours, so bisection on it."""
        nw = np.asarray(net_wage, dtype=float)
        shape = np.broadcast_shapes(nw.shape, np.shape(lo), np.shape(hi))
        a = np.broadcast_to(np.asarray(lo, dtype=float), shape).copy()
        b = np.broadcast_to(np.asarray(hi, dtype=float), shape).copy()
        g_a = self.marginal_gain(a, nw, virtual_income)
        g_b = self.marginal_gain(b, nw, virtual_income)
        out = np.where(g_a <= 0, a, np.where(g_b >= 0, b, np.nan))
        todo = np.isnan(out)
        if todo.any():
            x0, x1 = a.copy(), b.copy()
            for _ in range(iterations):
                mid = 0.5 * (x0 + x1)
                pos = self.marginal_gain(mid, nw, virtual_income) > 0
                x0 = np.where(todo & pos, mid, x0)
                x1 = np.where(todo & ~pos, mid, x1)
                if np.all((x1 - x0)[todo] <= 1e-12 * np.maximum(x1[todo], 1.0)):
                    break
            out = np.where(todo, 0.5 * (x0 + x1), out)
        return out


def reservation_cost(schedule, wages: ArrayLike, utility, rebate: ArrayLike = 0.0,
                     hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS,
                     nonwork_income: ArrayLike | None = None) -> Reservation:
    """The largest fixed cost at which each person still works (see the module doc).

    ``schedule`` a TaxSchedule or household budget; ``wages`` dollars a year per weekly
    hour; ``utility`` the intensive utility (a fixed cost already on it is ignored);
    ``rebate`` the lump-sum transfer (dollars a year); ``nonwork_income`` what a person
    has only when not working (dollars a year; default: the utility's, 0 without one).
    Exact and direct: one best response of :class:`_Surplus`, whose maximum over hours is
    the cost.
    """
    if nonwork_income is None:
        nonwork_income = getattr(utility, "nonwork_income", 0.0) if isinstance(utility, FixedCostUtility) else 0.0
    u = intensive(utility)
    w = np.asarray(wages, dtype=float)
    n = w.size
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)
    zero = np.zeros(n)
    c0 = take_home(schedule, zero) + r + np.asarray(nonwork_income, dtype=float)
    u0 = np.broadcast_to(np.asarray(u(c0, zero), dtype=float), w.shape).copy()
    h = np.asarray(best_response(schedule, w, _Surplus(u, u0), r, hours_bounds))
    c = take_home(schedule, w * h) + r
    s = c - _Surplus(u, u0).cost_of_hours(h)[0]
    works = (h > 0) & (s > 0) & (w > 0)
    return Reservation(cost=np.where(works, s, 0.0), hours=np.where(works, h, 0.0),
                       net_gain=np.where(works, np.maximum(c - c0, 0.0), 0.0))


@dataclass(frozen=True)
class FixedCostCalibration:
    """The calibrated fixed costs (dollars a year) and what the calibration reached."""

    fixed_cost: np.ndarray
    employed: np.ndarray
    sigma: float
    mu: np.ndarray  # per cell (log dollars)
    elasticity: float  # reached at the calibration (target within ``tol``)
    employment_rate: float
    target_rate: float


def _cell_locations(log_s: np.ndarray, cells: np.ndarray, target: np.ndarray, weights: np.ndarray,
                    sigma: float, n_cells: int, iterations: int = 60) -> np.ndarray:
    """Per cell, ``mu`` with ``sum_i w_i Phi((log S_i - mu) / sigma) = p_cell sum_i w_i``
    (the cell's expected employment equals its target), by safeguarded Newton steps on
    every cell at once.  ``target`` is per person (its cell's target)."""
    finite = np.isfinite(log_s)
    ls = np.where(finite, log_s, 0.0)
    tot = np.bincount(cells, weights=weights, minlength=n_cells)
    p = np.bincount(cells, weights=weights * target, minlength=n_cells) / np.maximum(tot, 1e-300)
    cnt = np.maximum(np.bincount(cells, weights=weights * finite, minlength=n_cells), 1e-300)
    mean = np.bincount(cells, weights=weights * ls * finite, minlength=n_cells) / cnt
    lo_b = np.full(n_cells, np.inf)
    hi_b = np.full(n_cells, -np.inf)
    np.minimum.at(lo_b, cells[finite], ls[finite])
    np.maximum.at(hi_b, cells[finite], ls[finite])
    lo = np.where(np.isfinite(lo_b), lo_b, 0.0) - 12.0 * sigma - 1.0  # share employed ~ 1 below
    hi = np.where(np.isfinite(hi_b), hi_b, 0.0) + 12.0 * sigma + 1.0  # ... and ~ 0 above
    mu = np.clip(mean - sigma * ndtri(np.clip(p, 1e-12, 1 - 1e-12)), lo, hi)
    for _ in range(iterations):
        x = (ls - mu[cells]) / sigma
        share = np.bincount(cells, weights=weights * finite * ndtr(x), minlength=n_cells) / np.maximum(tot, 1e-300)
        dens = np.bincount(cells, weights=weights * finite * np.exp(-0.5 * x * x), minlength=n_cells)
        dens = dens / (np.sqrt(2 * np.pi) * sigma * np.maximum(tot, 1e-300))
        gap = share - p  # falls with mu
        lo = np.where(gap > 0, mu, lo)
        hi = np.where(gap > 0, hi, mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            nxt = mu + gap / dens
        mu_new = np.where(np.isfinite(nxt) & (nxt > lo) & (nxt < hi), nxt, 0.5 * (lo + hi))
        if np.all(np.abs(mu_new - mu) <= 1e-10 * np.maximum(np.abs(mu), 1.0)):
            mu = mu_new
            break
        mu = mu_new
    mu = np.where(p <= 0, np.inf, np.where(p >= 1, -np.inf, mu))
    return mu


def calibrate_fixed_costs(reservation: Reservation, cells: ArrayLike, targets: ArrayLike,
                          eps: ArrayLike, elasticity: float = 0.25,
                          weights: ArrayLike | None = None, tol: float = 1e-5) -> FixedCostCalibration:
    """Fixed costs matching per-cell employment ``targets`` (one per person: the target
    of its cell, in [0, 1]) and the extensive-margin ``elasticity`` in expectation over
    the cost draws (see the module docstring); ``cells`` (n,) cell ids; ``eps`` (n,)
    standard normal draws, which then decide who works at the calibration."""
    s = np.asarray(reservation.cost, dtype=float)
    b = (REFORM_RATIO - 1.0) * np.asarray(reservation.net_gain, dtype=float)
    _, cells = np.unique(np.asarray(cells), return_inverse=True)
    cells = cells.ravel()
    n_cells = int(cells.max()) + 1 if cells.size else 0
    t = np.asarray(targets, dtype=float)
    e = np.asarray(eps, dtype=float)
    n = s.size
    if not (t.shape == e.shape == cells.shape == (n,)):
        raise ValueError("targets, eps and cells need one entry per person")
    if np.any(~np.isfinite(t)) or np.any((t < 0) | (t > 1)):
        raise ValueError("employment targets must lie in [0, 1]")
    if not elasticity > 0:
        raise ValueError("the target participation elasticity must be > 0")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if not np.any((s > 0) & (t > 0)):
        raise ValueError("no employed person at the calibration: the fixed costs cannot be calibrated")
    with np.errstate(divide="ignore"):
        log_s = np.where(s > 0, np.log(np.where(s > 0, s, 1.0)), -np.inf)
        log_s1 = np.where(s + b > 0, np.log(np.where(s + b > 0, s + b, 1.0)), -np.inf)
    wn = w / w.sum()

    def expected(log_x: np.ndarray, mu: np.ndarray, sigma: float) -> float:
        m = mu[cells]
        z = np.where(np.isfinite(log_x) & np.isfinite(m), (np.where(np.isfinite(log_x), log_x, 0.0)
                                                           - np.where(np.isfinite(m), m, 0.0)) / sigma, 0.0)
        prob = np.where(~np.isfinite(log_x), 0.0, np.where(m == np.inf, 0.0, np.where(m == -np.inf, 1.0, ndtr(z))))
        return float(wn @ prob)

    def at(sigma: float):
        mu = _cell_locations(log_s, cells, t, w, sigma, n_cells)
        p0, p1 = expected(log_s, mu, sigma), expected(log_s1, mu, sigma)
        el = float(np.log(p1 / p0) / np.log(REFORM_RATIO)) if p0 > 0 and p1 > 0 else float("nan")
        return el, mu

    lo, hi = np.log(0.02), np.log(20.0)
    el_lo, _ = at(np.exp(lo))
    el_hi, _ = at(np.exp(hi))
    if elasticity >= el_lo:
        ls = lo
    elif elasticity <= el_hi:
        ls = hi
    else:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            el, _ = at(np.exp(mid))
            if el > elasticity:
                lo = mid
            else:
                hi = mid
            if hi - lo < tol:
                break
        ls = 0.5 * (lo + hi)
    sigma = float(np.exp(ls))
    el, mu = at(sigma)
    m = mu[cells]
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.where(m == np.inf, np.inf, np.where(m == -np.inf, 0.0, np.exp(np.where(np.isfinite(m), m, 0.0) + sigma * e)))
    employed = q < s
    return FixedCostCalibration(
        fixed_cost=q, employed=employed, sigma=sigma, mu=mu, elasticity=el,
        employment_rate=float(np.average(employed, weights=w)),
        target_rate=float(np.average(t, weights=w)),
    )
