"""Validation of a generated sample against every calibrated source marginal.

:func:`validation_table` draws a sample and returns one row per compared quantity with
the model value, the target recomputed *directly from the source CSVs* (not from the
model's internal tables), the error, the tolerance and pass/fail.  Like is compared
with like:

* sex and age: the *employed* distribution implied by ACS 2024 population x CPS 2024
  employment-population ratio for the same age group and sex;
* state: ACS 2024 16+ population shares;
* education: workers aged 25+ by sex against CPS Table 7 employed 25+;
* occupation: CPS Table 9 employed shares (overall and by sex);
* hours: usual part-time share by sex (CPS Table 8) and the band distribution within
  part-time (1-34 h) and full-time (35+ h) workers (CPS Table 19);
* earnings: the full-time-equivalent annual wage ``wage * 40`` (= hourly x 2,080, the
  OEWS concept) p10..p90 by occupation against OEWS May 2025, and overall after
  reweighting the sample to the OEWS job mix against OEWS all occupations;
* top tail: the Pareto index (maximum likelihood) of annual earnings above $500k
  (calibrated) and $1M (check) against the SOI 2023 index, a = b / (b - 1) with
  b = mean AGI above the threshold / threshold, computed from the SOI returns-by-AGI
  table;
* the men / women ratio of median weekly earnings of full-time workers (CPS Table 39)
  and the education earnings ratios to high school of full-time workers 25+ (BLS);
* households (when the frame has the household columns), against the CPS tax-unit file
  of Tax-Calculator 6.8.5 (``households_cps.csv.gz``; earners weighted as people by the
  2024 unit weight, tax units counted once by unit weight / earners in the unit, see
  :mod:`personas.households`):

  - *matched* rows (``households: ...``): filing status and children (0, 1, 2, 3+) by
    age band, children by earnings band, and the spouses of joint filers (share with
    wages, median and mean spouse wages), against the source *at the sample's matching
    cells*: the expected value of the draw, sum over cells of the sample's workers in
    the cell x the cell's weighted donor distribution.  They check the matching itself;
    tolerance: the share / ratio tolerance, at least four binomial (or mean, or
    order-statistic) standard errors.  Spouse wages are summarised by the share of
    joint filers whose spouse has wages and the median and mean wages of those
    spouses (the median over all joint filers sits at the edge of the mass at zero).
  - *as is* rows (``households vs CPS earners: ...``): filing status by age band and of
    tax units counted once (sum of weight / unit_earners) against the donors as they
    are.  Personas have fewer low annual earnings than the CPS, whose annual wages
    include part-year work (below $10,000: about 2 % of personas, 12 % of CPS earners),
    and higher earners are more often married, so the shares differ by up to about 4
    percentage points (joint filers under 35); tolerance 6 percentage points plus four
    standard errors, not widened with N (the gap is systematic).
  - *SOI* rows: filing status of tax units counted once, those with wages (worker plus
    spouse) of at least $20,000, against IRS SOI TY2023 Table 1.2, returns with AGI of
    $20,000 or more by filing status (``irs_soi_returns_by_filing_status_agi_ty2022_2023``;
    SOI does not cross wages with filing status).  Universes differ: SOI counts returns
    filed, with every kind of income (returns of retirees without wages included; a
    couple filing separately is two returns), AGI in 2023 dollars; the model counts the
    tax units of workers by wages in 2024 dollars.  The AGI floor drops most of the
    dependants' own returns and part-year filers: over all returns SOI has 34.0 % joint
    filers against 40.4 % of the CPS units with an earner and about 43 % in the model,
    at $20,000 or more 40.5 %, 48.0 % and 44 %.  Tolerance 5 percentage points (counting
    a working couple twice, as workers rather than tax units, would move the joint
    share by about 11 points).

* the working-age population and its employment targets (``participation``; a second
  sample, ``generate(min(n, 1,000,000), seed, participation=True, age_range=(16,
  89))``, all ages so that the 25+ universe of CPS Table 7 is covered; see
  :mod:`personas.participation`):

  - *sample* rows (``participation: ...``): the population shares by sex and age group
    against CPS 2024 Table 3 (civilian noninstitutional population), education of the
    25+ population by sex against CPS Table 7, and the weighted mean of
    ``employment_target`` by age group x sex against the Table 3
    ``emp_pop_ratio_pct`` and by education x sex (ages 25+) against the Table 7
    ``employed_k / civ_noninst_pop_25plus_k``.  The target is a function of the cell,
    so the sample mean of a group differs from the target only through the sample's
    education mix within the group: tolerance four standard errors of that mean
    (sqrt(sum w^2 (p - mean)^2) / sum w), at least 1e-6; the education rows add the
    reconciliation of Table 7 with Table 3 (at most 0.02 pp, below).  The share rows
    use the share tolerance.
  - *expected-mass* rows (``participation raking: ...``): the mass-weighted mean of the
    cell targets over the model's expected population (not a sample) against every
    margin, tolerance 1e-6 (the raking converges to 1e-9): Table 3 as published, Table
    7 times the per-sex reconciliation factor recomputed here (employed 25+ by the
    Table 3 ratios over employed 25+ by the Table 7 rates, on the Table 3 population
    with the Table 7 education shares), which must itself lie within 0.1 % of 1; and
    the model's expected population by age group x sex and by education x sex (25+)
    against Table 3 and Table 7 (relative, 1e-9).

Tolerances are stated at N = 100,000 (shares 1 percentage point, percentiles and
ratios 5%) and widened by sqrt(100,000 / N) for smaller samples.  Rows estimated from
few observations use at least a sampling allowance: four standard errors for the
percentiles of an occupation (order-statistic interval; the estimate of the s.e. is
itself noisy) and three, a / sqrt(k), for the Pareto MLE on k observations.  The education earnings ratios
get twice the ratio tolerance: their source is 2019 and "advanced" is proxied by the
master's degree figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from personas._tables import load_table

REFERENCE_N = 100_000
SHARE_TOL = 0.01
REL_TOL = 0.05
#: Tolerance of household shares against the source as is (systematic, see above).
HOUSEHOLD_AS_IS_TOL = 0.06
#: Tolerance of filing status shares against IRS SOI (different universes).
SOI_FILING_TOL = 0.05
#: Returns (SOI: AGI) and model tax units (wages) from this amount up are compared.
SOI_AGI_FLOOR = 20_000.0
#: Tolerance of the expected-mass raking margins (rates; the raking converges to 1e-9).
RAKE_CHECK_TOL = 1e-6
#: Largest accepted |reconciliation factor - 1| between Tables 3 and 7 (employed 25+).
RECONCILE_TOL = 1e-3
#: Ages of the participation sample of the validation (all, so Table 7's 25+ is covered).
PARTICIPATION_AGES = (16, 89)
#: Largest participation sample drawn by the validation (its tolerances follow its size).
PARTICIPATION_MAX_N = 1_000_000
#: CPS Table 3 groups of the participation rows: label, Table 3 row, first and last age.
_P_AGE_GROUPS = (("16-17", "16 to 17", 16, 17), ("18-19", "18 to 19", 18, 19),
                 ("20-24", "20 to 24", 20, 24), ("25-34", "25 to 34", 25, 34),
                 ("35-44", "35 to 44", 35, 44), ("45-54", "45 to 54", 45, 54),
                 ("55-64", "55 to 64", 55, 64), ("65-69", "65 to 69", 65, 69),
                 ("70-74", "70 to 74", 70, 74), ("75+", "75+", 75, 200))
#: Age and earnings bands of the household rows (lower edges).
HH_AGE_BANDS = ((16, "16-24"), (25, "25-34"), (35, "35-44"), (45, "45-54"), (55, "55-64"),
                (65, "65+"))
HH_EARNINGS_BANDS = ((0, "under $20k"), (20_000, "$20k-$40k"), (40_000, "$40k-$60k"),
                     (60_000, "$60k-$100k"), (100_000, "$100k-$150k"), (150_000, "$150k+"))
_FS_NAMES = ("single", "joint", "separate", "head of household")
_KIDS = ("0 children", "1 child", "2 children", "3+ children")

_AGE_GROUPS = {  # ACS group -> (CPS groups, age lo, age hi)
    "16-19": (("16 to 19",), 16, 19),
    "20-24": (("20 to 24",), 20, 24),
    "25-34": (("25 to 34",), 25, 34),
    "35-44": (("35 to 44",), 35, 44),
    "45-54": (("45 to 54",), 45, 54),
    "55-64": (("55 to 64",), 55, 64),
    "65-74": (("65 to 69", "70 to 74"), 65, 74),
    "75+": (("75+",), 75, 200),
}
_EDU_ROWS = {"less_than_hs": "less_than_hs", "hs": "hs_no_college",
             "some_college": "some_college_no_degree", "associate": "associate",
             "bachelors": "bachelors_only", "advanced": "advanced_degree"}
_BLS_ROWS = {"less_than_hs": "less_than_high_school", "some_college": "some_college_no_degree",
             "associate": "associate", "bachelors": "bachelors", "advanced": "masters"}
_PCT_COLS = {"p10": "annual_p10", "p25": "annual_p25", "p50": "annual_median",
             "p75": "annual_p75", "p90": "annual_p90"}


def employed_by_age_sex() -> pd.DataFrame:
    """Employed people implied by ACS 2024 population x CPS 2024 employment ratios."""
    pop = load_table("population_age_sex_acs2024").set_index(["age_group", "sex"])["population"]
    lf = load_table("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    rows = []
    for grp, (cps, _, _) in _AGE_GROUPS.items():
        for sex in ("male", "female"):
            ratio = (sum(lf.loc[(g, sex), "employed_thousands"] for g in cps)
                     / sum(lf.loc[(g, sex), "civ_noninst_pop_thousands"] for g in cps))
            rows.append((grp, sex, pop[(grp, sex)] * ratio))
    return pd.DataFrame(rows, columns=["age_group", "sex", "employed"])


def soi_pareto_a(threshold: float = 200_000.0) -> float:
    """Pareto index above ``threshold`` from SOI 2023 returns by AGI: a = b / (b - 1)."""
    soi = load_table("irs_soi_ty2023_returns_by_agi")
    soi = soi[soi.agi_lower.notna() & (soi.agi_lower >= threshold)]
    b = soi.agi_amount_usd.sum() / soi.n_returns.sum() / threshold
    return float(b / (b - 1.0))


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    c = np.cumsum(ws) - 0.5 * ws
    return np.interp(np.asarray(q) * ws.sum(), c, xs)


def _share_rows(rows, check, model: pd.Series, target: pd.Series, source: str, tol: float):
    for key in target.index:
        m = float(model.get(key, 0.0))
        t = float(target[key])
        rows.append((check, str(key), m, t, m - t, "abs", tol, source))


def _rel_row(rows, check, item, model, target, source, tol):
    rows.append((check, item, float(model), float(target), float(model) / float(target) - 1.0,
                 "rel", tol, source))


def _quantile_se(x: np.ndarray, p: float) -> float:
    """Relative standard error of the sample p-quantile (order-statistic interval)."""
    d = 2.0 * np.sqrt(p * (1 - p) / max(x.size, 1))  # a +-2 s.e. window, then halved twice
    lo, hi = np.quantile(x, [max(p - d, 0.0), min(p + d, 1.0)])
    mid = np.quantile(x, p)
    return float((hi - lo) / 4.0 / mid) if mid > 0 else np.inf


def validation_table(n: int = REFERENCE_N, seed: int = 0, *, frame: pd.DataFrame | None = None,
                     share_tol: float = SHARE_TOL, rel_tol: float = REL_TOL,
                     participation: bool = True,
                     participation_frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Sample ``n`` personas (or use ``frame``) and compare with the sources.

    Returns a DataFrame with columns ``check, item, model, target, error, error_kind,
    tolerance, passed, source``; ``error`` is model - target for shares (``abs``) and
    model / target - 1 for percentiles and ratios (``rel``).  Tolerances are
    ``share_tol`` and ``rel_tol`` at N = 100,000, widened by sqrt(100,000 / N) below.
    The frame must be an unweighted, unfiltered census-mode sample of workers.

    ``participation``: add the rows of the working-age population and its employment
    targets (see the module docstring), from ``participation_frame`` when given (a
    ``generate(..., participation=True)`` frame; weights are used) or else from
    ``generate(N, seed, participation=True, age_range=(16, 89))`` with N the size of
    the workers' sample (at most :data:`PARTICIPATION_MAX_N`); ``False`` leaves them
    out.
    """
    from personas.generator import generate

    if frame is None:
        frame = generate(n, seed)
    if "employment_target" in frame.columns:
        raise ValueError("frame is a participation population: pass it as "
                         "participation_frame (frame is the workers' sample)")
    n = len(frame)
    scale = max(1.0, float(np.sqrt(REFERENCE_N / n)))
    st, rt = share_tol * scale, rel_tol * scale
    rows: list[tuple] = []
    sex = frame["sex"].astype(str)
    age = frame["age"].to_numpy()

    # sex and age of workers
    emp = employed_by_age_sex()
    tgt = emp.groupby("sex")["employed"].sum()
    _share_rows(rows, "sex", sex.value_counts(normalize=True), tgt / tgt.sum(),
                "ACS 2024 S0101 x CPS 2024 Table 3 employment-population ratio", st)
    tgt = emp.groupby("age_group", sort=False)["employed"].sum()
    grp = pd.Series(pd.cut(age, [15] + [v[2] for v in _AGE_GROUPS.values()],
                           labels=list(_AGE_GROUPS)), dtype=object)
    _share_rows(rows, "age group", grp.value_counts(normalize=True), tgt / tgt.sum(),
                "ACS 2024 S0101 x CPS 2024 Table 3 employment-population ratio", st)

    # state
    stp = load_table("state_population_acs2024").set_index("state")["share_16plus_acs2024"]
    _share_rows(rows, "state", frame["state"].astype(str).value_counts(normalize=True),
                stp / stp.sum(), "ACS 2024 S0101 16+ population by state", st)

    # education, workers 25+ by sex
    edu_t = load_table("education_by_sex_cps2024").set_index(["sex", "education"])["employed_k"]
    for s in ("male", "female"):
        t = pd.Series({k: edu_t[(s, v)] for k, v in _EDU_ROWS.items()})
        m = frame.loc[(sex == s).to_numpy() & (age >= 25), "education"].astype(str)
        tt = t / t.sum()
        tt.index = [f"{s}: {k}" for k in tt.index]
        mm = m.value_counts(normalize=True)
        mm.index = [f"{s}: {k}" for k in mm.index]
        _share_rows(rows, "education (25+)", mm, tt,
                    "CPS 2024 Table 7 employed 25+ by education and sex", st)

    # occupation
    occ = load_table("occupation_by_sex_cps2024")
    occ = occ[occ.soc_major != "00"].set_index("soc_major")
    occ_s = frame["occupation"].astype(str)
    _share_rows(rows, "occupation", occ_s.value_counts(normalize=True),
                occ["employed_total_k"] / occ["employed_total_k"].sum(),
                "CPS 2024 Table 9 employed by occupation", st)
    for s, col in (("male", "employed_men_k"), ("female", "employed_women_k")):
        mm = occ_s[(sex == s).to_numpy()].value_counts(normalize=True)
        mm.index = [f"{s}: {k}" for k in mm.index]
        tt = occ[col] / occ[col].sum()
        tt.index = [f"{s}: {k}" for k in tt.index]
        _share_rows(rows, "occupation by sex", mm, tt,
                    "CPS 2024 Table 9 employed by occupation and sex", st)

    # hours
    hw = load_table("hours_worked_cps2024")
    t8 = hw[(hw.bls_table == "cpsaat08") & (hw.measure == "part-time workers (thousands)")]
    t8 = t8.set_index("sex")["percent"] / 100.0
    hours = frame["hours"].to_numpy()
    for s in ("male", "female"):
        m = (sex == s).to_numpy()
        _share_rows(rows, "part-time share", pd.Series({s: float((hours[m] < 35).mean())}),
                    pd.Series({s: t8[s]}), "CPS 2024 Table 8 usual part time by sex", st)
    t19 = hw[(hw.bls_table == "cpsaat19") & (hw.sex == "total")].set_index("measure")["value"]
    bands = {"part time": [("1 to 4 hours", 1, 4), ("5 to 14 hours", 5, 14),
                           ("15 to 29 hours", 15, 29), ("30 to 34 hours", 30, 34)],
             "full time": [("35 to 39 hours", 35, 39), ("40 hours", 40, 40),
                           ("41 to 48 hours", 41, 48), ("49 to 59 hours", 49, 59),
                           ("60 hours and over", 60, 10_000)]}
    for status, bl in bands.items():
        sub = hours[(hours < 35) if status == "part time" else (hours >= 35)]
        t = pd.Series({b: t19[b] for b, _, _ in bl})
        mm = pd.Series({b: float(((sub >= lo) & (sub <= hi)).mean()) for b, lo, hi in bl})
        t.index = mm.index = [f"{status}: {b}" for b in t.index]
        _share_rows(rows, "hours band", mm, t / t.sum(),
                    "CPS 2024 Table 19 persons at work by hours (within 1-34 / 35+)", st)

    # earnings percentiles: full-time-equivalent annual wage, OEWS concept
    oews = load_table("occupation_wages_oews_may2025").set_index("soc_major")
    fte = frame["wage"].to_numpy() * 40.0
    src = "OEWS May 2025 annual wage percentiles (hourly x 2,080)"
    job_w = oews["employment"].drop("00")
    share_m = occ_s.value_counts(normalize=True)
    w = (job_w / job_w.sum()).reindex(occ_s).to_numpy() / share_m.reindex(occ_s).to_numpy()
    q = np.array([0.10, 0.25, 0.50, 0.75, 0.90])
    wq = _weighted_quantile(fte, w, q)
    for (name, col), v in zip(_PCT_COLS.items(), wq, strict=True):
        _rel_row(rows, "wage percentile (OEWS job mix)", f"all occupations: {name}", v,
                 oews.loc["00", col], src, rt)
    for code in occ.index:
        sub = fte[(occ_s == code).to_numpy()]
        if sub.size == 0:
            continue
        vq = np.quantile(sub, q)
        for (name, col), v, p in zip(_PCT_COLS.items(), vq, q, strict=True):
            tol = max(rt, 4.0 * _quantile_se(sub, p))
            _rel_row(rows, "wage percentile by occupation", f"{code}: {name}", v,
                     oews.loc[code, col], src, tol)

    # top tail
    earn = frame["earnings"].to_numpy()
    for thr in (500_000, 1_000_000):
        top = earn[earn > thr]
        a_hat = top.size / np.log(top / thr).sum() if top.size else np.nan
        tol = max(rt, 3.0 / np.sqrt(max(top.size, 1)))  # MLE relative s.e. = 1/sqrt(k)
        _rel_row(rows, "top tail", f"Pareto index of earnings above ${thr:,} (MLE)", a_hat,
                 soi_pareto_a(thr), f"IRS SOI 2023 Table 1.1: a = b/(b-1) above ${thr:,} AGI",
                 tol)

    # earnings ratios of full-time workers
    ft = hours >= 35
    tot = load_table("occupation_by_sex_cps2024").set_index("soc_major").loc["00"]
    weekly = earn / 52.0
    ratio = (np.median(weekly[ft & (sex == "male").to_numpy()])
             / np.median(weekly[ft & (sex == "female").to_numpy()]))
    _rel_row(rows, "earnings ratio", "men / women median weekly, full time", ratio,
             tot["ftws_median_weekly_men"] / tot["ftws_median_weekly_women"],
             "CPS 2024 Table 39 median weekly earnings, full-time wage and salary", rt)
    bls = load_table("earnings_by_education_bls").set_index("education")["median_weekly_usd"]
    edu_s = frame["education"].astype(str).to_numpy()
    base = ft & (age >= 25)
    hs_med = np.median(weekly[base & (edu_s == "hs")])
    for code, row in _BLS_ROWS.items():
        med = np.median(weekly[base & (edu_s == code)])
        # a weaker target (2019 figures; "advanced" proxied by master's): twice the tolerance
        _rel_row(rows, "earnings ratio", f"{code} / hs median weekly, full time 25+",
                 med / hs_med, bls[row] / bls["high_school"],
                 "BLS Education pays 2019 (advanced = master's)", 2.0 * rt)

    if all(c in frame.columns for c in ("filing_status", "children", "spouse_wages",
                                        "unit_earners")):
        _household_rows(rows, frame, st, rt)

    if participation or participation_frame is not None:
        if participation_frame is None:
            del frame  # the workers' rows are done (frees a generated sample first)
            participation_frame = generate(min(n, PARTICIPATION_MAX_N), seed,
                                           participation=True, age_range=PARTICIPATION_AGES)
        _participation_rows(rows, participation_frame, share_tol)
        _raking_rows(rows)

    out = pd.DataFrame(rows, columns=["check", "item", "model", "target", "error",
                                      "error_kind", "tolerance", "source"])
    out["passed"] = out["error"].abs() <= out["tolerance"]
    return out[["check", "item", "model", "target", "error", "error_kind", "tolerance",
                "passed", "source"]]


def _band(x, bands) -> np.ndarray:
    """Band index; values below the first edge (donors aged 15) join the first band."""
    edges = np.array([b[0] for b in bands[1:]], dtype=float)
    return np.searchsorted(edges, np.asarray(x, dtype=float), side="right")


def soi_filing_status_shares(tax_year: int = 2023, agi_floor: float | None = None) -> pd.Series:
    """Shares of returns by filing status (1..4), IRS SOI Table 1.2: all returns, or
    those with AGI of at least ``agi_floor`` (a lower edge of the SOI brackets)."""
    t = load_table("irs_soi_returns_by_filing_status_agi_ty2022_2023")
    t = t[t["tax_year"] == tax_year]
    if agi_floor is None:
        t = t[t["agi_bracket"] == "all returns"]
    else:
        if not (t["agi_lower"] == agi_floor).any():
            raise ValueError(f"{agi_floor} is not a lower edge of the SOI AGI brackets")
        t = t[t["agi_lower"].notna() & (t["agi_lower"] >= agi_floor)]
    n = t.groupby("filing_status")["n_returns"].sum()
    return n / n.sum()


def _group_shares(group, n_groups, cat, n_cats, w) -> np.ndarray:
    m = np.bincount(group * n_cats + cat, weights=w, minlength=n_groups * n_cats)
    m = m.reshape(n_groups, n_cats)
    return m / np.maximum(m.sum(axis=1, keepdims=True), 1e-300)


def _household_rows(rows, frame: pd.DataFrame, st: float, rt: float) -> None:
    """Household rows (see the module docstring)."""
    from personas.households import donor_pool, donor_table

    d = donor_table()
    src = "Tax-Calculator 6.8.5 CPS tax units (WT2024), at the sample's matching cells"
    src_raw = "Tax-Calculator 6.8.5 CPS tax units (WT2024), earners as is"
    age = frame["age"].to_numpy(float)
    earn = frame["earnings"].to_numpy(float)
    w = frame["weight"].to_numpy(float) if "weight" in frame.columns else np.ones(len(frame))
    fs = frame["filing_status"].to_numpy(np.int64) - 1
    kids = np.minimum(frame["children"].to_numpy(np.int64), 3)
    sp = frame["spouse_wages"].to_numpy(float)
    earners = frame["unit_earners"].to_numpy(float)
    pool = donor_pool(age, earn)
    d_pool = donor_pool(d["age"].to_numpy(), d["wages"].to_numpy())
    n_pools = int(max(pool.max(), d_pool.max())) + 1
    dw = d["unit_weight"].to_numpy(float)  # earners as people
    d_fs = d["filing_status"].to_numpy(np.int64) - 1
    d_kids = np.minimum(d["children"].to_numpy(np.int64), 3)
    n_eff = w.sum() ** 2 / (w**2).sum()  # effective sample size (weighted samples)

    def tol_share(p, n_group):
        se = np.sqrt(max(p * (1 - p), 1e-12) / max(n_group, 1.0))
        return max(st, 4.0 * se)

    def matched(check, group, labels, cat, d_cat, names):
        n_g, n_c = len(labels), len(names)
        p_pool = _group_shares(d_pool, n_pools, d_cat, n_c, dw)            # P(cat | pool)
        cnt = np.bincount(group * n_pools + pool, weights=w, minlength=n_g * n_pools)
        cnt = cnt.reshape(n_g, n_pools)
        target = cnt @ p_pool / np.maximum(cnt.sum(axis=1, keepdims=True), 1e-300)
        model = _group_shares(group, n_g, cat, n_c, w)
        size = np.bincount(group, weights=w, minlength=n_g) * n_eff / w.sum()
        for g, gl in enumerate(labels):
            if size[g] <= 0:
                continue
            for c, cl in enumerate(names):
                rows.append((check, f"{gl}: {cl}", float(model[g, c]), float(target[g, c]),
                             float(model[g, c] - target[g, c]), "abs",
                             tol_share(target[g, c], size[g]), src))

    ab = _band(age, HH_AGE_BANDS)
    ab_labels = [b[1] for b in HH_AGE_BANDS]
    eb = _band(earn, HH_EARNINGS_BANDS)
    eb_labels = [b[1] for b in HH_EARNINGS_BANDS]
    matched("households: filing status by age", ab, ab_labels, fs, d_fs, _FS_NAMES)
    matched("households: children by age", ab, ab_labels, kids, d_kids, _KIDS)
    matched("households: children by earnings", eb, eb_labels, kids, d_kids, _KIDS)

    # spouses of joint filers: donors reweighted to the sample's pool totals
    pool_w = np.bincount(d_pool, weights=dw, minlength=n_pools)
    pool_m = np.bincount(pool, weights=w, minlength=n_pools)
    dw_m = dw * pool_m[d_pool] / np.maximum(pool_w[d_pool], 1e-300)
    dj = d_fs == 1
    mj = fs == 1
    d_sp = d["spouse_wages"].to_numpy(float)[dj]
    m_sp, m_w = sp[mj], w[mj]
    n_j = max(float(mj.sum()), 1.0)
    share_m = float(np.average(m_sp > 0, weights=m_w)) if mj.any() else np.nan
    share_t = float(np.average(d_sp > 0, weights=dw_m[dj]))
    rows.append(("households: working spouse (joint filers)", "share with spouse wages > 0",
                 share_m, share_t, share_m - share_t, "abs", tol_share(share_t, n_j), src))
    # the wages of working spouses (the median of all joint filers sits at the edge of
    # the mass at zero, where it is unstable)
    mk, dk = m_sp > 0, d_sp > 0
    x_m, x_w = m_sp[mk], m_w[mk]
    x_d, x_dw = d_sp[dk], dw_m[dj][dk]
    item = "working spouses: {} spouse wages"
    if x_m.size:
        med_m = float(_weighted_quantile(x_m, x_w, 0.5))
        mean_m = float(np.average(x_m, weights=x_w))
        tol_med = max(rt, 4.0 * _quantile_se(x_m, 0.5))
        tol_mean = max(rt, 4.0 * float(np.std(x_m)) / np.sqrt(x_m.size) / mean_m)
    else:
        med_m = mean_m = np.nan
        tol_med = tol_mean = rt
    _rel_row(rows, "households: spouse wages (joint filers)", item.format("median"), med_m,
             float(_weighted_quantile(x_d, x_dw, 0.5)), src, tol_med)
    _rel_row(rows, "households: spouse wages (joint filers)", item.format("mean"), mean_m,
             float(np.average(x_d, weights=x_dw)), src, tol_mean)

    # as is: filing status by age band and of tax units counted once
    size = np.bincount(ab, weights=w, minlength=len(ab_labels)) * n_eff / w.sum()
    model = _group_shares(ab, len(ab_labels), fs, 4, w)
    raw = _group_shares(_band(d["age"].to_numpy(), HH_AGE_BANDS), len(ab_labels), d_fs, 4, dw)
    for g, gl in enumerate(ab_labels):
        if size[g] <= 0:
            continue
        for c, cl in enumerate(_FS_NAMES):
            se = np.sqrt(max(raw[g, c] * (1 - raw[g, c]), 1e-12) / size[g])
            rows.append(("households vs CPS earners: filing status by age", f"{gl}: {cl}",
                         float(model[g, c]), float(raw[g, c]), float(model[g, c] - raw[g, c]),
                         "abs", HOUSEHOLD_AS_IS_TOL + 4.0 * se, src_raw))
    units_m = np.bincount(fs, weights=w / earners, minlength=4)
    units_m = units_m / units_m.sum()
    units_d = np.bincount(d_fs, weights=d["weight"].to_numpy(float), minlength=4)
    units_d = units_d / units_d.sum()
    soi = soi_filing_status_shares(2023, SOI_AGI_FLOOR)
    floor = (earn + sp) >= SOI_AGI_FLOOR
    units_f = np.bincount(fs[floor], weights=(w / earners)[floor], minlength=4)
    units_f = units_f / max(units_f.sum(), 1e-300)
    for c, cl in enumerate(_FS_NAMES):
        se = np.sqrt(max(units_d[c] * (1 - units_d[c]), 1e-12) / n_eff)
        rows.append(("households vs CPS earners: filing status of tax units", cl,
                     float(units_m[c]), float(units_d[c]), float(units_m[c] - units_d[c]),
                     "abs", HOUSEHOLD_AS_IS_TOL + 4.0 * se,
                     "Tax-Calculator 6.8.5 CPS tax units with an earner (WT2024)"))
    for c, cl in enumerate(_FS_NAMES):
        t = float(soi[c + 1])
        rows.append(("households vs IRS SOI: filing status of tax units",
                     f"{cl}, wages (SOI: AGI) >= ${SOI_AGI_FLOOR:,.0f}", float(units_f[c]), t,
                     float(units_f[c]) - t, "abs", SOI_FILING_TOL,
                     "IRS SOI TY2023 Table 1.2, returns by filing status with AGI >= $20,000 "
                     "(universe: returns filed, all income; model: tax units of workers)"))


def participation_reconciliation() -> pd.Series:
    """Per-sex factor reconciling CPS Table 7 with Table 3 on employed people 25+,
    recomputed from the CSVs: (sum over the Table 3 groups 25+ of population x
    ``emp_pop_ratio_pct``) / (Table 3 population 25+ x sum over education of the Table 7
    population share x ``employed_k / civ_noninst_pop_25plus_k``)."""
    lf = load_table("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    ed = load_table("education_by_sex_cps2024").set_index(["sex", "education"])
    out = {}
    for s in ("male", "female"):
        groups = [g for _, g, lo, _ in _P_AGE_GROUPS if lo >= 25]
        pop = sum(float(lf.loc[(g, s), "civ_noninst_pop_thousands"]) for g in groups)
        emp = sum(float(lf.loc[(g, s), "civ_noninst_pop_thousands"])
                  * float(lf.loc[(g, s), "emp_pop_ratio_pct"]) / 100.0 for g in groups)
        p7 = np.array([ed.loc[(s, r), "civ_noninst_pop_25plus_k"] for r in _EDU_ROWS.values()],
                      dtype=float)
        e7 = np.array([ed.loc[(s, r), "employed_k"] for r in _EDU_ROWS.values()], dtype=float)
        out[s] = emp / (pop * float((p7 / p7.sum() * e7 / p7).sum()))
    return pd.Series(out)


def _participation_rows(rows, frame: pd.DataFrame, share_tol: float) -> None:
    """Rows of a participation population (see the module docstring)."""
    lf = load_table("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    ed = load_table("education_by_sex_cps2024").set_index(["sex", "education"])
    if "employment_target" not in frame.columns:
        raise ValueError("participation_frame has no employment_target column: draw it "
                         "with generate(..., participation=True)")
    w = frame["weight"].to_numpy(float) if "weight" in frame.columns else np.ones(len(frame))
    n_eff = w.sum() ** 2 / (w**2).sum()
    st = share_tol * max(1.0, float(np.sqrt(REFERENCE_N / n_eff)))
    sex = frame["sex"].astype(str).to_numpy()
    age = frame["age"].to_numpy()
    edu = frame["education"].astype(str).to_numpy()
    p = frame["employment_target"].to_numpy(float)
    src3 = "CPS 2024 Table 3 employment-population ratio (emp_pop_ratio_pct)"
    src7 = "CPS 2024 Table 7 employed_k / civ_noninst_pop_25plus_k, 25+"
    k = participation_reconciliation()

    def mean_row(check, item, m, target, source, extra=0.0):
        if not m.any():
            return
        ww, pp = w[m], p[m]
        mean = float(np.average(pp, weights=ww))
        se = float(np.sqrt((ww**2 * (pp - mean) ** 2).sum()) / ww.sum())
        rows.append((check, item, mean, float(target), mean - float(target), "abs",
                     max(4.0 * se, RAKE_CHECK_TOL) + extra, source))

    covered = [(lab, g, lo, hi) for lab, g, lo, hi in _P_AGE_GROUPS
               if ((age >= lo) & (age <= hi)).any()]
    # population shares by sex x age group (within the groups the sample covers)
    pop = pd.Series({f"{s}: {lab}": float(lf.loc[(g, s), "civ_noninst_pop_thousands"])
                     for lab, g, _, _ in covered for s in ("male", "female")})
    mm = {}
    for lab, _, lo, hi in covered:
        for s in ("male", "female"):
            mm[f"{s}: {lab}"] = float(w[(sex == s) & (age >= lo) & (age <= hi)].sum() / w.sum())
    _share_rows(rows, "participation: population by sex and age group", pd.Series(mm),
                pop / pop.sum(), "CPS 2024 Table 3 civilian noninstitutional population", st)
    for lab, g, lo, hi in covered:
        for s in ("male", "female"):
            mean_row("participation: employment target by age x sex", f"{s}: {lab}",
                     (sex == s) & (age >= lo) & (age <= hi),
                     float(lf.loc[(g, s), "emp_pop_ratio_pct"]) / 100.0, src3)
    # education margin: only where the sample covers all of Table 7's ages 25+
    if not (np.isin(np.arange(25, 90), age).all()):
        return
    for s in ("male", "female"):
        pop7 = pd.Series({f"{s}: {c}": float(ed.loc[(s, r), "civ_noninst_pop_25plus_k"])
                          for c, r in _EDU_ROWS.items()})
        m25 = (sex == s) & (age >= 25)
        mm = pd.Series({f"{s}: {c}": float(w[m25 & (edu == c)].sum() / w[m25].sum())
                        for c in _EDU_ROWS})
        _share_rows(rows, "participation: education (25+) by sex", mm, pop7 / pop7.sum(),
                    "CPS 2024 Table 7 civilian noninstitutional population 25+", st)
        for c, r in _EDU_ROWS.items():
            rate = float(ed.loc[(s, r), "employed_k"] / ed.loc[(s, r), "civ_noninst_pop_25plus_k"])
            mean_row("participation: employment target by education x sex (25+)", f"{s}: {c}",
                     m25 & (edu == c), rate, src7, extra=abs(float(k[s]) - 1.0) * rate)


def _raking_rows(rows) -> None:
    """Expected-mass rows of the raking (see the module docstring)."""
    from personas.participation import _EDU_BANDS, calibration

    cal = calibration()
    lf = load_table("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    ed = load_table("education_by_sex_cps2024").set_index(["sex", "education"])
    k = participation_reconciliation()
    for si, s in enumerate(("male", "female")):
        rows.append(("participation raking: reconciliation factor (Table 7 to Table 3)", s,
                     float(cal.edu_factor[si]), 1.0, float(cal.edu_factor[si]) - 1.0, "rel",
                     RECONCILE_TOL, "CPS 2024 Tables 3 and 7, employed 25+"))
        rows.append(("participation raking: reconciliation factor (recomputed)", s,
                     float(cal.edu_factor[si]), float(k[s]),
                     float(cal.edu_factor[si] / k[s]) - 1.0, "rel", 1e-9,
                     "CPS 2024 Tables 3 and 7, employed 25+"))
        for b, (lab, g, _, _) in enumerate(_P_AGE_GROUPS):
            m = cal.mass[b, si]
            model = float((m * cal.p[b, si]).sum() / m.sum())
            t = float(lf.loc[(g, s), "emp_pop_ratio_pct"]) / 100.0
            rows.append(("participation raking (expected mass): age x sex", f"{s}: {lab}",
                         model, t, model - t, "abs", RAKE_CHECK_TOL,
                         "CPS 2024 Table 3 emp_pop_ratio_pct"))
            pop = float(lf.loc[(g, s), "civ_noninst_pop_thousands"])
            _rel_row(rows, "participation raking: expected population by age x sex",
                     f"{s}: {lab}", m.sum(), pop, "CPS 2024 Table 3 civ_noninst_pop_thousands",
                     1e-9)
        pop25 = sum(float(lf.loc[(g, s), "civ_noninst_pop_thousands"])
                    for _, g, lo, _ in _P_AGE_GROUPS if lo >= 25)
        p7 = sum(float(ed.loc[(s, r), "civ_noninst_pop_25plus_k"]) for r in _EDU_ROWS.values())
        sub = cal.mass[_EDU_BANDS, si]
        for e, (c, r) in enumerate(_EDU_ROWS.items()):
            m = sub[:, e]
            model = float((m * cal.p[_EDU_BANDS, si, e]).sum() / m.sum())
            t = float(ed.loc[(s, r), "employed_k"] / ed.loc[(s, r), "civ_noninst_pop_25plus_k"]
                      * k[s])
            rows.append(("participation raking (expected mass): education x sex (25+)",
                         f"{s}: {c}", model, t, model - t, "abs", RAKE_CHECK_TOL,
                         "CPS 2024 Table 7 employed / population 25+, x reconciliation"))
            _rel_row(rows, "participation raking: expected population by education x sex (25+)",
                     f"{s}: {c}", m.sum(),
                     pop25 * float(ed.loc[(s, r), "civ_noninst_pop_25plus_k"]) / p7,
                     "CPS 2024 Table 3 population 25+ x Table 7 education shares", 1e-9)


def format_table(table: pd.DataFrame) -> str:
    """Human-readable rendering of :func:`validation_table` output."""
    t = table.copy()
    big = t["check"].isin(["wage percentile (OEWS job mix)", "wage percentile by occupation",
                           "households: spouse wages (joint filers)"])
    fmt_val = np.where(big, t["model"].map("{:,.0f}".format), t["model"].map("{:.4f}".format))
    fmt_tgt = np.where(big, t["target"].map("{:,.0f}".format), t["target"].map("{:.4f}".format))
    err = np.where(t["error_kind"] == "abs", (t["error"] * 100).map("{:+.2f} pp".format),
                   (t["error"] * 100).map("{:+.2f} %".format))
    tol = np.where(t["error_kind"] == "abs", (t["tolerance"] * 100).map("{:.2f} pp".format),
                   (t["tolerance"] * 100).map("{:.2f} %".format))
    tiny = t["tolerance"] * 100 < 0.005  # the exact checks (raking): scientific notation
    tol = np.where(tiny, t["tolerance"].map("{:.0e}".format), tol)
    err = np.where(tiny, t["error"].map("{:+.1e}".format), err)
    show = pd.DataFrame({"check": t["check"], "item": t["item"], "model": fmt_val,
                         "target": fmt_tgt, "error": err, "tolerance": tol,
                         "pass": np.where(t["passed"], "ok", "FAIL")})
    n_fail = int((~t["passed"]).sum())
    return (show.to_string(index=False)
            + f"\n\n{len(t) - n_fail}/{len(t)} checks passed, {n_fail} failed")
