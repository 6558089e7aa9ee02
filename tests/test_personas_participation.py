"""Tests of the working-age population and its employment targets (issue 23):
``personas.generate(..., participation=True)`` and ``personas/participation.py``.

The margins are recomputed here straight from the packaged CSVs with pandas (the
expected population mass included), not through the module's own helpers.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import personas
from personas import participation as P
from personas.generator import PersonaInputError

DATA = Path(personas.__file__).parent / "data"
SEXES = ("male", "female")
EDU = ("less_than_hs", "hs", "some_college", "associate", "bachelors", "advanced")
T7_ROWS = ("less_than_hs", "hs_no_college", "some_college_no_degree", "associate",
           "bachelors_only", "advanced_degree")
BANDS = ((16, 17, "16 to 17"), (18, 19, "18 to 19"), (20, 24, "20 to 24"),
         (25, 34, "25 to 34"), (35, 44, "35 to 44"), (45, 54, "45 to 54"),
         (55, 64, "55 to 64"), (65, 69, "65 to 69"), (70, 74, "70 to 74"), (75, 89, "75+"))


def csv(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{name}.csv")


def _cap(age: int) -> int:
    """The generator's education cap (docs/personas.md, step 4), restated."""
    return 0 if age < 18 else 2 if age < 20 else 3 if age < 22 else 4 if age < 24 else 5


@pytest.fixture(scope="module")
def expected() -> pd.DataFrame:
    """Expected population (thousands) by single age, sex and education, from the CSVs:
    CPS Table 3 group totals spread by the ACS single-year shape, Table 7 education
    shares of the 25+ population, capped by age."""
    lf = csv("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    acs1 = csv("population_age_sex_acs2024").set_index(["age_group", "sex"])["population"]
    acs5 = csv("population_5yr_age_sex_acs2024").set_index(["age_group", "sex"])["population"]
    t7 = csv("education_by_sex_cps2024").set_index(["sex", "education"])
    rows = []
    for s in SEXES:
        shape = {}
        for a in range(16, 90):
            if a <= 19:
                shape[a] = acs1[("16-19", s)] / 4
            elif a >= 85:
                shape[a] = acs5[("85+", s)] / 5
            else:
                lo = 20 + 5 * ((a - 20) // 5)
                shape[a] = acs5[(f"{lo}-{lo + 4}", s)] / 5
        share = np.array([t7.loc[(s, r), "civ_noninst_pop_25plus_k"] for r in T7_ROWS])
        share = share / share.sum()
        for lo, hi, g in BANDS:
            tot = sum(shape[a] for a in range(lo, hi + 1))
            for a in range(lo, hi + 1):
                m = lf.loc[(g, s), "civ_noninst_pop_thousands"] * shape[a] / tot
                c = _cap(a)
                e_share = share.copy()
                e_share[c] = share[c:].sum()
                e_share[c + 1:] = 0
                for e, x in enumerate(e_share):
                    rows.append((a, SEXES.index(s), e, g, m * x))
    df = pd.DataFrame(rows, columns=["age", "sex", "edu", "group", "mass"])
    df["p"] = P.employment_targets(df["age"].to_numpy(), df["sex"].to_numpy(),
                                   df["edu"].to_numpy())
    return df


def _wmean(d: pd.DataFrame) -> float:
    return float((d["mass"] * d["p"]).sum() / d["mass"].sum())


# --- the raking reproduces the margins (expected mass) --------------------------------

def test_age_sex_margins_are_table_3(expected):
    lf = csv("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    for _, _, g in BANDS:
        for si, s in enumerate(SEXES):
            d = expected[(expected.group == g) & (expected.sex == si)]
            assert d["mass"].sum() == pytest.approx(lf.loc[(g, s), "civ_noninst_pop_thousands"],
                                                    rel=1e-12)
            assert _wmean(d) == pytest.approx(lf.loc[(g, s), "emp_pop_ratio_pct"] / 100,
                                              abs=1e-9), (g, s)


def test_education_margins_are_table_7(expected):
    lf = csv("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    t7 = csv("education_by_sex_cps2024").set_index(["sex", "education"])
    old = expected[expected.age >= 25]
    for si, s in enumerate(SEXES):
        rate = np.array([t7.loc[(s, r), "employed_k"] / t7.loc[(s, r), "civ_noninst_pop_25plus_k"]
                         for r in T7_ROWS])
        d = old[old.sex == si]
        # reconciliation: employed 25+ by the Table 3 ratios / by the Table 7 rates
        emp3 = sum(lf.loc[(g, s), "civ_noninst_pop_thousands"] * lf.loc[(g, s), "emp_pop_ratio_pct"]
                   / 100 for lo, _, g in BANDS if lo >= 25)
        mass_e = d.groupby("edu")["mass"].sum().to_numpy()
        k = emp3 / float((mass_e * rate).sum())
        assert abs(k - 1) < 3e-4
        for e in range(6):
            got = _wmean(d[d.edu == e])
            assert got == pytest.approx(rate[e] * k, abs=1e-9), (s, EDU[e])
            assert abs(got - rate[e]) < 3e-4  # within 0.03 pp of Table 7 as published


def test_targets_table_and_calibration_agree_with_the_margins():
    t = P.targets_table()
    assert len(t) == 2 * 10 + 2 * 6
    assert t["error"].abs().max() < 1e-9
    assert (t["data"] - t["target"]).abs().max() < 3e-4
    cal = P.calibration()
    assert cal.max_error < P.RAKE_TOL
    assert cal.beta[EDU.index("hs")].tolist() == [0.0, 0.0]


def test_rake_logit_recovers_a_known_logit_model():
    rng = np.random.default_rng(0)
    mass = rng.uniform(1, 10, (5, 4))
    mass[0, 2:] = 0.0  # a young row with capped education
    alpha = np.array([-1.0, 0.3, 0.8, 0.1, -2.0])
    beta = np.array([-0.5, 0.0, 0.4, 1.0])
    p = 1 / (1 + np.exp(-(alpha[:, None] + beta[None, :])))
    rows = np.array([False, True, True, True, True])
    row_t = (mass * p).sum(1) / mass.sum(1)
    col_t = (mass[rows] * p[rows]).sum(0) / mass[rows].sum(0)
    res = P.rake_logit(mass, row_t, col_t, rows, ref=1)
    np.testing.assert_allclose(res.alpha, alpha, atol=1e-8)
    np.testing.assert_allclose(res.beta, beta, atol=1e-8)
    with pytest.raises(ValueError):
        P.rake_logit(mass, row_t * 0 + 1.2, col_t, rows)


# --- per person --------------------------------------------------------------------------

def test_targets_in_unit_interval_and_plausible_order():
    t = P.cell_targets().reshape(10, 2, 6)
    assert ((t > 0) & (t < 1)).all()
    for si in range(2):
        for b in range(10):
            assert t[b, si, EDU.index("bachelors")] > t[b, si, EDU.index("less_than_hs")]
            assert t[b, si, EDU.index("advanced")] > t[b, si, EDU.index("less_than_hs")]
    prime = [3, 4, 5]  # 25-34, 35-44, 45-54
    assert (t[prime, 0, :] > t[prime, 1, :]).all()  # men above women in every prime cell
    assert (t[3:7].max(axis=0) > t[8:].max(axis=0)).all()  # prime ages above 70+


def test_cells_and_labels():
    labels = P.cell_labels()
    assert len(labels) == P.N_CELLS == 120 and len(set(labels)) == 120
    c = P.participation_cells(np.array([16, 25, 64, 89]), np.array([0, 1, 0, 1]),
                              np.array([0, 4, 5, 2]))
    assert c.dtype == np.int16
    assert [labels[i] for i in c] == ["16-17 male less_than_hs", "25-34 female bachelors",
                                      "55-64 male advanced", "75+ female some_college"]
    np.testing.assert_array_equal(
        P.employment_targets(np.array([30]), np.array([1]), np.array([4])),
        P.cell_targets()[P.participation_cells(np.array([30]), np.array([1]), np.array([4]))])


@pytest.mark.parametrize("args", [
    (np.array([15]), np.array([0]), np.array([0])),
    (np.array([30]), np.array([2]), np.array([0])),
    (np.array([30]), np.array([0]), np.array([6])),
    (np.array([30.5]), np.array([0]), np.array([0])),
    (np.array([30, 31]), np.array([0]), np.array([0])),
    (np.array(["a"]), np.array([0]), np.array([0])),
])
def test_bad_person_input_is_one_line_error(args):
    with pytest.raises(PersonaInputError) as e:
        P.employment_targets(*args)
    assert "\n" not in str(e.value)


# --- the generator -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pop() -> pd.DataFrame:
    return personas.generate(60_000, 7, participation=True)


def test_frame_columns_and_defaults(pop):
    assert pop["age"].min() == 18 and pop["age"].max() == 64
    assert pop["employment_target"].dtype == np.float64
    assert pop["participation_cell"].dtype == np.int16
    assert pop["employment_target"].between(0, 1, inclusive="neither").all()
    assert "employed" not in pop.columns and "works" not in pop.columns
    np.testing.assert_allclose(pop["wage"] * pop["hours"], pop["earnings"])
    assert pop["occupation"].notna().all() and pop["hours"].between(1, 70).all()
    # the target is the cell's
    cells = pop["participation_cell"].to_numpy()
    np.testing.assert_array_equal(pop["employment_target"].to_numpy(), P.cell_targets()[cells])


def test_sample_means_match_table_3(pop):
    lf = csv("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    for lo, hi, g in BANDS[1:7]:
        for s in SEXES:
            d = pop[(pop["sex"] == s) & pop["age"].between(lo, hi)]["employment_target"]
            se = d.std() / np.sqrt(d.size)
            target = lf.loc[(g, s), "emp_pop_ratio_pct"] / 100
            assert abs(d.mean() - target) < 4 * se + 1e-9, (g, s)


def test_population_education_is_the_populations(pop):
    """Education of the 25+ population follows Table 7's population, not its employed."""
    t7 = csv("education_by_sex_cps2024").set_index(["sex", "education"])
    for s in SEXES:
        share = np.array([t7.loc[(s, r), "civ_noninst_pop_25plus_k"] for r in T7_ROWS])
        share = share / share.sum()
        d = pop[(pop["sex"] == s) & (pop["age"] >= 25)]["education"].astype(str)
        got = d.value_counts(normalize=True).reindex(list(EDU)).to_numpy()
        np.testing.assert_allclose(got, share, atol=0.015)
    # fewer graduates than among workers: the less-educated work less
    workers = personas.generate(60_000, 7)
    w25 = workers[workers["age"] >= 25]["education"].astype(str)
    p25 = pop[pop["age"] >= 25]["education"].astype(str)
    assert (p25 == "less_than_hs").mean() > (w25 == "less_than_hs").mean() + 0.01


def test_population_ages_follow_table_3():
    df = personas.generate(80_000, 2, participation=True, age_range=(16, 89))
    lf = csv("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    tot = sum(lf.loc[(g, s), "civ_noninst_pop_thousands"] for _, _, g in BANDS for s in SEXES)
    for lo, hi, g in BANDS:
        for s in SEXES:
            got = ((df["sex"] == s) & df["age"].between(lo, hi)).mean()
            assert got == pytest.approx(lf.loc[(g, s), "civ_noninst_pop_thousands"] / tot,
                                        abs=0.006), (g, s)


def test_reproducible_for_a_seed():
    a = personas.generate(3000, 9, participation=True)
    b = personas.generate(3000, 9, participation=True)
    pd.testing.assert_frame_equal(a, b)
    c = personas.generate(3000, 10, participation=True)
    assert not a["wage"].equals(c["wage"])


def _digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(",".join(df.columns).encode())
    for c in df.columns:
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
            h.update("\n".join(s.astype(str)).encode())
        else:
            h.update(str(s.dtype).encode())
            h.update(np.ascontiguousarray(s.to_numpy()).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("kwargs, digest", [
    ({}, "a336b27c0bfc5b43afad0d88fad8a725a53cf04bcf8b90fae6fe5b77e01aae30"),
    ({"state": "CA", "age_range": (25, 54)},
     "93b3411fec50ce6db6d10ca92504e858badc7e805fa7f6ef090747f51df889d1"),
    ({"stratify": "decile"}, "2a5103949e8f6a8bbb163aeadf3800560d22c19e643ef10e7efbc9083b116465"),
    ({"income_mode": "gb2"}, "7f4c86c2499fc0da9045a1d0ebde959bc950219b5cbbbd23dd24954cb51ba2a0"),
])
def test_workers_frame_is_bit_identical_to_before(kwargs, digest):
    """Whole-frame digests (every column, texts and households included; seed 11, n 3000)
    recorded with the generator before ``participation`` existed."""
    assert _digest(personas.generate(3000, 11, **kwargs)) == digest
    assert _digest(personas.generate(3000, 11, participation=False, **kwargs)) == digest


def test_texts_are_neutral_about_status(pop):
    text = pop["persona"]
    assert not text.str.contains("who works in").any()
    assert not text.str.contains("You usually work").any()
    assert not text.str.contains(" and earn about", regex=False).any()
    assert text.str.contains("; working ", regex=False).all()
    assert text.str.contains("you would earn about $", regex=False).all()
    row = pop.iloc[0]
    assert personas.render_persona(row) == row["persona"]
    assert text.iloc[0].startswith(f"You are a {row['age']}-year-old ")
    # the workers' text of the same attributes is the default one
    worker = personas.render_persona(row.drop("employment_target"))
    assert "who works in" in worker and worker != row["persona"]
    assert personas.render_persona(row, participation=False) == worker


def test_everyone_has_a_household(pop):
    assert pop["filing_status"].isin([1, 2, 3, 4]).all()
    assert (pop["unit_earners"] >= 1).all()
    assert pop["persona"].str.contains("You are (?:married|single|unmarried|a single parent)").all()


def test_stratified_participation_population():
    df = personas.generate(4000, 1, participation=True, stratify="bracket", min_per_stratum=50)
    assert df["weight"].sum() == pytest.approx(4000)
    assert "employment_target" in df.columns


@pytest.mark.parametrize("kwargs, fragment", [
    ({"participation": "yes"}, "participation must be True or False"),
    ({"participation": 1}, "participation must be True or False"),
    ({"participation": True, "age_range": (70, 10)}, "empty: people are aged"),
])
def test_bad_generate_input(kwargs, fragment):
    with pytest.raises(PersonaInputError, match=fragment) as e:
        personas.generate(10, 0, **kwargs)
    assert "\n" not in str(e.value)


def test_validation_rows():
    from personas.validate import validation_table

    t = validation_table(20_000, 1)
    part = t[t["check"].str.startswith("participation")]
    assert part["passed"].all(), part[~part["passed"]]
    checks = set(part["check"])
    assert "participation: employment target by age x sex" in checks
    assert "participation: employment target by education x sex (25+)" in checks
    raking = part[part["check"].str.startswith("participation raking (expected mass)")]
    assert len(raking) == 32 and (raking["tolerance"] == 1e-6).all()
    assert t["passed"].all()
    assert not validation_table(20_000, 1, participation=False)["check"].str.startswith(
        "participation").any()
    with pytest.raises(ValueError, match="participation_frame"):
        validation_table(frame=personas.generate(100, 0, participation=True))


@pytest.mark.slow
def test_million_is_vectorised_and_fast():
    personas.generate(10, 0, participation=True)  # the calibration, once
    start = time.perf_counter()
    df = personas.generate(1_000_000, 0, participation=True)
    elapsed = time.perf_counter() - start
    assert len(df) == 1_000_000
    assert elapsed < 30.0, elapsed  # about 4 s on 2 cores (workers: about 3.5 s)
