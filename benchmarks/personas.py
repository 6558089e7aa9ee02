"""Benchmark of ``personas.generate``: wall time and peak memory for 10k, 100k, 1M.

Each size runs in a fresh subprocess so that peak memory (max RSS, including the
interpreter and imports) is that of one generation.  Usage:

    python benchmarks/personas.py [--sizes 10000 100000 1000000] [--seed 0]
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

_CHILD = """
import json, resource, sys, time
import personas
personas.generate(10, 0)  # build the calibration once (cached), as a long-lived user would
n, seed = int(sys.argv[1]), int(sys.argv[2])
t0 = time.perf_counter()
df = personas.generate(n, seed)
dt = time.perf_counter() - t0
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "seconds": dt, "peak_mb": peak_kb / 1024, "rows": len(df)}))
"""


def run(n: int, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(n), str(seed)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    print(f"{'n':>10}  {'seconds':>8}  {'peak MB':>8}")
    for n in args.sizes:
        r = run(n, args.seed)
        print(f"{r['n']:>10,}  {r['seconds']:>8.2f}  {r['peak_mb']:>8.0f}", flush=True)
    print(footer(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
