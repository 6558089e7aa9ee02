"""Throughput of the economic core: agent-decisions per second on 1 M agents.

    .venv/bin/python benchmarks/core.py [--n 1000000] [--repeat 3]

Wages are lognormal around $1,300 a year per weekly hour (about $52,000 a year at 40
hours; sigma 0.8), drawn with ``numpy.random.default_rng(0)``.  Each configuration is
timed ``--repeat`` times after one warm-up call; the table reports the best time and
agents / second.  For ``equilibrium`` (the rebate fixed point, several best responses
per call) the figure is agents whose equilibrium hours are found per second; the number
of best-response passes it needed is shown alongside.  ``cpu s`` is the best CPU time of
this process (all threads) over the same calls, and ``agents/cpu-s`` agents per CPU
second: on a machine shared with other jobs the wall time grows with the load, the CPU
time much less (the threaded best response uses up to 2 threads, so an idle 2-core
machine gives a wall time between ``cpu s`` / 2 and ``cpu s``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import importlib  # noqa: E402

import numpy as np  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import cpu_model, footer, header, load_average  # noqa: E402

from simulator.economy import (  # noqa: E402
    IsoelasticUtility,
    QuasiLinearUtility,
    TaxSchedule,
    best_response,
    equilibrium,
    evaluate,
)

# the module (the package re-exports a function of the same name)
br_mod = importlib.import_module("simulator.economy.best_response")

TARGET = 10e6  # agent-decisions per second (the target for the best response)


def machine_info() -> str:
    return (
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        f"cores: {os.cpu_count()}  cpu: {cpu_model()}  load average: {load_average()}\n"
        f"python {platform.python_version()}  numpy {np.__version__}  "
        f"best_response chunk {br_mod.CHUNK:,} agents"
    )


def best_of(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall time, best CPU time (this process, all threads) and the last result."""
    out = fn()  # warm-up (thread pool, caches)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="agents (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats; best is reported")
    args = ap.parse_args(argv)
    n = args.n

    rng = np.random.default_rng(0)
    wages = 1300.0 * np.exp(rng.normal(0.0, 0.8, n))  # dollars a year per weekly hour
    # the 7 statutory segments from the first dollar, as docs/benchmarks.md measured them
    us = TaxSchedule.us_federal(2024, "single", standard_deduction=False)
    # non-monotone rates on the same brackets: a non-convex budget set, every segment tried
    nonprog = us.with_rates([0.10, 0.30, 0.15, 0.35, 0.20, 0.40, 0.25])
    assert not nonprog.is_progressive and us.is_progressive

    log_u = IsoelasticUtility()
    lin_u = IsoelasticUtility(eta=0.0)
    ql_u = QuasiLinearUtility()
    rebate = 5_000.0  # dollars a year, taken as given by best_response

    started = time.perf_counter()
    print(header(__file__, argv))
    print(machine_info())
    print(f"agents: {n:,}  repeats: {args.repeat} (best reported)  "
          f"wages: lognormal, median $1,300/yr per weekly hour, sigma 0.8, rng seed 0")
    print()

    passes = {"n": 0}
    real_br = br_mod.best_response

    def counting_br(schedule, w, *a, **k):
        if len(w) == n:  # a whole-population pass (not one of its chunks)
            passes["n"] += 1
        return real_br(schedule, w, *a, **k)

    def eq_call():
        br_mod.best_response = counting_br
        try:
            passes["n"] = 0
            return equilibrium(us, wages, log_u)
        finally:
            br_mod.best_response = real_br

    hours_log = best_response(us, wages, log_u, rebate)
    rows = [
        ("best_response  US 2024, Isoelastic() log, eta=1",
         lambda: best_response(us, wages, log_u, rebate), True),
        ("best_response  US 2024, Isoelastic(eta=0)",
         lambda: best_response(us, wages, lin_u, rebate), True),
        ("best_response  US 2024, QuasiLinear() reference",
         lambda: best_response(us, wages, ql_u, rebate), True),
        ("best_response  non-progressive, Isoelastic() log",
         lambda: best_response(nonprog, wages, log_u, rebate), True),
        ("equilibrium    US 2024, Isoelastic() log", eq_call, True),
        ("evaluate       US 2024, Isoelastic() log (accounting)",
         lambda: evaluate(us, wages, hours_log, log_u), False),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'configuration':<{w}}  {'best s':>8}  {'agents/s':>12}  {'>=10M/s':>7}  "
          f"{'cpu s':>7}  {'agents/cpu-s':>12}  note")
    print(f"{'-' * w}  {'-' * 8}  {'-' * 12}  {'-' * 7}  {'-' * 7}  {'-' * 12}  ----")
    for label, fn, is_decision in rows:
        t, cpu, out = best_of(fn, args.repeat)
        rate = n / t
        note = ""
        if fn is eq_call:
            h, r = out
            note = f"{passes['n']} best-response passes, rebate ${r:,.0f}/yr"
        elif not is_decision:
            note = f"mean tax ${out.revenue:,.0f}/yr, rebate ${out.rebate:,.0f}/yr"
        else:
            h = out
            note = f"mean hours {h.mean():.1f}, at 100 h cap {np.mean(h >= 100 - 1e-9):.1%}"
        hit = ("yes" if rate >= TARGET else "no") if is_decision else "-"
        print(f"{label:<{w}}  {t:>8.3f}  {rate:>12,.0f}  {hit:>7}  {cpu:>7.3f}  {n / cpu:>12,.0f}  {note}",
              flush=True)
    print(footer(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
