"""``econsim run``, ``econsim validate`` and ``econsim scenarios``."""

from __future__ import annotations

import argparse

import yaml

from simulator.config.loading import load_scenario, resolve_scenario_path, shipped_scenarios_dir
from simulator.errors import UserError


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
    p.add_argument("--jobs", type=int, metavar="N",
                   help="experiments: runs in parallel in a local process pool (default: one per "
                   "CPU, 1 with the embedded LLM); with --ray: CPUs of the local instance")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="experiments: run on Ray (a cluster ADDRESS, or none to start a local "
                   "instance with --jobs CPUs); needs econsim[ray]")
    p.add_argument("--baseline", metavar="LABEL",
                   help="experiments: the variant the others are compared with (default: the first)")
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
    from simulator.run.preflight import (  # deferred: every command loads only what it runs (fast --help)
        check_seed_flag,
        preflight,
    )

    check_seed_flag(scenario, getattr(args, "seed", None), str(path))
    if getattr(args, "seed", None) is not None:
        scenario = scenario.model_copy(
            update={"run": scenario.run.model_copy(update={"seed": args.seed})}
        )
    from simulator.sim.planners.search import (
        check_scenario,  # deferred: every command loads only what it runs (fast --help)
    )

    check_scenario(scenario, str(path))  # search planners: is any schedule feasible?
    # everything else the run checks before its first tax year (validate == run)
    preflight(scenario, str(path), baseline=getattr(args, "baseline", None))
    return path, scenario


def run(args: argparse.Namespace) -> int:
    from simulator.experiments import (  # deferred: every command loads only what it runs (fast --help)
        is_experiment,
        run_experiment,
    )
    from simulator.run.runner import (  # deferred: every command loads only what it runs (fast --help)
        check_out_dir,
        run_scenario,
    )

    path, scenario = _load(args)
    experiment = is_experiment(scenario)
    if args.out is not None:  # an experiment's root is checked for other files by the experiment
        check_out_dir(args.out, "--out", contents=not experiment)
    elif scenario.output.dir is not None:
        check_out_dir(scenario.output.dir, "output.dir", contents=not experiment)
    who = (f"workers from {scenario.population.path}" if scenario.population.source == "file"
           and "size" not in scenario.population.model_fields_set
           else f"{scenario.population.size:,} workers")
    print(f"econsim: running {path} ({who}, "
          f"{scenario.run.tax_years} tax years, planner {scenario.planner.kind}, "
          f"workers {scenario.workers.policy}, "
          f"seed{'s' if scenario.run.seeds is not None else ''} "
          f"{', '.join(map(str, scenario.run.seed_list()))})")
    from simulator.sim.health import (
        EXIT_CODES,  # deferred: every command loads only what it runs (fast --help)
    )

    progress = False if args.no_progress else None
    if experiment:
        jobs = args.jobs if args.jobs is not None else (None if args.ray else "auto")
        plan = run_experiment(scenario, args.out, jobs=jobs, ray=args.ray,
                              baseline=args.baseline, source=str(path))
        # an experiment whose runs degraded says so (3); one with failed runs exits 1
        return EXIT_CODES.get(plan.status, 1)
    if args.jobs is not None or args.ray is not None or args.baseline is not None:
        raise UserError("--jobs, --ray and --baseline need an experiment "
                        "(run.seeds, compare: or sweep: in the scenario)")
    # a run that degraded says so in its exit status (3), a failed one raised RunFailed (1)
    return EXIT_CODES.get(run_scenario(scenario, args.out, progress=progress).status, 1)


def validate(args: argparse.Namespace) -> int:
    from simulator.experiments import (  # deferred: every command loads only what it runs (fast --help)
        is_experiment,
        plan_experiment,
    )

    path, scenario = _load(args)
    if is_experiment(scenario):
        plan = plan_experiment(scenario, ".", source=str(path))
        print(f"{path}: experiment of {len(plan.variants)} variants x {len(plan.seeds)} seeds "
              f"(baseline {plan.baseline})")
    print(f"{path}: ok ({scenario.name}: {scenario.population.size:,} workers, "
          f"planner {scenario.planner.kind}, workers {scenario.workers.policy})")
    from simulator.sim.planners.llm import (
        constraint_warnings,  # deferred: every command loads only what it runs (fast --help)
    )

    for label, variant in scenario.variants(str(path)):
        for w in constraint_warnings(variant):
            print(f"warning: {label}: {w}" if scenario.compare else f"warning: {w}")
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
