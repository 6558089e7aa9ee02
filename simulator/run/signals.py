"""Clean stops: SIGTERM and SIGINT end a run after its last whole tax year.

The runner calls :func:`begin` (records the process in the manifest, installs the
handlers) and :func:`mark_interrupted` when a signal stopped the run; the end-of-year
writes run inside :meth:`StopGuard.critical`, so a run directory always holds whole tax
years.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from simulator.results import RunWriter
from simulator.run.agent_sample import agents_table
from simulator.run.state import finished_years

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT stopped a run; the current tax year is abandoned."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopGuard:
    """Turns SIGTERM/SIGINT into :class:`RunInterrupted`, except inside critical sections.

    A signal that arrives while the end-of-year files are written is held until they are
    all on disk, so the run directory always holds whole tax years.  After the first
    signal further ones are ignored while the run winds down.
    """

    def __init__(self) -> None:
        self.pending: int | None = None
        self.depth = 0
        self.fired = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.fired:
            return
        if self.depth:
            self.pending = signum
            return
        self.fired = True
        raise RunInterrupted(signum)

    def install(self) -> StopGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Hold signals until the block has finished."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None and not self.fired:
            self.fired = True
            raise RunInterrupted(self.pending)

    def hold(self) -> None:
        """From now on (the run's last writes) signals are held for good."""
        self.depth += 1


def begin(writer: RunWriter) -> StopGuard:
    """Record this process in the manifest and install the stop-signal handlers."""
    writer.manifest.update(pid=os.getpid(), host=socket.gethostname())
    writer.write_manifest()
    return StopGuard().install()


def mark_interrupted(writer: RunWriter, model: EconomyModel | None, exc: BaseException,
                     stream: TextIO | None = None) -> None:
    """Close the run as ``interrupted``: only whole tax years stay, and say how to resume.

    The current tax year is abandoned: ``years``, ``steps`` and the other tables on disk
    are those of the last checkpoint (written together with it); ``agents`` is written
    for the same years.
    """
    stream = stream or sys.stderr
    done = finished_years(writer.dir)
    n_done = done[-1] + 1 if done else 0
    if model is not None and model.settings.output.agents_table and n_done:
        writer.write_table("agents", agents_table(model, n_done))
    why = f"signal {exc.args[0]}" if isinstance(exc, RunInterrupted) else "interrupted by the user"
    total = model.settings.run.tax_years if model is not None else writer.manifest.get("scenario", {}).get(
        "run", {}).get("tax_years", "?")
    if done:
        reason = (f"{why}: stopped after tax year {done[-1]} ({n_done} of {total} years kept); "
                  f"continue with: econsim resume {writer.dir}")
    elif model is not None and model.settings.output.checkpoints == "off":
        reason = f"{why}: stopped (output.checkpoints is off, so it cannot be resumed)"
    else:
        reason = f"{why}: stopped before the first tax year ended (nothing to resume)"
    writer.manifest["years_completed"] = n_done
    writer.finish("interrupted", reason, notes=getattr(model, "notes", []))
    print(f"econsim: {reason}", file=stream)
