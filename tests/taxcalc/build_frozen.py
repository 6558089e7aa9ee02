"""Freeze Tax-Calculator's answers for wage-only households into
``tests/data/taxcalc_frozen.csv.gz`` (checked by ``tests/test_taxbenefit.py`` on 3.11).

Runs under Python >= 3.12 with taxcalc installed, outside the project venv::

    make venv-taxcalc && .venv-taxcalc/bin/python tests/taxcalc/build_frozen.py

(an optional argument writes elsewhere, as ``tests/test_taxcalc_live.py`` does to check
the checked-in table is still what taxcalc answers).

Grid: household types x worker wages (a coarse grid plus every kink of every
component and $1 either side of it) x 2023-2026; the kinks, the grid and the
Tax-Calculator run (take-up off) live in ``tc_grid.py`` beside this script.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
from tc_grid import YEARS, answers, grid, policy  # tests/taxcalc/tc_grid.py (this script's folder)

OUT = Path(__file__).resolve().parents[1] / "data" / "taxcalc_frozen.csv.gz"

# (filing_status, children, age, spouse_age, spouse_wages)
TYPES = [
    (1, 0, 40, 0, 0.0), (1, 0, 22, 0, 0.0), (1, 0, 70, 0, 0.0), (1, 1, 30, 0, 0.0),
    (4, 1, 35, 0, 0.0), (4, 2, 35, 0, 0.0), (4, 3, 35, 0, 0.0), (4, 4, 35, 0, 0.0), (4, 2, 67, 0, 0.0),
    (2, 0, 40, 38, 0.0), (2, 0, 22, 70, 0.0), (2, 0, 22, 23, 0.0), (2, 2, 40, 38, 0.0),
    (2, 2, 40, 38, 20000.0), (2, 3, 40, 38, 0.0), (2, 3, 40, 38, 60000.0), (2, 0, 70, 68, 0.0),
    (2, 1, 66, 50, 120000.0), (3, 0, 40, 0, 0.0), (3, 1, 40, 0, 0.0),
]
COLUMNS = ["year", "filing_status", "children", "age", "spouse_age", "spouse_wages", "wages",
           "income_tax_before_credits", "regular_tax", "ctc", "actc", "eitc", "income_tax",
           "payroll_tax", "taxable_income"]


def run_year(year: int) -> pd.DataFrame:
    """The frozen table's rows for ``year``, Tax-Calculator's answers in :data:`COLUMNS`."""
    pol = policy(year)
    return answers(grid(year, TYPES, pol), year, pol)[COLUMNS]


def compress(data: bytes) -> bytes:
    """gzip without a timestamp or name, so a rebuild gives the same bytes: ``gzip -9n``
    (how the checked-in table was compressed) where it exists, else Python's gzip."""
    if shutil.which("gzip"):
        return subprocess.run(["gzip", "-9n"], input=data, capture_output=True, check=True).stdout
    return gzip.compress(data, compresslevel=9, mtime=0)


def main(out: Path = OUT) -> None:
    df = pd.concat([run_year(y) for y in YEARS], ignore_index=True)
    text = (f"# Tax-Calculator (taxcalc {metadata.version('taxcalc')}, CC0) answers for wage-only households; "
            "take-up off; built by tests/taxcalc/build_frozen.py\n")
    text += df.to_csv(index=False, float_format="%.3f", lineterminator="\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(compress(text.encode("utf-8")))
    print(f"wrote {len(df)} rows to {out}")


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
