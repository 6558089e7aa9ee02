"""Reading an experiment (or a single run, or an older comparison) back, and the
statistics tables the report shows, all computed by :mod:`simulator.experiments.stats`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.config.builders import build_base_schedule, build_utility
from simulator.config.schema import ExperimentConfig, ObjectiveConfig, Scenario
from simulator.errors import UserError
from simulator.experiments import stats
from simulator.results import RunResults, load_run

FINISHED = ("completed", "completed_with_warnings")


@dataclass
class Experiment:
    """Runs of one experiment: ``index`` has ``variant, seed, path`` (absolute), ``status``."""

    root: Path
    kind: str  # "run" | "comparison" | "experiment"
    meta: dict[str, Any]
    index: pd.DataFrame
    baseline: str
    _runs: dict[str, RunResults] = field(default_factory=dict, repr=False)

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.index["variant"]))

    @property
    def seeds(self) -> list[int]:
        return sorted({int(s) for s in self.index["seed"]})

    def finished(self) -> pd.DataFrame:
        return self.index[self.index["status"].isin(FINISHED)]

    def run(self, variant: str, seed: int) -> RunResults:
        row = self.index[(self.index["variant"] == variant) & (self.index["seed"] == seed)]
        path = str(row["path"].iloc[0])
        if path not in self._runs:
            self._runs[path] = load_run(path)
        return self._runs[path]

    def alerts(self) -> list[str]:
        """What a reader must see first: the experiment's status when it is not a plain
        success, and one line per run that failed, was interrupted or completed with
        warnings (its reason or warnings), so means over fewer seeds never pass silently."""
        out = []
        status = self.meta.get("status")
        if status not in (None, "completed"):
            out.append(f"experiment {status}" + (f": {self.meta['reason']}" if self.meta.get("reason") else ""))
        for r in self.index.itertuples():
            if r.status == "completed":
                continue
            what = getattr(r, "reason", None)
            what = what if isinstance(what, str) and what else None
            if r.status == "completed_with_warnings":
                try:
                    what = "; ".join(load_run(r.path).manifest.get("warnings") or []) or what
                except UserError:
                    pass
            out.append(f"{r.variant} seed {int(r.seed)}: {r.status}" + (f": {what}" if what else "")
                       + ("" if r.status in FINISHED else " (left out of the statistics)"))
        return out

    def scenario(self, variant: str) -> dict[str, Any]:
        """The resolved scenario of a variant (from the manifest of one of its runs)."""
        row = self.finished()
        row = row[row["variant"] == variant]
        if row.empty:
            row = self.index[self.index["variant"] == variant]
        return self.run(variant, int(row["seed"].iloc[0])).manifest.get("scenario", {})


def load_experiment(path: str | Path, baseline: str | None = None) -> Experiment:
    """An experiment directory, an older comparison directory, or a single run."""
    root = Path(path)
    if (root / "experiment.json").exists():
        meta = json.loads((root / "experiment.json").read_text(encoding="utf-8"))
        index = pd.read_parquet(root / "index.parquet")
        index["path"] = [str(root / p) for p in index["path"]]
        kind = "experiment"
    elif (root / "comparison.parquet").exists():
        table = pd.read_parquet(root / "comparison.parquet")
        rows = []
        for _, r in table.iterrows():
            p = Path(r["path"]) if Path(r["path"]).exists() else root / r["variant"]
            man = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
            rows.append({"variant": r["variant"], "seed": int(man.get("seed", 0)), "path": str(p),
                         "status": man.get("status")})
        index = pd.DataFrame(rows)
        meta = {"name": root.name}
        kind = "comparison"
    elif (root / "manifest.json").exists():
        res = load_run(root)
        name = res.manifest.get("scenario", {}).get("name", root.name)
        index = pd.DataFrame([{"variant": name, "seed": int(res.manifest.get("seed", 0)),
                               "path": str(root), "status": res.status}])
        meta = {"name": name}
        kind = "run"
    else:
        raise UserError(f"{root}: not a run, comparison or experiment directory")
    labels = list(dict.fromkeys(index["variant"]))
    base = baseline or meta.get("baseline") or labels[0]
    if base not in labels:
        raise UserError(f"baseline {base!r} is not a variant (variants: {', '.join(labels)})")
    return Experiment(root=root, kind=kind, meta=meta, index=index, baseline=base)


def years_table(exp: Experiment) -> pd.DataFrame:
    """Every tax year of every finished run, with ``variant`` and ``seed`` columns."""
    parts = []
    for _, r in exp.finished().iterrows():
        y = exp.run(r["variant"], int(r["seed"])).years
        if len(y):
            parts.append(y.assign(variant=r["variant"], seed=int(r["seed"])))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def final_table(exp: Experiment) -> pd.DataFrame:
    """The final tax year of every finished run (one row per variant and seed)."""
    y = years_table(exp)
    if y.empty:
        return y
    last = y.sort_values("year", kind="stable").groupby(["variant", "seed"], sort=False).tail(1)
    order = {v: i for i, v in enumerate(exp.variants)}
    return last.sort_values(["variant", "seed"], key=lambda c: c.map(order) if c.name == "variant" else c,
                            kind="stable").reset_index(drop=True)


def _final_agents(run: RunResults) -> pd.DataFrame | None:
    a = run.agents
    if a is None or a.empty:
        return None
    return a[a["year"] == a["year"].max()].reset_index(drop=True)


def _utility_for(scenario: dict[str, Any]):
    return build_utility(Scenario.model_validate(scenario))


def consumption_equivalents(exp: Experiment, final: pd.DataFrame) -> pd.DataFrame:
    """CE % of every variant against the baseline, per seed and welfare function."""
    rows = []
    base_sc = exp.scenario(exp.baseline)
    utility = _utility_for(base_sc)
    obj = base_sc.get("planner", {}).get("objective", {})
    objective = ObjectiveConfig.model_validate(obj)
    for seed in sorted(set(final.loc[final["variant"] == exp.baseline, "seed"])):
        base_run = exp.run(exp.baseline, int(seed))
        agents = _final_agents(base_run)
        if agents is None:
            continue
        pop = base_run.population
        weights = None
        if pop is not None and "weight" in pop:
            weights = agents[["id"]].merge(pop[["id", "weight"]], on="id", how="left")["weight"].to_numpy(float)
        for _, r in final[final["seed"] == seed].iterrows():
            for m in stats.SWF_METRICS:
                if m not in r or not np.isfinite(r[m]):
                    continue
                swf = m[len("swf_"):]
                lam = stats.consumption_equivalent(agents, float(r[m]), utility, swf,
                                                   objective.params(swf), weights)
                rows.append({"variant": r["variant"], "seed": int(seed), "metric": m, "ce_pct": 100 * lam})
    return pd.DataFrame(rows, columns=["variant", "seed", "metric", "ce_pct"])


def ce_summary(ce: pd.DataFrame, cfg: dict[str, Any]) -> pd.DataFrame:
    """Mean CE % over seeds with its t interval (``stats.t_interval`` of the per-seed CE
    values, level ``experiment.confidence``), per variant and welfare function."""
    rows = []
    for (v, m), g in ce.groupby(["variant", "metric"], sort=False):
        lo, hi = stats.t_interval(g["ce_pct"].to_numpy(float), cfg["confidence"])
        vals = g["ce_pct"].to_numpy(float)
        rows.append({"variant": v, "metric": m, "n_seeds": int(np.isfinite(vals).sum()),
                     "ce_pct_mean": float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"),
                     "ce_low": lo, "ce_high": hi})
    return pd.DataFrame(rows, columns=["variant", "metric", "n_seeds", "ce_pct_mean", "ce_low", "ce_high"])


#: us_current_law incidence columns: change (variant minus baseline) of each worker's share of
#: its unit's income tax after credits, EITC, CTC + ACTC, employee payroll tax and net tax
#: (dollars a year), and of its effective marginal rate (fraction), from the agents' components
COMPONENT_CHANGES: dict[str, str] = {
    "income_tax": "d_income_tax", "eitc": "d_eitc", "ctc_actc": "d_ctc", "payroll_tax": "d_payroll_tax",
    "net_tax": "d_net_tax", "marginal_rate": "d_marginal_rate",
}
_COMPONENTS_NEEDED = ("income_tax", "eitc", "ctc", "actc", "payroll_tax", "net_tax", "marginal_rate")


def component_changes(base: pd.DataFrame, variant: pd.DataFrame, population: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per worker (``id``) the changes of :data:`COMPONENT_CHANGES` from ``base`` to ``variant``
    agents rows of one tax year; amounts are the worker's share of its unit's (1 /
    ``unit_earners`` of the population, so groups add up to population totals, each unit
    once), the marginal rate is the worker's own.  None unless both carry the components
    (the us_current_law world)."""
    if not all(c in base.columns and c in variant.columns for c in _COMPONENTS_NEEDED):
        return None
    cols = ["id", *_COMPONENTS_NEEDED]
    m = base[cols].merge(variant[cols], on="id", suffixes=("_b", "_v"), validate="one_to_one")
    share = np.ones(len(m))
    if population is not None and "unit_earners" in population:
        ue = m[["id"]].merge(population[["id", "unit_earners"]], on="id", how="left")["unit_earners"]
        share = 1.0 / np.clip(ue.fillna(1).to_numpy(float), 1, 2)
    for side in ("b", "v"):
        m[f"ctc_actc_{side}"] = m[f"ctc_{side}"] + m[f"actc_{side}"]
    out = pd.DataFrame({"id": m["id"]})
    for comp, name in COMPONENT_CHANGES.items():
        d = (m[f"{comp}_v"] - m[f"{comp}_b"]).to_numpy(float)
        out[name] = d if comp == "marginal_rate" else d * share
    return out


def _group_means(paired: pd.DataFrame, by: str, cols: list[str]) -> pd.DataFrame:
    """Weighted means of ``cols`` by group ``by`` and ``all``, groups named as
    ``stats.incidence`` names them."""
    w = paired["weight"].to_numpy(dtype=float)
    df = paired[[by]].assign(_w=w, **{c: w * paired[c].to_numpy(float) for c in cols})
    g = df.groupby(by, observed=True, sort=True)[["_w", *cols]].sum()
    g.loc["all"] = df[["_w", *cols]].sum()
    out = g[cols].div(g["_w"], axis=0)
    out.insert(0, "group", [str(i) for i in g.index])
    return out.reset_index(drop=True)


def incidence_tables(exp: Experiment, final: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Incidence of every variant against the baseline, by every grouping, mean over seeds
    with t intervals (``stats.mean_over_seeds``).  Runs whose agents carry ``employed``
    (an extensive margin) add the employment columns of ``stats.incidence`` and the
    ``wage_decile`` and ``household_type`` groupings (``stats.paired_workers``)."""
    out = []
    for v in exp.variants:
        if v == exp.baseline:
            continue
        per_group: dict[str, list[pd.DataFrame]] = {}
        for seed in sorted(set(final.loc[final["variant"] == v, "seed"])
                           & set(final.loc[final["variant"] == exp.baseline, "seed"])):
            b, r = exp.run(exp.baseline, int(seed)), exp.run(v, int(seed))
            ab, av = _final_agents(b), _final_agents(r)
            if ab is None or av is None or b.population is None:
                continue
            paired = stats.paired_workers(ab, av, b.population)
            changes = component_changes(ab, av, b.population)
            if changes is not None:
                paired = paired.merge(changes, on="id", how="left", validate="one_to_one")
            for col in stats.GROUP_COLUMNS:
                if col in paired:
                    t = stats.incidence(paired, col)
                    if changes is not None:
                        t = t.merge(_group_means(paired, col, list(COMPONENT_CHANGES.values())),
                                    on="group", how="left")
                    per_group.setdefault(col, []).append(t)
        for col, tables in per_group.items():
            t = stats.mean_over_seeds(tables, level)
            t.insert(0, "grouping", col)
            t.insert(0, "variant", v)
            out.append(t)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def rate_curves(exp: Experiment, final: pd.DataFrame) -> pd.DataFrame:
    """ATR/MTR curves of each variant's final schedule (rates averaged over seeds): the
    variant's base schedule (brackets and deduction, from its resolved scenario) with the
    final rates, as the runs charged it."""
    out = []
    for v in exp.variants:
        f = final[final["variant"] == v]
        if f.empty:
            continue
        base = build_base_schedule(Scenario.model_validate(exp.scenario(v)))
        sched = base.with_rates([float(f[f"rate_{i}"].mean()) for i in range(base.n_brackets)])
        rebate = float(f["rebate"].mean()) if "rebate" in f else 0.0
        out.append(stats.tax_rate_curves(sched, rebate=rebate).assign(variant=v))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def stats_config(exp: Experiment) -> dict[str, Any]:
    """Statistics settings from the scenario's ``experiment:`` section (or defaults); the
    intervals use ``confidence``."""
    sc = exp.meta.get("scenario") or exp.scenario(exp.variants[0])
    return ExperimentConfig.model_validate(sc.get("experiment", {})).model_dump()


def objective_of(final: pd.DataFrame) -> str:
    """The welfare function the planners maximised (``objective_swf`` of the runs)."""
    return str(final["objective_swf"].iloc[0]) if "objective_swf" in final and len(final) else "utilitarian"


def experiment_stats(exp: Experiment) -> dict[str, pd.DataFrame]:
    """Every table of the report: ``final``, ``means``, ``differences``, ``ce``,
    ``ce_runs``, ``incidence``, ``verdict`` (``stats.verdict``), ``tax_rates``, ``years``."""
    cfg = stats_config(exp)
    years = years_table(exp)
    final = final_table(exp)
    if final.empty:
        raise UserError(f"{exp.root}: no run has a completed tax year to report")
    level = cfg["confidence"]
    diffs = stats.paired_differences(final, exp.baseline, level=level)
    ce_runs = consumption_equivalents(exp, final)
    ce = ce_summary(ce_runs, cfg)
    inc = incidence_tables(exp, final, level)
    return {
        "years": years,
        "final": final,
        "means": stats.variant_means(final),
        "differences": diffs,
        "ce_runs": ce_runs,
        "ce": ce,
        "incidence": inc,
        "verdict": stats.verdict(diffs, ce, inc, exp.baseline, objective_of(final), level),
        "tax_rates": rate_curves(exp, final),
    }


def _num(v: float, sign: str = "") -> str:
    """Plain decimals (never exponents): whole numbers from 1,000, else 4 significant digits."""
    v = float(v)
    if not np.isfinite(v):
        return "-"
    if abs(v) >= 1000:
        return format(v, f"{sign},.0f")
    digits = 3 - int(np.floor(np.log10(abs(v)))) if v != 0 else 0
    return format(v, f"{sign},.{min(max(digits, 0), 8)}f")


def summary_text(root: str | Path, baseline: str | None = None) -> str:
    """Plain-text table: each variant's mean final-year outcome and the paired
    difference from the baseline with its interval."""
    exp = load_experiment(root, baseline)
    final = final_table(exp)
    cfg = stats_config(exp)
    diffs = stats.paired_differences(final, exp.baseline, level=cfg["confidence"])
    obj = objective_of(final)
    metrics = [f"swf_{obj}", "revenue", "mean_hours", "gini_post_tax"]
    if "employment_rate" in final:  # a run with an extensive margin (share employed)
        metrics.append("employment_rate")
    header = ["variant", "seeds"] + [m.replace("swf_", "") for m in metrics]
    lines = [header]
    for v in exp.variants:
        cells = [v + (" (baseline)" if v == exp.baseline else "")]
        d = diffs[diffs["variant"] == v].set_index("metric")
        cells.append(str(int(d["n_seeds"].iloc[0])) if len(d) else "0")
        for m in metrics:
            if m not in d.index:
                cells.append("-")
                continue
            r = d.loc[m]
            text = _num(r["variant_mean"])
            if v != exp.baseline:
                text += f" ({_num(r['diff_mean'], '+')}"
                if np.isfinite(r["ci_low"]):
                    text += f" [{_num(r['ci_low'], '+')}, {_num(r['ci_high'], '+')}]"
                text += ")"
            cells.append(text)
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    body = "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in lines)
    level = int(round(100 * cfg["confidence"]))
    n = int(diffs["n_seeds"].min()) if len(diffs) else 0
    note = ("" if stats.reliability(n) == "ok" else
            f"\nonly {n} paired seed{'s' if n != 1 else ''}: "
            + ("no interval" if n < stats.MIN_SEEDS else
               f"intervals are unreliable below {stats.RELIABLE_SEEDS} seeds") + " (docs/experiments.md)")
    return (f"\n== experiment: final tax year, mean over seeds (difference from {exp.baseline} "
            f"on the same seeds [{level} % paired t interval])\n{body}{note}")
