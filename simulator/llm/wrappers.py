"""Wrappers around any :class:`LanguageModel`: retry, concurrency limit, telemetry."""

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

from simulator.llm.types import LanguageModel, ModelWrapper, Request, Response


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
