"""benchmarks/participation.py in its --quick mode: the calibration tables, the elasticities
and the cost table are printed, and their figures are sane (the overall employment rate
within 3 standard errors of its CPS target, the calibrated elasticity inside the 95 %
interval recovered from the simulated in-work benefit)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT / "tests"))
from test_docs import provenance_problems  # noqa: E402

_NUM = r"[-+]?[\d,]*\.?\d+"
_RATE_ROW = re.compile(rf"\s+(.+?)\s+([\d,]+)\s+({_NUM})%\s+({_NUM})%\s+({_NUM})\s+({_NUM}) pp(?:\s+({_NUM}))?")


def _run(*args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, str(BENCH / "participation.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _section(out: str, title: str) -> list[dict]:
    """The rows of the rate table headed ``title``: group, people, target, simulated, s.e. (fractions)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title + " "))
    rows = []
    for line in lines[start + 1:]:
        m = _RATE_ROW.match(line)
        if not m:
            break
        g = m.groups()
        rows.append({"group": g[0], "people": int(g[1].replace(",", "")), "target": float(g[2]) / 100,
                     "simulated": float(g[3]) / 100, "se": float(g[4]) / 100, "diff": float(g[5]) / 100,
                     "z": None if g[6] is None else float(g[6])})
    return rows


@pytest.fixture(scope="module")
def quick() -> str:
    rc, out = _run("--quick")
    assert rc == 0, out
    return out


@pytest.mark.slow
def test_quick_run_has_its_provenance(quick):
    first = quick.splitlines()[0]
    assert first.startswith("printed by benchmarks/participation.py --quick"), first
    assert provenance_problems(first) == [], first
    assert quick.rstrip().splitlines()[-1].startswith("finished ")
    assert "/work/" not in quick and "/tmp/" not in quick
    assert "5,000 people, seed 0" in quick


@pytest.mark.slow
def test_calibration_tables_are_sane(quick):
    age = _section(quick, "age band x sex")
    edu = _section(quick, "education x sex, ages 25+")
    [overall] = _section(quick, "overall")
    # the default ages 18-64: six bands a sex; six education levels a sex
    assert [r["group"] for r in age[:6]] == [f"{b} male" for b in ("18-19", "20-24", "25-34", "35-44",
                                                                       "45-54", "55-64")]
    assert len(age) == 12 and len(edu) == 12
    assert sum(r["people"] for r in age) == overall["people"] == 5000
    assert sum(r["people"] for r in edu) < 5000  # ages 25+ only
    for r in [*age, *edu, overall]:
        assert 0.2 < r["target"] < 0.95 and 0 < r["simulated"] < 1, r
        se = (r["simulated"] * (1 - r["simulated"]) / r["people"]) ** 0.5
        assert r["se"] == pytest.approx(se, abs=6e-5), r  # the binomial s.e., printed in pp to 2 decimals
        assert r["diff"] == pytest.approx(r["simulated"] - r["target"], abs=2e-4)
    # CPS: men work more than women at every prime age, prime ages more than the young
    by = {r["group"]: r["target"] for r in age}
    assert all(by[f"{b} male"] > by[f"{b} female"] for b in ("25-34", "35-44", "45-54", "55-64"))
    assert by["35-44 male"] > by["20-24 male"] > by["18-19 male"]
    # the overall employment rate within 3 standard errors of its target
    assert 0.6 < overall["target"] < 0.85
    assert abs(overall["simulated"] - overall["target"]) <= 3 * overall["se"], overall
    assert re.search(r"overall: simulated [\d.]+ % against the target [\d.]+ %, .* within 3 s\.e\.", quick)
    m = re.search(r"the (\d+) calibration cells .*: sum of z\^2 ([\d.]+) on \d+ cells", quick)
    assert m and 30 <= int(m.group(1)) <= 72 and float(m.group(2)) < 2 * int(m.group(1))
    # information: household types and deciles, with no z column
    hh = _section(quick, "household type")
    dec = _section(quick, "potential-wage decile")
    assert {r["group"] for r in hh} >= {"single, no children", "married, spouse working"}
    assert [r["group"] for r in dec] == [f"d{d:02d}" for d in range(1, 11)]
    assert all(r["z"] is None for r in [*hh, *dec])
    assert sum(r["people"] for r in dec) == 5000
    assert dec[-1]["simulated"] > dec[0]["simulated"]  # higher potential wages, more work
    assert "recomputed from the hours: ok" in quick


def _pct(x: str) -> float | None:
    return None if x == "-" else float(x.rstrip("%")) / 100


def _reform_rows(out: str) -> dict[str, dict]:
    rows = {}
    rx = re.compile(rf"(in-work benefit \+10 % \((?:a|b)\) (?:transfer held|equilibrium)|"
                    rf"bracket 1 10% -> 0%, (?:transfer held|equilibrium))\s+(all|d1-3) ([\d,]+)\s+({_NUM})\s+"
                    rf"({_NUM})%\s+({_NUM})%\s+({_NUM}) pp\s+(-|{_NUM}%)\s+(-|{_NUM}%)\s+({_NUM})\s+({_NUM})\s+"
                    rf"\[({_NUM}), ({_NUM})\]")
    for line in out.splitlines():
        m = rx.match(line)
        if m:
            g = m.groups()
            rows[f"{g[0]} {g[1]}"] = {"people": int(g[2].replace(",", "")), "transfer": float(g[3].replace(",", "")),
                                      "p0": float(g[4]) / 100, "p1": float(g[5]) / 100, "ptr0": _pct(g[7]),
                                      "ptr1": _pct(g[8]), "ratio": float(g[9]), "elasticity": float(g[10]),
                                      "lo": float(g[11]), "hi": float(g[12])}
    return rows


@pytest.mark.slow
def test_elasticities_are_sane(quick):
    m = re.search(r"calibration: target elasticity ([\d.]+); calibrated .* ([\d.]+) at sigma ([\d.]+)", quick)
    assert m, quick
    target, calibrated, sigma = map(float, m.groups())
    assert target == 0.25 and calibrated == pytest.approx(0.25, abs=0.002) and sigma > 0
    rows = _reform_rows(quick)
    assert len(rows) == 6, rows
    a = rows["in-work benefit +10 % (a) transfer held all"]
    # the calibrated elasticity lies inside the interval recovered from the simulated reform
    assert a["lo"] <= calibrated <= a["hi"], a
    assert a["lo"] < a["elasticity"] < a["hi"] and a["ratio"] == 1.1 and a["transfer"] == 0
    assert "inside the interval recovered from the simulated in-work benefit (a)" in quick
    assert a["p1"] > a["p0"]
    # every reform raises employment; the bracket cut lowers the bottom deciles' PTR
    for key, r in rows.items():
        assert r["p1"] >= r["p0"] and r["lo"] <= r["elasticity"] <= r["hi"], key
    for mode in ("transfer held", "equilibrium"):
        cut = rows[f"bracket 1 10% -> 0%, {mode} d1-3"]
        assert cut["people"] == 1500 and cut["ptr1"] < cut["ptr0"]
        assert cut["ratio"] == pytest.approx((1 - cut["ptr1"]) / (1 - cut["ptr0"]), abs=2e-3)
        assert 0 < cut["elasticity"] < 1.5
    assert rows["bracket 1 10% -> 0%, equilibrium d1-3"]["transfer"] < 0  # lost revenue collected lump-sum
    m = re.search(r"\(a\) brings ([\d,]+) people into work \((\d+) leave it\); .* expects ([\d,.]+) "
                  r"\(s\.d\. ([\d.]+) .* z = ([-+][\d.]+)\),\nan expected elasticity of ([\d.]+)", quick)
    assert m, quick
    assert int(m.group(2)) == 0 and abs(float(m.group(5))) < 3
    assert float(m.group(6)) == pytest.approx(calibrated, abs=0.002)
    assert "WARNING" not in quick


@pytest.mark.slow
def test_cost_table_has_both_configurations(quick):
    rows = {}
    for line in quick.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(off|on)\s+(.*)$", line)
        if m:
            rows[(int(m.group(1).replace(",", "")), m.group(2))] = m.group(3).split()
    assert set(rows) == {(2000, "off"), (2000, "on"), (5000, "off"), (5000, "on")}, quick
    for (_, part), cells in rows.items():
        pop_s, model_s, calib_s, build_s, b_ratio, repeats, s_year, cpu_year, y_ratio, peak, employed, hours = cells
        assert float(build_s) == pytest.approx(float(pop_s) + float(model_s), abs=0.011)
        assert int(repeats) == 1 and float(s_year) > 0 and float(cpu_year) >= 0
        assert float(peak.replace(",", "")) > 50 and 0 < float(hours) < 60
        if part == "on":
            assert 0 <= float(calib_s) <= float(model_s) and float(b_ratio) > 0 and float(y_ratio) > 0
            assert 60 < float(employed.rstrip("%")) < 90
        else:
            assert calib_s == b_ratio == y_ratio == "-" and employed == "100.0%"
    assert re.search(r"overall employment within 3 s\.e\. of its target: yes; calibrated elasticity inside "
                     r"the recovered 95 % interval: yes", quick)


def test_arguments():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_participation", BENCH / "participation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    q = mod.parse_args(["--quick"])
    assert (q.size, q.sizes, q.repeats) == (5_000, [2_000, 5_000], 1)
    assert mod.parse_args([]).sizes == [10_000, 100_000] and mod.parse_args([]).size == 100_000
    assert mod.parse_args(["--million"]).sizes == [10_000, 100_000, 1_000_000]
    for bad in (["--size", "10"], ["--repeats", "0"], ["--sizes", "0"]):
        with pytest.raises(SystemExit) as e:
            mod.parse_args(bad)
        assert e.value.code == 2
