"""``econsim behaviour SCENARIO``: the behavioural validity report of a worker policy."""

from __future__ import annotations

import argparse
import sys

from simulator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "behaviour",
        help="behavioural validity report of the scenario's workers (incentives, dispersion, "
        "persona sensitivity, consistency, reliability)",
        description="Ask the scenario's worker policy for hours under perturbed schedules, a higher "
        "rebate, changed personas and wages, other seeds and reversed tables; judge each check "
        "against the literature (ETI, income effect), the CPS hours distribution and the rational "
        "workers of the same scenario. See docs/validity.md.",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a YAML file or the name of a shipped scenario")
    p.add_argument("--workers", type=int, help="override population.size")
    p.add_argument("--perturbations", default="-0.2,-0.1,0,0.1,0.2",
                   help="net-of-tax rate changes, comma-separated (default -0.2,-0.1,0,0.1,0.2)")
    p.add_argument("--rebate-change", type=float, default=10_000.0,
                   help="dollars a year added to the rebate for the income effect (default 10000)")
    p.add_argument("--wage-factor", type=float, default=1.5,
                   help="wage scale of the wage-dependence check (default 1.5)")
    p.add_argument("--out", metavar="DIR",
                   help="write validity.parquet and validity_replies.parquet here (e.g. a run directory)")
    p.add_argument("--strict", action="store_true",
                   help="exit 4 when any judged check lies outside its range (for CI gates)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress on stderr")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario value (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.config.loading import (  # deferred: every command loads only what it runs (fast --help)
        load_scenario,
        resolve_scenario_path,
    )
    from simulator.validity.collect import (
        run_validity,  # deferred: every command loads only what it runs (fast --help)
    )

    try:
        perts = tuple(float(x) for x in args.perturbations.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--perturbations: expected numbers separated by commas, got {args.perturbations!r}") from None
    if len(set(perts)) < 2 or any(p <= -1 for p in perts):
        raise UserError("--perturbations: need at least two distinct values, each > -1")
    if not args.rebate_change > 0:
        raise UserError(f"--rebate-change must be > 0 dollars a year, got {args.rebate_change:g}")
    if not args.wage_factor > 0 or args.wage_factor == 1:
        raise UserError(f"--wage-factor must be > 0 and not 1, got {args.wage_factor:g}")
    overrides = list(args.overrides)
    if args.workers is not None:
        if args.workers < 2:
            raise UserError("--workers must be at least 2")
        overrides.append(f"population.size={args.workers}")
    scenario = load_scenario(resolve_scenario_path(args.scenario), overrides)
    report = run_validity(scenario, perturbations=perts, rebate_change=args.rebate_change,
                          wage_factor=args.wage_factor, progress=False if args.no_progress else None)
    print(report.text())
    if args.out:
        try:
            path = report.write(args.out)
        except OSError as exc:
            raise UserError(f"--out {args.out}: cannot write: {exc.strerror or exc}") from None
        print(f"validity table: {path}")
    status = _exit_status(report, scenario.llm.max_failure_rate)
    if args.strict and status in (0, 3) and report.outside():
        print(f"econsim: behaviour --strict: {len(report.outside())} check(s) outside their "
              f"ranges: {', '.join(report.outside())}", file=sys.stderr)
        return STRICT_EXIT
    return status


STRICT_EXIT = 4
"""Exit status of ``econsim behaviour --strict`` when a judged check lies outside its range."""


def _exit_status(report, max_failure_rate: float) -> int:
    """Like ``econsim run``: 1 when more than ``llm.max_failure_rate`` of the model's
    replies fell back (the report then describes the fallbacks, not the model), 3 when
    some did, 0 when every reply was usable or the workers are not LLM workers."""
    import math

    row = report.table[report.table["check"] == "reliability.fallback"]
    share = float(row["value"].iloc[0]) if len(row) else float("nan")
    if math.isnan(share) or share == 0:
        return 0
    if share > max_failure_rate:
        print(f"econsim: behaviour: {share:.0%} of the model's replies fell back "
              f"(> llm.max_failure_rate {max_failure_rate:.0%}): the checks describe the "
              "fallbacks, not the model", file=sys.stderr)
        return 1
    print(f"warning: {share:.1%} of the model's replies fell back", file=sys.stderr)
    return 3
