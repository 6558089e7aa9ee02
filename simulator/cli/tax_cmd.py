"""``econsim tax``: US federal tax on a gross income, or a household calculator.

Three modes:

* ``econsim tax INCOME`` (brackets only, the old behaviour): the income tax of
  ``TaxSchedule.curves`` of ``TaxSchedule.us_federal`` (the evaluation the simulation
  charges and the reports draw), with the same default as scenarios
  (``tax.us_federal.standard_deduction: true``): the standard deduction of the year and
  filing status is subtracted first, and the output says which deduction was used.
* ``econsim tax WAGES --full`` or with any household flag (``--children``, ``--age``,
  ``--spouse-wages``, ``--spouse-age``, ``--breakdown``): the current-law tax-benefit
  system of :mod:`simulator.economy.taxbenefit` (``components.net_tax``): income tax with
  the standard, additional and senior deductions, the elderly credit, CTC/ACTC and EITC,
  and employee payroll tax.  The first line is the net tax (income tax after credits plus
  employee payroll tax); ``--breakdown`` prints every component, ``--json`` all of them.
* ``econsim tax --households IN.csv -o OUT.csv``: the same for every row of a CSV file,
  vectorised (rows grouped by year).

The marginal rate is the right derivative of the net tax in the worker's own wages.  The
net tax is piecewise linear in wages, so a forward difference over a step shorter than the
distance to the next kink is exact up to rounding: :func:`household_tax` takes the
difference over 2^-7 dollar and, where that disagrees with the one over 2^-14 dollar (a
kink within the first step), the shorter one, and rounds to 1e-6.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np

from simulator.economy.tax import FILING_STATUSES, TaxSchedule, TaxScheduleError
from simulator.economy.taxbenefit import components, params
from simulator.errors import UserError

#: codes 1-4 (Tax-Calculator's MARS) and names
STATUS_BY_NAME = dict(params.FILING_STATUS_CODES)
NAME_BY_STATUS = {v: k for k, v in STATUS_BY_NAME.items()}
MAX_CHILDREN = 20
MAX_AGE = 130
DEFAULT_AGE = 40
DEFAULT_YEAR = 2024
#: input columns of --households: required, then optional with their defaults
REQUIRED_COLUMNS = ("year", "filing_status", "wages")
OPTIONAL_COLUMNS = ("children", "age", "spouse_wages", "spouse_age")
#: result columns appended by --households (dollars a year, except marginal_rate)
RESULT_COLUMNS = (
    "income_tax_before_credits", "elderly_credit", "ctc", "actc", "eitc", "income_tax",
    "payroll_tax", "payroll_tax_employer", "net_tax", "marginal_rate",
)
_H_COARSE, _H_FINE = 2.0 ** -7, 2.0 ** -14


def _income(text: str) -> float:
    try:
        value = float(text.replace(",", "").replace("$", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"INCOME must be a number of dollars, got {text!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"INCOME must be a finite amount >= 0, got {text!r}")
    return value


HELP = """\
Three modes.

Brackets only (no household flag): INCOME is gross income; the first line is the
federal income tax from the brackets after the standard deduction of the year and filing
status (as a scenario's default, tax.us_federal.standard_deduction: true), the second
names the deduction. --no-standard-deduction and --tax-table apply to this mode only.

Household (--full, or any of --children, --age, --spouse-wages, --spouse-age,
--breakdown): INCOME is the worker's wages and the whole current-law tax-benefit system
applies (simulator.economy.taxbenefit, checked against Tax-Calculator 6.8.5 with take-up
of credits switched off): income tax with the standard, additional (65+) and senior
deductions, less the elderly credit, CTC, refundable ACTC and EITC, plus the employee
payroll tax (both spouses). The first line is the net tax (income tax after credits +
employee payroll tax; the employer share is reported separately, not included); the
second summarises it. --breakdown prints every component, the marginal rate of the
worker's own wages (right derivative of the net tax) and take-home pay (household wages
less net tax); --json prints all of them. Printed amounts are rounded to the cent, half
up, component by component (totals are sums of the printed parts, as on a tax form);
--json and the CSV carry them to $0.000001.

Batch (--households IN.csv [-o OUT.csv]): one household a row, columns year,
filing_status (a name or code 1-4: 1 single, 2 married_filing_jointly,
3 married_filing_separately, 4 head_of_household), wages, and optionally children
(default 0), age (40), spouse_wages (0; married_filing_jointly only), spouse_age (the
worker's age; counts only for married_filing_jointly). An empty optional cell takes the
default. OUT.csv (standard output without -o) holds the input columns, the optional ones
filled in, then income_tax_before_credits, elderly_credit, ctc, actc, eitc, income_tax
(after all credits; negative when refundable credits exceed tax), payroll_tax (employee,
both spouses), payroll_tax_employer, net_tax (income_tax + payroll_tax) and
marginal_rate, dollars a year. A bad cell stops with one line naming its row (counted as
a spreadsheet does: the header is row 1) and column, exit status 2, and nothing written.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tax",
        help="federal tax: income tax on a gross income, or a household's net tax and credits",
        description=HELP,
    )
    p.add_argument("income", type=_income, metavar="INCOME", nargs="?",
                   help="gross income, dollars a year (taxable income with --no-standard-deduction); "
                   "the worker's wages in household mode")
    p.add_argument("--year", type=int, default=None,
                   help=f"tax year, 2023-2026 (default {DEFAULT_YEAR})")
    p.add_argument(
        "--filing-status", default=None, metavar="STATUS",
        help=f"one of {', '.join(FILING_STATUSES)} (or code 1-4; default single)",
    )
    p.add_argument(
        "--standard-deduction", action=argparse.BooleanOptionalAction, default=True,
        help="subtract the standard deduction first (the default, as scenarios do); "
        "--no-standard-deduction taxes INCOME from the first dollar (INCOME is taxable income; "
        "brackets-only mode)",
    )
    p.add_argument(
        "--tax-table", action="store_true",
        help="the amount the IRS Tax Table lists (bin midpoint, whole dollars) below $100,000 "
        "of taxable income (brackets-only mode)",
    )
    h = p.add_argument_group("household (the full current-law system)")
    h.add_argument("--full", action="store_true",
                   help="household mode with the defaults (single, age 40, no children)")
    h.add_argument("--children", default=None, metavar="N",
                   help=f"qualifying children under 17, counted for the CTC and the EITC (0-{MAX_CHILDREN}; default 0)")
    h.add_argument("--age", default=None, metavar="A", help=f"the worker's age (default {DEFAULT_AGE})")
    h.add_argument("--spouse-wages", default=None, metavar="S",
                   help="the spouse's wages, married_filing_jointly only (default 0)")
    h.add_argument("--spouse-age", default=None, metavar="A",
                   help="the spouse's age, married_filing_jointly only (default: the worker's age)")
    h.add_argument("--breakdown", action="store_true",
                   help="print every component, the marginal rate and take-home pay")
    b = p.add_argument_group("batch")
    b.add_argument("--households", default=None, metavar="IN.csv",
                   help="compute every household (row) of a CSV file (see above)")
    b.add_argument("-o", "--output", default=None, metavar="OUT.csv",
                   help="where --households writes (default standard output); written only "
                   "when every row is valid")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- the calculation

def household_tax(year: int, wages, spouse_wages, filing_status, children, age, spouse_age,
                  ) -> dict[str, np.ndarray]:
    """Every component of ``components.net_tax`` for households of one ``year`` (arrays,
    filing status as codes 1-4), plus ``marginal_rate``: the right derivative of
    ``net_tax`` in ``wages`` (the worker's own), exact up to rounding (module docstring).

    Raises :class:`~simulator.economy.taxbenefit.params.TaxBenefitParamsError` for a year
    without parameters."""
    p = params.load(int(year))
    w = np.asarray(wages, dtype=float)
    rest = (spouse_wages, filing_status, children, age, spouse_age, p)
    out = components.net_tax(w, *rest)
    base = out["net_tax"]

    def slope(h: float) -> np.ndarray:
        w1 = w + h
        return (components.net_tax(w1, *rest)["net_tax"] - base) / (w1 - w)

    coarse, fine = slope(_H_COARSE), slope(_H_FINE)
    rate = np.where(np.abs(coarse - fine) > 1e-4, fine, coarse)
    out["marginal_rate"] = np.round(rate, 6) + 0.0
    return out


# --------------------------------------------------------------------------- validation

def _status_code(text: str) -> int | None:
    t = str(text).strip().lower()
    if t in STATUS_BY_NAME:
        return STATUS_BY_NAME[t]
    try:
        v = float(t)
    except ValueError:
        return None
    return int(v) if v in (1.0, 2.0, 3.0, 4.0) else None


_STATUS_HINT = ("single, married_filing_jointly, married_filing_separately, head_of_household "
                "or a code 1-4")


def _number(text: str) -> float | None:
    """A cell or flag as a number (``$`` and thousands commas allowed), None if not one."""
    t = str(text).strip().replace(",", "").replace("$", "")
    try:
        return float(t)
    except ValueError:
        return None


def _check_value(kind: str, text: str) -> tuple[float | None, str | None]:
    """(value, None) or (None, problem) for one cell of ``kind``."""
    v = _number(text)
    if v is None:
        return None, f"not a number: {text!r}"
    if not math.isfinite(v):
        return None, f"must be finite, got {text!r}"
    if kind in ("wages", "spouse_wages"):
        if v < 0:
            return None, f"must be >= 0 dollars a year, got {text!r}"
    elif kind == "children":
        if v != int(v) or not 0 <= v <= MAX_CHILDREN:
            return None, f"must be a whole number of children 0-{MAX_CHILDREN}, got {text!r}"
    elif kind in ("age", "spouse_age"):
        if v != int(v) or not 0 <= v <= MAX_AGE:
            return None, f"must be a whole number of years 0-{MAX_AGE}, got {text!r}"
    elif kind == "year":
        if v != int(v):
            return None, f"must be a whole year, got {text!r}"
        if int(v) not in params.available_years():
            return None, (f"no tax-benefit parameters for {int(v)} (have "
                          f"{', '.join(map(str, params.available_years()))})")
    return v, None


def _flag(name: str, kind: str, text: str | None, default: float) -> float:
    if text is None:
        return default
    v, problem = _check_value(kind, text)
    if problem:
        raise UserError(f"{name} {problem}")
    return float(v)


# --------------------------------------------------------------------------- one household

def _cents(x: float) -> Decimal:
    """Dollars to the cent, half away from zero (274.745 -> 274.75), as a tax form rounds."""
    return Decimal(repr(round(float(x), 6))).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _money(d: Decimal | float) -> str:
    d = d if isinstance(d, Decimal) else _cents(d)
    return f"-${-d:,}" if d < 0 else f"${d:,}"


def _rate(x: float) -> str:
    pct = f"{100.0 * float(x):.4f}".rstrip("0").rstrip(".")
    return f"{pct} %" if pct not in ("-0", "") else "0 %"


def _household_mode(args: argparse.Namespace) -> bool:
    return bool(args.full or args.breakdown or any(
        getattr(args, k) is not None for k in ("children", "age", "spouse_wages", "spouse_age")))


def run(args: argparse.Namespace) -> int:
    if args.households is not None:
        return _run_batch(args)
    if args.output is not None:
        raise UserError("-o/--output goes with --households IN.csv")
    if args.income is None:
        raise UserError("give INCOME (dollars a year), or --households IN.csv")
    if _household_mode(args):
        return _run_household(args)
    return _run_brackets(args)


def _status_name(text: str | None) -> str:
    if text is None:
        return "single"
    code = _status_code(text)
    if code is None:
        raise UserError(f"unknown filing status {text!r}; choose one of {_STATUS_HINT}")
    return NAME_BY_STATUS[code]


def _run_brackets(args: argparse.Namespace) -> int:
    year = DEFAULT_YEAR if args.year is None else args.year
    status = _status_name(args.filing_status)
    try:
        sched = TaxSchedule.us_federal(year, status, args.standard_deduction)
    except TaxScheduleError as exc:
        raise UserError(str(exc)) from None
    c = sched.curves(args.income)
    tax = float(sched.tax_table_amount(args.income) if args.tax_table else c["tax"])
    taxable = float(c["taxable"])
    if args.json:
        print(json.dumps({
            "income": args.income, "year": year, "filing_status": status,
            "standard_deduction": sched.deduction, "taxable_income": taxable, "tax": round(tax, 2),
            "marginal_rate": float(c["marginal_rate"]), "average_rate": float(c["average_rate"]),
        }))
    else:
        print(f"{tax:.2f}")
        if sched.deduction > 0:
            print(f"({year} {status}: ${args.income:,.2f} less the "
                  f"${sched.deduction:,.0f} standard deduction = ${taxable:,.2f} taxable; "
                  "--no-standard-deduction to tax from the first dollar; --full or --breakdown "
                  "for credits and payroll tax)")
        else:
            print(f"({year} {status}: no deduction, ${taxable:,.2f} taxed from the first dollar)")
    return 0


def _run_household(args: argparse.Namespace) -> int:
    if args.tax_table or not args.standard_deduction:
        raise UserError("--tax-table and --no-standard-deduction apply to the brackets-only "
                        "calculation; drop them, or drop the household flags")
    year = DEFAULT_YEAR if args.year is None else args.year
    status = _status_name(args.filing_status)
    code = STATUS_BY_NAME[status]
    if year not in params.available_years():
        raise UserError(f"no tax-benefit parameters for {year} (have "
                        f"{', '.join(map(str, params.available_years()))})")
    children = int(_flag("--children", "children", args.children, 0))
    age = int(_flag("--age", "age", args.age, DEFAULT_AGE))
    spouse_wages = _flag("--spouse-wages", "spouse_wages", args.spouse_wages, 0.0)
    spouse_age = int(_flag("--spouse-age", "spouse_age", args.spouse_age, age))
    if code != params.MARRIED_JOINT and (spouse_wages > 0 or args.spouse_age is not None):
        raise UserError(f"--spouse-wages and --spouse-age count only for married_filing_jointly "
                        f"(a {status} return has no spouse's wages on it)")
    one = lambda x: np.array([x])  # noqa: E731
    r = household_tax(year, one(args.income), one(spouse_wages), one(code), one(children),
                      one(age), one(spouse_age))
    r = {k: float(v[0]) + 0.0 for k, v in r.items()}
    unit_wages = args.income + (spouse_wages if code == params.MARRIED_JOINT else 0.0)
    take_home = unit_wages - r["net_tax"]
    if args.json:
        doc = {"year": year, "filing_status": status, "wages": args.income,
               "spouse_wages": spouse_wages, "children": children, "age": age,
               "spouse_age": spouse_age if code == params.MARRIED_JOINT else None}
        doc.update({k: round(r[k], 6) for k in (
            "income_tax_before_credits", "elderly_credit", "ctc", "actc", "eitc", "income_tax",
            "payroll_tax", "payroll_tax_employer", "net_tax", "marginal_rate")})
        doc["take_home_pay"] = round(take_home, 6)
        print(json.dumps(doc))
        return 0
    # printed amounts: each component to the cent, the totals the sums of the printed parts
    c = {k: _cents(r[k]) for k in ("income_tax_before_credits", "elderly_credit", "ctc", "actc",
                                   "eitc", "payroll_tax", "payroll_tax_employer")}
    c["income_tax"] = c["income_tax_before_credits"] - sum(
        c[k] for k in ("elderly_credit", "ctc", "actc", "eitc"))
    c["net_tax"] = c["income_tax"] + c["payroll_tax"]
    c["take_home"] = _cents(unit_wages) - c["net_tax"]
    who = f"{year} {status}, wages {_money(args.income)}"
    if code == params.MARRIED_JOINT:
        who += f" + spouse {_money(spouse_wages)}, ages {age} and {spouse_age}"
    else:
        who += f", age {age}"
    who += f", {children} {'child' if children == 1 else 'children'} under 17"
    if args.breakdown:
        lines = [
            ("income tax before credits", _money(c["income_tax_before_credits"])),
            ("elderly credit", _money(c["elderly_credit"])),
            ("child tax credit (CTC)", _money(c["ctc"])),
            ("additional CTC (ACTC, refundable)", _money(c["actc"])),
            ("earned income tax credit (EITC)", _money(c["eitc"])),
            ("income tax after credits", _money(c["income_tax"])),
            ("employee payroll tax", _money(c["payroll_tax"])),
            ("net tax (income tax + employee payroll)", _money(c["net_tax"])),
            ("employer payroll tax (not in net tax)", _money(c["payroll_tax_employer"])),
            ("marginal rate on the worker's wages", _rate(r["marginal_rate"])),
            ("take-home pay (wages - net tax)", _money(c["take_home"])),
        ]
        width = max(len(k) for k, _ in lines)
        amount = max(len(v) for _, v in lines)
        print(who)
        for k, v in lines:
            print(f"  {k:<{width}}  {v:>{amount}}")
        return 0
    credits = [(n, c[k]) for n, k in (("elderly credit", "elderly_credit"), ("CTC", "ctc"),
                                      ("ACTC", "actc"), ("EITC", "eitc")) if r[k] > 0]
    after = "after " + ", ".join(f"{n} {_money(v)}" for n, v in credits) if credits else "no credits"
    print(f"{c['net_tax']:.2f}")
    print(f"({who}: income tax {_money(c['income_tax'])} ({after}) + employee payroll tax "
          f"{_money(c['payroll_tax'])}; employer payroll tax {_money(c['payroll_tax_employer'])} "
          f"not included; marginal rate {_rate(r['marginal_rate'])}; --breakdown for every component)")
    return 0


# --------------------------------------------------------------------------- batch

def _read_households(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """(header, rows, line numbers) of a CSV file; blank lines skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise UserError(f"{path}: empty file (expected a header row: "
                                f"{', '.join(REQUIRED_COLUMNS)}, ...)") from None
            header = [h.strip() for h in header]
            while header and header[-1] == "":
                header.pop()
            rows, lines = [], []
            for rec in reader:
                if not any(c.strip() for c in rec):
                    continue
                if len(rec) > len(header) and not any(c.strip() for c in rec[len(header):]):
                    rec = rec[:len(header)]
                if len(rec) != len(header):
                    raise UserError(f"{path}, row {reader.line_num} (header = row 1): "
                                    f"{len(rec)} cells, the header has {len(header)}")
                rows.append(rec)
                lines.append(reader.line_num)
    except UserError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"cannot read {path}: {reason}") from None
    return header, rows, lines


def _parse_column(kind: str, cells: list[str], default=None):
    """The column as floats, or (index, problem) of its first bad cell.  Empty cells take
    ``default`` (an array or a scalar) when one is given."""
    n = len(cells)
    out = np.empty(n, dtype=float)
    # fast path: plain numbers
    try:
        out[:] = np.asarray(cells, dtype=float)
        ok = True
    except ValueError:
        ok = False
    if ok:
        bad = _bad_mask(kind, out)
        if not bad.any():
            return out, None
        i = int(np.argmax(bad))
        return None, (i, _check_value(kind, cells[i])[1] or f"invalid value {cells[i]!r}")
    for i, text in enumerate(cells):
        if default is not None and not text.strip():
            out[i] = default[i] if np.ndim(default) else default
            continue
        v, problem = _check_value(kind, text)
        if problem:
            if not text.strip():
                problem = "empty cell"
            return None, (i, problem)
        out[i] = v
    return out, None


def _bad_mask(kind: str, v: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(v)
    if kind in ("wages", "spouse_wages"):
        bad |= v < 0
    elif kind == "children":
        bad |= (v != np.floor(v)) | (v < 0) | (v > MAX_CHILDREN)
    elif kind in ("age", "spouse_age"):
        bad |= (v != np.floor(v)) | (v < 0) | (v > MAX_AGE)
    elif kind == "year":
        bad |= ~np.isin(v, np.asarray(params.available_years(), dtype=float))
    return bad


def _run_batch(args: argparse.Namespace) -> int:
    given = [f for f, v in (("INCOME", args.income), ("--year", args.year),
                            ("--filing-status", args.filing_status), ("--children", args.children),
                            ("--age", args.age), ("--spouse-wages", args.spouse_wages),
                            ("--spouse-age", args.spouse_age)) if v is not None]
    given += [f for f, v in (("--breakdown", args.breakdown), ("--json", args.json),
                             ("--full", args.full), ("--tax-table", args.tax_table),
                             ("--no-standard-deduction", not args.standard_deduction)) if v]
    if given:
        raise UserError(f"--households takes every household from the file; drop {', '.join(given)}")
    path = Path(args.households)
    header, rows, lines = _read_households(path)
    keys = [h.lower() for h in header]
    dup = sorted({k for k in keys if k and keys.count(k) > 1})
    if dup:
        raise UserError(f"{path}: column {dup[0]!r} appears more than once in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in keys]
    if missing:
        raise UserError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)}; optional "
                        f"{', '.join(OPTIONAL_COLUMNS)})")
    if not rows:
        raise UserError(f"{path}: no households (only a header row)")
    n = len(rows)
    cols = {k: [r[j] for r in rows] for j, k in enumerate(keys) if k in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
    problems: list[tuple[int, int, str, str]] = []  # (row index, column order, column, problem)

    def where(col: str, res):
        vals, bad = res
        if bad is not None:
            problems.append((bad[0], keys.index(col), header[keys.index(col)], bad[1]))
        return vals

    year = where("year", _parse_column("year", cols["year"]))
    lookup = {c: _status_code(c) or 0 for c in set(cols["filing_status"])}
    codes = np.array([lookup[c] for c in cols["filing_status"]], dtype=int)
    if (codes == 0).any():
        i = int(np.argmax(codes == 0))
        problems.append((i, keys.index("filing_status"), header[keys.index("filing_status")],
                         f"unknown filing status {cols['filing_status'][i]!r} "
                         f"(use {_STATUS_HINT})"))
    wages = where("wages", _parse_column("wages", cols["wages"]))
    used = {}
    for col, dflt in (("children", 0.0), ("age", float(DEFAULT_AGE)), ("spouse_wages", 0.0)):
        used[col] = (where(col, _parse_column(col, cols[col], default=dflt))
                     if col in cols else np.full(n, dflt))
    age = used["age"]
    if "spouse_age" in cols and age is not None:
        used["spouse_age"] = where("spouse_age", _parse_column("spouse_age", cols["spouse_age"], default=age))
    else:
        used["spouse_age"] = age
    spouse_wages = used["spouse_wages"]
    if spouse_wages is not None:
        wrong = (spouse_wages > 0) & (codes != params.MARRIED_JOINT) & (codes != 0)
        if wrong.any():
            i = int(np.argmax(wrong))
            problems.append((i, keys.index("spouse_wages"), header[keys.index("spouse_wages")],
                             "spouse wages count only for married_filing_jointly (filing_status 2); "
                             "leave it 0 or empty"))
    if problems:
        i, _, col, problem = min(problems)
        raise UserError(f"{path}, row {lines[i]} (header = row 1), column {col}: {problem}")
    children = used["children"].astype(int)
    result = {c: np.empty(n) for c in RESULT_COLUMNS}
    for y in np.unique(year):
        m = year == y
        r = household_tax(int(y), wages[m], spouse_wages[m], codes[m], children[m],
                          age[m].astype(int), used["spouse_age"][m].astype(int))
        for c in RESULT_COLUMNS:
            result[c][m] = r[c]
    _write_batch(args.output, header, keys, rows, used, result)
    return 0


def _fmt(values: np.ndarray) -> list[str]:
    return [repr(v) for v in (np.round(values, 6) + 0.0).tolist()]


def _write_batch(output, header, keys, rows, used, result) -> None:
    """The input columns (optional ones added where absent, empty cells filled with the
    value used), then the results; written to a temporary file beside ``output`` and
    renamed over it, so a failure leaves nothing behind."""
    keep = [j for j, k in enumerate(keys) if k not in RESULT_COLUMNS]
    out_header = [header[j] for j in keep]
    text = {c: (_fmt(used[c]) if c == "spouse_wages" else [str(v) for v in used[c].astype(int).tolist()])
            for c in OPTIONAL_COLUMNS}
    for c in OPTIONAL_COLUMNS:
        if c in keys:
            j = keys.index(c)
            for i, r in enumerate(rows):
                if not r[j].strip():
                    r[j] = text[c][i]
    extra = [c for c in OPTIONAL_COLUMNS if c not in keys]
    out_header += extra + list(RESULT_COLUMNS)
    res = [_fmt(result[c]) for c in RESULT_COLUMNS]
    ext = [text[c] for c in extra]
    body = ([r[j] for j in keep] + [e[i] for e in ext] + [x[i] for x in res]
            for i, r in enumerate(rows))
    if output is None or output == "-":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(out_header)
        w.writerows(body)
        return
    out = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(out_header)
            w.writerows(body)
        os.replace(tmp, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
