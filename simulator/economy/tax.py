"""Piecewise-linear marginal income tax schedules.

A schedule is a list of bracket lower edges ``thresholds`` (dollars a year of taxable
income, strictly increasing from 0) and a marginal ``rate`` for each bracket (a fraction
in [0, 1]).  The top rate applies to *all* income above the last threshold (the
reference implementation left income above $10M untaxed; we do not).  An optional
``deduction`` (dollars a year) is subtracted from gross income before the brackets
apply, so in terms of gross income the schedule has an extra 0 % bracket below it.

All methods accept scalars or numpy arrays of gross income (dollars a year).  Every view
of a schedule computes tax through :meth:`TaxSchedule.tax`: the simulation's accounting
(``simulator.economy.outcome.evaluate``), the rate curves of reports and
``tax_rates.parquet`` and the explore page (:meth:`TaxSchedule.curves`), and
``econsim tax``; given the schedule a run used, its deduction included, they agree to the
cent.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

FilingStatus = Literal[
    "single", "married_filing_jointly", "married_filing_separately", "head_of_household"
]
FILING_STATUSES: tuple[str, ...] = (
    "single",
    "married_filing_jointly",
    "married_filing_separately",
    "head_of_household",
)


class TaxScheduleError(ValueError):
    """An invalid tax schedule or an unknown year / filing status."""


def _load_csv(name: str) -> list[dict[str, str]]:
    with resources.files("simulator.economy").joinpath("data").joinpath(name).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def federal_table() -> dict[tuple[int, str], tuple[list[float], list[float]]]:
    """The statutory federal brackets: ``{(year, status): (thresholds, rates)}``."""
    table: dict[tuple[int, str], tuple[list[float], list[float]]] = {}
    rows = sorted(
        _load_csv("federal_income_tax_brackets_2023_2026.csv"),
        key=lambda r: (r["tax_year"], r["filing_status"], int(r["bracket"])),
    )
    for row in rows:
        key = (int(row["tax_year"]), row["filing_status"])
        thresholds, rates = table.setdefault(key, ([], []))
        thresholds.append(float(row["taxable_income_over"]))
        rates.append(float(row["rate"]))
    return table


def standard_deductions() -> dict[tuple[str, str], float]:
    """Standard deductions: ``{(year label, status): dollars}`` (year label e.g. '2025')."""
    return {
        (r["tax_year"], r["filing_status"]): float(r["standard_deduction"])
        for r in _load_csv("standard_deduction_2023_2026.csv")
    }


@dataclass(frozen=True)
class TaxSchedule:
    """A piecewise-linear marginal tax schedule.

    Parameters
    ----------
    thresholds:
        Lower edges of the brackets in dollars a year of taxable income; must start at 0
        and be strictly increasing.
    rates:
        Marginal rate of each bracket, fractions in [0, 1].
    deduction:
        Dollars a year subtracted from gross income before the brackets apply (e.g. the
        standard deduction); 0 by default.
    name:
        A label for reports.
    deduction_label:
        What the deduction is called in captions ("standard deduction" for
        :meth:`us_federal`).
    """

    thresholds: tuple[float, ...]
    rates: tuple[float, ...]
    deduction: float = 0.0
    name: str = field(default="custom", compare=False)
    # a class-level default, so schedules pickled before the field existed still read it
    deduction_label: str = field(default="deduction", compare=False)

    def __init__(
        self,
        thresholds: ArrayLike,
        rates: ArrayLike,
        deduction: float = 0.0,
        name: str = "custom",
        deduction_label: str = "deduction",
    ) -> None:
        thr = np.atleast_1d(np.asarray(thresholds, dtype=float))
        rt = np.atleast_1d(np.asarray(rates, dtype=float))
        problems = []
        if thr.ndim != 1 or rt.ndim != 1:
            problems.append("thresholds and rates must be one-dimensional")
        elif len(thr) == 0:
            problems.append("a schedule needs at least one bracket")
        elif len(thr) != len(rt):
            problems.append(
                f"{len(thr)} thresholds but {len(rt)} rates: need one rate per bracket"
            )
        else:
            if not np.all(np.isfinite(thr)) or not np.all(np.isfinite(rt)):
                problems.append("thresholds and rates must be finite numbers")
            elif thr[0] != 0:
                problems.append(f"the first threshold must be 0, got {thr[0]:g}")
            elif np.any(np.diff(thr) <= 0):
                problems.append(f"thresholds must be strictly increasing, got {thr.tolist()}")
            if np.any((rt < 0) | (rt > 1)):
                problems.append(f"rates must lie in [0, 1], got {rt.tolist()}")
        if not np.isfinite(deduction) or deduction < 0:
            problems.append(f"deduction must be a non-negative number, got {deduction}")
        if problems:
            raise TaxScheduleError("; ".join(problems))
        object.__setattr__(self, "thresholds", tuple(float(x) for x in thr))
        object.__setattr__(self, "rates", tuple(float(x) for x in rt))
        object.__setattr__(self, "deduction", float(deduction))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "deduction_label", deduction_label)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_rates(cls, thresholds: ArrayLike, rates: ArrayLike, **kw) -> TaxSchedule:
        """Schedule from bracket lower edges and rates (same as the constructor)."""
        return cls(thresholds, rates, **kw)

    @classmethod
    def flat(cls, rate: float, deduction: float = 0.0) -> TaxSchedule:
        """A single rate on all income above the deduction."""
        return cls([0.0], [rate], deduction=deduction, name=f"flat {rate:.0%}")

    @classmethod
    def us_federal(
        cls,
        year: int = 2024,
        filing_status: str = "single",
        standard_deduction: bool = True,
    ) -> TaxSchedule:
        """The statutory US federal income tax schedule for ``year`` (2023-2026), on gross
        income (dollars a year).

        By default (``standard_deduction=True``, the law and the scenario default
        ``tax.us_federal.standard_deduction``) the basic standard deduction of that year and
        status is subtracted first (26 U.S.C. 63(c); the amounts of Rev. Proc. 2022-38 and
        2023-34, and for 2025 and 2026 Rev. Proc. 2024-40 and 2025-32 as amended by P.L.
        119-21; ``standard_deduction_2023_2026.csv``).
        ``standard_deduction=False`` taxes from the first dollar (the brackets of 26 U.S.C.
        1(j) applied to the income as given, as the LLM Economist reference does).
        """
        table = federal_table()
        years = sorted({y for y, _ in table})
        if int(year) not in years:
            raise TaxScheduleError(
                f"no federal brackets for tax year {year}; available: {', '.join(map(str, years))}"
            )
        if filing_status not in FILING_STATUSES:
            raise TaxScheduleError(
                f"unknown filing status {filing_status!r}; choose one of {', '.join(FILING_STATUSES)}"
            )
        thresholds, rates = table[(int(year), filing_status)]
        deduction = (
            standard_deductions()[(str(int(year)), filing_status)] if standard_deduction else 0.0
        )
        return cls(thresholds, rates, deduction=deduction, name=f"US federal {year} {filing_status}",
                   deduction_label="standard deduction")

    def with_rates(self, new_rates: ArrayLike) -> TaxSchedule:
        """The same brackets (and deduction) with different marginal rates."""
        return TaxSchedule(self.thresholds, new_rates, deduction=self.deduction, name=self.name,
                           deduction_label=self.deduction_label)

    # ------------------------------------------------------------------ arrays
    @cached_property
    def threshold_array(self) -> np.ndarray:
        return np.asarray(self.thresholds)

    @cached_property
    def rate_array(self) -> np.ndarray:
        return np.asarray(self.rates)

    @cached_property
    def tax_at_threshold(self) -> np.ndarray:
        """Cumulative tax (dollars) at each bracket's lower edge of taxable income."""
        widths = np.diff(self.threshold_array)
        return np.concatenate([[0.0], np.cumsum(widths * self.rate_array[:-1])])

    @property
    def n_brackets(self) -> int:
        return len(self.rates)

    def _taxable(self, income: ArrayLike) -> np.ndarray:
        return np.maximum(np.asarray(income, dtype=float) - self.deduction, 0.0)

    def _bracket(self, taxable: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.threshold_array, taxable, side="right") - 1

    # ------------------------------------------------------------------ evaluation
    def tax(self, income: ArrayLike) -> np.ndarray:
        """Tax owed (dollars a year) on gross ``income`` (dollars a year)."""
        x = self._taxable(income)
        k = self._bracket(x)
        return self.tax_at_threshold[k] + self.rate_array[k] * (x - self.threshold_array[k])

    def tax_table_amount(self, income: ArrayLike) -> np.ndarray:
        """Tax as the IRS Tax Table states it (Form 1040 instructions), dollars a year.

        Below $100,000 of taxable income the Tax Table lists whole-dollar amounts computed
        at the midpoint of each income bin (0-5: $0; 5-15; 15-25; then $25 bins up to
        $3,000 and $50 bins up to $100,000), rounded half up; from $100,000 the Tax
        Computation Worksheet applies, which is the exact schedule (rounded to cents).
        """
        x = self._taxable(income)
        lo = np.where(
            x < 3_000,
            np.where(x < 25, np.where(x < 15, 5.0, 15.0), 25.0 * np.floor(x / 25.0)),
            50.0 * np.floor(x / 50.0),
        )
        width = np.where(x < 3_000, np.where(x < 25, 10.0, 25.0), 50.0)
        mid = lo + width / 2.0
        k = self._bracket(mid)
        at_mid = self.tax_at_threshold[k] + self.rate_array[k] * (mid - self.threshold_array[k])
        table = np.where(x < 5, 0.0, np.floor(at_mid + 0.5))
        exact = np.round(self.tax(income), 2)
        return np.where(x < 100_000, table, exact)

    def marginal_rate(self, income: ArrayLike) -> np.ndarray:
        """Marginal rate at ``income`` (right derivative; 0 below the deduction)."""
        inc = np.asarray(income, dtype=float)
        x = self._taxable(inc)
        rate = self.rate_array[self._bracket(x)]
        return np.where(inc - self.deduction < 0, 0.0, rate)

    def average_rate(self, income: ArrayLike) -> np.ndarray:
        """Tax as a fraction of gross income (0 where income <= 0)."""
        inc = np.asarray(income, dtype=float)
        t = self.tax(inc)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(inc > 0, t / np.where(inc > 0, inc, 1.0), 0.0)

    def curves(self, income: ArrayLike, rebate: float = 0.0) -> dict[str, np.ndarray]:
        """Tax and rates at gross ``income`` (dollars a year), the one evaluation behind
        every rate curve (reports, ``tax_rates.parquet``, the explore page, ``econsim tax``).

        Returns arrays ``income``, ``taxable`` (income less the deduction, floored at 0),
        ``tax`` (:meth:`tax`, dollars a year: exactly what the simulation charges),
        ``average_rate`` (tax / income; 0 where income <= 0), ``marginal_rate`` (statutory,
        :meth:`marginal_rate`) and ``net_average_rate``: ``(tax - rebate) / income`` with a
        lump-sum ``rebate`` per person (dollars a year; NaN where income <= 0).
        """
        z = np.asarray(income, dtype=float)
        tax = self.tax(z)
        with np.errstate(divide="ignore", invalid="ignore"):
            net = np.where(z > 0, (tax - float(rebate)) / np.where(z > 0, z, 1.0), np.nan)
        return {
            "income": z,
            "taxable": self._taxable(z),
            "tax": tax,
            "average_rate": self.average_rate(z),
            "marginal_rate": self.marginal_rate(z),
            "net_average_rate": net,
        }

    def curve_incomes(self, n: int = 200, low: float = 1_000.0, high: float | None = None) -> np.ndarray:
        """Gross incomes (dollars a year) to draw the schedule at: ``n`` log-spaced points
        from ``low`` to ``high`` (default 2.5x the top bracket's gross lower edge, at least
        10x ``low``) plus every kink inside that range (bracket edges in gross income, the
        deduction included)."""
        kinks = self.segments()[0]
        top = max(2.5 * float(kinks[-1]), 10.0 * low) if high is None else float(high)
        if not 0 < low < top:
            raise ValueError(f"curve incomes need 0 < low < high, got low={low:g}, high={top:g}")
        grid = np.geomspace(low, top, n)
        inside = kinks[(kinks > low) & (kinks < top)]
        return np.unique(np.concatenate([grid, inside]))

    def deduction_note(self, currency: str = "$") -> str:
        """``including the $14,600 standard deduction``, or that there is none: the text
        that captions of this schedule's curves carry."""
        if self.deduction > 0:
            return f"including the {currency}{self.deduction:,.0f} {self.deduction_label}"
        return "no deduction: taxed from the first dollar"

    def net_income(self, income: ArrayLike) -> np.ndarray:
        """Income after tax (dollars a year), before any rebate."""
        return np.asarray(income, dtype=float) - self.tax(income)

    def segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The schedule as linear segments of *gross* income.

        Returns ``(lower, upper, rate, intercept)``: on segment k, for gross income z in
        [lower_k, upper_k), net income is ``(1 - rate_k) * z + intercept_k``.  A deduction
        adds a leading 0 % segment.
        """
        lower = self.threshold_array + self.deduction
        rate = self.rate_array
        tax_lo = self.tax_at_threshold
        if self.deduction > 0:
            lower = np.concatenate([[0.0], lower])
            rate = np.concatenate([[0.0], rate])
            tax_lo = np.concatenate([[0.0], tax_lo])
        upper = np.concatenate([lower[1:], [np.inf]])
        intercept = rate * lower - tax_lo
        return lower, upper, rate, intercept

    @property
    def is_progressive(self) -> bool:
        """True when marginal rates never fall as income rises (a convex budget set)."""
        return bool(np.all(np.diff(self.segments()[2]) >= 0))

    # ------------------------------------------------------------------ text
    def describe(self, currency: str = "$") -> str:
        """A plain-text bracket table for prompts and reports."""
        lines = [f"{'Taxable income':<32}{'Marginal rate':>14}"]
        thr = self.thresholds
        for i, r in enumerate(self.rates):
            lo = f"{currency}{thr[i]:,.0f}"
            hi = f"{currency}{thr[i + 1]:,.0f}" if i + 1 < len(thr) else "and above"
            span = f"{lo} to {hi}" if i + 1 < len(thr) else f"{lo} and above"
            lines.append(f"{span:<32}{r * 100:>13.1f}%")
        if self.deduction:
            lines.append(f"(after a deduction of {currency}{self.deduction:,.0f})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        rates = ", ".join(f"{r:.3g}" for r in self.rates)
        thr = ", ".join(f"{t:,.0f}" for t in self.thresholds)
        ded = f", deduction={self.deduction:,.0f}" if self.deduction else ""
        return f"TaxSchedule(thresholds=[{thr}], rates=[{rates}]{ded})"
