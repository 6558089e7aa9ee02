"""Entry point of the ``econsim`` command.

Each sub-command lives in its own module under :mod:`simulator.cli` and exposes
``register(subparsers)``; it sets ``func`` on its parser, a callable taking the parsed
``argparse.Namespace`` and returning an exit code.  A :class:`~simulator.errors.UserError`
raised anywhere is printed as one line per problem with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from simulator import __version__
from simulator.errors import UserError
from simulator.sim.health import RunFailed

#: Modules providing sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "simulator.cli.run_cmd",
    "simulator.cli.tax_cmd",
    "simulator.cli.personas_cmd",
    "simulator.cli.llm_cmd",
    "simulator.cli.behaviour_cmd",
    "simulator.cli.report_cmd",
    "simulator.cli.checkpoint_cmd",
    "simulator.cli.explore_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and a one-line message on bad flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"econsim: error: {message} (see '{self.prog} --help')\n")


DESCRIPTION = """\
econsim simulates an economy whose citizens and government are played by language
models (or, for baselines, by exact utility maximisation): workers drawn from a
Census-calibrated synthetic US population choose weekly hours each tax year, a planner
sets piecewise-linear marginal tax rates on the US federal brackets to maximise a social
welfare function, and revenue is rebated lump-sum. A run is described by a scenario YAML
file (see `econsim scenarios`) and writes a run directory of parquet tables and a
manifest. Exit status: 0 completed, 3 completed with warnings (some LLM replies failed
or fell back), 1 failed (the language model failed too often, or a bug), 2 a user error,
130 / 143 stopped by Ctrl-C / SIGTERM (manifest interrupted: `econsim resume` continues it).
"""

#: an example per sub-command, shown at the end of its ``--help``
EXAMPLES = {
    "run": "econsim run quickstart --seed 3 --set population.size=8 --out runs/demo",
    "validate": "econsim validate scenarios/rational.yaml --set run.tax_years=5",
    "scenarios": "econsim scenarios",
    "tax": "econsim tax 100000 --year 2024 --filing-status single",
    "personas": "econsim personas sample --n 1000 --seed 1 -o personas.parquet",
    "llm": "econsim llm check --backend openai --base-url http://127.0.0.1:8000/v1 --model my-model",
    "behaviour": "econsim behaviour quickstart --workers 20",
    "report": "econsim report runs/demo",
    "resume": "econsim resume runs/demo",
    "explore": "econsim explore rational_baselines --port 8765 --param population_size=5000",
    "fork": "econsim fork runs/demo --at-year 2 --set planner.kind=saez --out runs/demo-saez",
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="econsim", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"econsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name == name:
                continue
            raise
        module.register(sub)
    for name, example in EXAMPLES.items():
        if name in sub.choices:
            sub.choices[name].epilog = f"example:\n  {example}"
            sub.choices[name].formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        for line in exc.problems:
            print(f"econsim: error: {line}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"econsim: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print("econsim: interrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", 2)  # 130 for Ctrl-C, 143 for SIGTERM


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
