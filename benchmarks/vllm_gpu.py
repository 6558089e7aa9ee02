"""One LLM worker step on vLLM's offline batch API, against the GPU's decode limit.

    python benchmarks/vllm_gpu.py --model /models/Llama-3.1-8B-Instruct --params 8.0 \
        --gpu h100 [--dtype bf16] [--workers 10000] [--budget 0] [--max-tokens 8]

For someone with a GPU (needs the ``vllm`` extra and a local model; nothing is
downloaded by econsim).  It builds one step of ``--workers`` Census LLM workers (one
call per worker, or ``--budget`` calls under archetype pooling), sends it through
econsim's vLLM backend (one ``LLM.generate`` per streamed chunk, automatic prefix
caching on) and prints decisions/s, generated tokens/s, the prefix-cache hit rate (when
the vLLM version exposes it), and the memory-bandwidth limit of decoding:

* one decode step reads every weight once: ``step_s = weight_bytes / bandwidth``, with
  ``weight_bytes = params x bytes per parameter`` (bf16/fp16 2, fp8/int8 1, int4 0.5);
* a batch of ``B`` sequences gains one token per step, so generated tokens/s are at most
  ``B / step_s`` and decisions/s at most ``B / (step_s x tokens per decision)``
  (prefill, KV-cache reads and sampling are ignored: the true ceiling is lower).

``measured / limit`` is printed for tokens/s.  The figures in docs/benchmarks.md for this
script are **not yet measured** (no GPU where econsim is developed); the argument handling
and the limit arithmetic are unit-tested (tests/test_pooling_benchmarks.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

#: Peak memory bandwidth, TB/s (vendor data sheets).
GPU_BANDWIDTH_TBS = {
    "h200": 4.8,
    "h100": 3.35,        # SXM5
    "h100-pcie": 2.0,
    "a100": 2.039,       # 80 GB SXM
    "a100-40gb": 1.555,
    "l40s": 0.864,
    "a10g": 0.6,
    "l4": 0.3,
    "rtx4090": 1.008,
}
BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


def decode_limit(params_billion: float, dtype: str, bandwidth_tbs: float, batch: int,
                 tokens_per_decision: float) -> dict[str, float]:
    """The memory-bandwidth ceiling of decoding (see the module docstring).

    Returns ``weight_bytes``, ``step_s`` (seconds per decode step), ``tokens_per_s`` and
    ``decisions_per_s`` (upper bounds for a batch of ``batch`` sequences).
    """
    if params_billion <= 0 or bandwidth_tbs <= 0 or batch < 1 or tokens_per_decision <= 0:
        raise ValueError("params, bandwidth, batch and tokens per decision must be positive")
    weight_bytes = params_billion * 1e9 * BYTES_PER_PARAM[dtype]
    step_s = weight_bytes / (bandwidth_tbs * 1e12)
    tok = batch / step_s
    return {"weight_bytes": weight_bytes, "step_s": step_s, "tokens_per_s": tok,
            "decisions_per_s": tok / tokens_per_decision}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="local model folder or hub id vLLM can load")
    ap.add_argument("--params", type=float, required=True, help="parameters, in billions (e.g. 8.0)")
    ap.add_argument("--gpu", default=None, help=f"one of {', '.join(GPU_BANDWIDTH_TBS)}")
    ap.add_argument("--bandwidth-tbs", type=float, default=None, help="memory bandwidth, TB/s (instead of --gpu)")
    ap.add_argument("--dtype", default="bf16", choices=sorted(BYTES_PER_PARAM))
    ap.add_argument("--workers", type=int, default=10_000)
    ap.add_argument("--budget", type=int, default=0, help="pooling budget per step (0: one call per worker)")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--batch", type=int, default=None, help="sequences decoded together (default: the chunk size)")
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    args = ap.parse_args(argv)
    if args.bandwidth_tbs is None:
        if args.gpu is None:
            ap.error("give --gpu or --bandwidth-tbs")
        key = args.gpu.lower()
        if key not in GPU_BANDWIDTH_TBS:
            ap.error(f"unknown --gpu {args.gpu!r}: use one of {', '.join(GPU_BANDWIDTH_TBS)} or --bandwidth-tbs")
        args.bandwidth_tbs = GPU_BANDWIDTH_TBS[key]
    if args.workers < 1 or args.params <= 0 or args.max_tokens < 1:
        ap.error("--workers, --params and --max-tokens must be positive")
    if args.budget < 0:
        ap.error("--budget must be >= 0")
    if args.tensor_parallel_size < 1 or (args.batch is not None and args.batch < 1):
        ap.error("--tensor-parallel-size and --batch must be >= 1")
    return args


def prefix_hit_rate(llm) -> float | None:
    """vLLM's prefix-cache hit rate from ``LLM.get_metrics()`` where available."""
    try:
        from simulator.sim.workers.streaming import backend_of

        engine = backend_of(llm).llm  # the vllm.LLM object of econsim's vLLM backend
        metrics = {m.name: m for m in engine.get_metrics()}
        hits = metrics["vllm:prefix_cache_hits"].value
        queries = metrics["vllm:prefix_cache_queries"].value
        return hits / queries if queries else None
    except Exception:  # noqa: BLE001 - older vLLM or a different backend layout
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from simulator.errors import UserError

    try:
        return _measure(args)
    except UserError as exc:  # no vLLM, a model it cannot load, bad engine options: one line
        print(f"vllm_gpu.py: error: {exc}", file=sys.stderr)
        return 2


def _measure(args: argparse.Namespace) -> int:
    from simulator.config.loading import scenario_from_dict
    from simulator.llm import build_llm
    from simulator.sim.model import EconomyModel
    from simulator.sim.workers.streaming import chunk_size_for

    workers = {"policy": "llm"}
    if args.budget:
        workers["llm"] = {"pooling": {"budget": args.budget}}
    llm_cfg = {"backend": "vllm", "model": args.model, "cache": "off",
               "vllm": {"tensor_parallel_size": args.tensor_parallel_size}}
    sc = scenario_from_dict({
        "population": {"size": args.workers, "source": "census"}, "workers": workers,
        "planner": {"kind": "us_federal"}, "run": {"seed": 0, "mesa_agents": False}, "llm": llm_cfg,
    })
    llm = build_llm(sc.llm)
    model = EconomyModel(sc, llm=llm, agent_objects=False)
    model.planner.set_taxes()
    t0 = time.perf_counter()
    model.policy.decide(model)
    wall = time.perf_counter() - t0
    summary = llm.telemetry.summary()
    calls = summary["requests"]
    tokens = summary["completion_tokens"]
    per_decision = tokens / max(calls, 1)
    batch = args.batch or min(calls, chunk_size_for(llm))
    lim = decode_limit(args.params * 1.0 / args.tensor_parallel_size, args.dtype, args.bandwidth_tbs,
                       batch, max(per_decision, 1.0))
    hit = prefix_hit_rate(llm)
    sys.path.append(str(Path(__file__).resolve().parent))
    from _provenance import header  # deferred: after the arguments and the engine, as the rest

    print(header(__file__))
    print(f"model {args.model} ({args.params:g} B params, {args.dtype}), bandwidth {args.bandwidth_tbs} TB/s")
    print(f"workers {args.workers:,}, calls {calls:,}, wall {wall:.2f} s")
    print(f"decisions/s {args.workers / wall:,.1f} (model calls/s {calls / wall:,.1f})")
    print(f"generated tokens/s {tokens / wall:,.1f}; decode limit {lim['tokens_per_s']:,.0f} tokens/s "
          f"at batch {batch} (step {lim['step_s'] * 1e3:.2f} ms); measured/limit {tokens / wall / lim['tokens_per_s']:.2%}")
    print(f"prefix-cache hit rate {'n/a' if hit is None else f'{hit:.1%}'}")
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
