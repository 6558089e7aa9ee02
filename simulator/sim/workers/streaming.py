"""Streamed batches: build and send prompts in backend-sized chunks.

A step over a million workers must never hold a million prompts (or responses) at once.
:func:`generate_streamed` takes the worker indices to ask, orders them so that prompts
sharing a prefix are adjacent (callers pass a sort key: the cell, or the persona), builds
the requests of one chunk, sends them in one ``generate`` call, hands the responses to a
``consume`` callback and drops them.  The chunk size comes from the backend
(:func:`chunk_size_for`, the backend's :meth:`~simulator.llm.types.LanguageModel.chunk_size`):
large for vLLM (its scheduler wants the whole queue), a multiple of the in-flight limit
for HTTP servers, a multiple of the process pool for the embedded model.  A batch no
larger than one chunk is sent as one call, as before.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np

from simulator.llm.types import Request, Response, preferred_chunk
from simulator.llm.types import backend_of as backend_of  # re-export (benchmarks, tests)
from simulator.sim.progress import batch_progress

#: requests per ``generate`` call for a backend that declares no chunk size
DEFAULT_CHUNK = 4_096


def chunk_size_for(llm) -> int:
    """Requests per ``generate`` call for this model stack (see the module docstring)."""
    return preferred_chunk(llm) or DEFAULT_CHUNK


def generate_streamed(
    llm,
    idx: np.ndarray,
    build: Callable[[np.ndarray], Sequence[Request]],
    consume: Callable[[np.ndarray, list[Response], Sequence[Request]], None],
    *,
    chunk: int | None = None,
    desc: str = "prompts",
) -> None:
    """Ask for ``idx`` (in the given order) chunk by chunk.

    ``build(chunk_idx)`` returns one request per index; ``consume(chunk_idx, responses,
    requests)`` stores what it needs.  A progress bar shows on a terminal when there is
    more than one chunk.
    """
    idx = np.asarray(idx)
    size = int(chunk or chunk_size_for(llm))
    n = idx.size
    if n == 0:
        return
    bar = None
    if n > size and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=n, desc=desc, unit="prompt", leave=False, file=sys.stderr)
    try:
        for start in range(0, n, size):
            part = idx[start:start + size]
            reqs = build(part)
            with batch_progress(desc, len(reqs)):  # off a terminal: a plain line per long batch
                replies = llm.generate(reqs)
            consume(part, replies, reqs)
            if bar is not None:
                bar.update(part.size)
    finally:
        if bar is not None:
            bar.close()


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrap-around arithmetic)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def worker_seeds(run_seed: int, ask: int, question: int, workers: np.ndarray) -> np.ndarray:
    """Request seeds (0 .. 2**31-2) that depend only on the run seed, which ask of the run
    this is (a counter), the question and the worker's row: a worker asked directly and
    the same worker asked as a representative get the same seed, so pooled and
    one-call-per-worker runs use common random numbers."""
    base = _mix64(np.array([(int(run_seed) << 24) ^ (int(ask) << 4) ^ int(question)], dtype=np.uint64))
    with np.errstate(over="ignore"):
        z = _mix64(base ^ (np.asarray(workers, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    return (z % np.uint64(2**31 - 1)).astype(np.int64)


def prefix_order(keys: np.ndarray) -> np.ndarray:
    """A stable order that puts equal (or similar) prompt starts next to each other."""
    return np.argsort(np.asarray(keys), kind="stable")
