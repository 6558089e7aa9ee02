"""Progress for long work when stderr is not a terminal (CI logs, ``| tee``, nohup).

On a terminal the tqdm bars show progress; off a terminal they are hidden and these
helpers print one plain line per tax year and per long LLM batch to stderr instead, so
a piped run is never silent for minutes.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

#: batches smaller than this finish too fast to be worth a line
MIN_BATCH_LINE = 32


def plain_progress() -> bool:
    """True when stderr is not a terminal (print plain lines instead of bars)."""
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def line(text: str) -> None:
    """One progress line on stderr, flushed at once."""
    print(f"econsim: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def batch_progress(desc: str, n: int) -> Iterator[None]:
    """Around one whole-batch ``generate`` call: off a terminal, a line when a batch of at
    least :data:`MIN_BATCH_LINE` prompts starts and one when it ends, with its wall time."""
    show = n >= MIN_BATCH_LINE and plain_progress()
    t0 = time.perf_counter()
    if show:
        line(f"{desc}: {n:,} prompts ...")
    yield
    if show:
        line(f"{desc}: {n:,} prompts done in {time.perf_counter() - t0:.1f} s")


def year_line(record: dict, total: int) -> None:
    """The plain line after each tax year: objective, hours, and fallbacks if any."""
    text = (f"tax year {record['year']} ({record['year'] + 1}/{total} done): "
            f"objective {record['objective']:.6g}, "
            f"mean hours {record['mean_hours']:.1f}")
    if "fallback_rate" in record:
        text += f", fallback {record['fallback_rate']:.0%}"
    if record.get("transport_failure_rate"):
        text += f", transport failures {record['transport_failure_rate']:.0%}"
    line(text)
