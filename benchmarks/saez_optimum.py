"""How far the Saez planner ends from the numerical optimum, on a shipped scenario.

    .venv/bin/python benchmarks/saez_optimum.py [--scenario rational_baselines]
        [--seeds 0 1 2 3 4] [--years 10] [--every 1]

For every seed the scenario's own ``saez`` and ``optimum`` variants (as shipped:
``scenarios/rational_baselines.yaml`` has Census personas, 5,000 rational workers with
log utility, a utilitarian objective, Saez with the measured elasticity re-measured
every year and ``saez_weights: objective``) run ``--years`` tax years on the same
population (same seed). The optimum is computed on the WHOLE population: its subsample
size (``planner.optimum_max_agents``) is set to the population size, so it is the true
optimum of the search, not one of a subsample.

Each year's gap is the consumption equivalent (``simulator.economy.equivalent``) of the
Saez year's outcome to the optimum year's welfare: the uniform % increase of everyone's
consumption, hours fixed, that would lift the Saez year to the optimum (negative: Saez
is above the optimum the search found). The table gives min / mean / max over seeds for
each tax year, then the seeds' last-year gaps and the rates of the first seed, and the
elasticity of taxable income the workers show around the starting schedule with the
rebate held fixed (what the Saez planner measures) and re-solved for each perturbation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # _provenance

import numpy as np  # noqa: E402
from _provenance import footer, header  # noqa: E402

from simulator.config.loading import load_scenario, resolve_scenario_path  # noqa: E402
from simulator.config.schema import Scenario  # noqa: E402
from simulator.economy.best_response import best_response, equilibrium  # noqa: E402
from simulator.economy.elasticity import estimate_elasticity  # noqa: E402
from simulator.economy.equivalent import consumption_equivalent  # noqa: E402
from simulator.sim.model import EconomyModel  # noqa: E402


def variants(scenario: str, seed: int, years: int) -> tuple[Scenario, Scenario]:
    """The scenario's ``saez`` variant and its ``optimum`` variant on the whole population."""
    base = load_scenario(resolve_scenario_path(scenario), [f"run.seed={seed}", f"run.tax_years={years}"])
    by_label = dict(base.variants(scenario))
    missing = {"saez", "optimum"} - set(by_label)
    if missing:
        raise SystemExit(f"error: {scenario}: no compare variant labelled {', '.join(sorted(missing))}")
    opt = by_label["optimum"]
    d = opt.model_dump(mode="json")
    d["planner"]["optimum_max_agents"] = opt.population.size  # the whole population
    return by_label["saez"], Scenario.model_validate(d)


def gaps(scenario: str, seed: int, years: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-year consumption-equivalent gap (fraction) of Saez to the optimum; the rates."""
    saez_sc, opt_sc = variants(scenario, seed, years)
    saez = EconomyModel(saez_sc, agent_objects=False)
    opt = EconomyModel(opt_sc, agent_objects=False)
    obj = saez.settings.planner.objective
    out = []
    for _ in range(years):
        saez.run_year()
        target = opt.run_year()["objective"]
        out.append(consumption_equivalent(saez.outcome, target, saez.utility, obj.swf, obj.params()))
    return np.array(out), np.asarray(saez.schedule.rates), np.asarray(opt.schedule.rates)


def elasticities(scenario: str, seed: int) -> tuple[float, float]:
    """The workers' ETI around the starting schedule: rebate held fixed, and re-solved."""
    saez_sc, _ = variants(scenario, seed, 1)
    m = EconomyModel(saez_sc, agent_objects=False)
    s0, w, u, hb, share = m.base_schedule, m.wages, m.utility, m.hours_bounds, m.rebate_share
    rebate = equilibrium(s0, w, u, share, hb, m.weights)[1]
    fixed = estimate_elasticity(lambda s: w * best_response(s, w, u, rebate, hb), s0, weights=m.weights)
    resolved = estimate_elasticity(lambda s: w * equilibrium(s, w, u, share, hb, m.weights)[0], s0,
                                   weights=m.weights)
    return fixed.value, resolved.value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="rational_baselines")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--every", type=int, default=1, help="print every Nth tax year (and the last)")
    args = ap.parse_args(argv)
    if args.years < 1 or args.every < 1 or not args.seeds:
        ap.error("--years and --every must be at least 1, and --seeds not empty")
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    rows = [gaps(args.scenario, s, args.years) for s in args.seeds]
    g = 100 * np.array([r[0] for r in rows])  # seeds x years, %
    saez_sc, opt_sc = variants(args.scenario, args.seeds[0], args.years)
    print(f"Saez planner vs the numerical optimum: {args.scenario} as shipped, "
          f"{saez_sc.population.size:,} {saez_sc.population.source} workers, seeds {args.seeds}; "
          f"optimum on all {opt_sc.planner.optimum_max_agents:,} workers")
    print("consumption-equivalent gap of the Saez year to the optimum's welfare, % "
          "(min / mean / max over seeds)")
    print(f"{'tax year':>8}  {'min':>6}  {'mean':>6}  {'max':>6}")
    for y in range(args.years):
        if y % args.every == 0 or y == args.years - 1:
            print(f"{y + 1:>8}  {g[:, y].min():>6.2f}  {g[:, y].mean():>6.2f}  {g[:, y].max():>6.2f}")
    print(f"years 2 on, all seeds: mean {g[:, 1:].mean():.2f} %, sd {g[:, 1:].std(ddof=1) if g[:, 1:].size > 1 else 0.0:.2f}, max {g[:, 1:].max():.2f} %"
          if args.years > 1 else "")
    print("last year by seed: " + ", ".join(f"{s}: {g[i, -1]:.2f} %" for i, s in enumerate(args.seeds)))
    print(f"seed {args.seeds[0]}, last year: Saez rates {np.round(100 * rows[0][1], 1).tolist()} %, "
          f"optimum {np.round(100 * rows[0][2], 1).tolist()} %")
    eti = np.array([elasticities(args.scenario, s) for s in args.seeds])
    print("measured ETI around the starting schedule (min / mean / max over seeds): rebate held fixed "
          f"{eti[:, 0].min():.3f} / {eti[:, 0].mean():.3f} / {eti[:, 0].max():.3f}, re-solved "
          f"{eti[:, 1].min():.3f} / {eti[:, 1].mean():.3f} / {eti[:, 1].max():.3f}")
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
