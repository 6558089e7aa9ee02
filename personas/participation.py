"""The working-age population, employed or not, and its employment targets.

``personas.generate(..., participation=True)`` draws the civilian noninstitutional
population (employed or not) instead of employed workers, and gives every person an
*employment target*: the CPS 2024 employment-population ratio of the person's cell,
age band x sex x education.  This module holds the pieces, all pure functions of the
packaged tables (``personas/data/``; see ``docs/personas.md``, "The working-age
population and employment targets"):

* :func:`population_mass`: persons (thousands) by sex and single year of age 16..89.
  The CPS 2024 Table 3 civilian noninstitutional population of each age group
  (``civ_noninst_pop_thousands``, groups :data:`personas.model.CPS_AGE_GROUPS`) is
  spread over the group's single years in proportion to the ACS 2024 S0101 population
  by single year of age that the worker model uses (5-year bins split evenly; 85+
  spread over 85..89), so the group totals are CPS's and the shape within a group is
  the generator's.
* :func:`population_education_p`: P(education | sex) of the population aged 25+, CPS
  2024 Table 7 (``civ_noninst_pop_25plus_k``), with the generator's education cap by
  age (:func:`personas.model.education_cap`) applied on top.
* :func:`expected_cell_mass`: the *expected* joint mass (thousands) of age band x sex x
  education implied by the two pieces above: the model's population, not a sample.
* :func:`rake_logit`: raking on the logit scale.  ``p(a, s, e) = logistic(alpha[a, s] +
  beta[e, s])`` with ``alpha`` and ``beta`` solved by Newton's method on the expected
  mass so that (i) every age band x sex mean of ``p`` is the Table 3
  ``emp_pop_ratio_pct`` and (ii) every education x sex mean of ``p`` over ages 25+ is
  Table 7 ``employed_k / civ_noninst_pop_25plus_k``.
* :func:`employment_targets` and :func:`participation_cells`: a person's target and
  cell id; :func:`cell_labels` names the cells; :func:`targets_table` lists every
  margin, data vs model.

Units: rates are fractions in (0, 1) (employed persons / civilian noninstitutional
persons); masses are thousands of persons.  Table 3 is "Employment status of the
civilian noninstitutional population by age, sex, and race", Table 7 "Employment
status of the civilian noninstitutional population 25 years and over by educational
attainment, sex, race, and Hispanic or Latino ethnicity" (BLS, CPS annual averages
2024).

Table 7 covers *all* ages 25 and over, 65+ included, so the education margin is applied
where it is published: the raking runs on the whole 16..89 population, the age bands
65-69, 70-74 and 75+ included (they take up the low employment of the old through their
own ``alpha``), and a person's target does not depend on the age range drawn.  The two
sets of margins must imply the same number of employed people aged 25+; the published
figures differ by about 0.02 % (rounding of the Table 3 ratios to 0.1 pp), so the Table
7 rates of each sex are multiplied by one reconciliation factor (``k_s``, about 1 ±
0.0002, :func:`education_targets`) that makes them agree on the model's mass.  Bands
under 25 (16-17, 18-19, 20-24) are outside the education margin: their ``alpha`` is
solved, given the ``beta`` of the 25+ fit, so that the band's mean is its Table 3 ratio
(the education offsets are carried over to them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from personas._tables import load_table
from personas.generator import PersonaInputError
from personas.model import (
    _CPS_EDU,
    CPS_AGE_GROUPS,
    EDUCATION,
    MAX_AGE,
    MIN_AGE,
    SEXES,
    acs_population_by_age,
    education_cap,
)

#: Ages drawn by ``generate(participation=True)`` when no ``age_range`` is given: the
#: conventional working-age span 18-64 (16-17 are mostly at school, 65+ mostly retired).
DEFAULT_AGE_RANGE = (18, 64)
#: Labels of the age bands of the cells (the CPS Table 3 groups).
AGE_BANDS = tuple(f"{lo}-{hi}" if hi < MAX_AGE else f"{lo}+" for lo, hi, _ in CPS_AGE_GROUPS)
#: First age of the education margin (CPS Table 7 is the population 25 and over).
EDU_MARGIN_MIN_AGE = 25
#: Number of cells: age bands x sexes x education levels.
N_CELLS = len(AGE_BANDS) * len(SEXES) * len(EDUCATION)
#: Convergence of the raking: largest error of a margin (a rate) accepted.
RAKE_TOL = 1e-9
_BAND_LO = np.array([lo for lo, _, _ in CPS_AGE_GROUPS])
_EDU_BANDS = np.array([lo >= EDU_MARGIN_MIN_AGE for lo, _, _ in CPS_AGE_GROUPS])


# --- the population ------------------------------------------------------------------

@lru_cache(maxsize=1)
def _population_mass() -> np.ndarray:
    lf = load_table("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    ages, acs = acs_population_by_age()
    mass = np.zeros((len(SEXES), ages.size))
    for si, sex in enumerate(SEXES):
        for lo, hi, grp in CPS_AGE_GROUPS:
            m = (ages >= lo) & (ages <= hi)
            shape = acs[si, m]
            mass[si, m] = float(lf.loc[(grp, sex), "civ_noninst_pop_thousands"]) * shape / shape.sum()
    mass.flags.writeable = False
    return mass


def population_mass() -> np.ndarray:
    """Civilian noninstitutional population (thousands) by sex (rows: male, female) and
    single year of age 16..89 (columns), shape (2, 74): CPS 2024 Table 3 group totals
    spread within each group by the ACS 2024 single-year shape (see the module
    docstring).  A copy the caller may modify."""
    return _population_mass().copy()


@lru_cache(maxsize=1)
def _population_education_p() -> np.ndarray:
    edu = load_table("education_by_sex_cps2024").set_index(["sex", "education"])
    p = np.array([[edu.loc[(s, _CPS_EDU[e]), "civ_noninst_pop_25plus_k"] for e in EDUCATION]
                  for s in SEXES], dtype=float)
    p = p / p.sum(axis=1, keepdims=True)
    p.flags.writeable = False
    return p


def population_education_p() -> np.ndarray:
    """P(education | sex) of the civilian noninstitutional population aged 25+, CPS 2024
    Table 7 (shape (2, 6), rows male, female; the six non-overlapping levels of
    :data:`personas.model.EDUCATION`).  A copy."""
    return _population_education_p().copy()


def _capped(p: np.ndarray, cap: int) -> np.ndarray:
    out = p.copy()
    out[cap] = p[cap:].sum()
    out[cap + 1:] = 0.0
    return out


@lru_cache(maxsize=1)
def _expected_cell_mass() -> np.ndarray:
    mass = _population_mass()
    edu_p = _population_education_p()
    ages = np.arange(MIN_AGE, MAX_AGE + 1)
    caps = education_cap(ages)
    band = age_band_index(ages)
    out = np.zeros((len(AGE_BANDS), len(SEXES), len(EDUCATION)))
    for si in range(len(SEXES)):
        for i in range(ages.size):
            out[band[i], si] += mass[si, i] * _capped(edu_p[si], int(caps[i]))
    out.flags.writeable = False
    return out


def expected_cell_mass() -> np.ndarray:
    """Expected population (thousands) of each cell, shape (10 age bands, 2 sexes, 6
    education levels): :func:`population_mass` times :func:`population_education_p`
    capped by age, summed over the ages of each band.  This is the mass the generator
    samples from (before an age range is applied), not a sample.  A copy."""
    return _expected_cell_mass().copy()


# --- the targets by margin ------------------------------------------------------------

def age_sex_targets() -> np.ndarray:
    """Employment-population ratio by age band and sex, CPS 2024 Table 3
    ``emp_pop_ratio_pct`` / 100 (fraction), shape (10, 2)."""
    lf = load_table("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    return np.array([[float(lf.loc[(grp, s), "emp_pop_ratio_pct"]) / 100.0 for s in SEXES]
                     for _, _, grp in CPS_AGE_GROUPS])


def education_targets() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The education margin, ages 25+: ``(published, factor, target)``.

    ``published`` (6, 2): CPS 2024 Table 7 ``employed_k / civ_noninst_pop_25plus_k`` by
    education and sex (fraction).  ``factor`` (2,): the per-sex reconciliation factor
    ``k_s`` = (employed 25+ implied by the Table 3 ratios on the model's mass) /
    (employed 25+ implied by the Table 7 rates on the same mass).  ``target`` =
    ``published * factor``: the rates the raking matches exactly.
    """
    edu = load_table("education_by_sex_cps2024").set_index(["sex", "education"])
    pub = np.array([[edu.loc[(s, _CPS_EDU[e]), "employed_k"]
                     / edu.loc[(s, _CPS_EDU[e]), "civ_noninst_pop_25plus_k"] for s in SEXES]
                    for e in EDUCATION], dtype=float)
    m = _expected_cell_mass()[_EDU_BANDS]                      # (bands 25+, 2, 6)
    by_age = (m.sum(axis=2) * age_sex_targets()[_EDU_BANDS]).sum(axis=0)   # (2,)
    by_edu = (m.sum(axis=0) * pub.T).sum(axis=1)                           # (2,)
    factor = by_age / by_edu
    return pub, factor, pub * factor[None, :]


# --- the raking ------------------------------------------------------------------------

@dataclass(frozen=True)
class RakeResult:
    """Solution of :func:`rake_logit` for one sex."""

    alpha: np.ndarray       # (R,) row (age band) effects, logit scale
    beta: np.ndarray        # (C,) column (education) effects, logit scale; beta[ref] = 0
    p: np.ndarray           # (R, C) rates logistic(alpha + beta)
    row_error: np.ndarray   # (R,) expected row mean minus target
    col_error: np.ndarray   # (C,) expected column mean (margin rows) minus target
    iterations: int


def _weighted_mean(mass: np.ndarray, p: np.ndarray, axis: int) -> np.ndarray:
    return (mass * p).sum(axis=axis) / mass.sum(axis=axis)


def rake_logit(mass: np.ndarray, row_target: np.ndarray, col_target: np.ndarray,
               col_rows: np.ndarray, *, ref: int = 1, tol: float = RAKE_TOL,
               max_iter: int = 200) -> RakeResult:
    """Raking on the logit scale, deterministic.

    ``mass`` (R, C): expected persons by row (age band) and column (education) for one
    sex.  ``row_target`` (R,): every row's mass-weighted mean rate; ``col_target`` (C,):
    every column's mass-weighted mean rate over the rows flagged in ``col_rows`` (R,
    bool; ages 25+).  Finds ``p = logistic(alpha[r] + beta[c])`` with both sets of
    margins reproduced (``beta[ref] = 0`` fixes the one free constant):

    1. the rows of ``col_rows`` and all columns: Newton's method on the convex function
       sum m log(1 + e^eta) - sum_r alpha_r M_r T_r - sum_c beta_c M_c T_c (its gradient
       is the vector of margin errors, its Hessian X'WX), with step halving, from the
       logits of the targets;
    2. every other row: its ``alpha`` alone, by Newton's method on the row equation
       (monotone), with the ``beta`` of step 1.

    The margins must be consistent (step 1's row and column margins imply the same
    total); every target in (0, 1) and every margin with positive mass.  Converges to
    ``tol`` on every margin (rates) or raises ``RuntimeError``.
    """
    mass = np.asarray(mass, dtype=float)
    row_target = np.asarray(row_target, dtype=float)
    col_target = np.asarray(col_target, dtype=float)
    col_rows = np.asarray(col_rows, dtype=bool)
    n_r, n_c = mass.shape
    if row_target.shape != (n_r,) or col_target.shape != (n_c,) or col_rows.shape != (n_r,):
        raise ValueError("rake_logit: targets do not match the mass table")
    if not (np.all((row_target > 0) & (row_target < 1))
            and np.all((col_target > 0) & (col_target < 1))):
        raise ValueError("rake_logit: targets must lie in (0, 1)")
    sub = mass[col_rows]
    if (mass.sum(axis=1) <= 0).any() or (sub.sum(axis=0) <= 0).any():
        raise ValueError("rake_logit: a margin has no mass")
    rows = np.flatnonzero(col_rows)
    k_r = rows.size
    free_c = np.array([c for c in range(n_c) if c != ref])
    m_r = sub.sum(axis=1)
    m_c = sub.sum(axis=0)
    t_r = m_r * row_target[rows]          # target employed by row
    t_c = m_c * col_target                # target employed by column
    alpha = np.zeros(n_r)
    beta = np.zeros(n_c)
    alpha[rows] = logit(row_target[rows])
    beta[free_c] = logit(col_target[free_c]) - logit(col_target[ref])

    def objective(a, b):
        eta = a[:, None] + b[None, :]
        return float((sub * np.logaddexp(0.0, eta)).sum() - a @ t_r - b @ t_c)

    a, b = alpha[rows].copy(), beta.copy()
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        p = expit(a[:, None] + b[None, :])
        g = np.concatenate([(sub * p).sum(axis=1) - t_r, ((sub * p).sum(axis=0) - t_c)[free_c]])
        err = max(np.max(np.abs(g[:k_r]) / m_r), np.max(np.abs(g[k_r:]) / m_c[free_c]))
        if err < tol * 1e-3:
            break
        w = sub * p * (1.0 - p)
        h = np.zeros((k_r + free_c.size, k_r + free_c.size))
        h[:k_r, :k_r] = np.diag(w.sum(axis=1))
        h[k_r:, k_r:] = np.diag(w.sum(axis=0)[free_c])
        h[:k_r, k_r:] = w[:, free_c]
        h[k_r:, :k_r] = w[:, free_c].T
        step = np.linalg.solve(h, g)
        f0 = objective(a, b)
        t = 1.0
        while True:
            a1 = a - t * step[:k_r]
            b1 = b.copy()
            b1[free_c] -= t * step[k_r:]
            if objective(a1, b1) <= f0 + 1e-15 * abs(f0) or t < 1e-8:
                break
            t *= 0.5
        a, b = a1, b1
    alpha[rows] = a
    beta = b
    # rows outside the column margin: one monotone equation each
    for r in np.flatnonzero(~col_rows):
        m = mass[r]
        target = m.sum() * row_target[r]
        x = logit(row_target[r]) - float(np.average(beta, weights=np.where(m > 0, m, 0)))
        for _ in range(max_iter):
            p = expit(x + beta)
            f = float((m * p).sum() - target)
            if abs(f) / m.sum() < tol * 1e-3:
                break
            x -= f / max(float((m * p * (1 - p)).sum()), 1e-300)
        alpha[r] = x
    p = expit(alpha[:, None] + beta[None, :])
    row_error = _weighted_mean(mass, p, 1) - row_target
    col_error = _weighted_mean(sub, p[col_rows], 0) - col_target
    worst = max(np.max(np.abs(row_error)), np.max(np.abs(col_error)))
    if not np.isfinite(worst) or worst > tol:
        raise RuntimeError(f"rake_logit did not converge: largest margin error {worst:.2e}")
    return RakeResult(alpha, beta, p, row_error, col_error, iterations)


@dataclass(frozen=True)
class ParticipationCalibration:
    """The raked employment targets (see the module docstring)."""

    alpha: np.ndarray        # (10, 2) age band x sex, logit scale
    beta: np.ndarray         # (6, 2) education x sex, logit scale (hs = 0)
    p: np.ndarray            # (10, 2, 6) the employment target of every cell
    mass: np.ndarray         # (10, 2, 6) expected population (thousands)
    age_target: np.ndarray   # (10, 2) Table 3 ratios
    edu_published: np.ndarray  # (6, 2) Table 7 rates as published
    edu_factor: np.ndarray   # (2,) reconciliation factor k_s
    edu_target: np.ndarray   # (6, 2) the rates matched (published x k_s)
    max_error: float         # largest margin error of the raking (rates)
    iterations: tuple        # Newton iterations by sex


@lru_cache(maxsize=1)
def calibration() -> ParticipationCalibration:
    """Build (once) the raked targets from the packaged tables."""
    mass = _expected_cell_mass()
    age_t = age_sex_targets()
    pub, factor, edu_t = education_targets()
    alpha = np.zeros((len(AGE_BANDS), len(SEXES)))
    beta = np.zeros((len(EDUCATION), len(SEXES)))
    p = np.zeros(mass.shape)
    worst, its = 0.0, []
    for si in range(len(SEXES)):
        res = rake_logit(mass[:, si, :], age_t[:, si], edu_t[:, si], _EDU_BANDS,
                         ref=EDUCATION.index("hs"))
        alpha[:, si], beta[:, si], p[:, si, :] = res.alpha, res.beta, res.p
        worst = max(worst, float(np.abs(res.row_error).max()), float(np.abs(res.col_error).max()))
        its.append(res.iterations)
    for arr in (alpha, beta, p):
        arr.flags.writeable = False
    return ParticipationCalibration(alpha, beta, p, mass, age_t, pub, factor, edu_t, worst,
                                    tuple(its))


# --- per person ------------------------------------------------------------------------

def age_band_index(age) -> np.ndarray:
    """Index of the CPS age band (0 = 16-17, ..., 9 = 75+) of each age (16..89)."""
    return np.searchsorted(_BAND_LO, np.asarray(age), side="right") - 1


def _check(age, sex_idx, edu_idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        a = np.asarray(age)
        s = np.asarray(sex_idx)
        e = np.asarray(edu_idx)
    except (TypeError, ValueError):
        raise PersonaInputError("age, sex and education must be integer arrays") from None
    if not (a.shape == s.shape == e.shape):
        raise PersonaInputError(
            f"age, sex and education differ in shape ({a.shape}, {s.shape}, {e.shape})")
    out = []
    for name, x, lo, hi in (("age", a, MIN_AGE, MAX_AGE), ("sex index", s, 0, len(SEXES) - 1),
                            ("education index", e, 0, len(EDUCATION) - 1)):
        if x.dtype.kind == "f" and x.size and np.isfinite(x).all() and (x == np.rint(x)).all():
            x = x.astype(np.int64)  # integer-valued floats (a frame read back from CSV)
        if x.dtype.kind not in "iu":
            raise PersonaInputError(f"{name} must be integers, got dtype {x.dtype}")
        if x.size and (x.min() < lo or x.max() > hi):
            raise PersonaInputError(f"{name} must lie in {lo}..{hi}, got {x.min()}..{x.max()}")
        out.append(x.astype(np.int64))
    return out[0], out[1], out[2]


def participation_cells(age, sex_idx, edu_idx) -> np.ndarray:
    """Cell id (int16, 0..119) of each person: ``(band * 2 + sex) * 6 + education``,
    with ``band`` the CPS age band of :data:`AGE_BANDS`, ``sex`` 0 male / 1 female and
    ``education`` the index in :data:`personas.model.EDUCATION`.  Names:
    :func:`cell_labels`."""
    a, s, e = _check(age, sex_idx, edu_idx)
    band = age_band_index(a)
    return ((band * len(SEXES) + s) * len(EDUCATION) + e).astype(np.int16)


def cell_labels() -> list[str]:
    """Names of the :data:`N_CELLS` cells in id order, e.g. ``"25-34 female bachelors"``."""
    return [f"{b} {s} {e}" for b in AGE_BANDS for s in SEXES for e in EDUCATION]


def cell_targets() -> np.ndarray:
    """The employment target of every cell in id order (float64, :data:`N_CELLS`)."""
    return np.asarray(calibration().p).reshape(-1).copy()


def employment_targets(age, sex_idx, edu_idx) -> np.ndarray:
    """Employment target (float64 in (0, 1)) of each person: the raked CPS 2024
    employment-population ratio of its cell (age band x sex x education), i.e. the
    probability that a person of that cell is employed (employed / civilian
    noninstitutional population).  ``age`` in 16..89, ``sex_idx`` 0 male / 1 female,
    ``edu_idx`` the index in :data:`personas.model.EDUCATION`; arrays of one shape."""
    a, s, e = _check(age, sex_idx, edu_idx)
    return calibration().p[age_band_index(a), s, e].astype(np.float64)


def targets_table() -> pd.DataFrame:
    """Every margin of the raking: data vs the model's expected-mass value.

    Columns ``margin`` (``"age x sex (Table 3)"`` or ``"education x sex, 25+ (Table
    7)"``), ``sex``, ``group``, ``population_k`` (expected mass, thousands), ``data``
    (published rate), ``target`` (the rate matched: Table 3 as published, Table 7 times
    the reconciliation factor), ``model`` (mass-weighted mean of the cell targets) and
    ``error`` = model - target.  Rates are fractions.
    """
    cal = calibration()
    rows = []
    for si, s in enumerate(SEXES):
        for b, band in enumerate(AGE_BANDS):
            m = cal.mass[b, si]
            rows.append(("age x sex (Table 3)", s, band, m.sum(), cal.age_target[b, si],
                         cal.age_target[b, si], float((m * cal.p[b, si]).sum() / m.sum())))
    sub = cal.mass[_EDU_BANDS]
    for si, s in enumerate(SEXES):
        for e, edu in enumerate(EDUCATION):
            m = sub[:, si, e]
            rows.append(("education x sex, 25+ (Table 7)", s, edu, m.sum(),
                         cal.edu_published[e, si], cal.edu_target[e, si],
                         float((m * cal.p[_EDU_BANDS, si, e]).sum() / m.sum())))
    out = pd.DataFrame(rows, columns=["margin", "sex", "group", "population_k", "data",
                                      "target", "model"])
    out["error"] = out["model"] - out["target"]
    return out


def implied_rates(age_range: tuple[int, int] = DEFAULT_AGE_RANGE) -> pd.DataFrame:
    """Expected employment rate by sex and education of the population aged within
    ``age_range`` (inclusive), and overall (``education == "all"``): the model's
    implication, e.g. the 25-64 rates by education, which no source table gives."""
    cal = calibration()
    ages = np.arange(MIN_AGE, MAX_AGE + 1)
    keep = (ages >= age_range[0]) & (ages <= age_range[1])
    mass = _population_mass()
    edu_p = _population_education_p()
    caps = education_cap(ages)
    band = age_band_index(ages)
    rows = []
    for si, s in enumerate(SEXES):
        num = np.zeros(len(EDUCATION))
        den = np.zeros(len(EDUCATION))
        for i in np.flatnonzero(keep):
            w = mass[si, i] * _capped(edu_p[si], int(caps[i]))
            num += w * cal.p[band[i], si]
            den += w
        for e, edu in enumerate(EDUCATION):
            rows.append((s, edu, den[e], num[e] / den[e] if den[e] > 0 else np.nan))
        rows.append((s, "all", den.sum(), num.sum() / den.sum()))
    return pd.DataFrame(rows, columns=["sex", "education", "population_k", "rate"])
