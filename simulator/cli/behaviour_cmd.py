"""``econsim behaviour SCENARIO``: the elasticity of taxable income of a worker policy."""

from __future__ import annotations

import argparse

from simulator.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "behaviour",
        help="measure how the scenario's workers respond to taxes (ETI with a CI)",
        description="Perturb net-of-tax rates, ask the scenario's worker policy for hours, and "
        "regress log income on the log net-of-tax rate.",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="a YAML file or the name of a shipped scenario")
    p.add_argument("--workers", type=int, help="override population.size")
    p.add_argument("--perturbations", default="-0.2,-0.1,0,0.1,0.2",
                   help="net-of-tax rate changes, comma-separated (default -0.2,-0.1,0,0.1,0.2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario value (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.behaviour import measure_behaviour
    from simulator.scenario import load_scenario, resolve_scenario_path

    try:
        perts = tuple(float(x) for x in args.perturbations.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--perturbations: expected numbers separated by commas, got {args.perturbations!r}") from None
    if len(set(perts)) < 2 or any(p <= -1 for p in perts):
        raise UserError("--perturbations: need at least two distinct values, each > -1")
    overrides = list(args.overrides)
    if args.workers is not None:
        if args.workers < 2:
            raise UserError("--workers must be at least 2")
        overrides.append(f"population.size={args.workers}")
    scenario = load_scenario(resolve_scenario_path(args.scenario), overrides)
    report = measure_behaviour(scenario, perts)
    print(report.text())
    return 0
