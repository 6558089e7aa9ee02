"""Throughput of the embedded backend on a batch of worker-like prompts.

    .venv/bin/python benchmarks/llm.py                 # 50 prompts, a few layouts
    .venv/bin/python benchmarks/llm.py --n 50 --layouts 2x1 --json

Each prompt is ~440 tokens (a shared ~350-token system prompt about the economy, then a
per-agent persona and wage), constrained to ``{"labor_hours": 0..100}``, greedy.  The
response cache is off.  Reports, per layout (processes x threads), the wall time of the
batch including model load / pool start ("cold") and of a second, different batch on the
warm model ("warm"), as prompts per second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header  # noqa: E402

SYSTEM = (
    "You are a citizen of a simulated economy that is used to study tax policy. Every year "
    "you decide how many hours to work each week. Your pre-tax income is your hourly wage "
    "times the hours you work times 50 weeks. The government taxes income with a piecewise "
    "linear schedule of marginal rates over brackets, and every citizen receives an equal "
    "share of the total tax revenue back as a lump-sum transfer at the end of the year. "
    "Working more raises your income but costs you leisure, which you also value; how much "
    "you value leisure depends on your personality, your household and your health. Think "
    "about how the marginal tax rate on your next dollar of income changes the reward for "
    "working an extra hour, and how the transfer changes how much you need to work. "
    "The brackets this year are: 0 to 11,600 dollars at 10 percent; 11,600 to 47,150 at 12 "
    "percent; 47,150 to 100,525 at 22 percent; 100,525 to 191,950 at 24 percent; 191,950 to "
    "243,725 at 32 percent; 243,725 to 609,350 at 35 percent; above 609,350 at 37 percent. "
    "Last year the average citizen worked 38 hours a week, total revenue was 1.2 million "
    "dollars and each citizen received 12,000 dollars back. Answer only with the JSON object "
    'requested, for example {"labor_hours": 40}. Hours must be a whole number from 0 to 100.'
)
JOBS = ["nurse", "teacher", "software developer", "farmer", "retail clerk", "lawyer", "electrician",
        "truck driver", "artist", "accountant"]


def make_requests(n: int, offset: int = 0):
    from simulator.llm import Request, integer_field, json_object_constraint

    c = json_object_constraint(labor_hours=integer_field(0, 100))
    reqs = []
    for k in range(n):
        i = k + offset
        persona = (
            f"You are citizen #{i}, a {30 + i % 35}-year-old {JOBS[i % len(JOBS)]} with "
            f"{i % 4} children. You earn ${14 + (i * 7) % 90} per hour. Your health is "
            f"{['excellent', 'good', 'fair', 'poor'][i % 4]} and you {'enjoy' if i % 3 else 'dislike'} "
            f"your work. Last year you worked {20 + (i * 11) % 45} hours a week. "
            "How many hours per week will you work this year?"
        )
        reqs.append(Request.chat(persona, system=SYSTEM, constraint=c, max_tokens=8, seed=i, tag="worker"))
    return reqs


def run_layout(n: int, processes: int, threads: int) -> dict:
    from simulator.llm.embedded import EmbeddedModel

    t0 = time.perf_counter()
    m = EmbeddedModel(processes=processes, threads=threads)
    cold_batch = make_requests(n)
    out = m.generate(cold_batch)
    cold = time.perf_counter() - t0
    warm_batch = make_requests(n, offset=n)
    t1 = time.perf_counter()
    out2 = m.generate(warm_batch)
    warm = time.perf_counter() - t1
    m.close()
    allr = out + out2
    hours = [r.value["labor_hours"] for r in allr if r.ok]
    return {
        "layout": f"{processes}x{threads}",
        "n": n,
        "prompt_tokens_mean": sum(r.prompt_tokens for r in out) / max(1, len(out)),
        "cold_s": round(cold, 2),
        "cold_prompts_per_s": round(n / cold, 2),
        "warm_s": round(warm, 2),
        "warm_prompts_per_s": round(n / warm, 2),
        "valid": sum(r.ok for r in allr),
        "total": len(allr),
        "mean_hours": round(sum(hours) / max(1, len(hours)), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--layouts", default="1x1,1x2,2x1", help="processes x threads, comma separated")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    if not args.json:
        print(header(__file__, argv), flush=True)
    rows = []
    for lay in args.layouts.split(","):
        p, t = (int(x) for x in lay.lower().split("x"))
        rows.append(run_layout(args.n, p, t))
        if not args.json:
            r = rows[-1]
            print(f"{r['layout']:>5}: cold {r['cold_s']:6.2f} s ({r['cold_prompts_per_s']:.2f}/s)  "
                  f"warm {r['warm_s']:6.2f} s ({r['warm_prompts_per_s']:.2f}/s)  "
                  f"prompt {r['prompt_tokens_mean']:.0f} tok  valid {r['valid']}/{r['total']}  "
                  f"mean hours {r['mean_hours']}", flush=True)
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2))
    else:
        print(footer(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
