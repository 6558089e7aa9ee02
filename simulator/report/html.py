"""The self-contained HTML report (``report.html``): figures embedded as base64 PNG,
tables from the runs' parquet files and :mod:`simulator.experiments.stats`, no
scripts, no external resources.

Every numeric table cell carries its exact value in ``data-value`` (the text is the
same number formatted for its column), so tests and readers can check the page against
the parquet files.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from simulator.config.schema import Scenario
from simulator.experiments import stats
from simulator.report.common import (
    CAVEATS,
    METRIC_LABELS,
    SWF_LABELS,
    SWF_TITLES,
    caveat_notes,
    changes_text,
    column_format,
    employment_incidence_text,
    employment_view,
    fig_income_histogram,
    fig_rate_curves,
    fork_section,
    has_employment,
    participation_sections,
    png_bytes,
    rate_cols,
    rate_curves_caption,
    reliability_note,
    run_bracket_labels,
    run_figures,
    run_schedule,
    run_years_view,
    scenario_thresholds,
    variant_changes,
    verdict_lines,
    world_sections,
)
from simulator.results import load_run

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#1d2330;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #d8dce4}
h3{font-size:1.05rem;margin-top:1.4rem}
.sub{color:#5a6272;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #d8dce4;padding:.25rem .55rem}th{background:#f1f3f7;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{background:#e6f4ea;font-weight:600}
img{max-width:100%;height:auto;display:block;margin:.6rem 0}
figure{margin:1rem 0}figcaption{color:#5a6272;font-size:.85rem}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:.8rem}
nav a{margin-right:1rem}
.note{color:#5a6272;font-size:.9rem}
.verdict{border:1px solid #c9d3e6;background:#f5f8fd;padding:.4rem 1rem;margin:.6rem 0}
.verdict h3{margin:.5rem 0 .2rem}.verdict ul{margin:.2rem 0 .5rem}
.warn{color:#8a4b00;font-weight:600}
"""


# --------------------------------------------------------------------------- pieces
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def html_table(df: pd.DataFrame, best: set[tuple[int, str]] | None = None, table_id: str | None = None) -> str:
    """A table; float columns formatted per column, exact values in ``data-value``."""
    best = best or set()
    fmts = {c: column_format(df[c]) for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    for i in range(len(df)):  # by column: iterrows would turn the ints of a numeric row into floats
        cells = []
        for c in df.columns:
            v = df[c].iloc[i]
            if c in fmts:
                cls = "num best" if (i, c) in best else "num"
                star = " ★" if (i, c) in best else ""
                dv = repr(float(v)) if v is not None and np.isfinite(float(v)) else "nan"
                cells.append(f'<td class="{cls}" data-col="{_e(c)}" data-value="{dv}">{_e(fmts[c](v))}{star}</td>')
            else:
                cells.append(f'<td data-col="{_e(c)}">{_e(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    tid = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def html_figure(fig: Figure, caption: str, name: str) -> str:
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return (f'<figure><img id="fig-{_e(name)}" alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{sid}">{_e(h)}</a>' for sid, h, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(h)}</h2>{content}</section>' for sid, h, content in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_e(title)}</title><style>{CSS}</style></head>'
        f'<body><h1>{_e(title)}</h1><p class="sub">{_e(subtitle)}</p><nav>{nav}</nav>{body}'
        f'<p class="note">Written by econsim on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p></body></html>'
    )


def _provenance(scenario: dict[str, Any], meta_rows: list[tuple[str, Any]], versions: dict[str, Any],
                telemetry: pd.DataFrame | None) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta_rows)
    ver = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in versions.items())
    out = f"<h3>Run</h3><table>{rows}</table><h3>Package versions</h3><table>{ver}</table>"
    if telemetry is not None and len(telemetry):
        out += "<h3>LLM telemetry and wall time (sum over runs and tax years)</h3>" + html_table(telemetry, table_id="telemetry")
    out += ("<h3>Scenario</h3><pre>"
            + _e(yaml.safe_dump(scenario, sort_keys=False, default_flow_style=None)) + "</pre>")
    return out


def _llm_used(scenario: dict[str, Any]) -> bool:
    try:
        return Scenario.model_validate(scenario).uses_llm
    except ValueError:  # a manifest of another version: show the LLM rows rather than hide them
        return True


def _model_rows(scenario: dict[str, Any]) -> list[tuple[str, Any]]:
    llm = scenario.get("llm", {})
    if not _llm_used(scenario):
        return [("language model", "none used (rational/fixed workers, non-LLM planner)")]
    return [("LLM backend", llm.get("backend")), ("LLM model", llm.get("model") or "(backend default)"),
            ("LLM cache", llm.get("cache"))]


TELEMETRY = (("llm_requests", "LLM calls"), ("llm_prompt_tokens", "prompt tokens"),
             ("llm_completion_tokens", "completion tokens"), ("llm_cache_hits", "cache hits"),
             ("fallbacks", "fallbacks"))


def telemetry_table(years: pd.DataFrame, walls: dict[str, float]) -> pd.DataFrame:
    """LLM calls, tokens, cache hits, fallbacks and wall seconds per variant."""
    rows = []
    for v, g in years.groupby("variant", sort=False):
        row: dict[str, Any] = {"variant": v}
        for col, label in TELEMETRY:
            row[label] = float(g[col].sum()) if col in g else 0.0
        row["wall time s"] = float(walls.get(v, float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- single run
def render_run(run_dir: str | Path) -> str:
    """The HTML page of one run."""
    res = load_run(run_dir)
    y = res.years
    sc = res.manifest.get("scenario", {})
    labels = run_bracket_labels(sc)
    figs = run_figures(res, labels)
    rc = rate_cols(y)
    last = y.iloc[-1]
    curves = stats.tax_rate_curves(
        run_schedule(sc, [float(last[c]) for c in rc]),
        rebate=float(last.get("rebate", 0.0))).assign(variant=str(sc.get("name", "run")))
    sched = pd.DataFrame({"bracket (taxable $/yr)": labels,
                          "final rate %": [100 * float(last[c]) for c in rc]})
    swf = y[["year", *[c for c in SWF_LABELS if c in y]]].rename(columns=SWF_LABELS)
    walls = {str(sc.get("name", "run")): float(res.manifest.get("wall_seconds") or float("nan"))}
    tel = telemetry_table(y.assign(variant=str(sc.get("name", "run"))), walls)
    sections = [
        ("summary", "Tax years", html_table(run_years_view(y), table_id="years")
         + "<h3>Every welfare function</h3>" + html_table(swf, table_id="swf")),
        ("over-years", "Over tax years",
         html_figure(figs["objective"], f"Objective: {SWF_TITLES.get(str(last['objective_swf']), last['objective_swf'])}; revenue per person", "objective")
         + html_figure(figs["rates"], "Bracket rates by tax year", "rates")),
        ("schedules", "Final schedule", html_table(sched, table_id="schedule")
         + html_figure(fig_rate_curves(curves), rate_curves_caption(curves, "Average and marginal tax rates by income"), "tax-rates")),
    ]
    world = world_sections(res)
    if world is not None:
        sections[-1] = (*sections[-1][:2], sections[-1][2] + (
            "<p class='note'>These curves are the planner's income-tax schedule alone (a single "
            "filer); the whole system by household type: Rates by household.</p>"))
        sections += world_html(world)
    who = participation_sections(res)
    if who is not None:
        sections.append(who_works_html(who))
    if "incomes" in figs:
        sections.append(("incomes", "Incomes", html_figure(figs["incomes"], "Pre- and post-tax incomes, final year", "incomes")))
    status = res.manifest.get("status")
    alerts = [f"warning: {w}" for w in res.manifest.get("warnings") or []]
    if status in ("failed", "interrupted"):
        alerts.insert(0, f"{status}: {res.manifest.get('reason') or 'see the manifest'}")
    if alerts:  # a degraded run says so first (simulator.sim.health)
        sections.insert(0, ("status", f"Run {status}", "".join(f"<p><strong>{_e(a)}</strong></p>" for a in alerts)))
    vpath = Path(run_dir) / "validity.parquet"
    if vpath.exists():
        v = pd.read_parquet(vpath)
        cols = [c for c in ("check", "value", "ci_low", "ci_high", "range_low", "range_high", "rational", "verdict") if c in v]
        sections.append(("validity", "Behavioural validity", html_table(v[v["verdict"] != "info"][cols].reset_index(drop=True), table_id="validity")))
    parent = res.manifest.get("parent")
    if parent:
        md = [ln for ln in fork_section(res) if ln]
        sections.append(("fork", f"Fork of {parent.get('run_dir')} after tax year {parent.get('fork_year')}",
                         "".join(f"<p>{_e(ln)}</p>" for ln in md[1:2])
                         + "<p>Year-by-year comparison with the parent: report.md.</p>"))
    meta_rows = [("status", status), ("seed", res.manifest.get("seed")),
                 ("tax years", len(y)), ("started", res.manifest.get("started")),
                 ("finished", res.manifest.get("finished")), ("git revision", res.manifest.get("git_revision")),
                 ("command", res.manifest.get("command")), *_model_rows(sc)]
    if res.manifest.get("notes"):
        meta_rows.append(("notes", "; ".join(res.manifest["notes"])))
    sections.append(("provenance", "Provenance", _provenance(sc, meta_rows, res.manifest.get("versions", {}), tel)))
    return page(f"Run report: {sc.get('name', Path(run_dir).name)}",
                f"{len(res.population) if res.population is not None else '?'} workers, planner "
                f"{last['planner']}, objective {last['objective_swf']}, seed {res.manifest.get('seed')}", sections)


def world_html(world: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The us_current_law sections of a run (``common.world_sections``)."""
    out = [("household-rates", "Rates by household",
            f"<p>{_e(world['rates_text'])}</p>"
            + html_figure(world["figure"], "Effective marginal and average net tax rates of own "
                          "earnings by household type, final year's schedule", "household-rates")
            + "<h3>Effective marginal tax rate (%)</h3>" + html_table(world["emtr"], table_id="household-emtr")
            + "<h3>Average net tax rate of own earnings (%)</h3>" + html_table(world["atr"], table_id="household-atr"))]
    if world["decomposition"] is not None:
        rec = f"<p>{_e(world['recipients_text'])}</p>" if world["recipients_text"] else ""
        out.append(("net-tax", "Net tax", f"<p>{_e(world['decomposition_text'])}</p>"
                    + html_table(world["decomposition"], table_id="net-tax-table") + rec))
    if world["deciles"] is not None:
        out.append(("tax-deciles", "By income decile", f"<p>{_e(world['deciles_text'])}</p>"
                    + html_table(world["deciles"], table_id="tax-deciles-table")))
    return out


def who_works_html(who: dict[str, Any]) -> tuple[str, str, str]:
    """The "Who works" section of a run with an extensive margin (``common.participation_sections``)."""
    sec = (f"<p>{_e(who['text'])}</p><h3>By potential-wage decile</h3>"
           + html_table(who["deciles"], table_id="who-works-deciles"))
    if who["households"] is not None:
        sec += "<h3>By household type</h3>" + html_table(who["households"], table_id="who-works-households")
    if who["targets"] is not None:
        sec += (f"<h3>Employment targets</h3><p>{_e(who['targets_text'])}</p>"
                + html_table(who["targets"], table_id="employment-targets"))
        if who["cells"] is not None:
            sec += html_table(who["cells"], table_id="employment-cells")
    return ("who-works", "Who works", sec)


# --------------------------------------------------------------------------- experiment
def fig_over_years(years: pd.DataFrame, objective: str) -> Figure:
    """Objective, revenue, hours and Gini by tax year: a faint line per seed, the mean bold."""
    panels = [("objective", f"objective: {SWF_TITLES.get(objective, objective)}"),
              ("revenue", "revenue per person ($/yr)"), ("mean_hours", "mean hours a week"),
              ("gini_post_tax", "Gini of post-tax income")]
    fig = Figure(figsize=(9.5, 6.4))
    axes = fig.subplots(2, 2).ravel()
    for ax, (col, title) in zip(axes, panels, strict=True):
        for i, (v, g) in enumerate(years.groupby("variant", sort=False)):
            c = f"C{i % 10}"
            for _, s in g.groupby("seed"):
                ax.plot(s["year"], s[col], color=c, alpha=0.25, lw=0.8)
            m = g.groupby("year")[col].mean()
            ax.plot(m.index, m.to_numpy(), color=c, lw=2.2, marker="o", ms=3, label=v)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("tax year")
    axes[0].legend(fontsize=7)
    return fig


def fig_schedules(final: pd.DataFrame, labels: list[str]) -> Figure:
    """Final marginal rates per bracket: mean over seeds, bars; whiskers min..max."""
    variants = list(dict.fromkeys(final["variant"]))
    rc = [f"rate_{i}" for i in range(len(labels))]
    fig = Figure(figsize=(9.0, 4.0))
    ax = fig.subplots()
    x = np.arange(len(rc))
    width = 0.8 / max(len(variants), 1)
    for j, v in enumerate(variants):
        g = final[final["variant"] == v][rc] * 100
        mean, lo, hi = g.mean().to_numpy(), g.min().to_numpy(), g.max().to_numpy()
        ax.bar(x + j * width, mean, width, label=v, yerr=[mean - lo, hi - mean] if len(g) > 1 else None,
               capsize=2)
    ax.set_xticks(x + 0.4 - width / 2, labels, rotation=25, ha="right", fontsize=7)
    ax.set_xlabel("bracket (taxable income, $/yr)")
    ax.set_ylabel("final marginal rate (%)")
    ax.set_title("Final schedules (mean over seeds; whiskers: min-max)")
    ax.legend(fontsize=7)
    return fig


def fig_deciles(inc: pd.DataFrame, order: list[str] | None = None) -> Figure:
    """Change in post-tax income by decile; ``order``: every variant label (baseline
    included) so that each variant keeps its colour from the other figures."""
    d = inc[(inc["grouping"] == "income_decile") & (inc["group"] != "all")]
    variants = list(dict.fromkeys(d["variant"]))
    order = list(order) if order else variants
    fig = Figure(figsize=(8.0, 3.8))
    ax = fig.subplots()
    width = 0.8 / max(len(variants), 1)
    whiskers = False
    for j, v in enumerate(variants):
        g = d[d["variant"] == v]
        x = g["group"].astype(int).to_numpy()
        mid = g["d_post_tax_pct"].to_numpy(float)
        yerr = None
        if "d_post_tax_pct_low" in g and np.isfinite(g["d_post_tax_pct_low"].to_numpy(float)).any():
            yerr = [mid - g["d_post_tax_pct_low"].to_numpy(float), g["d_post_tax_pct_high"].to_numpy(float) - mid]
            whiskers = True
        ax.bar(x - 0.4 + width / 2 + j * width, mid, width, label=v, yerr=yerr, capsize=2,
               color=f"C{(order.index(v) if v in order else j) % 10}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("pre-tax income decile (baseline)")
    ax.set_ylabel("change in post-tax income (%)")
    ax.set_title("Change in post-tax income by decile, mean over seeds"
                 + ("; whiskers: t interval" if whiskers else ""))
    ax.legend(fontsize=7)
    return fig


INCIDENCE_VIEW = {"group": "group", "workers_share": "% of workers", "pre_tax_b": "pre-tax $ (baseline)",
                  "post_tax_b": "post-tax $ (baseline)", "d_post_tax": "change post-tax $",
                  "d_post_tax_low": "CI low $", "d_post_tax_high": "CI high $",
                  "d_post_tax_pct": "change post-tax %", "d_post_tax_pct_low": "CI low %",
                  "d_post_tax_pct_high": "CI high %", "d_utility": "change utility",
                  "d_utility_low": "CI low utility", "d_utility_high": "CI high utility",
                  "d_income_tax": "change income tax $", "d_eitc": "change EITC $",
                  "d_ctc": "change CTC+ACTC $", "d_payroll_tax": "change payroll tax $",
                  "d_net_tax": "change net tax $", "d_marginal_rate": "change EMTR (points)",
                  "share_gaining": "% gaining >1%", "share_losing": "% losing >1%", "n_seeds": "seeds"}
SHARES = ("workers_share", "share_gaining", "share_losing")


def incidence_view(t: pd.DataFrame) -> pd.DataFrame:
    """An incidence table for display: shares in percent, readable column names."""
    t = t.copy()
    for c in SHARES:
        t[c] = 100.0 * t[c]
    if "d_marginal_rate" in t:  # us_current_law: percentage points
        t["d_marginal_rate"] = 100.0 * t["d_marginal_rate"]
    keep = [c for c in ("variant", *INCIDENCE_VIEW) if c in t]
    return t[keep].rename(columns=INCIDENCE_VIEW)


def optimum_subsample_notes(final: pd.DataFrame) -> list[str]:
    """One line per ``optimum`` variant searched on a subsample (``optimum_max_agents``)."""
    if "optimum_agents" not in final or "optimum_population" not in final:
        return []
    sub = final[final["optimum_agents"] < final["optimum_population"]]
    return [
        f"{v}: the optimum was searched on a random subsample of {int(g['optimum_agents'].iloc[0]):,} "
        f"of {int(g['optimum_population'].iloc[0]):,} workers (planner.optimum_max_agents) and may "
        f"overfit it; its results here are on every worker (objective {g['objective'].mean():.6g}; "
        f"{g['optimum_search_objective'].mean():.6g} on the subsample)"
        for v, g in sub.groupby("variant", sort=False)
    ]


def experiment_context(exp, st: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Everything both pages show, computed once from the statistics tables."""
    final, diffs, ce = st["final"], st["differences"], st["ce"]
    cfg_level = int(round(100 * (exp.meta.get("scenario", {}).get("experiment", {}) or {}).get("confidence", 0.95)))
    objective = str(final["objective_swf"].iloc[0]) if "objective_swf" in final else "utilitarian"
    metrics = [m for m in stats.METRICS if m in final]
    means = final.groupby("variant", sort=False)[metrics].mean()
    means = means.loc[[v for v in exp.variants if v in means.index]]
    n = final.groupby("variant", sort=False).size()
    means_view = pd.DataFrame({"variant": means.index, "seeds": n.reindex(means.index).to_numpy()})
    best = stats.best_variants(final)
    best_cells = set()
    for m in metrics:
        means_view[METRIC_LABELS.get(m, m)] = means[m].to_numpy(dtype=float)
        if m in best:
            best_cells.add((list(means.index).index(best[m]), METRIC_LABELS.get(m, m)))
    means_view["variant"] = [v + (" (baseline)" if v == exp.baseline else "") for v in means.index]
    dv = diffs[diffs["variant"] != exp.baseline].merge(ce, on=["variant", "metric"], how="left", suffixes=("", "_ce"))
    diff_view = pd.DataFrame({
        "variant": dv["variant"], "metric": [METRIC_LABELS.get(m, m) for m in dv["metric"]],
        "seeds": dv["n_seeds"].astype(int), "baseline": dv["baseline_mean"].astype(float),
        "variant mean": dv["variant_mean"].astype(float), "difference": dv["diff_mean"].astype(float),
        "CI low": dv["ci_low"].astype(float), "CI high": dv["ci_high"].astype(float),
        "CE %": dv["ce_pct_mean"].astype(float), "CE % low": dv["ce_low"].astype(float),
        "CE % high": dv["ce_high"].astype(float),
        "note": [CAVEATS[m][0] if m in CAVEATS else "" for m in dv["metric"]],
    })
    paired = diffs.loc[diffs["variant"] != exp.baseline, "n_seeds"]
    n_paired = int(paired.min()) if len(paired) else len(exp.seeds)
    first = exp.scenario(exp.variants[0])
    labels = stats.bracket_labels(scenario_thresholds(first))
    figs = {"over_years": fig_over_years(st["years"], objective), "schedules": fig_schedules(final, labels)}
    if len(st["tax_rates"]):
        figs["tax_rates"] = fig_rate_curves(st["tax_rates"])
    inc = st["incidence"]
    decile_view = None
    employment_views: dict[str, tuple[str, pd.DataFrame]] = {}
    if len(inc):
        figs["deciles"] = fig_deciles(inc, list(dict.fromkeys(st["years"]["variant"])))
        d = inc[inc["grouping"] == "income_decile"]
        decile_view = incidence_view(d)
        if has_employment(inc):  # an extensive margin: who starts and stops working
            for grouping in ("wage_decile", "household_type"):
                t = inc[inc["grouping"] == grouping]
                if len(t):
                    employment_views[grouping] = (stats.GROUP_COLUMNS[grouping], employment_view(t))
    base_run = exp.run(exp.baseline, int(final.loc[final["variant"] == exp.baseline, "seed"].min())) \
        if (final["variant"] == exp.baseline).any() else None
    if base_run is not None and base_run.agents is not None and len(base_run.agents):
        a = base_run.agents[base_run.agents["year"] == base_run.agents["year"].max()]
        figs["incomes"] = fig_income_histogram(a["pre_tax"].to_numpy(), a["post_tax"].to_numpy(), int(a["year"].iloc[0]))
    sched_view = final.groupby("variant", sort=False)[[f"rate_{i}" for i in range(len(labels))]].mean() * 100
    sched_view.columns = labels
    sched_view = sched_view.T.reset_index().rename(columns={"index": "bracket (taxable $/yr)"})
    kind = {"experiment": "Experiment", "comparison": "Policy comparison", "run": "Run"}[exp.kind]
    return {
        "title": f"{kind}: {exp.meta.get('name', exp.root.name)}",
        "subtitle": f"{len(exp.variants)} variants x {len(exp.seeds)} seeds "
                    f"({', '.join(map(str, exp.seeds))}); baseline {exp.baseline}; objective {objective}",
        "level": cfg_level, "means_view": means_view, "best_cells": best_cells, "diff_view": diff_view,
        "verdict": st.get("verdict", pd.DataFrame()), "n_paired": n_paired,
        "reliability": reliability_note(n_paired, cfg_level),
        "caveats": caveat_notes([m for m in dv["metric"]]) + optimum_subsample_notes(final),
        "changes": variant_changes(exp.meta),
        "figures": figs, "decile_view": decile_view, "incidence": inc, "sched_view": sched_view,
        "employment_views": employment_views,
        "exp": exp, "st": st, "objective": objective, "best": best,
    }


def verdict_html(ctx: dict[str, Any]) -> str:
    """The headline block: per comparison with the baseline, who wins on the objective, by
    how much (CE % with its interval), revenue, who gains and loses, caveats."""
    v = ctx["verdict"]
    if v is None or not len(v):
        return "<p class='note'>One variant only: nothing to compare.</p>"
    out = []
    for _, row in v.iterrows():
        head, lines = verdict_lines(row, ctx["level"])
        items = "".join(f"<li class='warn'>{_e(t)}</li>" if t.startswith(("Only ", "seed ")) else f"<li>{_e(t)}</li>"
                        for t in lines)
        out.append(f"<div class='verdict' data-variant='{_e(row['variant'])}'><h3>{_e(head)}</h3><ul>{items}</ul></div>")
    return "".join(out) + html_table(verdict_view(v), table_id="verdict-table")


def verdict_view(v: pd.DataFrame) -> pd.DataFrame:
    """The verdict table for display."""
    return pd.DataFrame({
        "variant": v["variant"], "seeds": v["n_seeds"].astype(int),
        "winner": [w or "not distinguishable" for w in v["winner"]],
        "objective difference": v["diff_mean"].astype(float), "CI low": v["ci_low"].astype(float),
        "CI high": v["ci_high"].astype(float), "CE %": v["ce_pct"].astype(float),
        "CE % low": v["ce_low"].astype(float), "CE % high": v["ce_high"].astype(float),
        "revenue $/person": v["revenue_diff"].astype(float), "intervals": v["reliability"],
    })


def render_experiment(ctx: dict[str, Any]) -> str:
    exp, st, figs = ctx["exp"], ctx["st"], ctx["figures"]
    sections = []
    alerts = exp.alerts()
    if alerts:  # failed, interrupted or degraded runs say so first
        sections.append(("status", "Runs that did not complete cleanly",
                         "".join(f"<p><strong>{_e(a)}</strong></p>" for a in alerts)))
    sections.append(("verdict", "Verdict", verdict_html(ctx)))
    best_txt = ", ".join(f"{SWF_LABELS.get(m, m)}: {v}" for m, v in ctx["best"].items())
    warn = f"<p class='warn'>{_e(ctx['reliability'])}</p>" if ctx["reliability"] else ""
    caveats = "".join(f"<p class='note'>{_e(c)}</p>" for c in ctx["caveats"])
    sections.append(("summary", "Summary",
        f"<p>Final tax year, mean over seeds. ★ marks the best variant of each welfare function "
        f"({_e(best_txt)}).</p>" + html_table(ctx["means_view"], ctx["best_cells"], "summary-table")
        + f"<h3>Paired differences from {_e(exp.baseline)}</h3><p>Variant minus baseline on the same seed "
        f"and population, mean over seeds, {ctx['level']} % paired Student-t interval over seeds "
        "(docs/experiments.md: how it was chosen, its measured coverage); "
        "CE %: the uniform change in every worker's consumption under the baseline that gives the "
        "variant's welfare (blank where the welfare function does not depend on the consumption level).</p>"
        + warn + html_table(ctx["diff_view"], table_id="differences") + caveats))
    sections.append(("over-years", "Over tax years", html_figure(
        figs["over_years"], "Objective, revenue, hours and Gini by tax year: faint lines per seed, bold the mean", "over-years")))
    sec = html_table(ctx["sched_view"], table_id="schedules-table") + html_figure(
        figs["schedules"], "Final marginal rates per bracket", "schedules")
    if "tax_rates" in figs:
        sec += html_figure(figs["tax_rates"], rate_curves_caption(
            st["tax_rates"], "Effective average and marginal tax rates by income, final schedules"), "tax-rates")
    sections.append(("schedules", "Final schedules", sec))
    inc = ctx["incidence"]
    if len(inc):
        sec = html_figure(figs["deciles"], "Change in post-tax income by pre-tax income decile", "deciles")
        sec += (f"<p>Each seed's workers matched by id, group means over seeds with {ctx['level']} % paired "
                "t intervals over seeds (CI columns; blank with one seed).</p>")
        if ctx["reliability"]:
            sec += f"<p class='warn'>{_e(ctx['reliability'])}</p>"
        employment = has_employment(inc)
        if employment:
            sec += f"<p>{_e(employment_incidence_text(ctx['level']))}</p>"
        for v in dict.fromkeys(inc["variant"]):
            sec += f"<h3>{_e(v)} vs {_e(exp.baseline)}</h3>"
            for grouping, label in stats.GROUP_COLUMNS.items():
                t = inc[(inc["variant"] == v) & (inc["grouping"] == grouping)]
                if t.empty:
                    continue
                shown = t.drop(columns=["variant"])
                if grouping == "household_type":
                    shown = shown.assign(group=[stats.HH_TYPE_LABELS.get(g, g) for g in shown["group"]])
                tbl = html_table(incidence_view(shown), table_id=f"incidence-{v}-{grouping}")
                if employment:
                    tbl += ("<p class='note'>Who works:</p>"
                            + html_table(employment_view(t.drop(columns=["variant"])),
                                         table_id=f"employment-{v}-{grouping}"))
                if grouping in ("income_decile", "wage_decile"):
                    sec += f"<h4>by {_e(label)}</h4>{tbl}"
                else:
                    sec += f"<details><summary>by {_e(label)}</summary>{tbl}</details>"
        sections.append(("incidence", "Incidence", sec))
    else:
        sections.append(("incidence", "Incidence", "<p class='note'>Needs a baseline and at least one other "
                         "variant with agents tables (output.agents_table).</p>"))
    if "incomes" in figs:
        sections.append(("incomes", "Incomes", html_figure(figs["incomes"], f"Incomes under {exp.baseline}, final year", "incomes")))
    walls = {v: float(g["wall_seconds"].sum()) for v, g in exp.index.groupby("variant")} \
        if "wall_seconds" in exp.index else {}
    tel = telemetry_table(st["years"], walls)
    sc = exp.meta.get("scenario") or exp.scenario(exp.variants[0])
    variants = "; ".join(f"{label}: {changes_text(c)}" for label, c in ctx["changes"].items()) \
        or ", ".join(exp.variants)
    status = exp.index.groupby("status").size().to_dict()
    meta_rows = [("kind", exp.kind), ("directory", exp.root), ("seeds", ", ".join(map(str, exp.seeds))),
                 ("variants", variants), ("baseline", exp.baseline),
                 ("runs", ", ".join(f"{k}: {v}" for k, v in status.items())),
                 ("executor", json.dumps(exp.meta.get("executor", {}))),
                 ("started", exp.meta.get("started")), ("finished", exp.meta.get("finished")),
                 ("git revision", exp.meta.get("git_revision")), *_model_rows(sc)]
    versions = exp.meta.get("versions") or exp.run(exp.index["variant"].iloc[0], int(exp.index["seed"].iloc[0])).manifest.get("versions", {})
    sections.append(("provenance", "Provenance", _provenance(sc, meta_rows, versions, tel)))
    return page(ctx["title"], ctx["subtitle"], sections)
