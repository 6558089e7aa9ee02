"""Deterministic second-person persona text from a worker's attributes.

The text is a pure function of the attributes (sex, age, state, education, occupation,
hours, earnings and, when given, the household fields ``filing_status``, ``children``
and ``spouse_wages``): the same attributes always render the same text, whatever the
seed or row id.  The last sentence describes the worker's drawn household (see
:mod:`personas.households`), e.g. "You are married, with two children under 17; your
spouse earns about $48,300 a year."; without household fields the text has no household
sentence.  :func:`render_personas` is the vectorised form used by
:func:`personas.generate`.

Texts of a participation population (``personas.generate(..., participation=True)``)
are neutral about whether the person works: "You are a 34-year-old woman living in
Ohio, and you have a bachelor's degree. Your line of work is management; working 38
hours a week, full time, you would earn about $52,300 a year, a modest income." (then
the household sentence).  ``render_codes(..., participation=True)`` renders them, and
:func:`render_personas` / :func:`render_persona` do so for a frame or row that has the
``employment_target`` column (or when told with ``participation=``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from personas.households import household_phrases
from personas.model import EDUCATION, EDUCATION_LABELS, calibration

#: Earnings bands named in the text (annual dollars, lower edges).
EARNINGS_BANDS = (
    (0.0, "a low income"),
    (30_000.0, "a modest income"),
    (60_000.0, "a middle income"),
    (100_000.0, "a comfortable upper-middle income"),
    (200_000.0, "a high income"),
    (500_000.0, "a very high income"),
)

#: Household fields of the persona text (all or none of them).
HOUSEHOLD_FIELDS = ("filing_status", "children", "spouse_wages")

#: How each SOC major group reads after "who works in".
OCCUPATION_PHRASES = {
    "11": "management",
    "13": "business and financial operations",
    "15": "computing and mathematics",
    "17": "architecture and engineering",
    "19": "the life, physical, or social sciences",
    "21": "community and social services",
    "23": "the legal profession",
    "25": "education, training, or library work",
    "27": "arts, design, entertainment, sports, or media",
    "29": "healthcare as a practitioner or technician",
    "31": "healthcare support",
    "33": "protective services",
    "35": "food preparation and serving",
    "37": "building and grounds cleaning and maintenance",
    "39": "personal care and services",
    "41": "sales",
    "43": "office and administrative support",
    "45": "farming, fishing, or forestry",
    "47": "construction and extraction",
    "49": "installation, maintenance, and repair",
    "51": "production",
    "53": "transportation and material moving",
}


def _money_codes(x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Round to 3 significant figures (at least to $100); codes and '$12,300' labels."""
    x = np.maximum(np.asarray(x, dtype=float), 0.0)
    mag = np.floor(np.log10(np.maximum(x, 1.0)))
    step = np.maximum(10.0 ** (mag - 2), 100.0)
    r = (np.rint(x / step) * step).astype(np.int64)
    uniq, inv = np.unique(r, return_inverse=True)
    return inv.astype(np.int64), [f"${v:,}" for v in uniq]


def _codes(values, categories) -> np.ndarray:
    cat = pd.Categorical(values, categories=list(categories))
    codes = np.asarray(cat.codes)
    if (codes < 0).any():
        bad = pd.Series(values)[codes < 0].iloc[0]
        raise ValueError(f"unknown value {bad!r}; expected one of {', '.join(categories)}")
    return codes


def _household_args(fields) -> dict:
    have = [k for k in HOUSEHOLD_FIELDS if k in fields]
    if not have:
        return {}
    if len(have) < len(HOUSEHOLD_FIELDS):
        missing = [k for k in HOUSEHOLD_FIELDS if k not in fields]
        raise ValueError(f"household fields come together: missing {', '.join(missing)}")
    return {k: np.asarray(fields[k]) for k in HOUSEHOLD_FIELDS}


def render_personas(frame: pd.DataFrame, *, participation: bool | None = None) -> pd.Series:
    """Persona texts for every row of ``frame`` (vectorised).

    The household sentence is rendered when ``frame`` has the household columns
    (``filing_status``, ``children``, ``spouse_wages``) and left out when it has none.
    ``participation``: the status-neutral text of a participation population; ``None``
    (default) decides by the presence of the ``employment_target`` column.
    """
    if participation is None:
        participation = "employment_target" in frame.columns
    cal = calibration()
    if len(frame) == 0:
        return pd.Series([], dtype=object, index=frame.index)
    household = _household_args(frame)
    text = render_codes(
        _codes(frame["sex"], ("male", "female")),
        np.asarray(frame["age"], dtype=np.int64),
        _codes(frame["state"], cal.states),
        _codes(frame["education"], EDUCATION),
        _codes(frame["occupation"], cal.occ_codes),
        np.asarray(frame["hours"], dtype=float),
        np.asarray(frame["earnings"], dtype=float),
        **household,
        participation=participation,
    )
    return pd.Series(text, index=frame.index)


def render_codes(sex_i, age, state_i, edu_i, occ_i, hours, earnings, *,
                 filing_status=None, children=None, spouse_wages=None,
                 participation: bool = False) -> np.ndarray:
    """Persona texts from integer codes (indices into the calibration's categories).

    With ``filing_status``, ``children`` and ``spouse_wages`` (arrays, all three) the
    text ends with the household sentence of :func:`personas.households.household_phrases`.
    ``participation=True``: the text neutral about employment status (occupation,
    hours and earnings as potential ones, "working 38 hours a week ... you would earn
    about ..."); the default text is unchanged.
    """
    if not isinstance(participation, (bool, np.bool_)):
        raise ValueError(f"participation must be True or False, got {participation!r}")
    cal = calibration()
    age = np.asarray(age, dtype=np.int64)
    hours = np.asarray(hours, dtype=float)
    earnings = np.asarray(earnings, dtype=float)
    # Each piece is built once per distinct combination and looked up by code: few
    # string concatenations over the full arrays keeps 1M texts fast.
    a0, a1 = 0, 120
    ages = np.arange(a0, a1)
    age_piece = np.array(
        [f"You are {'an' if a in (8, 11, 18) or 80 <= a <= 89 else 'a'} {a}-year-old {noun}"
         f" living in " for noun in ("man", "woman") for a in ages], dtype=object)
    p1 = age_piece[sex_i.astype(np.int64) * (a1 - a0) + np.clip(age, a0, a1 - 1) - a0]
    if participation:
        return p1 + _neutral_tail(cal, state_i, edu_i, occ_i, hours, earnings,
                                  filing_status, children, spouse_wages)
    p2 = np.array([cal.state_names[c] + " who works in " for c in cal.states],
                  dtype=object)[state_i]
    occ_edu = np.array([f"{OCCUPATION_PHRASES[o]}, and you have {EDUCATION_LABELS[e]}."
                        f" You usually work " for o in cal.occ_codes for e in EDUCATION],
                       dtype=object)
    p3 = occ_edu[occ_i.astype(np.int64) * len(EDUCATION) + edu_i]
    hrs_r = np.clip(np.rint(hours).astype(np.int64), 0, 200)
    pt = (hours < 35).astype(np.int64)
    hours_piece = np.array(
        [f"{h} hour{'' if h == 1 else 's'} a week, {'part' if p else 'full'} time, and earn"
         f" about " for p in (0, 1) for h in range(201)], dtype=object)
    p4 = hours_piece[pt * 201 + hrs_r]
    edges = np.array([b[0] for b in EARNINGS_BANDS])
    band = np.searchsorted(edges, earnings, side="right") - 1
    money_code, money_labels = _money_codes(earnings)
    key = money_code * len(EARNINGS_BANDS) + band
    uniq, inv = np.unique(key, return_inverse=True)
    end = "." if filing_status is None else ". "
    p5 = np.array([f"{money_labels[k // len(EARNINGS_BANDS)]} a year, "
                   f"{EARNINGS_BANDS[k % len(EARNINGS_BANDS)][1]}{end}" for k in uniq],
                  dtype=object)[inv]
    if filing_status is None:
        return p1 + p2 + p3 + p4 + p5
    p6 = household_phrases(filing_status, children, spouse_wages, sentence=True)
    return p1 + p2 + p3 + p4 + p5 + p6


def _money_pieces(earnings: np.ndarray, end: str) -> np.ndarray:
    """'$52,300 a year, a modest income' + ``end`` per person (looked up by code)."""
    edges = np.array([b[0] for b in EARNINGS_BANDS])
    band = np.searchsorted(edges, earnings, side="right") - 1
    money_code, money_labels = _money_codes(earnings)
    key = money_code * len(EARNINGS_BANDS) + band
    uniq, inv = np.unique(key, return_inverse=True)
    return np.array([f"{money_labels[k // len(EARNINGS_BANDS)]} a year, "
                     f"{EARNINGS_BANDS[k % len(EARNINGS_BANDS)][1]}{end}" for k in uniq],
                    dtype=object)[inv]


def _neutral_tail(cal, state_i, edu_i, occ_i, hours, earnings, filing_status, children,
                  spouse_wages) -> np.ndarray:
    """Everything after "You are a 34-year-old woman living in " in the text neutral
    about employment status (participation populations)."""
    p2 = np.array([cal.state_names[c] + ", and you have " for c in cal.states],
                  dtype=object)[state_i]
    edu_occ = np.array([f"{EDUCATION_LABELS[e]}. Your line of work is {OCCUPATION_PHRASES[o]};"
                        f" working " for o in cal.occ_codes for e in EDUCATION], dtype=object)
    p3 = edu_occ[occ_i.astype(np.int64) * len(EDUCATION) + edu_i]
    hrs_r = np.clip(np.rint(hours).astype(np.int64), 0, 200)
    pt = (hours < 35).astype(np.int64)
    hours_piece = np.array(
        [f"{h} hour{'' if h == 1 else 's'} a week, {'part' if p else 'full'} time, you would"
         f" earn about " for p in (0, 1) for h in range(201)], dtype=object)
    p4 = hours_piece[pt * 201 + hrs_r]
    p5 = _money_pieces(earnings, "." if filing_status is None else ". ")
    if filing_status is None:
        return p2 + p3 + p4 + p5
    p6 = household_phrases(filing_status, children, spouse_wages, sentence=True)
    return p2 + p3 + p4 + p5 + p6


def render_persona(fields: Mapping | pd.Series, *, participation: bool | None = None) -> str:
    """Persona text for one worker (a frame row or a mapping with the attribute fields).

    Needed fields: ``sex``, ``age``, ``state``, ``education``, ``occupation`` (SOC major
    code), ``hours`` and ``earnings``; the household fields ``filing_status``,
    ``children`` and ``spouse_wages`` add the household sentence (all three or none).
    ``participation``: the status-neutral text (``None``: when ``fields`` has
    ``employment_target``, as the rows of a participation population do).
    """
    keys = ("sex", "age", "state", "education", "occupation", "hours", "earnings")
    missing = [k for k in keys if k not in fields]
    if missing:
        raise ValueError(f"render_persona needs the fields: {', '.join(missing)}")
    keys += tuple(k for k in HOUSEHOLD_FIELDS if k in fields)
    if participation is None:
        participation = "employment_target" in fields
    one = pd.DataFrame({k: [fields[k]] for k in keys})
    return str(render_personas(one, participation=participation).iloc[0])
