"""The persona generator: :func:`generate`.

All sampling is vectorised with one :class:`numpy.random.Generator`; the global numpy
RNG is never touched.  See :mod:`personas.model` for the calibrated joint model and
``docs/personas.md`` for the modelling choices and sources.  Households (filing status,
children, spouse) are matched on age and earnings from the CPS tax-unit file
(:mod:`personas.households`) with a child generator spawned from the generator after
every other draw, so the other columns do not depend on the household draw.

With ``participation=True`` the generator draws the working-age civilian
noninstitutional population, employed or not, instead of employed workers, and gives
every person an employment target (:mod:`personas.participation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from personas._tables import load_table
from personas.gb2 import sample_gb2
from personas.households import draw_households
from personas.model import (
    EDUCATION,
    FT_BANDS,
    MAX_AGE,
    MIN_AGE,
    PT_BANDS,
    RHO_OCC_EDU,
    SEXES,
    calibration,
    education_cap,
    part_time_prob,
    sample_fte_wage,
    thresholds,
)
from personas.text import render_codes

INCOME_MODES = ("census", "gb2")
STRATIFY_MODES = ("decile", "bracket")
#: Hours assumed by the GB2 mode (the reference's income is income at 40 h a week).
GB2_HOURS = 40.0
#: Largest candidate pool, as a multiple of n, drawn to fill rare strata.
_MAX_POOL_FACTOR = 60


class PersonaInputError(ValueError):
    """Bad input to the generator (one line naming what is wrong)."""


def bracket_thresholds(tax_year: int = 2024, filing_status: str = "single") -> np.ndarray:
    """Lower edges of the federal brackets above the first (taxable income, dollars)."""
    br = load_table("federal_income_tax_brackets_2023_2026")
    br = br[(br.tax_year.astype(str) == str(tax_year)) & (br.filing_status == filing_status)]
    return np.sort(br["taxable_income_over"].to_numpy(float))[1:]


@dataclass
class _Core:
    sex: np.ndarray
    age: np.ndarray
    state: np.ndarray
    occ: np.ndarray
    edu: np.ndarray
    hours: np.ndarray
    earnings: np.ndarray

    def take(self, idx: np.ndarray) -> _Core:
        return _Core(**{k: v[idx] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: list[_Core]) -> _Core:
        if len(parts) == 1:
            return parts[0]
        return _Core(**{k: np.concatenate([p.__dict__[k] for p in parts])
                        for k in parts[0].__dict__})

    def __len__(self) -> int:
        return self.age.size


def _choice(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    c = np.cumsum(p)
    c /= c[-1]
    return np.minimum(np.searchsorted(c, rng.random(n), side="right"), p.size - 1)


def _sample_core(rng: np.random.Generator, n: int, state_idx: int | None,
                 ages: tuple[int, int], income_mode: str, participation: bool = False,
                 ) -> _Core:
    cal = calibration()
    lo, hi = ages
    if participation:
        # the population, employed or not: CPS Table 3 population by age group and sex,
        # education of the 25+ population (Table 7); every other model is the workers'
        from personas.participation import population_education_p, population_mass

        mass = population_mass()
        edu_p = population_education_p()
    else:
        mass = cal.worker_mass.copy()
        edu_p = cal.edu_p_by_sex
    mass[:, (cal.ages < lo) | (cal.ages > hi)] = 0.0
    cell = _choice(rng, mass.ravel(), n)
    sex = (cell // cal.ages.size).astype(np.int8)
    age = cal.ages[cell % cal.ages.size].astype(np.int64)

    if state_idx is None:
        state = _choice(rng, cal.state_p, n).astype(np.int16)
    else:
        state = np.full(n, state_idx, dtype=np.int16)

    # Occupation and education: Gaussian copula per sex (see personas.model).
    z1 = rng.standard_normal(n)
    z2 = RHO_OCC_EDU * z1 + np.sqrt(1.0 - RHO_OCC_EDU**2) * rng.standard_normal(n)
    occ = np.empty(n, dtype=np.int16)
    edu = np.empty(n, dtype=np.int8)
    for si in range(len(SEXES)):
        m = sex == si
        t_occ = thresholds(cal.occ_p_by_sex[si, cal.occ_rank])[1:-1]
        occ[m] = cal.occ_rank[np.searchsorted(t_occ, z1[m], side="right")]
        t_edu = thresholds(edu_p[si])[1:-1]
        edu[m] = np.searchsorted(t_edu, z2[m], side="right")
    edu = np.minimum(edu, education_cap(age)).astype(np.int8)

    # Usual weekly hours.
    pt = rng.random(n) < part_time_prob(cal, sex, age)
    u_band = rng.random(n)
    u_within = rng.random(n)
    hours = np.empty(n)
    for mask, bands, p in ((pt, PT_BANDS, cal.pt_band_p), (~pt, FT_BANDS, cal.ft_band_p)):
        c = np.cumsum(p)
        b = np.minimum(np.searchsorted(c / c[-1], u_band[mask], side="right"), len(bands) - 1)
        lo_h = np.array([x[1] for x in bands], dtype=float)[b]
        hi_h = np.array([x[2] for x in bands], dtype=float)[b]
        hours[mask] = lo_h + np.floor(u_within[mask] * (hi_h - lo_h + 1.0))

    if income_mode == "census":
        fte = sample_fte_wage(rng, occ, sex, edu)
        earnings = np.rint(fte * hours / 40.0)
    else:  # gb2: the reference's income at 40 h a week, independent of the persona
        hours = np.full(n, GB2_HOURS)
        earnings = np.rint(sample_gb2(rng, n))
    earnings = np.maximum(earnings, 1.0)
    return _Core(sex, age, state, occ, edu, hours, earnings)


def _allocate(n: int, p: np.ndarray, k: int) -> np.ndarray:
    """Stratum sizes summing to n: proportional to p with at least k each (where p > 0)."""
    live = p > 0
    fixed = np.zeros(p.size, dtype=bool)
    for _ in range(p.size + 1):
        free = live & ~fixed
        rest = n - k * int((live & fixed).sum())
        share = np.where(free, p, 0.0)
        alloc = np.where(free, rest * share / max(share.sum(), 1e-300), 0.0)
        newly = free & (alloc < k)
        if not newly.any():
            break
        fixed |= newly
    alloc = np.where(live & fixed, float(k), alloc)
    base = np.floor(alloc).astype(np.int64)
    short = n - int(base.sum())
    if short > 0:
        frac = np.where(live & ~fixed, alloc - base, -1.0)
        base[np.argsort(-frac, kind="stable")[:short]] += 1
    return base


def _stratified(rng, n, k, kind, state_idx, ages, income_mode,
                participation=False) -> tuple[_Core, np.ndarray]:
    n_strata = 10 if kind == "decile" else len(bracket_thresholds()) + 1
    if k * n_strata > n:
        raise PersonaInputError(
            f"min-per-stratum {k} x {n_strata} strata exceeds n = {n}")
    first = _sample_core(rng, max(n, 20_000), state_idx, ages, income_mode, participation)
    if kind == "decile":
        edges = np.quantile(first.earnings, np.arange(1, 10) / 10.0)
    else:
        edges = bracket_thresholds()
    parts = [first]
    counts = np.bincount(np.searchsorted(edges, first.earnings, side="right"),
                         minlength=n_strata)
    total = len(first)
    limit = _MAX_POOL_FACTOR * n + 1_000_000
    while True:
        p = counts / total
        need = _allocate(n, p, k)
        need = np.maximum(need, np.where(counts == 0, k, 0))
        lack = need - counts
        if (lack <= 0).all():
            break
        if total >= limit:
            h = int(np.argmax(lack))
            raise PersonaInputError(
                f"{kind} stratum {h + 1} is too rare in this population to hold "
                f"{k} personas; lower --min-per-stratum or widen the filters")
        p_floor = np.maximum(p, 1.0 / total)
        extra = int(min(limit - total, max(10_000, 1.3 * np.max(lack / p_floor))))
        more = _sample_core(rng, extra, state_idx, ages, income_mode, participation)
        parts.append(more)
        counts += np.bincount(np.searchsorted(edges, more.earnings, side="right"),
                              minlength=n_strata)
        total += extra
    pool = _Core.concat(parts)
    stratum = np.searchsorted(edges, pool.earnings, side="right")
    p = counts / total
    need = _allocate(n, p, k)
    chosen = []
    for h in range(n_strata):
        idx = np.flatnonzero(stratum == h)[: need[h]]
        chosen.append(idx)
    sel = np.sort(np.concatenate(chosen))
    out = pool.take(sel)
    s = stratum[sel]
    weight = p[s] * n / need[s]
    return out, weight


def _check_inputs(n, state, age_range, stratify, min_per_stratum, income_mode,
                  participation=False):
    cal = calibration()
    if not isinstance(participation, (bool, np.bool_)):
        raise PersonaInputError(f"participation must be True or False, got {participation!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise PersonaInputError(f"n must be an integer, got {n!r}")
    if n <= 0:
        raise PersonaInputError(f"n must be > 0, got {n}")
    state_idx = None
    if state is not None:
        code = str(state).strip().upper()
        if code not in cal.states:
            raise PersonaInputError(
                f"unknown state {state!r}: use a 2-letter code of the 50 states or DC")
        state_idx = cal.states.index(code)
    lo, hi = MIN_AGE, MAX_AGE
    if participation and age_range is None:
        from personas.participation import DEFAULT_AGE_RANGE

        lo, hi = DEFAULT_AGE_RANGE
    if age_range is not None:
        try:
            a, b = (int(x) for x in age_range)
        except (TypeError, ValueError):
            raise PersonaInputError(
                f"age range must be two integers (min, max), got {age_range!r}") from None
        lo, hi = max(a, MIN_AGE), min(b, MAX_AGE)
        if lo > hi:
            who = "people" if participation else "workers"
            raise PersonaInputError(
                f"age range {a}-{b} is empty: {who} are aged {MIN_AGE} to {MAX_AGE}")
    if stratify is not None and stratify not in STRATIFY_MODES:
        raise PersonaInputError(
            f"unknown stratify {stratify!r}: use one of {', '.join(STRATIFY_MODES)}")
    if int(min_per_stratum) < 0:
        raise PersonaInputError(f"min-per-stratum must be >= 0, got {min_per_stratum}")
    if income_mode not in INCOME_MODES:
        raise PersonaInputError(
            f"unknown income mode {income_mode!r}: use one of {', '.join(INCOME_MODES)}")
    return state_idx, (lo, hi)


def generate(
    n: int,
    seed: int | None = None,
    *,
    state: str | None = None,
    age_range: tuple[int, int] | None = None,
    stratify: str | None = None,
    min_per_stratum: int = 0,
    income_mode: str = "census",
    participation: bool = False,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Sample ``n`` U.S. worker personas calibrated on Census/BLS/IRS tables.

    Parameters
    ----------
    n: number of personas (> 0).
    seed: seed of a fresh ``numpy.random.default_rng``; ignored when ``rng`` is given.
    state: restrict to one state (2-letter code, e.g. ``"CA"``; DC included).
    age_range: ``(min, max)`` inclusive ages (16..89; default all of them, or 18-64
        with ``participation``).
    stratify: ``"decile"`` (earnings deciles of the population) or ``"bracket"`` (2024
        single-filer federal brackets on earnings): guarantees ``min_per_stratum`` rows
        per stratum by oversampling; ``weight`` = population share / sample share.
    income_mode: ``"census"`` (occupation-based earnings) or ``"gb2"`` (the reference's
        GB2 income at 40 h a week, independent of the persona).
    participation: draw the civilian noninstitutional population, employed or not
        (ages 18-64 unless ``age_range`` is given), instead of employed workers; every
        person then also has ``employment_target`` (float64 in (0, 1), the raked CPS
        2024 employment-population ratio of the cell) and ``participation_cell``
        (int16, age band x sex x education, :func:`personas.participation.cell_labels`).
        ``occupation``, ``hours``, ``earnings`` and ``wage`` are then *potential*: the
        workers' models imputed to everyone (no selection correction), and the persona
        text is neutral about whether the person works.  There is no employed flag: the
        simulator decides who works.  ``False`` (the default) gives the workers frame,
        unchanged.
    rng: a ``numpy.random.Generator`` to use instead of ``seed``.

    Returns a DataFrame with ``id, sex, age, state, education, occupation,
    occupation_name, hours, earnings, wage, weight, [employment_target,
    participation_cell,] filing_status, children, eitc_children, spouse_age,
    spouse_wages, unit_earners, persona`` (the bracketed pair with ``participation``
    only); ``wage`` is
    ``earnings / hours`` (dollars a year per weekly hour); the household columns are
    those of :func:`personas.households.draw_households`, drawn for each worker's age
    and earnings from a generator spawned from ``rng`` after all other draws (the other
    columns are the same as without households; ``rng``'s state is not advanced by it).
    """
    state_idx, ages = _check_inputs(n, state, age_range, stratify, min_per_stratum,
                                    income_mode, participation)
    participation = bool(participation)
    n = int(n)
    if rng is None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise PersonaInputError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng(seed)
    if stratify is None:
        core = _sample_core(rng, n, state_idx, ages, income_mode, participation)
        weight = np.ones(n)
    else:
        core, weight = _stratified(rng, n, int(min_per_stratum), stratify, state_idx,
                                   ages, income_mode, participation)
    # last: a stream of its own, so the columns above stay as they were without it;
    # in participation mode the match is on potential earnings (wage x usual hours)
    households = draw_households(core.age, core.earnings, core.sex, rng=_household_rng(rng))
    return _frame(core, weight, households, participation)


def _household_rng(rng: np.random.Generator) -> np.random.Generator:
    """A child generator for the household draw that consumes no draw from ``rng``."""
    try:
        return rng.spawn(1)[0]
    except (TypeError, AttributeError):  # a bit generator without a SeedSequence
        bg = rng.bit_generator
        if hasattr(bg, "jumped"):
            return np.random.Generator(bg.jumped())
        return np.random.default_rng(rng.integers(2**63))


def _frame(core: _Core, weight: np.ndarray, households: pd.DataFrame,
           participation: bool = False) -> pd.DataFrame:
    cal = calibration()
    n = len(core)
    persona = render_codes(core.sex, core.age, core.state, core.edu, core.occ, core.hours,
                           core.earnings,
                           filing_status=households["filing_status"].to_numpy(),
                           children=households["children"].to_numpy(),
                           spouse_wages=households["spouse_wages"].to_numpy(),
                           participation=participation)
    extra = {}
    if participation:
        from personas.participation import employment_targets, participation_cells

        extra = {"employment_target": employment_targets(core.age, core.sex, core.edu),
                 "participation_cell": participation_cells(core.age, core.sex, core.edu)}
    return pd.DataFrame({
        "id": np.arange(n, dtype=np.int64),
        "sex": pd.Categorical.from_codes(core.sex, list(SEXES)),
        "age": core.age,
        "state": pd.Categorical.from_codes(core.state, list(cal.states)),
        "education": pd.Categorical.from_codes(core.edu, list(EDUCATION), ordered=True),
        "occupation": pd.Categorical.from_codes(core.occ, list(cal.occ_codes)),
        "occupation_name": pd.Categorical.from_codes(core.occ, list(cal.occ_names)),
        "hours": core.hours,
        "earnings": core.earnings,
        "wage": core.earnings / core.hours,
        "weight": weight,
        **extra,
        **{c: households[c].to_numpy() for c in households.columns},
        "persona": persona,
    })
