"""``econsim tax INCOME``: US federal income tax on a gross income.

The tax is ``TaxSchedule.curves`` of ``TaxSchedule.us_federal`` (the evaluation the
simulation charges and the reports draw), with the same default as scenarios
(``tax.us_federal.standard_deduction: true``): the standard deduction of the year and
filing status is subtracted first, and the output says which deduction was used.
"""

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
        help="federal income tax on a gross income (standard deduction first)",
        description="Print the US federal income tax on a gross income (dollars a year): the "
        "standard deduction of the year and filing status is subtracted first, as in a "
        "scenario's default (tax.us_federal.standard_deduction: true); the second line "
        "names the deduction used.",
    )
    p.add_argument("income", type=_income, metavar="INCOME",
                   help="gross income, dollars a year (taxable income with --no-standard-deduction)")
    p.add_argument("--year", type=int, default=2024, help="tax year, 2023-2026 (default 2024)")
    p.add_argument(
        "--filing-status", default="single", metavar="STATUS",
        help=f"one of {', '.join(FILING_STATUSES)} (default single)",
    )
    p.add_argument(
        "--standard-deduction", action=argparse.BooleanOptionalAction, default=True,
        help="subtract the standard deduction first (the default, as scenarios do); "
        "--no-standard-deduction taxes INCOME from the first dollar (INCOME is taxable income)",
    )
    p.add_argument(
        "--tax-table", action="store_true",
        help="the amount the IRS Tax Table lists (bin midpoint, whole dollars) below $100,000 "
        "of taxable income",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        sched = TaxSchedule.us_federal(args.year, args.filing_status, args.standard_deduction)
    except TaxScheduleError as exc:
        raise UserError(str(exc)) from None
    c = sched.curves(args.income)
    tax = float(sched.tax_table_amount(args.income) if args.tax_table else c["tax"])
    taxable = float(c["taxable"])
    if args.json:
        print(json.dumps({
            "income": args.income, "year": args.year, "filing_status": args.filing_status,
            "standard_deduction": sched.deduction, "taxable_income": taxable, "tax": round(tax, 2),
            "marginal_rate": float(c["marginal_rate"]), "average_rate": float(c["average_rate"]),
        }))
    else:
        print(f"{tax:.2f}")
        if sched.deduction > 0:
            print(f"({args.year} {args.filing_status}: ${args.income:,.2f} less the "
                  f"${sched.deduction:,.0f} standard deduction = ${taxable:,.2f} taxable; "
                  "--no-standard-deduction to tax from the first dollar)")
        else:
            print(f"({args.year} {args.filing_status}: no deduction, ${taxable:,.2f} taxed from the first dollar)")
    return 0
