"""``econsim tax INCOME``: federal income tax on a taxable income."""

from __future__ import annotations

import argparse
import json

from simulator.economy.tax import FILING_STATUSES, TaxSchedule, TaxScheduleError
from simulator.errors import UserError


def _income(text: str) -> float:
    try:
        value = float(text.replace(",", "").replace("$", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"INCOME must be a number of dollars, got {text!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"INCOME must be a finite amount >= 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tax",
        help="federal income tax on a taxable income",
        description="Print the US federal income tax on a taxable income (dollars a year).",
    )
    p.add_argument("income", type=_income, metavar="INCOME", help="taxable income, dollars a year")
    p.add_argument("--year", type=int, default=2024, help="tax year, 2023-2026 (default 2024)")
    p.add_argument(
        "--filing-status", default="single", metavar="STATUS",
        help=f"one of {', '.join(FILING_STATUSES)} (default single)",
    )
    p.add_argument(
        "--standard-deduction", action="store_true",
        help="treat INCOME as gross income and subtract the standard deduction first",
    )
    p.add_argument(
        "--tax-table", action="store_true",
        help="the amount the IRS Tax Table lists (bin midpoint, whole dollars) below $100,000",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        sched = TaxSchedule.us_federal(args.year, args.filing_status, args.standard_deduction)
    except TaxScheduleError as exc:
        raise UserError(str(exc)) from None
    tax = float(sched.tax_table_amount(args.income) if args.tax_table else sched.tax(args.income))
    marginal = float(sched.marginal_rate(args.income))
    average = float(sched.average_rate(args.income))
    if args.json:
        print(json.dumps({
            "income": args.income, "year": args.year, "filing_status": args.filing_status,
            "standard_deduction": sched.deduction, "tax": round(tax, 2),
            "marginal_rate": marginal, "average_rate": average,
        }))
    else:
        print(f"{tax:.2f}")
    return 0
