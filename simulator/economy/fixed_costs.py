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
   A person works at calibration exactly when ``q_i < S_i``.  Given ``sigma``, each
   cell's ``mu`` is the weighted quantile that makes the cell's employment rate equal
   its target (CPS 2024 employment-population ratios): the targets hold exactly, up to
   one person per cell.
3. **Elasticity.**  ``sigma`` is set so that the population's extensive-margin
   elasticity, ``log(P1 / P0) / log(1.1)`` for a reform that raises every person's net
   gain from working by 10 % (an in-work benefit ``b_i = 0.1 * (c_i(l_i) - c_i(0))``,
   which raises the reservation cost to ``S_i + b_i`` exactly), equals the target
   (0.25 by default: Chetty 2012, Chetty et al. 2011).  A larger ``sigma`` spreads costs
   and puts fewer people at the margin, so the elasticity falls with ``sigma``;
   bisection on ``log sigma``.

All of it is vectorised numpy over people; cells are handled by one sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from simulator.economy.best_response import DEFAULT_HOURS_BOUNDS, best_response
from simulator.economy.participation import intensive, take_home
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
                     hours_bounds: tuple[float, float] = DEFAULT_HOURS_BOUNDS) -> Reservation:
    """The largest fixed cost at which each person still works (see the module doc).

    ``schedule`` a TaxSchedule or household budget; ``wages`` dollars a year per weekly
    hour; ``utility`` the intensive utility (a fixed cost already on it is ignored);
    ``rebate`` the lump-sum transfer (dollars a year).  Exact and direct: one best
    response of :class:`_Surplus`, whose maximum over hours is the cost.
    """
    u = intensive(utility)
    w = np.asarray(wages, dtype=float)
    n = w.size
    r = np.broadcast_to(np.asarray(rebate, dtype=float), w.shape)
    zero = np.zeros(n)
    c0 = take_home(schedule, zero) + r
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


def _cell_thresholds(x: np.ndarray, cells: np.ndarray, target: np.ndarray,
                     weights: np.ndarray, order: np.ndarray, n_cells: int) -> np.ndarray:
    """Per cell, a threshold ``mu`` such that the weighted share of the cell with
    ``x > mu`` is the cell's target share (to one person): ``x`` sorted descending
    within cells by ``order``."""
    xs, cs, ws, ts = x[order], cells[order], weights[order], target[order]
    tot = np.bincount(cs, weights=ws, minlength=n_cells)
    start = np.concatenate([[0], np.cumsum(np.bincount(cs, minlength=n_cells))[:-1]])
    cum = np.cumsum(ws)
    before = np.concatenate([[0.0], cum[:-1]])
    base = before[start[cs]] if xs.size else before
    share_through = (cum - base) / tot[cs]  # share of the cell with x >= this person's
    share_before = (before - base) / tot[cs]
    # person j is in when the target covers at least half of its own weight
    inside = 0.5 * (share_before + share_through) < ts
    mu = np.full(n_cells, np.inf)
    # the cell's threshold: between its last person in and its first person out
    last_in = np.where(inside, xs, np.inf)
    min_in = np.full(n_cells, np.inf)
    np.minimum.at(min_in, cs, last_in)
    first_out = np.where(~inside, xs, -np.inf)
    max_out = np.full(n_cells, -np.inf)
    np.maximum.at(max_out, cs, first_out)
    both = np.isfinite(min_in) & np.isfinite(max_out)
    mu = np.where(both, 0.5 * (min_in + max_out), mu)
    mu = np.where(np.isfinite(min_in) & ~np.isfinite(max_out), -np.inf, mu)  # all in
    mu = np.where(~np.isfinite(min_in) & np.isfinite(max_out), np.inf, mu)  # all out
    # equal x on both sides of the cut (e.g. ties) cannot be split: keep the cut above
    mu = np.where(both & (min_in <= max_out), np.nextafter(max_out, np.inf), mu)
    return mu


def calibrate_fixed_costs(reservation: Reservation, cells: ArrayLike, targets: ArrayLike,
                          eps: ArrayLike, elasticity: float = 0.25,
                          weights: ArrayLike | None = None, tol: float = 1e-4) -> FixedCostCalibration:
    """Fixed costs matching per-cell employment ``targets`` (one per person: the target
    of its cell, in [0, 1]) and the extensive-margin ``elasticity`` (see the module
    docstring).  ``cells`` (n,) integer cell ids; ``eps`` (n,) standard normal draws."""
    s = np.asarray(reservation.cost, dtype=float)
    b = (REFORM_RATIO - 1.0) * np.asarray(reservation.net_gain, dtype=float)
    cells = np.asarray(cells)
    _, cells = np.unique(cells, return_inverse=True)
    n_cells = int(cells.max()) + 1 if cells.size else 0
    t = np.asarray(targets, dtype=float)
    e = np.asarray(eps, dtype=float)
    n = s.size
    if not (t.shape == e.shape == cells.shape == (n,)):
        raise ValueError("targets, eps and cells need one entry per person")
    if np.any(~np.isfinite(t)) or np.any((t < 0) | (t > 1)):
        raise ValueError("employment targets must lie in [0, 1]")
    if not 0 < elasticity:
        raise ValueError("the target participation elasticity must be > 0")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    with np.errstate(divide="ignore"):
        log_s = np.where(s > 0, np.log(np.where(s > 0, s, 1.0)), -np.inf)
        log_s1 = np.where(s + b > 0, np.log(np.where(s + b > 0, s + b, 1.0)), -np.inf)

    def at(sigma: float):
        x = log_s - sigma * e
        order = np.lexsort((-x, cells))
        mu = _cell_thresholds(x, cells, t, w, order, n_cells)
        works0 = x > mu[cells]
        works1 = (log_s1 - sigma * e) > mu[cells]
        p0 = np.average(works0, weights=w)
        p1 = np.average(works1, weights=w)
        el = float(np.log(p1 / p0) / np.log(REFORM_RATIO)) if p0 > 0 and p1 > 0 else float("nan")
        return el, mu, works0

    lo, hi = np.log(1e-3), np.log(20.0)
    el_lo, _, _ = at(np.exp(lo))
    el_hi, _, _ = at(np.exp(hi))
    if not (np.isfinite(el_lo) and np.isfinite(el_hi)):
        raise ValueError("no employed person at the calibration: the fixed costs cannot be calibrated")
    if elasticity >= el_lo:
        ls = lo
    elif elasticity <= el_hi:
        ls = hi
    else:
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            el, _, _ = at(np.exp(mid))
            if el > elasticity:
                lo = mid
            else:
                hi = mid
            if hi - lo < tol:
                break
        ls = 0.5 * (lo + hi)
    sigma = float(np.exp(ls))
    el, mu, works = at(sigma)
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.exp(mu[cells] + sigma * e)
    q = np.where(np.isnan(q), np.inf, q)
    return FixedCostCalibration(
        fixed_cost=q, employed=works, sigma=sigma, mu=mu, elasticity=el,
        employment_rate=float(np.average(works, weights=w)),
        target_rate=float(np.average(t, weights=w)),
    )
