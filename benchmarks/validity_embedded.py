"""The behavioural validity report of the embedded model, over seeds (docs/validity.md).

    .venv/bin/python benchmarks/validity_embedded.py [--scenario quickstart] [--workers 10]
        [--seeds 42 1 2]

Runs ``econsim behaviour SCENARIO --workers N --set run.seed=S --set llm.cache=off`` for
every seed (a fresh answer from the model each time, no cached replies) and prints, per
seed, the wall time and the report's table as the command prints it, then, per check,
the values and verdicts side by side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header, portable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(scenario: str, workers: int, seed: int) -> tuple[float, str, Path]:
    out = Path(tempfile.mkdtemp(prefix=f"validity-{seed}-"))
    cmd = [str(Path(sys.executable).with_name("econsim")), "behaviour", scenario, "--workers", str(workers),
           "--set", f"run.seed={seed}", "--set", "llm.cache=off", "--no-progress", "--out", str(out / "run")]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    text = done.stdout + (f"\n(exit status {done.returncode}) {done.stderr.strip()[-300:]}" if done.returncode not in (0, 3) else "")
    return wall, portable(text), out / "run" / "validity.parquet"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="quickstart")
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    args = ap.parse_args(argv)
    if args.workers < 1 or not args.seeds:
        ap.error("--workers must be at least 1 and --seeds not empty")
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    tables = {}
    for seed in args.seeds:
        wall, text, parquet = run(args.scenario, args.workers, seed)
        print(f"\n## seed {seed}: econsim behaviour {args.scenario} --workers {args.workers}, "
              f"cache off: {wall:.0f} s")
        print(text.rstrip(), flush=True)
        if parquet.exists():
            import pandas as pd  # deferred: only when a report was written

            tables[seed] = pd.read_parquet(parquet).set_index("check")
    if tables:
        print(f"\n## by check: value (verdict), seeds {', '.join(map(str, tables))}")
        first = next(iter(tables.values()))
        for check in first.index:
            if check == "dispersion.band":
                continue
            cells = []
            for t in tables.values():
                r = t.loc[check]
                r = r.iloc[0] if hasattr(r, "iloc") and r.ndim > 1 else r
                v = r.get("value")
                cells.append(f"{v:.2f} ({r.get('verdict')})" if isinstance(v, float) and v == v
                             else f"- ({r.get('verdict')})")
            print(f"{check:<26} " + " | ".join(cells))
    print(footer(started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
