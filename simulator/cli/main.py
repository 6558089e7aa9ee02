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

#: Modules providing sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "simulator.cli.run_cmd",
    "simulator.cli.tax_cmd",
    "simulator.cli.personas_cmd",
    "simulator.cli.llm_cmd",
    "simulator.cli.behaviour_cmd",
    "simulator.cli.report_cmd",
    "simulator.cli.explore_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and a one-line message on bad flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"econsim: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="econsim", description=__doc__.splitlines()[0])
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
    except KeyboardInterrupt:
        print("econsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
