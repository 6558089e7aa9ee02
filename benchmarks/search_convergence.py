"""Convergence of the search planner (``planner.kind: search``) to the numerical optimum.

    .venv/bin/python benchmarks/search_convergence.py [--size 200] [--years 30] [--seeds 0 1 2]
                                                      [--evaluations 1 10]

The setup is ``scenarios/rational_baselines.yaml`` (Census personas, log utility with
Frisch elasticity 0.5, utilitarian objective, rational workers with rational
expectations, 2024 federal brackets) on a small population, with the LLM planner's
default constraints (rates in [0, 90 %], at most 10 points of change a year).  For each
number of evaluations per tax year (1: real years only; 10: the real year plus 9
counterfactual years) and each seed, the search runs ``--years`` tax years; every year's
real objective is turned into its consumption-equivalent gap to the optimum found by
``simulator.economy.optimum.optimal_schedule`` on the same population: the uniform %
increase of everyone's consumption that would lift that year's welfare to the optimum's.
The table prints the gap by year (min, mean and max over seeds), then from which year
on every seed stays within 1 %.
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

from simulator.config.loading import load_scenario, shipped_scenarios_dir  # noqa: E402
from simulator.economy.equivalent import consumption_equivalent  # noqa: E402
from simulator.economy.optimum import optimal_schedule  # noqa: E402
from simulator.sim.model import EconomyModel  # noqa: E402


def baseline_scenario(size: int, years: int, seed: int, evaluations: int):
    """rational_baselines.yaml with a search planner on ``size`` workers."""
    return load_scenario(shipped_scenarios_dir() / "rational_baselines.yaml", [
        f"population.size={size}", f"run.tax_years={years}", f"run.seed={seed}",
        "planner.kind=search", f"planner.search.evaluations_per_year={evaluations}",
        "compare=[]",
    ])


def optimum_welfare(model: EconomyModel) -> float:
    """Welfare of the numerical optimum on the model's whole population (rational workers),
    within the search's rate range (``planner.llm.rate_bounds``)."""
    obj = model.settings.planner.objective
    res = optimal_schedule(
        model.base_schedule, model.wages, model.utility, objective=obj.swf,
        objective_params=obj.params(), rebate_share=model.rebate_share, weights=model.weights,
        hours_bounds=model.hours_bounds, rate_bounds=model.settings.planner.llm.rate_bounds,
        max_evaluations=1500,
    )
    return res.welfare


def convergence(size: int, years: int, seed: int, evaluations: int) -> np.ndarray:
    """Consumption-equivalent gap (fraction) of every real tax year to the optimum."""
    model = EconomyModel(baseline_scenario(size, years, seed, evaluations), agent_objects=False)
    target = optimum_welfare(model)
    obj = model.settings.planner.objective
    gaps = []
    for _ in range(years):
        model.run_year()
        gaps.append(consumption_equivalent(model.outcome, target, model.utility, obj.swf, obj.params()))
    return np.array(gaps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--years", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--evaluations", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--every", type=int, default=3, help="print every Nth year (and the last)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    print(header(__file__), flush=True)
    curves = {e: np.array([convergence(args.size, args.years, s, e) for s in args.seeds])
              for e in args.evaluations}
    print(f"search planner vs numerical optimum: rational_baselines, {args.size} workers, "
          f"seeds {args.seeds}")
    print("consumption-equivalent gap of the year's real schedule to the optimum, % "
          "(min / mean / max over seeds, for E evaluations a year)")
    head = ["year"] + [f"E={e} {m}" for e in args.evaluations for m in ("min", "mean", "max")]
    print(" ".join(f"{h:>10}" for h in head))
    years = [y for y in range(args.years) if y % args.every == 0 or y == args.years - 1]
    for y in years:
        cells = [str(y + 1)]
        for e in args.evaluations:
            g = 100 * curves[e][:, y]
            cells += [f"{g.min():.2f}", f"{g.mean():.2f}", f"{g.max():.2f}"]
        print(" ".join(f"{c:>10}" for c in cells))
    for e in args.evaluations:
        ok = np.all(curves[e] < 0.01, axis=0)  # every seed within 1 % of consumption
        since = next((y + 1 for y in range(args.years) if ok[y:].all()), None)
        print(f"E={e}: every seed within 1 % of the optimum from tax year "
              f"{since if since is not None else '- (never for good)'} on")
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
