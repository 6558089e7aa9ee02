"""The optimum planner on a shipped scenario: whole population vs a subsample.

    .venv/bin/python benchmarks/optimum.py [--scenario rational_baselines]
        [--seeds 7] [--subsample 1000]

For every seed the scenario's ``optimum`` variant runs one tax year (the optimum is
constant over years for rational workers) searched on the whole population (the
default) and on a random subsample of ``--subsample`` workers (0: skip), and every other
rational-worker variant runs the scenario's tax years.  Printed per seed: each
variant's best objective over its years (on every worker), and for the optimum its
search's wall and CPU seconds, evaluations and rates.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # _provenance (after the packages)

import numpy as np  # noqa: E402
from _provenance import footer, header  # noqa: E402

from simulator.config.loading import load_scenario, resolve_scenario_path  # noqa: E402
from simulator.sim.model import EconomyModel  # noqa: E402


def seeded(sc, seed: int, **planner):
    run = sc.run.model_copy(update={"seed": seed})
    return sc.model_copy(update={"run": run, "planner": sc.planner.model_copy(update=planner)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="rational_baselines")
    ap.add_argument("--seeds", type=int, nargs="+", default=[7])
    ap.add_argument("--subsample", type=int, default=1000)
    args = ap.parse_args()
    print(header(__file__))
    t_all = time.perf_counter()
    sc = load_scenario(resolve_scenario_path(args.scenario))
    variants = [(lab, v) for lab, v in sc.variants() if v.workers.policy == "rational"]
    for seed in args.seeds:
        print(f"\nseed {seed}")
        for label, v in variants:
            if v.planner.kind != "optimum":
                m = EconomyModel(seeded(v, seed), agent_objects=False)
                m.run()
                best = max(r["objective"] for r in m.history)
                print(f"  {label:<24} objective {best:.6f}")
                continue
            runs = [("whole population", None)]
            if args.subsample:
                runs.append((f"subsample {args.subsample:,}", args.subsample))
            for what, k in runs:
                m = EconomyModel(seeded(v, seed, optimum_max_agents=k), agent_objects=False)
                t, c = time.perf_counter(), time.process_time()
                m.run(1)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                info = m.planner.strategy.info
                rates = np.round(m.schedule.rate_array * 100, 1)
                print(f"  {label + ' (' + what + ')':<24} objective {m.history[-1]['objective']:.6f} "
                      f"(search {info['search_objective']:.6f}) | {wall:.1f} s wall, {cpu:.1f} s CPU, "
                      f"{info['evaluations']} evaluations in {info['batches']} batches | rates % {rates.tolist()}")
    print(footer(t_all))


if __name__ == "__main__":
    main()
