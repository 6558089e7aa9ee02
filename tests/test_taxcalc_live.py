"""Opt-in: econsim's tax-benefit components against Tax-Calculator run live.

Run with ``make test-taxcalc`` (builds ``.venv-taxcalc`` with a Python >= 3.12 and
``taxcalc==6.8.5``; ``.ci/run`` runs it where such a Python exists).  Skipped where taxcalc
is not importable (the project venv, Python 3.11).

* every household type of :data:`LIVE_TYPES` (every filing status, 0-4 children, ages 22,
  40, 67 and 70, couples with and without spouse wages, aged couples) x worker wages (a
  coarse grid plus every kink of every component and $1 either side, from
  ``tests/taxcalc/tc_grid.py``) x 2023-2026, take-up off: every component of
  ``components.net_tax`` within $1 of Tax-Calculator's;
* the frozen table ``tests/data/taxcalc_frozen.csv.gz`` (checked on 3.11 by
  ``tests/test_taxbenefit.py``) is still what Tax-Calculator answers on its grid.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pytest


def _taxcalc_installed() -> bool:
    """Whether the real package is importable (not ``tests/taxcalc/``, which pytest's
    ``tests/`` on sys.path would otherwise offer as a namespace package)."""
    spec = importlib.util.find_spec("taxcalc")
    return spec is not None and spec.origin not in (None, "namespace")


pytestmark = [
    pytest.mark.taxcalc,
    pytest.mark.skipif(not _taxcalc_installed(),
                       reason="taxcalc is not installed (it needs Python >= 3.12): make test-taxcalc"),
]

HERE = Path(__file__).resolve().parent
FROZEN = HERE / "data" / "taxcalc_frozen.csv.gz"
YEARS = [2023, 2024, 2025, 2026]
TOLERANCE = 1.0  # dollars
#: econsim's name -> the column of tc_grid.answers
COMPONENTS = ["income_tax_before_credits", "elderly_credit", "ctc", "actc", "eitc", "income_tax",
              "payroll_tax", "payroll_tax_employer"]

# (filing_status, children, age, spouse_age, spouse_wages)
LIVE_TYPES = (
    [(fs, kids, age, 0, 0.0) for fs in (1, 3, 4) for kids in range(5) for age in (22, 40, 67, 70)]
    + [(2, kids, age, sage, sw) for kids in range(5)
       for (age, sage) in ((40, 38), (22, 23), (22, 70), (67, 70), (70, 40))
       for sw in (0.0, 25000.0, 150000.0)]
)

_SUMMARY: dict[int, tuple[int, int, float, str]] = {}


@pytest.fixture(scope="module")
def tc_helpers():
    sys.path.insert(0, str(HERE / "taxcalc"))
    try:
        import build_frozen
        import tc_grid
    finally:
        sys.path.remove(str(HERE / "taxcalc"))
    return tc_grid, build_frozen


def _econsim(df):
    from simulator.economy.taxbenefit import components, params

    year = int(df.year.iloc[0])
    return components.net_tax(df.wages.to_numpy(float), df.spouse_wages.to_numpy(float),
                              df.filing_status.to_numpy(int), df.children.to_numpy(int),
                              df.age.to_numpy(int), df.spouse_age.to_numpy(int), params.load(year))


@pytest.mark.parametrize("year", YEARS)
def test_every_component_matches_live_taxcalc(tc_helpers, year):
    tc_grid, _ = tc_helpers
    pol = tc_grid.policy(year)
    live = tc_grid.answers(tc_grid.grid(year, LIVE_TYPES, pol), year, pol)
    ours = _econsim(live)
    for c in ("eitc", "ctc", "actc", "income_tax_before_credits"):
        assert (live[c] > 0).sum() > 1000, f"the grid hardly exercises {c}"
    # the elderly credit needs tax below its AGI limit; from 2025 the senior deduction
    # leaves none there (single 65+: $23,750 of deductions against a $17,500 limit)
    assert ((live.elderly_credit > 0).sum() > 10) == (year <= 2024)
    assert (live.income_tax < 0).sum() > 1000  # refundable credits above tax
    worst, where, bad = 0.0, "", []
    for c in COMPONENTS:
        dev = np.abs(ours[c] - live[c].to_numpy(float))
        i = int(np.argmax(dev))
        if dev[i] > worst:
            row = live.iloc[i]
            worst, where = float(dev[i]), (
                f"{c} at filing_status={int(row.filing_status)} children={int(row.children)} "
                f"ages={int(row.age)}/{int(row.spouse_age)} spouse_wages={row.spouse_wages:g} "
                f"wages={row.wages:g}")
        if dev[i] > TOLERANCE:
            bad.append(f"{c}: {int((dev > TOLERANCE).sum())} households off by more than ${TOLERANCE:g}, "
                       f"worst ${dev[i]:.4f} ({where}: econsim {ours[c][i]:.4f}, taxcalc {live[c].iloc[i]:.4f})")
    # net tax, as econsim defines it, from taxcalc's parts
    net_dev = np.abs(ours["net_tax"] - (live.income_tax + live.payroll_tax).to_numpy(float))
    assert float(net_dev.max()) <= TOLERANCE
    _SUMMARY[year] = (len(live), len(live) * len(COMPONENTS), worst, where)
    print(f"\n{year}: {len(live):,} households x {len(COMPONENTS)} components = "
          f"{len(live) * len(COMPONENTS):,} comparisons; largest deviation ${worst:.2g} ({where})")
    assert not bad, "\n".join(bad)


def test_frozen_table_is_what_taxcalc_answers(tc_helpers):
    """The checked-in table equals a fresh build (same rows, values to the 3 decimals it
    stores), so it cannot go stale against the pinned Tax-Calculator."""
    import pandas as pd

    _, build_frozen = tc_helpers
    with gzip.open(FROZEN, "rt", encoding="utf-8") as f:
        text = f.read()
    frozen = pd.read_csv(io.StringIO(text), comment="#")
    live = pd.concat([build_frozen.run_year(y) for y in build_frozen.YEARS], ignore_index=True)
    assert list(frozen.columns) == list(live.columns)
    assert len(frozen) == len(live)
    keys = ["year", "filing_status", "children", "age", "spouse_age", "spouse_wages", "wages"]
    assert np.array_equal(frozen[keys].to_numpy(float), np.round(live[keys].to_numpy(float), 3))
    dev = np.abs(frozen.to_numpy(float) - live.to_numpy(float))
    assert float(dev.max()) <= 0.0005 + 1e-9, dict(zip(frozen.columns, dev.max(axis=0), strict=True))
    print(f"\nfrozen table: {len(frozen):,} rows x {len(frozen.columns)} columns equal a fresh build "
          f"(largest difference {dev.max():.6f}, the 3-decimal rounding)")


def test_summary():
    """Prints the totals of the comparisons above (runs last)."""
    if not _SUMMARY:
        pytest.skip("no comparison ran")
    n = sum(v[1] for v in _SUMMARY.values())
    households = sum(v[0] for v in _SUMMARY.values())
    year, (_, _, worst, where) = max(_SUMMARY.items(), key=lambda kv: kv[1][2])
    print(f"\nlive Tax-Calculator check: {households:,} households, {n:,} comparisons, "
          f"largest deviation ${worst:.2g} ({year}, {where})")
