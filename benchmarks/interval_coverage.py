"""Coverage of intervals over seeds at few seeds, and the seeds a half-width needs.

    .venv/bin/python benchmarks/interval_coverage.py [--datasets 10000] [--real-seeds 60]
                                                     [--draws 2000] [--size 5000]

Three tables (the ones ``docs/experiments.md`` shows):

1. **Synthetic coverage**: for each distribution of per-seed paired differences and each
   number of seeds ``n``, ``--datasets`` experiments are drawn (fixed seed), each gets a
   nominal 95 % interval of the mean, and the table prints the share that holds the true
   mean.  Methods: ``t``, the paired Student-t interval the reports use
   (``simulator.experiments.stats.t_interval``); ``pct``, the percentile bootstrap the
   reports used before (500 resamples; ``stats.bootstrap_ci``'s definition, vectorised
   here); ``hall``, Student-t with Hall's (1992) skewness-correcting transformation.
2. **Real coverage**: ``scenarios/rational_baselines.yaml`` (census personas, rational
   workers), ``flat`` minus ``us_federal`` on seeds ``0 .. --real-seeds - 1`` (the population
   drawn from each seed, as in an experiment); the mean over all of them is taken as the
   truth and ``--draws`` random subsets of ``n`` seeds (without replacement) get intervals.
   Also the skewness of the per-seed differences.
3. **Seeds for a half-width**: the fewest seeds whose t interval has half-width ``h`` for
   a per-seed standard deviation ``s`` (``stats.seeds_for_half_width``,
   ``n ~ (t s / h)^2``), for ratios ``h / s``, and for the real ``s`` of table 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # _provenance (after the repo: benchmarks/personas.py)

import numpy as np  # noqa: E402
from _provenance import footer, header  # noqa: E402

from simulator.config.loading import load_scenario, shipped_scenarios_dir  # noqa: E402
from simulator.experiments import stats  # noqa: E402
from simulator.sim.model import EconomyModel  # noqa: E402

LEVEL = 0.95
DISTRIBUTIONS = {  # name -> (sampler(rng, shape), true mean, skewness)
    "normal": (lambda r, s: r.normal(0.0, 1.0, s), 0.0, 0.0),
    "t3 (heavy tails)": (lambda r, s: r.standard_t(3, s), 0.0, float("nan")),
    "lognormal s=0.25": (lambda r, s: r.lognormal(0.0, 0.25, s), float(np.exp(0.25**2 / 2)), 0.78),
    "lognormal s=0.5": (lambda r, s: r.lognormal(0.0, 0.5, s), float(np.exp(0.5**2 / 2)), 1.75),
    "exponential": (lambda r, s: r.exponential(1.0, s), 1.0, 2.0),
    "lognormal s=1": (lambda r, s: r.lognormal(0.0, 1.0, s), float(np.exp(0.5)), 6.18),
}
SEEDS = (2, 3, 5, 10, 20)


def percentile_bootstrap(x: np.ndarray, rng: np.random.Generator, resamples: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """``stats.bootstrap_ci`` for every row of ``x`` at once (resample the seeds of each
    row with replacement, quantiles of the resample means), in blocks of rows."""
    n = x.shape[1]
    lo, hi = np.empty(len(x)), np.empty(len(x))
    for start in range(0, len(x), 1000):
        block = x[start:start + 1000]
        idx = rng.integers(0, n, size=(resamples, n))
        means = block[:, idx].mean(axis=2)
        lo[start:start + 1000], hi[start:start + 1000] = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=1)
    return lo, hi


def hall_interval(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Student-t with Hall's (1992, JRSS B 54:221) transformation for skewness:
    ``g(T) = T + a T^2 / 3 + a^2 T^3 / 27 + a / 6`` with ``a = skewness / sqrt(n)``,
    inverted in closed form."""
    n = x.shape[1]
    m, s = x.mean(axis=1), x.std(axis=1, ddof=1)
    d = x - m[:, None]
    m2 = (d**2).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(m2 > 0, (d**3).mean(axis=1) / m2**1.5, 0.0) / np.sqrt(n)
    q = stats._t_quantile(LEVEL, n - 1)
    safe = np.where(np.abs(a) < 1e-9, 1.0, a)

    def ginv(v: float) -> np.ndarray:
        return np.where(np.abs(a) < 1e-9, v, (3 / safe) * (np.cbrt(1 + safe * (v - safe / 6)) - 1))

    se = s / np.sqrt(n)
    return m - ginv(q) * se, m - ginv(-q) * se


def synthetic_table(datasets: int) -> None:
    rng = np.random.default_rng(2026)
    print(f"1. Synthetic coverage of nominal {LEVEL:.0%} intervals ({datasets:,} experiments per cell; "
          "t / pct / hall, see the docstring)\n")
    print(f"{'per-seed differences':<22}{'skew':>6}  " + "".join(f"{f'{n} seeds':>21}" for n in SEEDS))
    for name, (draw, truth, skew) in DISTRIBUTIONS.items():
        cells = []
        for n in SEEDS:
            x = draw(rng, (datasets, n))
            lo, hi = stats.t_interval(x, LEVEL)
            c_t = np.mean((lo <= truth) & (truth <= hi))
            lo, hi = percentile_bootstrap(x, rng)
            c_p = np.mean((lo <= truth) & (truth <= hi))
            lo, hi = hall_interval(x) if n > 2 else stats.t_interval(x, LEVEL)
            c_h = np.mean((lo <= truth) & (truth <= hi))
            cells.append(f"{100 * c_t:5.1f} /{100 * c_p:5.1f} /{100 * c_h:5.1f}")
        sk = "inf" if not np.isfinite(skew) else f"{skew:.2f}"
        print(f"{name:<22}{sk:>6}  " + "".join(f"{c:>21}" for c in cells))
    print()


def real_differences(n_seeds: int, size: int) -> dict[str, np.ndarray]:
    """flat minus us_federal per seed, final tax year, rational_baselines."""
    path = shipped_scenarios_dir() / "rational_baselines.yaml"
    metrics = ("swf_utilitarian", "revenue", "gini_post_tax", "mean_hours")
    out: dict[str, list[float]] = {m: [] for m in metrics}
    for seed in range(n_seeds):
        rec = {}
        for label, sets in (("us_federal", ["planner.kind=us_federal"]),
                            ("flat", ["planner.kind=flat", "planner.rate=0.2"])):
            sc = load_scenario(path, ["compare=[]", f"run.seed={seed}", f"population.size={size}", *sets])
            model = EconomyModel(sc, agent_objects=False)
            for _ in range(sc.run.tax_years):
                model.run_year()
            rec[label] = model.history[-1]
        for m in metrics:
            out[m].append(float(rec["flat"][m]) - float(rec["us_federal"][m]))
    return {m: np.array(v) for m, v in out.items()}


def real_table(diffs: dict[str, np.ndarray], draws: int) -> None:
    n_all = len(next(iter(diffs.values())))
    rng = np.random.default_rng(7)
    print(f"2. Real coverage: rational_baselines, flat minus us_federal, truth = mean over {n_all} seeds, "
          f"{draws:,} random subsets per cell (t / pct)\n")
    print(f"{'metric':<18}{'mean':>11}{'sd':>11}{'skew':>7}  " + "".join(f"{f'{n} seeds':>15}" for n in (3, 5, 10)))
    for m, d in diffs.items():
        truth = float(d.mean())
        cells = []
        for n in (3, 5, 10):
            x = d[np.argsort(rng.random((draws, n_all)), axis=1)[:, :n]]
            lo, hi = stats.t_interval(x, LEVEL)
            c_t = np.mean((lo <= truth) & (truth <= hi))
            lo, hi = percentile_bootstrap(x, rng)
            c_p = np.mean((lo <= truth) & (truth <= hi))
            cells.append(f"{100 * c_t:5.1f} /{100 * c_p:5.1f}")
        c = d - d.mean()
        skew = float((c**3).mean() / (c**2).mean() ** 1.5)
        print(f"{m:<18}{d.mean():>11.4g}{d.std(ddof=1):>11.4g}{skew:>7.2f}  " + "".join(f"{c:>15}" for c in cells))
    print()


def half_width_table(diffs: dict[str, np.ndarray]) -> None:
    print(f"3. Seeds for a {LEVEL:.0%} t interval of half-width h (n ~ (t s / h)^2, s = sd of the per-seed "
          "differences)\n")
    ratios = (2.0, 1.0, 0.5, 0.25, 0.1)
    print(f"{'h / s':<10}" + "".join(f"{r:>8g}" for r in ratios))
    print(f"{'seeds':<10}" + "".join(f"{stats.seeds_for_half_width(1.0, r, LEVEL):>8d}" for r in ratios))
    d = diffs["swf_utilitarian"]
    s = float(d.std(ddof=1))
    print(f"\nrational_baselines flat - us_federal, utilitarian welfare (log utility: 0.01 = about 1 % of "
          f"consumption): s = {s:.4f}")
    for h in (0.02, 0.01, 0.005, 0.0025):
        print(f"  half-width {h:<7g} (about {100 * h:g} % consumption): "
              f"{stats.seeds_for_half_width(s, h, LEVEL)} seeds")
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=10_000, help="synthetic experiments per cell")
    ap.add_argument("--real-seeds", type=int, default=60, help="seeds of the real experiment (the truth)")
    ap.add_argument("--draws", type=int, default=2000, help="random seed subsets per cell of table 2")
    ap.add_argument("--size", type=int, default=5000, help="workers of the real experiment")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    print(header(__file__, argv))
    print()
    synthetic_table(args.datasets)
    diffs = real_differences(args.real_seeds, args.size)
    real_table(diffs, args.draws)
    half_width_table(diffs)
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
