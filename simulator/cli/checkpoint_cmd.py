"""``econsim resume`` and ``econsim fork``: continue a run from its checkpoints."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "resume", help="continue an interrupted or failed run from its last checkpoint",
        description="Continue an interrupted or failed run in its own directory from the "
        "checkpoint of its last finished tax year. Each checkpoint's digest is checked first: a "
        "damaged newest one is reported and the newest good one is used. A directory another "
        "process is writing is refused. Checkpoints are pickles: resume only runs you trust.",
    )
    r.add_argument("run_dir", metavar="RUN_DIR", help="the run directory to continue (it has checkpoints/)")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    r.set_defaults(func=resume)

    f = sub.add_parser(
        "fork", help="start a new run from a run's state after tax year K, with changed settings",
        description="Start a new run from the state of RUN_DIR after tax year K (its history up "
        "to K is shared) with settings changed by --set (planner, objective, schedule, workers, "
        "llm, run.tax_years). The population, the seed and the brackets cannot change.",
    )
    f.add_argument("run_dir", metavar="RUN_DIR", help="the parent run directory (it has checkpoints/)")
    f.add_argument("--at-year", type=int, required=True, metavar="K", help="fork after this tax year")
    f.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="change a scenario value from year K+1 on, e.g. --set planner.kind=flat (repeatable)",
    )
    f.add_argument("--out", required=True, metavar="NEW", help="the new run directory")
    f.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    f.set_defaults(func=fork)


def resume(args: argparse.Namespace) -> int:
    from simulator.run.resume import (
        resume_run,  # deferred: every command loads only what it runs (fast --help)
    )
    from simulator.sim.health import (
        EXIT_CODES,  # deferred: every command loads only what it runs (fast --help)
    )

    res = resume_run(args.run_dir, progress=False if args.no_progress else None)
    return EXIT_CODES.get(res.status, 1)  # 3 when the run completed with warnings


def fork(args: argparse.Namespace) -> int:
    from simulator.run.resume import (
        fork_run,  # deferred: every command loads only what it runs (fast --help)
    )
    from simulator.sim.health import (
        EXIT_CODES,  # deferred: every command loads only what it runs (fast --help)
    )

    res = fork_run(args.run_dir, args.at_year, args.overrides, args.out,
                   progress=False if args.no_progress else None)
    return EXIT_CODES.get(res.status, 1)  # 3 when the run completed with warnings
