"""Run a command and report its wall time and the peak of the summed resident memory of
it and all its descendants (e.g. the embedded model's worker processes), sampled every
0.5 s from /proc (Linux).

    .venv/bin/python benchmarks/peak_rss.py .venv/bin/econsim run million --set run.tax_years=1
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header  # noqa: E402


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = int(open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, stack = [], [pid]
    while stack:
        q = stack.pop()
        out.append(q)
        stack += children.get(q, [])
    return out


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: peak_rss.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    print(header(__file__, argv), flush=True)
    proc = subprocess.Popen(argv)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(rss_bytes(q) for q in descendants(proc.pid)))
        time.sleep(0.5)
    print(f"peak summed RSS {peak / 2**30:.2f} GiB; wall {time.perf_counter() - t0:.0f} s; "
          f"exit status {proc.returncode}", flush=True)
    print(footer(t0))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
