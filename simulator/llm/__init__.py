"""The inference layer: every LLM call in econsim goes through :class:`LanguageModel`.

Typical use (workers, planner, voters)::

    from simulator.llm import LLMConfig, Request, build_llm, integer_field, json_object_constraint

    llm = build_llm(LLMConfig())              # or the scenario's ``llm:`` section
    hours = json_object_constraint(hours=integer_field(0, 100))
    reqs = [Request.chat(prompt, system=sys_prompt, constraint=hours, seed=s, tag="worker")
            for prompt, s in ...]
    llm.telemetry.start_period(2025)
    for resp in llm.generate(reqs):
        if resp.ok:
            resp.value["hours"]            # an int in 0..100
        else:
            resp.error                      # why (recorded, never raised)
    llm.telemetry.period_rows()
    llm.close()

See docs/inference.md.
"""

from simulator.llm.cache import CachedModel, CacheMissError, ResponseCache, request_key
from simulator.llm.config import EMBEDDED_MODEL, LLMConfig, VLLMOptions, user_cache_dir
from simulator.llm.constraints import (
    boolean_field,
    choices,
    describe_constraint,
    enum_field,
    integer_field,
    json_object_constraint,
    number_field,
    parse_reply,
    string_field,
)
from simulator.llm.factory import build_backend, build_llm, demo_reply
from simulator.llm.grammar import (
    compile_grammar,
    constraint_regex,
    integer_range_gbnf,
    integer_range_regex,
)
from simulator.llm.registry import BACKENDS, BackendSpec
from simulator.llm.scripted import ScriptedModel, ScriptedTransportError
from simulator.llm.types import (
    BREAKER_MARK,
    Choices,
    Constraint,
    JsonSchema,
    LanguageModel,
    ModelInfo,
    ModelWrapper,
    Request,
    Response,
    backend_of,
    preferred_chunk,
)
from simulator.llm.wrappers import (
    ConcurrencyLimit,
    RetryingModel,
    RetryPolicy,
    Telemetry,
    TelemetryModel,
    derive_seed,
)

__all__ = [
    "BACKENDS",
    "BREAKER_MARK",
    "EMBEDDED_MODEL",
    "BackendSpec",
    "CachedModel",
    "CacheMissError",
    "Choices",
    "ConcurrencyLimit",
    "Constraint",
    "JsonSchema",
    "LLMConfig",
    "LanguageModel",
    "ModelInfo",
    "ModelWrapper",
    "Request",
    "Response",
    "ResponseCache",
    "RetryPolicy",
    "RetryingModel",
    "ScriptedModel",
    "ScriptedTransportError",
    "Telemetry",
    "TelemetryModel",
    "VLLMOptions",
    "backend_of",
    "boolean_field",
    "build_backend",
    "build_llm",
    "choices",
    "compile_grammar",
    "constraint_regex",
    "demo_reply",
    "derive_seed",
    "describe_constraint",
    "enum_field",
    "integer_field",
    "integer_range_gbnf",
    "integer_range_regex",
    "json_object_constraint",
    "number_field",
    "parse_reply",
    "preferred_chunk",
    "request_key",
    "string_field",
    "user_cache_dir",
]
