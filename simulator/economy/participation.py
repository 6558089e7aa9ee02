"""The extensive margin of labour supply: who works at all.

A person with a fixed cost of working ``q`` (dollars a year: commuting, childcare, the
money value of the time a job takes before the first hour is paid) has utility

    U(c, l) = u(c - q * [l > 0], l)

where ``u`` is the intensive-margin utility (:mod:`simulator.economy.utility`), ``c``
consumption (dollars a year), ``l`` hours a week and ``b`` the resources a person has
only when not working (outside the modelled taxes and credits).  Working means choosing the best
positive hours with the fixed cost paid; not working means ``l = 0`` and the take-home
the tax-benefit system pays at zero earnings (the spouse's wages, refundable credits at
zero, the lump-sum transfer).  This is the discrete participation choice of Heckman
(1974), Cogan (1981) and Saez (2002, QJE 117(3)): the extensive-margin response to the
*participation tax rate* ``(T(z) - T(0)) / z``, not to the marginal rate.

Everything here is pure numpy; the exact best response with the participation choice is
:func:`simulator.economy.best_response.best_response` given a :class:`FixedCostUtility`,
and the calibration of the fixed costs is :mod:`simulator.economy.fixed_costs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility, Utility


@dataclass(frozen=True)
class FixedCostUtility:
    """``base`` utility with a fixed cost of working ``fixed_cost`` (dollars a year, a
    scalar or one per person; ``inf`` means never works; a negative cost is a payment
    for working, e.g. an in-work benefit) paid when hours > 0, and ``nonwork_income``
    (dollars a year, >= 0): resources a person has only when not working, outside the
    modelled tax-benefit system (means-tested support such as SNAP, help from family)."""

    base: Utility
    fixed_cost: ArrayLike = 0.0
    nonwork_income: ArrayLike = 0.0

    def __post_init__(self) -> None:
        q = np.asarray(self.fixed_cost, dtype=float)
        if np.any(np.isnan(q)) or np.any(q == -np.inf):
            raise ValueError("fixed costs of working must be numbers (dollars a year) or +inf")
        object.__setattr__(self, "fixed_cost", float(q) if q.ndim == 0 else q)
        b = np.asarray(self.nonwork_income, dtype=float)
        if np.any(~np.isfinite(b)) or np.any(b < 0):
            raise ValueError("income when not working must be a finite number >= 0 (dollars a year)")
        object.__setattr__(self, "nonwork_income", float(b) if b.ndim == 0 else b)

    # the intensive-margin parameters are the base utility's
    @property
    def eta(self) -> float:
        return float(getattr(self.base, "eta", 0.0))

    @property
    def c_floor(self):
        return getattr(self.base, "c_floor", None)

    @property
    def frisch_elasticity(self):
        return self.base.frisch_elasticity

    def __getattr__(self, name: str):  # psi, frisch, delta, ...: the base utility's
        if name.startswith("_") or name in ("base", "fixed_cost", "nonwork_income"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def shift(self, l: ArrayLike) -> np.ndarray:
        """What working or not adds to consumption at hours ``l`` (dollars a year): minus
        the fixed cost where ``l > 0``, the income when not working where ``l == 0``."""
        l = np.asarray(l, dtype=float)
        q = np.asarray(self.fixed_cost, dtype=float)
        b = np.asarray(self.nonwork_income, dtype=float)
        if l.ndim > 1:
            q = q.reshape(q.shape + (1,) * (l.ndim - q.ndim)) if q.ndim else q
            b = b.reshape(b.shape + (1,) * (l.ndim - b.ndim)) if b.ndim else b
        with np.errstate(invalid="ignore"):
            return np.where(l > 0, -q, b)

    def __call__(self, c: ArrayLike, l: ArrayLike) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        return self.base(c + self.shift(l), l)


def has_participation(utility) -> bool:
    """True when ``utility`` carries a fixed cost of working (an extensive margin)."""
    return isinstance(utility, FixedCostUtility)


def intensive(utility) -> Utility:
    """The intensive-margin utility (``utility`` itself when there is no fixed cost)."""
    return utility.base if isinstance(utility, FixedCostUtility) else utility


def no_income_effects(utility) -> bool:
    """True when hours (and participation) do not depend on lump-sum income."""
    u = intensive(utility)
    return isinstance(u, QuasiLinearUtility) or (isinstance(u, IsoelasticUtility) and u.eta == 0.0)


def take_home(schedule, z: ArrayLike) -> np.ndarray:
    """Consumption before the lump-sum transfer at own earnings ``z`` (dollars a year):
    ``z - T(z)`` under a :class:`~simulator.economy.tax.TaxSchedule`; ``z + spouse's
    wages - net tax of the unit`` under a household budget of the us_current_law world."""
    z = np.asarray(z, dtype=float)
    if getattr(schedule, "per_agent", False):
        # the compiled segments give the same net tax as the components (tested), faster
        return z + schedule.spouse_wages - schedule.segment_table.net_tax(z)
    return z - schedule.tax(z)


def participation_tax_rate(schedule, z: ArrayLike) -> np.ndarray:
    """The participation tax rate ``(T(z) - T(0)) / z`` at own earnings ``z`` (dollars a
    year): the share of earnings lost to taxes and withdrawn credits when moving from
    not working to earning ``z`` (Saez 2002; OECD's "participation tax rate").  ``T`` is
    the unit's net tax (income tax after credits plus payroll tax in the us_current_law
    world).  NaN where ``z <= 0``."""
    z = np.asarray(z, dtype=float)
    net_gain = take_home(schedule, z) - take_home(schedule, np.zeros_like(z))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z > 0, 1.0 - net_gain / np.where(z > 0, z, 1.0), np.nan)


def participation_elasticity(employed_base: ArrayLike, employed_reform: ArrayLike,
                             net_gain_ratio: float, weights: ArrayLike | None = None) -> float:
    """Arc elasticity of the employment rate with respect to the net-of-participation-tax
    rate ``1 - tau_p``: ``log(P1 / P0) / log(ratio)`` where ``ratio`` is the factor by
    which the reform raises everyone's net gain from working (1.1 for a 10 % rise)."""
    w = None if weights is None else np.asarray(weights, dtype=float)
    p0 = np.average(np.asarray(employed_base, dtype=float), weights=w)
    p1 = np.average(np.asarray(employed_reform, dtype=float), weights=w)
    if p0 <= 0 or p1 <= 0 or net_gain_ratio <= 0 or net_gain_ratio == 1:
        return float("nan")
    return float(np.log(p1 / p0) / np.log(net_gain_ratio))
