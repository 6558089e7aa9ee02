"""benchmarks/core.py and scale.py with ``--against REV``: old code against new in one
run. Against this checkout's own HEAD (same code on both sides) every ratio is printed
and the equilibrium's best-response passes are the same on both sides; a revision that
does not exist is one line, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT / "tests"))
from test_docs import provenance_problems  # noqa: E402

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0,
    reason="not a git checkout")


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def test_core_against_head_prints_both_sides_and_their_ratios():
    proc = _run("core.py", "--n", "20000", "--repeat", "2", "--rounds", "1", "--against", "HEAD")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert not provenance_problems(out)
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(\S+ .+?)\s{2,}([\d.e+-]+)\s+([\d.e+-]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*(.*)$", line)
        if m and not line.startswith("-"):
            rows[m.group(1).strip()] = [float(m.group(i)) for i in range(2, 8)] + [m.group(8)]
    labels = [k for k in rows if k.startswith(("best_response", "equilibrium", "evaluate"))]
    assert len(labels) == 6, out
    for k in labels:
        old, new, ratio = rows[k][:3]
        assert ratio == pytest.approx(old / new, rel=0.01, abs=0.006)
    eq = next(k for k in labels if k.startswith("equilibrium"))
    old_p, new_p = (int(x) for x in rows[eq][6].split("/"))
    assert old_p == new_p >= 1  # the same code on both sides
    ev = next(k for k in labels if k.startswith("evaluate"))
    assert rows[ev][4] == pytest.approx(1.0) and rows[ev][5] == pytest.approx(1.0)


def test_against_an_unknown_revision_is_one_line():
    proc = _run("core.py", "--n", "100", "--against", "no-such-revision-0123")
    assert proc.returncode != 0
    assert "--against no-such-revision-0123: not a git revision" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
