"""Rebuild ``personas/data/households_cps.csv.gz``, the donor table of worker households.

Run with a Python that has Tax-Calculator 6.8.5 installed (it needs Python >= 3.12;
econsim itself never imports taxcalc)::

    make venv-taxcalc                                                  # .venv-taxcalc, Python >= 3.12
    .venv-taxcalc/bin/python personas/build_households.py            # writes the table
    .venv-taxcalc/bin/python personas/build_households.py --check    # rebuilds and compares

The source is the CPS tax-unit file shipped in the ``taxcalc`` wheel (``cps.csv.gz``,
280,005 tax units from three pooled CPS ASEC samples; Tax-Calculator treats every record
as a 2014 record, ``Records.CPSCSV_YEAR``, overwriting the file's ``FLPDYR`` column, which
holds 2012-2014, and so does this script: wages are 2014 dollars) with its weights
(``cps_weights.csv.gz``, column ``WT2024``, in hundredths) and growth factors
(``growfactors.csv``).

The shipped table keeps one row per tax unit with at least one earner (head wages
``e00200p > 0`` or, for joint filers, spouse wages ``e00200s > 0``): 195,132 units.
:func:`personas.households.donor_table` expands it at load time into the donor table,
one row per earner (a two-earner couple gives two donors, one seen from each spouse),
each carrying the donor's own age and wages, the filing status, the other spouse's age
and wages, the children, the number of earners and the donor weight = unit weight /
number of earners (so each unit is counted once over its donors).  Storing units rather
than donors keeps the file at about 1.3 MB instead of 1.8 MB: a couple's ages, wages and
weight are written once.

Columns of the shipped table:

* ``filing_status``: ``MARS`` (1 single, 2 joint, 3 separate, 4 head of household);
* ``head_age``, ``head_wages``: ``age_head``, ``e00200p``;
* ``spouse_age``, ``spouse_wages``: ``age_spouse``, ``e00200s`` for joint filers, 0
  otherwise (the file records no spouse for the other statuses);
* ``children``: ``n24``, qualifying children for the child tax credit (under 17),
  capped at 10 (one unit has 12); ``eitc_children``: ``EIC`` (0-3);
* ``weight``: the unit's 2024 weight ``WT2024 / 100`` (tax units), rounded to a whole
  unit (the median weight is 609; the smallest, 20, moves by at most 2.5 %).

Wages are uprated from 2014 to 2024 dollars by the product of the ``AWAGE`` growth
factors for 2015..2024 (1.485378, the factor Tax-Calculator itself applies to
``e00200p`` when it advances these records to 2024) and rounded to whole dollars.  Rows
are sorted on all columns and gzip is written with a fixed header time, so the output
is byte-for-byte reproducible (``--check`` rebuilds and compares).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).with_name("data") / "households_cps.csv.gz"
TAXCALC_VERSION = "6.8.5"
DATA_YEAR, TARGET_YEAR = 2014, 2024
MAX_CHILDREN = 10
COLUMNS = ["filing_status", "head_age", "head_wages", "spouse_age", "spouse_wages",
           "children", "eitc_children", "weight"]


def _taxcalc_dir() -> Path:
    import taxcalc  # deferred: only the rebuild needs Tax-Calculator

    if taxcalc.__version__ != TAXCALC_VERSION:
        raise SystemExit(f"need taxcalc {TAXCALC_VERSION}, found {taxcalc.__version__}")
    return Path(taxcalc.__file__).parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wage_factor(growfactors: pd.DataFrame) -> float:
    """Product of the AWAGE growth factors DATA_YEAR+1 .. TARGET_YEAR."""
    g = growfactors.set_index("YEAR")["AWAGE"]
    return float(g.loc[DATA_YEAR + 1:TARGET_YEAR].prod())


def units(cps: pd.DataFrame, weights: pd.DataFrame, factor: float) -> pd.DataFrame:
    """One row per tax unit with at least one earner (see the module docstring)."""
    mars = cps["MARS"].to_numpy(np.int64)
    joint = mars == 2
    out = pd.DataFrame({
        "filing_status": mars,
        "head_age": cps["age_head"].to_numpy(np.int64),
        "head_wages": np.rint(cps["e00200p"].to_numpy(float) * factor).astype(np.int64),
        "spouse_age": np.where(joint, cps["age_spouse"].to_numpy(np.int64), 0),
        "spouse_wages": np.where(joint, np.rint(cps["e00200s"].to_numpy(float) * factor),
                                 0.0).astype(np.int64),
        "children": np.minimum(cps["n24"].to_numpy(np.int64), MAX_CHILDREN),
        "eitc_children": cps["EIC"].to_numpy(np.int64),
        "weight": np.rint(weights[f"WT{TARGET_YEAR}"].to_numpy(float) / 100.0).astype(np.int64),
    })
    out = out[(out["head_wages"] > 0) | (out["spouse_wages"] > 0)]
    return out.sort_values(COLUMNS, kind="stable").reset_index(drop=True)[COLUMNS]


def build() -> tuple[bytes, dict]:
    d = _taxcalc_dir()
    from taxcalc import Records  # deferred: only the rebuild needs Tax-Calculator

    if Records.CPSCSV_YEAR != DATA_YEAR:
        raise SystemExit(f"expected CPS records of {DATA_YEAR}, taxcalc has {Records.CPSCSV_YEAR}")
    files = {name: d / name for name in ("cps.csv.gz", "cps_weights.csv.gz", "growfactors.csv")}
    cps = pd.read_csv(files["cps.csv.gz"])
    weights = pd.read_csv(files["cps_weights.csv.gz"])
    factor = wage_factor(pd.read_csv(files["growfactors.csv"]))
    table = units(cps, weights, factor)
    text = table.to_csv(index=False, lineterminator="\n")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("ascii"))
    n_donors = int((table["head_wages"] > 0).sum() + (table["spouse_wages"] > 0).sum())
    info = {"records": len(cps), "units": len(table), "donors": n_donors, "factor": factor,
            "sha256": {k: sha256(v) for k, v in files.items()},
            "weight_total": float(table["weight"].sum())}
    return buf.getvalue(), info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="rebuild in memory and compare with the shipped table")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data, info = build()
    print(f"{info['records']:,} tax units -> {info['units']:,} units with an earner, "
          f"{info['donors']:,} donors; wage factor {info['factor']:.6f}; weight total "
          f"{info['weight_total'] / 1e6:.3f} M units")
    for name, digest in info["sha256"].items():
        print(f"sha256 {name}: {digest}")
    print(f"sha256 output: {hashlib.sha256(data).hexdigest()} ({len(data):,} bytes)")
    if args.check:
        same = args.out.exists() and args.out.read_bytes() == data
        print("identical to the shipped table" if same else "DIFFERS from the shipped table")
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
