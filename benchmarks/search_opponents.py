"""The search planner's settings and its margin over a planner answering at random.

    .venv/bin/python benchmarks/search_opponents.py [--size 100] [--years 30] [--seeds 0 1 ... 9]
        [--random-size 60] [--random-years 15] [--random-seeds 0 1 2 3 4]

Part 1, the CMA-ES settings (docs/economics.md section 11): ``planner.kind: search`` on
``scenarios/rational_baselines.yaml`` (as in ``search_convergence.py``: ``--size``
workers, one evaluation a year, the LLM planner's default constraints) for several
(``sigma0``, ``popsize``) pairs; the consumption-equivalent gap of the last tax year to
the numerical optimum (same rate range, whole population), min / mean / max over seeds.

Part 2, against a planner answering at random: the same population settings as the
test ``tests/test_search_planner.py::test_search_beats_a_planner_answering_at_random``
(``--random-size`` Census workers, rational, log utility, utilitarian, ``--random-years``
years), the search against the LLM planner answered by a script that returns uniform
random changes of -10..+10 points per bracket (from the request seed). The margin is the
consumption equivalent of the difference of the mean objective over the last 3 years:
with log utility and the utilitarian mean, ``exp(W_search - W_random) - 1``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # _provenance, search_convergence

import numpy as np  # noqa: E402
from _provenance import footer, header  # noqa: E402
from search_convergence import optimum_welfare  # noqa: E402

from simulator.config.loading import load_scenario, scenario_from_dict, shipped_scenarios_dir  # noqa: E402
from simulator.economy.equivalent import consumption_equivalent  # noqa: E402
from simulator.llm import build_llm  # noqa: E402
from simulator.sim.model import EconomyModel  # noqa: E402

SETTINGS = [(0.15, 5), (0.10, 5), (0.07, 5), (0.15, 6), (0.15, 8), (0.25, 5)]  # (sigma0, popsize)


def final_gap(size: int, years: int, seed: int, sigma0: float, popsize: int, target: float | None):
    sc = load_scenario(shipped_scenarios_dir() / "rational_baselines.yaml", [
        f"population.size={size}", f"run.tax_years={years}", f"run.seed={seed}", "compare=[]",
        "planner.kind=search", "planner.search.evaluations_per_year=1",
        f"planner.search.sigma0={sigma0}", f"planner.search.popsize={popsize}",
    ])
    model = EconomyModel(sc, agent_objects=False)
    if target is None:
        target = optimum_welfare(model)
    model.run()
    obj = model.settings.planner.objective
    return consumption_equivalent(model.outcome, target, model.utility, obj.swf, obj.params()), target


def last3(kind: str, size: int, years: int, seed: int) -> float:
    sc = scenario_from_dict({
        "population": {"size": size, "source": "census"},
        "economy": {"utility": {"form": "isoelastic", "eta": 1.0, "frisch": 0.5}},
        "planner": {"kind": kind, "objective": {"swf": "utilitarian"}},
        "workers": {"policy": "rational"},
        "run": {"tax_years": years, "seed": seed},
        "llm": {"backend": "scripted", "cache": "off"},
    })

    def random_reply(req):  # a delta in [-10, 10] points per bracket, from the request seed
        r = np.random.default_rng(req.seed).integers(-10, 11, 7)
        return json.dumps({f"b{i + 1}": int(x) for i, x in enumerate(r)})

    llm = build_llm(sc.llm, script=random_reply) if kind == "llm" else None
    m = EconomyModel(sc, llm=llm, agent_objects=False)
    m.run()
    return float(np.mean([r["objective"] for r in m.history[-3:]]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--years", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--random-size", type=int, default=60)
    ap.add_argument("--random-years", type=int, default=15)
    ap.add_argument("--random-seeds", type=int, nargs="+", default=list(range(5)))
    args = ap.parse_args(argv)
    if min(args.size, args.years, args.random_size) < 10 or args.random_years < 4:
        ap.error("sizes must be at least 10, --years at least 10 and --random-years at least 4")
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    print(f"1. search, one evaluation a year: gap of tax year {args.years} to the optimum, % "
          f"(rational_baselines, {args.size} workers, seeds {args.seeds[0]}-{args.seeds[-1]})")
    print(f"{'sigma0':>6}  {'popsize':>7}  {'min':>6}  {'mean':>6}  {'max':>6}")
    targets: dict[int, float] = {}
    for sigma0, popsize in SETTINGS:
        g = []
        for s in args.seeds:
            gap, targets[s] = final_gap(args.size, args.years, s, sigma0, popsize, targets.get(s))
            g.append(100 * gap)
        print(f"{sigma0:>6.2f}  {popsize:>7}  {min(g):>6.2f}  {np.mean(g):>6.2f}  {max(g):>6.2f}", flush=True)
    print(f"2. search vs a planner answering at random: {args.random_size} Census workers, "
          f"{args.random_years} years, mean objective of the last 3 years")
    ce = [100 * np.expm1(last3("search", args.random_size, args.random_years, s)
                         - last3("llm", args.random_size, args.random_years, s)) for s in args.random_seeds]
    print(f"search ahead in {sum(c > 0 for c in ce)} of {len(ce)} seeds; margin, % of consumption: "
          f"mean {np.mean(ce):.2f}, by seed " + ", ".join(f"{c:.2f}" for c in ce))
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
