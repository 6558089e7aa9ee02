"""The scripted backend: replies from a Python callable or a list of canned replies.

For exact plumbing tests and demos.  ``calls`` counts requests answered (to prove cache
hits make no model calls).  A reply callable may raise; the exception becomes a recorded
``backend`` error (a :class:`ScriptedTransportError` becomes a ``transport`` error).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from simulator.llm import factory
from simulator.llm.constraints import parse_reply
from simulator.llm.types import LanguageModel, ModelInfo, Request, Response

if TYPE_CHECKING:
    from simulator.llm.config import LLMConfig

#: requests per ``generate`` call when a large batch is streamed
SCRIPTED_CHUNK = 8_192


class ScriptedTransportError(RuntimeError):
    """Raise from a script to simulate a connection failure."""


class ScriptedModel(LanguageModel):
    def __init__(
        self,
        replies: Callable[[Request], str] | Iterable[str],
        *,
        model: str = "scripted",
        revision: str = "",
    ) -> None:
        if callable(replies):
            self._fn = replies
        else:
            canned = list(replies)
            if not canned:
                raise ValueError("scripted backend needs at least one canned reply")
            cycle = itertools.cycle(canned)
            self._fn = lambda _req: next(cycle)
        self._info = ModelInfo("scripted", model, revision)
        self._lock = threading.Lock()
        self.calls = 0
        self.batches = 0
        self.seen: list[Request] = []

    @property
    def info(self) -> ModelInfo:
        return self._info

    def chunk_size(self) -> int:
        return SCRIPTED_CHUNK

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        with self._lock:
            self.batches += 1
            for r in requests:
                self.calls += 1
                self.seen.append(r)
                try:
                    text = str(self._fn(r))
                except ScriptedTransportError as exc:
                    out.append(Response(error=f"transport: {exc}", error_kind="transport"))
                    continue
                except Exception as exc:  # a script bug must not lose the batch
                    out.append(Response(error=f"backend: {type(exc).__name__}: {exc}", error_kind="backend"))
                    continue
                value, err = parse_reply(text, r.constraint)
                out.append(
                    Response(
                        text=text,
                        value=value,
                        prompt_tokens=sum(len(m["content"].split()) for m in r.messages),
                        completion_tokens=len(text.split()),
                        error=None if err is None else f"invalid reply: {err}",
                        error_kind=None if err is None else "invalid",
                    )
                )
        return out

    def __repr__(self) -> str:
        return f"ScriptedModel(model={self._info.model!r})"


def build(config: LLMConfig, script: Callable[[Request], str] | Iterable[str] | None = None) -> ScriptedModel:
    """The scripted backend of ``config``: ``script``, or :func:`~simulator.llm.factory.demo_reply`."""
    return ScriptedModel(script if script is not None else factory.demo_reply, model=config.model or "scripted")
