"""``econsim report DIR``: report.md and a self-contained report.html for a run, a
comparison or an experiment."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.md and a self-contained report.html for a run, "
                       "comparison or experiment")
    p.add_argument("run_dir", metavar="DIR", help="a run, comparison or experiment directory")
    p.add_argument("--out", metavar="DIR", help="report folder (default DIR/report)")
    p.add_argument("--baseline", metavar="LABEL",
                   help="experiments: the variant the others are compared with (default: the plan's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.report.markdown import (
        write_report,  # deferred: every command loads only what it runs (fast --help)
    )

    page = write_report(args.run_dir, args.out, baseline=args.baseline)
    print(f"report: {page}")
    print(f"report: {page.with_name('report.html')}")
    return 0
