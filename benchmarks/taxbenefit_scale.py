"""Seconds and peak memory per rational tax year: the full US tax-benefit system against
the income-tax-only world, at 10 k, 100 k and 1 M workers.

    .venv/bin/python benchmarks/taxbenefit_scale.py [--sizes 10000 100000 1000000]
                                                    [--repeats 7] [--repeats-large 5]
                                                    [--profile 65536] [--quick] [--json]

Two worlds on the same Census population (``build_population``, seed 0), planner
``us_federal`` (2024 statutory brackets), rational workers with equilibrium expectations,
one step a tax year:

* ``income_tax_only``: the planner's brackets are the whole tax system, all revenue
  rebated lump-sum (``fiscal_rule: rebate_all``, the paper's world);
* ``us_current_law``: every worker's tax unit faces income tax by filing status, payroll
  tax, EITC, CTC/ACTC (``economy.world: us_current_law``) with
  ``fiscal_rule: revenue_requirement``.

Each (size, world) is one child process that builds the population and the model once
and then runs one ``model.run_year()`` each time the parent asks: an untimed warm-up year,
then ``--repeats`` timed years (``--repeats-large`` above 200,000 workers), the two worlds
of a size interleaved (A B, B A, A B, ...) so that a load change on a shared machine hits
both.  ``s/year`` is the median wall time of a year, ``cpu/year`` the median CPU time of
the child (all its threads), ``full/itax`` the median over repeats of the ratio of the two
worlds' years timed back to back.  ``peak MB`` is the child's peak resident memory
(``getrusage`` max RSS) after building and the warm-up year, i.e. a one-year run; the
model keeps every year's per-agent arrays, so the peak after all timed years is printed
below the table.  ``check``: the best response of the whole population at the year's
rebate equals the best response solved in blocks of at most 65,536 workers (the size of
the core's thread-pool blocks); a mismatch means the timed year did not solve every
worker.  ``--profile N`` then prints the ten functions with the most own time (cProfile)
in one ``us_current_law`` year at N workers.  ``--quick``: 2,000 workers, one repeat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy  # noqa: F401  (its version goes into the provenance line)

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header, portable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORLDS = ("income_tax_only", "us_current_law")
LARGE = 200_000
#: targets of the issue: a full-system year at most this many times an income-tax-only one
RATIO_TARGET = 2.0
#: and the peak memory of a 1 M worker run under this many GB (10^9 bytes)
MEMORY_TARGET_GB = 4.0

# The child: build once, then answer one line per command on stdin ("year", "check",
# "done", "profile"), one JSON object per line on stdout.
_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
cfg = json.loads(sys.argv[2])
import numpy as np
from simulator.config.loading import scenario_from_dict
from simulator.economy.best_response import best_response
from simulator.sim.model import EconomyModel
from simulator.sim.population import build_population
from simulator.economy.utility import subset_utility

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

n, world = cfg["n"], cfg["world"]
data = {
    "name": f"taxbenefit-{world}-{n}",
    "population": {"size": n, "source": "census"},
    "planner": {"kind": "us_federal"},
    "workers": {"policy": "rational", "expectations": "equilibrium"},
    "run": {"seed": 0, "mesa_agents": False, "steps_per_year": 1},
    "output": {"agents_table": False},
}
if world == "us_current_law":
    data["economy"] = {"world": "us_current_law", "fiscal_rule": "revenue_requirement"}
sc = scenario_from_dict(data)
t0 = time.perf_counter()
pop = build_population(sc.population, np.random.default_rng(0))
t_pop = time.perf_counter() - t0
t0 = time.perf_counter()
m = EconomyModel(sc, pop, agent_objects=False)
t_model = time.perf_counter() - t0

def year():
    w0, c0 = time.perf_counter(), time.process_time()
    rec = m.run_year()
    return {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
            "mean_hours": rec["mean_hours"], "rebate": rec["rebate"]}

def check():
    # the whole population's best response against blocks of at most 65,536 workers
    b = m.budget(m.schedule)
    rebate = m.outcome.rebate
    whole = best_response(b, m.wages, m.utility, rebate, m.hours_bounds)
    blocks = np.empty(m.n_workers)
    for s in range(0, m.n_workers, 65_536):
        idx = np.arange(s, min(s + 65_536, m.n_workers))
        sub = b.subset(idx) if hasattr(b, "subset") else b
        blocks[idx] = best_response(sub, m.wages[idx], subset_utility(m.utility, idx), rebate,
                                    m.hours_bounds)
    bad = int(np.sum(~np.isclose(whole, blocks, rtol=0, atol=1e-6)))
    return {"differ": bad, "out_of_bounds": int(np.sum((whole < m.hours_bounds[0])
                                                       | (whole > m.hours_bounds[1])))}

def profile():
    import cProfile, io, pstats
    pr = cProfile.Profile()
    w0 = time.perf_counter()
    pr.enable()
    m.run_year()
    pr.disable()
    wall = time.perf_counter() - w0
    st = pstats.Stats(pr)
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, callers) in st.stats.items():
        name = fn if file == "~" else f"{file}:{line}({fn})"
        rows.append({"function": name, "calls": nc, "tottime": tt, "cumtime": ct})
    rows.sort(key=lambda r: -r["tottime"])
    return {"wall": wall, "total": st.total_tt, "top": rows[:10]}

print(json.dumps({"pop_s": t_pop, "model_s": t_model, "types": getattr(m.world, "n_types", None),
                  "built_peak_mb": peak_mb()}), flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "year":
        out = year()
    elif cmd == "check":
        out = check()
    elif cmd == "profile":
        out = profile()
    elif cmd == "peak":
        out = {"peak_mb": peak_mb()}
    else:
        print(json.dumps({"peak_mb": peak_mb()}), flush=True)
        break
    print(json.dumps(out), flush=True)
"""


class Child:
    """One (size, world) configuration in its own process."""

    def __init__(self, n: int, world: str) -> None:
        self.n, self.world = n, world
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(ROOT), json.dumps({"n": n, "world": world})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.built = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines() or ["no output"]
            raise RuntimeError(f"{self.world} at {self.n:,} workers failed: {err[-1]}")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict:
        out = self.ask("done")
        self.proc.wait(timeout=60)
        return out


def measure(n: int, repeats: int) -> dict[str, dict]:
    """Both worlds at ``n`` workers: build, warm up, ``repeats`` interleaved years."""
    kids = {w: Child(n, w) for w in WORLDS}
    try:
        res = {w: {**k.built, "years": []} for w, k in kids.items()}
        for w, k in kids.items():
            res[w]["warmup"] = k.ask("year")
            res[w]["peak_mb"] = k.ask("peak")["peak_mb"]  # built + one tax year
        ratios, ratios_cpu = [], []
        for r in range(repeats):
            order = WORLDS if r % 2 == 0 else WORLDS[::-1]
            got = {w: kids[w].ask("year") for w in order}
            for w in WORLDS:
                res[w]["years"].append(got[w])
            ratios.append(got[WORLDS[1]]["wall"] / got[WORLDS[0]]["wall"])
            ratios_cpu.append(got[WORLDS[1]]["cpu"] / got[WORLDS[0]]["cpu"])
        for w, k in kids.items():
            res[w]["check"] = k.ask("check")
            res[w]["final_peak_mb"] = k.close()["peak_mb"]
        res[WORLDS[1]]["ratio"] = statistics.median(ratios)
        res[WORLDS[1]]["ratio_cpu"] = statistics.median(ratios_cpu)
        return res
    finally:
        for k in kids.values():
            if k.proc.poll() is None:
                k.proc.kill()


def profile(n: int) -> dict:
    kid = Child(n, "us_current_law")
    try:
        kid.ask("year")  # warm-up
        return kid.ask("profile")
    finally:
        if kid.proc.poll() is None:
            kid.proc.kill()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=7, help="timed years per world, <= 200,000 workers")
    ap.add_argument("--repeats-large", type=int, default=5, help="timed years per world above 200,000")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="profile one us_current_law year at N workers (0: no profile)")
    ap.add_argument("--quick", action="store_true", help="2,000 workers, one repeat (a smoke test)")
    ap.add_argument("--json", action="store_true", help="also print the measurements as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.repeats_large = [2_000], 1, 1
    if min(*args.sizes, args.repeats, args.repeats_large) < 1 or args.profile < 0:
        ap.error("--sizes and --repeats must be >= 1, --profile >= 0")
    return args


def _short(function: str) -> str:
    """A profiled function's name without this machine's paths: the checkout as ./,
    installed packages from their package directory, the standard library by file name."""
    text = portable(function)
    if text.startswith(("./", "<", "{")) and "site-packages/" not in text:
        return text
    if "site-packages/" in text:
        return text.split("site-packages/", 1)[1]
    path, _, rest = text.partition(":")
    return f"{Path(path).name}:{rest}" if rest else text


def _fmt_check(c: dict) -> str:
    if c["differ"] == 0 and c["out_of_bounds"] == 0:
        return "ok"
    return f"{c['differ']:,} differ, {c['out_of_bounds']:,} outside bounds"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    print("rational workers (equilibrium expectations), planner us_federal 2024, Census population seed 0, "
          "1 step a tax year;\nincome_tax_only: brackets only, rebate_all; us_current_law: income tax by "
          "filing status + payroll tax + EITC + CTC/ACTC, revenue_requirement", flush=True)
    print(f"\n{'workers':>10}  {'world':<16} {'pop s':>6} {'model s':>8} {'repeats':>7} {'s/year':>8} "
          f"{'cpu/year':>8} {'full/itax':>9} {'cpu ratio':>9} {'peak MB':>8}  check", flush=True)
    out: dict[str, dict] = {}
    failed = False
    for n in args.sizes:
        reps = args.repeats if n <= LARGE else args.repeats_large
        try:
            res = measure(n, reps)
        except (RuntimeError, OSError, ValueError) as e:
            print(f"{n:>10,}  error: {e}", flush=True)
            failed = True
            continue
        out[str(n)] = res
        for w in WORLDS:
            r = res[w]
            wall = statistics.median(y["wall"] for y in r["years"])
            cpu = statistics.median(y["cpu"] for y in r["years"])
            r["median_wall"], r["median_cpu"] = wall, cpu
            ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
            ratio_cpu = f"{r['ratio_cpu']:.2f}" if "ratio_cpu" in r else "-"
            if r["check"]["differ"] or r["check"]["out_of_bounds"]:
                failed = True
            print(f"{n:>10,}  {w:<16} {r['pop_s']:>6.2f} {r['model_s']:>8.2f} {reps:>7} {wall:>8.3f} "
                  f"{cpu:>8.3f} {ratio:>9} {ratio_cpu:>9} {r['peak_mb']:>8,.0f}  {_fmt_check(r['check'])}",
                  flush=True)
    if out:
        print()
        for n, res in out.items():
            full = res[WORLDS[1]]
            print(f"{int(n):,} workers: {full['types']:,} household types compiled; mean hours "
                  f"{res[WORLDS[0]]['years'][-1]['mean_hours']:.1f} (income_tax_only, rebate "
                  f"${res[WORLDS[0]]['years'][-1]['rebate']:,.0f}/yr) and {full['years'][-1]['mean_hours']:.1f} "
                  f"(us_current_law, transfer ${full['years'][-1]['rebate']:,.0f}/yr); peak MB after all "
                  f"{len(full['years']) + 1} years: {res[WORLDS[0]]['final_peak_mb']:,.0f} / "
                  f"{full['final_peak_mb']:,.0f}")
        print()
        for n, res in out.items():
            ratio = res[WORLDS[1]]["ratio"]
            verdict = "met" if ratio <= RATIO_TARGET else "NOT met"
            if any(res[w]["check"]["differ"] or res[w]["check"]["out_of_bounds"] for w in WORLDS):
                verdict = "not measured, the check failed"
            print(f"target full/itax <= {RATIO_TARGET:g} at {int(n):,} workers: {verdict} ({ratio:.2f}x wall, "
                  f"{res[WORLDS[1]]['ratio_cpu']:.2f}x cpu)")
        big = [n for n in out if int(n) >= 1_000_000]
        for n in big:
            gb = max(out[n][w]["peak_mb"] for w in WORLDS) * 2**20 / 1e9
            verdict = "met" if gb < MEMORY_TARGET_GB else "NOT met"
            if any(out[n][w]["check"]["differ"] or out[n][w]["check"]["out_of_bounds"] for w in WORLDS):
                verdict = "not measured, the check failed"
            print(f"target peak memory < {MEMORY_TARGET_GB:g} GB at {int(n):,} workers (one-year run): "
                  f"{verdict} ({gb:.2f} GB)")
    if args.profile:
        print(f"\ncProfile of one us_current_law tax year at {args.profile:,} workers (after a warm-up year), "
              "top 10 by own time:", flush=True)
        try:
            prof = profile(args.profile)
        except (RuntimeError, OSError, ValueError) as e:
            print(f"error: {e}")
            failed = True
        else:
            print(f"year {prof['wall']:.3f} s wall under the profiler, {prof['total']:.3f} s profiled")
            print(f"{'own s':>7} {'cum s':>7} {'calls':>6}  function")
            for r in prof["top"]:
                print(f"{r['tottime']:>7.3f} {r['cumtime']:>7.3f} {r['calls']:>6}  {_short(r['function'])}")
            out["profile"] = prof
    print(footer(started))
    if args.json:
        print(json.dumps(out, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
