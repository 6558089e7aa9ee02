"""Child processes end with their parent (simulator.lifeline), SIGKILL included.

Each case starts a small parent script in a subprocess, lets it start a child the way
econsim does, kills the parent with SIGKILL and checks (through /proc, by pid, never by
name) that the child is gone within a few seconds and writes nothing afterwards.  The
helpers :func:`descendants`, :func:`gone_within` and :func:`tree_snapshot` are shared by
the kill -9 tests of experiments, the embedded model and the explore page.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from simulator import lifeline

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


# ----------------------------------------------------------------- /proc helpers (shared)
def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid`` from /proc, None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a zombie has ended; only its parent,
    here often an init that reaps slowly, has not collected its status yet)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None and st[0] not in ("Z", "X"):
            children.setdefault(st[1], []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def gone_within(pids: set[int], seconds: float) -> set[int]:
    """Wait up to ``seconds`` for ``pids`` to end; returns those still alive."""
    deadline = time.monotonic() + seconds
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if alive(p)}
    return left


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (mtime_ns, size)} of every file under ``root``."""
    out = {}
    for p in root.rglob("*"):
        try:
            if p.is_file():
                st = p.stat()
                out[str(p.relative_to(root))] = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:  # replaced while listing
            continue
    return out


def kill_tree(pid: int, known: set[int] = frozenset()) -> None:
    """Clean-up after a test: SIGKILL ``pid``, what is left below it, and ``known``
    (processes recorded below it earlier: orphans are no longer below it)."""
    for p in [*descendants(pid), pid, *(k for k in known if alive(k))]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# ----------------------------------------------------------------- the mechanism itself
_TICKER = """
import os, sys, time
def tick(path):
    while True:  # a child that keeps writing until it is stopped
        with open(path, "a") as f:
            f.write("x")
        time.sleep(0.05)
"""

_POOL_PARENT = _TICKER + """
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from simulator.lifeline import pool_arguments

def start():
    global pool
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), **pool_arguments())
    pool.submit(tick, sys.argv[1])

if __name__ == "__main__":
    if sys.argv[2] == "main":
        start()
    else:  # from a thread: no parent-death signal, the pipe alone
        t = threading.Thread(target=start)
        t.start()
        t.join()  # the starting thread is gone (a death signal tied to it would fire now)
    print("started", flush=True)
    time.sleep(600)
"""

_POPEN_PARENT = """
import subprocess, sys, time
from simulator.lifeline import ChildLifeline
line = ChildLifeline()
kw = line.popen_kwargs()
kw["env"]["ECONSIM_LIFELINE_PDEATHSIG"] = sys.argv[2]  # "0": the pipe alone
child = subprocess.Popen([sys.executable, "-c", sys.argv[3], sys.argv[1]], **kw)
line.started()
print("started", flush=True)
time.sleep(600)
"""

_POPEN_CHILD = _TICKER + """
from simulator.lifeline import arm_from_env
assert arm_from_env()
tick(sys.argv[1])
"""


def _start_parent(script: str, *args: str, where: Path) -> subprocess.Popen:
    """Run ``script`` from a file (spawned children import its functions from there)."""
    path = where / "parent.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path), *args], env=env(), stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "started"
    return proc


def _check_child_dies_with(proc: subprocess.Popen, out: Path) -> None:
    kids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 3):  # the child is up and writing
            assert time.monotonic() < deadline, "the child never wrote"
            time.sleep(0.05)
        kids = descendants(proc.pid)
        assert kids, "no child process"
        time.sleep(0.3)
        assert gone_within(kids, 0.1) == kids  # still running while the parent lives
        t0 = time.monotonic()
        proc.kill()
        proc.wait()
        left = gone_within(kids, 5.0)
        took = time.monotonic() - t0
        assert not left, f"children {sorted(left)} outlived their parent by 5 s"
        size = out.stat().st_size
        time.sleep(1.0)
        assert out.stat().st_size == size, "an orphan kept writing"
        assert took < 5.0
    finally:
        kill_tree(proc.pid, kids)


@pytest.mark.parametrize("started_from", ["main", "thread"])
def test_pool_worker_dies_with_its_parent(tmp_path, started_from):
    """Parent-death signal (main thread) or the pipe alone (a pool started from a thread
    that has ended: the child must *not* die with that thread, only with the process)."""
    out = tmp_path / "ticks"
    proc = _start_parent(_POOL_PARENT, str(out), started_from, where=tmp_path)
    _check_child_dies_with(proc, out)


@pytest.mark.parametrize("pdeathsig", ["1", "0"])
def test_subprocess_child_dies_with_its_parent(tmp_path, pdeathsig):
    out = tmp_path / "ticks"
    proc = _start_parent(_POPEN_PARENT, str(out), pdeathsig, _POPEN_CHILD, where=tmp_path)
    _check_child_dies_with(proc, out)


def test_watch_pid_ends_a_process_that_is_not_a_child(tmp_path):
    """A Ray worker of a local instance is no child of the driver: it watches its pid."""
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    out = tmp_path / "ticks"
    watcher_src = _TICKER + textwrap.dedent("""
        from simulator.lifeline import process_identity, watch_pid
        watch_pid(process_identity(int(sys.argv[2])))
        tick(sys.argv[1])
    """)
    watcher = subprocess.Popen([sys.executable, "-c", watcher_src, str(out), str(target.pid)], env=env())
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 3):
            assert time.monotonic() < deadline and watcher.poll() is None
            time.sleep(0.05)
        target.kill()
        target.wait()
        rc = watcher.wait(timeout=5)
        assert rc == lifeline.ORPHAN_EXIT_STATUS
    finally:
        target.kill()
        watcher.kill()


def test_arm_exits_at_once_when_the_parent_is_already_gone():
    code = "import os; from simulator.lifeline import arm; arm(os.getppid() + 1000000); print('alive')"
    res = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == lifeline.ORPHAN_EXIT_STATUS and "alive" not in res.stdout


def test_process_identity_tells_a_reused_pid_apart():
    pid, start = lifeline.process_identity()
    assert pid == os.getpid() and start is not None
    assert lifeline._alive(pid, start) and not lifeline._alive(pid, str(int(start) + 1))
