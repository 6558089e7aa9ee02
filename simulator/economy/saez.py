"""Saez's optimal tax rates, converted to bracket rates: Saez (2001), the intensive
margin in a continuous income distribution, and Saez (2002), intensive and extensive
(participation) margins in a discrete model of occupations.

References: Saez, E. (2001), "Using Elasticities to Derive Optimal Income Tax Rates",
*Review of Economic Studies* 68(1), 205-229; Saez, E. (2002), "Optimal Income Transfer
Programs: Intensive versus Extensive Labor Supply Responses", *Quarterly Journal of
Economics* 117(3), 1039-1073.  Money is in dollars a year throughout.

Saez (2001)
-----------

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

Saez (2002)
-----------

:func:`saez_2002_taxes` solves the optimality condition of the discrete model (occupation
0 is not working; ``zeta_i`` the intensive, ``eta_i`` the participation elasticity):

    (T_i - T_{i-1}) / (c_i - c_{i-1})
        = 1 / (zeta_i h_i) * sum_{j >= i} h_j [1 - g_j - eta_j (T_j - T_0) / (c_j - c_0)]

with the budget ``sum_j h_j T_j = E``; :func:`saez_2002_bracket_rates` forms the
occupations from a simulated population (the non-employed, then the employed by bracket)
and turns the occupations' marginal rates into bracket rates.  With ``eta = 0`` it is the
intensive-only discrete formula; with a large participation elasticity at the bottom and
``g_1 > 1`` the optimal participation tax rate at the bottom is negative (an EITC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

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


# ---------------------------------------------------------------------------------------
# Saez (2002): intensive and extensive margins
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Saez2002Result:
    """The optimal taxes of the discrete intensive-extensive model (:func:`saez_2002_taxes`).

    Money in dollars a year; arrays over occupations ``0..I`` have ``I + 1`` entries,
    arrays over the working occupations ``1..I`` have ``I`` (entry ``k`` is occupation
    ``k + 1``).
    """

    taxes: np.ndarray  # T_0..T_I; -T_0 is the guaranteed income of the non-employed
    consumption: np.ndarray  # c_i = z_i - T_i
    marginal_rates: np.ndarray  # (T_i - T_{i-1}) / (z_i - z_{i-1}), occupations 1..I
    participation_tax_rates: np.ndarray  # (T_i - T_0) / z_i, occupations 1..I
    earnings: np.ndarray  # z_0 = 0 < z_1 < ... < z_I
    masses: np.ndarray  # h_i, population shares (sum 1)
    welfare_weights: np.ndarray  # g_i, normalised: sum_i h_i g_i = 1 (unless all zero)
    zeta: np.ndarray  # intensive elasticities, occupations 1..I
    eta: np.ndarray  # participation elasticities, occupations 1..I
    revenue: float  # revenue requirement per person: sum_i h_i T_i = revenue
    converged: bool
    residual: float  # max_i |LHS - RHS| / (1 + |LHS|) of the optimality condition, i = 1..I
    iterations: int  # function evaluations of the root finders (plus damped steps)
    method: str  # "closed form" (eta = 0), "hybr", "lm" or "damped fixed point"

    @property
    def guaranteed_income(self) -> float:
        """-T_0: what a person out of work receives (dollars a year)."""
        return float(-self.taxes[0])


_SAEZ_2002_TOL = 1e-9  # converged: every condition holds to 1e-9 of (1 + |its ratio|)


def _as_occupation_array(x, n: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"{name} must be a number or have one entry per working occupation "
                         f"({n}), got shape {a.shape}")
    return a


def saez_2002_taxes(
    z: ArrayLike,
    h: ArrayLike,
    g: ArrayLike,
    zeta: float | ArrayLike,
    eta: float | ArrayLike,
    revenue: float = 0.0,
    tol: float = 1e-12,
    max_iter: int = 10_000,
) -> Saez2002Result:
    """Optimal taxes ``T_0..T_I`` of Saez's (2002) discrete intensive-extensive model.

    ``z``: earnings of the occupations, ``z_0 = 0 < z_1 < ... < z_I`` (dollars a year;
    occupation 0 is not working); ``h``: their masses (any positive scale, ``h_0 >= 0``,
    ``h_i > 0`` for ``i >= 1``); ``g``: their social marginal welfare weights (>= 0,
    rescaled here so that ``sum_i h_i g_i = sum_i h_i``, the first-order condition of the
    lump sum without income effects; all zero is the revenue-maximising case and left
    as is); ``zeta``: intensive elasticities of occupations ``1..I`` (> 0; of ``h_i``
    with respect to ``c_i - c_{i-1}``, people moving to the adjacent occupation below);
    ``eta``: participation elasticities of occupations ``1..I`` (>= 0; of ``h_i`` with
    respect to ``c_i - c_0``, people leaving work); both a number or one entry per
    working occupation.  ``revenue``: the revenue requirement per person (dollars a year).

    The taxes solve, for ``i = 1..I``, the optimality condition of Saez's (2002) discrete
    model with both margins (derived below; the paper's text was not at hand to check its
    equation number, so none is quoted)

        (T_i - T_{i-1}) / (c_i - c_{i-1})
            = 1 / (zeta_i h_i) * sum_{j >= i} h_j [1 - g_j - eta_j (T_j - T_0) / (c_j - c_0)]

    with ``c_i = z_i - T_i``, and the budget ``sum_i h_i T_i = revenue * sum_i h_i``.
    (Derivation: raise ``T_j`` by ``dT`` for every ``j >= i``.  Mechanically the
    government gains ``sum_{j>=i} h_j (1 - g_j) dT`` net of the welfare cost; ``c_i -
    c_{i-1}`` falls by ``dT``, so ``zeta_i h_i dT / (c_i - c_{i-1})`` people move down to
    ``i - 1`` and take ``T_i - T_{i-1}`` each with them; every ``c_j - c_0`` (``j >= i``)
    falls by ``dT``, so ``eta_j h_j dT / (c_j - c_0)`` leave work, taking ``T_j - T_0``
    each.  At the optimum the three sum to zero.)  The elasticities, masses and weights
    are the sufficient statistics at the optimum, taken here as given.

    With ``eta = 0`` the condition is explicit (the intensive-only formula).  Otherwise it
    is a fixed point in ``T``: the conditions are in the differences ``T_i - T_{i-1}``
    only (the budget then sets ``T_0``), solved for ``u_i = log(c_i - c_{i-1})`` (so
    consumption rises with earnings) by ``scipy.optimize.root`` with the analytic
    Jacobian (Powell's hybrid method, then Levenberg-Marquardt; from the ``eta = 0``
    solution, then from zero tax), with a damped fixed-point iteration as the last
    resort (``tol``: its step size in ``u`` at which it stops, ``max_iter``: its most
    steps).  ``converged`` means every condition holds to 1e-9 of ``1 + |its left
    side|``.  It is False when no solution with ``c_0 < c_1 < ... < c_I`` is found, e.g.
    when welfare weights rise so steeply with earnings that the formula asks consumption
    to fall; the taxes are then the best iterate's (NaN with ``eta = 0``, where the
    explicit formula has no such solution).
    """
    z = np.asarray(z, dtype=float)
    h = np.asarray(h, dtype=float)
    g = np.asarray(g, dtype=float)
    if z.ndim != 1 or z.size < 2:
        raise ValueError("z must list the earnings of occupation 0 (not working) and at least one more")
    n = z.size - 1
    if not np.all(np.isfinite(z)) or z[0] != 0.0:
        raise ValueError("z must be finite with z_0 = 0 (occupation 0 is not working)")
    if np.any(np.diff(z) <= 0):
        raise ValueError("earnings z must be sorted strictly increasing: z_0 = 0 < z_1 < ... < z_I")
    if h.shape != z.shape or g.shape != z.shape:
        raise ValueError(f"h and g must have one entry per occupation ({z.size}), "
                         f"got shapes {h.shape} and {g.shape}")
    if not np.all(np.isfinite(h)) or h[0] < 0 or np.any(h[1:] <= 0):
        raise ValueError("masses h must be finite, h_0 >= 0 and h_i > 0 for every working occupation")
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError("welfare weights g must be finite and >= 0")
    zeta = _as_occupation_array(zeta, n, "zeta")
    eta = _as_occupation_array(eta, n, "eta")
    if not np.all(np.isfinite(zeta)) or np.any(zeta <= 0):
        raise ValueError("intensive elasticities zeta must be > 0")
    if not np.all(np.isfinite(eta)) or np.any(eta < 0):
        raise ValueError("participation elasticities eta must be >= 0")
    if not np.isfinite(revenue):
        raise ValueError("the revenue requirement must be a finite number (dollars a year per person)")

    mass = h.sum()
    hs = h / mass  # population shares
    gm = np.dot(hs, g)
    gn = g / gm if gm > 0 else g
    he, ge = hs[1:], gn[1:]
    dz = np.diff(z)
    ze = z[1:]
    base = he * (1.0 - ge)  # mechanical term of each working occupation
    zh = zeta * he
    eh = eta * he

    def rhs_tau(p: np.ndarray) -> np.ndarray:
        """1/(zeta_i h_i) sum_{j>=i} h_j (1 - g_j - eta_j p_j): the ratio the formula asks."""
        return np.cumsum((base - eh * p)[::-1])[::-1] / zh

    def p_of(u: np.ndarray) -> np.ndarray:
        """(T_j - T_0) / (c_j - c_0) from u = log(c_i - c_{i-1})."""
        return ze / np.cumsum(np.exp(u)) - 1.0

    def residual(u: np.ndarray) -> np.ndarray:
        return dz * np.exp(-u) - 1.0 - rhs_tau(p_of(u))

    def jacobian(u: np.ndarray) -> np.ndarray:
        eu = np.exp(u)
        cum = np.cumsum(eu)
        dp = -(ze / cum**2)[:, None] * eu[None, :] * np.tri(n)  # dp_j / du_k (k <= j)
        upper = np.triu(np.ones((n, n)))  # sum over j >= i
        return -np.diag(dz / eu) + (upper / zh[:, None]) @ (eh[:, None] * dp)

    def u_of_tau(tau: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(dz / (1.0 + tau))

    def max_residual(u: np.ndarray) -> float:
        """max_i |residual_i| / (1 + |(T_i - T_{i-1}) / (c_i - c_{i-1})|), inf if undefined."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            r = residual(u) / (1.0 + np.abs(dz * np.exp(-u) - 1.0))
        return float(np.max(np.abs(r))) if np.all(np.isfinite(r)) else float("inf")

    tau0 = np.cumsum(base[::-1])[::-1] / zh  # eta = 0: explicit
    valid0 = bool(np.all(tau0 > -1.0))
    zero_tax = np.log(dz)
    if not np.any(eta > 0):
        u, method, iters = (u_of_tau(tau0) if valid0 else np.full(n, np.nan)), "closed form", 0
        res_max = 0.0 if valid0 else float("inf")
    else:
        # Powell's hybrid method, then Levenberg-Marquardt, from the eta = 0 solution and
        # from zero tax; the damped fixed point if none of them converges
        starts = [u_of_tau(tau0), zero_tax] if valid0 else [zero_tax]
        best, iters = None, 0
        for u0 in starts:
            for m in ("hybr", "lm"):
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    sol = optimize.root(residual, u0, jac=jacobian, method=m,
                                        options={"xtol": 1e-13})
                iters += int(sol.get("nfev", 0))
                r = max_residual(sol.x)
                if best is None or r < best[0]:
                    best = (r, sol.x, m)
                if r <= _SAEZ_2002_TOL:
                    break
            if best[0] <= _SAEZ_2002_TOL:
                break
        res_max, u, method = best
        if res_max > _SAEZ_2002_TOL:  # u <- u + a (u(rhs) - u), a halved when a step fails
            v, a = starts[0].copy(), 0.5
            for _ in range(max_iter):
                iters += 1
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    new = u_of_tau(rhs_tau(p_of(v)))
                if not np.all(np.isfinite(new)):
                    a *= 0.5
                    if a < 1e-8:
                        break
                    continue
                step = a * (new - v)
                v = v + step
                if np.max(np.abs(step)) < tol:
                    break
            r = max_residual(v)
            if r < res_max:
                res_max, u, method = r, v, "damped fixed point"
    ok = res_max <= _SAEZ_2002_TOL

    d = dz - np.exp(u)  # T_i - T_{i-1}
    D = np.cumsum(d)  # T_i - T_0
    t0 = float(revenue) - np.dot(he, D)  # sum_i h_i T_i = revenue (shares sum to 1)
    taxes = np.concatenate([[t0], t0 + D])
    return Saez2002Result(
        taxes=taxes,
        consumption=z - taxes,
        marginal_rates=d / dz,
        participation_tax_rates=D / ze,
        earnings=z,
        masses=hs,
        welfare_weights=gn,
        zeta=zeta,
        eta=eta,
        revenue=float(revenue),
        converged=bool(ok),
        residual=res_max,
        iterations=iters,
        method=method,
    )


@dataclass(frozen=True)
class Saez2002BracketResult:
    """Bracket rates from the Saez (2002) taxes of a simulated population.

    ``rates`` and ``participation_tax_rates`` have one entry per bracket; ``occupations``
    is the solved model, whose working occupation ``k + 1`` is bracket
    ``occupation_bracket[k]``.
    """

    rates: np.ndarray  # effective marginal rate per bracket (not clipped; may be < 0)
    participation_tax_rates: np.ndarray  # (T_i - T_0) / z_i of the bracket's occupation; nan if empty
    occupations: Saez2002Result
    occupation_bracket: np.ndarray  # bracket index of working occupations 1..I

    @property
    def converged(self) -> bool:
        return self.occupations.converged

    @property
    def participation_tax_rate_bottom(self) -> float:
        """The optimal participation tax rate of the lowest-earning occupation."""
        return float(self.occupations.participation_tax_rates[0])

    @property
    def guaranteed_income(self) -> float:
        """-T_0 (dollars a year)."""
        return self.occupations.guaranteed_income


def saez_2002_bracket_rates(
    pre_tax: ArrayLike,
    employed: ArrayLike | None,
    edges: ArrayLike,
    zeta: float | ArrayLike,
    eta: float | ArrayLike,
    weights: str | ArrayLike = "inverse_income",
    population_weights: ArrayLike | None = None,
    revenue: float = 0.0,
    income_floor: float = DEFAULT_INCOME_FLOOR,
) -> Saez2002BracketResult:
    """Saez (2002) rates for brackets of gross income starting at ``edges`` (dollars a year).

    ``pre_tax``: earnings of each person (dollars a year); ``employed``: whether each
    works (None: earnings > 0); ``edges``: the brackets' lower edges in gross income,
    starting at 0 (as :func:`saez_bracket_rates` takes them); ``zeta``, ``eta``: intensive
    and participation elasticities, a number or one per bracket; ``weights``: social
    welfare weights per person (see :func:`welfare_weights`; evaluated at ``pre_tax``, so
    the non-employed have income 0); ``population_weights``: survey weights per person;
    ``revenue``: the revenue requirement per person (dollars a year; it only moves
    ``T_0``).

    Occupations: 0 = the non-employed (``employed`` False or earnings 0); 1..I = the
    employed grouped by the bracket their earnings fall in, populated brackets only, in
    order.  ``z_i`` is the group's weighted mean earnings, ``h_i`` its population share
    and ``g_i`` the weighted mean of the individual weights in it, the weights normalised
    to mean 1 over everyone (the non-employed included), so ``sum_i h_i g_i = 1``.

    Bracket rates: the bracket of occupation ``i`` gets the marginal rate ``(T_i -
    T_{i-1}) / (z_i - z_{i-1})`` (for the lowest occupation that is its participation
    tax rate, so the schedule charges it exactly ``T_1 - T_0``); a bracket with nobody
    employed in it takes the rate of the nearest populated bracket below, or, below the
    lowest one, the lowest occupation's rate (the step from not working).  Rates are
    effective marginal rates and are not clipped (an EITC is a negative rate).
    """
    z = np.asarray(pre_tax, dtype=float)
    edges = np.asarray(edges, dtype=float)
    if z.ndim != 1 or z.size == 0:
        raise ValueError("no incomes given")
    if not np.all(np.isfinite(z)) or np.any(z < 0):
        raise ValueError("pre-tax incomes must be finite and >= 0 (dollars a year)")
    if edges.ndim != 1 or edges.size == 0 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
        raise ValueError("bracket edges must start at 0 and increase strictly (dollars a year)")
    emp = z > 0 if employed is None else np.asarray(employed, dtype=bool)
    if emp.shape != z.shape:
        raise ValueError("employed must have one entry per person")
    emp = emp & (z > 0)
    if population_weights is None:
        p = np.full(z.size, 1.0 / z.size)
    else:
        p = np.asarray(population_weights, dtype=float)
        if p.shape != z.shape or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("population weights must be one finite weight >= 0 per person, "
                             "not all zero")
        p = p / p.sum()
    gi = welfare_weights(weights, z, income_floor)
    mean_g = np.dot(p, gi)
    gi = gi / mean_g if mean_g > 0 else gi

    k = len(edges)
    bracket = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, k - 1)
    occ = np.where(emp, bracket + 1, 0)  # 0: not working; 1 + bracket otherwise
    mass = np.bincount(occ, weights=p, minlength=k + 1)
    populated = np.flatnonzero(mass[1:] > 0)  # brackets with someone employed
    if populated.size == 0:
        raise ValueError("nobody is employed: the Saez (2002) model needs working occupations")
    keep = np.concatenate([[0], populated + 1])
    m = mass[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        z_occ = np.bincount(occ, weights=p * z, minlength=k + 1)[keep] / np.where(m > 0, m, 1.0)
        g_occ = np.bincount(occ, weights=p * gi, minlength=k + 1)[keep] / np.where(m > 0, m, 1.0)
    z_occ[0] = 0.0
    if m[0] == 0:
        g_occ[0] = 0.0

    def per_bracket(x, name):
        a = np.asarray(x, dtype=float)
        if a.ndim == 0:
            return float(a)
        if a.shape != (k,):
            raise ValueError(f"{name} must be a number or have one entry per bracket ({k})")
        return a[populated]

    res = saez_2002_taxes(z_occ, m, g_occ, per_bracket(zeta, "zeta"), per_bracket(eta, "eta"),
                          revenue=revenue)
    rates = np.full(k, np.nan)
    ptr = np.full(k, np.nan)
    rates[populated] = res.marginal_rates
    ptr[populated] = res.participation_tax_rates
    for j in range(k):
        if not np.isfinite(rates[j]):
            below = populated[populated < j]
            rates[j] = rates[below[-1]] if below.size else res.marginal_rates[0]
    return Saez2002BracketResult(rates=rates, participation_tax_rates=ptr, occupations=res,
                                 occupation_bracket=populated)
