"""Persona sensitivity: vary one persona field at a time, wage and schedule held fixed.

:func:`persona_variants` re-renders each worker's persona text with one field changed
(the household note is kept, except when the age band changes, since the note depends
on the life stage); :func:`sensitivity_checks` compares the answers with the original
ones on the same workers and seeds (a paired sample).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.config.validity_names import INFO, OUTSIDE, WITHIN
from simulator.validity.result import CheckResult, mean_se, ranged, unmeasurable, wmean

#: Persona fields varied one at a time.
FIELDS = ("age", "sex", "education", "occupation", "state")
#: Fewer workers than this: no verdict.
MIN_WORKERS = 10
_NEEDED = ("sex", "age", "state", "education", "occupation", "hours", "earnings")
#: household columns the persona text names when the population has them
_HOUSEHOLD = ("filing_status", "children", "spouse_wages")


def _columns(pop: pd.DataFrame) -> list[str]:
    # employment_target marks a population of people who may not work: its texts are
    # neutral about work status, and re-rendered the same way
    return list(_NEEDED) + [c for c in (*_HOUSEHOLD, "employment_target") if c in pop.columns]


def _vary(pop: pd.DataFrame, field: str) -> pd.DataFrame:
    """``pop`` with ``field`` moved to a clearly different value for every worker."""
    from personas.model import EDUCATION, calibration

    cal = calibration()
    out = pop[_columns(pop)].copy()
    if field == "age":  # 16-24 -> 40, 25-54 -> 62, 55+ -> 30 (another CPS Table 22 band)
        a = out["age"].to_numpy()
        out["age"] = np.where(a < 25, 40, np.where(a < 55, 62, 30))
    elif field == "sex":
        out["sex"] = np.where(out["sex"].astype(str) == "male", "female", "male")
    elif field == "education":  # bachelor's or more -> high school; otherwise -> bachelor's
        e = pd.Categorical(out["education"].astype(str), categories=EDUCATION).codes
        out["education"] = np.where(e >= EDUCATION.index("bachelors"), "hs", "bachelors")
    elif field == "occupation":  # half-way round the list of the 22 SOC major groups
        codes = list(cal.occ_codes)
        idx = pd.Categorical(out["occupation"].astype(str), categories=codes).codes
        out["occupation"] = np.array(codes, dtype=object)[(idx + len(codes) // 2) % len(codes)]
    elif field == "state":  # half-way round the list of 51 states
        states = list(cal.states)
        idx = pd.Categorical(out["state"].astype(str), categories=states).codes
        out["state"] = np.array(states, dtype=object)[(idx + len(states) // 2) % len(states)]
    else:
        raise ValueError(f"unknown persona field {field!r}")
    return out


def persona_variants(pop: pd.DataFrame) -> tuple[pd.Series, dict[str, pd.Series]]:
    """The re-rendered original persona texts and, per field, the varied texts.

    Raises ``ValueError`` naming the missing columns for populations without persona
    attributes (``source: gb2`` or ``file``).
    """
    from personas.text import render_personas

    missing = [c for c in _NEEDED if c not in pop.columns]
    if missing:
        raise ValueError(f"the population has no {', '.join(missing)} column(s)")
    base = render_personas(pop[_columns(pop)])
    # the household sentence rides along unchanged (the household columns are kept)
    variants = {field: render_personas(_vary(pop, field)) for field in FIELDS}
    return base, variants


def movement(base: np.ndarray, other: np.ndarray, weights: np.ndarray | None) -> tuple[float, float, float]:
    """Mean absolute change, mean change and share changed (hours a week, weighted)."""
    d = np.asarray(other, float) - np.asarray(base, float)
    return wmean(np.abs(d), weights), wmean(d, weights), wmean((d != 0).astype(float), weights)


def excess_over_noise(base: np.ndarray, other: np.ndarray, noise_abs: np.ndarray,
                      weights: np.ndarray | None) -> tuple[float, float]:
    """Mean over workers of ``|other - base| - |reseeded - base|`` and its standard error:
    how much more an answer moves with the change than with another seed alone."""
    d = np.abs(np.asarray(other, float) - np.asarray(base, float)) - np.asarray(noise_abs, float)
    return mean_se(d, weights)


def _judge(res: CheckResult, excess: float, se: float, z: float, noise: float) -> CheckResult:
    margin = res.range_low
    res.range_low = margin + noise
    lo = excess - z * se
    res.verdict = WITHIN if (excess >= margin and lo > 0) else OUTSIDE
    res.detail += f"; {excess:+.2f} h beyond the seed noise of {noise:.2f} h (lower bound {lo:+.2f})"
    return res


def sensitivity_checks(base: np.ndarray, varied: dict[str, np.ndarray], noise_abs: np.ndarray,
                       weights: np.ndarray | None) -> list[CheckResult]:
    """Per-field movement (info rows) and the verdict on the field that moves answers most:
    within range when its mean absolute change exceeds the seed noise (same prompt, another
    seed, per worker) by at least the shipped margin, with the lower bound of a 99 %
    interval (about 5 % across the five fields) of that excess above 0."""
    n = len(base)
    if n < MIN_WORKERS:
        return [unmeasurable("persona.sensitivity", f"needs at least {MIN_WORKERS} workers, have {n}", n)]
    out = []
    moves = {}
    for field, h in varied.items():
        mad, md, changed = movement(base, h, weights)
        moves[field] = mad
        out.append(CheckResult("persona", f"persona.{field}", f"mean |change of hours| when {field} changes",
                               value=mad, verdict=INFO, n=n,
                               detail=f"mean change {md:+.2f} h, {changed:.0%} of answers changed"))
    top = max(moves, key=moves.get)
    excess, se = excess_over_noise(base, varied[top], noise_abs, weights)
    res = ranged("persona.sensitivity", value=moves[top], n=n, detail=f"largest for {top}")
    return [_judge(res, excess, se, 2.58, wmean(noise_abs, weights)), *out]


def wage_check(base: np.ndarray, scaled: np.ndarray, factor: float, noise_abs: np.ndarray,
               weights: np.ndarray | None, rational: float) -> CheckResult:
    """Does the answer depend on the wage at all (persona and schedule fixed)?  Within range
    when the mean absolute change exceeds the seed noise by the shipped margin (95 %)."""
    n = len(base)
    if n < MIN_WORKERS:
        return unmeasurable("persona.wage", f"needs at least {MIN_WORKERS} workers, have {n}", n, rational)
    mad, md, changed = movement(base, scaled, weights)
    res = ranged("persona.wage", value=mad, n=n, rational=rational,
                 detail=f"wage x{factor:g}: mean change {md:+.2f} h, {changed:.0%} of answers changed")
    excess, se = excess_over_noise(base, scaled, noise_abs, weights)
    return _judge(res, excess, se, 1.96, wmean(noise_abs, weights))
