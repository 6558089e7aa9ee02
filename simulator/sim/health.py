"""Is a run's language model answering?  Failure rates per step and the run's final status.

Every LLM request of a run ends in one of three ways: a usable reply, an unusable reply
(``error_kind`` ``"invalid"``, after the re-asks) or no reply at all (``"transport"``:
the server is down, timed out, answered 5xx, a worker process died, the body was cut
short; ``"request"``/``"backend"``: the server refused it or the backend raised).  A
worker whose request failed keeps a fallback (last year's hours), a planner keeps its
schedule, a voter casts a rational ballot: the run goes on, but it no longer measures
the model.

:class:`RunHealth` watches this after every step, and every *question* (request tag:
worker hours, satisfaction, the planner, candidates, the election leader, votes) is
held to account on its own, however rarely it is asked:

- the step: when more than ``llm.max_failure_rate`` of the step's requests failed, or of
  the requests of one question asked at least :data:`MIN_TAG_REQUESTS` times in the step,
  the run stops with :class:`RunFailed` (manifest status ``failed``, exit status 1);
- the run: when more than ``llm.max_failure_rate`` of one question's requests so far
  failed, the run stops too: after a step once the question was asked at least
  :data:`MIN_RUN_REQUESTS` times, and at the end of the run whatever the count (a planner
  asked twice that never answered fails the run; its schedule never moved);
- a run that ends with any failure or fallback below those bounds ends
  ``completed_with_warnings`` (exit status 3), with one warning per question that failed
  (its own rate and the tax years); only a run whose every request was answered ends
  ``completed`` (exit status 0).

The manifest's ``llm_health.questions`` and the run's summary give each question's rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the words of the openai backend's circuit breaker (a hung server); the run's failure
#: line prefers that error to the first one
from simulator.llm.types import BREAKER_MARK

#: a question (request tag) asked this many times in a step is checked on its own in that step
MIN_TAG_REQUESTS = 10
#: a question asked this many times in the run so far is checked on its run-wide rate after
#: every step (at the end of the run, whatever the count)
MIN_RUN_REQUESTS = 3
#: characters of the first error quoted in a failure line
ERROR_CHARS = 320

#: what each question (request tag) is, for the summary and the failure lines
QUESTIONS = {
    "worker": "worker hours",
    "satisfaction": "worker satisfaction",
    "planner": "the planner",
    "volunteer": "candidates standing",
    "platform": "candidate platforms",
    "winner_planner": "the election leader",
    "voter": "votes",
}


def question_label(tag: str) -> str:
    """``"the planner ('planner')"``: what the question is, and its tag."""
    label = QUESTIONS.get(tag)
    return f"{label} ({tag!r})" if label else repr(tag)

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
    #: per question (request tag), over the run: requests, failures, transport failures,
    #: unusable replies, the tax years with a failure and the first error
    questions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the backend and server, for the failure lines
    llm: str = "the model server"

    @classmethod
    def for_model(cls, model: Any) -> RunHealth:
        """Watch ``model``'s steps from now on (requests made before, e.g. persona
        enrichment or another run sharing the language model, are not counted)."""
        health = cls(model.settings.llm.max_failure_rate, llm=describe_llm(model))
        tel = getattr(model, "telemetry", None)
        if tel is not None:
            with tel._lock:
                health._seen = len(tel.records)
        return health

    def checkpoint_state(self) -> dict[str, Any]:
        """The failure counters, the per-step log and how many telemetry records were seen."""
        return {"requests": self.requests, "failures": self.failures,
                "transport_failures": self.transport_failures, "invalid": self.invalid,
                "seen": self._seen, "steps": [dict(s) for s in self.steps],
                "questions": {t: {**q, "years": list(q["years"])} for t, q in self.questions.items()}}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.requests = int(state["requests"])
        self.failures = int(state["failures"])
        self.transport_failures = int(state["transport_failures"])
        self.invalid = int(state["invalid"])
        self._seen = int(state["seen"])
        self.steps = [dict(s) for s in state["steps"]]
        # a checkpoint older than per-question accounting counts questions from here on
        self.questions = {t: {**q, "years": list(q["years"])} for t, q in state.get("questions", {}).items()}

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
        self._count_questions(new, year)
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
            first = " ".join(errors[0].split())[:ERROR_CHARS] if errors else None  # e.g. "http 404: ..."
            raise RunFailed(
                f"the language model failed {len(failed)} of {n} "
                f"{f'{question_label(worst_tag)} ' if worst_tag is not None else ''}requests in a step of tax "
                f"year {year} ({rate:.0%} > llm.max_failure_rate {self.max_failure_rate:.0%}; "
                f"{transport} transport failures, {invalid} unusable replies; kinds: "
                f"{', '.join(kinds)}{f'; first error: {first}' if first else ''}): stopping. Check the model server "
                f"({describe_llm(model)}) or raise llm.max_failure_rate"
            )
        for tag in tags:  # rarely asked questions (the planner, elections) on their run-wide rate
            if self.questions[tag]["requests"] >= MIN_RUN_REQUESTS:
                self._check_question(tag, "so far")

    def _count_questions(self, records: list[Any], year: Any) -> None:
        for r in records:
            tag = str(getattr(r, "tag", None) or "untagged")
            q = self.questions.setdefault(tag, {"requests": 0, "failures": 0, "transport_failures": 0,
                                                "invalid": 0, "years": [], "first_error": None})
            q["requests"] += 1
            if r.ok:
                continue
            q["failures"] += 1
            q["transport_failures"] += r.error_kind == "transport"
            q["invalid"] += r.error_kind == "invalid"
            if year not in q["years"]:
                q["years"].append(year)
            err = getattr(r, "error", None)
            if err and (q["first_error"] is None or (BREAKER_MARK in err and BREAKER_MARK not in q["first_error"])):
                q["first_error"] = " ".join(str(err).split())[:ERROR_CHARS]

    def _check_question(self, tag: str, when: str) -> None:
        """Raise :class:`RunFailed` when more than ``max_failure_rate`` of the question's
        requests of the run failed (``when``: "so far" or "over the run")."""
        q = self.questions[tag]
        n, f = q["requests"], q["failures"]
        if not n or f / n <= self.max_failure_rate:
            return
        never = " (it never answered: the tax schedule never moved)" if f == n and tag == "planner" else (
            " (it never answered)" if f == n else "")
        first = q["first_error"]
        raise RunFailed(
            f"the language model failed {f} of {n} {question_label(tag)} requests {when}{never}, in tax "
            f"year{'s' if len(q['years']) > 1 else ''} {_years(q['years'])} ({f / n:.0%} > "
            f"llm.max_failure_rate {self.max_failure_rate:.0%}; {q['transport_failures']} transport "
            f"failures, {q['invalid']} unusable replies{f'; first error: {first}' if first else ''}): "
            f"stopping. Check the model server ({self.llm}) or raise llm.max_failure_rate"
        )

    def question_rates(self) -> dict[str, dict[str, Any]]:
        """Each question's counts and failure rate over the run (manifest ``llm_health``)."""
        return {
            tag: {"question": QUESTIONS.get(tag, tag), "requests": q["requests"], "failures": q["failures"],
                  "failure_rate": q["failures"] / q["requests"] if q["requests"] else 0.0,
                  "transport_failures": q["transport_failures"], "invalid": q["invalid"],
                  "failed_years": list(q["years"])}
            for tag, q in self.questions.items()
        }

    def questions_line(self) -> str | None:
        """One line of each question's failures (the run's summary); ``None`` without LLM requests."""
        if not self.questions:
            return None
        parts = [f"{QUESTIONS.get(t, t)} {q['failures']}/{q['requests']} ({q['failures'] / q['requests']:.1%})"
                 for t, q in self.questions.items() if q["requests"]]
        return "LLM failures by question (failed/asked): " + ", ".join(parts)

    def rates(self, years: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The run's overall rates: failures and transport failures per LLM request, and
        worker fallbacks per worker reply (from the year records); with any LLM request,
        ``questions``: each question's (:meth:`question_rates`)."""
        out: dict[str, Any] = {
            "llm_requests": float(self.requests),
            "failure_rate": self.failures / self.requests if self.requests else 0.0,
            "transport_failure_rate": self.transport_failures / self.requests if self.requests else 0.0,
        }
        fb = sum(float(y.get("fallbacks", 0.0)) for y in years or [])
        asked = sum(float(y.get("worker_replies", 0.0)) for y in years or [])
        out["fallback_rate"] = fb / asked if asked else 0.0
        if self.questions:
            out["questions"] = self.question_rates()
        return out

    def final_status(self, years: list[dict[str, Any]] | None = None) -> tuple[str, list[str]]:
        """``("completed", [])`` or ``("completed_with_warnings", [warning lines])``: the
        degraded-run line, then one line per question that failed.  Raises
        :class:`RunFailed` when a question's run-wide failure rate exceeds the bound,
        however few times it was asked."""
        for tag in self.questions:
            self._check_question(tag, "over the run")
        r = self.rates(years)
        if r["failure_rate"] == 0 and r["fallback_rate"] == 0:
            return "completed", []
        lines = [warning_line(r)]
        for tag, q in self.questions.items():
            if q["failures"]:
                first = q["first_error"]
                lines.append(
                    f"{question_label(tag)}: {q['failures']} of {q['requests']} requests failed "
                    f"({q['failures'] / q['requests']:.1%}; tax year{'s' if len(q['years']) > 1 else ''} "
                    f"{_years(q['years'])}){f'; first error: {first}' if first else ''}")
        return "completed_with_warnings", lines


def warning_line(rates: dict[str, float]) -> str:
    """One line with the rates of a degraded run."""
    return (
        f"degraded run: {rates['fallback_rate']:.1%} of worker replies fell back, "
        f"{rates['failure_rate']:.1%} of {rates['llm_requests']:.0f} LLM requests failed "
        f"({rates['transport_failure_rate']:.1%} transport failures)"
    )


def _years(years: list[Any], most: int = 8) -> str:
    shown = ", ".join(str(y) for y in years[:most])
    return shown + (f" and {len(years) - most} more" if len(years) > most else "")


def describe_llm(model: Any) -> str:
    cfg = model.settings.llm
    where = f" at {cfg.base_url}" if cfg.base_url else ""
    return f"backend {cfg.backend}{where}"


__all__ = ["BREAKER_MARK", "EXIT_CODES", "QUESTIONS", "RunFailed", "RunHealth", "question_label",
           "warning_line"]
