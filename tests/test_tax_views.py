"""One tax function for every view (issue 20): the report's rate curves, ``tax_rates.parquet``,
the explore page's curves and ``econsim tax`` give, at a worker's income, the tax the run
charged that worker, to the cent, its standard deduction included; and everything defaults
to the standard deduction as scenarios do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.cli.main import main
from simulator.config.builders import build_base_schedule
from simulator.config.loading import scenario_from_dict
from simulator.economy.tax import TaxSchedule
from simulator.experiments import run_comparison, stats
from simulator.experiments.summary import load_experiment, rate_curves
from simulator.explore.model import schedule_curves
from simulator.report.common import rate_curves_caption, run_schedule
from simulator.results import load_run

DATA = Path(__file__).resolve().parents[1] / "simulator" / "economy" / "data"
CENT = 0.005


def bracket_tax(gross: float, year: int, status: str, deduction: bool) -> float:
    """Tax from the bracket CSV row by row (``tax_at_bracket_start`` + rate x excess), on
    gross income less the standard deduction from its own CSV: independent of TaxSchedule."""
    with open(DATA / "standard_deduction_2023_2026.csv") as f:
        std = {(r["tax_year"], r["filing_status"]): float(r["standard_deduction"]) for r in csv.DictReader(f)}
    x = max(gross - (std[(str(year), status)] if deduction else 0.0), 0.0)
    with open(DATA / "federal_income_tax_brackets_2023_2026.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["tax_year"] == str(year) and r["filing_status"] == status]
    row = max((r for r in rows if float(r["taxable_income_over"]) <= x), key=lambda r: float(r["taxable_income_over"]))
    return float(row["tax_at_bracket_start"]) + float(row["rate"]) * (x - float(row["taxable_income_over"]))


def run_tax(rates: list[float], deduction: float, thresholds: list[float], z: np.ndarray) -> np.ndarray:
    """The tax a worker with gross income ``z`` owes, bracket by bracket (a plain loop)."""
    out = []
    for income in z:
        x, t = max(income - deduction, 0.0), 0.0
        for i, r in enumerate(rates):
            hi = thresholds[i + 1] if i + 1 < len(thresholds) else np.inf
            t += r * max(min(x, hi) - thresholds[i], 0.0)
        out.append(t)
    return np.array(out)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """Two variants, two tax years, rational workers on one GB2 population (a quarter earn
    less than the deduction): the law (standard deduction, Saez rates from year 1) and the
    reference (no deduction, flat 30 %)."""
    root = tmp_path_factory.mktemp("views") / "cmp"
    sc = scenario_from_dict({
        "population": {"size": 120, "source": "gb2"},
        "workers": {"policy": "rational"},
        "run": {"tax_years": 2, "seed": 3},
        "compare": [
            {"label": "law", "planner": {"kind": "saez"}},
            {"label": "reference", "planner": {"kind": "flat", "rate": 0.3},
             "tax": {"us_federal": {"standard_deduction": False}}},
        ],
    })
    run_comparison(sc, root, progress=False)
    return root


def _final_year(run) -> tuple[pd.DataFrame, list[float], float]:
    a = run.agents[run.agents["year"] == run.agents["year"].max()].reset_index(drop=True)
    last = run.years.iloc[-1]
    rates = [float(last[f"rate_{i}"]) for i in range(7)]
    return a, rates, float(last["rebate"])


def test_curves_reproduce_the_taxes_the_run_charged(comparison):
    exp = load_experiment(comparison)
    law = exp.run("law", exp.seeds[0])
    a, rates, rebate = _final_year(law)
    z, charged = a["pre_tax"].to_numpy(float), a["tax"].to_numpy(float)
    sched = run_schedule(law.manifest["scenario"], rates)
    assert sched.deduction == 14_600  # the scenario default, read back from the manifest
    assert rates != list(TaxSchedule.us_federal(2024).rates)  # Saez moved the rates
    # independent: the run's own table against a plain bracket loop on its final rates
    np.testing.assert_allclose(charged, run_tax(rates, 14_600, list(sched.thresholds), z), atol=CENT)
    # the curves' tax function (reports, tax_rates.parquet) at the workers' incomes
    c = stats.tax_rate_curves(sched, incomes=z, rebate=rebate)
    assert np.max(np.abs(c["tax"].to_numpy() - charged)) < CENT
    np.testing.assert_allclose(c["average_rate"], np.where(z > 0, charged / np.where(z > 0, z, 1), 0), atol=1e-9)
    # the explore page's curves
    assert np.max(np.abs(schedule_curves(sched, rebate, incomes=z)["tax"].to_numpy() - charged)) < CENT
    # earners below the deduction paid nothing, and the curve says so
    low = z < 14_600
    assert low.any(), "the fixture population should hold someone below the deduction"
    assert np.all(charged[low] == 0) and np.all(c["tax"].to_numpy()[low] == 0)
    assert np.all(c["marginal_rate"].to_numpy()[low] == 0)
    # the case the independent check found: $9,112 of gross income pays $0, not $911
    at = stats.tax_rate_curves(sched, incomes=np.array([9_112.0]))
    assert at["tax"].iloc[0] == 0 and at["average_rate"].iloc[0] == 0
    assert c["deduction_note"].iloc[0] == "including the $14,600 standard deduction"


def test_tax_rates_parquet_is_the_runs_schedule(comparison, capsys):
    """The report's ``tax_rates.parquet``, read at any worker's income (tax is linear between
    its points, which include every kink), gives the tax the run charged; one seed, so the
    seed-mean rates are the run's rates."""
    assert main(["report", str(comparison)]) == 0
    capsys.readouterr()
    curves = pd.read_parquet(comparison / "report" / "tax_rates.parquet")
    exp = load_experiment(comparison)
    for variant, deduction in (("law", 14_600.0), ("reference", 0.0)):
        a, rates, _ = _final_year(exp.run(variant, exp.seeds[0]))
        c = curves[curves["variant"] == variant]
        assert (c["deduction"] == deduction).all()
        z, charged = a["pre_tax"].to_numpy(float), a["tax"].to_numpy(float)
        inside = (z >= c["income"].min()) & (z <= c["income"].max())
        assert inside.sum() > 0.9 * len(z)
        read = np.interp(z[inside], c["income"].to_numpy(), c["tax"].to_numpy())
        assert np.max(np.abs(read - charged[inside])) < CENT, variant
    # the same table as summary.rate_curves, and the caption states both deductions
    final = pd.read_parquet(comparison / "report" / "final.parquet")
    again = rate_curves(exp, final)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), curves.reset_index(drop=True))
    caption = rate_curves_caption(curves, "Tax rates")
    assert "law: including the $14,600 standard deduction" in caption
    assert "reference: no deduction" in caption
    html = (comparison / "report" / "report.html").read_text()
    assert "including the $14,600 standard deduction" in html


def test_run_report_curve_uses_the_runs_deduction(comparison, capsys):
    """A single run's HTML page draws its final schedule with its deduction."""
    exp = load_experiment(comparison)
    run_dir = exp.run("law", exp.seeds[0]).path
    assert main(["report", str(run_dir)]) == 0
    capsys.readouterr()
    html = (Path(run_dir) / "report" / "report.html").read_text()
    assert "Average and marginal tax rates by income, including the $14,600 standard deduction" in html
    assert load_run(run_dir).manifest["scenario"]["tax"]["us_federal"]["standard_deduction"] is True


@pytest.mark.parametrize("year,status", [(2024, "single"), (2025, "single"), (2026, "head_of_household"),
                                         (2023, "married_filing_jointly")])
def test_one_default_everywhere(year, status, capsys):
    """``econsim tax``, ``TaxSchedule.us_federal()`` and a scenario's base schedule agree,
    against the bracket CSV computed independently, standard deduction included."""
    expected = bracket_tax(100_000, year, status, deduction=True)
    sc = scenario_from_dict({"tax": {"us_federal": {"year": year, "filing_status": status}}})
    assert float(build_base_schedule(sc).tax(100_000)) == pytest.approx(expected, abs=CENT)
    assert float(TaxSchedule.us_federal(year, status).tax(100_000)) == pytest.approx(expected, abs=CENT)
    assert main(["tax", "100000", "--year", str(year), "--filing-status", status, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tax"] == pytest.approx(expected, abs=CENT)
    off = bracket_tax(100_000, year, status, deduction=False)
    assert main(["tax", "100000", "--year", str(year), "--filing-status", status, "--json",
                 "--no-standard-deduction"]) == 0
    assert json.loads(capsys.readouterr().out)["tax"] == pytest.approx(off, abs=CENT)
    if (year, status) == (2024, "single"):  # the numbers of issue 20
        assert (round(expected, 2), round(off, 2)) == (13_841.0, 17_053.0)
        assert main(["tax", "100000"]) == 0
        assert capsys.readouterr().out.splitlines()[0] == "13841.00"
