"""``econsim --help`` describes the tool; every sub-command shows an example and every
argument says what it is."""

from __future__ import annotations

import argparse

from simulator.cli.main import build_parser


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_top_level_help_is_a_paragraph_with_the_exit_codes():
    text = build_parser().format_help()
    assert "Entry point" not in text
    assert "language" in text and "scenario" in text
    assert "3 completed with warnings" in text and "2 a user error" in text
    assert "130 / 143 stopped by Ctrl-C / SIGTERM" in text  # what main() returns then


def test_every_command_has_an_example_and_every_argument_has_help():
    top = build_parser()
    subs = dict(_subparsers(top))
    assert {"run", "validate", "scenarios", "tax", "personas", "llm", "behaviour", "report"} <= subs.keys()
    for name, sub in subs.items():
        if " " not in name:
            assert "example:\n  econsim " + name in sub.format_help(), name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help, f"econsim {name}: argument {action.dest} has no help"
