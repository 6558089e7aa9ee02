"""Policy reports for a run, a comparison or an experiment: a Markdown page with PNG
figures and a self-contained HTML page (:mod:`simulator.report.html`).

``econsim report DIR`` writes ``DIR/report/report.md`` (plus PNG figures) and
``DIR/report/report.html`` (figures embedded):

* a single run: the per-year table (objective, every welfare function, revenue, hours,
  Gini, rates; with an extensive margin the employment rate and the hours of the
  employed), the bracket rates over time, objective and revenue over time, and the
  final year's distribution of pre- and post-tax income; "Who works" (employment, hours
  and participation tax rates by potential-wage decile and household type, employment
  targets) for a run with an extensive margin;
* a comparison or an experiment (variants x seeds): first the verdict (per comparison
  with the baseline: the winner on the objective, the consumption-equivalent gain with
  its interval, revenue, who gains and loses, whether the difference is distinguishable
  from zero, caveats), then every variant's final-year outcome (mean over seeds) with
  the paired difference from the baseline and its paired t interval, outcomes over
  time, final schedules, incidence with intervals (with an extensive margin also who
  starts and stops working, by potential-wage decile and household type), the variants'
  changes (see :mod:`simulator.experiments.stats`).

Numbers come from the runs' parquet files and the statistics module; the statistics
tables are also written to the report folder as parquet files.

The labels, formats and figures both pages use are in :mod:`simulator.report.common`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from simulator.errors import UserError
from simulator.experiments import experiment_stats, load_experiment
from simulator.report.common import (
    SWF_LABELS,
    changes_text,
    employment_incidence_text,
    fork_section,
    md_table,
    participation_sections,
    png_bytes,
    run_bracket_labels,
    run_figures,
    run_years_view,
    verdict_lines,
    world_sections,
)
from simulator.report.html import experiment_context, render_experiment, render_run
from simulator.results import load_run
from simulator.validity.report import markdown_section


# --------------------------------------------------------------------------- run
def run_report(run_dir: Path, out: Path) -> Path:
    res = load_run(run_dir)
    y = res.years
    if y.empty:
        raise UserError(f"{run_dir}: the run has no completed tax year to report")
    labels = run_bracket_labels(res.manifest.get("scenario", {}))
    _make_dir(out)
    sc = res.manifest.get("scenario", {})
    lines = [
        f"# Run report: {sc.get('name', run_dir.name)}",
        "",
        f"- status: **{res.manifest.get('status')}**, seed {res.manifest.get('seed')}, "
        f"{len(y)} tax years, started {res.manifest.get('started')}",
        f"- workers: {len(res.population) if res.population is not None else '?'} "
        f"({sc.get('population', {}).get('source', '?')}), policy "
        f"{sc.get('workers', {}).get('policy', '?')}; planner {y['planner'].iloc[-1]}; "
        f"objective {y['objective_swf'].iloc[-1]}",
        *[f"- warning: {w}" for w in res.manifest.get("warnings") or []],
        *([f"- failed: {res.manifest.get('reason')}"] if res.manifest.get("status") == "failed" else []),
        f"- brackets (taxable income, $/yr): {', '.join(labels)}",
        "",
        "## Tax years",
        "",
    ]
    lines += [md_table(run_years_view(y)), "", "## Every welfare function", ""]
    swf = y[["year", *[c for c in SWF_LABELS if c in y]]].rename(columns=SWF_LABELS)
    lines += [md_table(swf), ""]
    for name, fig in run_figures(res, labels).items():
        (out / f"{name}.png").write_bytes(png_bytes(fig))
        lines += [f"![{name}]({name}.png)", ""]
    world = world_sections(res)
    if world is not None:
        lines += world_markdown(world, out)
    who = participation_sections(res)
    if who is not None:
        lines += who_works_markdown(who)
    lines += markdown_section(run_dir)
    lines += fork_section(res)
    if res.manifest.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in res.manifest["notes"]] + [""]
    page = out / "report.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    return page


def world_markdown(world, out: Path) -> list[str]:
    """The us_current_law sections of a run (``common.world_sections``): rates by household
    type (tables and ``household_rates.png``), the net-tax decomposition, the deciles."""
    (out / "household_rates.png").write_bytes(png_bytes(world["figure"]))
    lines = ["## Effective tax rates by household type", "", world["rates_text"], "",
             "Effective marginal tax rate (%) at own earnings:", "", md_table(world["emtr"]), "",
             "Average net tax rate of own earnings (%):", "", md_table(world["atr"]), "",
             "![household_rates](household_rates.png)", ""]
    if world["decomposition"] is not None:
        lines += ["## Net tax, final year", "", world["decomposition_text"], "",
                  md_table(world["decomposition"]), ""]
        if world["recipients_text"]:
            lines += [world["recipients_text"], ""]
    if world["deciles"] is not None:
        lines += ["## By income decile, final year", "", world["deciles_text"], "",
                  md_table(world["deciles"]), ""]
    return lines


def who_works_markdown(who) -> list[str]:
    """The "Who works" section of a run with an extensive margin (``common.participation_sections``)."""
    lines = ["## Who works, final year", "", who["text"], "", "By potential-wage decile:", "",
             md_table(who["deciles"]), ""]
    if who["households"] is not None:
        lines += ["By household type:", "", md_table(who["households"]), ""]
    if who["targets"] is not None:
        lines += [who["targets_text"], "", md_table(who["targets"]), ""]
        if who["cells"] is not None:  # a cell name may hold "|"; escaped, it stays one column
            cells = who["cells"].assign(cell=[c.replace("|", "\\|") for c in who["cells"]["cell"]])
            lines += [md_table(cells), ""]
    return lines


# --------------------------------------------------------------------------- experiment
def experiment_report(root: Path, out: Path, baseline: str | None = None) -> Path:
    exp = load_experiment(root, baseline)
    st = experiment_stats(exp)
    _make_dir(out)
    ctx = experiment_context(exp, st)
    for name in ("final", "differences", "ce", "incidence", "verdict", "tax_rates"):
        if len(st[name]):
            st[name].to_parquet(out / f"{name}.parquet", index=False)
    alerts = [f"- **{a}**" for a in exp.alerts()]
    lines = [f"# {ctx['title']}", "", ctx["subtitle"], "", *alerts, *([""] if alerts else []),
             *verdict_md(ctx),
             "## Summary", "",
             f"Final tax year, mean over seeds; differences from **{exp.baseline}** on the same "
             f"seeds with {ctx['level']} % paired Student-t intervals over seeds. ★ best variant of "
             "each welfare function.",
             "", md_table(ctx["means_view"]), "", "## Differences from the baseline", "",
             *([f"**{ctx['reliability']}**", ""] if ctx["reliability"] else []),
             md_table(ctx["diff_view"]), "", *[f"- {c}" for c in ctx["caveats"]],
             *([""] if ctx["caveats"] else [])]
    for name, fig in ctx["figures"].items():
        (out / f"{name}.png").write_bytes(png_bytes(fig))
        lines += [f"![{name}]({name}.png)", ""]
    if ctx["decile_view"] is not None:
        lines += ["## Incidence by pre-tax income decile", "",
                  f"Group means over seeds; CI: {ctx['level']} % paired t interval over seeds (blank "
                  "with one seed).", "", md_table(ctx["decile_view"]), ""]
    for k, (label, view) in enumerate(ctx["employment_views"].values()):
        lines += [f"## Employment by {label}", ""]
        if k == 0:
            lines += [employment_incidence_text(ctx["level"]), ""]
        lines += [md_table(view), ""]
    if ctx["changes"]:
        lines += ["## Variants", "", *[f"- **{label}**: {changes_text(c)}" for label, c in ctx["changes"].items()], ""]
    lines += ["Report with every table: report.html", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    (out / "report.html").write_text(render_experiment(ctx), encoding="utf-8")
    return page


def verdict_md(ctx) -> list[str]:
    """The verdict block at the top of an experiment's page (``common.verdict_lines``)."""
    v = ctx["verdict"]
    if v is None or not len(v):
        return []
    lines = ["## Verdict", ""]
    for _, row in v.iterrows():
        head, details = verdict_lines(row, ctx["level"])
        lines += [f"**{head}**", "", *[f"- {t}" for t in details], ""]
    return lines


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}") from None


def write_report(path: str | Path, out: str | Path | None = None, baseline: str | None = None) -> Path:
    """Write report.md and report.html for a run, comparison or experiment directory.

    Returns the Markdown path.  If anything fails, a report folder this call created
    is removed again (no empty or half-written folder is left).
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: not a directory")
    if not any((path / f).exists() for f in ("experiment.json", "comparison.parquet", "manifest.json")):
        raise UserError(f"{path}: not a run, comparison or experiment directory")
    out_dir = Path(out) if out is not None else path / "report"
    created = not out_dir.exists()
    try:
        if (path / "experiment.json").exists() or (path / "comparison.parquet").exists():
            return experiment_report(path, out_dir, baseline)
        page = run_report(path, out_dir)
        (out_dir / "report.html").write_text(render_run(path), encoding="utf-8")
        return page
    except BaseException:
        if created and out_dir.exists():
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
