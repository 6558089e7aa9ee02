"""``econsim personas``: sample Census-calibrated worker personas and validate them.

    econsim personas sample --n 1000 --seed 0 -o personas.parquet [--state CA]
        [--age-min 25 --age-max 54] [--stratify decile|bracket --min-per-stratum K]
        [--income-mode census|gb2]
    econsim personas validate [--n 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from simulator.errors import UserError


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "personas", help="sample or validate Census-calibrated worker personas",
        description="Sample or validate Census-calibrated worker personas.")
    sub = parser.add_subparsers(dest="personas_command", metavar="SUBCOMMAND",
                                parser_class=type(parser))
    parser.set_defaults(func=lambda args: _no_subcommand(parser))

    sample = sub.add_parser("sample", help="sample personas to a parquet file")
    sample.add_argument("--n", type=_int, required=True, help="number of personas")
    sample.add_argument("--seed", type=_int, default=0, help="random seed (default 0)")
    sample.add_argument("-o", "--output", required=True, metavar="FILE.parquet",
                        help="output parquet file")
    sample.add_argument("--state", help="restrict to one state (2-letter code, e.g. CA)")
    sample.add_argument("--age-min", type=_int, help="youngest age (default 16)")
    sample.add_argument("--age-max", type=_int, help="oldest age (default 89)")
    sample.add_argument("--stratify", choices=["decile", "bracket"],
                        help="stratify on earnings deciles or 2024 federal brackets")
    sample.add_argument("--min-per-stratum", type=_int, default=0,
                        help="minimum personas per stratum (with --stratify)")
    sample.add_argument("--income-mode", choices=["census", "gb2"], default="census",
                        help="census (occupation-based) or gb2 (the reference's GB2 income)")
    sample.add_argument("--participation", action="store_true",
                        help="working-age adults employed or not, with CPS 2024 employment targets "
                        "(default ages 18-64)")
    sample.set_defaults(func=_sample)

    validate = sub.add_parser("validate", help="compare a sample with the source tables")
    validate.add_argument("--n", type=_int, default=100_000,
                          help="sample size (default 100000)")
    validate.add_argument("--seed", type=_int, default=0, help="random seed")
    validate.add_argument("--failures-only", action="store_true",
                          help="print only the rows that fail")
    validate.set_defaults(func=_validate)


def _no_subcommand(parser) -> int:
    parser.print_help()
    return 2


def _check_output(path_text: str) -> Path:
    path = Path(path_text)
    if path.suffix.lower() != ".parquet":
        raise UserError(f"output file {path_text!r} must end in .parquet")
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"output path {path_text!r} is a directory")
    if not parent.is_dir():
        raise UserError(f"cannot write {path_text!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path_text!r}: permission denied")
    return path


MAX_PERSONAS = 10_000_000


def _sample(args: argparse.Namespace) -> int:
    import personas

    if args.n <= 0:
        raise UserError(f"--n must be > 0, got {args.n}")
    if args.n > MAX_PERSONAS:
        raise UserError(f"--n must be at most {MAX_PERSONAS:,} (about 1.2 GB per million), got {args.n:,}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if args.min_per_stratum and not args.stratify:
        raise UserError("--min-per-stratum needs --stratify decile|bracket")
    path = _check_output(args.output)
    age_range = None
    if args.age_min is not None or args.age_max is not None:
        age_range = (args.age_min if args.age_min is not None else 0,
                     args.age_max if args.age_max is not None else 10_000)
    start = time.perf_counter()
    try:
        frame = personas.generate(
            args.n, args.seed, state=args.state, age_range=age_range,
            stratify=args.stratify, min_per_stratum=args.min_per_stratum,
            income_mode=args.income_mode, participation=args.participation)
    except personas.PersonaInputError as exc:
        raise UserError(str(exc)) from None
    try:
        from simulator.results import (
            atomic_write_parquet,  # deferred: every command loads only what it runs (fast --help)
        )

        atomic_write_parquet(path, frame)
    except OSError as exc:
        raise UserError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    print(f"wrote {len(frame):,} personas to {path} in {time.perf_counter() - start:.1f} s")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from personas.validate import format_table, validation_table

    if args.n <= 0:
        raise UserError(f"--n must be > 0, got {args.n}")
    if args.n > MAX_PERSONAS:
        raise UserError(f"--n must be at most {MAX_PERSONAS:,}, got {args.n:,}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    table = validation_table(args.n, args.seed)
    shown = table[~table["passed"]] if args.failures_only else table
    text = format_table(shown) if len(shown) else "no failing checks"
    if args.failures_only:
        text += f"\n\n{int(table['passed'].sum())}/{len(table)} checks passed"
    print(text)
    sys.stdout.flush()
    return 0 if bool(table["passed"].all()) else 1
