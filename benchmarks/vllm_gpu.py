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

It also prints the compute limit of prefill, per prompt layout
(``workers.llm.prompt_layout``; ``--layout`` chooses the one the step is run with):

* a prefilled token costs about ``2 x params`` FLOP (16 GFLOP for 8 B parameters); at
  ``--tflops`` of useful dense bf16 work (``GPU_TFLOPS``, about 60 % of the data sheet's
  peak: 600 for an H200) the GPU prefills ``tflops / (2 x params)`` tokens/s (about
  37,500 for 8 B on an H200);
* with the shared start of the prompts in the prefix cache, a decision prefills only its
  unshared tokens (its prompt less the token prefix every prompt of the step shares,
  measured on up to ``--token-sample`` prompts with the model's tokenizer), so
  decisions/s are at most ``tokens/s / unshared tokens`` (2,000 decisions/s need at most
  about 18 unshared tokens each).

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
#: Useful dense bf16 tensor throughput, TFLOP/s: about 60 % of the data sheet's dense peak
#: (H100/H200 SXM 989, H100 PCIe 756, A100 312, L40S 362, A10G 125, L4 121, RTX 4090 165).
GPU_TFLOPS = {
    "h200": 600.0,
    "h100": 600.0,
    "h100-pcie": 450.0,
    "a100": 190.0,
    "a100-40gb": 190.0,
    "l40s": 220.0,
    "a10g": 75.0,
    "l4": 73.0,
    "rtx4090": 100.0,
}


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


def prefill_bound(params_billion: float, tflops: float, unshared_tokens: float) -> dict[str, float]:
    """The compute ceiling of prefill (see the module docstring).

    Returns ``flop_per_token`` (2 x params), ``tokens_per_s`` (prefilled tokens a second at
    ``tflops``) and ``decisions_per_s`` (at most, when each decision prefills
    ``unshared_tokens``).
    """
    if params_billion <= 0 or tflops <= 0 or unshared_tokens <= 0:
        raise ValueError("params, TFLOP/s and unshared tokens must be positive")
    flop = 2.0 * params_billion * 1e9
    tok = tflops * 1e12 / flop
    return {"flop_per_token": flop, "tokens_per_s": tok, "decisions_per_s": tok / unshared_tokens}


def unshared_tokens(token_lists: list[list[int]]) -> tuple[float, float]:
    """(mean tokens, mean tokens beyond the prefix all of ``token_lists`` share)."""
    if not token_lists:
        raise ValueError("no prompts")
    first = token_lists[0]
    common = min(len(t) for t in token_lists)
    for t in token_lists[1:]:
        n = min(common, len(t))
        common = next((k for k in range(n) if first[k] != t[k]), n)
    mean = sum(len(t) for t in token_lists) / len(token_lists)
    return mean, mean - common


def prefill_table(params_billion: float, tflops: float, unshared: dict[str, float]) -> list[str]:
    """The printed prefill bound: one line of the arithmetic, then one row per layout of
    ``unshared`` (layout -> unshared tokens per decision) with the decisions/s it allows."""
    lines = []
    for k, (layout, u) in enumerate(unshared.items()):
        b = prefill_bound(params_billion, tflops, u)
        if k == 0:
            lines.append(f"prefill bound: {b['flop_per_token'] / 1e9:.1f} GFLOP per prefilled token "
                         f"(2 x {params_billion:g} B params); at {tflops:g} TFLOP/s "
                         f"{b['tokens_per_s']:,.0f} tokens/s")
            lines.append(f"{'prompt layout':<14} {'unshared tokens/decision':>25} {'decisions/s bound':>18}")
        lines.append(f"{layout:<14} {u:>25.1f} {b['decisions_per_s']:>18,.0f}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="local model folder or hub id vLLM can load")
    ap.add_argument("--params", type=float, required=True, help="parameters, in billions (e.g. 8.0)")
    ap.add_argument("--gpu", default=None, help=f"one of {', '.join(GPU_BANDWIDTH_TBS)}")
    ap.add_argument("--bandwidth-tbs", type=float, default=None, help="memory bandwidth, TB/s (instead of --gpu)")
    ap.add_argument("--tflops", type=float, default=None,
                    help="useful dense bf16 TFLOP/s for the prefill bound (default: the --gpu's, GPU_TFLOPS)")
    ap.add_argument("--layout", default="compact", choices=["compact", "verbose"],
                    help="workers.llm.prompt_layout of the measured step")
    ap.add_argument("--token-sample", type=int, default=1_000,
                    help="prompts tokenized per layout for the unshared tokens")
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
    if args.tflops is None and args.gpu is not None:
        args.tflops = GPU_TFLOPS.get(args.gpu.lower())
    if args.tflops is not None and args.tflops <= 0:
        ap.error("--tflops must be positive")
    if args.workers < 1 or args.params <= 0 or args.max_tokens < 1 or args.token_sample < 1:
        ap.error("--workers, --params, --max-tokens and --token-sample must be positive")
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

    workers = {"policy": "llm", "llm": {"prompt_layout": args.layout}}
    if args.budget:
        workers["llm"]["pooling"] = {"budget": args.budget}
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
    unshared = layout_unshared_tokens(model, llm, args.token_sample)
    sys.path.append(str(Path(__file__).resolve().parent))
    from _provenance import header  # deferred: after the arguments and the engine, as the rest

    print(header(__file__))
    print(f"model {args.model} ({args.params:g} B params, {args.dtype}), bandwidth {args.bandwidth_tbs} TB/s")
    print(f"workers {args.workers:,}, calls {calls:,}, wall {wall:.2f} s")
    print(f"decisions/s {args.workers / wall:,.1f} (model calls/s {calls / wall:,.1f})")
    print(f"generated tokens/s {tokens / wall:,.1f}; decode limit {lim['tokens_per_s']:,.0f} tokens/s "
          f"at batch {batch} (step {lim['step_s'] * 1e3:.2f} ms); measured/limit {tokens / wall / lim['tokens_per_s']:.2%}")
    print(f"prefix-cache hit rate {'n/a' if hit is None else f'{hit:.1%}'}")
    if unshared is None:
        print("prefill bound: n/a (the backend's tokenizer could not render the prompts)")
    elif args.tflops is None:
        print("prefill bound: n/a (give --tflops for a GPU not in GPU_TFLOPS)")
    else:
        for layout, (mean, _) in unshared.items():
            print(f"{layout} prompts: {mean:,.1f} tokens per decision, {unshared[layout][1]:,.1f} unshared")
        for line in prefill_table(args.params, args.tflops, {k: v[1] for k, v in unshared.items()}):
            print(line)
    llm.close()
    return 0


def layout_unshared_tokens(model, llm, sample: int) -> dict[str, tuple[float, float]] | None:
    """Per prompt layout, (mean tokens, mean unshared tokens) of this step's first
    ``sample`` worker prompts, tokenized as the vLLM backend sends them (None when it
    cannot render them)."""
    import numpy as np

    from simulator.sim.workers.streaming import backend_of

    try:
        render = backend_of(llm).render
        idx = np.arange(min(sample, model.n_workers))
        out = {}
        for layout in ("verbose", "compact"):
            pol = type(model.policy)(model.policy.options.model_copy(update={"prompt_layout": layout}))
            reqs = pol.requests(model, model.schedule, model.expected_rebate, False, idx + 1, idx)
            out[layout] = unshared_tokens([list(render(r.messages)["prompt_token_ids"]) for r in reqs])
        return out
    except Exception:  # noqa: BLE001 - a backend without render(): no bound, the rest is printed
        return None


if __name__ == "__main__":
    sys.exit(main())
