"""The provenance lines every benchmark prints: script, date, machine, load.

Every table of figures in ``docs/*.md`` and ``README.md`` is pasted from a script in
``benchmarks/`` together with the first line this module prints::

    printed by benchmarks/core.py --n 1000000 | 2026-12-02 16:50 UTC | AMD EPYC, 2 cores, 23 GiB RAM | load average 0.40 0.13 0.04 | Python 3.11.7, numpy 2.4.6

and ``tests/test_docs.py`` fails on a figure block without such a line (an existing
script, a date, the cores and the load average). ``footer`` gives the end time, the
wall time and the load again, since a long benchmark's load can change while it runs.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float | None:
    """Total RAM in GiB (``/proc/meminfo``), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``os.getloadavg``)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    """CPU model, cores and RAM, e.g. ``AMD EPYC, 2 cores, 23 GiB RAM``."""
    mem = memory_gib()
    ram = f", {mem:.0f} GiB RAM" if mem is not None else ""
    return f"{cpu_model()}, {os.cpu_count()} cores{ram}"


def portable(text: str) -> str:
    """``text`` with this machine's paths replaced: the checkout by ``.``, the temporary
    directory by ``$TMPDIR`` (so pasted output names no machine)."""
    import tempfile

    text = text.replace(str(ROOT) + "/", "./").replace(str(ROOT), ".")
    tmp = tempfile.gettempdir()
    return re.sub(re.escape(tmp) + r"(?=/|\b)", "$TMPDIR", text)


def header(script: str, argv: list[str] | None = None) -> str:
    """The first line of a benchmark's output: what printed it, when, where, under what load."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(script).resolve()
    try:
        name = path.relative_to(ROOT).as_posix()
    except ValueError:
        name = path.name
    libs = [f"Python {platform.python_version()}"]
    np = sys.modules.get("numpy")
    if np is not None:
        libs.append(f"numpy {np.__version__}")
    cmd = portable(" ".join([name, *argv]))
    return f"printed by {cmd} | {_now()} | {machine()} | load average {load_average()} | {', '.join(libs)}"


def footer(started: float) -> str:
    """The last line: end time, wall time since ``started`` (``time.perf_counter()``), load."""
    return (f"finished {_now()} after {time.perf_counter() - started:.1f} s | "
            f"load average {load_average()}")


def snapshot(rev: str) -> Path:
    """The tree of git revision ``rev`` of this checkout, extracted into a temporary
    directory that is removed when the process exits: the "before" side of a benchmark
    that measures old code against new in one run (``--against REV``).  Raises
    ``SystemExit`` with one line when ``rev`` is not a revision of this checkout."""
    import atexit
    import shutil
    import subprocess
    import tempfile

    probe = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise SystemExit(f"error: --against {rev}: not a git revision of {portable(str(ROOT))}")
    out = Path(tempfile.mkdtemp(prefix=f"econsim-{rev[:12]}-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", probe.stdout.strip()],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def revision(root: Path = ROOT) -> str:
    """The short commit of ``root`` with ``+`` when its tracked files differ from it."""
    import subprocess

    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD"], capture_output=True).returncode
    return head + ("+" if dirty else "")
