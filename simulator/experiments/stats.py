"""Statistics of paired experiments: pure functions over run tables.

Inputs are the tables runs write (``years.parquet`` rows, ``agents.parquet`` rows of
one tax year joined with ``population.parquet``); nothing here reads files.

Formulas (see ``docs/experiments.md``):

* paired difference of variant ``v`` against the baseline ``b`` on seed ``s``:
  ``d_s = m_{v,s} - m_{b,s}`` for a metric ``m`` of the final tax year; reported as
  the mean over seeds ``mean(d)`` and a percentile bootstrap interval: resample the
  seeds ``B`` times with replacement (a seeded ``numpy`` generator), take the mean of
  each resample, and report the ``(1-level)/2`` and ``(1+level)/2`` quantiles;
* consumption equivalent: ``lambda`` solving ``W(u(c_b (1 + lambda), l_b)) = W_v``,
  the uniform proportional change of every worker's consumption in the baseline (hours
  held) that gives the variant's welfare, by Brent's method, per seed, in percent;
* incidence: per worker ``dc = c_v - c_b`` (post-tax income incl. rebate, dollars a
  year) and ``du = u_v - u_b``, averaged (population weights) within groups of the
  baseline's pre-tax income decile or a persona attribute; a worker gains (loses) when
  ``dc > 0.01 |c_b|`` (``dc < -0.01 |c_b|``);
* tax rate curves: ``ATR(z) = T(z)/z``, ``MTR(z) = T'(z)`` (right derivative) and the
  net average rate ``(T(z) - rebate)/z`` of a final schedule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from simulator.config.schema import AGE_EDGES
from simulator.economy import equivalent
from simulator.economy.tax import TaxSchedule
from simulator.economy.welfare import Outcome

#: welfare functions reported (``swf_<name>`` columns of ``years.parquet``); higher is better
SWF_METRICS: tuple[str, ...] = (
    "swf_utilitarian", "swf_inverse_income", "swf_inverse_income_sum", "swf_maxmin",
    "swf_atkinson", "swf_equality_productivity",
)
#: other outcomes reported (no direction of "better")
OTHER_METRICS: tuple[str, ...] = ("revenue", "mean_hours", "gini_post_tax")
METRICS: tuple[str, ...] = SWF_METRICS + OTHER_METRICS

GROUP_COLUMNS: dict[str, str] = {
    "income_decile": "pre-tax income decile",
    "occupation_name": "occupation group",
    "age_band": "age band",
    "sex": "sex",
    "education": "education",
    "state": "state",
}


# --------------------------------------------------------------------------- bootstrap
def bootstrap_ci(
    x: Sequence[float] | np.ndarray,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x`` (resampling its elements).

    Returns ``(nan, nan)`` with fewer than two finite values: one seed says nothing about
    seed-to-seed variation.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return float(lo), float(hi)


def paired_differences(
    final: pd.DataFrame,
    baseline: str,
    metrics: Sequence[str] = METRICS,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Variant minus baseline on the same seed, for every metric.

    ``final``: one row per (variant, seed) with the metric columns (the final tax
    year of each run).  Only seeds where both runs finished are paired.  Returns one
    row per (variant, metric): ``n_seeds, baseline_mean, variant_mean, diff_mean,
    ci_low, ci_high`` (the baseline itself included, with zero differences).
    """
    metrics = [m for m in metrics if m in final.columns]
    base = final[final["variant"] == baseline].set_index("seed")
    rows = []
    for variant in pd.unique(final["variant"]):
        v = final[final["variant"] == variant].set_index("seed")
        seeds = sorted(set(v.index) & set(base.index))
        for m in metrics:
            vb = base.loc[seeds, m].to_numpy(dtype=float)
            vv = v.loc[seeds, m].to_numpy(dtype=float)
            d = vv - vb
            lo, hi = bootstrap_ci(d, n_resamples, level, seed)
            rows.append({
                "variant": variant, "metric": m, "n_seeds": len(seeds),
                "baseline_mean": float(np.mean(vb)) if seeds else float("nan"),
                "variant_mean": float(np.mean(vv)) if seeds else float("nan"),
                "diff_mean": float(np.mean(d)) if seeds else float("nan"),
                "ci_low": lo, "ci_high": hi,
            })
    return pd.DataFrame(rows)


def variant_means(final: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every metric, one row per variant."""
    metrics = [m for m in metrics if m in final.columns]
    g = final.groupby("variant", sort=False)[metrics]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_sd"))
    out.insert(0, "n_seeds", g.size())
    return out.reset_index()


def best_variants(final: pd.DataFrame, metrics: Sequence[str] = SWF_METRICS) -> dict[str, str]:
    """The variant with the highest mean over seeds of each welfare function."""
    means = final.groupby("variant", sort=False)[[m for m in metrics if m in final]].mean()
    return {m: str(means[m].idxmax()) for m in means.columns if means[m].notna().any()}


# --------------------------------------------------------------------------- CE
def consumption_equivalent(
    base_agents: pd.DataFrame,
    target_welfare: float,
    utility,
    swf: str,
    params: dict | None = None,
    weights: np.ndarray | None = None,
) -> float:
    """Consumption-equivalent change (a fraction; x100 for percent).

    The ``lambda`` with ``W(u(c_b (1 + lambda), l_b)) = target_welfare``: scaling every
    worker's post-tax income (dollars a year) in the baseline by ``1 + lambda`` at
    unchanged hours gives the target welfare (the core's
    :func:`simulator.economy.equivalent.consumption_equivalent` on the baseline's agent
    rows).  ``nan`` when welfare does not move with consumption (``equality_productivity``:
    scale-free) or no ``lambda`` in (-0.999, 1e6) reaches the target.
    """
    if swf in ("equality_productivity", "revenue") or not np.isfinite(target_welfare):
        return float("nan")
    c = base_agents["post_tax"].to_numpy(dtype=float)
    h = base_agents["hours"].to_numpy(dtype=float)
    out = Outcome(hours=h, pre_tax=base_agents["pre_tax"].to_numpy(dtype=float),
                  tax=base_agents["tax"].to_numpy(dtype=float), rebate=0.0, post_tax=c,
                  utility=np.asarray(utility(c, h), dtype=float), weights=weights)
    try:
        return equivalent.consumption_equivalent(out, target_welfare, utility, swf, params, max_gain=1e6)
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------- incidence
def income_deciles(income: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Decile 1..10 of each worker in the (weighted) income distribution.

    Workers are ranked by income (ties by position); the decile is that of the midpoint
    of the worker's weight in the cumulative distribution.
    """
    income = np.asarray(income, dtype=float)
    w = np.ones_like(income) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(income, kind="stable")
    cum = np.cumsum(w[order]) - w[order] / 2.0
    dec = np.empty(income.size, dtype=int)
    dec[order] = np.minimum((10.0 * cum / w.sum()).astype(int), 9) + 1
    return dec


def age_bands(age: pd.Series | np.ndarray) -> pd.Categorical:
    """Ten-year age bands ``16-24, 25-34, ..., 65+``."""
    labels = [f"{a}-{b - 1}" for a, b in zip(AGE_EDGES[:-1], AGE_EDGES[1:], strict=True)] + [f"{AGE_EDGES[-1]}+"]
    return pd.cut(np.asarray(age, dtype=float), [*AGE_EDGES, np.inf], right=False, labels=labels)


def paired_workers(base: pd.DataFrame, variant: pd.DataFrame, population: pd.DataFrame) -> pd.DataFrame:
    """Baseline and variant outcomes of the same workers side by side, with groups.

    ``base``/``variant``: agents rows of one tax year (``id, pre_tax, post_tax,
    utility``, ...); ``population``: the workers (``id, weight`` and persona columns).
    """
    cols = ["id", "pre_tax", "post_tax", "utility", "hours", "tax"]
    m = base[cols].merge(variant[cols], on="id", suffixes=("_b", "_v"), validate="one_to_one")
    keep = [c for c in ("id", "weight", "occupation_name", "sex", "education", "state", "age")
            if c in population.columns]
    m = m.merge(population[keep], on="id", how="left", validate="one_to_one")
    if "weight" not in m:
        m["weight"] = 1.0
    m["income_decile"] = income_deciles(m["pre_tax_b"].to_numpy(), m["weight"].to_numpy())
    if "age" in m:
        m["age_band"] = age_bands(m["age"])
    m["d_post_tax"] = m["post_tax_v"] - m["post_tax_b"]
    m["d_utility"] = m["utility_v"] - m["utility_b"]
    rel = m["d_post_tax"] / m["post_tax_b"].abs().where(m["post_tax_b"] != 0, np.nan)
    m["gains"] = (rel > 0.01).astype(float)
    m["loses"] = (rel < -0.01).astype(float)
    return m


def incidence(paired: pd.DataFrame, by: str) -> pd.DataFrame:
    """Weighted incidence of one (variant, seed) pair by group ``by`` (and ``all``).

    Columns: ``group, workers_share`` (share of the population weight), ``pre_tax_b``
    and ``post_tax_b`` (baseline means, dollars a year), ``d_post_tax`` (mean change,
    dollars a year), ``d_post_tax_pct`` (total change over total baseline post-tax
    income, percent), ``d_utility`` (mean change), ``share_gaining``/``share_losing``
    (more than 1 % of baseline post-tax income).
    """
    w = paired["weight"].to_numpy(dtype=float)
    df = paired.assign(_w=w, _wpre=w * paired["pre_tax_b"], _wpost=w * paired["post_tax_b"],
                       _wd=w * paired["d_post_tax"], _wdu=w * paired["d_utility"],
                       _wg=w * paired["gains"], _wl=w * paired["loses"])
    sums = ["_w", "_wpre", "_wpost", "_wd", "_wdu", "_wg", "_wl"]
    g = df.groupby(by, observed=True, sort=True)[sums].sum()
    g.loc["all"] = df[sums].sum()
    out = pd.DataFrame({
        "group": [str(i) for i in g.index],
        "workers_share": g["_w"] / w.sum(),
        "pre_tax_b": g["_wpre"] / g["_w"],
        "post_tax_b": g["_wpost"] / g["_w"],
        "d_post_tax": g["_wd"] / g["_w"],
        "d_post_tax_pct": 100.0 * g["_wd"] / g["_wpost"],
        "d_utility": g["_wdu"] / g["_w"],
        "share_gaining": g["_wg"] / g["_w"],
        "share_losing": g["_wl"] / g["_w"],
    }).reset_index(drop=True)
    return out


def mean_over_seeds(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Average per-seed incidence tables group by group (each seed counts once)."""
    if not tables:
        return pd.DataFrame()
    cat = pd.concat(tables, ignore_index=True)
    order = list(dict.fromkeys(cat["group"]))
    out = cat.groupby("group", sort=False).mean(numeric_only=True)
    out["n_seeds"] = cat.groupby("group", sort=False).size()
    return out.loc[order].reset_index()


# --------------------------------------------------------------------------- rates
def tax_rate_curves(
    thresholds: Sequence[float], rates: Sequence[float], incomes: np.ndarray | None = None,
    rebate: float = 0.0,
) -> pd.DataFrame:
    """Average, marginal and net average tax rates of a schedule at ``incomes``.

    ``incomes`` in dollars a year (default: 200 points from $1,000 to 2.5x the top
    threshold, log-spaced, plus every threshold); ``rebate`` per person, dollars a year.
    """
    sched = TaxSchedule(list(thresholds), list(rates))
    if incomes is None:
        top = max(float(max(thresholds)), 1.0)
        incomes = np.unique(np.concatenate([np.geomspace(1_000.0, 2.5 * top, 200),
                                            [t for t in thresholds if t > 0]]))
    z = np.asarray(incomes, dtype=float)
    tax = np.asarray(sched.tax(z), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        atr = np.where(z > 0, tax / z, np.nan)
        net = np.where(z > 0, (tax - rebate) / z, np.nan)
    return pd.DataFrame({"income": z, "tax": tax, "average_rate": atr,
                         "marginal_rate": np.asarray(sched.marginal_rate(z), dtype=float),
                         "net_average_rate": net})


def bracket_labels(thresholds: Sequence[float]) -> list[str]:
    """``$0-11,600``, ``$11,600-47,150``, ..., ``$609,350+`` (dollars a year)."""
    t = [float(x) for x in thresholds]
    out = [f"${a:,.0f}–{b:,.0f}" for a, b in zip(t[:-1], t[1:], strict=True)]
    return out + [f"${t[-1]:,.0f}+"]
