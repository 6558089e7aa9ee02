"""Is a run's language model answering?  Failure rates per step and the run's final status.

Every LLM request of a run ends in one of three ways: a usable reply, an unusable reply
(``error_kind`` ``"invalid"``, after the re-asks) or no reply at all (``"transport"``:
the server is down, timed out, answered 5xx, a worker process died, the body was cut
short; ``"request"``/``"backend"``: the server refused it or the backend raised).  A
worker whose request failed keeps a fallback (last year's hours), a planner keeps its
schedule, a voter casts a rational ballot: the run goes on, but it no longer measures
the model.

:class:`RunHealth` watches this after every step: when the share of the step's LLM
requests that failed exceeds ``llm.max_failure_rate`` the run stops with
:class:`RunFailed` (manifest status ``failed``, exit status 1).  A run that ends with any
failure or fallback below that bound ends ``completed_with_warnings`` (exit status 3);
only a run whose every request was answered ends ``completed`` (exit status 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the words of the openai backend's circuit breaker (a hung server); the run's failure
#: line prefers that error to the first one
from simulator.llm.types import BREAKER_MARK

#: a question (request tag) asked this many times in a step is checked on its own
MIN_TAG_REQUESTS = 10

#: exit status of ``econsim run`` per final manifest status
EXIT_CODES = {"completed": 0, "completed_with_warnings": 3, "failed": 1}


class RunFailed(Exception):
    """The run stopped because its language model failed too often (exit status 1)."""


@dataclass
class RunHealth:
    """Counts the LLM requests of each step from the model's telemetry.

    ``max_failure_rate``: the largest share of a step's requests that may fail (any
    ``error_kind``) before the run stops; ``1.0`` never stops.
    """

    max_failure_rate: float = 0.5
    requests: int = 0
    failures: int = 0
    transport_failures: int = 0
    invalid: int = 0
    _seen: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def for_model(cls, model: Any) -> RunHealth:
        """Watch ``model``'s steps from now on (requests made before, e.g. persona
        enrichment or another run sharing the language model, are not counted)."""
        health = cls(model.settings.llm.max_failure_rate)
        tel = getattr(model, "telemetry", None)
        if tel is not None:
            with tel._lock:
                health._seen = len(tel.records)
        return health

    def checkpoint_state(self) -> dict[str, Any]:
        """The failure counters, the per-step log and how many telemetry records were seen."""
        return {"requests": self.requests, "failures": self.failures,
                "transport_failures": self.transport_failures, "invalid": self.invalid,
                "seen": self._seen, "steps": [dict(s) for s in self.steps]}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.requests = int(state["requests"])
        self.failures = int(state["failures"])
        self.transport_failures = int(state["transport_failures"])
        self.invalid = int(state["invalid"])
        self._seen = int(state["seen"])
        self.steps = [dict(s) for s in state["steps"]]

    def after_step(self, model: Any) -> None:
        """Count the step's new telemetry records; raise :class:`RunFailed` if too many failed."""
        tel = getattr(model, "telemetry", None)
        if tel is None:
            return
        with tel._lock:
            new = tel.records[self._seen:]
            self._seen = len(tel.records)
        if not new:
            return
        n = len(new)
        failed = [r for r in new if not r.ok]
        transport = sum(r.error_kind == "transport" for r in failed)
        invalid = sum(r.error_kind == "invalid" for r in failed)
        self.requests += n
        self.failures += len(failed)
        self.transport_failures += transport
        self.invalid += invalid
        rate = len(failed) / n
        year = model.history[-1]["year"] if model.step_in_year == 0 and model.history else model.year
        self.steps.append({"year": year, "requests": n, "failures": len(failed),
                           "transport_failures": transport})
        # one population-scale question (hours, satisfaction, ballots, ...) failing on its
        # own must not hide behind the others of the step: each tag asked of at least
        # MIN_TAG_REQUESTS agents is held to the bound too
        worst_tag, worst = None, rate
        tags: dict[str, list[int]] = {}
        for r in new:
            c = tags.setdefault(str(getattr(r, "tag", None) or "untagged"), [0, 0])
            c[0] += 1
            c[1] += not r.ok
        for tag, (m, f) in tags.items():
            if m >= MIN_TAG_REQUESTS and f / m > self.max_failure_rate and f / m > worst:
                worst_tag, worst = tag, f / m
        if worst_tag is not None:
            failed = [r for r in failed if str(getattr(r, "tag", None) or "untagged") == worst_tag]
            n, rate = tags[worst_tag][0], worst
            transport = sum(r.error_kind == "transport" for r in failed)
            invalid = sum(r.error_kind == "invalid" for r in failed)
        if rate > self.max_failure_rate:
            kinds = sorted({r.error_kind or "unknown" for r in failed})
            errors = [str(r.error) for r in failed if getattr(r, "error", None)]
            errors = [e for e in errors if BREAKER_MARK in e] or errors
            first = " ".join(errors[0].split())[:200] if errors else None  # e.g. "http 404: ..."
            raise RunFailed(
                f"the language model failed {len(failed)} of {n} "
                f"{f'{worst_tag!r} ' if worst_tag is not None else ''}requests in a step of tax "
                f"year {year} ({rate:.0%} > llm.max_failure_rate {self.max_failure_rate:.0%}; "
                f"{transport} transport failures, {invalid} unusable replies; kinds: "
                f"{', '.join(kinds)}{f'; first error: {first}' if first else ''}): stopping. Check the model server "
                f"({describe_llm(model)}) or raise llm.max_failure_rate"
            )

    def rates(self, years: list[dict[str, Any]] | None = None) -> dict[str, float]:
        """The run's overall rates: failures and transport failures per LLM request, and
        worker fallbacks per worker reply (from the year records)."""
        out = {
            "llm_requests": float(self.requests),
            "failure_rate": self.failures / self.requests if self.requests else 0.0,
            "transport_failure_rate": self.transport_failures / self.requests if self.requests else 0.0,
        }
        fb = sum(float(y.get("fallbacks", 0.0)) for y in years or [])
        asked = sum(float(y.get("worker_replies", 0.0)) for y in years or [])
        out["fallback_rate"] = fb / asked if asked else 0.0
        return out

    def final_status(self, years: list[dict[str, Any]] | None = None) -> tuple[str, list[str]]:
        """``("completed", [])`` or ``("completed_with_warnings", [warning lines])``."""
        r = self.rates(years)
        if r["failure_rate"] == 0 and r["fallback_rate"] == 0:
            return "completed", []
        return "completed_with_warnings", [warning_line(r)]


def warning_line(rates: dict[str, float]) -> str:
    """One line with the rates of a degraded run."""
    return (
        f"degraded run: {rates['fallback_rate']:.1%} of worker replies fell back, "
        f"{rates['failure_rate']:.1%} of {rates['llm_requests']:.0f} LLM requests failed "
        f"({rates['transport_failure_rate']:.1%} transport failures)"
    )


def describe_llm(model: Any) -> str:
    cfg = model.settings.llm
    where = f" at {cfg.base_url}" if cfg.base_url else ""
    return f"backend {cfg.backend}{where}"


__all__ = ["BREAKER_MARK", "EXIT_CODES", "RunFailed", "RunHealth", "warning_line"]
