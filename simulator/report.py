"""Policy reports: a Markdown page with tables and plots for a run or a comparison.

``econsim report RUN_DIR`` writes ``RUN_DIR/report/report.md`` plus PNG figures:

* a single run: the per-year table (objective, every welfare function, revenue, hours,
  Gini, rates), the bracket rates over time, objective and revenue over time, and the
  final year's distribution of pre- and post-tax income;
* a comparison (a directory with ``comparison.parquet``, from a scenario with
  ``compare:``): the variants' final-year outcomes side by side, their objective over
  time, and their final schedules.

Numbers come straight from the run's parquet files; nothing is recomputed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from simulator.errors import UserError  # noqa: E402
from simulator.results import load_run  # noqa: E402

SWF_LABELS = {
    "swf_utilitarian": "utilitarian",
    "swf_inverse_income": "inverse-income",
    "swf_maxmin": "max-min",
    "swf_atkinson": "Atkinson EDE $",
    "swf_equality_productivity": "equality x productivity",
}


def _md_table(df: pd.DataFrame, floatfmt: str = "{:,.4g}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            cells.append(floatfmt.format(v) if isinstance(v, float | np.floating) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rate_cols(df: pd.DataFrame) -> list[str]:
    return sorted((c for c in df.columns if c.startswith("rate_")), key=lambda c: int(c[5:]))


def _rates_text(row: pd.Series, cols: list[str]) -> str:
    return "/".join(f"{100 * row[c]:.0f}" for c in cols)


def _save(fig, path: Path) -> str:
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        if ax.get_xlabel() == "tax year":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def run_report(run_dir: Path, out: Path) -> Path:
    res = load_run(run_dir)
    y = res.years
    if y.empty:
        raise UserError(f"{run_dir}: the run has no completed tax year to report")
    rc = _rate_cols(y)
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
        "",
        "## Tax years",
        "",
    ]
    table = pd.DataFrame({
        "year": y["year"],
        "objective": y["objective"],
        "revenue $/person": y["revenue"],
        "hours/wk": y["mean_hours"],
        "Gini pre": y["gini_pre_tax"],
        "Gini post": y["gini_post_tax"],
        "rates %": [_rates_text(r, rc) for _, r in y.iterrows()],
    })
    if "fallback_rate" in y:
        table["fallback"] = y["fallback_rate"]
    lines += [_md_table(table), "", "## Every welfare function", ""]
    swf = y[["year", *[c for c in SWF_LABELS if c in y]]].rename(columns=SWF_LABELS)
    lines += [_md_table(swf), ""]

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for c in rc:
        ax.plot(y["year"], 100 * y[c], marker="o", label=f"bracket {int(c[5:]) + 1}")
    ax.set_xlabel("tax year")
    ax.set_ylabel("marginal rate (%)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Bracket rates")
    lines += [f"![rates]({_save(fig, out / 'rates.png')})", ""]

    fig, ax1 = plt.subplots(figsize=(6.5, 3.6))
    ax1.plot(y["year"], y["objective"], marker="o", color="C0")
    ax1.set_xlabel("tax year")
    ax1.set_ylabel(f"objective ({y['objective_swf'].iloc[-1]})", color="C0")
    ax2 = ax1.twinx()
    ax2.plot(y["year"], y["revenue"], marker="s", color="C1")
    ax2.set_ylabel("revenue per person ($/yr)", color="C1")
    ax1.set_title("Objective and revenue")
    lines += [f"![objective]({_save(fig, out / 'objective.png')})", ""]

    if res.agents is not None and len(res.agents):
        last = res.agents[res.agents["year"] == res.agents["year"].max()]
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        pos = np.concatenate([last["pre_tax"], last["post_tax"]])
        pos = pos[pos > 0]
        bins = np.logspace(np.log10(max(pos.min(), 1.0)), np.log10(pos.max() + 1), 40) if pos.size else 10
        ax.hist(last["pre_tax"], bins=bins, alpha=0.6, label="pre-tax")
        ax.hist(last["post_tax"], bins=bins, alpha=0.6, label="post-tax + rebate")
        ax.set_xscale("log")
        ax.set_xlabel("income ($/yr)")
        ax.set_ylabel("workers")
        ax.legend()
        ax.set_title(f"Incomes in tax year {int(last['year'].iloc[0])}")
        lines += [f"![incomes]({_save(fig, out / 'incomes.png')})", ""]
    from simulator.validity.report import markdown_section

    lines += markdown_section(run_dir)
    lines += fork_section(res)
    if res.manifest.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in res.manifest["notes"]] + [""]
    page = out / "report.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    return page


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
    cols = [c for c in ("objective", "revenue", "mean_hours", "gini_post_tax") if c in p and c in res.years]
    both = pd.merge(p.loc[p["year"] >= k, ["year", *cols]], res.years.loc[res.years["year"] >= k, ["year", *cols]],
                    on="year", how="outer", suffixes=(" parent", " fork"))
    for c in cols:
        both[f"{c} change"] = both[f"{c} fork"] - both[f"{c} parent"]
    both = both[["year", *[f"{c} {w}" for c in cols for w in ("parent", "fork", "change")]]]
    if p["objective_swf"].iloc[-1] != res.years["objective_swf"].iloc[-1]:
        head += [f"The objectives differ (parent {p['objective_swf'].iloc[-1]}, fork "
                 f"{res.years['objective_swf'].iloc[-1]}): compare them with care.", ""]
    return head + [_md_table(both), ""]


def comparison_report(root: Path, out: Path) -> Path:
    from simulator.results import read_parquet_checked

    table = read_parquet_checked(root / "comparison.parquet")
    rc = _rate_cols(table)
    lines = [f"# Policy comparison: {root.name}", "",
             "Final tax year of each variant (same population and seed).", ""]
    cols = ["variant", "planner", "objective", *[c for c in SWF_LABELS if c in table],
            "revenue", "mean_hours", "gini_post_tax"]
    view = table[[c for c in cols if c in table]].rename(columns=SWF_LABELS)
    view["rates %"] = [_rates_text(r, rc) for _, r in table.iterrows()]
    lines += [_md_table(view), ""]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for _, row in table.iterrows():
        y = load_run(Path(row["path"]) if Path(row["path"]).exists() else root / row["variant"]).years
        ax.plot(y["year"], y["objective"], marker="o", label=row["variant"])
    ax.set_xlabel("tax year")
    ax.set_ylabel("objective")
    ax.legend(fontsize=8)
    ax.set_title("Objective by variant")
    lines += [f"![objective]({_save(fig, out / 'objective.png')})", ""]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    x = np.arange(len(rc))
    width = 0.8 / max(len(table), 1)
    for j, (_, row) in enumerate(table.iterrows()):
        ax.bar(x + j * width, [100 * row[c] for c in rc], width, label=row["variant"])
    ax.set_xticks(x + 0.4 - width / 2, [f"b{int(c[5:]) + 1}" for c in rc])
    ax.set_ylabel("final marginal rate (%)")
    ax.legend(fontsize=8)
    ax.set_title("Final schedules")
    lines += [f"![schedules]({_save(fig, out / 'schedules.png')})", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    return page


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the report for a run or comparison directory; returns the Markdown path."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: not a directory")
    out_dir = Path(out) if out is not None else path / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out_dir}: {exc.strerror}") from None
    if (path / "comparison.parquet").exists():
        return comparison_report(path, out_dir)
    return run_report(path, out_dir)
