"""``econsim run``, ``econsim validate`` and ``econsim scenarios``."""

from __future__ import annotations

import argparse

import yaml

from simulator.errors import UserError
from simulator.scenario import load_scenario, resolve_scenario_path, shipped_scenarios_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario", description="Run a scenario YAML file.")
    p.add_argument("scenario", metavar="SCENARIO", help="a YAML file or the name of a shipped scenario")
    p.add_argument("--seed", type=int, help="override run.seed")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<name>-<time>)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a scenario value, e.g. --set population.size=500 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)

    v = sub.add_parser("validate", help="check a scenario file without running it",
                       description="Check a scenario file (every field, every compare variant) "
                       "without running it.")
    v.add_argument("scenario", metavar="SCENARIO", help="a YAML file or the name of a shipped scenario")
    v.add_argument("--seed", type=int, help="override run.seed")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario value, e.g. --set population.size=500 (repeatable)")
    v.set_defaults(func=validate)

    s = sub.add_parser("scenarios", help="list the shipped scenarios",
                       description="List the scenarios shipped with econsim (run one by name).")
    s.set_defaults(func=scenarios)


def _load(args: argparse.Namespace):
    path = resolve_scenario_path(args.scenario)
    scenario = load_scenario(path, args.overrides)
    if getattr(args, "seed", None) is not None:
        if args.seed < 0:
            raise UserError(f"--seed must be >= 0, got {args.seed}")
        scenario = scenario.model_copy(
            update={"run": scenario.run.model_copy(update={"seed": args.seed})}
        )
    from simulator.planners.search import check_scenario

    check_scenario(scenario, str(path))  # search planners: is any schedule feasible?
    return path, scenario


def run(args: argparse.Namespace) -> int:
    from simulator.runner import run_comparison, run_scenario

    path, scenario = _load(args)
    who = (f"workers from {scenario.population.path}" if scenario.population.source == "file"
           and "size" not in scenario.population.model_fields_set
           else f"{scenario.population.size:,} workers")
    print(f"econsim: running {path} ({who}, "
          f"{scenario.run.tax_years} tax years, planner {scenario.planner.kind}, "
          f"workers {scenario.workers.policy}, seed {scenario.run.seed})")
    from simulator.run_health import EXIT_CODES

    progress = False if args.no_progress else None
    if scenario.compare:
        statuses = list(run_comparison(scenario, args.out, progress=progress)["status"])
    else:
        statuses = [run_scenario(scenario, args.out, progress=progress).status]
    # a run that degraded says so in its exit status (3), a failed one raised (1)
    return max(EXIT_CODES.get(s, 1) for s in statuses)


def validate(args: argparse.Namespace) -> int:
    path, scenario = _load(args)
    print(f"{path}: ok ({scenario.name}: {scenario.population.size:,} workers, "
          f"planner {scenario.planner.kind}, workers {scenario.workers.policy})")
    return 0


def scenarios(args: argparse.Namespace) -> int:
    folder = shipped_scenarios_dir()
    files = sorted(folder.glob("*.yaml"))
    if not files:
        print(f"no scenarios found in {folder}")
        return 1
    width = max(len(f.stem) for f in files)
    for f in files:
        try:
            data = yaml.safe_load(f.read_text()) or {}
            desc = str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
        except yaml.YAMLError:
            desc = "(invalid YAML)"
        print(f"{f.stem.ljust(width)}  {desc}")
    return 0
