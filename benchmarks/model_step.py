"""Seconds per tax year of the whole model with rational workers, by population size.

    .venv/bin/python benchmarks/model_step.py [--sizes 10000 100000 1000000]
                                              [--sources gb2 census] [--years 3]

Scenario: planner ``us_federal`` (2024, single), ``workers.policy: rational`` with
equilibrium expectations (the self-consistent rebate is solved every year), the default
isoelastic utility, one step per tax year.  For each population source and size it
reports, separately:

* ``pop s``: drawing the population (``simulator.sim.population.build_population``, i.e.
  ``personas.generate`` with personas rendered as text), after the persona calibration
  tables were built once (reported separately, as in ``benchmarks/personas.py``);
* ``model s``: ``EconomyModel(...)`` on that population with ``agent_objects=True``
  (one Mesa ``WorkerAgent`` per worker) and ``agent_objects=False`` (arrays only); the
  difference is the cost of the Mesa agent objects;
* ``s/year``: mean wall time of ``model.run_year()`` over ``--years`` tax years (best
  response at the equilibrium rebate, accounting, every welfare function, the year
  record and the per-agent history), stepped on the model with agent objects; at the
  largest size the arrays-only model is stepped too.

Each source runs in its own subprocess so that peak memory (max RSS) is that source's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import gc, json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from simulator.sim.model import EconomyModel
from simulator.sim.population import build_population
from simulator.config.loading import scenario_from_dict

source, years = sys.argv[2], int(sys.argv[3])
sizes = [int(x) for x in sys.argv[4].split(",")]
import personas
t0 = time.perf_counter(); personas.generate(10, 0); t_cal = time.perf_counter() - t0
print(json.dumps({"calibration_s": t_cal}), flush=True)
for n in sizes:
    sc = scenario_from_dict({
        "name": f"bench-{source}-{n}",
        "population": {"size": n, "source": source},
        "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
        "planner": {"kind": "us_federal"},
        "workers": {"policy": "rational"},
        "run": {"tax_years": years, "seed": 0},
        "output": {"agents_table": False},
    })
    # the population stream EconomyModel would derive from the seed
    rng = np.random.default_rng(np.random.SeedSequence([0, 0x504F50]))
    t0 = time.perf_counter(); pop = build_population(sc.population, rng); t_pop = time.perf_counter() - t0
    t0 = time.perf_counter(); m_arr = EconomyModel(sc, pop, agent_objects=False); t_arr = time.perf_counter() - t0
    del m_arr; gc.collect()
    t0 = time.perf_counter(); m = EconomyModel(sc, pop, agent_objects=True); t_obj = time.perf_counter() - t0
    n_agents = len(m.agents)
    per_year = []
    for _ in range(years):
        t0 = time.perf_counter(); rec = m.run_year(); per_year.append(time.perf_counter() - t0)
    row = {"source": source, "n": n, "pop_s": t_pop, "model_arrays_s": t_arr,
           "model_objects_s": t_obj, "mesa_agents": n_agents, "year_s": per_year,
           "mean_hours": rec["mean_hours"], "rebate": rec["rebate"]}
    del m; gc.collect()
    if n == max(sizes):
        m = EconomyModel(sc, pop, agent_objects=False)
        arr_years = []
        for _ in range(years):
            t0 = time.perf_counter(); m.run_year(); arr_years.append(time.perf_counter() - t0)
        row["year_arrays_s"] = arr_years
        del m; gc.collect()
    del pop; gc.collect()
    print(json.dumps(row), flush=True)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
"""


def run_source(source: str, sizes: list[int], years: int) -> tuple[list[dict], float]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT), source, str(years), ",".join(map(str, sizes))],
        check=True, capture_output=True, text=True,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return [r for r in rows if "n" in r], rows[-1]["peak_mb"], rows[0]["calibration_s"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--sources", nargs="+", default=["gb2", "census"], choices=["gb2", "census"])
    ap.add_argument("--years", type=int, default=3, help="tax years stepped per size")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    print("planner us_federal 2024 single, workers rational (equilibrium rebate), "
          f"isoelastic log utility, {args.years} tax years per size, 1 step a year")
    hdr = (f"{'source':<7} {'n':>10}  {'pop s':>7}  {'model s':>8}  {'model s':>8}  "
           f"{'Mesa agents s':>13}  {'s/year':>7}  {'agents/s':>10}  {'s/year':>8}")
    sub = (f"{'':<7} {'':>10}  {'':>7}  {'objects':>8}  {'arrays':>8}  {'(difference)':>13}  "
           f"{'objects':>7}  {'(1 year)':>10}  {'arrays':>8}")
    print(hdr)
    print(sub)
    for source in args.sources:
        rows, peak, cal = run_source(source, args.sizes, args.years)
        for r in rows:
            yr = sum(r["year_s"]) / len(r["year_s"])
            arr = r.get("year_arrays_s")
            arr_txt = f"{sum(arr) / len(arr):>8.3f}" if arr else f"{'-':>8}"
            print(f"{r['source']:<7} {r['n']:>10,}  {r['pop_s']:>7.2f}  {r['model_objects_s']:>8.2f}  "
                  f"{r['model_arrays_s']:>8.2f}  {r['model_objects_s'] - r['model_arrays_s']:>13.2f}  "
                  f"{yr:>7.3f}  {r['n'] / yr:>10,.0f}  {arr_txt}", flush=True)
        print(f"{source}: persona calibration built once before timing: {cal:.2f} s; peak memory (max RSS of its process) {peak:,.0f} MB; "
              f"last year mean hours {rows[-1]['mean_hours']:.1f}, rebate ${rows[-1]['rebate']:,.0f}/yr")
    print(footer(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
