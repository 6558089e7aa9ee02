"""The persona generator against its source tables, over seeds (docs/personas.md).

    .venv/bin/python benchmarks/persona_validation.py [--n 100000] [--seeds 0 1 2 3 4]
        [--n-large 1000000]

Runs ``personas.validation_table(n, seed)`` (what ``econsim personas validate`` prints)
for every seed and gives, per check, the largest error over its items (percentage
points for shares, % for percentiles and ratios) as min / mean / max over the seeds,
and how many of the seeds' items failed their tolerance. Checks with at most six items
also show the model's and the target's values (means over seeds). With ``--n-large``
the occupation wage percentiles are checked once more on that many workers (seed of
the first seed), to separate sampling noise from model error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parent))  # _provenance

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _provenance import footer, header  # noqa: E402

from personas.validate import validation_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--n-large", type=int, default=1_000_000, help="0: skip")
    args = ap.parse_args(argv)
    if args.n < 100 or not args.seeds or args.n_large < 0:
        ap.error("--n must be at least 100, --seeds not empty, --n-large not negative")
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    tables = {s: validation_table(args.n, s) for s in args.seeds}
    checks = list(dict.fromkeys(tables[args.seeds[0]]["check"]))
    total = {s: (len(t), int(t["passed"].sum())) for s, t in tables.items()}
    print(f"personas.validation_table, N = {args.n:,}, seeds {args.seeds}: checks passed "
          + ", ".join(f"seed {s}: {p}/{n}" for s, (n, p) in total.items()))
    head = (f"{'check':<34} {'items':>5} {'unit':>4} {'largest error: min':>18} {'mean':>6} "
            f"{'max':>6} {'failed':>6}  model vs target")
    print(head)
    print("-" * len(head))
    for check in checks:
        rows = {s: t[t["check"] == check] for s, t in tables.items()}
        kind = rows[args.seeds[0]]["error_kind"].iloc[0]
        scale, unit = (100.0, "pp") if kind == "abs" else (100.0, "%")
        worst = np.array([scale * r["error"].abs().max() for r in rows.values()])
        failed = sum(int((~r["passed"]).sum()) for r in rows.values())
        items = len(rows[args.seeds[0]])
        extra = ""
        if items <= 6:
            both = pd.concat(rows.values())
            means = both.groupby("item", sort=False)[["model", "target"]].mean()
            extra = "; ".join(f"{i}: {m:.3g} vs {t:.3g}" for i, (m, t) in means.iterrows())
        print(f"{check:<34} {items:>5} {unit:>4} {worst.min():>18.2f} {worst.mean():>6.2f} "
              f"{worst.max():>6.2f} {failed:>6}  {extra}", flush=True)
    if args.n_large:
        big = validation_table(args.n_large, args.seeds[0])
        occ = big[big["check"] == "wage percentile by occupation"]
        print(f"N = {args.n_large:,} (seed {args.seeds[0]}): {len(occ)} occupation wage percentiles, "
              f"largest error {100 * occ['error'].abs().max():.2f} %, "
              f"{int(big['passed'].sum())}/{len(big)} checks passed")
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
