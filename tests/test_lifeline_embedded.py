"""``kill -9`` of ``econsim run`` on the embedded backend: its llama.cpp worker processes
(and multiprocessing's resource tracker) end within seconds instead of living on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest_llm import needs_llama
from test_lifeline import descendants, gone_within, kill_tree

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [needs_llama, pytest.mark.embedded, pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")]

#: A process holding more than this much resident memory has the model loaded (the
#: 135M model takes about 235 MB a process; a bare spawned Python about 20 MB).
MODEL_RSS_BYTES = 100 * 2**20


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def test_kill_9_of_an_embedded_run_ends_its_model_processes(tmp_path):
    data = {
        "population": {"size": 8, "source": "census"},  # batches of 8 go to the pool of 2
        "workers": {"policy": "llm"},
        "planner": {"kind": "us_federal"},
        "run": {"tax_years": 20, "seed": 3},
        "llm": {"backend": "embedded", "cache": "off", "embedded_processes": 2,
                "embedded_quantize": False},
    }
    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli.main", "run", str(scen), "--out", str(tmp_path / "run"),
         "--no-progress"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kids: set[int] = set()
    try:
        deadline = time.monotonic() + 400
        while True:  # both pool workers have loaded the model
            kids = descendants(proc.pid)
            models = {k for k in kids if rss(k) > MODEL_RSS_BYTES}
            if len(models) >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the model processes never started"
            time.sleep(0.2)
        time.sleep(0.5)
        kids = descendants(proc.pid)  # the workers, the resource tracker, ...
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        left = gone_within(kids, 5.0)
        assert not left, f"processes {sorted(left)} outlived the killed run by 5 s"
        assert time.monotonic() - t0 < 5.0
    finally:
        kill_tree(proc.pid, kids)
