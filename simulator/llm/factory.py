"""``build_llm(config)``: a backend wrapped in retry, cache and telemetry.

The stack, outermost first::

    TelemetryModel -> CachedModel (unless cache: off) -> RetryingModel
        -> ConcurrencyLimit -> backend

``build_llm(...).telemetry`` is the :class:`~simulator.llm.wrappers.Telemetry` object.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterable
from typing import Any

from simulator.errors import UserError
from simulator.llm.cache import CachedModel, ResponseCache
from simulator.llm.config import LLMConfig
from simulator.llm.registry import BACKENDS, BackendSpec, backend_spec
from simulator.llm.types import Choices, LanguageModel, Request
from simulator.llm.wrappers import (
    ConcurrencyLimit,
    RetryingModel,
    RetryPolicy,
    Telemetry,
    TelemetryModel,
)


def demo_reply(request: Request) -> str:
    """The default scripted reply: a valid answer drawn reproducibly from the request's
    seed and prompt (uniform within integer/number bounds, a uniform enum/choice)."""
    blob = json.dumps([request.seed, [dict(m) for m in request.messages]], sort_keys=True)
    rng = random.Random(int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "little"))
    c = request.constraint
    if c is None:
        return "ok"
    if isinstance(c, Choices):
        return rng.choice(c.options)
    out: dict[str, Any] = {}
    for name, p in c.schema["properties"].items():
        t = p.get("type", "string")
        if "enum" in p:
            out[name] = rng.choice(p["enum"])
        elif t == "integer":
            out[name] = rng.randint(int(p.get("minimum", 0)), int(p.get("maximum", 100)))
        elif t == "number":
            out[name] = round(rng.uniform(float(p.get("minimum", 0)), float(p.get("maximum", 1))), 3)
        elif t == "boolean":
            out[name] = rng.random() < 0.5
        else:
            out[name] = "text"[: int(p.get("maxLength", 4))]
    return json.dumps(out)


def build_backend(
    config: LLMConfig,
    *,
    script: Callable[[Request], str] | Iterable[str] | None = None,
) -> LanguageModel:
    """The bare backend for ``config`` (no wrappers): the ``build`` function of its
    :data:`~simulator.llm.registry.BACKENDS` entry, imported now."""
    return backend_spec(config.backend).load(config.backend)(config, script)


def build_llm(
    config: LLMConfig | dict | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    script: Callable[[Request], str] | Iterable[str] | None = None,
    telemetry: Telemetry | None = None,
    backend: LanguageModel | None = None,
) -> TelemetryModel:
    """Build the model stack for ``config`` (an :class:`LLMConfig` or its dict form).

    ``run_dir``: resolves a relative ``cache_path``.  ``script``: the reply callable or
    canned replies of the scripted backend.  ``backend``: use this backend instead of
    building one (tests).  Raises :class:`~simulator.errors.UserError` for a bad config.
    """
    if config is None:
        config = LLMConfig()
    elif isinstance(config, dict):
        try:
            config = LLMConfig.model_validate(config)
        except Exception as exc:  # pydantic.ValidationError
            raise UserError(f"invalid llm config: {exc}") from exc
    model = backend if backend is not None else build_backend(config, script=script)
    spec = BACKENDS.get(config.backend, BackendSpec("", ""))  # a test's own backend: the defaults
    if not spec.thread_safe and backend is None:
        model = ConcurrencyLimit(model, max_calls=1)
    model = RetryingModel(
        model,
        RetryPolicy(max_retries=config.max_retries),
        retry_transport=not spec.retries_transport,  # e.g. the openai backend retries per request
    )
    if config.cache != "off":
        cache = ResponseCache(config.resolved_cache_path(run_dir))
        model = CachedModel(model, cache, mode=config.cache)
    return TelemetryModel(model, telemetry)
