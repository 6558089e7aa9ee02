"""US tax-benefit components (issue 22): worked examples, properties, and the frozen
Tax-Calculator table (``tests/data/taxcalc_frozen.csv.gz``, built by
``tests/taxcalc/build_frozen.py``)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from simulator.economy.taxbenefit import components as C
from simulator.economy.taxbenefit import params as P

FROZEN = Path(__file__).parent / "data" / "taxcalc_frozen.csv.gz"
COMPONENTS = ["payroll_tax", "income_tax_before_credits", "ctc", "actc", "eitc", "income_tax"]


def _one(year, wages, fs=1, kids=0, age=40, spouse_age=0, spouse_wages=0.0):
    r = C.net_tax(np.array([wages]), np.array([spouse_wages]), np.array([fs]), np.array([kids]),
                  np.array([age]), np.array([spouse_age]), P.load(year))
    return {k: float(v[0]) for k, v in r.items()}


def test_single_15000_2024():
    r = _one(2024, 15000.0)
    assert r["payroll_tax"] == pytest.approx(1147.50, abs=0.005)
    assert r["eitc"] == pytest.approx(274.745, abs=0.005)  # $274.75
    assert r["income_tax_before_credits"] == pytest.approx(40.0, abs=0.005)


def test_single_parent_two_children_20000_2024():
    r = _one(2024, 20000.0, fs=P.HEAD_OF_HOUSEHOLD, kids=2, age=35)
    assert r["eitc"] == pytest.approx(6960.0, abs=0.005)
    assert r["actc"] == pytest.approx(2625.0, abs=0.005)
    assert r["ctc"] == 0.0


def test_senior_deduction_2025():
    assert _one(2024, 30000.0, age=70)["income_tax_before_credits"] == pytest.approx(1382.0)
    assert _one(2025, 30000.0, age=70)["income_tax_before_credits"] == pytest.approx(625.0)
    assert _one(2025, 30000.0, age=40)["income_tax_before_credits"] == pytest.approx(1471.50)


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026])
@pytest.mark.parametrize("kids", [0, 1, 2, 3])
@pytest.mark.parametrize("fs", [1, 2])
def test_eitc_trapezoid_continuous(year, kids, fs):
    p = P.load(year)
    w = np.arange(0.0, 80000.0, 0.5)
    e = C.eitc(w, w, np.full(w.shape, fs), np.full(w.shape, kids), np.full(w.shape, 40), np.full(w.shape, 40), p)
    slope_bound = max(p.EITC_rt[kids], p.EITC_prt[kids]) * 0.5 + 1e-9
    assert np.all(np.abs(np.diff(e)) <= slope_bound)
    assert e.max() == pytest.approx(p.EITC_c[kids])
    assert e[0] == 0.0 and e[-1] == 0.0


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026])
def test_eitc_phase_out_rate_two_children(year):
    p = P.load(year)
    ps = p.EITC_ps[2]
    w = np.array([ps + 1000.0, ps + 2000.0])
    e = C.eitc(w, w, np.array([1, 1]), np.array([2, 2]), np.array([40, 40]), np.array([0, 0]), p)
    assert (e[0] - e[1]) / 1000.0 == pytest.approx(0.2106, abs=1e-12)


def test_childless_age_rule():
    p = P.load(2024)
    w = np.full(4, 8000.0)
    e = C.eitc(w, w, np.array([1, 1, 2, 2]), np.zeros(4, int), np.array([24, 65, 24, 22]), np.array([0, 0, 30, 23]), p)
    assert e[0] == 0.0 and e[1] == 0.0 and e[2] > 0.0 and e[3] == 0.0


def test_unknown_year_and_status():
    with pytest.raises(P.TaxBenefitParamsError):
        P.load(2030)
    with pytest.raises(ValueError):
        C.payroll_tax_employee(1.0, 0.0, 5, P.load(2024))


def test_provenance_recorded():
    prov = P.provenance()
    assert "policy_current_law.json" in prov["source"] and prov["taxcalc_version"]
    assert {"EITC_c", "CTC_c", "SS_Earnings_c", "SeniorDed_c"} <= set(prov["parameters"])


def _frozen():
    with gzip.open(FROZEN, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    cols = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    return cols


@pytest.fixture(scope="module")
def frozen():
    return _frozen()


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026])
def test_matches_frozen_taxcalc(frozen, year):
    m = frozen["year"] == year
    assert m.sum() > 1000
    g = {k: v[m] for k, v in frozen.items()}
    r = C.net_tax(g["wages"], g["spouse_wages"], g["filing_status"].astype(int), g["children"].astype(int),
                  g["age"], g["spouse_age"], P.load(year))
    worst = {c: float(np.max(np.abs(r[c] - g[c]))) for c in COMPONENTS}
    assert all(v <= 1.0 for v in worst.values()), worst
