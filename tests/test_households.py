"""Households of the synthetic workers (``personas.households``): matching on the CPS
tax-unit file of Tax-Calculator, wiring into the generator, persona text and
``source: file`` populations.

Statistical checks draw from a population that *is* the source: donors resampled in
proportion to their weight as people (``unit_weight``).  Within an age band the draw's
expected shares then equal the donors' weighted shares exactly (matching cells never
cross age bands), so the tolerance is sampling error only: four binomial standard
errors (plus 0.1 point for the cells that pooled across an earnings edge).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pandas as pd
import pytest

import personas
from personas import households as hh
from personas.generator import _sample_core
from simulator.errors import UserError
from simulator.sim.population import HOUSEHOLD_DEFAULTS, read_population

N = 200_000
AGE_BANDS = np.array([25, 35, 45, 55, 65])           # 16-24, 25-34, ..., 65+
EARN_BANDS = np.array([20e3, 40e3, 60e3, 100e3, 150e3])


@pytest.fixture(scope="module")
def donors() -> pd.DataFrame:
    return hh.donor_table()


@pytest.fixture(scope="module")
def source_draw(donors):
    """Workers = donors resampled as people; their drawn households."""
    rng = np.random.default_rng(11)
    p = donors["unit_weight"].to_numpy() / donors["unit_weight"].sum()
    pick = rng.choice(len(donors), N, p=p)
    workers = donors.iloc[pick].reset_index(drop=True)
    drawn = hh.draw_households(workers["age"], workers["wages"], rng=rng)
    return workers, drawn


def _shares(group, cat, n_cat, w=None):
    t = pd.crosstab(group, cat, values=w, aggfunc="sum" if w is not None else None,
                    normalize="index")
    return t.reindex(columns=range(n_cat), fill_value=0.0).fillna(0.0)


def _assert_close(got: pd.DataFrame, want: pd.DataFrame, n_group: pd.Series):
    se = np.sqrt(want * (1 - want) / n_group.reindex(want.index).to_numpy()[:, None])
    diff = (got.reindex_like(want) - want).abs()
    bad = diff > 4 * se + 0.001
    assert not bad.to_numpy().any(), (got - want).round(4).to_string()


# --- the draw ---------------------------------------------------------------------------

def test_columns_dtypes_and_identities():
    rng = np.random.default_rng(0)
    age = rng.integers(16, 90, 5000)
    earn = np.exp(rng.normal(10.6, 1.0, 5000))
    out = hh.draw_households(age, earn, rng=1)
    assert list(out.columns) == list(hh.HOUSEHOLD_COLUMNS)
    assert {c: out[c].dtype for c in out} == {c: np.dtype(t) for c, t in hh.HOUSEHOLD_COLUMNS.items()}
    assert len(out) == 5000 and (out.index == np.arange(5000)).all()
    assert out["filing_status"].between(1, 4).all()
    assert out["children"].between(0, 10).all() and out["eitc_children"].between(0, 3).all()
    assert (out.loc[out["filing_status"] != 2, ["spouse_wages", "spouse_age"]] == 0).all().all()
    np.testing.assert_array_equal(out["unit_earners"], 1 + (out["spouse_wages"] > 0))
    pd.testing.assert_frame_equal(out, hh.draw_households(age, earn, rng=1))
    assert len(hh.draw_households([], [], rng=0)) == 0
    with pytest.raises(ValueError, match="length"):
        hh.draw_households([30, 40], [1.0], rng=0)


def test_filing_status_by_age_band_matches_donors(donors, source_draw):
    workers, drawn = source_draw
    band = np.searchsorted(AGE_BANDS, workers["age"], side="right")
    got = _shares(band, drawn["filing_status"].to_numpy() - 1, 4)
    d_band = np.searchsorted(AGE_BANDS, donors["age"], side="right")
    want = _shares(d_band, donors["filing_status"].to_numpy() - 1, 4, donors["unit_weight"])
    _assert_close(got, want, pd.Series(band).value_counts())


def test_children_by_earnings_band_matches_donors(donors, source_draw):
    workers, drawn = source_draw
    band = np.searchsorted(EARN_BANDS, workers["wages"], side="right")
    got = _shares(band, np.minimum(drawn["children"].to_numpy(), 3), 4)
    d_band = np.searchsorted(EARN_BANDS, donors["wages"], side="right")
    want = _shares(d_band, np.minimum(donors["children"].to_numpy(), 3), 4,
                   donors["unit_weight"])
    _assert_close(got, want, pd.Series(band).value_counts())


def test_working_spouses_follow_the_person_weights(donors, source_draw):
    """Donors are drawn as people: 70 % of joint-filing workers have a working spouse
    (the unit share, 54 %, is what drawing by unit weight / earners would give)."""
    _, drawn = source_draw
    j = drawn["filing_status"] == 2
    got = float((drawn.loc[j, "spouse_wages"] > 0).mean())
    dj = donors["filing_status"] == 2
    want = np.average(donors.loc[dj, "spouse_wages"] > 0, weights=donors.loc[dj, "unit_weight"])
    units = np.average(donors.loc[dj, "spouse_wages"] > 0, weights=donors.loc[dj, "weight"])
    assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / j.sum())
    assert 0.65 < want < 0.75 and 0.50 < units < 0.58


def test_weighted_totals_count_each_tax_unit_once(donors, source_draw):
    """Workers weighted to the source's earners: sum of w / unit_earners = tax units."""
    units = hh.unit_table()
    workers, drawn = source_draw
    w = donors["unit_weight"].sum() / N                  # each worker: that many earners
    married_units = units.loc[units["filing_status"] == 2, "weight"].sum()
    got = (w * (drawn["filing_status"] == 2) / drawn["unit_earners"]).sum()
    assert abs(got / married_units - 1) < 0.02
    assert abs((w / drawn["unit_earners"]).sum() / units["weight"].sum() - 1) < 0.01
    # the donor table's own weight counts units once too; counting workers does not
    np.testing.assert_allclose(donors["weight"].sum(), units["weight"].sum(), rtol=1e-9)
    assert (w * (drawn["filing_status"] == 2)).sum() / married_units > 1.5


def test_cells_and_collapse_rule(donors):
    np.testing.assert_array_equal(hh._pools(np.array([500, 50, 30, 200, 10, 5]), 100),
                                  [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(hh._pools(np.array([50, 500, 20]), 100), [0, 0, 0])
    cells = hh.cell_table()
    assert len(cells) == (hh.AGE_EDGES.size + 1) * (hh.EARNINGS_EDGES.size + 1)
    assert cells["pool_donors"].min() >= hh.MIN_DONORS
    for _, g in cells.groupby("age_band", sort=False):  # contiguous in earnings
        assert (np.diff(g["pool"].to_numpy()) >= 0).all()
    assert cells.groupby("pool")["age_band"].nunique().max() == 1  # never across ages
    pool = hh.donor_pool(donors["age"], donors["wages"])
    assert np.bincount(pool).min() >= hh.MIN_DONORS
    assert cells["pool"].nunique() > 200  # most cells are not collapsed


def test_million_draw_is_fast():
    rng = np.random.default_rng(3)
    age = rng.integers(16, 90, 1_000_000)
    earn = np.exp(rng.normal(10.6, 1.0, 1_000_000))
    hh.matcher()
    start = time.perf_counter()
    hh.draw_households(age, earn, rng=rng)
    assert time.perf_counter() - start < 5.0


# --- the generator -----------------------------------------------------------------------

def _digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for c in ("id", "age", "hours", "earnings", "wage", "weight"):
        h.update(np.ascontiguousarray(df[c].to_numpy(), dtype="<f8").tobytes())
    for c in ("sex", "state", "education", "occupation", "occupation_name"):
        h.update("\n".join(df[c].astype(str)).encode())
    return h.hexdigest()


@pytest.mark.parametrize("kwargs, digest", [
    ({}, "4ca2f88c902624910e3e333e7a6223d650350902a38550994b1ee97f661044d9"),
    ({"income_mode": "gb2"}, "9aad64674e6c1e9541719e3dd4556baca6b5cfd3a23b18b364da427981397a79"),
    ({"stratify": "bracket", "min_per_stratum": 50},
     "ca4f3a09e13876a38816c38956b67be688229e87bcae43dccaba05068b8d1e7b"),
])
def test_other_columns_are_unchanged_by_the_household_draw(kwargs, digest):
    """Digests recorded with the generator before households existed (seed 3, n 2000)."""
    assert _digest(personas.generate(2000, 3, **kwargs)) == digest


def test_household_draw_consumes_nothing_from_the_generator():
    a = np.random.default_rng(5)
    personas.generate(1000, rng=a)
    b = np.random.default_rng(5)
    _sample_core(b, 1000, None, (16, 89), "census")
    assert a.bit_generator.state == b.bit_generator.state


def test_generated_frame_has_households_and_persona_names_them():
    df = personas.generate(3000, 4)
    for c, t in hh.HOUSEHOLD_COLUMNS.items():
        assert df[c].dtype == np.dtype(t), c
    sentence = hh.household_phrases(df["filing_status"], df["children"], df["spouse_wages"],
                                    sentence=True)
    assert all(p.endswith(" " + s) for p, s in zip(df["persona"], sentence, strict=True))
    assert "HOUSEHOLD" not in "".join(df["persona"])
    joint = df[(df["filing_status"] == 2) & (df["spouse_wages"] > 0)].iloc[0]
    assert "You are married" in joint["persona"] and "your spouse earns about $" in joint["persona"]
    assert df["persona"].str.contains("You are single").any()
    assert df["persona"].str.contains("head of household").any()
    # the text is a function of the attributes, household included
    row = df.iloc[0].to_dict()
    assert personas.render_persona(row) == df["persona"].iloc[0]
    other = dict(row, filing_status=4, children=2, spouse_wages=0.0)
    assert personas.render_persona(other).endswith(
        "You are a single parent (head of household) of two children under 17.")
    bare = {k: row[k] for k in ("sex", "age", "state", "education", "occupation", "hours",
                                "earnings")}
    assert personas.render_persona(bare) == df["persona"].iloc[0][: -len(sentence[0]) - 1]
    with pytest.raises(ValueError, match="spouse_wages"):
        personas.render_persona(dict(bare, filing_status=1, children=0))


def test_household_phrases():
    got = hh.household_phrases([2, 1, 4, 3, 2, 4], [2, 0, 1, 0, 0, 0],
                               [48_321.0, 0, 0, 0, 0, 0])
    assert list(got) == [
        "married filing jointly, two children under 17; your spouse earns about $48,300 a year",
        "single, no children under 17",
        "a single parent (head of household) of one child under 17",
        "married filing separately, no children under 17",
        "married filing jointly, no children under 17; your spouse has no earnings",
        "head of household supporting a dependent, no children under 17",
    ]
    assert hh.household_phrases([2], [2], [48_321.0], sentence=True)[0] == (
        "You are married, with two children under 17; your spouse earns about $48,300 a year.")


def test_validation_table_has_household_rows():
    table = personas.validation_table(frame=personas.generate(20_000, 2))
    rows = table[table["check"].str.startswith("households")]
    assert rows["passed"].all(), rows[~rows["passed"]].to_string()
    assert {"households: filing status by age", "households: children by age",
            "households: children by earnings", "households: working spouse (joint filers)",
            "households: spouse wages (joint filers)",
            "households vs IRS SOI: filing status of tax units"} <= set(rows["check"])


# --- source: file ------------------------------------------------------------------------

def test_file_population_gets_household_defaults(tmp_path):
    path = tmp_path / "pop.csv"
    pd.DataFrame({"wage": [900.0, 1200.0]}).to_csv(path, index=False)
    pop = read_population(path)
    for c, (default, dtype, _, _) in HOUSEHOLD_DEFAULTS.items():
        assert pop[c].dtype == np.dtype(dtype), c
        assert (pop[c] == default).all(), c
    pd.DataFrame({"wage": [900.0, 1200.0], "filing_status": [2, 4], "children": [4, 1],
                  "spouse_wages": [30_000, 0], "spouse_age": [40, 0]}).to_csv(path, index=False)
    pop = read_population(path)
    assert pop["eitc_children"].tolist() == [3, 1]      # min(children, 3) when not given
    assert pop["unit_earners"].tolist() == [2, 1]       # 2 where the spouse earns


@pytest.mark.parametrize("column, values, row", [
    ("filing_status", [1, 5, 2], 1),
    ("filing_status", [1, 2.5, 2], 1),
    ("children", [0, -1, 2], 1),
    ("children", [0, 2, 11], 2),
    ("children", [0, "two", 1], 1),
    ("eitc_children", [4, 0, 0], 0),
    ("spouse_wages", [0, float("nan"), 0], 1),
    ("spouse_wages", [0, 0, -5], 2),
    ("spouse_age", [0, 121, 0], 1),
])
def test_file_population_bad_household_values(tmp_path, column, values, row):
    path = tmp_path / "pop.csv"
    frame = pd.DataFrame({"wage": [900.0, 1000.0, 1100.0], column: values})
    if column == "spouse_wages":
        frame["filing_status"] = 2
    frame.to_csv(path, index=False)
    with pytest.raises(UserError) as info:
        read_population(path)
    msg = str(info.value)
    assert len(msg.splitlines()) == 1
    assert msg.startswith(f"{path}: column '{column}' row {row}: expected"), msg


def test_file_population_inconsistent_spouse(tmp_path):
    path = tmp_path / "pop.csv"
    pd.DataFrame({"wage": [900.0, 1000.0], "filing_status": [2, 1],
                  "spouse_wages": [100.0, 200.0]}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"column 'spouse_wages' row 1: expected 0 unless"):
        read_population(path)
    pd.DataFrame({"wage": [900.0, 1000.0], "filing_status": [2, 2],
                  "spouse_wages": [100.0, 0.0], "unit_earners": [2, 2]}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"column 'unit_earners' row 1"):
        read_population(path)
