"""Text building blocks shared by every LLM agent prompt (workers, planner, voters).

Numbers come from the economic core; this module only formats them.  Prompts put what
every agent shares first and the agent-specific part last, so servers with prefix
caching reuse the shared prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.economy.tax import TaxSchedule


def money(x: float) -> str:
    """Dollars, rounded to whole dollars, with a sign for negatives."""
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def rebate_phrase(share: float) -> str:
    """How much of the revenue comes back, in words."""
    if share >= 1.0:
        return "all tax revenue is returned to the workers in equal shares"
    if share <= 0.0:
        return "tax revenue is not returned to the workers"
    return f"{share:.0%} of tax revenue is returned to the workers in equal shares"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A compact pipe table."""
    lines = [" | ".join(header)]
    lines += [" | ".join(r) for r in rows]
    return "\n".join(lines)


def schedule_text(schedule: TaxSchedule) -> str:
    return schedule.describe()


def rate_text(rate: float) -> str:
    """A marginal rate in percent with one decimal at most: ``0.12`` -> ``12%``, ``0.125`` -> ``12.5%``."""
    return f"{100 * rate:.1f}".rstrip("0").rstrip(".") + "%"


def dollars(x: float) -> str:
    """Whole dollars without thousands separators (fewer tokens): ``$41350``, ``-$12``."""
    r = round(float(x))
    return f"-${-r}" if r < 0 else f"${r}"


def schedule_compact_text(schedule: TaxSchedule) -> str:
    """The bracket table in one line: each marginal rate up to its bracket's upper end
    (the first bracket starts at 0)."""
    thr, rates = schedule.thresholds, schedule.rates
    parts: list[str] = []
    for i, r in enumerate(rates):
        if i + 1 < len(thr):
            parts.append(f"{rate_text(r)} to {dollars(thr[i + 1])}")
        else:
            parts.append(f"{rate_text(r)} above" if parts else f"{rate_text(r)} on all of it")
    ded = f" after a {dollars(schedule.deduction)} deduction" if schedule.deduction else ""
    return f"Rates{ded}: {', '.join(parts)}."


def utility_decimals(values) -> int:
    """Decimals of utilities of the size of ``values`` (about three significant digits and
    enough to tell table rows apart): 2 below 100, else 0."""
    v = np.abs(np.asarray(values, dtype=float))
    a = float(v[np.isfinite(v)].max()) if np.isfinite(v).any() else 0.0
    return 2 if a < 100 else 0


def utility_text(u: float, decimals: int) -> str:
    """``u`` with ``decimals`` decimals, never ``-0.00``."""
    return f"{round(float(u), decimals) + 0.0:.{decimals}f}"


def take_home_grid(
    schedule: TaxSchedule,
    wages: np.ndarray,
    levels: Sequence[float],
    rebate: float,
    utility,
) -> dict[str, np.ndarray]:
    """What each worker would earn, pay and take home at each hour level.

    ``levels``: hours a week shared by every worker, or an ``(n, k)`` array of each
    worker's own.  Returns arrays of shape ``(n, k)`` (dollars a year; utility in utils).
    """
    h = np.asarray(levels, dtype=float)
    h = h[None, :] if h.ndim == 1 else h
    z = np.asarray(wages, dtype=float)[:, None] * h
    if getattr(schedule, "per_agent", False):  # a household budget: every component
        tax = np.stack([schedule.tax(z[:, j]) for j in range(z.shape[1])], axis=1)
        post = z + schedule.spouse_wages[:, None] - tax + rebate
    else:
        tax = schedule.tax(z)
        post = z - tax + rebate
    u = utility(post, np.broadcast_to(h, z.shape))
    return {"hours": np.broadcast_to(h, z.shape), "pre_tax": z, "tax": tax, "post_tax": post, "utility": u}


def histogram_text(
    values: np.ndarray,
    edges: Sequence[float],
    label: str,
    weights: np.ndarray | None = None,
    decimals: int = 0,
) -> str:
    """Share of workers per bin of ``edges`` (fixed size, independent of population size)."""
    v = np.asarray(values, dtype=float)
    e = np.asarray(edges, dtype=float)
    idx = np.clip(np.searchsorted(e, v, side="right") - 1, 0, len(e) - 1)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    share = np.bincount(idx, weights=w, minlength=len(e)) / max(w.sum(), 1e-300)
    rows = []
    for i in range(len(e)):
        hi = f"{e[i + 1]:,.{decimals}f}" if i + 1 < len(e) else "+"
        rows.append(f"{e[i]:,.{decimals}f} to {hi}: {share[i]:.0%}")
    return f"{label}: " + "; ".join(rows)


def household_taxes_compact_text(year: dict, i: int) -> str:
    """:func:`household_taxes_text` in fewer words (the compact prompt layout)."""
    credits = []
    if year["eitc"][i] > 0:
        credits.append(f"earned income credit {dollars(year['eitc'][i])}")
    ctc = year["ctc"][i] + year["actc"][i]
    if ctc > 0:
        credits.append(f"child tax credit {dollars(ctc)} ({dollars(year['actc'][i])} refundable)")
    got = f" after {' and '.join(credits)}" if credits else ""
    return (
        f"Last year's household taxes: income tax {dollars(year['income_tax'][i])}{got}, payroll tax "
        f"{dollars(year['payroll_tax'][i])}; marginal rate {100 * year['marginal_rate'][i]:.1f}%."
    )


def household_taxes_text(year: dict, i: int) -> str:
    """One line of a worker's taxes and credits in a past year (us_current_law world):
    ``year`` is a row of ``EconomyModel.agent_years`` (arrays per worker, dollars a year)."""
    credits = []
    if year["eitc"][i] > 0:
        credits.append(f"an earned income tax credit of {money(year['eitc'][i])}")
    ctc = year["ctc"][i] + year["actc"][i]
    if ctc > 0:
        credits.append(f"a child tax credit of {money(ctc)} ({money(year['actc'][i])} of it refundable)")
    got = f", after {' and '.join(credits)}" if credits else ""
    return (
        f"Last year at {year['hours'][i]:.0f} hours your household's income tax was "
        f"{money(year['income_tax'][i])}{got}; payroll tax {money(year['payroll_tax'][i])}; "
        f"your marginal rate on an extra dollar was {100 * year['marginal_rate'][i]:.1f}%. "
        "The tax column counts income tax after credits plus payroll tax."
    )
