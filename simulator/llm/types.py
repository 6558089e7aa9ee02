"""The typed interface every LLM call in econsim goes through.

A :class:`LanguageModel` takes a whole batch of :class:`Request` objects and returns one
:class:`Response` per request, in the same order.  Backends (embedded llama.cpp, any
OpenAI-compatible server, in-process vLLM, scripted replies) and wrappers (retry, cache,
telemetry, concurrency limit) all implement this one method, so nothing else in the
project knows which backend is behind it.

Failures never raise out of :meth:`LanguageModel.generate` (except configuration errors
such as a cache replay miss): they are recorded on the :class:`Response` (``error``,
``error_kind``), so one bad reply never loses a batch's results.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
_ROLES = ("system", "user", "assistant")

#: ``error_kind`` values.
#:  - ``"invalid"``: the reply did not satisfy the request's constraint (after re-asks)
#:  - ``"transport"``: connection error, timeout, HTTP 429 or 5xx (after retries)
#:  - ``"request"``: the server refused the request (HTTP 4xx other than 429)
#:  - ``"backend"``: anything else raised by a backend
ErrorKind = Literal["invalid", "transport", "request", "backend"]

#: the words of the openai backend's circuit breaker (a hung server) in a transport
#: error; the run's failure line prefers that error to the first one
BREAKER_MARK = "server stopped answering"

#: property types of the supported JSON-schema subset
FIELD_TYPES = ("integer", "number", "string", "boolean")


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``schema`` is in the supported subset."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise ValueError("schema must be a mapping with type 'object'")
    props = schema.get("properties")
    if not isinstance(props, Mapping) or not props:
        raise ValueError("schema needs non-empty 'properties'")
    for name, p in props.items():
        if not isinstance(name, str) or not name:
            raise ValueError("property names must be non-empty strings")
        if not isinstance(p, Mapping):
            raise ValueError(f"property {name!r}: must be a mapping")
        t = p.get("type")
        if "enum" in p and t is None:
            t = "string"
        if t not in FIELD_TYPES:
            raise ValueError(f"property {name!r}: unsupported type {t!r} (use {FIELD_TYPES})")
        if t == "integer":
            for b in ("minimum", "maximum"):
                if b in p and (isinstance(p[b], bool) or not isinstance(p[b], int)):
                    raise ValueError(f"property {name!r}: integer {b} must be an int")
        if t in ("integer", "number"):
            lo, hi = p.get("minimum"), p.get("maximum")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"property {name!r}: minimum > maximum")
        if t == "string" and "enum" in p:
            e = p["enum"]
            if not isinstance(e, Sequence) or not e or not all(isinstance(x, str) for x in e):
                raise ValueError(f"property {name!r}: enum must be a non-empty list of strings")
    req = schema.get("required", [])
    if not isinstance(req, Sequence) or isinstance(req, str):
        raise ValueError("'required' must be a list")
    for r in req:
        if r not in props:
            raise ValueError(f"required property {r!r} is not in properties")


@dataclass(frozen=True)
class JsonSchema:
    """A JSON-object output constraint (a small, validated JSON-schema subset).

    Build it with :func:`simulator.llm.json_object_constraint`; supported property types
    are integer and number (with ``minimum``/``maximum``), string (with ``enum`` or
    ``maxLength``) and boolean.
    """

    schema: Mapping[str, Any]

    def __post_init__(self) -> None:
        check_schema(self.schema)
        # a private deep copy: later changes to the caller's dict cannot alter it
        object.__setattr__(self, "schema", json.loads(json.dumps(self.schema)))

    def to_json(self) -> dict[str, Any]:
        return {"json_schema": json.loads(json.dumps(self.schema))}

    def __hash__(self) -> int:
        return hash(json.dumps(self.schema, sort_keys=True))


@dataclass(frozen=True)
class Choices:
    """The reply must be exactly one of a fixed set of strings (e.g. ``"yes"``/``"no"``)."""

    options: tuple[str, ...]

    def __post_init__(self) -> None:
        opts = tuple(str(o) for o in self.options)
        if not opts:
            raise ValueError("choices need at least one option")
        if len(set(opts)) != len(opts):
            raise ValueError(f"duplicate choices: {opts}")
        if any(not o for o in opts):
            raise ValueError("choices must be non-empty strings")
        object.__setattr__(self, "options", opts)

    def to_json(self) -> dict[str, Any]:
        return {"choices": list(self.options)}


Constraint = JsonSchema | Choices


@dataclass(frozen=True)
class Request:
    """One chat request.

    ``messages``: chat messages, each ``{"role": ..., "content": ...}`` (stored as a tuple
    of plain dicts).  ``constraint``: a :class:`JsonSchema`, :class:`Choices` or ``None``
    (free text).  ``seed``: passed to the backend so the same seed gives the same reply
    where the backend supports it (llama.cpp, vLLM, OpenAI best-effort).  ``tag``: the
    caller's role ("worker", "planner", "voter", "persona", ...), used by telemetry and
    in error messages.
    """

    messages: tuple[Mapping[str, str], ...]
    constraint: Constraint | None = None
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    tag: str = "default"

    def __post_init__(self) -> None:
        msgs = self.messages
        if isinstance(msgs, str | bytes) or not isinstance(msgs, Sequence):
            raise TypeError("messages must be a sequence of {role, content} mappings")
        clean: list[dict[str, str]] = []
        for m in msgs:
            role, content = m.get("role"), m.get("content")
            if role not in _ROLES:
                raise ValueError(f"message role must be one of {_ROLES}, got {role!r}")
            if not isinstance(content, str):
                raise TypeError("message content must be a string")
            clean.append({"role": role, "content": content})
        if not clean:
            raise ValueError("a request needs at least one message")
        object.__setattr__(self, "messages", tuple(clean))
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        object.__setattr__(self, "seed", int(self.seed))
        if self.constraint is not None and not isinstance(self.constraint, JsonSchema | Choices):
            raise TypeError("constraint must be JsonSchema, Choices or None")

    @classmethod
    def chat(
        cls,
        user: str,
        *,
        system: str | None = None,
        constraint: Constraint | None = None,
        max_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
        tag: str = "default",
    ) -> Request:
        """Shorthand for a (system, user) request."""
        msgs: list[dict[str, str]] = []
        if system:
            msgs.append({"role": "system", "content": system})
        msgs.append({"role": "user", "content": user})
        return cls(tuple(msgs), constraint, max_tokens, temperature, seed, tag)

    def __hash__(self) -> int:
        return hash((json.dumps(self.messages, sort_keys=True), self.constraint, self.max_tokens,
                     self.temperature, self.seed, self.tag))

    def replace(self, **changes: Any) -> Request:
        return dataclasses.replace(self, **changes)

    def prompt_excerpt(self, n: int = 80) -> str:
        """The start of the last user message, on one line (for error messages)."""
        text = self.messages[-1]["content"]
        text = " ".join(text.split())
        return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class Response:
    """The reply to one :class:`Request`.

    ``value`` is the parsed reply, already validated against the request's constraint:
    a dict for a :class:`JsonSchema`, the chosen string for :class:`Choices`, the stripped
    text when there is no constraint; ``None`` when the reply is invalid or the call
    failed (then ``error`` says why and ``error_kind`` classifies it).
    """

    text: str = ""
    value: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    error: str | None = None
    retries: int = 0
    error_kind: ErrorKind | None = None
    #: seconds the server says it spent on the request (prompt + generation), where it
    #: reports it (llama.cpp's server); ``latency_s - service_s`` is then the queue wait
    service_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


@dataclass(frozen=True)
class ModelInfo:
    """What identifies a model's outputs, for the cache key and for logs.

    ``revision`` is a content hash (embedded: sha256 of the GGUF file) or whatever the
    backend knows; it never holds secrets.
    """

    backend: str
    model: str
    revision: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "revision": self.revision, **self.extra}


class LanguageModel(abc.ABC):
    """A batch chat model.  Subclasses implement :meth:`generate` and :attr:`info`."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Response]:
        """One response per request, in order.  Must not raise for per-request failures."""

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo:
        """Backend kind, model id and revision (used by the cache key)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes, servers, connections.  Idempotent."""

    def __enter__(self) -> LanguageModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def generate_one(self, request: Request) -> Response:
        return self.generate([request])[0]

    def chunk_size(self) -> int | None:
        """How many requests one ``generate`` call should carry when a caller streams a
        large batch (see :func:`preferred_chunk`); ``None`` (the default): no preference,
        the caller picks."""
        return None


class ModelWrapper(LanguageModel):
    """Base of the wrappers: forwards ``info``, ``close`` and ``telemetry`` to ``inner``."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    def close(self) -> None:
        self.inner.close()

    @property
    def telemetry(self):  # -> Telemetry | None
        return getattr(self.inner, "telemetry", None)

    def chunk_size(self) -> int | None:
        return self.inner.chunk_size()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


def backend_of(llm: Any) -> Any:
    """The innermost model under the wrappers (the ``.inner`` chain, at most 32 deep)."""
    seen = 0
    while hasattr(llm, "inner") and seen < 32:
        llm = llm.inner
        seen += 1
    return llm


def preferred_chunk(llm: Any) -> int | None:
    """The innermost backend's :meth:`LanguageModel.chunk_size` (``None``: no preference,
    also for an object that does not declare one)."""
    fn = getattr(backend_of(llm), "chunk_size", None)
    return fn() if callable(fn) else None
