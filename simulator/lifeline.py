"""Processes started by econsim end with the process that started them, SIGKILL included.

A process killed with ``kill -9`` runs no clean-up code, so its children must notice on
their own.  Every process econsim starts (the embedded model's llama.cpp workers, an
experiment's pool workers, the ``econsim explore`` page server; Ray workers of a local
cluster through :func:`watch_pid`) arms its lifeline as its first act:

1. **Parent-death signal** (Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, see prctl(2)):
   the kernel kills the child the moment its parent dies.  The signal is tied to the
   parent *thread* that forked the child, so it is asked for only when the parent
   started the child from its main thread (which lives as long as the process); a
   child of a short-lived thread relies on the pipe below.  The race of a parent that
   died before the call is closed by comparing ``os.getppid()`` with the parent's pid
   right after it.
2. **A pipe from the parent** (portable): a daemon thread blocks reading a pipe whose
   only write end the parent holds and never writes to; the kernel closes it when the
   parent exits, however it exits, the read returns end-of-file and the thread calls
   ``os._exit`` at once: no ``finally`` block, ``atexit`` hook or buffered write runs,
   so an orphan never writes another byte.  A ``multiprocessing`` spawn child uses the
   pipe multiprocessing already keeps to its parent
   (``multiprocessing.parent_process().sentinel``); a ``subprocess`` child gets one from
   :class:`ChildLifeline` (its read end through ``pass_fds`` and
   ``$ECONSIM_LIFELINE_FD``) and arms it with :func:`arm_from_env`.

multiprocessing's resource tracker is not armed: it exits by itself when every write
end of its pipe (the parent's and each spawned child's) is closed, that is once the
parent and its children are gone.

Processes that a library starts and this process cannot arm (a local Ray instance's
GCS, raylet and agents) are registered with a :class:`Reaper`: a small helper process
that reads their identities from a pipe and, at end-of-file (this process ended, however
it ended), kills those still running and everything below them.

A leaf module: it imports nothing from the rest of ``simulator`` (the inference layer,
at the bottom, uses it).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

#: prctl(2) option: the signal a process gets when its parent thread dies.
PR_SET_PDEATHSIG = 1
#: Exit status of a process whose parent is gone (as if killed by SIGKILL).
ORPHAN_EXIT_STATUS = 128 + signal.SIGKILL
#: Environment of a ``subprocess`` child: the read end of its pipe, the parent's pid,
#: and whether it may ask for the parent-death signal ("1") or not ("0").
ENV_FD = "ECONSIM_LIFELINE_FD"
ENV_PID = "ECONSIM_LIFELINE_PID"
ENV_PDEATHSIG = "ECONSIM_LIFELINE_PDEATHSIG"


def parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent (thread) dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); returns whether it was set.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc prctl (e.g. a static musl build)
        return False


def _orphaned() -> None:
    os._exit(ORPHAN_EXIT_STATUS)


def _watch_fd(fd: int) -> None:
    """Block until the pipe ``fd`` reaches end-of-file (the parent is gone), then exit."""
    while True:
        try:
            if os.read(fd, 4096) == b"":  # blocks; the parent never writes
                break
        except OSError:  # the descriptor itself is gone: nothing left to watch with
            break
    _orphaned()


def watch_fd(fd: int) -> threading.Thread:
    """Start the daemon thread that ends this process when pipe ``fd`` closes."""
    t = threading.Thread(target=_watch_fd, args=(fd,), name="econsim-lifeline", daemon=True)
    t.start()
    return t


def arm(parent_pid: int, fd: int | None = None, *, pdeathsig: bool = True) -> None:
    """In a child, as its first act: end this process when ``parent_pid`` dies.

    ``pdeathsig``: ask for the parent-death signal (only right when the parent started
    this process from its main thread); ``fd``: the read end of the parent's pipe, or
    None for none.  Exits at once if the parent is already gone.
    """
    if pdeathsig:
        parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        _orphaned()
    if fd is not None:
        watch_fd(fd)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------- multiprocessing children
def pool_initializer(parent_pid: int, pdeathsig: bool, initializer: Callable[..., Any] | None,
                     initargs: tuple) -> None:
    """Initializer of a spawned pool worker: arm the lifeline, then run ``initializer``."""
    parent = multiprocessing.parent_process()
    arm(parent_pid, parent.sentinel if parent is not None else None, pdeathsig=pdeathsig)
    if initializer is not None:
        initializer(*initargs)


def pool_arguments(initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> dict[str, Any]:
    """``initializer``/``initargs`` for a ``ProcessPoolExecutor`` (spawn context) whose
    workers end with this process; call it in the thread that submits the work (the one
    that starts the workers)."""
    return {"initializer": pool_initializer,
            "initargs": (os.getpid(), _main_thread(), initializer, tuple(initargs))}


# ----------------------------------------------------------------- subprocess children
class ChildLifeline:
    """The pipe of one ``subprocess`` child: pass :meth:`popen_kwargs` to ``Popen`` and
    keep this object (it holds the write end) until the child has ended; the child calls
    :func:`arm_from_env` first thing."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()  # not inheritable (PEP 446): only pass_fds leaks

    def popen_kwargs(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        env = dict(os.environ if env is None else env)
        env.update({ENV_FD: str(self._read), ENV_PID: str(os.getpid()),
                    ENV_PDEATHSIG: "1" if _main_thread() else "0"})
        return {"env": env, "pass_fds": (self._read,)}

    def started(self) -> None:
        """After ``Popen``: drop this process's copy of the read end."""
        if self._read >= 0:
            os.close(self._read)
            self._read = -1

    def close(self) -> None:
        """After the child ended (closing the write end would end a live child)."""
        self.started()
        if self._write >= 0:
            os.close(self._write)
            self._write = -1


def arm_from_env() -> bool:
    """In a ``subprocess`` child of :class:`ChildLifeline`: arm the lifeline it was given
    (and forget it, so the child's own children do not inherit the variables).  Returns
    whether there was one."""
    fd, pid = os.environ.pop(ENV_FD, None), os.environ.pop(ENV_PID, None)
    pdeathsig = os.environ.pop(ENV_PDEATHSIG, "0") == "1"
    if not fd or not pid:
        return False
    arm(int(pid), int(fd), pdeathsig=pdeathsig)
    return True


# ----------------------------------------------------------------- processes that are not ours
def _start_ticks(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name


def process_identity(pid: int | None = None) -> tuple[int, str | None]:
    """(pid, start time) of ``pid`` (default this process): a pid that cannot be reused
    unnoticed, for :func:`watch_pid` in a process that is not our child."""
    pid = os.getpid() if pid is None else pid
    return pid, _start_ticks(pid)


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or _start_ticks(pid) in (start, None)


def _watch_pid(pid: int, start: str | None, interval: float) -> None:
    fd = None
    if hasattr(os, "pidfd_open") and _alive(pid, start):
        try:
            fd = os.pidfd_open(pid)  # readable once the process has ended (Linux >= 5.3)
        except OSError:
            fd = None
    if fd is not None and _alive(pid, start):  # opened on the right process
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll()  # returns once the process has ended (PEP 475 retries on signals)
    else:
        while _alive(pid, start):
            time.sleep(interval)
    _orphaned()


_WATCHED: set[tuple[int, str | None]] = set()
_WATCHED_GUARD = threading.Lock()


def watch_pid(identity: tuple[int, str | None], interval: float = 0.2) -> None:
    """End this process when the process ``identity`` (:func:`process_identity`) ends.

    For processes that are not its children (a Ray worker of a local cluster and the
    driver that started it); one watching thread per identity and process.
    """
    key = (int(identity[0]), identity[1])
    with _WATCHED_GUARD:
        if key in _WATCHED:
            return
        _WATCHED.add(key)
    if not _alive(*key):
        _orphaned()
    threading.Thread(target=_watch_pid, args=(*key, interval), name="econsim-lifeline-pid",
                     daemon=True).start()


# ----------------------------------------------------------------- a reaper for what we cannot arm
def descendants(pid: int | None = None) -> set[int]:
    """Live processes below ``pid`` (default this one), from /proc; empty without /proc."""
    pid = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().decode("ascii", "replace").rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


_REAPER_MAIN = "from simulator.lifeline import reaper_main; reaper_main()"


class Reaper:
    """Kill registered processes, and everything below them, once this process is gone.

    :meth:`add` writes each process's identity (pid and start time, so that a reused pid
    is never hit) into the pipe of a helper process; when the pipe reaches end-of-file
    (this process ended, SIGKILL included, or :meth:`close` was called) the helper sends
    SIGKILL to those still running and to their descendants, then exits.  Call
    :meth:`close` after shutting the processes down cleanly: it kills what is left.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _REAPER_MAIN], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self._known: set[tuple[int, str | None]] = set()

    def add(self, pids: Iterable[int]) -> None:
        for pid in pids:
            ident = process_identity(pid)
            if pid == self.proc.pid or ident in self._known or ident[1] is None:
                continue
            self._known.add(ident)
            self.proc.stdin.write(f"{ident[0]} {ident[1]}\n")
        self.proc.stdin.flush()

    def close(self, timeout: float = 10.0) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - the helper only sends signals
            self.proc.kill()


def reaper_main() -> None:
    """The helper of :class:`Reaper`: identities on stdin until end-of-file, then kill."""
    for sig in (signal.SIGINT, getattr(signal, "SIGHUP", None)):  # Ctrl-C is for the parent
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    watched = []
    for line in sys.stdin:
        pid, start = line.split()
        watched.append((int(pid), start))
    victims = {(p, s) for p, s in watched if _alive(p, s)}
    for p, _ in list(victims):
        victims |= {process_identity(d) for d in descendants(p)}
    for p, s in victims:
        if _alive(p, s):
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


__all__ = ["ORPHAN_EXIT_STATUS", "ChildLifeline", "Reaper", "arm", "arm_from_env", "descendants",
           "parent_death_signal", "pool_arguments", "pool_initializer", "process_identity", "reaper_main",
           "watch_fd", "watch_pid"]
