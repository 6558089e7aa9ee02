"""Deterministic second-person persona text from a worker's attributes.

The text is a pure function of the attributes (sex, age, state, education, occupation,
hours, earnings): the same attributes always render the same text, whatever the seed
or row id.  The household note is picked by a 64-bit hash of those attributes.
:func:`render_personas` is the vectorised form used by :func:`personas.generate`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

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

#: Household notes by life stage; one is chosen by hashing the attributes.
HOUSEHOLD_NOTES = {
    "young": (
        "You live with your parents and are saving what you can.",
        "You share a rented apartment with two roommates.",
        "You rent a small studio on your own.",
        "You live with your partner in a rented apartment.",
    ),
    "prime": (
        "You are married with two children and a mortgage.",
        "You are single and rent an apartment.",
        "You are a single parent raising one child.",
        "You live with your partner and have no children.",
        "You are married and help support an elderly parent.",
        "You are divorced and share custody of your children.",
    ),
    "older": (
        "Your children are grown and you own your home.",
        "You live alone and are thinking about retirement.",
        "You are married and plan to retire in a few years.",
        "You are widowed and live near your grandchildren.",
    ),
}

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


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrap-around arithmetic)."""
    h = h.astype(np.uint64, copy=True)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def _attribute_hash(sex_i, age, state_i, edu_i, occ_i, hours, earnings) -> np.ndarray:
    h = np.zeros(np.asarray(age).shape, dtype=np.uint64)
    for part in (sex_i, age, state_i, edu_i, occ_i,
                 np.rint(np.asarray(hours, dtype=float) * 10),
                 np.rint(np.asarray(earnings, dtype=float))):
        v = np.asarray(part).astype(np.int64).astype(np.uint64)
        with np.errstate(over="ignore"):
            h = _mix64(h ^ (v + np.uint64(0x9E3779B97F4A7C15)))
    return h


def _money(x: np.ndarray) -> np.ndarray:
    """Round to 3 significant figures (at least to $100) and format as '$12,300'."""
    x = np.maximum(np.asarray(x, dtype=float), 0.0)
    mag = np.floor(np.log10(np.maximum(x, 1.0)))
    step = np.maximum(10.0 ** (mag - 2), 100.0)
    r = (np.rint(x / step) * step).astype(np.int64)
    uniq, inv = np.unique(r, return_inverse=True)
    labels = np.array([f"${v:,}" for v in uniq], dtype=object)
    return labels[inv]


def _codes(values, categories) -> np.ndarray:
    cat = pd.Categorical(values, categories=list(categories))
    codes = np.asarray(cat.codes)
    if (codes < 0).any():
        bad = pd.Series(values)[codes < 0].iloc[0]
        raise ValueError(f"unknown value {bad!r}; expected one of {', '.join(categories)}")
    return codes


def render_personas(frame: pd.DataFrame) -> pd.Series:
    """Persona texts for every row of ``frame`` (vectorised)."""
    cal = calibration()
    if len(frame) == 0:
        return pd.Series([], dtype=object, index=frame.index)
    text = render_codes(
        _codes(frame["sex"], ("male", "female")),
        np.asarray(frame["age"], dtype=np.int64),
        _codes(frame["state"], cal.states),
        _codes(frame["education"], EDUCATION),
        _codes(frame["occupation"], cal.occ_codes),
        np.asarray(frame["hours"], dtype=float),
        np.asarray(frame["earnings"], dtype=float),
    )
    return pd.Series(text, index=frame.index)


def render_codes(sex_i, age, state_i, edu_i, occ_i, hours, earnings) -> np.ndarray:
    """Persona texts from integer codes (indices into the calibration's categories)."""
    cal = calibration()
    n = age.size
    noun = np.array(["man", "woman"], dtype=object)[sex_i]
    age_s = pd.Series(age).astype(str).to_numpy(dtype=object)
    states = np.array([cal.state_names[s] for s in cal.states], dtype=object)[state_i]
    occ = np.array([OCCUPATION_PHRASES[o] for o in cal.occ_codes], dtype=object)[occ_i]
    edu = np.array([EDUCATION_LABELS[e] for e in EDUCATION], dtype=object)[edu_i]
    hrs_r = np.rint(hours).astype(np.int64)
    hrs = pd.Series(hrs_r).astype(str).to_numpy(dtype=object)
    plural = np.where(hrs_r == 1, " hour", " hours").astype(object)
    status = np.where(hours < 35, " part time,", " full time,").astype(object)
    edges = np.array([b[0] for b in EARNINGS_BANDS])
    band = np.array([b[1] for b in EARNINGS_BANDS], dtype=object)[
        np.searchsorted(edges, earnings, side="right") - 1]

    h = _attribute_hash(sex_i, age, state_i, edu_i, occ_i, hours, earnings)
    note = np.empty(n, dtype=object)
    stage = np.where(age < 25, 0, np.where(age < 60, 1, 2))
    for si, key in enumerate(("young", "prime", "older")):
        m = stage == si
        if m.any():
            notes = np.array(HOUSEHOLD_NOTES[key], dtype=object)
            note[m] = notes[(h[m] % np.uint64(len(notes))).astype(np.int64)]

    article = np.where((age == 18) | (age == 11) | ((age >= 80) & (age <= 89)),
                       "You are an ", "You are a ").astype(object)
    text = (article + age_s + "-year-old " + noun + " living in " + states
            + " who works in " + occ + ", and you have " + edu + ". You usually work "
            + hrs + plural + " a week," + status + " and earn about " + _money(earnings)
            + " a year, " + band + ". " + note)
    return text


def render_persona(fields: Mapping | pd.Series) -> str:
    """Persona text for one worker (a frame row or a mapping with the attribute fields).

    Needed fields: ``sex``, ``age``, ``state``, ``education``, ``occupation`` (SOC major
    code), ``hours`` and ``earnings``.
    """
    keys = ("sex", "age", "state", "education", "occupation", "hours", "earnings")
    missing = [k for k in keys if k not in fields]
    if missing:
        raise ValueError(f"render_persona needs the fields: {', '.join(missing)}")
    one = pd.DataFrame({k: [fields[k]] for k in keys})
    return str(render_personas(one).iloc[0])
