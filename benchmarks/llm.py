"""One request at a time against batched on the embedded backend, idle and under load.

    .venv/bin/python benchmarks/llm.py    # 8 prompts x 4 rounds, 3 layouts, load 0 and 2
    .venv/bin/python benchmarks/llm.py --n 16 --layouts 2x1,2x1/pool,1x1 --load 0,2,3 --rounds 3
    .venv/bin/python benchmarks/llm.py --json

The prompts are real year-0 worker prompts (Census personas, the 2024 schedule, ~500
tokens of which ~350 are the shared system prompt), constrained to ``{"hours": 0..100}``;
``--prompts synthetic`` uses the older ~440-token synthetic ones.  Cache off.

For each layout (``PxT`` = ``EmbeddedModel(processes=P, threads=T)``, which picks pool or
in-process per batch by measured throughput; ``PxT/pool`` forces the pool,
``PxT/in-process`` the calling process) and each load, the script measures the same
prompts ``--rounds`` times both ways, alternating: one at a time (``generate([r])`` in a
loop) and batched (one ``generate`` call), on a warm model (three small batches first: they
load the model, start the pool and measure each layout once), and prints prompts per
second, the ratio batched / one-at-a-time over all rounds and its range over the rounds
(the load of a shared machine moves), where the batches ran and the load average.

``--load N`` starts N busy-loop processes (``python -c`` loops) for the measurement of
that load and stops them by their PID afterwards (they also stop if this script dies).
By default each runs in its own session, like programs of other terminals or users:
Linux's autogroup scheduling shares CPU time between sessions, which is what makes the
worker pool lose under load; ``--load-sessions same`` keeps them in this script's session.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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


def worker_requests(n: int, seed: int = 0):
    """``n`` real year-0 LLM worker prompts (as ``benchmarks/llm_step.py`` builds them)."""
    import numpy as np

    from simulator.config.loading import scenario_from_dict
    from simulator.sim.model import EconomyModel

    sc = scenario_from_dict({
        "population": {"size": n, "source": "census"},
        "workers": {"policy": "llm"}, "planner": {"kind": "us_federal"},
        "run": {"seed": seed, "mesa_agents": False}, "llm": {"backend": "scripted", "cache": "off"},
    })
    m = EconomyModel(sc, agent_objects=False)
    return m.policy.requests(m, m.schedule, m.expected_rebate, False, np.arange(1, n + 1))


# a busy loop that also ends when its parent (this script) is gone
_BUSY = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    for _ in range(200000): pass\n"


class Load:
    """``n`` busy-loop processes while the ``with`` block runs, stopped by their PID."""

    def __init__(self, n: int, own_sessions: bool = True) -> None:
        self.n, self.own_sessions = n, own_sessions
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Load:
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", _BUSY], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=self.own_sessions))
        if self.n:
            time.sleep(2)  # let them reach the run queue
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()  # by its PID (the Popen handle)
        for p in self.procs:
            p.wait()
        self.procs = []


def parse_layout(spec: str) -> tuple[int, int, str]:
    """``"2x1"`` -> (2, 1, "auto"); ``"2x1/pool"`` -> (2, 1, "pool")."""
    shape, _, mode = spec.strip().lower().partition("/")
    p, t = (int(x) for x in shape.split("x"))
    mode = mode or "auto"
    if mode not in ("auto", "pool", "in-process") or p < 1 or t < 1:
        raise ValueError(f"bad layout {spec!r}: PxT, PxT/pool or PxT/in-process")
    return p, t, mode


def measure(spec: str, load: int, n: int, rounds: int, prompts: str, own_sessions: bool) -> dict:
    from simulator.llm.embedded import EmbeddedModel

    processes, threads, mode = parse_layout(spec)
    reqs = worker_requests(n + 4) if prompts == "worker" else make_requests(n + 4)
    warm, reqs = reqs[:4], reqs[4:]
    with Load(load, own_sessions):
        m = EmbeddedModel(processes=processes, threads=threads, layout=mode)
        try:
            for _ in range(3):  # load the model, start the pool, measure both layouts once
                m.generate(warm)
            seq_s = bat_s = 0.0
            per_round: list[float] = []
            ran: list[str] = []
            same = True
            valid = 0
            for _ in range(rounds):  # alternating, so a change of load hits both
                t0 = time.perf_counter()
                one = [m.generate([r])[0] for r in reqs]
                t1 = time.perf_counter()
                many = m.generate(reqs)
                t2 = time.perf_counter()
                seq_s, bat_s = seq_s + t1 - t0, bat_s + t2 - t1
                per_round.append((t1 - t0) / (t2 - t1))
                ran.append(m.last_layout or "?")
                same = same and [r.text for r in one] == [r.text for r in many]
                valid += sum(r.ok for r in one) + sum(r.ok for r in many)
            tokens = sum(r.prompt_tokens for r in one) / max(1, len(one))
        finally:
            m.close()
        loadavg = os.getloadavg()
    total = rounds * len(reqs)
    return {
        "layout": spec, "load": load, "n": len(reqs), "rounds": rounds,
        "prompt_tokens_mean": round(tokens),
        "sequential_per_s": round(total / seq_s, 3), "batched_per_s": round(total / bat_s, 3),
        "batched_over_sequential": round(seq_s / bat_s, 2),
        "round_ratios": [round(x, 2) for x in per_round],
        "batched_ran": {k: ran.count(k) for k in sorted(set(ran))},
        "same_replies": same, "valid": valid, "total": 2 * total,
        "load_average": [round(x, 2) for x in loadavg],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="prompts per batch")
    ap.add_argument("--layouts", default="2x1,2x1/pool,2x1/in-process",
                    help="PxT (auto), PxT/pool or PxT/in-process, comma separated")
    ap.add_argument("--load", default="0,2", help="busy-loop processes to run meanwhile, comma separated")
    ap.add_argument("--load-sessions", choices=["own", "same"], default="own",
                    help="busy loops each in its own session (default) or in this one")
    ap.add_argument("--rounds", type=int, default=4, help="alternating one-at-a-time/batched rounds")
    ap.add_argument("--prompts", choices=["worker", "synthetic"], default="worker")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    loads = [int(x) for x in args.load.split(",")]
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    try:
        for spec in layouts:
            parse_layout(spec)
    except ValueError as exc:
        ap.error(str(exc))
    if args.n < 4 or args.rounds < 1 or min(loads) < 0:
        ap.error("--n must be >= 4, --rounds >= 1, --load >= 0")
    started = time.perf_counter()
    if not args.json:
        print(header(__file__, argv), flush=True)
        print(f"{args.n} {args.prompts} prompts x {args.rounds} rounds; load = busy-loop processes "
              f"({'each in its own session' if args.load_sessions == 'own' else 'in this session'})")
        print(f"{'layout':<14} {'load':>4} {'one-at-a-time':>14} {'batched':>9} {'batched/one':>12}  "
              f"{'rounds':<11} {'batches ran':<16} {'same':<5} {'valid':<8} load average", flush=True)
    rows = []
    for load in loads:
        for spec in layouts:
            r = measure(spec, load, args.n, args.rounds, args.prompts, args.load_sessions == "own")
            rows.append(r)
            if not args.json:
                ran = ", ".join(f"{k} {v}" for k, v in r["batched_ran"].items())
                spread = f"{min(r['round_ratios']):.2f}-{max(r['round_ratios']):.2f}"
                print(f"{spec:<14} {load:>4} {r['sequential_per_s']:>12.2f}/s {r['batched_per_s']:>7.2f}/s "
                      f"{r['batched_over_sequential']:>11.2f}x  {spread:<11} {ran:<16} {str(r['same_replies']):<5} "
                      f"{r['valid']}/{r['total']:<4} {' '.join(f'{x:.2f}' for x in r['load_average'])}",
                      flush=True)
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2))
    else:
        print(footer(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
