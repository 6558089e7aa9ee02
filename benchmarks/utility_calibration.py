"""Where the utility calibrations put hours: the reference quasi-linear form against ours.

    .venv/bin/python benchmarks/utility_calibration.py [--n 200000] [--seeds 0 1 2 3 4]

Rational best responses (``simulator.economy.best_response`` / ``equilibrium``, hours in
[0, 100] a week) of ``--n`` workers on the 2024 US single schedule, with and without the
standard deduction (the paper scenarios switch it off, as the reference does; the
``us_federal`` default has it), for two wage distributions: the reference's GB2 income
at 40 hours (``personas.gb2.sample_gb2``, ``w = income / 40``) and the Census personas
(``personas.generate``, ``wage`` column), each drawn with ``numpy.random.default_rng(seed)``
/ ``seed``. Rebate "none": no rebate; "equilibrium": the self-consistent lump-sum rebate.
Figures are means over the seeds; the share at the 100-hour cap also gives its min-max.
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
from personas.gb2 import sample_gb2  # noqa: E402
from simulator.economy import (  # noqa: E402
    IsoelasticUtility,
    QuasiLinearUtility,
    TaxSchedule,
    best_response,
    equilibrium,
)

CASES = [  # label, utility, with the equilibrium rebate
    ("QuasiLinear() reference", QuasiLinearUtility(), False),
    ("QuasiLinear() reference", QuasiLinearUtility(), True),
    ("Isoelastic() ours", IsoelasticUtility(), False),
    ("Isoelastic() ours", IsoelasticUtility(), True),
    ("Isoelastic(eta=0)", IsoelasticUtility(eta=0.0), True),
]


def wages(source: str, n: int, seed: int) -> np.ndarray:
    """Dollars a year per weekly hour."""
    if source == "gb2":
        return sample_gb2(np.random.default_rng(seed), n) / 40.0
    return personas.generate(n, seed)["wage"].to_numpy(dtype=float)


def stats(hours: np.ndarray) -> np.ndarray:
    """share at the cap (%), mean, median, p10, p90 (hours a week)."""
    return np.array([100 * np.mean(hours >= 100 - 1e-9), hours.mean(), *np.percentile(hours, [50, 10, 90])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = ap.parse_args(argv)
    if args.n < 10 or not args.seeds:
        ap.error("--n must be at least 10 and --seeds not empty")
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    print(f"{args.n:,} workers, 2024 US single, hours in [0, 100]; means over seeds {args.seeds}")
    head = (f"{'wages':<6} {'deduction':<9} {'utility':<24} {'rebate':<11} {'$ rebate':>8} "
            f"{'% at 100 h (min-max)':>21} {'mean h':>6} {'median':>6} {'p10 h':>5} {'p90 h':>5}")
    print(head)
    print("-" * len(head))
    for source in ("gb2", "census"):
        ws = [wages(source, args.n, s) for s in args.seeds]
        for deduction in (False, True):
            us = TaxSchedule.us_federal(2024, "single", standard_deduction=deduction)
            for label, util, eq in CASES:
                st, rb = [], []
                for w in ws:
                    if eq:
                        h, r = equilibrium(us, w, util)
                    else:
                        h, r = best_response(us, w, util), 0.0
                    st.append(stats(h))
                    rb.append(r)
                st = np.array(st)
                m = st.mean(axis=0)
                cap = f"{m[0]:.1f} ({st[:, 0].min():.1f}-{st[:, 0].max():.1f})"
                print(f"{source:<6} {'on' if deduction else 'off':<9} {label:<24} "
                      f"{'equilibrium' if eq else 'none':<11} {np.mean(rb):>8,.0f} {cap:>21} "
                      f"{m[1]:>6.1f} {m[2]:>6.1f} {m[3]:>5.1f} {m[4]:>5.1f}", flush=True)
        med = np.mean([np.median(w) * 40 for w in ws])
        low = np.mean([100 * np.mean(0.9 * w < 175) for w in ws])
        print(f"{source}: median income at 40 h ${med:,.0f}; {low:.1f} % of workers have 0.9 w < 175 "
              "(the quasi-linear cap binds above a net wage of 175)")
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
