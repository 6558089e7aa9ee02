"""The US tax-benefit system a worker faces, as one budget in the worker's own earnings.

:class:`USTaxBenefit` is the ``us_current_law`` world: current-law parameters of one year
(:mod:`.params`), an optional :class:`Reform` of the credits and payroll tax, and every
worker's tax unit (:class:`Households`).  The planner's :class:`~simulator.economy.tax.TaxSchedule`
stays the income-tax lever: :meth:`USTaxBenefit.bind` puts its brackets and rates in
place of the statutory ones (:func:`schedule_params`) and returns a :class:`HouseholdBudget`,
which the economic core uses where the ``income_tax_only`` world uses the schedule:

* :meth:`HouseholdBudget.tax` is each unit's net tax (income tax after credits plus
  employee payroll tax, :func:`.components.net_tax`) at the worker's own earnings;
* :meth:`HouseholdBudget.segment_table` is the same function compiled into linear
  segments of the worker's earnings, one row per household type: net tax is piecewise
  linear in own earnings (with negative marginal rates in the EITC and ACTC phase-ins and
  non-convex kinks where a phase-out ends), so the exact best response solves every convex
  piece (``simulator.economy.best_response``).

Attribution (``docs/economics.md``): a worker's choice and utility see its whole unit's
budget, consumption = own earnings + spouse's wages (held fixed) - the unit's net tax +
the lump-sum transfer.  Population totals (revenue, credit costs, recipients) count each
tax unit once: a worker of a two-earner couple carries half its unit's amounts
(:meth:`HouseholdBudget.share`), since its spouse is another worker of the population.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from . import components
from .params import MARRIED_JOINT, TaxBenefitParams, load

#: Columns a population needs for the ``us_current_law`` world (defaults where absent).
HOUSEHOLD_COLUMNS = {
    "filing_status": 1, "children": 0, "eitc_children": 0, "spouse_age": 0,
    "spouse_wages": 0.0, "unit_earners": 1,
}


class ReformError(ValueError):
    """A reform field out of range."""


@dataclass(frozen=True)
class Reform:
    """Changes to current law outside the planner's brackets and rates.

    ``eitc_scale``: every EITC amount times this (phase-in and phase-out rates and the
    maximum credit scaled together, so the phase-in end and phase-out end stay), 0-5.
    ``ctc_per_child``: the child tax credit per qualifying child (dollars a year; current
    law when None), 0-20,000.  ``actc_per_child``: the refundable cap per child (IRC
    24(h)(5); current law when None), 0-20,000 (never above the credit).
    ``payroll_tax``: False switches employee and employer payroll tax off.
    """

    eitc_scale: float = 1.0
    ctc_per_child: float | None = None
    actc_per_child: float | None = None
    payroll_tax: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not (np.isfinite(self.eitc_scale) and 0.0 <= self.eitc_scale <= 5.0):
            problems.append(f"eitc_scale must lie in [0, 5], got {self.eitc_scale}")
        for name in ("ctc_per_child", "actc_per_child"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and 0.0 <= v <= 20_000.0):
                problems.append(f"{name} must lie in [0, 20000] dollars, got {v}")
        if problems:
            raise ReformError("; ".join(problems))

    @property
    def is_current_law(self) -> bool:
        return self == Reform()

    def apply(self, params: TaxBenefitParams) -> TaxBenefitParams:
        """``params`` with this reform."""
        p = params
        if self.eitc_scale != 1.0:
            f = float(self.eitc_scale)
            p = replace(p, EITC_rt=p.EITC_rt * f, EITC_c=p.EITC_c * f, EITC_prt=p.EITC_prt * f)
        if self.ctc_per_child is not None:
            p = replace(p, CTC_c=float(self.ctc_per_child))
        if self.actc_per_child is not None:
            p = replace(p, ACTC_c=float(self.actc_per_child))
        if not self.payroll_tax:
            p = replace(p, FICA_ss_trt_employee=0.0, FICA_ss_trt_employer=0.0,
                        FICA_mc_trt_employee=0.0, FICA_mc_trt_employer=0.0, AMEDT_rt=0.0)
        return p


def schedule_params(params: TaxBenefitParams, schedule) -> TaxBenefitParams:
    """``params`` with the planner's brackets and rates as the income tax.

    ``schedule`` (a :class:`~simulator.economy.tax.TaxSchedule`) gives the single filer's
    bracket lower edges of taxable income and the rates.  The other filing statuses'
    edges are the single edges times the statutory ratio of that status's edge to the
    single edge, interpolated in the single edge (married filing jointly: 2 up to the
    35 % bracket, 1.2 at the top), so the statutory schedule of the year reproduces the
    law for every status.  The standard deductions stay statutory (the schedule's own
    ``deduction`` is the single filer's and is not used here).
    """
    thr = np.asarray(schedule.thresholds, dtype=float)
    law = params.II_brk[:-1]  # (6, 4) statutory upper edges below the top bracket
    single = law[:, 0]
    edges = thr[1:]  # upper edges of the planner's brackets below the top one
    brk = np.empty((edges.size, 4))
    for m in range(4):
        ratio = law[:, m] / single
        brk[:, m] = edges * np.interp(edges, single, ratio)
    return replace(params, II_brk=brk, II_rt=np.asarray(schedule.rates, dtype=float))


@dataclass(frozen=True)
class Households:
    """Every worker's tax unit, arrays of shape (n,).

    ``filing_status`` MARS codes (1 single, 2 joint, 3 separate, 4 head of household);
    ``children`` qualifying children under 17 (CTC); ``eitc_children`` EITC qualifying
    children (0-3+); ``age`` and ``spouse_age`` in years (spouse 0 when none);
    ``spouse_wages`` dollars a year, held fixed (counted under joint filing only);
    ``unit_earners`` 1 or 2 (a two-earner couple's amounts are shared by its two workers).
    """

    filing_status: np.ndarray
    children: np.ndarray
    eitc_children: np.ndarray
    age: np.ndarray
    spouse_age: np.ndarray
    spouse_wages: np.ndarray
    unit_earners: np.ndarray

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Households:
        """From a population table (columns of :data:`HOUSEHOLD_COLUMNS` plus ``age``;
        absent columns take their defaults: single, no children, age 40)."""
        n = len(df)

        def col(name, default, dtype):
            if name in df.columns:
                return df[name].to_numpy(dtype=dtype)
            return np.full(n, default, dtype=dtype)

        fs = col("filing_status", 1, np.int64)
        return cls(
            filing_status=fs,
            children=col("children", 0, np.int64),
            eitc_children=col("eitc_children", 0, np.int64) if "eitc_children" in df.columns
            else np.minimum(col("children", 0, np.int64), 3),
            age=col("age", 40, float),
            spouse_age=np.where(fs == MARRIED_JOINT, col("spouse_age", 0, float), 0.0),
            spouse_wages=np.where(fs == MARRIED_JOINT, col("spouse_wages", 0.0, float), 0.0),
            unit_earners=np.clip(col("unit_earners", 1, np.int64), 1, 2),
        )

    def __len__(self) -> int:
        return int(self.filing_status.size)

    def take(self, idx) -> Households:
        return Households(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


# --------------------------------------------------------------------------- compile


def _age_class(age: np.ndarray, params: TaxBenefitParams) -> np.ndarray:
    """What the components read of an age: 65 and over, and the EITC's 25-64 test."""
    a = np.asarray(age, dtype=float)
    ok = (a >= params.EITC_MinEligAge) & (a <= params.EITC_MaxEligAge)
    return (a >= 65).astype(np.int64) * 2 + ok.astype(np.int64)


def _unit_kinks(fs, ch, ech, n_aged, p: TaxBenefitParams) -> np.ndarray:
    """Candidate kinks of net tax in the unit's total wages, per household type (m, K).

    Generous by design: a point that is not a kink costs nothing; kinks this list misses
    (crossings of a credit with the tax that limits it) are found by the refinement."""
    m = fs.size
    i = fs - 1
    pts = [np.zeros(m), np.full(m, p.ACTC_Income_thd), np.full(m, p.SS_Earnings_c),
           p.AMEDT_ec[i], p.CTC_ps[i], p.CTC_ps[i] + p.CTC_c * ch / max(p.CTC_prt, 1e-12)]
    k = np.clip(ech, 0, 3)
    addon = np.where(fs == MARRIED_JOINT, p.EITC_ps_addon_MarriedJ[k], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pts += [np.where(p.EITC_rt[k] > 0, p.EITC_c[k] / np.where(p.EITC_rt[k] > 0, p.EITC_rt[k], 1), 0.0),
                p.EITC_ps[k] + addon,
                p.EITC_ps[k] + addon + np.where(p.EITC_prt[k] > 0, p.EITC_c[k] / np.where(p.EITC_prt[k] > 0, p.EITC_prt[k], 1), 0.0)]
    if p.ACTC_rt > 0:
        pts.append(p.ACTC_Income_thd + min(p.ACTC_c, p.CTC_c) * ch / p.ACTC_rt)
        pts.append(p.ACTC_Income_thd + p.ACTC_c * ch / p.ACTC_rt)
    # elderly credit (IRC 22): AGI threshold and the end of its phase-out
    thd = components._SCHR_THD[i]
    pts += [thd, thd + 2 * 7500.0, thd + 2 * 5000.0, thd + 2 * 3750.0]
    # taxable income zero and the bracket edges, in the three regimes of the senior deduction
    std = p.STD[i] + n_aged * p.STD_Aged[i]
    n_sen = np.where(fs == 3, 0.0, n_aged)
    ps = p.SeniorDed_ps[i]
    pts += [ps, ps + p.SeniorDed_c / max(p.SeniorDed_prt, 1e-12)]
    edges = np.vstack([np.zeros((1, m)), p.II_brk[:, i]])  # (E+1, m)
    for e in edges:
        e = np.minimum(e, 1e12)
        pts.append(std + e)
        pts.append(std + n_sen * p.SeniorDed_c + e)
        pts.append((e + std + n_sen * p.SeniorDed_c + n_sen * p.SeniorDed_prt * ps)
                   / (1.0 + n_sen * p.SeniorDed_prt))
    return np.stack(pts, axis=1)


def _compact(x, t, keep):
    """Keep the points ``keep`` of each row, in order; rows padded by their last point."""
    n_keep = keep.sum(axis=1)
    order = np.argsort(~keep, axis=1, kind="stable")
    k = int(n_keep.max())
    x2 = np.take_along_axis(x, order, 1)[:, :k]
    t2 = np.take_along_axis(t, order, 1)[:, :k]
    pad = np.arange(k)[None, :] >= n_keep[:, None]
    last = (n_keep - 1)[:, None]
    x2 = np.where(pad, np.take_along_axis(x2, last, 1), x2)
    t2 = np.where(pad, np.take_along_axis(t2, last, 1), t2)
    return x2, t2, n_keep


def _merge_collinear(x, t, tol=1e-9):
    """Drop repeated breakpoints, then interior ones where the slope does not change
    (per row; rows padded by their last point).  Returns ``(x, t, n)``."""
    first = np.ones(x.shape, dtype=bool)
    first[:, 1:] = np.diff(x, axis=1) > 0
    x, t, n = _compact(x, t, first)
    dx = np.diff(x, axis=1)
    slope = np.where(dx > 0, np.diff(t, axis=1) / np.where(dx > 0, dx, 1.0), 0.0)
    keep = np.arange(x.shape[1])[None, :] < n[:, None]
    bend = np.ones(x.shape, dtype=bool)
    bend[:, 1:-1] = np.abs(np.diff(slope, axis=1)) > tol
    last = np.arange(x.shape[1])[None, :] == (n - 1)[:, None]
    return _compact(x, t, keep & (bend | last))


@dataclass(frozen=True)
class SegmentTable:
    """A budget compiled into linear segments of the worker's own earnings.

    Rows are household types; ``key`` (n,) maps workers to rows.  Row j holds breakpoints
    ``x[j]`` (the first ``n[j]``; the rest repeat the last) and the values ``g[j]`` of a
    piecewise-linear function there, and ``top[j]``, its slope beyond the last
    breakpoint.  For a worker of a *composed* row the function is ``G`` of the unit's
    wages ``u = z + shift`` (``shift`` = the spouse's wages): net tax less employee
    OASDI and HI tax, which is a function of unit wages alone; the worker's own OASDI+HI
    (kinked at the wage base) and the spouse's (a constant, ``const``) are added back.
    Otherwise (a couple with a working spouse and ``ACTC_ChildNum``+ children, whose
    refundable CTC reads each spouse's payroll tax) the row is the unit's net tax in own
    earnings itself, compiled for that spouse's wages.  :meth:`agent_segments` composes
    every worker's own segments (dollars a year).
    """

    key: np.ndarray
    shift: np.ndarray
    composed: np.ndarray
    const: np.ndarray
    spouse_wages: np.ndarray
    x: np.ndarray
    g: np.ndarray
    top: np.ndarray
    n: np.ndarray
    ss_rate: float
    mc_rate: float
    cap: float

    def take(self, idx) -> SegmentTable:
        return replace(self, key=self.key[idx], shift=self.shift[idx], composed=self.composed[idx],
                       const=self.const[idx], spouse_wages=self.spouse_wages[idx])

    def __len__(self) -> int:
        return int(self.key.size)

    #: compose every worker's segments once and keep them when they take at most this
    #: many elements per array (they do not depend on the transfer, so the best responses
    #: of one equilibrium share them)
    CACHE_ELEMENTS = 25_000_000

    def agent_segments(self, sl=slice(None)) -> dict[str, np.ndarray]:
        cache = self.__dict__.setdefault("_segments_cache", {})
        if "all" in cache:
            return {k: v[sl] for k, v in cache["all"].items()}
        if len(self) * (self.x.shape[1] + 2) <= self.CACHE_ELEMENTS:
            cache["all"] = self._compose_all()
            return {k: v[sl] for k, v in cache["all"].items()}
        return self._compose(sl)

    def _compose_all(self, block: int = 65_536) -> dict[str, np.ndarray]:
        """:meth:`_compose` for every worker, block by block into arrays of the final size
        (the temporaries of one block, not of the population, at a time)."""
        n, S = len(self), self.x.shape[1] + 2
        out = {k: np.empty((n, S)) for k in ("lower", "rate", "intercept")}
        starts, ends = [], []
        for a in range(0, n, block):
            sl = slice(a, min(a + block, n))
            part = self._compose(sl)
            for k in out:
                out[k][sl] = part[k]
            starts.append(part["piece_start"])
            ends.append(part["piece_end"])
        q = max((x.shape[1] for x in starts), default=1)
        pad = lambda parts, fill: np.concatenate(  # noqa: E731
            [np.pad(x, ((0, 0), (0, q - x.shape[1])), constant_values=fill) for x in parts]
        ) if parts else np.zeros((0, q), dtype=np.int16)
        out["piece_start"] = pad(starts, S)
        out["piece_end"] = pad(ends, -1)
        return out

    def _compose(self, sl) -> dict[str, np.ndarray]:
        """Workers ``sl``'s own segments, arrays of shape (c, S): ``lower`` (earnings,
        dollars a year; segment s runs to ``lower[s + 1]``, the last to infinity; empty
        segments repeat a breakpoint), ``rate`` (marginal net tax rate; net tax at
        ``lower`` is ``rate * lower - intercept + spouse_wages``), ``intercept`` (consumption before the transfer is ``(1 - rate) z +
        intercept``, spouse's wages included) and ``piece`` (convex pieces: a new piece
        starts where the rate falls)."""
        k, sh = self.key[sl], self.shift[sl]
        comp, const, sw = self.composed[sl], self.const[sl], self.spouse_wages[sl]
        x, g = self.x[k], self.g[k]  # (c, P) in the row's argument
        c = k.size
        last = (self.n[k] - 1)[:, None]
        top = self.top[k][:, None]

        def g_at(u):  # the row's function at arguments u (c, q), linear between breakpoints
            j = np.clip((x[:, None, :] <= u[:, :, None]).sum(axis=2) - 1, 0, None)  # (c, q)
            xa = np.take_along_axis(x, j, 1)
            ga = np.take_along_axis(g, j, 1)
            nxt = np.minimum(j + 1, last)
            xb = np.take_along_axis(x, nxt, 1)
            gb = np.take_along_axis(g, nxt, 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.where(j >= last, top, np.where(xb > xa, (gb - ga) / (xb - xa), 0.0))
            return ga + slope * (u - xa)

        extra_z = np.stack([np.zeros(c), np.full(c, self.cap)], axis=1)  # own earnings 0, wage base
        extra_g = g_at(extra_z + sh[:, None])
        z = np.concatenate([x - sh[:, None], extra_z], axis=1)
        gv = np.concatenate([g, extra_g], axis=1)
        z = np.where(z >= 0.0, z, np.inf)
        order = np.argsort(z, axis=1, kind="stable")
        z = np.take_along_axis(z, order, 1)
        gv = np.take_along_axis(gv, order, 1)
        m = np.isfinite(z).sum(axis=1)
        zmax = np.take_along_axis(z, (m - 1)[:, None], 1)
        gmax = np.take_along_axis(gv, (m - 1)[:, None], 1)
        z = np.where(np.isfinite(z), z, zmax)
        gv = np.where(np.arange(z.shape[1])[None, :] < m[:, None], gv, gmax)
        own = np.where(comp[:, None], self.ss_rate * np.minimum(z, self.cap) + self.mc_rate * z, 0.0)
        t = gv + own + const[:, None]
        dz = np.diff(z, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(dz > 0, np.diff(t, axis=1) / np.where(dz > 0, dz, 1.0), 0.0)
        top_rate = top[:, 0] + np.where(comp, self.mc_rate, 0.0)
        rate = np.concatenate([rate, top_rate[:, None]], axis=1)
        upper = np.concatenate([z[:, 1:], np.full((c, 1), np.inf)], axis=1)
        S = z.shape[1]
        cols = np.arange(S)[None, :]
        # an empty segment takes the rate of the next non-empty one, so that rates along a
        # worker's budget only change where the budget bends
        nonempty = upper > z
        nxt = np.minimum.accumulate(np.where(nonempty, cols, S - 1)[:, ::-1], axis=1)[:, ::-1]
        rate = np.take_along_axis(rate, nxt, 1)
        piece = np.concatenate([np.zeros((c, 1), dtype=np.intp),
                                np.cumsum(np.diff(rate, axis=1) < -1e-12, axis=1)], axis=1)
        n_pieces = int(piece.max()) + 1
        starts = np.stack([np.where((piece == q).any(axis=1), np.argmax(piece == q, axis=1), S)
                           for q in range(n_pieces)], axis=1)
        ends = np.stack([np.where((piece == q).any(axis=1), S - 1 - np.argmax((piece == q)[:, ::-1], axis=1), -1)
                         for q in range(n_pieces)], axis=1)
        small = np.int16 if S < 32_000 else np.intp
        return {"lower": z, "rate": rate, "intercept": rate * z - t + sw[:, None],
                "piece_start": starts.astype(small), "piece_end": ends.astype(small)}

    def _at(self, z: ArrayLike):
        """Block by block: ``(sl, segments, s)`` with ``s`` the segment holding each
        worker's own earnings ``z[sl]``."""
        z = np.asarray(z, dtype=float)
        for start in range(0, z.size, 65_536):
            sl = slice(start, min(start + 65_536, z.size))
            a = self.agent_segments(sl)
            yield sl, a, np.maximum((a["lower"] <= z[sl, None]).sum(axis=1) - 1, 0)

    def net_tax(self, z: ArrayLike) -> np.ndarray:
        """Net tax (dollars a year) at own earnings ``z`` (n,) from the segments."""
        z = np.asarray(z, dtype=float)
        out = np.empty(z.size)
        for sl, a, s in self._at(z):
            r = np.arange(s.size)
            # net tax = earnings + spouse's wages - consumption before the transfer
            out[sl] = z[sl] + self.spouse_wages[sl] - ((1.0 - a["rate"][r, s]) * z[sl] + a["intercept"][r, s])
        return out

    def marginal_rate(self, z: ArrayLike) -> np.ndarray:
        """Marginal net tax rate (right derivative) at own earnings ``z`` (n,)."""
        out = np.empty(np.size(z))
        for sl, a, s in self._at(z):
            out[sl] = a["rate"][np.arange(s.size), s]
        return out

    def kinks(self, i: int) -> np.ndarray:
        """Worker ``i``'s breakpoints of own earnings (dollars a year)."""
        return np.unique(self.agent_segments(slice(i, i + 1))["lower"][0])


def compile_segments(tax_fn, keys_frame: dict[str, np.ndarray], kinks: np.ndarray,
                     spouse_wages: np.ndarray, z_max: float = 1e8,
                     rounds: int = 12) -> tuple[np.ndarray, ...]:
    """Breakpoints and values of ``tax_fn(z, rows)`` (net tax at own earnings ``z`` (m, P)
    of household types ``rows``), exact to rounding.

    Start from candidate ``kinks`` (m, K) in own earnings; then, while a test point inside
    an interval (at 0.37 and 0.71 of it) is off the chord, insert the crossing of the two
    end slopes (a missed kink between two known ones is exactly there).  Returns
    ``(x, t, n)``: breakpoints (m, P), net tax at them and each row's count.
    """
    m = kinks.shape[0]
    x = np.concatenate([np.zeros((m, 1)), np.clip(kinks, 0.0, z_max), np.full((m, 1), z_max)], axis=1)
    x = np.sort(x, axis=1)
    for _ in range(rounds):
        t = tax_fn(x)
        a, b = x[:, :-1], x[:, 1:]
        ta, tb = t[:, :-1], t[:, 1:]
        w = b - a
        bad = np.zeros(a.shape, dtype=bool)
        for f in (0.37, 0.71):
            xm = a + f * w
            tm = tax_fn(xm)
            chord = ta + f * (tb - ta)
            bad |= np.abs(tm - chord) > 1e-7 * np.maximum(1.0, np.abs(tm)) + 1e-9 * w
        bad &= w > 1e-6
        if not bad.any():
            break
        eps = np.maximum(np.minimum(1e-3, 0.01 * w), 1e-12)
        sa = (tax_fn(a + eps) - ta) / eps
        sb = (tb - tax_fn(b - eps)) / eps
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (tb - ta + sa * a - sb * b) / (sa - sb)
        ok = bad & np.isfinite(cross) & (cross > a) & (cross < b)
        new = np.where(ok, cross, np.where(bad, a + 0.5 * w, np.nan))
        x = np.sort(np.concatenate([x, new], axis=1), axis=1)  # NaN sorts last
        n_ok = np.isfinite(x).sum(axis=1)
        x = x[:, : int(n_ok.max())]
        x = np.where(np.isfinite(x), x, z_max)
    t = tax_fn(x)
    return _merge_collinear(x, t)


class USTaxBenefit:
    """The ``us_current_law`` world for one population: parameters, reform, households.

    ``year``: tax year of the parameters (2023-2026).  The planner's schedule is bound
    with :meth:`bind`; everything else is current law unless ``reform`` changes it.
    """

    def __init__(self, households: Households, year: int = 2024, reform: Reform | None = None):
        self.households = households
        self.year = int(year)
        self.reform = reform or Reform()
        self.params = self.reform.apply(load(self.year))
        self._types = self._household_types(households)

    def _household_types(self, h: Households):
        """Rows of the compiled budget: what the components read of a unit apart from
        the spouse's wages (composed rows), plus the spouse's wages for couples whose
        refundable CTC reads each spouse's payroll tax (see :class:`SegmentTable`)."""
        p = self.params
        joint = h.filing_status == MARRIED_JOINT
        exceptional = joint & (h.spouse_wages > 0) & (h.children >= p.ACTC_ChildNum)
        cols = np.stack([
            h.filing_status.astype(float), h.children.astype(float), h.eitc_children.astype(float),
            _age_class(h.age, p).astype(float),
            _age_class(np.where(joint, h.spouse_age, 0.0), p).astype(float),
            np.where(exceptional, h.spouse_wages, -1.0),
        ], axis=1)
        uniq, first, inverse = np.unique(cols, axis=0, return_index=True, return_inverse=True)
        return {
            "key": inverse.ravel().astype(np.intp),
            "exceptional": exceptional,
            "filing_status": h.filing_status[first].astype(np.int64),
            "children": h.children[first].astype(np.int64),
            "eitc_children": h.eitc_children[first].astype(np.int64),
            "age": h.age[first].astype(float),
            "spouse_age": h.spouse_age[first].astype(float),
            "spouse_wages": np.where(uniq[:, 5] >= 0, uniq[:, 5], 0.0),
            "composed": uniq[:, 5] < 0,
        }

    @property
    def n_types(self) -> int:
        return int(self._types["filing_status"].size)

    def bind(self, schedule) -> HouseholdBudget:
        """The budget every worker faces under the planner's ``schedule``."""
        return HouseholdBudget(self, schedule)

    def with_households(self, households: Households) -> USTaxBenefit:
        return USTaxBenefit(households, self.year, self.reform)


class HouseholdBudget:
    """:class:`USTaxBenefit` with the planner's schedule in place: per-worker net tax,
    its components and its compiled segments (see the module docstring)."""

    per_agent = True

    def __init__(self, system: USTaxBenefit, schedule, idx=None) -> None:
        self.system = system
        self.schedule = schedule
        self.params = schedule_params(system.params, schedule)
        self._idx = idx  # a subset of the population's workers, or None for all

    # -- duck type of TaxSchedule used by reports
    @property
    def rates(self):
        return self.schedule.rates

    @property
    def thresholds(self):
        return self.schedule.thresholds

    @property
    def rate_array(self) -> np.ndarray:
        return self.schedule.rate_array

    @property
    def n_brackets(self) -> int:
        return self.schedule.n_brackets

    def subset(self, idx) -> HouseholdBudget:
        """The budget of workers ``idx`` (indices into this budget's workers)."""
        base = np.arange(len(self.system.households)) if self._idx is None else self._idx
        out = HouseholdBudget.__new__(HouseholdBudget)
        out.system, out.schedule, out.params = self.system, self.schedule, self.params
        out._idx = base[idx]
        if "segment_table" in self.__dict__:
            out.__dict__["segment_table"] = self.segment_table.take(idx)
        return out

    def with_rates(self, rates) -> HouseholdBudget:
        return HouseholdBudget(self.system, self.schedule.with_rates(rates), self._idx)

    @property
    def households(self) -> Households:
        h = self.system.households
        return h if self._idx is None else h.take(self._idx)

    def __len__(self) -> int:
        return len(self.households)

    def components(self, z: ArrayLike) -> dict[str, np.ndarray]:
        """Every component (dollars a year, per worker's unit) at own earnings ``z`` (n,),
        as :func:`.components.net_tax` returns them, plus ``spouse_wages``.  The last
        answer is kept: accounting asks for the same earnings several times a year."""
        z = np.asarray(z, dtype=float)
        memo = self.__dict__.get("_last_components")
        if memo is not None and memo[0].shape == z.shape and np.array_equal(memo[0], z):
            return dict(memo[1])
        h = self.households
        out = components.net_tax(z, h.spouse_wages, h.filing_status, h.children, h.age,
                                 h.spouse_age, self.params, eitc_children=h.eitc_children)
        out["spouse_wages"] = h.spouse_wages
        self.__dict__["_last_components"] = (z.copy(), out)
        return dict(out)

    @property
    def share(self) -> np.ndarray:
        """Each worker's share of its unit's amounts in population totals."""
        return 1.0 / self.households.unit_earners

    @property
    def spouse_wages(self) -> np.ndarray:
        return self.households.spouse_wages

    def tax(self, z: ArrayLike) -> np.ndarray:
        """Net tax of each worker's unit (income tax after credits + employee payroll
        tax, dollars a year) at own earnings ``z`` (n,)."""
        return self.components(z)["net_tax"]

    def attributed_tax(self, z: ArrayLike) -> np.ndarray:
        """Each worker's share of its unit's net tax: what population totals add up."""
        return self.tax(z) * self.share

    def consumption(self, z: ArrayLike, net_tax: ArrayLike, rebate: float) -> np.ndarray:
        return np.asarray(z, dtype=float) + self.spouse_wages - np.asarray(net_tax) + rebate

    def marginal_rate(self, z: ArrayLike) -> np.ndarray:
        """Effective marginal rate of own earnings: the right derivative of net tax, the
        rate of the compiled segment holding ``z`` (exact, no finite difference)."""
        return self.segment_table.marginal_rate(z)

    @cached_property
    def segment_table(self) -> SegmentTable:
        """The budget compiled per household type (see :class:`SegmentTable`)."""
        s = self.system
        ty = s._types
        p = self.params
        fs, ch, ech = ty["filing_status"], ty["children"], ty["eitc_children"]
        age, sage, sw, comp = ty["age"], ty["spouse_age"], ty["spouse_wages"], ty["composed"]
        n_aged = (age >= 65).astype(float) + ((fs == MARRIED_JOINT) & (sage >= 65))
        unit = _unit_kinks(fs, ch, ech, n_aged, p)
        # composed rows: arguments are unit wages; the others: own earnings for that spouse
        kinks = np.concatenate([unit - np.where(comp, 0.0, sw)[:, None],
                                np.full((fs.size, 1), p.SS_Earnings_c)], axis=1)

        def tax_fn(x):
            r = x.shape[1]
            rep = lambda a: np.repeat(a, r)  # noqa: E731
            out = components.net_tax(x.ravel(), rep(sw), rep(fs), rep(ch), rep(age), rep(sage), p,
                                     eitc_children=rep(ech))
            oasdi_hi = components.oasdi_hi_employee(x.ravel(), 0.0, p)
            g = out["net_tax"] - np.where(rep(comp), oasdi_hi, 0.0)
            return g.reshape(x.shape)

        x, g, n = compile_segments(tax_fn, ty, kinks, sw)
        m = x.shape[0]
        if x.shape[1] > 1:
            j = np.maximum(n - 1, 1)
            top = (g[np.arange(m), j] - g[np.arange(m), j - 1]) / np.maximum(
                x[np.arange(m), j] - x[np.arange(m), j - 1], 1e-300)
        else:
            top = np.zeros(m)
        h = self.households
        key = ty["key"] if self._idx is None else ty["key"][self._idx]
        exc = ty["exceptional"] if self._idx is None else ty["exceptional"][self._idx]
        composed = ~exc
        spouse_oasdi_hi = components.oasdi_hi_employee(0.0, h.spouse_wages, p)
        return SegmentTable(
            key=key, shift=np.where(composed, h.spouse_wages, 0.0), composed=composed,
            const=np.where(composed, spouse_oasdi_hi, 0.0), spouse_wages=h.spouse_wages,
            x=x, g=g, top=top, n=n, ss_rate=float(p.FICA_ss_trt_employee),
            mc_rate=float(p.FICA_mc_trt_employee), cap=float(p.SS_Earnings_c))
