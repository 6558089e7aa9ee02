"""Seconds and peak memory per tax year at 10 k, 100 k and 1 M workers.

    .venv/bin/python benchmarks/scale.py [--sizes 10000 100000 1000000] [--years 2]
                                         [--budget 500] [--embedded-size 10000]
                                         [--embedded-budget 60] [--no-embedded]
                                         [--against REV [--rounds 2]]

Configurations, each size in its own subprocess (so peak memory, the max RSS, is that
run's alone):

* ``rational``: rational workers (equilibrium expectations), planner ``us_federal``;
* ``pooled-scripted``: LLM workers pooled under a call budget of ``--budget`` per step,
  the LLM planner, both on the scripted backend (replies drawn from the request's seed),
  so the figure measures econsim itself (cells, allocation, prompt building for the
  representatives, carry-over, accounting), not a model;
* ``pooled-embedded``: the same at ``--embedded-size`` workers on the embedded
  SmolLM2-135M model with ``--embedded-budget`` calls a step (the default offline model).

``pop s`` is drawing the Census population; ``s/year`` the mean wall time of one tax year
(``model.run_year()``) over ``--years`` years; ``peak MB`` the process's max RSS.

``--against REV`` runs every configuration also on the code of git revision ``REV``
(extracted to a temporary directory), the two sides alternating ``--rounds`` times in
child processes so both see the same load, and prints each side's best ``s/year`` and
the ratio old / new.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header, revision, snapshot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
cfg = json.loads(sys.argv[2])
import numpy as np
from simulator.sim.model import EconomyModel
from simulator.sim.population import build_population
from simulator.config.loading import scenario_from_dict

kind, n, years = cfg["kind"], cfg["n"], cfg["years"]
data = {
    "name": f"scale-{kind}-{n}",
    "population": {"size": n, "source": "census"},
    "planner": {"kind": "us_federal"},
    "run": {"tax_years": years, "seed": 0, "mesa_agents": False},
    "output": {"agents_table": False},
}
if kind != "rational":
    data["workers"] = {"policy": "llm", "llm": {"pooling": {"budget": cfg["budget"]}}}
    data["planner"] = {"kind": "llm"}
    data["llm"] = {"backend": "scripted" if kind == "pooled-scripted" else "embedded", "cache": "off"}
sc = scenario_from_dict(data)
t0 = time.perf_counter()
pop = build_population(sc.population, np.random.default_rng(0))
t_pop = time.perf_counter() - t0
m = EconomyModel(sc, pop, agent_objects=False)
if kind == "pooled-embedded":
    m.llm.generate([])  # build the stack; the model loads on first use inside the year
times = []
for _ in range(years):
    t0 = time.perf_counter()
    rec = m.run_year()
    times.append(time.perf_counter() - t0)
print(json.dumps({
    "kind": kind, "n": n, "pop_s": t_pop, "year_s": times,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "calls": rec.get("pool_calls"), "cells": rec.get("pool_cells"),
    "mean_hours": rec["mean_hours"],
}), flush=True)
"""


def run_child(cfg: dict, root: Path = ROOT) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(root), json.dumps(cfg)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {**cfg, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--embedded-size", type=int, default=10_000)
    ap.add_argument("--embedded-budget", type=int, default=60)
    ap.add_argument("--no-embedded", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--against", metavar="REV", help="also run git revision REV, side by side")
    ap.add_argument("--rounds", type=int, default=2, help="with --against: alternations of the two sides")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if min(*args.sizes, args.years, args.budget) < 1:
        ap.error("--sizes, --years and --budget must be >= 1")
    if not args.no_embedded and min(args.embedded_size, args.embedded_budget) < 1:
        ap.error("--embedded-size and --embedded-budget must be >= 1")
    configs = [{"kind": k, "n": n, "years": args.years, "budget": args.budget}
               for k in ("rational", "pooled-scripted") for n in args.sizes]
    if not args.no_embedded:
        configs.append({"kind": "pooled-embedded", "n": args.embedded_size, "years": 1,
                        "budget": args.embedded_budget})
    started = time.perf_counter()
    if args.against:
        return against(args, argv, configs, started)
    print(header(__file__, argv), flush=True)
    print(f"{'configuration':<17} {'workers':>10} {'budget':>6} {'pop s':>7} {'s/year':>8} "
          f"{'peak MB':>8} {'calls/yr':>8}")
    rows = []
    for cfg in configs:
        r = run_child(cfg)
        rows.append(r)
        if "error" in r:
            print(f"{cfg['kind']:<17} {cfg['n']:>10,} error: {r['error']}", flush=True)
            continue
        per_year = sum(r["year_s"]) / len(r["year_s"])
        budget = "-" if cfg["kind"] == "rational" else str(cfg["budget"])
        calls = "-" if r["calls"] is None else f"{r['calls']:.0f}"
        print(f"{cfg['kind']:<17} {cfg['n']:>10,} {budget:>6} {r['pop_s']:>7.1f} {per_year:>8.2f} "
              f"{r['peak_mb']:>8.0f} {calls:>8}", flush=True)
    print(footer(started))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 1 if any("error" in r for r in rows) else 0


def against(args, argv, configs: list[dict], started: float) -> int:
    """Every configuration on old (``--against REV``) and new code, alternating."""
    old_root = snapshot(args.against)
    print(header(__file__, argv), flush=True)
    print(f"old: {args.against}  new: {revision()}  {args.rounds} rounds alternating new/old, "
          f"best s/year of each side")
    print(f"{'configuration':<17} {'workers':>10} {'budget':>6} {'old s/yr':>9} {'new s/yr':>9} "
          f"{'old/new':>7} {'peak MB old':>11} {'new':>6}")
    failed = False
    for cfg in configs:
        best = {"old": None, "new": None}
        for _ in range(args.rounds):
            for side, root in (("new", ROOT), ("old", old_root)):
                r = run_child(cfg, root)
                if "error" in r:
                    print(f"{cfg['kind']:<17} {cfg['n']:>10,} {side} error: {r['error']}", flush=True)
                    failed = True
                    continue
                r["per_year"] = min(r["year_s"])
                if best[side] is None or r["per_year"] < best[side]["per_year"]:
                    best[side] = r
        o, nw = best["old"], best["new"]
        if o is None or nw is None:
            continue
        budget = "-" if cfg["kind"] == "rational" else str(cfg["budget"])
        print(f"{cfg['kind']:<17} {cfg['n']:>10,} {budget:>6} {o['per_year']:>9.2f} {nw['per_year']:>9.2f} "
              f"{o['per_year'] / nw['per_year']:>7.2f} {o['peak_mb']:>11.0f} {nw['peak_mb']:>6.0f}", flush=True)
    print(footer(started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
