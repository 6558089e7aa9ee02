"""Matplotlib figures of the exploration page, one function per view.

Each takes an :class:`~simulator.explore.model.ExploreModel` and returns a
``matplotlib.figure.Figure`` (no pyplot state, so they are safe in a server).  The page
wraps them in Solara components; notebooks and tests can call them directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from simulator.explore.model import schedule_curves

if TYPE_CHECKING:
    from simulator.explore.model import ExploreModel

FIGSIZE = (6.0, 3.6)
NOW, BASE = "#1f77b4", "#999999"


def _figure() -> Figure:
    """A figure with fixed margins (constrained layout would double the drawing time)."""
    fig = Figure(figsize=FIGSIZE)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.91, wspace=0.45)
    return fig


def _dollars(x: float, _pos=None) -> str:
    a = abs(x)
    s = f"${a / 1e6:.1f}M" if a >= 1e6 else f"${a / 1e3:.0f}k" if a >= 1e3 else f"${a:.0f}"
    return "-" + s if x < 0 else s


def schedule_figure(model: ExploreModel) -> Figure:
    """Statutory marginal and effective average rates by gross income (log scale)."""
    eco = model.economy
    rebate = model.last("rebate")
    rebate = rebate if np.isfinite(rebate) else 0.0
    now = schedule_curves(eco.schedule, rebate)
    start = schedule_curves(eco.base_schedule, model.baseline.rebate if model.baseline else 0.0)
    fig = _figure()
    ax = fig.add_subplot()
    ax.step(now["income"], now["marginal_rate"], where="post", color=NOW, label="marginal (statutory)")
    ax.plot(now["income"], now["average_rate"], color="#2ca02c", label="average tax rate")
    ax.plot(now["income"], now["effective_average_rate"], color="#d62728",
            label="effective average (net of rebate)")
    ax.step(start["income"], start["marginal_rate"], where="post", color=BASE, ls="--",
            label="marginal, starting schedule")
    ax.set_xscale("log")
    # below about $20k the rebate makes the effective rate very negative: show down to -50 %
    ax.set_ylim(-0.5 if rebate > 0 else 0.0, 1.0)
    ax.axhline(0, color="black", lw=0.5)
    ax.xaxis.set_major_formatter(FuncFormatter(_dollars))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(f"gross income, dollars a year ({eco.schedule.deduction_note()})")
    ax.set_ylabel("rate")
    ax.set_title(f"Tax schedule, year {max(len(eco.history) - 1, 0)}")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _weighted_hist(ax, x, w, bins, fill=False, **kw):
    """A (population-weighted) histogram as one stairs artist (cheaper to draw than bars)."""
    counts, edges = np.histogram(x, bins=bins, weights=None if w is None else w / w.sum() * len(x))
    ax.stairs(counts, edges, fill=fill, **kw)


def distributions_figure(model: ExploreModel) -> Figure:
    """Histograms of hours a week and post-tax income, now and under the starting schedule."""
    eco = model.economy
    fig = _figure()
    ax_h, ax_c = fig.subplots(1, 2)
    w = eco.weights
    o, b = eco.outcome, model.baseline
    lo, hi = eco.hours_bounds
    if o is not None:
        both = o.hours if b is None else np.concatenate([o.hours, b.hours])
        hbins = np.linspace(lo, min(hi, float(both.max()) + 5.0), 26)
        post = o.post_tax if b is None else np.concatenate([o.post_tax, b.post_tax])
        cmin = max(float(np.percentile(post, 0.5)) * 0.8, 1_000.0)
        cmax = max(float(np.percentile(post, 99.5)), 2 * cmin)
        cbins = np.geomspace(cmin, cmax * 1.05, 30)
        if b is not None:
            _weighted_hist(ax_h, b.hours, w, hbins, fill=True, color=BASE, alpha=0.5,
                           label="starting schedule")
            _weighted_hist(ax_c, np.clip(b.post_tax, cmin, None), w, cbins, fill=True, color=BASE,
                           alpha=0.5)
        _weighted_hist(ax_h, o.hours, w, hbins, color=NOW, lw=1.5, label="now")
        _weighted_hist(ax_c, np.clip(o.post_tax, cmin, None), w, cbins, color=NOW, lw=1.5)
        ax_c.set_xscale("log")
        ax_c.xaxis.set_major_formatter(FuncFormatter(_dollars))
        ax_c.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax_c.xaxis.set_minor_formatter(NullFormatter())
        ax_h.legend(fontsize=7)
    else:
        for ax in (ax_h, ax_c):
            ax.text(0.5, 0.5, "press Step", ha="center", transform=ax.transAxes)
    ax_h.set_xlabel("hours a week")
    ax_h.set_ylabel("workers")
    ax_c.set_xlabel("post-tax income incl. rebate, $/yr")
    ax_h.set_title("Hours")
    ax_c.set_title("Post-tax income")
    return fig


def winners_losers_figure(model: ExploreModel) -> Figure:
    """Mean change of post-tax income and shares of winners/losers by income decile."""
    table = model.winners_losers()
    fig = _figure()
    ax, ax2 = fig.subplots(1, 2)
    if table.empty:
        for a in (ax, ax2):
            a.text(0.5, 0.5, "press Step", ha="center", transform=a.transAxes)
    else:
        d = table["decile"]
        ch = table["mean_change_post_tax"]
        ax.bar(d, ch, color=np.where(ch >= 0, "#2ca02c", "#d62728"))
        ax.axhline(0, color="black", lw=0.5)
        ax.yaxis.set_major_formatter(FuncFormatter(_dollars))
        ax.set_ylabel("mean change, $/yr")
        ax2.bar(d, table["share_winners"], color="#2ca02c", label="winners")
        ax2.bar(d, -table["share_losers"], color="#d62728", label="losers")
        ax2.axhline(0, color="black", lw=0.5)
        ax2.set_ylim(-1.05, 1.05)
        ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{abs(v):.0%}"))
        ax2.set_ylabel("share of decile (utility)")
        ax2.legend(fontsize=7, loc="lower left")
    for a in (ax, ax2):
        a.set_xlabel("income decile (starting schedule)")
        a.set_xticks(range(1, 11))
    ax.set_title("Post-tax income vs start")
    ax2.set_title("Winners and losers")
    return fig


def llm_figure(model: ExploreModel) -> Figure:
    """Fallback rate of LLM workers and LLM requests per tax year."""
    fig = _figure()
    ax = fig.add_subplot()
    years = model.years
    if not model.uses_llm:
        ax.text(0.5, 0.5, "no LLM agents in this economy\n(choose workers or planner 'llm')",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    if years.empty:
        ax.text(0.5, 0.5, "press Step", ha="center", transform=ax.transAxes)
        return fig
    if "fallback_rate" in years:
        ax.plot(years["year"], years["fallback_rate"], "o-", color="#d62728", label="worker fallback rate")
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("tax year")
    ax.set_ylabel("fallback rate")
    if "llm_requests" in years:
        ax2 = ax.twinx()
        ax2.bar(years["year"], years["llm_requests"], alpha=0.3, color=NOW, label="LLM requests")
        ax2.set_ylabel("requests")
    ax.set_title("LLM telemetry")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def llm_table(model: ExploreModel) -> str:
    """The last year's LLM telemetry as an HTML table (empty without LLM calls)."""
    rec = model.economy.history[-1] if model.economy.history else {}
    keys = [k for k in ("fallback_rate", "llm_requests", "llm_cache_hits", "llm_failures",
                        "llm_retries", "llm_constraint_violations", "llm_prompt_tokens",
                        "llm_completion_tokens", "llm_latency_p50_s", "llm_latency_p95_s") if k in rec]
    if not keys:
        return ""
    rows = []
    for k in keys:
        v = float(rec[k])
        rows.append(f"<tr><td>{k}</td><td style='text-align:right'>"
                    f"{f'{v:.1%}' if k == 'fallback_rate' else f'{v:,.3g}'}</td></tr>")
    return "<table><tr><th>LLM, last year</th><th>value</th></tr>" + "".join(rows) + "</table>"


def years_post_process(title: str, ylabel: str, percent: bool = False):
    """A ``post_process`` for Mesa's ``make_plot_component`` (one Mesa step is one tax year)."""

    def post(ax) -> None:
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if percent:
            ax.axhline(0, color="black", lw=0.5)
        for line in ax.get_lines():
            line.set_marker("o")
            line.set_markersize(3)
        leg = ax.get_legend()
        if leg is not None:
            for text in leg.get_texts():
                text.set_text(text.get_text().removeprefix("welfare_"))
            leg.set_title(None)
            for t in leg.get_texts():
                t.set_fontsize(7)

    return post
