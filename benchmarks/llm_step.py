"""Worker decisions per second for one LLM step, four ways, as ratios to the reference's.

    .venv/bin/python benchmarks/llm_step.py [--prompts 8] [--pooled-n 100000]
                                            [--pooled-budget 16] [--backends embedded server]

For each backend (the embedded model in this process, and llama.cpp's OpenAI-compatible
server, from the ``server`` extra, that this script starts on 127.0.0.1 and stops):

(a) ``reference``: the reference implementation's pattern, one request at a time,
    waiting for each reply (``generate([r])`` in a loop);
(b) ``batched``: econsim's path, the same requests in one ``generate`` call (embedded:
    the process pool; server: concurrent requests bounded by ``llm.concurrency``);
(c) ``cache warm``: the same batch again through the SQLite response cache;
(d) ``pooled``: one pooled step of ``--pooled-n`` workers (archetype pooling with a
    budget of ``--pooled-budget`` calls a step), counted as effective decisions per
    second: workers decided / wall time of the step (cells, allocation, prompts, calls,
    carry-over).

The prompts are real worker prompts of year 0 (Census personas, the 2024 schedule) in
the default (compact) layout.  Rates are prompts (or decisions) per second; each row is
printed with its ratio to (a).

Then the two prompt layouts (``workers.llm.prompt_layout``: verbose, the earlier one,
and compact) on the same workers, one row each: ``tokens`` the mean prompt tokens per
decision the backend reported (``Response.prompt_tokens``); from the chat-templated
prompts tokenized with the embedded model's tokenizer (SmolLM2-135M, vocabulary only):
``common`` the token prefix every prompt of the step shares (what a prefix cache such as
vLLM's reuses across the batch), ``prev`` the mean tokens shared with the previous prompt
in sorted order (what llama.cpp reuses from the prompt before), ``unshared`` the mean
tokens a decision has to prefill when the common prefix is cached (tokens - common), and
``per s`` the batched path (b) for that layout.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """llama.cpp's OpenAI server on 127.0.0.1 (started here, stopped on exit)."""

    def __init__(self, threads: int = 2) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator.llm.llamacpp_server", "--model", "smollm2",
             "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(self.port),
             "--n_threads", str(threads), "--n_ctx", "2048"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("llama.cpp server exited at start (is the 'server' extra installed?)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RuntimeError("llama.cpp server did not start within 180 s")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def llm_config(backend: str, base_url: str | None, cache: str, cache_path: str | None = None):
    from simulator.llm import LLMConfig

    if backend == "embedded":
        return LLMConfig(backend="embedded", cache=cache, cache_path=cache_path)
    return LLMConfig(backend="openai", model="smollm2", base_url=base_url, dialect="grammar",
                     cache=cache, cache_path=cache_path, concurrency=4)


def worker_requests(n: int, seed: int = 0, layout: str = "compact"):
    from simulator.config.loading import scenario_from_dict
    from simulator.sim.model import EconomyModel

    sc = scenario_from_dict({
        "population": {"size": n, "source": "census"},
        "workers": {"policy": "llm", "llm": {"prompt_layout": layout}}, "planner": {"kind": "us_federal"},
        "run": {"seed": seed, "mesa_agents": False}, "llm": {"backend": "scripted", "cache": "off"},
    })
    m = EconomyModel(sc, agent_objects=False)
    seeds = np.arange(1, n + 1)
    return m.policy.requests(m, m.schedule, m.expected_rebate, False, seeds)


class Tokenizer:
    """The embedded model's tokenizer and chat template (the GGUF's vocabulary only: no
    weights are loaded), for the token prefixes of rendered prompts."""

    def __init__(self) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from simulator.llm.embedded import _import_llama_cpp, bundled_gguf

        self.llm = _import_llama_cpp().Llama(model_path=str(bundled_gguf()), vocab_only=True, verbose=False)
        meta = self.llm.metadata
        special = [self.llm.detokenize([t], special=True).decode("utf-8", "replace") if t >= 0 else ""
                   for t in (self.llm.token_eos(), self.llm.token_bos())]
        self.fmt = Jinja2ChatFormatter(template=meta["tokenizer.chat_template"], eos_token=special[0],
                                       bos_token=special[1])

    def tokens(self, request) -> list[int]:
        """The token ids of ``request`` as the embedded backend renders it (chat template,
        generation prompt)."""
        text = self.fmt(messages=[dict(m) for m in request.messages]).prompt
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common start of two token lists."""
    n = min(len(a), len(b))
    return next((k for k in range(n) if a[k] != b[k]), n)


def prefix_stats(token_lists: list[list[int]]) -> dict[str, float]:
    """``tokens`` (mean length), ``common`` (the prefix all share), ``prev`` (mean prefix
    shared with the previous list once sorted, the first one sharing none) and
    ``unshared`` (mean tokens beyond ``common``)."""
    if not token_lists:
        raise ValueError("no prompts")
    lengths = [len(t) for t in token_lists]
    common = min(lengths)
    for t in token_lists[1:]:
        common = min(common, common_prefix(token_lists[0], t))
    ordered = sorted(token_lists)
    prev = [0] + [common_prefix(a, b) for a, b in zip(ordered, ordered[1:], strict=False)]
    mean = sum(lengths) / len(lengths)
    return {"tokens": mean, "common": float(common), "prev": sum(prev) / len(prev), "unshared": mean - common}


def compare_layouts(backend: str, args, base_url: str | None, tok: Tokenizer | None) -> list[tuple]:
    """One row per prompt layout: (layout, backend prompt tokens, common, prev, unshared, per s)."""
    from simulator.llm import build_llm

    rows = []
    llm = build_llm(llm_config(backend, base_url, "off"))
    try:
        llm.generate(worker_requests(4)[:4])  # load the model / start the pool outside the timing
        for layout in ("verbose", "compact"):
            reqs = worker_requests(args.prompts, layout=layout)
            t0 = time.perf_counter()
            out = llm.generate(reqs)
            rate = len(reqs) / (time.perf_counter() - t0)
            told = sum(r.prompt_tokens for r in out) / len(out)
            st = prefix_stats([tok.tokens(r) for r in reqs]) if tok is not None else None
            rows.append((layout, told, st, rate))
    finally:
        llm.close()
    return rows


def pooled_step(config, n: int, budget: int) -> tuple[float, int]:
    """Wall seconds of one pooled worker step of ``n`` workers, and the calls it made."""
    from simulator.config.loading import scenario_from_dict
    from simulator.llm import build_llm
    from simulator.sim.model import EconomyModel

    sc = scenario_from_dict({
        "population": {"size": n, "source": "census"},
        "workers": {"policy": "llm", "llm": {"pooling": {"budget": budget}}},
        "planner": {"kind": "us_federal"}, "run": {"seed": 0, "mesa_agents": False},
        "llm": {"backend": "scripted", "cache": "off"},
    })
    llm = build_llm(config)
    m = EconomyModel(sc, llm=llm, agent_objects=False)
    llm.generate(worker_requests(2))  # load the model outside the timing
    m.planner.set_taxes()
    t0 = time.perf_counter()
    m.policy.decide(m)
    dt = time.perf_counter() - t0
    calls = int(m.stats.get("pool_calls", 0))
    llm.close()
    return dt, calls


def measure(backend: str, args, base_url: str | None = None) -> list[tuple[str, float, str]]:
    from simulator.llm import build_llm

    reqs = worker_requests(args.prompts)
    rows = []
    llm = build_llm(llm_config(backend, base_url, "off"))
    llm.generate(reqs[:1])  # warm up: load the model / pool
    t0 = time.perf_counter()
    for r in reqs:
        llm.generate([r])
    a = len(reqs) / (time.perf_counter() - t0)
    rows.append(("(a) reference: one at a time", a, f"{len(reqs)} prompts"))
    if backend == "embedded":
        llm.generate(reqs[:4])  # start the process pool outside the timing
    t0 = time.perf_counter()
    out = llm.generate(reqs)
    b = len(reqs) / (time.perf_counter() - t0)
    ok = sum(r.ok for r in out)
    rows.append(("(b) batched / concurrent", b, f"{ok}/{len(reqs)} valid"))
    llm.close()
    with tempfile.TemporaryDirectory() as tmp:
        cached = build_llm(llm_config(backend, base_url, "readwrite", os.path.join(tmp, "c.sqlite")))
        cached.generate(reqs)
        t0 = time.perf_counter()
        cached.generate(reqs)
        c = len(reqs) / (time.perf_counter() - t0)
        cached.close()
    rows.append(("(c) cache warm", c, "second pass"))
    dt, calls = pooled_step(llm_config(backend, base_url, "off"), args.pooled_n, args.pooled_budget)
    rows.append(("(d) pooled, effective", args.pooled_n / dt,
                 f"{args.pooled_n:,} workers, {calls} calls, {dt:.1f} s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8, help="prompts for (a)-(c)")
    ap.add_argument("--pooled-n", type=int, default=100_000)
    ap.add_argument("--pooled-budget", type=int, default=16)
    ap.add_argument("--backends", nargs="+", default=["embedded", "server"], choices=["embedded", "server"])
    args = ap.parse_args(argv)
    if min(args.prompts, args.pooled_n, args.pooled_budget) < 1:
        ap.error("--prompts, --pooled-n and --pooled-budget must be >= 1")
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    try:
        tok = Tokenizer()
    except Exception as exc:  # noqa: BLE001 - the layout rows then give the backend's counts only
        print(f"embedded tokenizer unavailable ({type(exc).__name__}: {exc}): no prefix columns")
        tok = None
    measured = 0
    for backend in args.backends:
        server = None
        try:
            if backend == "server":
                server = LlamaServer()
            url = server.base_url if server else None
            rows = measure(backend, args, url)
            layouts = compare_layouts(backend, args, url, tok)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next backend
            print(f"{backend}: skipped ({type(exc).__name__}: {exc})")
            continue
        finally:
            if server is not None:
                server.close()
        print(f"\n## {backend}")
        print(f"{'path':<32} {'per s':>10} {'x (a)':>8}  note")
        base = rows[0][1]
        for name, rate, note in rows:
            print(f"{name:<32} {rate:>10.2f} {rate / base:>8.1f}  {note}", flush=True)
        print(f"\n{'prompt layout':<14} {'tokens':>8} {'common':>8} {'prev':>8} {'unshared':>9} {'per s':>8}")
        for layout, told, st, rate in layouts:
            pre = (f"{'-':>8} {'-':>8} {'-':>9}" if st is None
                   else f"{st['common']:>8.0f} {st['prev']:>8.1f} {st['unshared']:>9.1f}")
            print(f"{layout:<14} {told:>8.1f} {pre} {rate:>8.2f}", flush=True)
        (_, v, sv, _), (_, c, sc, _) = layouts
        note = f"compact / verbose: tokens {c / v:.2f}"
        if sv is not None:
            note += f", unshared {sc['unshared'] / sv['unshared']:.2f}"
        print(note)
        measured += 1
    print(footer(started))
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
