"""``econsim report RUN_DIR``: a Markdown report with plots for a run or a comparison."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a Markdown report with plots for a run or comparison")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a compare: set's root)")
    p.add_argument("--out", metavar="DIR", help="report folder (default RUN_DIR/report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.report import write_report

    page = write_report(args.run_dir, args.out)
    print(f"report: {page}")
    return 0
