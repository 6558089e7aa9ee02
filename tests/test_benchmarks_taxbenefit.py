"""benchmarks/taxbenefit_scale.py and benchmarks/credits_soi.py in their --quick modes, and
the IRS figures file they compare against."""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT / "tests"))
from test_docs import provenance_problems  # noqa: E402

_spec = importlib.util.spec_from_file_location("credits_soi", BENCH / "credits_soi.py")
credits_soi = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(credits_soi)


def _run(script: str, *args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def _header_ok(out: str, script: str) -> None:
    first = out.splitlines()[0]
    assert first.startswith(f"printed by benchmarks/{script} --quick"), first
    assert provenance_problems(first) == [], first
    assert out.rstrip().splitlines()[-1].startswith("finished ")
    assert "/work/" not in out and "/tmp/" not in out


@pytest.mark.slow
def test_taxbenefit_scale_quick_prints_both_worlds():
    rc, out = _run("taxbenefit_scale.py", "--quick", "--profile", "2000")
    assert rc == 0, out
    _header_ok(out, "taxbenefit_scale.py")
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(income_tax_only|us_current_law)\s+(.*)$", line)
        if m:
            rows[m.group(2)] = (int(m.group(1).replace(",", "")), m.group(3).split())
    assert set(rows) == {"income_tax_only", "us_current_law"}, out
    for world, (n, cells) in rows.items():
        assert n == 2000
        pop_s, model_s, repeats, s_year, cpu_year, ratio, ratio_cpu, peak = cells[:8]
        assert int(repeats) == 1 and float(s_year) > 0 and float(cpu_year) >= 0
        assert float(peak.replace(",", "")) > 50
        assert cells[8] == "ok", line
        if world == "us_current_law":
            assert float(ratio) > 0 and float(ratio_cpu) > 0
        else:
            assert ratio == "-"
    assert re.search(r"target full/itax <= 2 at 2,000 workers: (met|NOT met) \(\d+\.\d\dx wall", out), out
    assert "top 10 by own time" in out
    prof = out.split("top 10 by own time:")[1].splitlines()
    assert sum(bool(re.match(r"\s*\d+\.\d{3}\s+\d+\.\d{3}\s+\d+\s+\S", p)) for p in prof) == 10, out


@pytest.mark.slow
def test_credits_soi_quick_prints_the_comparison():
    rc, out = _run("credits_soi.py", "--quick")
    assert rc == 0, out
    _header_ok(out, "credits_soi.py")
    got = {}
    for line in out.splitlines():
        m = re.match(r"(EITC, all|CTC nonrefundable|ACTC \(refundable CTC\))\s+(returns M|amount \$B)\s+"
                     r"([\d,.]+)\s+([\d,.]+)\s+([\d.]+)", line)
        if m:
            got[(m.group(1), m.group(2))] = tuple(float(x.replace(",", "")) for x in m.groups()[2:])
    assert len(got) == 6, out
    sim, soi, ratio = got[("EITC, all", "returns M")]
    assert soi == pytest.approx(23.69) and 0 < sim < 100 and ratio == pytest.approx(sim / soi, abs=0.01)
    assert got[("EITC, all", "amount $B")][1] == pytest.approx(59.20)
    assert got[("ACTC (refundable CTC)", "returns M")][1] == pytest.approx(17.69)
    assert "each worker stands for 83,1" in out  # 166.3 M workers / 2,000
    assert "Why the two columns differ" in out and "take-up" in out.lower()


def test_soi_file_has_its_sources():
    rows = credits_soi.load_soi()
    assert {(r["source_id"], r["credit"], r["children"]) for r in rows} >= {
        ("soi_state_2022", "eitc", "all"), ("soi_state_2022", "ctc_nonrefundable", "all"),
        ("soi_state_2022", "actc", "all"), ("soi_p1304_t25_2022", "eitc", "all"),
        ("eitc_central_2022", "eitc", "all"), ("soi_state_2022", "all_returns", "all")}
    for r in rows:
        assert r["url"].startswith("https://www.irs.gov/") or r["url"].startswith("https://www.eitc.irs.gov/")
        assert r["tax_year"] == "2022" and r["universe"] and r["table"]
        if r["source_id"] != "eitc_central_2022":  # EITC Central's figure is read off the page
            assert re.fullmatch(r"[\w-]+/[\w.-]+@[0-9a-f]{40}:\S+", r["copy"]), r["copy"]
    # the children rows add up to the totals (state data: within SOI rounding)
    for sid, tol in (("soi_state_2022", 2), ("soi_p1304_t25_2022", 0)):
        kids = [credits_soi.soi(rows, sid, "eitc", k) for k in ("0", "1", "2", "3+")]
        total = credits_soi.soi(rows, sid, "eitc")
        assert abs(sum(k["returns"] for k in kids) - total["returns"]) <= tol
        assert abs(sum(k["amount"] for k in kids) - total["amount"]) <= 5_000
    with open(credits_soi.SOI_CSV, newline="") as f:
        header = next(csv.reader(f))
    assert set(credits_soi.SOI_REQUIRED) <= set(header)


def test_soi_file_missing_a_source_is_an_error(tmp_path):
    text = credits_soi.SOI_CSV.read_text().splitlines()
    cols = text[0].split(",")
    bad = tmp_path / "soi.csv"
    row = next(csv.reader([text[2]]))
    row[cols.index("url")] = ""
    buf = tmp_path / "row.csv"
    with open(buf, "w", newline="") as f:
        csv.writer(f).writerow(row)
    bad.write_text(text[0] + "\n" + buf.read_text())
    with pytest.raises(ValueError, match="lacks"):
        credits_soi.load_soi(bad)


def test_credits_soi_arguments():
    assert credits_soi.parse_args(["--quick"]).workers == 2000
    for bad in (["--workers", "0"], ["--year", "2022"]):
        with pytest.raises(SystemExit) as e:
            credits_soi.parse_args(bad)
        assert e.value.code == 2
