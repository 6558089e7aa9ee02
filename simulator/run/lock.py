"""One writer per run directory: an OS-level exclusive lock on ``RUN_DIR/.lock``.

Whoever writes a run directory (``econsim run``, ``resume``, ``fork``, an experiment's
worker for its own run) holds ``fcntl.flock(LOCK_EX)`` on the lock file inside it for the
whole write.  A second writer fails at once (never waits) with
:class:`~simulator.errors.RunLocked`, one line naming the holder's process id and since
when it holds the lock (both written into the lock file).  The kernel drops the lock
when the holder exits, however it exits (SIGKILL included), so a stale lock file left
behind by a killed run never blocks its resume: a lock file without a live ``flock`` is
free.

Within one process the lock is re-entrant for the thread that holds it (an experiment
worker holds its run's lock and calls :func:`~simulator.run.runner.run_scenario`, which
takes it again); another thread of the same process is refused like another process.
Linux and macOS (``fcntl``); on a network file system ``flock`` is only as good as the
server's lock support.

Usage::

    with lock_run_dir(run_dir) as lock:   # raises RunLocked at once if held
        ...                               # write the run
        lock.clear()                      # empty the directory but keep the lock (rerun)
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

from simulator.errors import RunLocked, UserError
from simulator.results import LOCK_FILE

#: The lock file's name inside a run directory.
LOCK_NAME = LOCK_FILE  # ".lock", named in simulator.results (which lists run files)

#: How long :meth:`RunDirLock.acquire` retries a conflict whose holder is not (yet) a
#: live process: a probe by :func:`is_locked` holds a shared lock for microseconds, and a
#: new holder writes its pid just after taking the lock (seconds).
_SETTLE_S = 0.25


class _Held:
    """This process's holds, keyed by the resolved directory (flock conflicts between two
    open files of one process, so re-entry has to be known here)."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.by_dir: dict[str, tuple[int, int, int]] = {}  # dir -> (pid, thread id, depth)


_HELD = _Held()  # process-scoped by nature: flock ownership belongs to the process


def lock_file(path: str | Path) -> Path:
    """Where the lock of run directory ``path`` lives."""
    return Path(path) / LOCK_NAME


def _key(path: Path) -> str:
    return str(path.resolve())


def _read_holder(path: Path) -> tuple[int | None, str | None]:
    """(pid, since) as written in the lock file, or (None, None)."""
    try:
        text = lock_file(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None, None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        pid = int(fields.get("pid", ""))
    except ValueError:
        pid = None
    return pid, fields.get("since") or None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunDirLock:
    """The exclusive lock of one run directory; a context manager.

    :meth:`acquire` never blocks: it raises :class:`~simulator.errors.RunLocked` when
    another process (or another thread of this one) holds the lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._nested = False

    @property
    def held(self) -> bool:
        return self._fd is not None or self._nested

    def acquire(self) -> RunDirLock:
        if self.held:
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        key = _key(self.path)
        me = (os.getpid(), threading.get_ident())
        with _HELD.guard:
            held = _HELD.by_dir.get(key)
            if held is not None and held[0] == os.getpid():
                if held[1] != me[1]:
                    raise RunLocked(self.path, os.getpid(), _read_holder(self.path)[1])
                _HELD.by_dir[key] = (*me, held[2] + 1)
                self._nested = True
                return self
            self._fd = self._lock_fd()
            _HELD.by_dir[key] = (*me, 1)
        return self

    def _lock_fd(self) -> int:
        """Open and flock the lock file; write the holder into it."""
        target = lock_file(self.path)
        deadline = time.monotonic() + _SETTLE_S
        while True:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                pid, since = _read_holder(self.path)
                if _alive(pid) and pid != os.getpid() or time.monotonic() > deadline:
                    raise RunLocked(self.path, pid, since) from None
                time.sleep(0.01)  # a probe, or a holder about to write its pid
                continue
            # the file may have been unlinked (by a holder releasing it) between open and flock
            try:
                same = os.fstat(fd).st_ino == os.stat(target).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        since = datetime.now().astimezone().isoformat(timespec="seconds")
        data = f"pid={os.getpid()}\nsince={since}\nhost={socket.gethostname()}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return fd

    def release(self, unlink: bool = False) -> None:
        """Let go of the lock (``unlink``: and remove the lock file, e.g. when the run
        directory is discarded; only the outermost holder does)."""
        key = _key(self.path) if self.held else None
        with _HELD.guard:
            if self._nested:
                self._nested = False
                if (entry := _HELD.by_dir.get(key)) is not None:
                    _HELD.by_dir[key] = (entry[0], entry[1], entry[2] - 1)
                return
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            _HELD.by_dir.pop(key, None)
            try:
                if unlink:
                    lock_file(self.path).unlink(missing_ok=True)  # still held: no one can race us
                else:
                    os.ftruncate(fd, 0)  # a free lock names no holder
            finally:
                os.close(fd)  # closing the only open file drops the flock

    def clear(self) -> None:
        """Remove everything in the run directory but the lock file (a rerun from scratch
        while holding the lock; never delete a locked directory itself)."""
        if not self.held:
            raise RuntimeError(f"{self.path}: clear() needs the lock held")
        for entry in self.path.iterdir():
            if entry.name == LOCK_NAME:
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    @staticmethod
    def holder_pid(path: str | Path) -> int | None:
        """The pid of the process holding ``path``'s lock, None if it is not held."""
        return _read_holder(Path(path))[0] if is_locked(path) else None

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunDirLock({str(self.path)!r}, held={self.held})"


def lock_run_dir(path: str | Path) -> RunDirLock:
    """Take the lock of run directory ``path`` (created if needed); raises
    :class:`~simulator.errors.RunLocked` at once when someone else holds it."""
    return RunDirLock(path).acquire()


def is_locked(path: str | Path) -> bool:
    """Whether some live process (this one included) holds ``path``'s lock (probed with a
    non-blocking shared ``flock``, so a lock file left by a killed run reads as free)."""
    path = Path(path)
    with _HELD.guard:
        held = _HELD.by_dir.get(_key(path)) if path.exists() else None
        if held is not None and held[0] == os.getpid():
            return True
    try:
        fd = os.open(lock_file(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


__all__ = ["LOCK_NAME", "RunDirLock", "RunLocked", "is_locked", "lock_file", "lock_run_dir"]
