"""Throughput of the economic core: agent-decisions per second on 1 M agents.

    .venv/bin/python benchmarks/core.py [--n 1000000] [--repeat 3] [--against REV [--rounds 3]]

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

``--against REV`` measures the code of git revision ``REV`` (extracted to a temporary
directory) against this checkout in one run: each side in its own child process,
alternating ``--rounds`` times (new, old, new, old, ...), so both see the same load;
the table gives each side's best time over the rounds and the ratio old / new of the
best times and of the best CPU times.  The accounting pass (``evaluate``) bounds any
best response; the ``x eval`` columns are each best time over the same side's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

# the tree measured: this checkout, or the one named by --root (the "before" side of
# --against, a child process of this script)
_ROOT = Path(__file__).resolve().parents[1]
if "--root" in sys.argv[:-1]:
    _ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
sys.path.insert(0, str(_ROOT))

import importlib  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import cpu_model, footer, header, load_average, revision, snapshot  # noqa: E402

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
    ap.add_argument("--against", metavar="REV", help="also measure git revision REV, side by side")
    ap.add_argument("--rounds", type=int, default=3, help="with --against: alternations of the two sides")
    ap.add_argument("--root", help=argparse.SUPPRESS)  # (a child measuring another tree)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if min(args.n, args.repeat, args.rounds) < 1:
        ap.error("--n, --repeat and --rounds must be >= 1")
    if args.against:
        return against(args, argv)
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
    if not args.json:
        print(header(__file__, argv))
        print(machine_info())
        print(f"agents: {n:,}  repeats: {args.repeat} (best reported)  "
              f"wages: lognormal, median $1,300/yr per weekly hour, sigma 0.8, rng seed 0")
        print()

    passes = {"n": 0}
    # a best-response pass is a whole-population call (not one of its chunks) of either
    # the best response or the best response with its slope (the Newton step's)
    real = {name: getattr(br_mod, name) for name in ("best_response", "_hours_and_dtax")
            if hasattr(br_mod, name)}

    def counting(name):
        def call(schedule, w, *a, **k):
            if len(w) == n:
                passes["n"] += 1
            return real[name](schedule, w, *a, **k)
        return call

    def eq_call():
        for name in real:
            setattr(br_mod, name, counting(name))
        try:
            passes["n"] = 0
            return equilibrium(us, wages, log_u)
        finally:
            for name, fn in real.items():
                setattr(br_mod, name, fn)

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
    if not args.json:
        print(f"{'configuration':<{w}}  {'best s':>8}  {'agents/s':>12}  {'>=10M/s':>7}  "
              f"{'cpu s':>7}  {'agents/cpu-s':>12}  note")
        print(f"{'-' * w}  {'-' * 8}  {'-' * 12}  {'-' * 7}  {'-' * 7}  {'-' * 12}  ----")
    measured = []
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
        measured.append({"label": label, "s": t, "cpu": cpu, "note": note,
                         "passes": passes["n"] if fn is eq_call else None})
        if not args.json:
            print(f"{label:<{w}}  {t:>8.3f}  {rate:>12,.0f}  {hit:>7}  {cpu:>7.3f}  {n / cpu:>12,.0f}  "
                  f"{note}", flush=True)
    if args.json:
        print(json.dumps(measured))
    else:
        print(footer(started))
    return 0


def against(args, argv) -> int:
    """Old (``--against REV``) against new (this checkout), alternating child processes."""
    import subprocess

    started = time.perf_counter()
    old_root = snapshot(args.against)
    print(header(__file__, argv))
    print(machine_info())
    print(f"agents: {args.n:,}  repeats: {args.repeat} per child, {args.rounds} rounds alternating "
          f"new/old (best over all)  old: {args.against}  new: {revision()}")
    print()
    best: dict[str, dict[str, dict]] = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for side, root in (("new", _ROOT), ("old", old_root)):
            cmd = [sys.executable, __file__, "--n", str(args.n), "--repeat", str(args.repeat), "--json",
                   "--root", str(root)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{side}: failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
                return 1
            for row in json.loads(proc.stdout.strip().splitlines()[-1]):
                got = best[side].get(row["label"])
                if got is None or row["s"] < got["s"]:
                    best[side][row["label"]] = {**row, "cpu": min(row["cpu"], (got or row)["cpu"])}
                else:
                    got["cpu"] = min(got["cpu"], row["cpu"])
    labels = list(best["new"])
    acc = next(label for label in labels if label.startswith("evaluate"))
    w = max(len(label) for label in labels)
    print(f"{'configuration':<{w}}  {'old s':>7}  {'new s':>7}  {'old/new':>7}  {'cpu old/new':>11}  "
          f"{'old x eval':>10}  {'new x eval':>10}  passes old/new")
    print(f"{'-' * w}  {'-' * 7}  {'-' * 7}  {'-' * 7}  {'-' * 11}  {'-' * 10}  {'-' * 10}  {'-' * 14}")
    for label in labels:
        o, nw = best["old"].get(label), best["new"][label]
        if o is None:
            continue
        passes = f"{o['passes']} / {nw['passes']}" if nw["passes"] is not None else ""
        print(f"{label:<{w}}  {o['s']:>7.4g}  {nw['s']:>7.4g}  {o['s'] / nw['s']:>7.2f}  "
              f"{o['cpu'] / nw['cpu']:>11.2f}  {o['s'] / best['old'][acc]['s']:>10.2f}  "
              f"{nw['s'] / best['new'][acc]['s']:>10.2f}  {passes}", flush=True)
    print(footer(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
