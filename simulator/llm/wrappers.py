"""Wrappers around any :class:`LanguageModel`: retry, concurrency limit, telemetry; and the
run-long circuit breaker a backend keeps on its server (:class:`CircuitBreaker`)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.llm.types import BREAKER_MARK, LanguageModel, ModelWrapper, Request, Response


# --------------------------------------------------------------------------- retry
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: sleep ``uniform(0, min(cap, base * 2**attempt))``."""

    max_retries: int = 3
    base_s: float = 0.5
    cap_s: float = 20.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        r = rng or random
        return r.uniform(0.0, min(self.cap_s, self.base_s * (2**attempt)))


def derive_seed(seed: int, attempt: int) -> int:
    """A different, reproducible seed for re-ask number ``attempt`` (>= 1)."""
    if attempt == 0:
        return seed
    h = hashlib.sha256(f"{seed}:{attempt}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


class RetryingModel(ModelWrapper):
    """Re-ask invalid replies (with a derived seed) and retry transport failures.

    - ``error_kind == "invalid"``: re-asked at once up to ``policy.max_retries`` times with
      seed :func:`derive_seed(seed, attempt)`; a request at temperature 0 is re-asked at
      ``reask_min_temperature`` (a greedy re-ask would repeat the same reply).
    - ``error_kind == "transport"`` (only if ``retry_transport``): retried after an
      exponential backoff with jitter.  Backends that retry per request themselves (the
      openai backend) are wrapped with ``retry_transport=False``.

    ``Response.retries`` accumulates the attempts; the last response is kept.
    """

    def __init__(
        self,
        inner: LanguageModel,
        policy: RetryPolicy | None = None,
        *,
        retry_transport: bool = True,
        reask_min_temperature: float = 0.7,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self.retry_transport = retry_transport
        self.reask_min_temperature = reask_min_temperature
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _retryable(self, r: Response) -> bool:
        return r.error_kind == "invalid" or (self.retry_transport and r.error_kind == "transport")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        out = list(self.inner.generate(requests))
        for attempt in range(1, self.policy.max_retries + 1):
            todo = [i for i, r in enumerate(out) if self._retryable(r)]
            if not todo:
                break
            if any(out[i].error_kind == "transport" for i in todo):
                self._sleep(self.policy.delay(attempt - 1, self._rng))
            again = []
            for i in todo:
                r = requests[i]
                temp = r.temperature
                if out[i].error_kind == "invalid" and temp < self.reask_min_temperature:
                    temp = self.reask_min_temperature
                # a transport retry asks the same question again (same seed); only a re-ask
                # after an invalid reply samples differently
                seed = derive_seed(r.seed, attempt) if out[i].error_kind == "invalid" else r.seed
                again.append(r.replace(seed=seed, temperature=temp))
            fresh = self.inner.generate(again)
            for i, resp in zip(todo, fresh, strict=True):
                resp.retries += out[i].retries + 1
                resp.latency_s += out[i].latency_s
                resp.prompt_tokens += out[i].prompt_tokens
                resp.completion_tokens += out[i].completion_tokens
                out[i] = resp
        return out


# --------------------------------------------------------------------------- concurrency
class ConcurrencyLimit(ModelWrapper):
    """At most ``max_calls`` concurrent ``generate`` calls (from threads), and batches of at
    most ``max_batch`` requests per inner call (``None``: unlimited).

    The embedded backend is wrapped with ``max_calls=1`` (llama.cpp objects are not
    thread-safe); the openai backend bounds in-flight requests itself.
    """

    def __init__(self, inner: LanguageModel, max_calls: int = 1, max_batch: int | None = None) -> None:
        super().__init__(inner)
        self._sem = threading.BoundedSemaphore(max_calls)
        self.max_batch = max_batch

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        with self._sem:
            if not self.max_batch or len(requests) <= self.max_batch:
                return list(self.inner.generate(requests))
            out: list[Response] = []
            for i in range(0, len(requests), self.max_batch):
                out += self.inner.generate(requests[i : i + self.max_batch])
            return out


# --------------------------------------------------------------------------- circuit breaker
class CircuitBreaker:
    """One backend's verdict on its server, kept for the whole run (thread-safe).

    It counts requests that ended (after their own retries) in a row in a transport
    failure, across batches, chunks and ``generate`` calls alike; a usable or unusable
    reply of any kind in between starts the count again.  Once ``after`` requests in a
    row have failed (``after`` 0: never), it *opens*: :attr:`open` is the error text
    every request then ends with, without being sent.  While open, :meth:`probe_due`
    says when the owner may send one cheap probe (at once after opening no, then at
    most once every ``probe_every_s`` seconds); :meth:`probed` with its verdict closes
    the breaker (the server answers again) or keeps it open until the next probe.

    So a dead or hung server costs the timeouts of the one wave of requests that opened
    the breaker, plus at most one probe per ``probe_every_s``, however many requests,
    chunks or steps follow.  ``clock``: seconds, monotonic (tests inject one).
    """

    def __init__(self, after: int, probe_every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.after = int(after)
        self.probe_every_s = float(probe_every_s)
        self._clock = clock
        self._lock = threading.Lock()
        self.in_a_row = 0
        self.timeouts = 0
        self.last_error: str | None = None
        #: the error text of requests not sent while open; ``None``: closed
        self.open: str | None = None
        self._opening: str | None = None  # why it opened (kept across failed probes)
        self._next_probe = 0.0
        #: times it opened, and probes sent, over the backend's life
        self.trips = 0
        self.probes = 0

    def ended(self, error_kind: str | None, error: str | None, where: str) -> bool:
        """Count one request that ended; ``True`` when this request opened the breaker."""
        with self._lock:
            if error_kind != "transport":
                self.in_a_row = self.timeouts = 0  # the server answered
                return False
            self.in_a_row += 1
            self.timeouts += (error or "").startswith("transport: timeout")
            self.last_error = error
            if not self.after or self.open is not None or self.in_a_row < self.after:
                return False
            how = "timed out" if self.timeouts == self.in_a_row else "failed (transport)"
            last = " ".join(str(error or "").split())[:160].removeprefix("transport: ")
            self._opening = (f"transport: {BREAKER_MARK} at {where}: {self.in_a_row} requests in a row "
                             f"{how}, the last: {last}")
            self.open = f"{self._opening}; not sent until a probe answers (llm.breaker_after)"
            self.trips += 1
            self._next_probe = self._clock() + self.probe_every_s
            return True

    def probe_due(self) -> bool:
        """Open, and time for a probe: ``True`` once per ``probe_every_s`` (the caller
        sends it; other callers meanwhile see ``False`` and fail fast)."""
        with self._lock:
            if self.open is None or self._clock() < self._next_probe:
                return False
            self._next_probe = self._clock() + self.probe_every_s
            self.probes += 1
            return True

    def probed(self, answered: bool, why: str) -> None:
        """The probe's verdict: ``answered`` closes the breaker; otherwise it stays open
        and its text says what the probe got (``why``)."""
        with self._lock:
            if answered:
                self.open = self._opening = None
                self.in_a_row = self.timeouts = 0
                return
            if self._opening is not None:
                self.open = (f"{self._opening}; still not answering a probe ({why}); not sent until "
                             "a probe answers (llm.breaker_after)")


# --------------------------------------------------------------------------- telemetry
@dataclass(frozen=True)
class CallRecord:
    period: str
    tag: str
    latency_s: float
    cached: bool
    prompt_tokens: int
    completion_tokens: int
    retries: int
    ok: bool
    error_kind: str | None
    service_s: float | None = None
    error: str | None = None  # the failure's text (e.g. "http 404: ..."), for the run's failure line


def _agg(records: Sequence[CallRecord]) -> dict[str, Any]:
    lat = np.array([r.latency_s for r in records if not r.cached], dtype=float)
    # queue wait and service time apart, where the server reports its time (llama.cpp)
    svc = np.array([r.service_s for r in records if not r.cached and r.service_s is not None], dtype=float)
    queue = np.array([max(r.latency_s - r.service_s, 0.0) for r in records
                      if not r.cached and r.service_s is not None], dtype=float)
    return {
        "service_p50_s": float(np.percentile(svc, 50)) if svc.size else float("nan"),
        "queue_p50_s": float(np.percentile(queue, 50)) if queue.size else float("nan"),
        "requests": len(records),
        "cache_hits": sum(r.cached for r in records),
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "completion_tokens": sum(r.completion_tokens for r in records),
        "latency_p50_s": float(np.percentile(lat, 50)) if lat.size else 0.0,
        "latency_p95_s": float(np.percentile(lat, 95)) if lat.size else 0.0,
        "latency_total_s": float(lat.sum()) if lat.size else 0.0,
        "retries": sum(r.retries for r in records),
        "failures": sum(not r.ok for r in records),
        "constraint_violations": sum(r.error_kind == "invalid" for r in records),
        "transport_errors": sum(r.error_kind == "transport" for r in records),
    }


class Telemetry:
    """Per-call records, aggregated per tag and per period (thread-safe).

    ``start_period(label)`` (e.g. per tax year) labels subsequent calls;
    ``summary()`` aggregates everything (overall and per tag); ``period_rows()`` gives one
    plain dict per (period, tag), ready for ``pandas.DataFrame``.  Also counts batches and
    the wall time of ``generate`` calls (``wall_s``) for throughput.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[CallRecord] = []
        self.period = "all"
        self.batches = 0
        self.wall_s = 0.0

    def start_period(self, label: Any) -> None:
        with self._lock:
            self.period = str(label)

    def record(self, requests: Sequence[Request], responses: Sequence[Response], wall_s: float) -> None:
        with self._lock:
            self.batches += 1
            self.wall_s += wall_s
            for q, r in zip(requests, responses, strict=True):
                self.records.append(
                    CallRecord(
                        self.period, q.tag, r.latency_s, r.cached, r.prompt_tokens,
                        r.completion_tokens, r.retries, r.ok, r.error_kind, r.service_s,
                        None if r.ok else r.error,
                    )
                )

    def summary(self) -> dict[str, Any]:
        with self._lock:
            recs = list(self.records)
            by_tag: dict[str, list[CallRecord]] = defaultdict(list)
            for r in recs:
                by_tag[r.tag].append(r)
            return {
                **_agg(recs),
                "batches": self.batches,
                "wall_s": self.wall_s,
                "by_tag": {t: _agg(v) for t, v in sorted(by_tag.items())},
            }

    def period_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            groups: dict[tuple[str, str], list[CallRecord]] = defaultdict(list)
            for r in self.records:
                groups[(r.period, r.tag)].append(r)
        return [{"period": p, "tag": t, **_agg(v)} for (p, t), v in groups.items()]

    def checkpoint_state(self) -> dict:
        """Every call record so far, the period label and the batch/wall counters."""
        with self._lock:
            return {"records": list(self.records), "period": self.period,
                    "batches": self.batches, "wall_s": self.wall_s}

    def restore_state(self, state: dict) -> None:
        with self._lock:
            self.records = list(state["records"])
            self.period = state["period"]
            self.batches = int(state["batches"])
            self.wall_s = float(state["wall_s"])

    def reset(self) -> None:
        with self._lock:
            self.records.clear()
            self.batches = 0
            self.wall_s = 0.0


class TelemetryModel(ModelWrapper):
    """Record every request/response pair in :attr:`telemetry`."""

    def __init__(self, inner: LanguageModel, telemetry: Telemetry | None = None) -> None:
        super().__init__(inner)
        self._telemetry = telemetry or Telemetry()

    @property
    def telemetry(self) -> Telemetry:
        return self._telemetry

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        t0 = time.perf_counter()
        out = list(self.inner.generate(requests))
        self._telemetry.record(requests, out, time.perf_counter() - t0)
        return out
