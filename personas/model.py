"""The calibrated joint model of U.S. workers, built once from the packaged tables.

Every number used by the sampler is derived here from ``personas/data/*.csv``; the
modelling choices are documented in ``docs/personas.md``.  The pieces:

* ``(sex, age)``: ACS 2024 population by sex and single year of age (5-year bins split
  evenly; 16-19 from the 16+ row) times the CPS 2024 employment-population ratio of
  the matching CPS age group and sex: the distribution of *employed* people.
* ``state``: ACS 2024 16+ population shares, independent of the rest.
* ``occupation`` and ``education``: a Gaussian copula per sex.  The occupation
  marginal is CPS 2024 Table 9 (employed by occupation and sex), the education marginal
  CPS 2024 Table 7 (employed 25+ by education and sex); occupations are ordered by the
  OEWS median wage and education by level, and the two latent normals have correlation
  :data:`RHO_OCC_EDU`, so each marginal is exact and the pairing is plausible.  Young
  workers have their education capped by age (:func:`education_cap`).
* ``hours``: usual full- or part-time status with CPS Table 8 shares by sex, varied by
  age with the Table 22 pattern; hours within status from the Table 19 bands.
* ``earnings``: the full-time-equivalent annual wage ``W`` (OEWS concept: hourly x
  2,080) follows the OEWS May 2025 percentiles of the occupation: piecewise linear in
  (normal score, log wage) between p10..p90, the p10-p25 lognormal slope below p10 and a
  Pareto tail above p90 whose index is the SOI 2023 Pareto index above $200k.  Sex and
  education move a worker's position *within* the occupation distribution (CPS men /
  women median ratio per occupation; BLS earnings ratios by education, damped by
  :data:`EDU_EARNINGS_ELASTICITY`), and the result is mapped back through the mixture
  CDF so that the occupation percentiles stay those of OEWS.  Annual earnings are
  ``W * hours / 40``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri
from scipy.stats import multivariate_normal

from personas._tables import load_table

SEXES = ("male", "female")
EDUCATION = ("less_than_hs", "hs", "some_college", "associate", "bachelors", "advanced")
EDUCATION_LABELS = {
    "less_than_hs": "less than a high-school diploma",
    "hs": "a high-school diploma",
    "some_college": "some college but no degree",
    "associate": "an associate degree",
    "bachelors": "a bachelor's degree",
    "advanced": "a graduate degree",
}
#: CPS Table 7 row names for our education codes (non-overlapping rows).
_CPS_EDU = {
    "less_than_hs": "less_than_hs",
    "hs": "hs_no_college",
    "some_college": "some_college_no_degree",
    "associate": "associate",
    "bachelors": "bachelors_only",
    "advanced": "advanced_degree",
}
#: BLS "Education pays" 2019 rows for our codes; "advanced" uses the master's row.
_BLS_EDU = {
    "less_than_hs": "less_than_high_school",
    "hs": "high_school",
    "some_college": "some_college_no_degree",
    "associate": "associate",
    "bachelors": "bachelors",
    "advanced": "masters",
}

#: Correlation of the latent occupation-rank and education normals (assumption, see docs).
RHO_OCC_EDU = 0.40
#: Share of the BLS log earnings gap by education applied *within* an occupation; the rest
#: comes from education sorting into occupations via the copula (tuned so the overall
#: gradient matches BLS, see docs).
EDU_EARNINGS_ELASTICITY = 0.65
#: Federal minimum wage x 2,080 hours: floor of the full-time-equivalent annual wage.
MIN_FTE_WAGE = 7.25 * 2080
#: Start of the Pareto top tail (the lowest SOI threshold): above max(p90, this) wages
#: are Pareto; between an occupation's p90 and this they continue lognormally.
PARETO_THRESHOLD = 200_000.0
#: Earnings threshold at which the model's Pareto index (maximum likelihood, on annual
#: earnings) is calibrated to the SOI index: $500k, where wage tails are past the
#: occupations' lognormal bodies (see docs).
TAIL_THRESHOLD = 500_000.0
#: Highest age generated (the ACS 85+ bin is spread over 85..89).
MAX_AGE = 89
MIN_AGE = 16
PCTS = (0.10, 0.25, 0.50, 0.75, 0.90)
_Z = ndtri(np.array(PCTS))

#: Hours bands (inclusive integer hours) from CPS 2024 Table 19.
PT_BANDS = (("1 to 4 hours", 1, 4), ("5 to 14 hours", 5, 14), ("15 to 29 hours", 15, 29),
            ("30 to 34 hours", 30, 34))
FT_BANDS = (("35 to 39 hours", 35, 39), ("40 hours", 40, 40), ("41 to 48 hours", 41, 48),
            ("49 to 59 hours", 49, 59), ("60 hours and over", 60, 70))
#: Table 22 age groups and the ages they cover.
_T22_AGES = {"16 to 19": (16, 19), "20 to 24": (20, 24), "25 to 54": (25, 54),
             "55+": (55, MAX_AGE)}


def education_cap(age: np.ndarray) -> np.ndarray:
    """Highest education index attainable at ``age`` (assumption, see docs)."""
    age = np.asarray(age)
    cap = np.full(age.shape, len(EDUCATION) - 1, dtype=np.int8)
    cap[age < 24] = 4  # bachelor's at most before 24
    cap[age < 22] = 3  # associate at most before 22
    cap[age < 20] = 2  # some college at most before 20
    cap[age < 18] = 0  # still in high school
    return cap


@dataclass(frozen=True)
class Calibration:
    ages: np.ndarray              # (A,) single years 16..89
    worker_mass: np.ndarray       # (2, A) employed people (thousands-ish) by sex, age
    states: tuple[str, ...]
    state_names: dict[str, str]
    state_p: np.ndarray           # (51,)
    occ_codes: tuple[str, ...]    # 22 SOC major codes, CPS order
    occ_names: tuple[str, ...]    # CPS group names
    occ_rank: np.ndarray          # occupation indices ordered by OEWS median wage
    occ_p_by_sex: np.ndarray      # (2, 22) P(occ | sex)
    edu_p_by_sex: np.ndarray      # (2, 6) P(edu | sex), employed 25+
    log_knots: np.ndarray         # (22, 5) log OEWS p10..p90
    pareto_alpha: float           # Pareto index of the top tail (above PARETO_THRESHOLD)
    wage_dists: tuple             # (22,) WageDist
    shift: np.ndarray             # (22, 2, 6) log shift by occupation, sex, education
    mix_p: np.ndarray             # (22, 2, 6) P(sex, edu | occ) in the population
    pt_scale: np.ndarray          # (2,) factor on the Table 22 part-time share
    pt_share_t22: dict            # (sex, group) -> share 1-34 hours
    pt_band_p: np.ndarray
    ft_band_p: np.ndarray


#: CPS 2024 Table 3 age groups (the finest non-overlapping ones): (first age, last age,
#: Table 3 ``age_group``); 75+ runs to :data:`MAX_AGE`.
CPS_AGE_GROUPS = ((16, 17, "16 to 17"), (18, 19, "18 to 19"), (20, 24, "20 to 24"),
                  (25, 34, "25 to 34"), (35, 44, "35 to 44"), (45, 54, "45 to 54"),
                  (55, 64, "55 to 64"), (65, 69, "65 to 69"), (70, 74, "70 to 74"),
                  (75, MAX_AGE, "75+"))


def acs_population_by_age() -> tuple[np.ndarray, np.ndarray]:
    """ACS 2024 resident population by sex and single year of age 16..89.

    Returns ``(ages, per_year)`` with ``per_year`` of shape (2, A), persons: the S0101
    5-year bins split evenly over their ages, 16-19 from the derived 16-19 row (split
    evenly) and the 85+ bin spread over 85..89.
    """
    pop1 = load_table("population_age_sex_acs2024")
    pop5 = load_table("population_5yr_age_sex_acs2024")
    ages = np.arange(MIN_AGE, MAX_AGE + 1)
    out = np.zeros((2, ages.size))
    for si, sex in enumerate(SEXES):
        p5 = pop5[pop5.sex == sex].set_index("age_group")["population"]
        p1 = pop1[pop1.sex == sex].set_index("age_group")["population"]
        per_year = np.zeros(ages.size)
        per_year[(ages >= 16) & (ages <= 19)] = p1["16-19"] / 4.0
        for lo in range(20, 85, 5):
            per_year[(ages >= lo) & (ages <= lo + 4)] = p5[f"{lo}-{lo + 4}"] / 5.0
        per_year[ages >= 85] = p5["85+"] / (MAX_AGE - 84)
        out[si] = per_year
    return ages, out


def _age_table() -> tuple[np.ndarray, np.ndarray]:
    lf = load_table("labor_force_by_age_sex_cps2024").set_index(["age_group", "sex"])
    ages, per_year = acs_population_by_age()
    mass = np.zeros((2, ages.size))

    def rate(group: str, sex: str) -> float:
        return float(lf.loc[(group, sex), "emp_pop_ratio_pct"]) / 100.0

    for si, sex in enumerate(SEXES):
        r = np.zeros(ages.size)
        for lo, hi, grp in CPS_AGE_GROUPS:
            r[(ages >= lo) & (ages <= hi)] = rate(grp, sex)
        mass[si] = per_year[si] * r
    return ages, mass


def _bvn_rect(t1: np.ndarray, t2: np.ndarray, rho: float) -> np.ndarray:
    """P(z1 in [t1_i, t1_i+1), z2 in [t2_j, t2_j+1)) for a standard BVN with corr rho."""
    a = np.clip(t1, -9.0, 9.0)
    b = np.clip(t2, -9.0, 9.0)
    grid = np.array([[x, y] for x in a for y in b])
    mvn = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]])
    c = mvn.cdf(grid).reshape(a.size, b.size)
    c[0, :] = 0.0
    c[:, 0] = 0.0
    c[-1, :] = ndtr(b)
    c[:, -1] = ndtr(a)
    c[0, :] = 0.0
    c[:, 0] = 0.0
    rect = c[1:, 1:] - c[:-1, 1:] - c[1:, :-1] + c[:-1, :-1]
    return np.clip(rect, 0.0, None)


def thresholds(p: np.ndarray) -> np.ndarray:
    """Normal thresholds (len+1, with +-inf) cutting N(0,1) into masses ``p``."""
    c = np.concatenate([[0.0], np.cumsum(p)])
    c[-1] = 1.0
    return ndtri(c)


@lru_cache(maxsize=1)
def calibration() -> Calibration:
    """Build (once) the calibrated model from the packaged tables."""
    ages, mass = _age_table()

    st = load_table("state_population_acs2024")
    states = tuple(st["state"])
    state_p = st["population_16plus_acs2024"].to_numpy(float)
    state_p = state_p / state_p.sum()

    occ = load_table("occupation_by_sex_cps2024")
    occ = occ[occ.soc_major != "00"].reset_index(drop=True)
    oews = load_table("occupation_wages_oews_may2025").set_index("soc_major")
    occ_codes = tuple(occ["soc_major"])
    occ_p = np.vstack([occ["employed_men_k"].to_numpy(float),
                       occ["employed_women_k"].to_numpy(float)])
    occ_p = occ_p / occ_p.sum(axis=1, keepdims=True)
    cols = ["annual_p10", "annual_p25", "annual_median", "annual_p75", "annual_p90"]
    knots = oews.loc[list(occ_codes), cols].to_numpy(float)
    log_knots = np.log(knots)
    occ_rank = np.argsort(oews.loc[list(occ_codes), "annual_median"].to_numpy(), kind="stable")

    edu = load_table("education_by_sex_cps2024").set_index(["sex", "education"])
    edu_p = np.array([[edu.loc[(s, _CPS_EDU[e]), "employed_k"] for e in EDUCATION]
                      for s in SEXES], dtype=float)
    edu_p = edu_p / edu_p.sum(axis=1, keepdims=True)

    par = load_table("pareto_top_agi_soi_ty2023").set_index("agi_threshold")

    # Position shifts within an occupation (log dollars; only differences matter).
    sex_ratio = (occ["ftws_median_weekly_men"] / occ["ftws_median_weekly_women"]).to_numpy(float)
    bls = load_table("earnings_by_education_bls").set_index("education")["median_weekly_usd"]
    edu_log = np.log(np.array([bls[_BLS_EDU[e]] for e in EDUCATION], dtype=float)
                     / float(bls["high_school"]))
    shift = np.zeros((len(occ_codes), 2, len(EDUCATION)))
    shift[:, 0, :] += 0.5 * np.log(sex_ratio)[:, None]
    shift[:, 1, :] -= 0.5 * np.log(sex_ratio)[:, None]
    shift += EDU_EARNINGS_ELASTICITY * edu_log[None, None, :]

    # Population mixture P(sex, edu | occ) implied by the copula and the age caps.
    sex_p = mass.sum(axis=1) / mass.sum()
    caps = education_cap(ages)
    mix = np.zeros((len(occ_codes), 2, len(EDUCATION)))
    for si in range(2):
        order = occ_rank
        t_occ = thresholds(occ_p[si, order])
        t_edu = thresholds(edu_p[si])
        rect = _bvn_rect(t_occ, t_edu, RHO_OCC_EDU)           # (22 ranked, 6)
        joint_raw = np.zeros_like(rect)
        joint_raw[order] = rect                                # back to CPS order
        cap_p = np.array([mass[si, caps == c].sum() for c in range(len(EDUCATION))])
        cap_p = cap_p / cap_p.sum()
        joint = np.zeros_like(joint_raw)
        for c, pc in enumerate(cap_p):
            if pc == 0:
                continue
            capped = joint_raw.copy()
            capped[:, c] += capped[:, c + 1:].sum(axis=1)
            capped[:, c + 1:] = 0.0
            joint += pc * capped
        mix[:, si, :] = sex_p[si] * joint
    mix = mix / mix.sum(axis=(1, 2), keepdims=True)

    # Hours: part-time share by sex (Table 8) with the Table 22 age pattern.
    hw = load_table("hours_worked_cps2024")
    t22 = hw[(hw.bls_table == "cpsaat22") & (hw.measure == "share worked 1-34 hours (%)")]
    pt_t22 = {}
    for _, row in t22.iterrows():
        grp = row["universe"].replace("nonag persons at work, age ", "")
        if grp in _T22_AGES:
            pt_t22[(row["sex"], grp)] = float(row["value"]) / 100.0
    t8 = hw[(hw.bls_table == "cpsaat08") & (hw.measure == "part-time workers (thousands)")]
    t8 = t8.set_index("sex")["percent"] / 100.0
    pt_scale = np.zeros(2)
    for si, sex in enumerate(SEXES):
        base = _pt_base(ages, sex, pt_t22)
        pt_scale[si] = t8[sex] / float((mass[si] * base).sum() / mass[si].sum())
    t19 = hw[hw.bls_table == "cpsaat19"].set_index("measure")["value"]
    pt_band_p = np.array([t19[b[0]] for b in PT_BANDS], dtype=float)
    ft_band_p = np.array([t19[b[0]] for b in FT_BANDS], dtype=float)

    # Hours distribution by sex (for the tail calibration below).
    hours_p = np.zeros((2, 71))
    for si, sex in enumerate(SEXES):
        pt_share = float((mass[si] * np.clip(_pt_base(ages, sex, pt_t22) * pt_scale[si], 0, 1)
                          ).sum() / mass[si].sum())
        for share, bands, bp in ((pt_share, PT_BANDS, pt_band_p / pt_band_p.sum()),
                                 (1 - pt_share, FT_BANDS, ft_band_p / ft_band_p.sum())):
            for (_, lo, hi), pb in zip(bands, bp, strict=True):
                hours_p[si, lo:hi + 1] += share * pb / (hi - lo + 1)
    soi_a = float(par.loc[int(TAIL_THRESHOLD), "pareto_a_implied"])
    pareto_alpha = _calibrate_alpha(log_knots, occ_p, sex_p, hours_p, soi_a, TAIL_THRESHOLD)

    return Calibration(
        ages=ages, worker_mass=mass, states=states,
        state_names=dict(zip(st["state"], st["name"], strict=True)), state_p=state_p,
        occ_codes=occ_codes, occ_names=tuple(occ["occupation_group"]), occ_rank=occ_rank,
        occ_p_by_sex=occ_p, edu_p_by_sex=edu_p, log_knots=log_knots,
        pareto_alpha=pareto_alpha,
        wage_dists=tuple(WageDist.build(lk, np.log(PARETO_THRESHOLD), pareto_alpha)
                         for lk in log_knots),
        shift=shift, mix_p=mix, pt_scale=pt_scale,
        pt_share_t22=pt_t22, pt_band_p=pt_band_p / pt_band_p.sum(),
        ft_band_p=ft_band_p / ft_band_p.sum(),
    )


def _calibrate_alpha(log_knots: np.ndarray, occ_p: np.ndarray, sex_p: np.ndarray,
                     hours_p: np.ndarray, target: float, threshold: float) -> float:
    """Pareto index of the wage tail such that annual earnings (wage x hours / 40) above
    ``threshold`` have the maximum-likelihood Pareto index ``target`` (SOI).

    The MLE above T is P(E > T) / E[log(E / T); E > T] and
    E[log(E / T); E > T] = integral over log e > log T of P(E > e) d(log e); both are
    computed by numerical integration over occupations and hours.
    """
    from scipy.optimize import brentq

    log_t = np.log(threshold)
    log_start = np.log(PARETO_THRESHOLD)
    p_oh = np.einsum("s,so,sh->oh", sex_p, occ_p, hours_p)          # (22, 71)
    h = np.arange(hours_p.shape[1])
    ok = h > 0
    pieces = []  # (weight, S_body or None, I_body, x, L, sf_top)
    for o, lk in enumerate(log_knots):
        d = WageDist.build(lk, log_start, 2.0)                          # alpha unused here
        L = d.lk[-1]
        for hh in h[ok]:
            w = p_oh[o, hh]
            if w <= 0:
                continue
            x = log_t + np.log(40.0 / hh)
            if x >= L:
                pieces.append((w, None, 0.0, x, L, d.sf_top))
            else:
                grid = np.linspace(x, L, 401)
                _, sf = d.cdf_sf(grid)
                body = float(np.sum((sf[1:] + sf[:-1]) * 0.5 * np.diff(grid)))
                pieces.append((w, float(sf[0]), body, x, L, d.sf_top))
    arr = np.array([(w, np.nan if s0 is None else s0, ib, x, L, top)
                    for w, s0, ib, x, L, top in pieces])
    w, s0, ib, x, L, top = arr.T
    tail = np.isnan(s0)

    def mle(alpha: float) -> float:
        s_ = np.where(tail, top * np.exp(-alpha * (x - L)), s0)
        i_ = np.where(tail, s_ / alpha, ib + top / alpha)
        return float((w * s_).sum() / (w * i_).sum())

    return float(brentq(lambda a: mle(a) - target, 1.01, 10.0, xtol=1e-6))


def _pt_base(ages: np.ndarray, sex: str, pt_t22: dict) -> np.ndarray:
    out = np.zeros(ages.size)
    for grp, (lo, hi) in _T22_AGES.items():
        out[(ages >= lo) & (ages <= hi)] = pt_t22[(sex, grp)]
    return out


def part_time_prob(cal: Calibration, sex_idx: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(usually part time | sex, age)."""
    p = np.zeros(sex_idx.size)
    for si, sex in enumerate(SEXES):
        m = sex_idx == si
        p[m] = _pt_base(cal.ages, sex, cal.pt_share_t22)[age[m] - MIN_AGE] * cal.pt_scale[si]
    return np.clip(p, 0.0, 1.0)


# --- the within-occupation wage distribution ----------------------------------------

@dataclass(frozen=True)
class WageDist:
    """Full-time-equivalent log wage of one occupation as a function of a normal score.

    ``log w`` is piecewise linear in ``z`` through the knots ``(zk, lk)``: the OEWS
    p10..p90 and, where p90 is below the Pareto threshold, a lognormal continuation
    with the p75-p90 slope up to the threshold; below p10 the p10-p25 slope continues
    (lognormal lower tail); above the last knot the tail is Pareto with index ``alpha``.
    """

    zk: np.ndarray
    lk: np.ndarray
    alpha: float

    @classmethod
    def build(cls, log_knots: np.ndarray, log_threshold: float, alpha: float) -> WageDist:
        zk, lk = list(_Z), list(log_knots)
        if log_threshold > lk[-1]:
            slope = (_Z[-1] - _Z[-2]) / (lk[-1] - lk[-2])
            zk.append(_Z[-1] + (log_threshold - lk[-1]) * slope)
            lk.append(log_threshold)
        return cls(np.array(zk), np.array(lk), float(alpha))

    @property
    def sf_top(self) -> float:
        return float(ndtr(-self.zk[-1]))

    def from_z(self, z: np.ndarray) -> np.ndarray:
        zk, lk = self.zk, self.lk
        x = np.interp(z, zk, lk)
        low = z < zk[0]
        x[low] = lk[0] + (z[low] - zk[0]) * (lk[1] - lk[0]) / (zk[1] - zk[0])
        hi = z > zk[-1]
        x[hi] = lk[-1] + np.log(self.sf_top / ndtr(-z[hi])) / self.alpha
        return x

    def cdf_sf(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zk, lk = self.zk, self.lk
        z = np.interp(x, lk, zk)
        low = x < lk[0]
        z[low] = zk[0] + (x[low] - lk[0]) * (zk[1] - zk[0]) / (lk[1] - lk[0])
        cdf = ndtr(z)
        sf = ndtr(-z)
        hi = x > lk[-1]
        sf[hi] = self.sf_top * np.exp(-self.alpha * (x[hi] - lk[-1]))
        cdf[hi] = 1.0 - sf[hi]
        return cdf, sf

    def quantile(self, cdf: np.ndarray, sf: np.ndarray) -> np.ndarray:
        """Log wage at probability ``cdf`` (``sf`` = 1 - cdf, given for precision)."""
        out = np.empty(cdf.size)
        top = self.sf_top
        hi = sf < top
        out[hi] = self.lk[-1] + np.log(top / sf[hi]) / self.alpha
        out[~hi] = self.from_z(ndtri(np.clip(cdf[~hi], 1e-300, 1.0)))
        return out


def occupation_quantile(occ_index: int, p: np.ndarray) -> np.ndarray:
    """Full-time-equivalent annual wage at probabilities ``p`` in one occupation."""
    cal = calibration()
    p = np.atleast_1d(np.asarray(p, dtype=float))
    x = cal.wage_dists[occ_index].quantile(p, 1.0 - p)
    return np.maximum(np.exp(x), MIN_FTE_WAGE)


def sample_fte_wage(rng: np.random.Generator, occ_idx: np.ndarray, sex_idx: np.ndarray,
                    edu_idx: np.ndarray) -> np.ndarray:
    """Full-time-equivalent annual wage (hourly x 2,080) for each worker.

    A worker's latent position ``log w + shift(sex, education)`` is mapped through the
    occupation's population mixture CDF and back through the occupation's quantile
    function, so the occupation's wage distribution stays exactly the OEWS-calibrated
    one while men and more educated workers sit higher within it.
    """
    cal = calibration()
    n = occ_idx.size
    z = rng.standard_normal(n)
    out = np.empty(n)
    for o, dist in enumerate(cal.wage_dists):
        m = np.flatnonzero(occ_idx == o)
        if m.size == 0:
            continue
        s = dist.from_z(z[m]) + cal.shift[o, sex_idx[m], edu_idx[m]]
        cdf = np.zeros(m.size)
        sf = np.zeros(m.size)
        w = cal.mix_p[o]
        for si, ei in zip(*np.nonzero(w > 0), strict=True):
            c, f = dist.cdf_sf(s - cal.shift[o, si, ei])
            cdf += w[si, ei] * c
            sf += w[si, ei] * f
        out[m] = dist.quantile(cdf, sf)
    return np.maximum(np.exp(out), MIN_FTE_WAGE)


def population_frame() -> pd.DataFrame:
    """The (sex, age) worker distribution as a tidy frame (for docs and validation)."""
    cal = calibration()
    rows = [(SEXES[s], int(a), cal.worker_mass[s, i]) for s in range(2)
            for i, a in enumerate(cal.ages)]
    return pd.DataFrame(rows, columns=["sex", "age", "workers"])
