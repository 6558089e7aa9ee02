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
    """The bare backend for ``config`` (no wrappers)."""
    retry = RetryPolicy(max_retries=config.max_retries)
    if config.backend == "scripted":
        from simulator.llm.scripted import ScriptedModel

        return ScriptedModel(script if script is not None else demo_reply, model=config.model or "scripted")
    if config.backend == "embedded":
        from simulator.llm.embedded import EmbeddedModel

        return EmbeddedModel(
            config.model,
            threads=config.embedded_threads,
            processes=config.embedded_processes,
            n_ctx=config.embedded_context,
            quantize=config.embedded_quantize,
        )
    if config.backend == "openai":
        from simulator.llm.openai_backend import OpenAIModel, resolve_api_key

        if not config.model:
            raise UserError("llm.backend openai needs llm.model (the server's model name)")
        return OpenAIModel(
            model=config.model,
            base_url=config.base_url,
            api_key=resolve_api_key(
                config.api_key_env, config.base_url, required=config.cache != "replay"
            ),
            dialect=config.dialect or "openai_json_schema",
            concurrency=config.concurrency,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            retry=retry,
            read_timeout_retries=config.read_timeout_retries,
            breaker_after=config.breaker_after,
        )
    if config.backend == "vllm":
        from simulator.llm.vllm_backend import VLLMModel

        return VLLMModel(str(config.model), options=config.vllm, dialect=config.dialect)
    raise UserError(f"unknown llm backend {config.backend!r} (embedded, openai, vllm, scripted)")


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
    if config.backend == "embedded" and backend is None:
        model = ConcurrencyLimit(model, max_calls=1)
    model = RetryingModel(
        model,
        RetryPolicy(max_retries=config.max_retries),
        retry_transport=config.backend != "openai",  # the openai backend retries per request
    )
    if config.cache != "off":
        cache = ResponseCache(config.resolved_cache_path(run_dir))
        model = CachedModel(model, cache, mode=config.cache)
    return TelemetryModel(model, telemetry)
