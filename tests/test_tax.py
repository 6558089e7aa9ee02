"""Tax schedules against the published bracket arithmetic and an independent loop."""

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.economy.tax import FILING_STATUSES, TaxSchedule, TaxScheduleError

DATA = Path(__file__).resolve().parents[1] / "simulator" / "economy" / "data"


def loop_tax(income: float, thresholds, rates, deduction=0.0) -> float:
    """Textbook bracket-by-bracket tax, written independently of the vectorised code."""
    x = max(income - deduction, 0.0)
    total = 0.0
    for i, rate in enumerate(rates):
        lo = thresholds[i]
        hi = thresholds[i + 1] if i + 1 < len(thresholds) else float("inf")
        if x > lo:
            total += rate * (min(x, hi) - lo)
    return total


def test_published_examples():
    """On taxable income (no deduction): the Tax Computation Worksheet arithmetic."""
    s = TaxSchedule.us_federal(2024, "single", standard_deduction=False)
    assert s.tax(100_000) == pytest.approx(17_053.00, abs=0.005)
    # 2023 single, $50,000: 1,100 + 4,047 + 1,160.50
    assert TaxSchedule.us_federal(2023, "single", standard_deduction=False).tax(50_000) == pytest.approx(6_307.50)
    # 2024 married filing jointly, $100,000: 2,320 + 8,532 + 1,254
    assert TaxSchedule.us_federal(2024, "married_filing_jointly", standard_deduction=False).tax(
        100_000) == pytest.approx(12_106.0)


def test_cumulative_tax_matches_every_statutory_row():
    """`tax_at_bracket_start` in the source table was computed independently."""
    with open(DATA / "federal_income_tax_brackets_2023_2026.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 4 * 7
    for r in rows:
        s = TaxSchedule.us_federal(int(r["tax_year"]), r["filing_status"], standard_deduction=False)
        assert s.tax(float(r["taxable_income_over"])) == pytest.approx(
            float(r["tax_at_bracket_start"]), abs=0.01
        ), r
        assert s.marginal_rate(float(r["taxable_income_over"])) == pytest.approx(float(r["rate"]))


def test_top_rate_applies_above_ten_million():
    s = TaxSchedule.us_federal(2024, "single")  # the default: after the standard deduction
    assert s.tax(20e6) - s.tax(10e6) == pytest.approx(0.37 * 10e6)
    assert s.marginal_rate(1e9) == 0.37


def test_standard_deduction():
    s = TaxSchedule.us_federal(2024, "single", standard_deduction=True)
    assert s.deduction == 14_600
    assert s.tax(14_600) == 0
    assert s.marginal_rate(10_000) == 0
    assert s.tax(114_600) == pytest.approx(17_053.0)
    assert TaxSchedule.us_federal(2025, "married_filing_jointly", True).deduction == 31_500


@pytest.mark.parametrize("year", [2023, 2024, 2025, 2026])
@pytest.mark.parametrize("status", FILING_STATUSES)
def test_vectorised_equals_loop(year, status):
    s = TaxSchedule.us_federal(year, status)  # the default: the standard deduction first
    assert s.deduction > 0
    incomes = np.linspace(0, 2e6, 997)
    expected = [loop_tax(z, s.thresholds, s.rates, s.deduction) for z in incomes]
    np.testing.assert_allclose(s.tax(incomes), expected, rtol=1e-12, atol=1e-6)


schedules = st.integers(1, 8).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(100, 1e6), min_size=k - 1, max_size=k - 1, unique=True),
        st.lists(st.floats(0, 1), min_size=k, max_size=k),
        st.floats(0, 30_000),
    )
)


@settings(max_examples=200, deadline=None)
@given(schedules, st.lists(st.floats(-1e3, 5e6), min_size=1, max_size=30))
def test_random_schedules_match_loop(spec, incomes):
    edges, rates, deduction = spec
    thresholds = [0.0] + sorted(edges)
    s = TaxSchedule(thresholds, rates, deduction=deduction)
    expected = [loop_tax(z, thresholds, rates, deduction) for z in incomes]
    np.testing.assert_allclose(s.tax(incomes), expected, rtol=1e-9, atol=1e-6)
    # tax is non-decreasing and never exceeds income above the deduction
    z = np.sort(np.asarray(incomes))
    assert np.all(np.diff(s.tax(z)) >= -1e-6)
    assert np.all(s.tax(z) <= np.maximum(z - deduction, 0) + 1e-6)
    # net income along the linear segments reproduces the schedule
    lower, upper, rate, intercept = s.segments()
    zz = np.maximum(z, 0)
    k = np.searchsorted(lower, zz, side="right") - 1
    np.testing.assert_allclose((1 - rate[k]) * zz + intercept[k], s.net_income(zz), atol=1e-6)


def test_average_and_marginal_rates():
    s = TaxSchedule.from_rates([0, 10_000], [0.1, 0.3])
    assert s.average_rate(0) == 0
    assert s.average_rate(20_000) == pytest.approx((1_000 + 3_000) / 20_000)
    np.testing.assert_allclose(s.marginal_rate([5_000, 10_000, 50_000]), [0.1, 0.3, 0.3])
    assert s.with_rates([0.2, 0.2]).tax(20_000) == pytest.approx(4_000)
    assert TaxSchedule.flat(0.25).tax(1e6) == pytest.approx(250_000)


@pytest.mark.parametrize(
    "thresholds,rates,message",
    [
        ([0, 10, 5], [0.1, 0.2, 0.3], "strictly increasing"),
        ([5, 10], [0.1, 0.2], "first threshold must be 0"),
        ([0, 10], [0.1], "need one rate per bracket"),
        ([0, 10], [0.1, 1.5], r"rates must lie in \[0, 1\]"),
        ([0, 10], [-0.1, 0.5], r"rates must lie in \[0, 1\]"),
        ([], [], "at least one bracket"),
    ],
)
def test_validation_errors(thresholds, rates, message):
    with pytest.raises(TaxScheduleError, match=message):
        TaxSchedule(thresholds, rates)


def test_unknown_year_and_status():
    with pytest.raises(TaxScheduleError, match="tax year 2019"):
        TaxSchedule.us_federal(2019)
    with pytest.raises(TaxScheduleError, match="filing status"):
        TaxSchedule.us_federal(2024, "widow")


def test_describe_lists_every_bracket():
    text = TaxSchedule.us_federal(2024).describe()
    assert "$609,350 and above" in text and "37.0%" in text
    assert len(text.splitlines()) == 9 and text.endswith("(after a deduction of $14,600)")
    assert len(TaxSchedule.us_federal(2024, standard_deduction=False).describe().splitlines()) == 8


def test_cli_tax(capsys):
    from simulator.cli.main import main

    # the default, as scenarios: gross income less the $14,600 standard deduction (2024)
    assert main(["tax", "100000", "--year", "2024", "--filing-status", "single"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "13841.00"
    assert "$14,600 standard deduction" in lines[1] and "$85,400.00 taxable" in lines[1]
    assert main(["tax", "100000", "--no-standard-deduction"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "17053.00" and "no deduction" in lines[1]
    assert main(["tax", "100000", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert (out["tax"], out["standard_deduction"], out["taxable_income"]) == (13841.0, 14600.0, 85400.0)
    assert main(["tax", "100000", "--json", "--no-standard-deduction"]) == 0
    assert json.loads(capsys.readouterr().out)["tax"] == 17053.0
    assert main(["tax", "9112", "--json"]) == 0  # below the deduction: nothing owed
    out = json.loads(capsys.readouterr().out)
    assert (out["tax"], out["marginal_rate"], out["average_rate"]) == (0.0, 0.0, 0.0)
    assert main(["tax", "100000", "--year", "2031"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2031" in err
    assert main(["tax", "100000", "--filing-status", "nope"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["tax", "lots"])
    assert exc.value.code == 2


def test_deduction_is_the_default_and_is_stated():
    s = TaxSchedule.us_federal(2024)
    assert s.deduction == 14_600 and s.deduction_label == "standard deduction"
    assert s.deduction_note() == "including the $14,600 standard deduction"
    assert s.with_rates([0.2] * 7).deduction_note() == s.deduction_note()  # kept by with_rates
    assert TaxSchedule.us_federal(2024, standard_deduction=False).deduction_note().startswith("no deduction")
    assert TaxSchedule.flat(0.2, deduction=5_000).deduction_note() == "including the $5,000 deduction"


def test_curves_are_the_schedule_and_its_kinks():
    s = TaxSchedule.us_federal(2024)
    z = s.curve_incomes()
    assert z[0] == 1_000 and np.all(np.diff(z) > 0)
    assert {14_600.0, 14_600.0 + 11_600, 14_600.0 + 609_350} <= set(z.tolist())  # kinks in gross income
    c = s.curves(z, rebate=2_000.0)
    expected = np.array([loop_tax(x, s.thresholds, s.rates, s.deduction) for x in z])
    np.testing.assert_allclose(c["tax"], expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(c["average_rate"], expected / z, rtol=1e-12)
    np.testing.assert_allclose(c["net_average_rate"], (expected - 2_000.0) / z, rtol=1e-12)
    np.testing.assert_allclose(c["taxable"], np.maximum(z - 14_600, 0))
    # marginal rate by finite differences of the independent loop, away from the kinks
    mid = np.sqrt(z[1:] * z[:-1])
    fd = np.array([(loop_tax(x + 0.5, s.thresholds, s.rates, 14_600) - loop_tax(x - 0.5, s.thresholds, s.rates, 14_600))
                   for x in mid])
    np.testing.assert_allclose(s.curves(mid)["marginal_rate"], fd, atol=1e-9)
    assert np.isnan(s.curves([0.0], rebate=1.0)["net_average_rate"][0])
    with pytest.raises(ValueError, match="low < high"):
        s.curve_incomes(low=1_000, high=500)


def test_irs_tax_table_amounts():
    """The Tax Table lists tax at the bin midpoint, rounded half up, below $100,000."""
    s = TaxSchedule.us_federal(2024, "single", standard_deduction=False)  # on taxable income
    # $50,000-$50,050 bin: 1,160 + 0.12 * 35,550 + 0.22 * (50,025 - 47,150) = 6,058.5 -> 6,059
    assert s.tax_table_amount(50_000) == 6_059
    assert s.tax_table_amount(50_049.99) == 6_059
    assert s.tax_table_amount(4) == 0
    assert s.tax_table_amount(10) == 1  # 5-15 bin, midpoint 10, 10 %
    assert s.tax_table_amount(30) == 4  # 25-50 bin, midpoint 37.5 -> 3.75 -> 4
    assert s.tax_table_amount(2_990) == 299  # 2,975-3,000 bin: midpoint 2,987.5 -> 298.75
    assert s.tax_table_amount(99_999) == 17_048  # midpoint 99,975 -> 17,047.5, half up
    assert s.tax_table_amount(100_000) == 17_053  # worksheet: the exact schedule
