"""Tests of the Census-calibrated persona generator (``personas``).

Targets are recomputed here straight from the packaged source CSVs with pandas (not
through the package's own loaders or model tables).  Statistical checks use a sample
of N = 40,000, so the validation tolerances are the N = 100,000 ones widened by
sqrt(100,000 / 40,000) = 1.58 (shares 1.6 percentage points, percentiles 7.9%).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import personas
from personas.gb2 import REFERENCE_GB2
from personas.model import PCTS, calibration, occupation_quantile
from personas.text import OCCUPATION_PHRASES
from simulator.cli.main import main

DATA = Path(personas.__file__).parent / "data"
N = 40_000
SCALE = np.sqrt(100_000 / N)


def csv(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{name}.csv", dtype={"soc_major": str, "state": str})


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return personas.generate(N, 123)


# --- columns and basic identities ----------------------------------------------------

def test_columns_and_identities(sample):
    for col in ("id", "sex", "age", "state", "education", "occupation", "occupation_name",
                "hours", "earnings", "wage", "weight", "persona"):
        assert col in sample.columns
    assert (sample["id"].to_numpy() == np.arange(N)).all()
    assert set(sample["sex"].astype(str)) == {"male", "female"}
    assert sample["age"].between(16, 89).all()
    assert set(sample["education"].astype(str)) <= {
        "less_than_hs", "hs", "some_college", "associate", "bachelors", "advanced"}
    assert sample["hours"].between(1, 70).all()
    np.testing.assert_allclose(sample["wage"] * sample["hours"], sample["earnings"])
    assert (sample["weight"] == 1.0).all()
    names = csv("occupation_by_sex_cps2024").set_index("soc_major")["occupation_group"]
    assert (sample["occupation_name"].astype(str)
            == names.reindex(sample["occupation"].astype(str)).to_numpy()).all()


# --- calibration against the sources (independent recomputation) --------------------

def test_validation_table_passes_at_test_size(sample):
    table = personas.validation_table(frame=sample)
    failed = table[~table["passed"]]
    assert failed.empty, failed.to_string()
    assert len(table) > 250
    assert {"sex", "age group", "state", "education (25+)", "occupation", "hours band",
            "wage percentile by occupation", "top tail"} <= set(table["check"])


def test_sex_share_matches_acs_times_cps_employment(sample):
    pop = csv("population_age_sex_acs2024").set_index(["age_group", "sex"])["population"]
    lf = csv("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    groups = {"16-19": ["16 to 19"], "20-24": ["20 to 24"], "25-34": ["25 to 34"],
              "35-44": ["35 to 44"], "45-54": ["45 to 54"], "55-64": ["55 to 64"],
              "65-74": ["65 to 69", "70 to 74"], "75+": ["75+"]}
    emp = {s: sum(pop[(g, s)] * lf.loc[[(c, s) for c in cps], "employed_thousands"].sum()
                  / lf.loc[[(c, s) for c in cps], "civ_noninst_pop_thousands"].sum()
                  for g, cps in groups.items()) for s in ("male", "female")}
    target = emp["male"] / (emp["male"] + emp["female"])
    assert abs((sample["sex"] == "male").mean() - target) < 0.01 * SCALE
    # close to CPS's own employed male share too (different universe, same survey)
    assert abs(target - 85313 / 161346) < 0.005


def test_occupation_shares_by_sex_match_cps(sample):
    occ = csv("occupation_by_sex_cps2024")
    occ = occ[occ.soc_major != "00"].set_index("soc_major")
    for sex, col in (("male", "employed_men_k"), ("female", "employed_women_k")):
        got = sample.loc[sample["sex"] == sex, "occupation"].astype(str).value_counts(
            normalize=True)
        want = occ[col] / occ[col].sum()
        assert (got.reindex(want.index).fillna(0) - want).abs().max() < 0.01 * SCALE


def test_education_of_workers_25_plus_matches_cps(sample):
    t7 = csv("education_by_sex_cps2024").set_index(["sex", "education"])["employed_k"]
    rows = {"less_than_hs": "less_than_hs", "hs": "hs_no_college",
            "some_college": "some_college_no_degree", "associate": "associate",
            "bachelors": "bachelors_only", "advanced": "advanced_degree"}
    for sex in ("male", "female"):
        want = pd.Series({k: t7[(sex, v)] for k, v in rows.items()})
        want /= want.sum()
        sub = sample[(sample["sex"] == sex) & (sample["age"] >= 25)]
        got = sub["education"].astype(str).value_counts(normalize=True)
        assert (got.reindex(want.index) - want).abs().max() < 0.01 * SCALE


def test_part_time_share_by_sex_matches_cps_table_8(sample):
    hw = csv("hours_worked_cps2024")
    t8 = hw[(hw.bls_table == "cpsaat08") & (hw.measure == "part-time workers (thousands)")]
    for sex, pct in zip(t8["sex"], t8["percent"], strict=True):
        if sex == "total":
            continue
        got = (sample.loc[sample["sex"] == sex, "hours"] < 35).mean()
        assert abs(got - pct / 100) < 0.01 * SCALE


def test_quantile_function_passes_through_oews_percentiles():
    oews = csv("occupation_wages_oews_may2025").set_index("soc_major")
    cal = calibration()
    for o, code in enumerate(cal.occ_codes):
        want = oews.loc[code, ["annual_p10", "annual_p25", "annual_median", "annual_p75",
                               "annual_p90"]].to_numpy(float)
        np.testing.assert_allclose(occupation_quantile(o, np.array(PCTS)), want, rtol=1e-9)


def test_occupation_earnings_percentiles_match_oews(sample):
    oews = csv("occupation_wages_oews_may2025").set_index("soc_major")
    fte = sample["wage"] * 40  # hourly x 2,080 = OEWS annual wage concept
    for code in ("11", "35", "43", "29", "53"):
        x = fte[sample["occupation"] == code]
        for p, col in ((0.1, "annual_p10"), (0.5, "annual_median"), (0.9, "annual_p90")):
            assert abs(np.quantile(x, p) / oews.loc[code, col] - 1) < 0.05 * SCALE, (code, p)


def test_pareto_tail_index_matches_soi():
    soi = csv("irs_soi_ty2023_returns_by_agi")
    top = soi[soi.agi_lower >= 500_000]
    b = top.agi_amount_usd.sum() / top.n_returns.sum() / 500_000
    a_soi = b / (b - 1)
    assert abs(a_soi - 1.527) < 0.005
    # the model's Pareto index of earnings above $500k is calibrated on it
    big = personas.generate(200_000, 5)["earnings"].to_numpy()
    tail = big[big > 500_000]
    a_hat = tail.size / np.log(tail / 500_000).sum()
    assert abs(a_hat / a_soi - 1) < 3 / np.sqrt(tail.size)


# --- joint structure -----------------------------------------------------------------

def test_joint_structure(sample):
    by_occ = sample.groupby("occupation", observed=True)
    male = by_occ["sex"].apply(lambda s: (s == "male").mean())
    assert male["47"] > 0.9          # construction: CPS 95.7% men
    assert male["31"] < 0.25         # healthcare support: CPS 84.6% women
    med = by_occ["earnings"].median()
    assert med["11"] > 2.0 * med["35"]
    # within an occupation men earn more per hour than women (CPS Table 39)
    w = sample[sample["occupation"] == "41"].groupby("sex", observed=True)["wage"].median()
    assert w["male"] > w["female"]
    # education rises with occupation pay (copula), and young workers' degrees are capped
    college = sample.groupby("occupation", observed=True)["education"].apply(
        lambda e: e.isin(["bachelors", "advanced"]).mean())
    assert college["15"] > 2 * college["35"]
    assert (sample.loc[sample["age"] < 18, "education"] == "less_than_hs").all()
    assert not (sample.loc[sample["age"] < 24, "education"] == "advanced").any()


# --- determinism and options ---------------------------------------------------------

def test_determinism():
    a = personas.generate(3000, 7)
    b = personas.generate(3000, 7)
    pd.testing.assert_frame_equal(a, b)
    c = personas.generate(3000, 8)
    assert not a["earnings"].equals(c["earnings"])
    assert not a["persona"].equals(c["persona"])
    d = personas.generate(3000, rng=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a, d)


def test_state_and_age_filters():
    vt = personas.generate(2000, 1, state="vt")
    assert (vt["state"] == "VT").all()
    assert vt["persona"].str.contains("Vermont").all()
    young = personas.generate(5000, 1, age_range=(30, 39))
    assert young["age"].between(30, 39).all()
    assert set(young["age"]) == set(range(30, 40))
    old = personas.generate(2000, 1, age_range=(80, 200))
    assert old["age"].between(80, 89).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n must be > 0"),
    ({"n": 10, "state": "XX"}, "unknown state"),
    ({"n": 10, "age_range": (50, 40)}, "empty"),
    ({"n": 10, "age_range": (95, 99)}, "empty"),
    ({"n": 10, "income_mode": "lognormal"}, "income mode"),
    ({"n": 10, "stratify": "quintile"}, "stratify"),
    ({"n": 50, "stratify": "decile", "min_per_stratum": 6}, "exceeds"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(personas.PersonaInputError, match=match):
        personas.generate(seed=0, **kwargs)


def test_bracket_stratification_min_counts_and_unbiased_weights():
    edges = [11_600, 47_150, 100_525, 191_950, 243_725, 609_350]
    assert list(personas.bracket_thresholds()) == edges
    k, n = 400, 8000
    strat = personas.generate(n, 11, stratify="bracket", min_per_stratum=k)
    assert len(strat) == n
    b = np.searchsorted(edges, strat["earnings"], side="right")
    counts = np.bincount(b, minlength=7)
    assert (counts >= k).all()
    # the top bracket is heavily oversampled, so it is down-weighted
    assert strat.loc[b == 6, "weight"].max() < 0.5
    np.testing.assert_allclose(strat["weight"].sum(), n, rtol=1e-9)
    # weighted bracket shares agree with a plain random sample (independent seed)
    srs = personas.generate(200_000, 99)["earnings"]
    want = np.bincount(np.searchsorted(edges, srs, side="right"), minlength=7) / srs.size
    got = np.bincount(b, weights=strat["weight"], minlength=7) / n
    se = np.sqrt(want * (1 - want) / 30_000) + np.sqrt(want * (1 - want) / srs.size)
    assert (np.abs(got - want) < 4 * se + 1e-4).all(), (got, want)
    # a weighted mean is unbiased too
    w_mean = np.average(strat["earnings"].clip(upper=1e6), weights=strat["weight"])
    assert abs(w_mean / srs.clip(upper=1e6).mean() - 1) < 0.05


def test_decile_stratification():
    strat = personas.generate(5000, 3, stratify="decile", min_per_stratum=400)
    srs = personas.generate(200_000, 4)["earnings"]
    cuts = np.quantile(srs, np.arange(1, 10) / 10)
    d = np.searchsorted(cuts, strat["earnings"], side="right")
    counts = np.bincount(d, minlength=10)
    assert counts.min() >= 400
    got = np.bincount(d, weights=strat["weight"], minlength=10) / strat["weight"].sum()
    assert np.abs(got - 0.1).max() < 0.02


def test_gb2_mode_matches_reference_median():
    g = personas.generate(60_000, 2, income_mode="gb2")
    p = REFERENCE_GB2
    # B ~ Beta(nu, tau) => B/(1-B) ~ BetaPrime(nu, tau); income = mu * BP^(1/sigma)
    med = p["mu"] * stats.betaprime(p["nu"], p["tau"]).median() ** (1 / p["sigma"])
    assert abs(np.median(g["earnings"]) / med - 1) < 0.02
    assert (g["hours"] == 40).all()
    np.testing.assert_allclose(g["wage"], g["earnings"] / 40)


# --- persona text --------------------------------------------------------------------

def test_persona_text_properties(sample):
    names = csv("state_population_acs2024").set_index("state")["name"]
    sub = sample.iloc[:500]
    for _, row in sub.iterrows():
        text = row["persona"]
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
        assert 2 <= len(sentences) <= 4, text
        assert text.startswith("You are ")
        assert names[row["state"]] in text
        assert OCCUPATION_PHRASES[row["occupation"]] in text
        assert f"{row['age']}-year-old" in text
        assert " I " not in f" {text} "
        assert personas.render_persona(row) == text


def test_persona_text_depends_only_on_attributes(sample):
    row = sample.iloc[0].to_dict()
    row["id"] = 999_999
    assert personas.render_persona(row) == sample["persona"].iloc[0]
    other = dict(row, state="WY")
    assert "Wyoming" in personas.render_persona(other)
    assert personas.render_persona(other) != sample["persona"].iloc[0]
    frame = personas.render_personas(sample.iloc[:50])
    assert frame.tolist() == sample["persona"].iloc[:50].tolist()


# --- CLI -------------------------------------------------------------------------------

def test_cli_sample_writes_parquet(tmp_path):
    out = tmp_path / "p.parquet"
    rc = main(["personas", "sample", "--n", "500", "--seed", "4", "-o", str(out),
               "--state", "CA", "--age-min", "25", "--age-max", "54"])
    assert rc == 0
    got = pd.read_parquet(out)
    want = personas.generate(500, 4, state="CA", age_range=(25, 54))
    assert len(got) == 500
    assert (got["state"].astype(str) == "CA").all()
    assert got["persona"].tolist() == want["persona"].tolist()
    np.testing.assert_allclose(got["earnings"], want["earnings"])


@pytest.mark.parametrize("argv", [
    ["personas", "sample", "--n", "0", "-o", "{tmp}/x.parquet"],
    ["personas", "sample", "--n", "10", "-o", "{tmp}/x.parquet", "--state", "QQ"],
    ["personas", "sample", "--n", "10", "-o", "{tmp}/x.parquet", "--age-min", "60",
     "--age-max", "30"],
    ["personas", "sample", "--n", "10", "-o", "{tmp}/missing/dir/x.parquet"],
    ["personas", "sample", "--n", "10", "-o", "{tmp}/x.parquet", "--stratify", "foo"],
    ["personas", "sample", "--n", "ten", "-o", "{tmp}/x.parquet"],
])
def test_cli_bad_input_exits_2_with_one_line(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("econsim: error:"), err


def test_cli_validate_small(capsys):
    rc = main(["personas", "validate", "--n", "20000", "--seed", "1"])
    out = capsys.readouterr().out
    assert "checks passed" in out
    assert rc == 0
