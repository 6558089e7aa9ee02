"""Kink bias of the measured elasticity of taxable income (docs/economics.md section 9).

    .venv/bin/python benchmarks/elasticity_kink.py [--n 20000] [--seeds 0 1 2 3 4]

Workers with ``IsoelasticUtility(eta=0)`` (no income effects, so the true elasticity is
exactly the Frisch value 0.5), no rebate, hours in [0, 100]; wages lognormal (median
$1,300 a year per weekly hour, sigma 0.8, ``numpy.random.default_rng(seed)``) or the
Census personas' (``personas.generate(n, seed)``). ``estimate_elasticity`` perturbs every
net-of-tax rate by -10..+10 % around each base schedule and fits log income on the log
net-of-tax rate with worker fixed effects. Columns: min / mean / max over seeds of the
estimate, the mean standard error, the share of workers within 0.1 % of a bracket start
(bunched at a kink) and at the 100-hour cap.
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

import personas  # noqa: E402
from simulator.economy import IsoelasticUtility, TaxSchedule, best_response  # noqa: E402
from simulator.economy.elasticity import estimate_elasticity  # noqa: E402


def wages(source: str, n: int, seed: int) -> np.ndarray:
    if source == "lognormal":
        return 1300.0 * np.exp(np.random.default_rng(seed).normal(0.0, 0.8, n))
    return personas.generate(n, seed)["wage"].to_numpy(dtype=float)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = ap.parse_args(argv)
    if args.n < 10 or not args.seeds:
        ap.error("--n must be at least 10 and --seeds not empty")
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    util = IsoelasticUtility(eta=0.0)
    bases = [
        ("flat 25 %", TaxSchedule.flat(0.25)),
        ("US 2024 single, no deduction", TaxSchedule.us_federal(2024, "single", standard_deduction=False)),
        ("US 2024 single, deduction", TaxSchedule.us_federal(2024, "single", standard_deduction=True)),
    ]
    print(f"{args.n:,} workers, IsoelasticUtility(eta=0): true elasticity 0.5; seeds {args.seeds}")
    head = (f"{'wages':<9} {'base schedule':<30} {'min':>6} {'mean':>6} {'max':>6} {'s.e.':>7} "
            f"{'% at kink':>9} {'% at cap':>8}")
    print(head)
    print("-" * len(head))
    for source in ("lognormal", "census"):
        ws = [wages(source, args.n, s) for s in args.seeds]
        for label, base in bases:
            est, se, kink, cap = [], [], [], []
            # gross incomes where the marginal rate jumps: each bracket start plus the deduction
            edges = np.asarray(base.thresholds, dtype=float)[1:] + base.deduction
            if base.deduction > 0:
                edges = np.append(edges, base.deduction)
            for w in ws:
                r = estimate_elasticity(lambda s, w=w: w * best_response(s, w, util), base)
                est.append(r.value)
                se.append(r.stderr)
                h = best_response(base, w, util)
                z = w * h
                near = np.zeros(z.size, bool)
                for e in edges:
                    near |= np.abs(z - e) <= 1e-3 * e
                kink.append(100 * near.mean())
                cap.append(100 * np.mean(h >= 100 - 1e-9))
            print(f"{source:<9} {label:<30} {min(est):>6.3f} {np.mean(est):>6.3f} {max(est):>6.3f} "
                  f"{np.mean(se):>7.4f} {np.mean(kink):>9.1f} {np.mean(cap):>8.1f}", flush=True)
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
