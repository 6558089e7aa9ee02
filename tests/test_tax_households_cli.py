"""``econsim tax`` as a household calculator (one household, or ``--households`` in batch):
worked numbers, agreement with ``components.net_tax`` and with the frozen Tax-Calculator
table, the marginal rate, and every bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator.cli.main import main
from simulator.cli.tax_cmd import household_tax
from simulator.economy.taxbenefit import components as C
from simulator.economy.taxbenefit import params as P

FROZEN = Path(__file__).parent / "data" / "taxcalc_frozen.csv.gz"
RESULTS = ["income_tax_before_credits", "elderly_credit", "ctc", "actc", "eitc", "income_tax",
           "payroll_tax", "payroll_tax_employer", "net_tax", "marginal_rate"]


def _json(capsys, *argv) -> dict:
    assert main(["tax", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _write(path: Path, header: list[str], rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {h: [r[j] for r in rows[1:]] for j, h in enumerate(rows[0])}


def _net(year, w, sw=0.0, fs=1, kids=0, age=40, sage=40):
    r = C.net_tax(np.atleast_1d(np.asarray(w, float)), np.full(np.size(w), sw), np.full(np.size(w), fs),
                  np.full(np.size(w), kids), np.full(np.size(w), age), np.full(np.size(w), sage),
                  P.load(year))
    return r["net_tax"]


# --------------------------------------------------------------------------- one household

def test_single_15000_breakdown(capsys):
    assert main(["tax", "15000", "--year", "2024", "--breakdown"]) == 0
    out = capsys.readouterr().out
    lines = {ln.strip().rsplit("  ", 1)[0].strip(): ln.split()[-1] for ln in out.splitlines()[1:]}
    assert lines["employee payroll tax"] == "$1,147.50"
    assert lines["employer payroll tax (not in net tax)"] == "$1,147.50"
    assert lines["earned income tax credit (EITC)"] == "$274.75"
    assert lines["income tax before credits"] == "$40.00"
    assert lines["income tax after credits"] == "-$234.75"
    assert lines["net tax (income tax + employee payroll)"] == "$912.75"  # the printed parts add up
    assert lines["take-home pay (wages - net tax)"] == "$14,087.25"
    assert "25.3 %" in out  # 7.65 % EITC phase-out + 7.65 % payroll + 10 % bracket
    d = _json(capsys, "15000", "--year", "2024", "--breakdown")
    assert (d["payroll_tax"], d["eitc"], d["income_tax_before_credits"]) == (1147.5, 274.745, 40.0)
    assert d["net_tax"] == pytest.approx(912.755) and d["marginal_rate"] == 0.253
    assert d["take_home_pay"] == pytest.approx(15000 - 912.755)


def test_head_of_household_two_children_20000(capsys):
    assert main(["tax", "20000", "--year", "2024", "--filing-status", "head_of_household", "--children", "2"]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first == "-8055.00"  # income tax -9,585 (ACTC + EITC) + payroll 1,530
    assert "EITC $6,960.00" in second and "ACTC $2,625.00" in second and "employer" in second
    d = _json(capsys, "20000", "--year", "2024", "--filing-status", "4", "--children", "2")
    assert (d["eitc"], d["actc"], d["ctc"], d["filing_status"]) == (6960.0, 2625.0, 0.0, "head_of_household")
    assert d["marginal_rate"] == pytest.approx(-0.15 + 0.0765)  # ACTC phase-in, EITC flat


def test_plain_output_is_unchanged_without_household_flags(capsys):
    assert main(["tax", "100000"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "13841.00"  # brackets only, as before
    assert main(["tax", "100000", "--full"]) == 0
    # the full system: 13,841 income tax + 7,650 payroll (6.2 % + 1.45 %)
    assert capsys.readouterr().out.splitlines()[0] == "21491.00"


@pytest.mark.parametrize("argv", [
    ["50000", "--year", "2025", "--age", "70"],
    ["80000", "--year", "2023", "--filing-status", "married_filing_jointly", "--spouse-wages", "30000",
     "--children", "3", "--spouse-age", "66"],
    ["30000", "--year", "2026", "--filing-status", "married_filing_separately", "--children", "1"],
    ["0", "--full"],
])
def test_json_is_components_net_tax(capsys, argv):
    d = _json(capsys, *argv)
    fs = P.FILING_STATUS_CODES[d["filing_status"]]
    r = C.net_tax(np.array([d["wages"]]), np.array([d["spouse_wages"]]), np.array([fs]),
                  np.array([d["children"]]), np.array([d["age"]]), np.array([d["spouse_age"] or 0]),
                  P.load(d["year"]))
    for k in RESULTS[:-1]:
        assert d[k] == pytest.approx(float(r[k][0]), abs=1e-6), k


def test_household_flag_errors(capsys):
    for argv, needle in [
        (["1000", "--children", "2.5"], "--children"), (["1000", "--children", "-1"], "--children"),
        (["1000", "--children", "21"], "--children"), (["1000", "--children", "two"], "--children"),
        (["1000", "--age", "-4"], "--age"), (["1000", "--spouse-wages", "nan", "--filing-status", "2"], "--spouse-wages"),
        (["1000", "--full", "--year", "2031"], "2031"), (["1000", "--full", "--filing-status", "widow"], "widow"),
        (["1000", "--spouse-wages", "5"], "married_filing_jointly"),
        (["1000", "--full", "--tax-table"], "--tax-table"),
        ([], "INCOME"), (["1000", "-o", "x.csv"], "--households"),
    ]:
        assert main(["tax", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, (argv, err)


# --------------------------------------------------------------------------- batch

def _random_households(rng, n):
    fs = rng.integers(1, 5, n)
    return {
        "year": rng.integers(2023, 2027, n), "filing_status": fs,
        "wages": np.round(400_000 * rng.uniform(0, 1, n) ** 2, 2),  # more of them low
        "children": rng.integers(0, 6, n), "age": rng.integers(18, 90, n),
        "spouse_wages": np.where(fs == 2, np.round(rng.uniform(0, 150_000, n), 2), 0.0),
        "spouse_age": rng.integers(18, 90, n),
    }


def test_batch_matches_components(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    h = _random_households(rng, n)
    names = np.array(["single", "married_filing_jointly", "married_filing_separately", "head_of_household"])
    status_cell = np.where(rng.integers(0, 2, n) == 1, names[h["filing_status"] - 1], h["filing_status"].astype(str))
    cols = list(h)
    rows = [[status_cell[i] if c == "filing_status" else h[c][i] for c in cols] for i in range(n)]
    src = _write(tmp_path / "in.csv", cols, rows)
    assert main(["tax", "--households", str(src), "-o", str(tmp_path / "out.csv")]) == 0
    out = _read(tmp_path / "out.csv")
    assert list(out)[:len(cols)] == cols and list(out)[len(cols):] == RESULTS
    assert out["filing_status"] == list(status_cell)  # input columns as given
    got = {k: np.array(out[k], float) for k in RESULTS}
    for y in range(2023, 2027):
        m = h["year"] == y
        r = household_tax(y, h["wages"][m], h["spouse_wages"][m], h["filing_status"][m], h["children"][m],
                          h["age"][m], h["spouse_age"][m])
        ref = C.net_tax(h["wages"][m], h["spouse_wages"][m], h["filing_status"][m], h["children"][m],
                        h["age"][m], h["spouse_age"][m], P.load(y))
        for k in RESULTS[:-1]:
            np.testing.assert_allclose(got[k][m], ref[k], atol=1e-6, err_msg=k)
        np.testing.assert_allclose(got["marginal_rate"][m], r["marginal_rate"], atol=1e-12)
    np.testing.assert_allclose(got["net_tax"], got["income_tax"] + got["payroll_tax"], atol=2e-6)


def test_batch_defaults_and_extra_columns(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,Year,filing_status,wages,children,age\n"
                   "a,2024,single,15000,,\n"
                   "\n"  # a blank line is skipped
                   'b,2024,4,"$20,000",2,35\n')
    assert main(["tax", "--households", str(src), "-o", str(tmp_path / "out.csv")]) == 0
    out = _read(tmp_path / "out.csv")
    assert list(out)[:8] == ["id", "Year", "filing_status", "wages", "children", "age", "spouse_wages", "spouse_age"]
    assert out["children"] == ["0", "2"] and out["age"] == ["40", "35"] and out["spouse_age"] == ["40", "35"]
    assert out["eitc"] == ["274.745", "6960.0"] and out["actc"] == ["0.0", "2625.0"]
    assert out["marginal_rate"] == ["0.253", "-0.0735"]


def test_batch_to_stdout(tmp_path, capsys):
    src = _write(tmp_path / "in.csv", ["year", "filing_status", "wages"], [[2024, 1, 15000]])
    assert main(["tax", "--households", str(src)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][-1] == "marginal_rate" and rows[1][rows[0].index("eitc")] == "274.745"


def _frozen():
    with gzip.open(FROZEN, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    return rows


def test_batch_matches_frozen_taxcalc(tmp_path):
    """Every row of the frozen Tax-Calculator table through the CSV path."""
    rows = _frozen()
    inputs = ["year", "filing_status", "wages", "children", "age", "spouse_wages", "spouse_age"]
    src = _write(tmp_path / "in.csv", inputs,
                 ([r[c].removesuffix(".000") if c != "wages" else r[c] for c in inputs] for r in rows))
    assert main(["tax", "--households", str(src), "-o", str(tmp_path / "out.csv")]) == 0
    out = _read(tmp_path / "out.csv")
    assert len(out["wages"]) == len(rows) > 30_000
    for c in ["income_tax_before_credits", "ctc", "actc", "eitc", "income_tax", "payroll_tax"]:
        dev = np.abs(np.array(out[c], float) - np.array([float(r[c]) for r in rows]))
        assert dev.max() <= 0.0005 + 1e-6, (c, dev.max())  # the table keeps 3 decimals


def test_batch_100k_rows_is_fast(tmp_path):
    import time

    rng = np.random.default_rng(1)
    h = _random_households(rng, 100_000)
    cols = list(h)
    src = _write(tmp_path / "in.csv", cols, zip(*(h[c] for c in cols), strict=True))
    t = time.perf_counter()
    assert main(["tax", "--households", str(src), "-o", str(tmp_path / "out.csv")]) == 0
    elapsed = time.perf_counter() - t
    assert elapsed < 20, elapsed  # about 2 s on 1 core; generous for a loaded CI machine
    assert sum(1 for _ in open(tmp_path / "out.csv")) == 100_001


# --------------------------------------------------------------------------- marginal rate

def test_marginal_rate_equals_finite_difference_away_from_kinks():
    rng = np.random.default_rng(7)
    for y in range(2023, 2027):
        h = _random_households(rng, 20_000)
        args = (h["spouse_wages"], h["filing_status"], h["children"], h["age"], h["spouse_age"])
        w = h["wages"] + 1.0
        r = household_tax(y, w, *args)
        p = P.load(y)
        f = lambda x, args=args, p=p: C.net_tax(x, *args, p)["net_tax"]  # noqa: E731
        right, left = f(w + 0.5) - f(w), f(w) - f(w - 0.5)
        linear = np.abs(right - left) < 1e-7  # no kink within 50 cents either side
        assert linear.mean() > 0.9
        np.testing.assert_allclose(r["marginal_rate"][linear], right[linear] / 0.5, atol=1e-6)


@pytest.mark.parametrize("year,wages,fs,kids,age,rate", [
    # EITC phase-out, 2 children: 21.06 % + 7.65 % payroll + 10 % bracket (CTC+ACTC flat: the
    # refundable part is limited by the unused credit)
    (2024, 30_000.0, 4, 2, 35, 0.2106 + 0.0765 + 0.10),
    (2024, 15_000.0, 1, 0, 40, 0.0765 + 0.0765 + 0.10),  # childless EITC phase-out
    (2024, 14_600.0, 1, 0, 40, 0.0765 + 0.0765 + 0.10),  # at the deduction: the right derivative
    (2024, 100_000.0, 1, 0, 40, 0.22 + 0.0765),
    (2024, 168_600.0, 1, 0, 40, 0.24 + 0.0145),  # at the OASDI wage base: above it only HI
    (2024, 250_000.0, 1, 0, 40, 0.32 + 0.0145 + 0.009),  # additional Medicare tax
    (2024, 20_000.0, 4, 2, 35, -0.15 + 0.0765),  # ACTC phase-in, EITC plateau, no income tax
    (2024, 8_000.0, 4, 2, 35, -0.40 - 0.15 + 0.0765),  # EITC and ACTC phase-in
    (2025, 250_000.0, 1, 2, 40, 0.32 + 0.0145 + 0.009 + 0.05),  # CTC phase-out
    # 1 child 2024: the EITC phase-in ends at 4,213 / 0.34 = 12,391.176...: a cent below it the
    # coarse step crosses the kink and the short one gives the slope before it
    (2024, 12_391.17, 4, 1, 35, -0.34 - 0.15 + 0.0765),
    (2024, 12_391.18, 4, 1, 35, -0.15 + 0.0765),
])
def test_marginal_rate_statutory(year, wages, fs, kids, age, rate):
    r = household_tax(year, np.array([wages]), np.array([0.0]), np.array([fs]), np.array([kids]),
                      np.array([age]), np.array([age]))
    assert float(r["marginal_rate"][0]) == pytest.approx(rate, abs=1e-9)


# --------------------------------------------------------------------------- bad input

BAD = [
    ("year,filing_status,wages\n2024,single,100\n2024,widow,100\n", "row 3", "filing_status"),
    ("year,filing_status,wages\n2024,0,100\n", "row 2", "filing_status"),
    ("year,filing_status,wages,children\n2024,1,100,1\n2024,1,100,-1\n", "row 3", "children"),
    ("year,filing_status,wages,children\n2024,1,100,1.5\n", "row 2", "children"),
    ("year,filing_status,wages,children\n2024,1,100,21\n", "row 2", "children"),
    ("year,filing_status,wages,children\n2024,1,100,x\n", "row 2", "children"),
    ("year,filing_status,wages\n2024,1,-5\n", "row 2", "wages"),
    ("year,filing_status,wages\n2024,1,5\n2024,1,inf\n", "row 3", "wages"),
    ("year,filing_status,wages\n2024,1,nan\n", "row 2", "wages"),
    ("year,filing_status,wages\n2024,1,abc\n", "row 2", "wages"),
    ("year,filing_status,wages\n2024,1,\n", "row 2", "wages"),
    ("year,filing_status,wages\n2024,1,5\n2030,1,5\n", "row 3", "2030"),
    ("year,filing_status,wages\n2024.5,1,5\n", "row 2", "year"),
    ("year,filing_status,wages,age\n2024,1,5,-3\n", "row 2", "age"),
    ("year,filing_status,wages,spouse_age\n2024,2,5,200\n", "row 2", "spouse_age"),
    ("year,filing_status,wages,spouse_wages\n2024,1,5,6\n", "row 2", "spouse_wages"),
    ("year,filing_status\n2024,1\n", "missing column", "wages"),
    ("year,filing_status,wages\n2024,1,5,6\n", "row 2", "cells"),
    ("year,filing_status,wages,wages\n2024,1,5,5\n", "more than once", "wages"),
    ("year,filing_status,wages\n", "no households", ""),
    ("", "empty file", ""),
    # the earliest bad row is named, whatever the column
    ("year,filing_status,wages,children\n2024,1,5,0\n2024,1,5,-2\n2024,1,-1,0\n", "row 3", "children"),
]


@pytest.mark.parametrize("text,where,what", BAD)
def test_bad_households_file(tmp_path, capsys, text, where, what):
    src = tmp_path / "in.csv"
    src.write_text(text)
    out = tmp_path / "out.csv"
    assert main(["tax", "--households", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("econsim: error: "), err
    assert where in err and what in err, err
    if where.startswith("row"):
        assert "header = row 1" in err and ("column" in err or what == "cells")
    assert list(tmp_path.iterdir()) == [src]  # no output, no temporary file left


def test_bad_households_file_keeps_an_existing_output(tmp_path, capsys):
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    src = tmp_path / "in.csv"
    src.write_text("year,filing_status,wages\n2024,1,x\n")
    assert main(["tax", "--households", str(src), "-o", str(out)]) == 2
    assert out.read_text() == "old\n"


@pytest.mark.parametrize("make", ["missing", "directory", "binary"])
def test_unreadable_households_file(tmp_path, capsys, make):
    src = tmp_path / "in.csv"
    if make == "directory":
        src.mkdir()
    elif make == "binary":
        src.write_bytes(b"\xff\xfe\x00\x81")
    assert main(["tax", "--households", str(src), "-o", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err and str(src) in err
    assert not (tmp_path / "out.csv").exists()


def test_batch_rejects_single_household_flags(tmp_path, capsys):
    src = _write(tmp_path / "in.csv", ["year", "filing_status", "wages"], [[2024, 1, 5]])
    assert main(["tax", "--households", str(src), "--children", "2", "-o", str(tmp_path / "o.csv")]) == 2
    assert "--children" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert main(["tax", "--households", str(src), "-o", str(tmp_path / "nodir" / "o.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_console_exit_status(tmp_path):
    """The installed entry point: a bad cell is exit status 2 and one line on stderr."""
    src = tmp_path / "in.csv"
    src.write_text("year,filing_status,wages\n2024,1,-5\n")
    p = subprocess.run([sys.executable, "-m", "simulator.cli.main", "tax", "--households", str(src),
                        "-o", str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        f"econsim: error: {src}, row 2 (header = row 1), column wages: must be >= 0 dollars a year, got '-5'"]
    assert not (tmp_path / "out.csv").exists()
