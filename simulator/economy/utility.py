"""Worker utility functions over consumption and labour.

Units: consumption ``c`` in dollars a year (post-tax income plus rebate); labour ``l`` in
hours a week.  Every parameter may be a scalar or a per-agent array of shape ``(n,)``.

Each utility exposes

* ``__call__(c, l)``: utility, vectorised;
* ``marginal_gain(l, net_wage, virtual_income)``: dU/dl along a linear budget segment
  ``c = net_wage * l + virtual_income``, a strictly decreasing function of ``l``;
* ``segment_argmax(net_wage, virtual_income, lo, hi)``: the exact maximiser of U on that
  segment restricted to ``[lo, hi]`` hours a week (closed form where one exists, a
  safeguarded Newton solve otherwise);
* ``frisch_elasticity``: the Frisch (marginal-utility-of-wealth constant) elasticity of
  hours with respect to the net wage.

Both forms are concave in ``(c, l)``, so on a convex budget set (marginal rates that
never fall) the best response is unique.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: Hours a week at which the default isoelastic worker works under any flat tax with no
#: rebate (the default ``psi`` is calibrated to it).
DEFAULT_TARGET_HOURS = 40.0
#: Net-of-tax wage (dollars a year per weekly hour; $1,000 is about $52,000 a year at 40
#: hours before a ~23 % average tax) at which the default ``psi`` gives 40 hours when
#: ``eta != 1``.  Under log utility (``eta = 1``) the wage drops out.
REFERENCE_NET_WAGE = 1000.0


def _as_param(p):
    """Scalars stay floats; sequences become float arrays (per-agent parameters)."""
    a = np.asarray(p, dtype=float)
    return float(a) if a.ndim == 0 else a


def _col(p: ArrayLike, ndim: int) -> np.ndarray | float:
    """Reshape a per-agent parameter (n,) to broadcast against (n, k) arrays."""
    a = np.asarray(p, dtype=float)
    if a.ndim == 0:
        return float(a)
    return a.reshape(a.shape + (1,) * (ndim - a.ndim))


@dataclass(frozen=True)
class QuasiLinearUtility:
    """The reference's form ``u = c - psi * l**delta``.

    Its defaults (``psi = 0.0005``, ``delta = 3.5``) are kept for comparison with the
    LLM Economist code; with realistic wages they put most agents at the hours cap.
    The hours elasticity with respect to the net wage is ``1 / (delta - 1)`` (Frisch,
    compensated and uncompensated coincide: there are no income effects).
    """

    psi: ArrayLike = 0.0005
    delta: ArrayLike = 3.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "psi", _as_param(self.psi))
        object.__setattr__(self, "delta", _as_param(self.delta))
        if np.any(np.asarray(self.psi) <= 0):
            raise ValueError("psi must be > 0")
        if np.any(np.asarray(self.delta) <= 1):
            raise ValueError("delta must be > 1 for a concave problem")

    @property
    def frisch_elasticity(self) -> np.ndarray | float:
        return 1.0 / (np.asarray(self.delta, dtype=float) - 1.0)

    def __call__(self, c: ArrayLike, l: ArrayLike) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        l = np.asarray(l, dtype=float)
        return c - _col(self.psi, l.ndim) * l ** _col(self.delta, l.ndim)

    def marginal_gain(self, l, net_wage, virtual_income):
        nd = np.ndim(l)
        psi, delta = _col(self.psi, nd), _col(self.delta, nd)
        return net_wage - psi * delta * np.asarray(l, dtype=float) ** (delta - 1)

    def segment_argmax(self, net_wage, virtual_income, lo, hi):
        nd = np.ndim(net_wage)
        psi, delta = _col(self.psi, nd), _col(self.delta, nd)
        nw = np.maximum(np.asarray(net_wage, dtype=float), 0.0)
        interior = (nw / (psi * delta)) ** (1.0 / (delta - 1.0))
        return np.clip(interior, lo, hi)


@dataclass(frozen=True)
class IsoelasticUtility:
    """CRRA in consumption minus isoelastic disutility of labour.

    ``u = (c**(1-eta) - 1) / (1-eta) - psi * l**(1+1/e) / (1+1/e)``, with
    ``log(c)`` at ``eta = 1``.  ``e`` (``frisch``) is the Frisch elasticity of hours with
    respect to the net wage; with ``eta = 0`` there are no income effects and ``e`` is
    also the compensated, uncompensated and taxable-income elasticity.  Consumption is
    floored at ``c_floor`` dollars a year when ``eta > 0`` so log utility stays finite at zero income.

    Defaults: ``eta = 1`` (log), ``e = 0.5`` (in the range of micro estimates, see
    ``docs/economics.md``), and ``psi = 40 ** -(1 + 1/e)``, the value at which a worker
    facing any flat tax with no rebate chooses 40 hours a week whatever the wage (income
    and substitution effects cancel under log utility); for other ``eta`` the default is
    ``psi = REFERENCE_NET_WAGE**(1-eta) * 40**(-eta - 1/e)``, which gives 40 hours at a
    net wage of $1,000 a year per weekly hour.  Rebates and progressive rates
    then move hours below 40 for low earners: solutions are interior for nearly everyone.
    """

    eta: float = 1.0
    frisch: ArrayLike = 0.5
    psi: ArrayLike | None = None
    c_floor: float = 1.0

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise ValueError("eta (relative risk aversion) must be >= 0")
        if np.any(np.asarray(self.frisch) <= 0):
            raise ValueError("the Frisch elasticity must be > 0")
        object.__setattr__(self, "frisch", _as_param(self.frisch))
        if self.psi is None:
            e = np.asarray(self.frisch, dtype=float)
            psi = REFERENCE_NET_WAGE ** (1.0 - self.eta) * DEFAULT_TARGET_HOURS ** (
                -self.eta - 1.0 / e
            )
            object.__setattr__(self, "psi", psi)
        object.__setattr__(self, "psi", _as_param(self.psi))
        if np.any(np.asarray(self.psi) <= 0):
            raise ValueError("psi must be > 0")
        if self.c_floor <= 0:
            raise ValueError("c_floor must be > 0")

    @property
    def frisch_elasticity(self) -> np.ndarray | float:
        return self.frisch

    def consumption_utility(self, c: ArrayLike) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        if self.eta == 0.0:  # linear: no floor needed (and none assumed by the solver)
            return c - 1.0
        c = np.maximum(c, self.c_floor)
        if self.eta == 1.0:
            return np.log(c)
        return (c ** (1.0 - self.eta) - 1.0) / (1.0 - self.eta)

    def __call__(self, c: ArrayLike, l: ArrayLike) -> np.ndarray:
        l = np.asarray(l, dtype=float)
        nd = l.ndim
        e, psi = _col(self.frisch, nd), _col(self.psi, nd)
        p = 1.0 + 1.0 / e
        return self.consumption_utility(c) - psi * l**p / p

    def marginal_gain(self, l, net_wage, virtual_income):
        l = np.asarray(l, dtype=float)
        nd = l.ndim
        e, psi = _col(self.frisch, nd), _col(self.psi, nd)
        c = np.maximum(net_wage * l + virtual_income, self.c_floor)
        return net_wage * c ** (-self.eta) - psi * l ** (1.0 / e)

    def segment_argmax(self, net_wage, virtual_income, lo, hi, iterations: int = 60):
        nw = np.maximum(np.asarray(net_wage, dtype=float), 0.0)
        v = np.asarray(virtual_income, dtype=float)
        nd = nw.ndim
        e, psi = _col(self.frisch, nd), _col(self.psi, nd)
        lo = np.asarray(lo, dtype=float)
        hi = np.asarray(hi, dtype=float)
        if self.eta == 0.0:
            return np.clip((nw / psi) ** e, lo, hi)
        if self.eta == 1.0 and np.all(np.asarray(self.frisch) <= 1.0):
            # log utility where c >= V >= c_floor: a polynomial-type root, no logs needed
            fast_ok = v >= self.c_floor
            if np.all(fast_ok):
                return _log_utility_hours(nw, v, e, psi, lo, hi)
            if np.ndim(nw) == 1 and np.any(fast_ok):  # per-agent solves (progressive path)
                shape = np.broadcast_shapes(nw.shape, v.shape, lo.shape, hi.shape)
                full = [np.broadcast_to(x, shape) for x in (nw, v, e, psi, lo, hi)]
                mask = np.broadcast_to(fast_ok, shape)
                out = np.empty(shape)
                out[mask] = _log_utility_hours(*(x[mask] for x in full))
                rest = ~mask
                out[rest] = self._log_newton(*(x[rest] for x in full), iterations)
                return out
        return self._log_newton(nw, v, e, psi, lo, hi, iterations)

    def _gain(self, l, nw, v, e, psi):
        """:meth:`marginal_gain` with explicit (already broadcastable) ``e`` and ``psi``."""
        c = np.maximum(nw * l + v, self.c_floor)
        return nw * c ** (-self.eta) - psi * l ** (1.0 / e)

    def _log_newton(self, nw, v, e, psi, lo, hi, iterations):
        # dU/dl is strictly decreasing in l: solve dU/dl = 0 on [lo, hi] by a Newton
        # iteration on x = log l, safeguarded by the shrinking bracket.
        tiny = 1e-12
        a = np.broadcast_to(np.maximum(lo, tiny), np.broadcast_shapes(nw.shape, lo.shape)).copy()
        b = np.broadcast_to(np.maximum(hi, tiny), a.shape).copy()
        # the gain with the parameters passed in (a per-agent branch passes a subset)
        g_lo = self._gain(a, nw, v, e, psi)
        g_hi = self._gain(b, nw, v, e, psi)
        out = np.where(g_lo <= 0, lo, np.where(g_hi >= 0, hi, np.nan))
        todo = np.isnan(out)
        if not todo.any():
            return out
        nw_t, v_t = np.broadcast_to(nw, a.shape)[todo], np.broadcast_to(v, a.shape)[todo]
        e_t = np.broadcast_to(e, a.shape)[todo] if np.ndim(e) else e
        psi_t = np.broadcast_to(psi, a.shape)[todo] if np.ndim(psi) else psi
        xa, xb = np.log(a[todo]), np.log(b[todo])
        # start from the solution with no virtual income (to its right when V > 0)
        log_nw = np.log(np.maximum(nw_t, tiny))
        x = ((1.0 - self.eta) * log_nw - np.log(psi_t)) / (self.eta + 1.0 / e_t)
        x = np.clip(x, xa, xb)
        x = _newton_log_hours(x, xa, xb, nw_t, v_t, e_t, psi_t, self.eta, self.c_floor, iterations)
        out[todo] = np.exp(x)
        return out


def _log_utility_hours(nw, v, e, psi, lo, hi, max_iter: int = 60):
    """Exact hours for log utility on one segment (requires V >= c_floor and e <= 1).

    The first-order condition ``nw / (nw l + V) = psi l**p`` (``p = 1/e >= 1``) is the root
    of ``f(l) = psi l**p (nw l + V) - nw``, increasing and convex for ``l > 0``.  Both
    ``l_a = psi**(-1/(p+1))`` (the root when V = 0) and ``l_b = (nw / (psi V))**(1/p)``
    lie to the right of the root.  One Newton step in log hours from ``l_a`` (where the
    condition is convex with slope in [p, p+1]) lands just right of the root; Newton on
    ``f`` from there decreases monotonically to it.  Iterates are clipped to ``[lo, hi]``,
    which also returns the bound when the root lies outside.
    """
    p = 1.0 / e
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        l_a = psi ** (-1.0 / (p + 1.0))
        # one Newton step in log hours from l_a, where the condition reads
        # g(x) = p x + log(nw e^x + V) + log(psi / nw) = 0: g is convex and increasing
        # with slope in [p, p + 1], so the step lands just right of the root
        ratio = v / np.maximum(nw * l_a, 1e-300)
        l1 = l_a * np.exp(-np.log1p(ratio) / (p + 1.0 / (1.0 + ratio)))
    l = np.minimum(np.maximum(np.where(np.isfinite(l1), l1, l_a), lo), hi)
    l = np.where(nw > 0, l, lo)
    p2 = np.ndim(p) == 0 and p == 2.0
    a = nw / psi  # f(l) / psi = l**p c - a

    def newton_step(l):
        # l - f / f' with f / psi = l**p c - a and f' / psi = l**(p-1) (p c + nw l)
        lp1 = l if p2 else l ** (p - 1.0)
        nwl = nw * l
        c = nwl + v
        with np.errstate(divide="ignore", invalid="ignore"):
            new = l - (lp1 * l * c - a) / (lp1 * (p * c + nwl))
        return np.minimum(np.maximum(new, lo), hi)

    # Newton from just right of the root converges monotonically and quadratically
    # (relative error about 2e-2, 2e-4, 3e-8, 1e-16 from the start above), so three steps
    # are unconditional; an element whose third step moved it by more than 1e-6 of its
    # hours (never seen) keeps stepping until its own step is negligible, so every
    # result depends on that element alone
    for _ in range(2):
        l = newton_step(l)
    new = newton_step(l)
    active = np.abs(new - l) > 1e-6 * np.maximum(l, 1.0)
    l = new
    for _ in range(max_iter if active.any() else 0):
        new = newton_step(l)
        moving = np.abs(new - l) > 1e-12 * np.maximum(l, 1.0)
        l = np.where(active, new, l)
        active = active & moving
        if not active.any():
            break
    # no positive net wage: the lower bound (also where 0 / 0 steps left a nan)
    return np.where(nw > 0, l, lo)


def _newton_log_hours(x, xa, xb, nw, v, e, psi, eta, c_floor, iterations):
    """Root of h(x) = log nw - eta log c(e^x) - log psi - x/e on [xa, xb] (h decreasing).

    Newton steps clipped to the shrinking bracket; iterates only on the elements not
    yet converged (|step| < 1e-11 in log hours).
    """
    active = np.arange(x.size)
    e = np.broadcast_to(e, x.shape)
    psi = np.broadcast_to(psi, x.shape)
    log_nw = np.log(np.maximum(nw, 1e-12))
    log_psi = np.log(psi)
    for _ in range(iterations):
        xs, a, b = x[active], xa[active], xb[active]
        nws, vs, es = nw[active], v[active], e[active]
        l = np.exp(xs)
        c = np.maximum(nws * l + vs, c_floor)
        h = log_nw[active] - eta * np.log(c) - log_psi[active] - xs / es
        dh = -eta * nws * l / c - 1.0 / es
        pos = h > 0
        a = np.where(pos, xs, a)
        b = np.where(pos, b, xs)
        step = xs - h / dh
        # h is concave and decreasing, so Newton converges monotonically after its first
        # step; steps are clipped to the bracket (the root can sit on its edge: a kink)
        x_new = np.where(np.isfinite(step), np.clip(step, a, b), 0.5 * (a + b))
        xa[active], xb[active], x[active] = a, b, x_new
        keep = (np.abs(x_new - xs) > 1e-11) & (b - a > 1e-11)
        active = active[keep]
        if active.size == 0:
            break
    return x


Utility = QuasiLinearUtility | IsoelasticUtility


def subset_utility(utility: Utility, idx) -> Utility:
    """The same utility with per-agent parameter arrays restricted to ``idx`` (a slice,
    an index array or a mask); scalar parameters are shared."""
    from dataclasses import fields, is_dataclass, replace

    changes = {}
    for f in fields(utility):
        v = getattr(utility, f.name)
        if isinstance(v, np.ndarray):
            changes[f.name] = v[idx]
        elif is_dataclass(v) and not isinstance(v, type):  # a wrapped utility
            sub = subset_utility(v, idx)
            if sub is not v:
                changes[f.name] = sub
    return replace(utility, **changes) if changes else utility
