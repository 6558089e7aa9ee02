"""Statistics of paired experiments: pure functions over run tables.

Inputs are the tables runs write (``years.parquet`` rows, ``agents.parquet`` rows of
one tax year joined with ``population.parquet``); nothing here reads files.

Formulas (see ``docs/experiments.md``):

* paired difference of variant ``v`` against the baseline ``b`` on seed ``s``:
  ``d_s = m_{v,s} - m_{b,s}`` for a metric ``m`` of the final tax year; reported as
  the mean over seeds ``mean(d)`` and the paired Student-t interval
  ``mean(d) -+ t_{S-1,(1+level)/2} sd(d) / sqrt(S)`` over the ``S`` seeds
  (:func:`t_interval`; chosen by measured coverage, ``benchmarks/interval_coverage.py``);
* consumption equivalent: ``lambda`` solving ``W(u(c_b (1 + lambda), l_b)) = W_v``,
  the uniform proportional change of every worker's consumption in the baseline (hours
  held) that gives the variant's welfare, by Brent's method, per seed, in percent; the
  same t interval over seeds;
* incidence: per worker ``dc = c_v - c_b`` (post-tax income incl. rebate, dollars a
  year) and ``du = u_v - u_b``, averaged (population weights) within groups of the
  baseline's pre-tax income decile or a persona attribute; a worker gains (loses) when
  ``dc > 0.01 |c_b|`` (``dc < -0.01 |c_b|``); group means over seeds with t intervals;
  with an extensive margin (agents carry ``employed``) also the employment rate, the
  shares starting and stopping work and the change in hours, by group, potential-wage
  decile and household type among them;
* verdict: per variant, the winner on the objective when the interval of the paired
  difference excludes zero (:func:`verdict`);
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
OTHER_METRICS: tuple[str, ...] = ("revenue", "mean_hours", "gini_post_tax",
                                  # runs with an extensive margin only (absent columns are skipped)
                                  "employment_rate", "mean_hours_employed")
METRICS: tuple[str, ...] = SWF_METRICS + OTHER_METRICS

GROUP_COLUMNS: dict[str, str] = {
    "income_decile": "pre-tax income decile",
    # runs with an extensive margin only (agents carry ``employed``): :func:`paired_workers`
    "wage_decile": "potential-wage decile",
    "household_type": "household type",
    "occupation_name": "occupation group",
    "age_band": "age band",
    "sex": "sex",
    "education": "education",
    "state": "state",
}


# --------------------------------------------------------------------------- intervals
#: fewest seeds that give an interval over seeds at all (a t interval needs a standard
#: deviation); ``run.seeds`` lists shorter than this are refused (``config.schema``)
MIN_SEEDS = 2
#: below this many seeds the reports call an interval unreliable: its coverage rests on
#: the per-seed differences being close to normal, which 2-4 seeds cannot check, and
#: its width on a standard deviation estimated from 1-3 degrees of freedom
RELIABLE_SEEDS = 5
#: ``interval`` column of the tables: how every interval the reports show is made
INTERVAL_METHOD = "paired Student-t"


def t_interval(
    x: Sequence[float] | np.ndarray, level: float = 0.95, axis: int = -1,
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Student-t interval of the mean of ``x`` along ``axis`` (vectorised over the rest).

    ``mean(x) -+ t_{n-1,(1+level)/2} sd(x) / sqrt(n)`` with ``sd`` the sample standard
    deviation (``ddof=1``) and ``n`` the number of finite values along ``axis``; non-finite
    values are left out.  Exact for normal per-seed differences (Student 1908); see
    ``docs/experiments.md`` for its measured coverage on skewed and heavy-tailed ones.
    ``nan`` where fewer than :data:`MIN_SEEDS` values are finite; a point where they are
    all equal.  Scalars for a 1-d ``x``, arrays otherwise.
    """
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x)
    n = ok.sum(axis=axis)
    xs = np.where(ok, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=axis) / n
        dev = np.where(ok, x - np.expand_dims(mean, axis), 0.0)
        sd = np.sqrt((dev ** 2).sum(axis=axis) / (n - 1))
        q = _t_quantile(level, n - 1)
        half = q * sd / np.sqrt(n)
    lo = np.where(n >= MIN_SEEDS, mean - half, np.nan)
    hi = np.where(n >= MIN_SEEDS, mean + half, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def _t_quantile(level: float, df: np.ndarray | int) -> np.ndarray:
    """Two-sided Student-t critical value ``t_{df,(1+level)/2}`` (nan for ``df < 1``)."""
    from scipy.stats import t as student_t  # deferred: scipy.stats is slow to import (fast --help)

    df = np.asarray(df, dtype=float)
    return np.where(df >= 1, student_t.ppf((1.0 + level) / 2.0, np.maximum(df, 1.0)), np.nan)


def seeds_for_half_width(sd: float, half_width: float, level: float = 0.95, max_seeds: int = 100_000) -> int:
    """Fewest seeds ``n`` whose t interval has half-width at most ``half_width``.

    The smallest ``n >= 2`` with ``t_{n-1,(1+level)/2} sd / sqrt(n) <= half_width``
    (``n ~ (t sd / h)^2``, solved exactly since ``t`` falls with ``n``); ``sd`` is the
    standard deviation of the per-seed differences (from a pilot experiment) and
    ``half_width`` is in the same units.  ``max_seeds`` when even that many are not enough.
    """
    if not (np.isfinite(sd) and np.isfinite(half_width)) or half_width <= 0:
        raise ValueError("seeds_for_half_width needs a finite sd and a positive half-width")
    if sd == 0:
        return MIN_SEEDS
    n = np.arange(MIN_SEEDS, max_seeds + 1)
    ok = _t_quantile(level, n - 1) * abs(sd) / np.sqrt(n) <= half_width
    return int(n[np.argmax(ok)]) if ok.any() else max_seeds


def outlying_seeds(x: Sequence[float] | np.ndarray, seeds: Sequence[int], cut: float = 3.5) -> list[int]:
    """Seeds whose value is far from the others: modified z-score ``0.6745 |x - median| /
    MAD > cut`` (Iglewicz and Hoaglin 1993); none with fewer than 4 values or MAD 0.

    A t interval over seeds whose differences have such outliers (a skewed distribution
    of per-seed effects) covers the mean less often than its level says.
    """
    x = np.asarray(x, dtype=float)
    if x.size < 4:
        return []
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    if not np.isfinite(mad) or mad == 0:
        return []
    z = 0.6745 * np.abs(x - med) / mad
    return [int(s) for s, zi in zip(seeds, z, strict=True) if zi > cut]


def bootstrap_ci(
    x: Sequence[float] | np.ndarray,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x`` (resampling its elements).

    Not used by the reports any more: with 3-10 seeds it covers the mean far less often
    than ``level`` (about 84 % at 5 normal seeds, 50 % at 2; ``benchmarks/interval_coverage.py``),
    see :func:`t_interval`.  Kept for comparison.  Returns ``(nan, nan)`` with fewer than
    two finite values: one seed says nothing about seed-to-seed variation.
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
    level: float = 0.95,
) -> pd.DataFrame:
    """Variant minus baseline on the same seed, for every metric.

    ``final``: one row per (variant, seed) with the metric columns (the final tax
    year of each run).  Only seeds where both runs finished are paired.  Returns one
    row per (variant, metric): ``n_seeds, baseline_mean, variant_mean, diff_mean,
    diff_sd`` (standard deviation of the per-seed differences), ``ci_low, ci_high``
    (:func:`t_interval` of the per-seed differences; nan below :data:`MIN_SEEDS`) and
    ``outliers`` (:func:`outlying_seeds`, comma-separated), the baseline itself included
    with zero differences.
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
            lo, hi = t_interval(d, level)
            rows.append({
                "variant": variant, "metric": m, "n_seeds": len(seeds),
                "baseline_mean": float(np.mean(vb)) if seeds else float("nan"),
                "variant_mean": float(np.mean(vv)) if seeds else float("nan"),
                "diff_mean": float(np.mean(d)) if seeds else float("nan"),
                "diff_sd": float(np.std(d, ddof=1)) if len(seeds) >= MIN_SEEDS else float("nan"),
                "ci_low": lo, "ci_high": hi,
                "outliers": ", ".join(map(str, outlying_seeds(d, seeds))),
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


def reliability(n_seeds: int) -> str:
    """``"no interval"`` below :data:`MIN_SEEDS` paired seeds, ``"unreliable"`` below
    :data:`RELIABLE_SEEDS`, else ``"ok"``."""
    if n_seeds < MIN_SEEDS:
        return "no interval"
    return "unreliable" if n_seeds < RELIABLE_SEEDS else "ok"


def verdict(
    diffs: pd.DataFrame,
    ce: pd.DataFrame,
    incidence_table: pd.DataFrame,
    baseline: str,
    objective: str,
    level: float = 0.95,
) -> pd.DataFrame:
    """The headline of an experiment: one row per variant other than the baseline.

    ``diffs``: :func:`paired_differences`; ``ce``: mean consumption equivalents with
    ``ce_pct_mean, ce_low, ce_high`` per (variant, metric); ``incidence_table``: incidence
    by grouping with intervals (:func:`mean_over_seeds`), may be empty; ``objective``: the
    welfare function the planners maximise (``utilitarian``, ...).  Columns:

    * ``metric`` (``swf_<objective>``), ``n_seeds``, ``diff_mean, ci_low, ci_high``;
    * ``distinguishable``: the interval excludes zero; ``winner``: the variant or the
      baseline when it does, ``""`` when it does not; ``higher``: the one with the higher
      mean (also on one seed); ``reliability`` (:func:`reliability`); ``outliers``;
    * ``seeds_needed``: seeds whose t interval would have half-width ``|diff_mean|``
      (:func:`seeds_for_half_width`, ``sd`` from these seeds), when not distinguishable;
    * ``ce_pct, ce_low, ce_high`` (percent), ``revenue_diff, revenue_low, revenue_high``
      (dollars a year per person);
    * ``gaining_deciles`` / ``losing_deciles``: pre-tax income deciles whose post-tax
      income rises / falls (interval above / below zero; the sign of the mean on one
      seed), comma-separated; ``share_gaining`` / ``share_losing``: population shares
      gaining / losing more than 1 % of post-tax income (mean over seeds).
    """
    metric = f"swf_{objective}"
    rows = []
    for variant in pd.unique(diffs["variant"]):
        if variant == baseline:
            continue
        d = diffs[diffs["variant"] == variant].set_index("metric")
        if metric not in d.index:
            continue
        r = d.loc[metric]
        n = int(r["n_seeds"])
        lo, hi, mean = float(r["ci_low"]), float(r["ci_high"]), float(r["diff_mean"])
        dist = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
        higher = variant if mean > 0 else baseline if mean < 0 else ""
        needed = -1
        sd = float(r.get("diff_sd", np.nan))
        if not dist and n >= MIN_SEEDS and np.isfinite(sd) and sd > 0 and mean != 0:
            needed = seeds_for_half_width(sd, abs(mean), level)
        c = ce[(ce["variant"] == variant) & (ce["metric"] == metric)] if len(ce) else ce
        rev = d.loc["revenue"] if "revenue" in d.index else None
        row = {
            "variant": variant, "baseline": baseline, "metric": metric, "n_seeds": n,
            "diff_mean": mean, "ci_low": lo, "ci_high": hi, "distinguishable": dist,
            "winner": (variant if mean > 0 else baseline) if dist else "", "higher": higher,
            "reliability": reliability(n), "outliers": str(r.get("outliers", "") or ""),
            "seeds_needed": needed,
            "ce_pct": float(c["ce_pct_mean"].iloc[0]) if len(c) else float("nan"),
            "ce_low": float(c["ce_low"].iloc[0]) if len(c) else float("nan"),
            "ce_high": float(c["ce_high"].iloc[0]) if len(c) else float("nan"),
            "revenue_diff": float(rev["diff_mean"]) if rev is not None else float("nan"),
            "revenue_low": float(rev["ci_low"]) if rev is not None else float("nan"),
            "revenue_high": float(rev["ci_high"]) if rev is not None else float("nan"),
            "gaining_deciles": "", "losing_deciles": "",
            "share_gaining": float("nan"), "share_losing": float("nan"),
        }
        if len(incidence_table):
            inc = incidence_table[(incidence_table["variant"] == variant)
                                  & (incidence_table["grouping"] == "income_decile")]
            dec = inc[inc["group"] != "all"]
            if len(dec):
                mid = dec["d_post_tax_pct"].to_numpy(float)
                low = dec["d_post_tax_pct_low"].to_numpy(float) if "d_post_tax_pct_low" in dec else np.full(len(dec), np.nan)
                high = dec["d_post_tax_pct_high"].to_numpy(float) if "d_post_tax_pct_high" in dec else np.full(len(dec), np.nan)
                has = np.isfinite(low)
                gain = np.where(has, low > 0, mid > 0)
                lose = np.where(has, high < 0, mid < 0)
                groups = dec["group"].astype(str).to_numpy()
                row["gaining_deciles"] = ",".join(groups[gain])
                row["losing_deciles"] = ",".join(groups[lose])
            alls = inc[inc["group"] == "all"]
            if len(alls):
                row["share_gaining"] = float(alls["share_gaining"].iloc[0])
                row["share_losing"] = float(alls["share_losing"].iloc[0])
        rows.append(row)
    cols = ["variant", "baseline", "metric", "n_seeds", "diff_mean", "ci_low", "ci_high", "distinguishable",
            "winner", "higher", "reliability", "outliers", "seeds_needed", "ce_pct", "ce_low", "ce_high",
            "revenue_diff", "revenue_low", "revenue_high", "gaining_deciles", "losing_deciles",
            "share_gaining", "share_losing"]
    return pd.DataFrame(rows, columns=cols)


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


#: household types of the extensive margin, in order: the suffixes of ``years.parquet``'s
#: ``employment_rate_hh_<type>`` columns (:func:`household_types`)
HH_TYPES: tuple[str, ...] = ("single", "single_parent", "married_spouse_not_working",
                             "married_spouse_working", "married_separate")
#: readable labels of :data:`HH_TYPES`
HH_TYPE_LABELS: dict[str, str] = {
    "single": "single, no children", "single_parent": "single parent",
    "married_spouse_not_working": "married, spouse not working",
    "married_spouse_working": "married, spouse working", "married_separate": "married filing separately",
}


def household_types(frame: pd.DataFrame) -> pd.Categorical | None:
    """Household type of each row (:data:`HH_TYPES`, an ordered categorical), or None.

    A ``household_type`` column is used as it is; otherwise it is read off the tax unit:
    ``filing_status`` 3 ``married_separate``; 2 ``married_spouse_working`` where
    ``spouse_wages > 0`` (else ``married_spouse_not_working``); 4 (head of household) or a
    single filer with ``children > 0`` ``single_parent``; else ``single``.  None without
    ``filing_status``.
    """
    if "household_type" in frame:
        return pd.Categorical(frame["household_type"].astype(str), categories=list(HH_TYPES), ordered=True)
    if "filing_status" not in frame:
        return None
    fs = frame["filing_status"].to_numpy(dtype=float)
    kids = frame["children"].to_numpy(dtype=float) if "children" in frame else np.zeros(len(frame))
    spouse = frame["spouse_wages"].to_numpy(dtype=float) if "spouse_wages" in frame else np.zeros(len(frame))
    kind = np.select(
        [fs == 3, (fs == 2) & (spouse > 0), fs == 2, (fs == 4) | (kids > 0)],
        ["married_separate", "married_spouse_working", "married_spouse_not_working", "single_parent"],
        "single")
    return pd.Categorical(kind, categories=list(HH_TYPES), ordered=True)


def paired_workers(base: pd.DataFrame, variant: pd.DataFrame, population: pd.DataFrame) -> pd.DataFrame:
    """Baseline and variant outcomes of the same workers side by side, with groups.

    ``base``/``variant``: agents rows of one tax year (``id, pre_tax, post_tax,
    utility``, ...); ``population``: the workers (``id, weight`` and persona columns).
    When both carry ``employed`` (a run with an extensive margin), the rows also get
    ``employed_b, employed_v`` and the groups ``wage_decile`` (weighted decile of the
    potential wage, the baseline agents' ``wage``, else the population's) and
    ``household_type`` (:func:`household_types` of the agents' or the population's
    household columns, where they exist).
    """
    cols = ["id", "pre_tax", "post_tax", "utility", "hours", "tax"]
    extensive = "employed" in base.columns and "employed" in variant.columns
    if extensive:
        cols.append("employed")
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
    if extensive:
        for side in ("b", "v"):
            m[f"employed_{side}"] = m[f"employed_{side}"].astype(bool)
        src = base if "wage" in base.columns else population if "wage" in population.columns else None
        if src is not None:
            wage = m[["id"]].merge(src[["id", "wage"]], on="id", how="left")["wage"].to_numpy(dtype=float)
            m["wage_decile"] = income_deciles(wage, m["weight"].to_numpy())
        hh_cols = ["household_type", "filing_status", "children", "spouse_wages"]
        src = base if any(c in base.columns for c in hh_cols[:2]) else population
        have = [c for c in hh_cols if c in src.columns]
        if have:
            hh = household_types(m[["id"]].merge(src[["id", *have]], on="id", how="left"))
            if hh is not None:
                m["household_type"] = hh
    return m


def incidence(paired: pd.DataFrame, by: str) -> pd.DataFrame:
    """Weighted incidence of one (variant, seed) pair by group ``by`` (and ``all``).

    Columns: ``group, workers_share`` (share of the population weight), ``pre_tax_b``
    and ``post_tax_b`` (baseline means, dollars a year), ``d_post_tax`` (mean change,
    dollars a year), ``d_post_tax_pct`` (total change over total baseline post-tax
    income, percent), ``d_utility`` (mean change), ``share_gaining``/``share_losing``
    (more than 1 % of baseline post-tax income).

    With ``employed_b``/``employed_v`` (:func:`paired_workers` of runs with an extensive
    margin) also, as shares of the group's weight (fractions; x100 for percent or
    percentage points): ``employment_b`` (baseline employment rate), ``d_employment``
    (variant minus baseline employment rate), ``share_starting`` (not working in the
    baseline, working in the variant), ``share_stopping`` (the reverse; ``d_employment =
    share_starting - share_stopping``), and in hours a week ``d_hours`` (mean change, every
    person, zeros included) and ``d_hours_employed`` (mean hours of those employed in
    the variant minus those employed in the baseline: composition included; nan where
    no one works on one side).
    """
    w = paired["weight"].to_numpy(dtype=float)
    df = paired.assign(_w=w, _wpre=w * paired["pre_tax_b"], _wpost=w * paired["post_tax_b"],
                       _wd=w * paired["d_post_tax"], _wdu=w * paired["d_utility"],
                       _wg=w * paired["gains"], _wl=w * paired["loses"])
    sums = ["_w", "_wpre", "_wpost", "_wd", "_wdu", "_wg", "_wl"]
    extensive = "employed_b" in paired and "employed_v" in paired
    if extensive:
        eb = paired["employed_b"].to_numpy(dtype=float)
        ev = paired["employed_v"].to_numpy(dtype=float)
        hb = paired["hours_b"].to_numpy(dtype=float)
        hv = paired["hours_v"].to_numpy(dtype=float)
        df = df.assign(_web=w * eb, _wev=w * ev, _wstart=w * (1 - eb) * ev, _wstop=w * eb * (1 - ev),
                       _wdh=w * (hv - hb), _wheb=w * eb * hb, _whev=w * ev * hv)
        sums += ["_web", "_wev", "_wstart", "_wstop", "_wdh", "_wheb", "_whev"]
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
    if extensive:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["employment_b"] = (g["_web"] / g["_w"]).to_numpy()
            out["d_employment"] = ((g["_wev"] - g["_web"]) / g["_w"]).to_numpy()
            out["share_starting"] = (g["_wstart"] / g["_w"]).to_numpy()
            out["share_stopping"] = (g["_wstop"] / g["_w"]).to_numpy()
            out["d_hours"] = (g["_wdh"] / g["_w"]).to_numpy()
            hev = np.where(g["_wev"] > 0, g["_whev"] / g["_wev"].where(g["_wev"] > 0), np.nan)
            heb = np.where(g["_web"] > 0, g["_wheb"] / g["_web"].where(g["_web"] > 0), np.nan)
            out["d_hours_employed"] = hev - heb
    return out


#: incidence columns that get an interval over seeds (``<column>_low``, ``<column>_high``)
INCIDENCE_INTERVALS: tuple[str, ...] = (
    "d_post_tax", "d_post_tax_pct", "d_utility",
    # the us_current_law world's components (present only in its experiments)
    "d_income_tax", "d_eitc", "d_ctc", "d_payroll_tax", "d_net_tax", "d_marginal_rate",
    # the extensive margin (present only where the agents carry ``employed``)
    "d_employment", "share_starting", "share_stopping", "d_hours",
)


def mean_over_seeds(tables: list[pd.DataFrame], level: float = 0.95) -> pd.DataFrame:
    """Average per-seed incidence tables group by group (each seed counts once).

    Adds ``<c>_low`` and ``<c>_high`` for every column ``c`` of
    :data:`INCIDENCE_INTERVALS`: the :func:`t_interval` of that group's per-seed values
    (nan with fewer than :data:`MIN_SEEDS` seeds), and ``n_seeds``.
    """
    if not tables:
        return pd.DataFrame()
    cat = pd.concat([t.assign(_seed=k) for k, t in enumerate(tables)], ignore_index=True)
    order = list(dict.fromkeys(cat["group"]))
    out = cat.drop(columns="_seed").groupby("group", sort=False).mean(numeric_only=True)
    out["n_seeds"] = cat.groupby("group", sort=False).size()
    out = out.loc[order]
    for c in INCIDENCE_INTERVALS:
        if c not in cat:
            continue
        wide = cat.pivot(index="group", columns="_seed", values=c).loc[order].to_numpy(dtype=float)
        lo, hi = t_interval(wide, level, axis=1)
        out[f"{c}_low"], out[f"{c}_high"] = lo, hi
    return out.reset_index()


# --------------------------------------------------------------------------- rates
def tax_rate_curves(
    schedule: TaxSchedule, incomes: np.ndarray | None = None, rebate: float = 0.0,
) -> pd.DataFrame:
    """Tax, average, marginal and net average tax rates of ``schedule`` at gross ``incomes``.

    ``schedule`` is the one the run charged (``TaxSchedule.with_rates`` of its base
    schedule, so its deduction is included); every column comes from
    ``TaxSchedule.curves``, the evaluation the simulation's ``tax`` uses, so ``tax`` is what
    the run charged at that income.  ``incomes`` in dollars a year (default
    ``schedule.curve_incomes()``: 200 log-spaced points from $1,000 to 2.5x the top
    bracket's gross lower edge, plus every kink); ``rebate`` per person, dollars a year.
    The ``deduction`` column (dollars a year) and ``deduction_note`` say what the curves
    include.
    """
    z = schedule.curve_incomes() if incomes is None else np.asarray(incomes, dtype=float)
    c = schedule.curves(z, rebate=rebate)
    return pd.DataFrame({"income": c["income"], "tax": c["tax"], "average_rate": c["average_rate"],
                         "marginal_rate": c["marginal_rate"], "net_average_rate": c["net_average_rate"],
                         "deduction": schedule.deduction, "deduction_note": schedule.deduction_note()})


def bracket_labels(thresholds: Sequence[float]) -> list[str]:
    """``$0-11,600``, ``$11,600-47,150``, ..., ``$609,350+`` (dollars a year)."""
    t = [float(x) for x in thresholds]
    out = [f"${a:,.0f}–{b:,.0f}" for a, b in zip(t[:-1], t[1:], strict=True)]
    return out + [f"${t[-1]:,.0f}+"]
