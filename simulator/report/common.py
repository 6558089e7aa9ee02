"""What both policy reports share: labels, number and money formats, the figures and the
single-run pieces (years table, figures, fork comparison) that the Markdown page
(:mod:`simulator.report.markdown`) and the HTML page (:mod:`simulator.report.html`) show.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot), so writing a
report never changes the plotting backend of the caller (e.g. inline plots in Jupyter).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from simulator.config.builders import build_base_schedule, build_world
from simulator.config.schema import Scenario
from simulator.economy.tax import TaxSchedule
from simulator.errors import UserError
from simulator.experiments.plan import dotted
from simulator.experiments.stats import (
    HH_TYPE_LABELS,
    HH_TYPES,
    MIN_SEEDS,
    RELIABLE_SEEDS,
    bracket_labels,
    household_types,
    income_deciles,
)
from simulator.results import load_run

SWF_LABELS = {
    "swf_utilitarian": "utilitarian",
    "swf_inverse_income": "inverse-income",
    "swf_inverse_income_sum": "inverse-income sum",
    "swf_maxmin": "max-min",
    "swf_atkinson": "Atkinson EDE $",
    "swf_equality_productivity": "equality x productivity",
}
METRIC_LABELS = {**SWF_LABELS, "revenue": "revenue $/person", "mean_hours": "hours/wk",
                 "gini_post_tax": "Gini post-tax", "objective": "objective",
                 "employment_rate": "employed (share)", "mean_hours_employed": "hours/wk employed"}
SWF_TITLES = {
    "utilitarian": "utilitarian welfare (mean utility)",
    "inverse_income": "inverse-income-weighted welfare",
    "inverse_income_sum": "inverse-income sum (LLM Economist objective)",
    "maxmin": "max-min welfare (worst-off utility)",
    "atkinson": "Atkinson EDE income ($/yr)",
    "equality_productivity": "equality x productivity ($/yr)",
    "revenue": "revenue per person ($/yr)",
}


# --------------------------------------------------------------------------- formatting
def column_format(values: Sequence[Any] | pd.Series) -> Callable[[Any], str]:
    """One number format for a whole column, chosen from its largest magnitude.

    Integers and values of 1,000 or more: thousands separators, no decimals; values in
    [0.001, 1000): four significant digits of the largest value, the same decimals for
    every row; smaller: scientific notation.  Where that would leave a value fewer than
    three significant digits (or magnitudes span more than 1,000x), each value gets four
    significant digits instead, never an exponent.  Missing values print as ``–``.
    """
    arr = pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return lambda v: "–"
    m = float(np.max(np.abs(finite)))
    nonzero = np.abs(finite[finite != 0])
    common = 0 if m >= 1000 else max(0, 3 - math.floor(math.log10(m))) if m >= 1e-3 else None
    if nonzero.size and not np.all(finite == np.round(finite)) and (
            m / float(nonzero.min()) > 1000
            or (common is not None and float(nonzero.min()) < 10.0 ** (2 - common))):
        # magnitudes too far apart for common decimals (the smallest would keep fewer than
        # three significant digits): 4 significant digits each, never exponents
        def sig(v: Any) -> str:
            try:
                x = float(v)
            except (TypeError, ValueError):
                return str(v)
            if not math.isfinite(x):
                return "–"
            if x == 0 or abs(x) >= 1000:
                return format(x, ",.0f")
            return format(x, f",.{min(max(3 - math.floor(math.log10(abs(x))), 0), 10)}f")

        return sig
    if m >= 1000 or (np.all(finite == np.round(finite)) and m >= 1):
        spec = ",.0f"
    elif m >= 1e-3:
        spec = f",.{max(0, 3 - math.floor(math.log10(m)))}f"
    elif m == 0:
        spec = ".0f"
    else:
        spec = ".3e"

    def fmt(v: Any) -> str:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return str(v)
        return format(x, spec) if math.isfinite(x) else "–"

    return fmt


def md_table(df: pd.DataFrame) -> str:
    """A Markdown table; float columns formatted per column (:func:`column_format`)."""
    cols = list(df.columns)
    fmts = {c: column_format(df[c]) for c in cols if pd.api.types.is_float_dtype(df[c])}
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for i in range(len(df)):  # by column: iterrows would turn the ints of a numeric row into floats
        cells = [fmts[c](df[c].iloc[i]) if c in fmts else str(df[c].iloc[i]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rate_cols(df: pd.DataFrame) -> list[str]:
    """The bracket-rate columns ``rate_0, rate_1, ...`` in bracket order."""
    return sorted((c for c in df.columns if c.startswith("rate_")), key=lambda c: int(c[5:]))


def _rates_text(row: pd.Series, cols: list[str]) -> str:
    return "/".join(f"{100 * row[c]:.0f}" for c in cols)


def _dollars(x: float, _pos: Any = None) -> str:
    return f"${x / 1000:,.0f}k" if abs(x) >= 1000 else f"${x:,.0f}"


def signed(v: float, unit: str = "", money: bool = False) -> str:
    """``+1,399 %``, ``-2.72 %``, ``+$477``: a sign, 3 significant digits below 1,000
    (whole numbers from 1,000), never an exponent; ``–`` when not finite."""
    v = float(v)
    if not math.isfinite(v):
        return "–"
    a = abs(v)
    digits = 0 if a >= 1000 or a == 0 else min(max(2 - math.floor(math.log10(a)), 0), 8)
    text = format(a, f",.{digits}f")
    sign = "-" if v < 0 else "+"
    return f"{sign}${text}" if money else f"{sign}{text}{unit}"


def interval_text(lo: float, hi: float, unit: str = "", money: bool = False) -> str:
    """``[-3.03, -2.11] %``; empty when there is no interval."""
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return ""
    return f"[{signed(lo, money=money)}, {signed(hi, money=money)}]{unit}"


def ranges_text(groups: str) -> str:
    """``"1,2,3,5"`` -> ``"1–3, 5"`` (deciles)."""
    nums = sorted(int(g) for g in str(groups).split(",") if g.strip().lstrip("-").isdigit())
    out: list[str] = []
    for n in nums:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in out)


# --------------------------------------------------------------------------- caveats
#: welfare functions whose numbers need a word beside them: metric -> (short note, full text)
CAVEATS: dict[str, tuple[str, str]] = {
    "swf_inverse_income_sum": (
        "CE dominated by the $1 income floor",
        "Inverse-income sum (the LLM Economist objective) weights each worker's utility by "
        "1 / max(pre-tax income, $1): a worker with no earnings weighs as much as 50,000 workers "
        "earning $50,000, so its welfare and its consumption equivalent (often hundreds or "
        "thousands of percent) are driven by the few workers at the $1 floor, not by a typical "
        "worker's gain. Read the utilitarian or inverse-income-weighted rows instead.",
    ),
    "swf_atkinson": (
        "consumption only; can move opposite to utilitarian welfare",
        "Atkinson EDE is the equally-distributed-equivalent post-tax income (consumption, $/yr) "
        "with inequality aversion epsilon: it counts consumption only, not the hours worked to "
        "earn it, so a policy that makes people work more can raise it while utilitarian welfare "
        "(utility, leisure included) falls, and one that lets them work less can lower it while "
        "welfare rises; it measures equality-adjusted consumption, not well-being.",
    ),
}


def variant_changes(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each variant of an experiment changes in its base scenario, as dotted keys.

    From ``experiment.json``'s ``variants[].overrides`` (the plan's ``compare:`` entry and
    sweep point); experiments written before the plan recorded ``compare:`` entries there
    (they held ``{}`` for them) get those from the stored scenario's ``compare:`` list.
    """
    sc = meta.get("scenario") or {}
    compare = {str(c.get("label", f"variant{i}")): dotted({k: v for k, v in c.items() if k != "label"})
               for i, c in enumerate(sc.get("compare") or []) if isinstance(c, dict)}
    out = {}
    for v in meta.get("variants") or []:
        label = str(v.get("label"))
        over = dict(v.get("overrides") or {})
        prefix = max((c for c in compare if label == c or label.startswith(c + "_")), key=len, default=None)
        recorded = prefix is not None and any(k in over for k in compare[prefix])
        out[label] = over if recorded or prefix is None else {**compare[prefix], **over}
    return out


def changes_text(changes: dict[str, Any]) -> str:
    """``planner.kind=flat, planner.rate=0.2`` (``--set`` syntax); ``the base scenario``."""
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in changes.items()) \
        or "the base scenario"


def caveat_notes(metrics: Sequence[str]) -> list[str]:
    """The full caveat texts of the metrics shown (:data:`CAVEATS`), in order."""
    return [f"{SWF_LABELS[m]}: {CAVEATS[m][1]}" for m in dict.fromkeys(metrics) if m in CAVEATS]


def reliability_note(n_seeds: int, level: int) -> str:
    """What the reader must know about intervals from ``n_seeds`` paired seeds, or ``""``."""
    if n_seeds < MIN_SEEDS:
        return (f"Only {n_seeds} paired seed{'s' if n_seeds != 1 else ''}: no interval, so no difference "
                "can be told from seed-to-seed noise; run at least 5 seeds (run.seeds).")
    if n_seeds < RELIABLE_SEEDS:
        return (f"Only {n_seeds} paired seeds: the {level} % intervals are unreliable (they rest on "
                f"normal per-seed differences, which {n_seeds} seeds cannot check, and on a standard "
                f"deviation from {n_seeds - 1} degree{'s' if n_seeds != 2 else ''} of freedom); "
                f"use at least {RELIABLE_SEEDS} seeds (docs/experiments.md).")
    return ""


def verdict_lines(v: pd.Series, level: int) -> tuple[str, list[str]]:
    """The headline of one comparison (a row of ``stats.verdict``): a title sentence and
    detail sentences, plain text (both pages mark them up)."""
    obj = str(v["metric"])
    name = SWF_TITLES.get(obj[len("swf_"):], obj)
    variant, base, n = str(v["variant"]), str(v["baseline"]), int(v["n_seeds"])
    if n < MIN_SEEDS:
        head = (f"{variant} vs {base}: {v['higher'] or 'neither'} higher on {name} on "
                f"{n} seed{'s' if n != 1 else ''}; no interval, not distinguishable from seed noise")
    elif bool(v["distinguishable"]):
        head = (f"{variant} vs {base}: {v['winner']} is better on {name}; the difference is "
                f"distinguishable from zero ({level} % interval over {n} seeds excludes 0)")
    else:
        head = (f"{variant} vs {base}: no clear winner on {name}; the difference is not "
                f"distinguishable from zero ({level} % interval over {n} seeds includes 0"
                + (f", {v['higher']} higher on average" if v["higher"] else "") + ")")
    lines = []
    ce = f"consumption-equivalent gain of {variant}: {signed(v['ce_pct'], ' %')}"
    if math.isfinite(float(v["ce_pct"])):
        iv = interval_text(v["ce_low"], v["ce_high"], " %")
        lines.append(ce + (f" {iv}" if iv else "") + f" (the uniform change in every worker's consumption "
                     f"under {base} that gives {variant}'s welfare)")
    diff = f"{name}: {signed(v['diff_mean'])}"
    iv = interval_text(v["ci_low"], v["ci_high"])
    lines.append(diff + (f" {iv}" if iv else "") + f" ({variant} minus {base}, same seeds)")
    if math.isfinite(float(v["revenue_diff"])):
        iv = interval_text(v["revenue_low"], v["revenue_high"], money=True)
        lines.append(f"revenue: {signed(v['revenue_diff'], money=True)}" + (f" {iv}" if iv else "")
                     + " per person a year")
    gain, lose = ranges_text(v["gaining_deciles"]), ranges_text(v["losing_deciles"])
    if gain or lose or math.isfinite(float(v["share_gaining"])):
        who = [f"gain: income decile{'s' if not gain.isdigit() else ''} {gain}" if gain else "no decile gains",
               f"lose: decile{'s' if not lose.isdigit() else ''} {lose}" if lose else "no decile loses"]
        if math.isfinite(float(v["share_gaining"])):
            who.append(f"{100 * float(v['share_gaining']):.0f} % of workers gain and "
                       f"{100 * float(v['share_losing']):.0f} % lose more than 1 % of post-tax income")
        lines.append("; ".join(who) + (" (post-tax income by baseline pre-tax decile, interval "
                                        "excludes 0)" if n >= MIN_SEEDS else " (one seed)"))
    if int(v["seeds_needed"]) > 0:
        lines.append(f"seeds for an interval half-width equal to this difference: about "
                     f"{int(v['seeds_needed'])} (n = (t s / h)^2 with s from these seeds; more to "
                     f"tell it from zero reliably)")
    if v["outliers"]:
        lines.append(f"seed {v['outliers']} lies far from the other seeds' differences: skewed per-seed "
                     f"effects make the t interval cover less often than {level} % (docs/experiments.md)")
    note = reliability_note(n, level)
    if note:
        lines.append(note)
    if obj in CAVEATS:
        lines.append(f"caveat: {CAVEATS[obj][1]}")
    return head, lines


# --------------------------------------------------------------------------- figures
def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (integer year ticks, tight layout)."""
    for ax in fig.axes:
        if ax.get_xlabel() == "tax year":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def income_histogram(pre_tax: np.ndarray, post_tax: np.ndarray, bins: int = 40):
    """Bin edges and counts (pre, post) covering every worker, zero earners included.

    The first bin is ``[0, lo)`` with ``lo`` the smallest positive income (at least $1);
    then log-spaced bins up to just above the largest income.  Negative incomes (none
    in the model) would fall in the first bin too.
    """
    pre = np.asarray(pre_tax, dtype=float)
    post = np.asarray(post_tax, dtype=float)
    both = np.concatenate([pre, post])
    pos = both[both > 0]
    lo = max(float(pos.min()), 1.0) if pos.size else 1.0
    hi = max(float(both.max()) * 1.0001, lo * 10)
    edges = np.concatenate([[min(0.0, float(both.min()))], np.geomspace(lo, hi, bins)])
    return edges, np.histogram(pre, edges)[0], np.histogram(post, edges)[0]


def fig_income_histogram(pre_tax: np.ndarray, post_tax: np.ndarray, year: int) -> Figure:
    edges, c_pre, c_post = income_histogram(pre_tax, post_tax)
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    ax.stairs(c_pre, edges, fill=True, alpha=0.5, label=f"pre-tax ({int(c_pre.sum())} workers)")
    ax.stairs(c_post, edges, fill=True, alpha=0.5, label=f"post-tax + rebate ({int(c_post.sum())})")
    linthresh = max(edges[1], 1.0)
    ax.set_xscale("symlog", linthresh=linthresh)
    # $0, then powers of ten past the linear first bin (a $1k tick beside $0 overlapped it)
    ax.set_xticks([0.0] + [10.0 ** k for k in range(math.ceil(math.log10(linthresh)),
                                                     math.floor(math.log10(edges[-1])) + 1)])
    ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.set_xlabel(r"income (\$/yr); first bin from \$0")
    ax.set_ylabel("workers")
    zero = int((np.asarray(pre_tax) <= 0).sum())
    ax.set_title(f"Incomes in tax year {year} ({zero} with no earnings)")
    ax.legend(fontsize=8)
    return fig


def fig_rates_over_years(years: pd.DataFrame, labels: list[str]) -> Figure:
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.subplots()
    for c, lab in zip(rate_cols(years), labels, strict=False):
        ax.plot(years["year"], 100 * years[c], marker="o", label=lab)
    ax.set_xlabel("tax year")
    ax.set_ylabel("marginal rate (%)")
    ax.legend(fontsize=7, ncol=2, title="bracket (taxable income $/yr)", title_fontsize=7)
    ax.set_title("Bracket rates")
    return fig


def fig_objective_revenue(years: pd.DataFrame) -> Figure:
    """Objective and revenue in two panels (no twin axes)."""
    swf = str(years["objective_swf"].iloc[-1])
    fig = Figure(figsize=(6.5, 5.0))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.plot(years["year"], years["objective"], marker="o", color="C0")
    ax1.set_ylabel(swf)
    ax1.set_title(f"Objective: {SWF_TITLES.get(swf, swf)}")
    ax2.plot(years["year"], years["revenue"], marker="s", color="C1")
    ax2.set_ylabel("$/person/yr")
    ax2.set_title("Revenue per person")
    ax2.set_xlabel("tax year")
    return fig


def run_schedule(scenario: dict[str, Any], rates: Sequence[float]) -> TaxSchedule:
    """The schedule a run charged: its base schedule (brackets and deduction, from its
    resolved scenario) with ``rates``; the input of ``stats.tax_rate_curves``."""
    return build_base_schedule(Scenario.model_validate(scenario)).with_rates([float(r) for r in rates])


def deduction_text(curves: pd.DataFrame) -> str:
    """What rate curves (``stats.tax_rate_curves``) include: ``including the $14,600
    standard deduction``, or one such note per variant where the variants differ."""
    if "deduction_note" not in curves or not len(curves):
        return ""
    notes = curves.drop_duplicates("variant")[["variant", "deduction_note"]]
    if notes["deduction_note"].nunique() == 1:
        return str(notes["deduction_note"].iloc[0])
    return "; ".join(f"{v}: {n}" for v, n in zip(notes["variant"], notes["deduction_note"], strict=True))


def rate_curves_caption(curves: pd.DataFrame, title: str) -> str:
    """``title`` and what the curves include (:func:`deduction_text`)."""
    text = deduction_text(curves)
    return f"{title}, {text}" if text else title


def fig_rate_curves(curves: pd.DataFrame) -> Figure:
    """Average (and net of rebate) and marginal tax rates by gross income, per variant
    (``stats.tax_rate_curves`` of the schedules the runs charged, deduction included; the
    figure states the deduction)."""
    fig = Figure(figsize=(8.5, 3.6))
    ax1, ax2 = fig.subplots(1, 2, sharex=True)
    for i, (v, c) in enumerate(curves.groupby("variant", sort=False)):
        col = f"C{i % 10}"
        ax1.plot(c["income"], 100 * c["average_rate"], color=col, label=v)
        ax1.plot(c["income"], 100 * c["net_average_rate"], color=col, ls=":", lw=1)
        ax2.step(c["income"], 100 * c["marginal_rate"], where="post", color=col, label=v)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
        ax.set_xlabel("pre-tax income ($/yr)")
    lo = float(np.nanmin(100 * curves["net_average_rate"])) if len(curves) else 0.0
    hi = float(np.nanmax(100 * curves[["average_rate", "net_average_rate"]].to_numpy()))
    ax1.set_ylim(max(lo, -60.0) - 2, hi + 2)  # the net rate tends to -inf at low incomes
    ax1.set_ylabel("average rate (%)")
    ax1.set_title("Average tax rate (dotted: net of rebate)")
    ax2.set_ylabel("marginal rate (%)")
    ax2.set_title("Marginal tax rate")
    ax1.legend(fontsize=7)
    text = deduction_text(curves)
    if text:
        fig.suptitle(f"Tax on gross income, {text}", fontsize=8)
        fig.subplots_adjust(top=0.82, bottom=0.15, wspace=0.3)
    return fig


# --------------------------------------------------------------------------- single run
def fork_section(res) -> list[str]:
    """Markdown lines comparing a fork (``econsim fork``) with its parent from the fork
    year on; no lines for a run that is not a fork or whose parent is gone."""
    parent = res.manifest.get("parent")
    if not parent:
        return []
    k = int(parent["fork_year"])
    changes = ", ".join(f"`{c}`" for c in parent.get("set") or []) or "no changes"
    head = [f"## Fork of {parent['run_dir']} after tax year {k}", "", f"Changes: {changes}.", ""]
    try:
        p = load_run(parent["run_dir"]).years
    except UserError:
        return head + ["(the parent run is no longer readable)", ""]
    cols = [c for c in ("objective", "revenue", "mean_hours", "employment_rate", "gini_post_tax")
            if c in p and c in res.years]
    both = pd.merge(p.loc[p["year"] >= k, ["year", *cols]], res.years.loc[res.years["year"] >= k, ["year", *cols]],
                    on="year", how="outer", suffixes=(" parent", " fork"))
    for c in cols:
        both[f"{c} change"] = both[f"{c} fork"] - both[f"{c} parent"]
    both = both[["year", *[f"{c} {w}" for c in cols for w in ("parent", "fork", "change")]]]
    if p["objective_swf"].iloc[-1] != res.years["objective_swf"].iloc[-1]:
        head += [f"The objectives differ (parent {p['objective_swf'].iloc[-1]}, fork "
                 f"{res.years['objective_swf'].iloc[-1]}): compare them with care.", ""]
    return head + [md_table(both), ""]


def run_bracket_labels(scenario: dict[str, Any]) -> list[str]:
    """Dollar labels of a run's brackets (from its resolved scenario)."""
    return bracket_labels(scenario_thresholds(scenario))


def scenario_thresholds(scenario: dict[str, Any]) -> list[float]:
    """The bracket thresholds of a run's base schedule (from its resolved scenario)."""
    return list(build_base_schedule(Scenario.model_validate(scenario)).thresholds)


def run_years_view(y: pd.DataFrame) -> pd.DataFrame:
    """The per-year table shown for a single run; with an extensive margin
    (``employment_rate`` in the years) the mean hours of the employed and the employment
    rate (percent) follow the mean hours of everyone."""
    rc = rate_cols(y)
    table = pd.DataFrame({
        "year": y["year"].astype(int),
        "objective": y["objective"].astype(float),
        "revenue $/person": y["revenue"].astype(float),
        "hours/wk": y["mean_hours"].astype(float),
        "Gini pre": y["gini_pre_tax"].astype(float),
        "Gini post": y["gini_post_tax"].astype(float),
        "rates %": [_rates_text(r, rc) for _, r in y.iterrows()],
    })
    if "employment_rate" in y:
        at = table.columns.get_loc("hours/wk") + 1
        if "mean_hours_employed" in y:
            table.insert(at, "hours/wk employed", y["mean_hours_employed"].astype(float).to_numpy())
            at += 1
        table.insert(at, "employed %", 100.0 * y["employment_rate"].astype(float).to_numpy())
    if "fallback_rate" in y:
        table["fallback"] = y["fallback_rate"].astype(float)
    return table


def run_figures(res, labels: list[str]) -> dict[str, Figure]:
    y = res.years
    figs = {"rates": fig_rates_over_years(y, labels), "objective": fig_objective_revenue(y)}
    if res.agents is not None and len(res.agents):
        last = res.agents[res.agents["year"] == res.agents["year"].max()]
        figs["incomes"] = fig_income_histogram(last["pre_tax"].to_numpy(), last["post_tax"].to_numpy(),
                                               int(last["year"].iloc[0]))
    return figs


# --------------------------------------------------------------------------- us_current_law
#: per-worker columns of ``agents.parquet`` in the us_current_law world (dollars a year,
#: the unit's amounts; ``marginal_rate`` the effective marginal rate of own earnings)
COMPONENT_COLUMNS = ("income_tax_before_credits", "elderly_credit", "ctc", "actc", "eitc",
                     "income_tax", "payroll_tax", "payroll_tax_employer", "net_tax", "marginal_rate")

#: representative tax units of the rate curves: label -> household fields (ages in years,
#: spouse's wages dollars a year)
HOUSEHOLD_TYPES: dict[str, dict[str, float]] = {
    "single, no children, 40": {"filing_status": 1, "children": 0, "eitc_children": 0, "age": 40},
    "head of household, 1 child": {"filing_status": 4, "children": 1, "eitc_children": 1, "age": 40},
    "head of household, 2 children": {"filing_status": 4, "children": 2, "eitc_children": 2, "age": 40},
    "married, 2 children, spouse not working": {"filing_status": 2, "children": 2, "eitc_children": 2,
                                                "age": 40, "spouse_age": 40},
    "married, 2 children, spouse earns $40,000": {"filing_status": 2, "children": 2, "eitc_children": 2,
                                                  "age": 40, "spouse_age": 40, "spouse_wages": 40_000,
                                                  "unit_earners": 2},
    "single, no children, 70": {"filing_status": 1, "children": 0, "eitc_children": 0, "age": 70},
}
#: own earnings (dollars a year) of the rate tables
TYPE_INCOMES = (10_000, 20_000, 30_000, 50_000, 75_000, 100_000, 150_000, 250_000)
EMPLOYER_NOTE = "not in workers' budgets (incidence: see docs)"


def is_us_current_law(res) -> bool:
    """Whether a run (``load_run``) ran the us_current_law world: its years say so, or
    its agents carry the tax-benefit components."""
    y = res.years
    if "world" in y and len(y) and str(y["world"].iloc[-1]) == "us_current_law":
        return True
    a = res.agents
    return a is not None and all(c in a.columns for c in ("net_tax", "eitc", "marginal_rate"))


def world_year(scenario: dict[str, Any]) -> int:
    """The tax year of the us_current_law parameters (``build_world``'s rule)."""
    sc = Scenario.model_validate(scenario)
    return int(sc.tax.us_federal.year) if sc.tax.us_federal is not None else 2024


def reform_text(scenario: dict[str, Any]) -> str:
    """``current law`` or the scenario's ``economy.reform`` as ``key=value``."""
    r = Scenario.model_validate(scenario).economy.reform
    diff = {k: v for k, v in r.model_dump().items() if v != type(r)().model_dump()[k]}
    return changes_text({f"economy.reform.{k}": v for k, v in diff.items()}) if diff else "current law"


def household_budget(scenario: dict[str, Any], rates: Sequence[float], types: dict[str, dict] | None = None):
    """The us_current_law budget (``HouseholdBudget``) of the representative ``types``
    (default :data:`HOUSEHOLD_TYPES`, one worker each, in order) under the run's base
    schedule with ``rates``, with the scenario's tax year and reform (``build_world``)."""
    sc = Scenario.model_validate({**scenario, "economy": {**scenario.get("economy", {}), "world": "us_current_law"}})
    types = HOUSEHOLD_TYPES if types is None else types
    frame = pd.DataFrame([{"spouse_age": 0, "spouse_wages": 0.0, "unit_earners": 1, **t} for t in types.values()])
    world = build_world(sc, frame)
    return world.bind(build_base_schedule(sc).with_rates([float(r) for r in rates]))


def household_rate_curves(scenario: dict[str, Any], rates: Sequence[float], z_max: float = 250_000.0,
                          step: float = 100.0, types: dict[str, dict] | None = None) -> pd.DataFrame:
    """Net tax, effective marginal and average net tax rates of own earnings, per
    representative household type, from $0 to ``z_max``.

    On a grid every ``step`` dollars plus every kink of the compiled budget
    (``segment_table``) and :data:`TYPE_INCOMES`: ``net_tax`` = the unit's income tax
    after credits + employee payroll tax (``HouseholdBudget.tax``), ``marginal_rate`` its
    right derivative (``HouseholdBudget.marginal_rate``), ``average_rate`` =
    ``(T(z) - T(0)) / z`` (``T(0)`` is zero but where a spouse earns; nan at ``z = 0``).
    Columns ``household, income, net_tax, marginal_rate, average_rate``.
    """
    types = HOUSEHOLD_TYPES if types is None else types
    budget = household_budget(scenario, rates, types)
    seg = budget.segment_table
    base = np.concatenate([np.arange(0.0, z_max + step / 2, step), np.asarray(TYPE_INCOMES, dtype=float)])
    grids = []
    for j in range(len(types)):
        kinks = seg.kinks(j)
        grids.append(np.unique(np.concatenate([base, kinks[(kinks > 0) & (kinks < z_max)]])))
    idx = np.concatenate([np.full(g.size, j) for j, g in enumerate(grids)])
    z = np.concatenate(grids)
    grid = budget.system.with_households(budget.system.households.take(idx)).bind(budget.schedule)
    t = grid.tax(z)
    t0 = grid.tax(np.zeros_like(z))
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(z > 0, (t - t0) / z, np.nan)
    return pd.DataFrame({"household": np.asarray(list(types))[idx], "income": z, "net_tax": t,
                         "marginal_rate": grid.marginal_rate(z), "average_rate": avg})


def household_rates_table(curves: pd.DataFrame, column: str, incomes: Sequence[float] = TYPE_INCOMES) -> pd.DataFrame:
    """``column`` of :func:`household_rate_curves` in percent at ``incomes``: one row per
    household type, one column per income (``$10k``)."""
    out = {"household": list(dict.fromkeys(curves["household"]))}
    for z in incomes:
        at = curves[curves["income"] == float(z)].drop_duplicates("household").set_index("household")
        out[_dollars(z)] = [100.0 * float(at.loc[h, column]) for h in out["household"]]
    return pd.DataFrame(out)


def household_rates_text(scenario: dict[str, Any], rates: Sequence[float], year: int) -> str:
    """What the rate curves are: the schedule, law year and reform they use."""
    r = "/".join(f"{100 * float(x):.0f}" for x in rates)
    return (f"Net tax of the tax unit (income tax after credits + employee payroll tax) as a function "
            f"of the worker's own earnings, {world_year(scenario)} law ({reform_text(scenario)}) with "
            f"the income-tax rates of the final tax year ({year}), {r} %, on the run's brackets. Effective "
            "marginal rate: the right derivative of net tax (negative in the EITC and ACTC "
            "phase-ins); average net tax rate: (T(z) - T(0)) / z (T(0) is not zero only where a "
            "spouse earns). Ages 40 unless named; children qualify for the CTC and the EITC.")


def fig_household_rates(curves: pd.DataFrame) -> Figure:
    """Effective marginal rate (steps) and average net tax rate by own earnings, one line per
    household type (:func:`household_rate_curves`)."""
    fig = Figure(figsize=(9.5, 4.0))
    ax1, ax2 = fig.subplots(1, 2, sharex=True)
    for i, (h, c) in enumerate(curves.groupby("household", sort=False)):
        col, ls = f"C{i % 10}", "--" if i % 2 else "-"  # dashes: lines that coincide stay visible
        ax1.step(c["income"], 100 * c["marginal_rate"], where="post", color=col, ls=ls, lw=1.2, label=h)
        ax2.plot(c["income"], 100 * c["average_rate"], color=col, ls=ls, lw=1.2, label=h)
    for ax in (ax1, ax2):
        ax.axhline(0, color="black", lw=0.6)
        ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
        ax.set_xlabel("own earnings ($/yr)")
        ax.set_xlim(0, float(curves["income"].max()) if len(curves) else 1.0)
    ax1.set_ylabel("effective marginal rate (%)")
    ax1.set_title("Effective marginal tax rate")
    ax2.set_ylabel("average net tax rate (%)")
    ax2.set_title("Average net tax rate of own earnings")
    ax2.legend(fontsize=6.5)
    return fig


def _agent_weights(a: pd.DataFrame, pop: pd.DataFrame | None) -> np.ndarray:
    """Weights of agents rows: ``sample_weight`` of a sampled table, else the weight (of
    the rows, or of the population), else 1."""
    if "sample_weight" in a:
        return a["sample_weight"].to_numpy(float)
    if "weight" in a:
        return a["weight"].to_numpy(float)
    if pop is not None and "weight" in pop:
        return a[["id"]].merge(pop[["id", "weight"]], on="id", how="left")["weight"].fillna(1.0).to_numpy(float)
    return np.ones(len(a))


def _final_world_agents(res) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """The final year's agents of a us_current_law run with their weights (``sample_weight``
    of a sampled table, else the population weight) and shares of their unit (1, or 1/2 for
    a two-earner couple, ``unit_earners`` of the population); None without components."""
    a = res.agents
    if a is None or a.empty or not all(c in a.columns for c in COMPONENT_COLUMNS):
        return None
    a = a[a["year"] == a["year"].max()].reset_index(drop=True)
    pop = res.population
    w = _agent_weights(a, pop)
    if pop is not None and "unit_earners" in pop:
        ue = a[["id"]].merge(pop[["id", "unit_earners"]], on="id", how="left")["unit_earners"]
        share = 1.0 / np.clip(ue.fillna(1).to_numpy(float), 1, 2)
    else:
        share = np.ones(len(a))
    return a, w, share


#: rows of the net-tax decomposition: label, component, sign in the identity
DECOMPOSITION = (
    ("income tax before credits", "income_tax_before_credits", True),
    ("- credit for the elderly", "elderly_credit", True),
    ("- EITC", "eitc", True),
    ("- CTC (nonrefundable)", "ctc", True),
    ("- ACTC (refundable CTC)", "actc", True),
    ("= income tax after credits", "income_tax", False),
    ("+ employee payroll tax", "payroll_tax", False),
    ("= net tax (in workers' budgets)", "net_tax", False),
    (f"employer payroll tax: {EMPLOYER_NOTE}", "payroll_tax_employer", False),
)


def net_tax_decomposition(res) -> pd.DataFrame | None:
    """The final year's net tax by component, per person of the population (dollars a year,
    each tax unit once: a worker carries its share of its unit's amounts), and the share of
    workers receiving each credit (each unit once, as ``years.parquet``'s recipients).
    Columns ``component, $/person/yr, % of workers receiving``.  From the final year's
    agents (a sampled table weighted by ``sample_weight``); without the agents' components,
    from the totals of ``years.parquet`` (no before-credit tax or elderly credit there)."""
    got = _final_world_agents(res)
    if got is None:
        return _years_decomposition(res.years)
    a, w, share = got
    tot = float(w.sum())
    rows = []
    for label, col, credit in DECOMPOSITION:
        x = a[col].to_numpy(float)
        recv = 100.0 * float(np.dot(w, (x > 0) * share) / tot) if credit and col != "income_tax_before_credits" else np.nan
        rows.append({"component": label, "$/person/yr": float(np.dot(w, x * share) / tot),
                     "% of workers receiving": recv})
    return pd.DataFrame(rows)


#: ``years.parquet`` columns of the decomposition rows (without agents): component -> (total, recipients)
_YEARS_TOTALS = {"eitc": ("eitc_cost", "eitc_recipients"), "ctc": ("ctc_cost", None),
                 "actc": ("actc_cost", "actc_recipients"), "income_tax": ("income_tax_revenue", None),
                 "payroll_tax": ("payroll_revenue", None), "payroll_tax_employer": ("payroll_revenue_employer", None)}


def _years_decomposition(years: pd.DataFrame) -> pd.DataFrame | None:
    """The decomposition from the final year's totals of ``years.parquet`` (a run without
    agents.parquet): no before-credit tax or elderly credit (``–``)."""
    y = years.iloc[-1]
    if not all(t in y for t, _ in _YEARS_TOTALS.values()):
        return None
    rows = []
    for label, col, _credit in DECOMPOSITION:
        total, recv = _YEARS_TOTALS.get(col, (None, None))
        if col == "net_tax":
            value = float(y["income_tax_revenue"]) + float(y["payroll_revenue"])
        else:
            value = float(y[total]) if total else np.nan
        rows.append({"component": label, "$/person/yr": value,
                     "% of workers receiving": 100.0 * float(y[recv]) if recv else np.nan})
    return pd.DataFrame(rows)


def sample_note(res) -> str:
    """A sentence when the final year's agents are a sample (``output.agents_sample``) or
    absent, else ``""``."""
    a = res.agents
    if a is None or a.empty or not all(c in a.columns for c in COMPONENT_COLUMNS):
        return ("Without the agents' components (output.agents_table): the totals of years.parquet; "
                "income tax before credits and the credit for the elderly are not recorded there.")
    if "sample_weight" in a:
        n = int((a["year"] == a["year"].max()).sum())
        total = len(res.population) if res.population is not None else "?"
        return (f"Estimated from the agents sample ({n} of {total} workers, output.agents_sample, "
                "weighted by sample_weight); years.parquet has the totals of every worker.")
    return ""


def recipients_text(res) -> str:
    """The final year's recipient shares of ``years.parquet`` (every worker, each unit once)."""
    y = res.years.iloc[-1]
    parts = [(k, lab) for k, lab in (("eitc_recipients", "EITC"), ("ctc_recipients", "CTC or ACTC"),
                                     ("actc_recipients", "ACTC")) if k in y]
    if not parts:
        return ""
    return ("Recipients (years.parquet, every worker, each unit once): "
            + ", ".join(f"{lab} {100 * float(y[k]):.1f} %" for k, lab in parts) + " of workers.")


def decomposition_text(res) -> str:
    """What the decomposition counts, and the fiscal rule's numbers of the final year."""
    y = res.years.iloc[-1]
    text = ("Final tax year, dollars a year per person of the population: each worker carries its "
            "share of its tax unit's amounts (half for a two-earner couple), so every unit counts "
            "once. Income tax after credits is negative where refundable credits exceed the tax. The "
            "employer's payroll tax is shown apart: wages are already net of it, so it is not in "
            "workers' budgets (its incidence: docs/economics.md, section 12).")
    extra = []
    if "revenue_requirement" in y and pd.notna(y["revenue_requirement"]):
        extra.append(f"revenue requirement ${float(y['revenue_requirement']):,.0f}")
    if "rebate" in y:
        extra.append(f"lump-sum transfer ${float(y['rebate']):,.0f}")
    if extra:
        text += " Fiscal rule: " + ", ".join(extra) + " per person."
    note = sample_note(res)
    return f"{text} {note}" if note else text


#: columns of the decile table: label -> (agents column, shared by the unit)
DECILE_COLUMNS = {
    "earnings $": ("pre_tax", False), "income tax $": ("income_tax", True), "EITC $": ("eitc", True),
    "CTC+ACTC $": ("ctc_actc", True), "payroll tax $": ("payroll_tax", True), "net tax $": ("net_tax", True),
    "post-tax $": ("post_tax", False), "EMTR %": ("marginal_rate", False),
}


def decile_table(res) -> pd.DataFrame | None:
    """The final year by decile of own pre-tax earnings (``stats.income_deciles``, weighted)
    and ``all``: weighted means of own earnings, the worker's share of its unit's income tax
    after credits, EITC, CTC + ACTC, employee payroll tax and net tax, post-tax income (own
    earnings + spouse's wages - the unit's net tax + transfer) and the effective marginal
    rate (percent).  None without components."""
    got = _final_world_agents(res)
    if got is None:
        return None
    a, w, share = got
    a = a.assign(ctc_actc=a["ctc"] + a["actc"])
    dec = income_deciles(a["pre_tax"].to_numpy(float), w)
    groups = [(str(d), dec == d) for d in range(1, 11)] + [("all", np.ones(len(a), dtype=bool))]
    rows = []
    for g, m in groups:
        wm = w[m]
        row: dict[str, Any] = {"decile": g, "% of workers": 100.0 * float(wm.sum() / w.sum())}
        for label, (col, shared) in DECILE_COLUMNS.items():
            x = a[col].to_numpy(float)[m] * (share[m] if shared else 1.0)
            row[label] = float(np.dot(wm, x) / wm.sum()) if wm.sum() > 0 else np.nan
        row["EMTR %"] *= 100.0
        rows.append(row)
    return pd.DataFrame(rows)


def decile_text() -> str:
    return ("Final tax year, by decile of own pre-tax earnings (population weights); weighted means "
            "per worker. Taxes and credits are the worker's share of its unit's (half for a two-earner "
            "couple), so the all row equals the decomposition above; post-tax is the worker's "
            "consumption: own earnings + spouse's wages - the unit's net tax + the transfer; EMTR: "
            "effective marginal rate of own earnings.")


def world_sections(res) -> dict[str, Any] | None:
    """Everything both pages show of a us_current_law run, computed once: ``curves``
    (:func:`household_rate_curves` of the final year), the EMTR and average-rate tables,
    their description, the figure, the decomposition and decile tables and their texts;
    None for an income-tax-only run."""
    if not is_us_current_law(res):
        return None
    sc = res.manifest.get("scenario", {})
    last = res.years.iloc[-1]
    rates = [float(last[c]) for c in rate_cols(res.years)]
    curves = household_rate_curves(sc, rates)
    return {
        "curves": curves,
        "emtr": household_rates_table(curves, "marginal_rate"),
        "atr": household_rates_table(curves, "average_rate"),
        "rates_text": household_rates_text(sc, rates, int(last["year"])),
        "figure": fig_household_rates(curves),
        "decomposition": net_tax_decomposition(res),
        "decomposition_text": decomposition_text(res),
        "recipients_text": recipients_text(res),
        "deciles": decile_table(res),
        "deciles_text": " ".join(t for t in (decile_text(), sample_note(res)) if t),
    }


# --------------------------------------------------------------------------- extensive margin
#: most participation cells listed in the employment-target table (the largest by weight)
MAX_TARGET_CELLS = 30


def has_participation(res) -> bool:
    """Whether a run (``load_run``) has an extensive margin: ``employment_rate`` in its years."""
    return "employment_rate" in res.years.columns


def _final_people(res) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The final year's agents carrying ``employed``, with their weights (``sample_weight``
    of a sampled table, else the population weight) and the household columns of the
    population where the agents lack them; None without them."""
    a = res.agents
    if a is None or a.empty or "employed" not in a.columns:
        return None
    a = a[a["year"] == a["year"].max()].reset_index(drop=True)
    pop = res.population
    if pop is not None:
        extra = [c for c in ("household_type", "filing_status", "children", "spouse_wages",
                             "employment_target", "participation_cell") if c in pop and c not in a]
        if extra:
            a = a.merge(pop[["id", *extra]], on="id", how="left")
    return a, _agent_weights(a, pop)


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean of the finite values of ``x`` (nan where their weight is zero)."""
    ok = np.isfinite(x)
    w = np.where(ok, w, 0.0)
    return float(np.dot(w, np.where(ok, x, 0.0)) / w.sum()) if w.sum() > 0 else float("nan")


def _people_rows(a: pd.DataFrame, w: np.ndarray, label: str, groups: list[tuple[str, np.ndarray]]) -> pd.DataFrame:
    """One row per group: share of people, mean potential earnings, employment rate and
    mean hours (everyone, employed), mean participation tax rate (everyone, employed) and
    the employed's mean effective marginal rate (where the agents carry it)."""
    emp = a["employed"].to_numpy(bool)
    h = a["hours"].to_numpy(float)
    rows = []
    for g, m in groups:
        wm, we = w * m, w * (m & emp)
        row: dict[str, Any] = {label: g, "% of people": 100.0 * float(wm.sum() / w.sum())}
        if "potential_earnings" in a:
            row["potential earnings $"] = _wmean(a["potential_earnings"].to_numpy(float), wm)
        row["employed %"] = 100.0 * _wmean(emp.astype(float), wm)
        row["hours/wk"] = _wmean(h, wm)
        row["hours/wk employed"] = _wmean(h, we)
        if "participation_tax_rate" in a:
            ptr = a["participation_tax_rate"].to_numpy(float)
            row["PTR % everyone"] = 100.0 * _wmean(ptr, wm)
            row["PTR % employed"] = 100.0 * _wmean(ptr, we)
        if "marginal_rate" in a:
            row["EMTR % employed"] = 100.0 * _wmean(a["marginal_rate"].to_numpy(float), we)
        rows.append(row)
    return pd.DataFrame(rows)


def _years_rows(y: pd.Series, label: str, groups: list[tuple[str, str]]) -> pd.DataFrame:
    """The final year's employment rates of ``years.parquet`` (no agents with ``employed``):
    one row per group whose column exists, and ``all`` with the mean hours."""
    rows = [{label: g, "employed %": 100.0 * float(y[c])} for g, c in groups if c in y]
    rows.append({label: "all", "employed %": 100.0 * float(y["employment_rate"]),
                 "hours/wk": float(y["mean_hours"]) if "mean_hours" in y else np.nan,
                 "hours/wk employed": float(y["mean_hours_employed"]) if "mean_hours_employed" in y else np.nan,
                 "PTR % employed": 100.0 * float(y["mean_participation_tax_rate"])
                 if "mean_participation_tax_rate" in y else np.nan})
    return pd.DataFrame(rows)


def employment_deciles(res) -> pd.DataFrame:
    """Who works in the final year by decile of the potential wage (the agents' ``wage``,
    ``stats.income_deciles`` with the weights) and ``all``: :func:`_people_rows`; without
    agents carrying ``employed``, the decile rates of ``years.parquet``."""
    got = _final_people(res)
    if got is None:
        return _years_rows(res.years.iloc[-1], "potential-wage decile",
                           [(str(d), f"employment_rate_d{d:02d}") for d in range(1, 11)])
    a, w = got
    dec = income_deciles(a["wage"].to_numpy(float), w)
    groups = [(str(d), dec == d) for d in range(1, 11)] + [("all", np.ones(len(a), dtype=bool))]
    return _people_rows(a, w, "potential-wage decile", groups)


def employment_households(res) -> pd.DataFrame | None:
    """Who works in the final year by household type (``stats.household_types``, labels
    ``stats.HH_TYPE_LABELS``) and ``all``; without agents carrying ``employed``, the rates
    of ``years.parquet``; None when neither has household types."""
    got = _final_people(res)
    if got is None:
        y = res.years.iloc[-1]
        groups = [(HH_TYPE_LABELS[t], f"employment_rate_hh_{t}") for t in HH_TYPES]
        return _years_rows(y, "household", groups) if any(c in y for _, c in groups) else None
    a, w = got
    hh = household_types(a)
    if hh is None:
        return None
    kind = np.asarray(hh.astype(str))
    groups = [(HH_TYPE_LABELS[t], kind == t) for t in HH_TYPES if (kind == t).any()]
    return _people_rows(a, w, "household", groups + [("all", np.ones(len(a), dtype=bool))])


def employment_targets(res) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """The employment targets of ``population.parquet`` against the simulation, final year:
    the weighted mean ``employment_target`` of the population (percent) beside the
    simulated employment rate (``years.parquet``), and per ``participation_cell`` (the
    :data:`MAX_TARGET_CELLS` largest by weight; from agents carrying ``employed``) target,
    simulated rate and their difference (points).  None without targets."""
    pop = res.population
    if pop is None or "employment_target" not in pop:
        return None
    wp = pop["weight"].to_numpy(float) if "weight" in pop else np.ones(len(pop))
    target = 100.0 * _wmean(pop["employment_target"].to_numpy(float), wp)
    sim = 100.0 * float(res.years["employment_rate"].iloc[-1])
    overall = pd.DataFrame([{"population": "all", "target employed %": target,
                             "simulated employed %": sim, "difference (points)": sim - target}])
    got = _final_people(res)
    if got is None or "participation_cell" not in got[0] or "employment_target" not in got[0]:
        return overall, None
    a, w = got
    df = pd.DataFrame({"cell": a["participation_cell"].astype(str), "_w": w,
                       "_wt": w * a["employment_target"].to_numpy(float),
                       "_we": w * a["employed"].to_numpy(float)})
    g = df.groupby("cell", sort=True)[["_w", "_wt", "_we"]].sum().sort_values("_w", ascending=False, kind="stable")
    g = g.head(MAX_TARGET_CELLS)
    cells = pd.DataFrame({"cell": g.index.astype(str), "% of people": 100.0 * g["_w"].to_numpy() / w.sum(),
                          "target employed %": 100.0 * (g["_wt"] / g["_w"]).to_numpy(),
                          "simulated employed %": 100.0 * (g["_we"] / g["_w"]).to_numpy()})
    cells["difference (points)"] = cells["simulated employed %"] - cells["target employed %"]
    return overall, cells


def who_works_text(res) -> str:
    """What the "Who works" tables count."""
    got = _final_people(res)
    y = res.years.iloc[-1]
    text = (f"Final tax year ({int(y['year'])}): employed means positive hours. Groups: decile of "
            "the potential wage (population weights) and household type (the tax unit: filing "
            "status, children, whether a spouse earns). Hours/wk counts everyone (zeros "
            "included); hours/wk employed only those working. PTR: participation tax rate, "
            "(net tax when working - net tax at zero earnings) / earnings, at own earnings if "
            "employed and at potential earnings if not.")
    if "marginal_rate" in (got[0] if got is not None else ()):
        text += " EMTR: the employed's effective marginal rate."
    if got is None:
        text += (" Without agents carrying employment (output.agents_table): the employment rates "
                 "of years.parquet only.")
    elif "sample_weight" in got[0]:
        total = len(res.population) if res.population is not None else "?"
        text += (f" Estimated from the agents sample ({len(got[0])} of {total} people, weighted by "
                 "sample_weight); years.parquet has the rates of everyone.")
    return text


def targets_text(cells: pd.DataFrame | None, res) -> str:
    text = ("Employment targets: the weighted mean of population.parquet's employment_target against "
            "the simulated employment rate of the final year (years.parquet).")
    if cells is not None:
        n = int(res.population["participation_cell"].nunique()) if "participation_cell" in res.population else len(cells)
        text += (" By participation cell, largest first: " + (f"the {len(cells)} largest of {n} cells"
                                                               if n > len(cells) else f"all {n} cells") + ".")
    return text


def participation_sections(res) -> dict[str, Any] | None:
    """Everything both pages show of a run with an extensive margin ("Who works"),
    computed once: ``deciles``, ``households`` (may be None), ``targets`` and ``cells``
    (None without targets), their texts; None for a run without ``employment_rate``."""
    if not has_participation(res):
        return None
    got = employment_targets(res)
    targets, cells = got if got is not None else (None, None)
    return {
        "text": who_works_text(res),
        "deciles": employment_deciles(res),
        "households": employment_households(res),
        "targets": targets,
        "cells": cells,
        "targets_text": targets_text(cells, res) if targets is not None else "",
    }


#: columns of the employment incidence tables (``stats.incidence`` with ``employed``):
#: column -> label; shares shown in percent, changes of shares in percentage points
EMPLOYMENT_VIEW = {
    "group": "group", "workers_share": "% of people", "employment_b": "employed % (baseline)",
    "d_employment": "change employed (points)", "d_employment_low": "CI low points",
    "d_employment_high": "CI high points", "share_starting": "% starting work",
    "share_starting_low": "CI low % starting", "share_starting_high": "CI high % starting",
    "share_stopping": "% stopping work", "share_stopping_low": "CI low % stopping",
    "share_stopping_high": "CI high % stopping", "d_hours": "change hours/wk",
    "d_hours_low": "CI low hours", "d_hours_high": "CI high hours",
    "d_hours_employed": "change hours/wk employed", "n_seeds": "seeds",
}
_EMPLOYMENT_PERCENT = ("workers_share", "employment_b", "d_employment", "d_employment_low", "d_employment_high",
                       "share_starting", "share_starting_low", "share_starting_high",
                       "share_stopping", "share_stopping_low", "share_stopping_high")


def has_employment(inc: pd.DataFrame) -> bool:
    """Whether incidence tables carry the extensive margin's columns."""
    return "d_employment" in inc.columns


def employment_view(t: pd.DataFrame) -> pd.DataFrame:
    """An employment incidence table for display (rows of ``incidence.parquet`` of one
    grouping): shares in percent, changes in points, household types by their labels."""
    t = t.copy()
    for c in _EMPLOYMENT_PERCENT:
        if c in t:
            t[c] = 100.0 * t[c].astype(float)
    if "grouping" in t and (t["grouping"] == "household_type").all():
        t["group"] = [HH_TYPE_LABELS.get(g, g) for g in t["group"]]
    keep = [c for c in ("variant", *EMPLOYMENT_VIEW) if c in t]
    return t[keep].rename(columns=EMPLOYMENT_VIEW).reset_index(drop=True)


def employment_incidence_text(level: int) -> str:
    return (f"Each seed's people matched by id; group means over seeds with {level} % paired t "
            "intervals over seeds (blank with one seed). Employed: positive hours. Change employed: "
            "variant minus baseline employment rate, percentage points (= % starting - % stopping); "
            "% starting: not working in the baseline and working in the variant, % stopping the "
            "reverse (shares of the group); change hours/wk: every person, zeros included; change "
            "hours/wk employed: mean hours of those working in the variant minus those working in "
            "the baseline (composition included).")
