"""Households of synthetic workers: statistical matching on the CPS tax-unit file.

Each worker is given the tax unit of a *donor*, an earner of Tax-Calculator's CPS
tax-unit file (``personas/data/households_cps.csv.gz``, built by
``personas/build_households.py``; see ``personas/data/SOURCES.md``), drawn from the
donors of the worker's matching cell.  The worker keeps its own age and earnings; only
the household fields come from the donor: filing status, children, the spouse's age and
wages, and the number of earners in the unit.

Donors and weights
    Every earner of every tax unit: the head when its wages are > 0 and, for joint
    filers, the spouse when its wages are > 0.  A two-earner couple therefore gives two
    donors (one seen from each spouse).  Each donor carries two weights:

    * ``weight`` = unit weight / ``unit_earners``: the *unit-counting* weight.  The donor
      weights of a unit add up to the unit's weight, so sums over donors count each tax
      unit once (137.9 M units with an earner in 2024).
    * ``unit_weight`` = the unit weight: the donor's weight *as a person*.  The CPS
      weight of a tax unit applies to each of its members, so an earner in a two-earner
      couple stands for as many earners as a single earner with the same unit weight.

    Workers are people (the persona generator is calibrated on employed persons), so a
    donor is drawn with probability proportional to its ``unit_weight``: the household
    of a worker of a given age and earnings then follows the earner-weighted
    distribution of households in the source.  Drawing proportionally to ``weight``
    instead would halve the chance of every two-earner couple (in 2024 weights, the
    share of joint-filing workers whose spouse also earns would fall from about 70 % to
    54 %, the *unit* share).  The two weights fit together: for a drawn population with
    weights ``w_i`` standing for the earners of the source, the sum of
    ``w_i / unit_earners_i`` over workers estimates the number of tax units (each
    counted once), as the sum of ``weight`` does over donors.

    Wages are in 2024 dollars (uprated from 2014 with Tax-Calculator's AWAGE factors).

Matching cells
    Age band x earnings band, with the bands :data:`AGE_EDGES` (14 bands: 15-17, 18-20,
    21-24, then 5-year bands to 70-74, and 75+) and :data:`EARNINGS_EDGES` (23 bands, in
    2024 dollars: $5,000 steps to $50,000, $10,000 steps to $100,000, then $125k, $150k,
    $200k, $250k, $300k, $400k, $500k and above).  Donor ages are top-coded at 85 in the
    source; worker ages 85-89 fall in the 75+ band anyway.  Earnings below $5,000
    (zero included) are the first band.

Collapse rule
    A cell with fewer than :data:`MIN_DONORS` donors (unweighted) is pooled with its
    neighbours in earnings within the same age band: walking the earnings bands of an
    age band from the highest down, consecutive bands are pooled until the pool holds at
    least :data:`MIN_DONORS` donors, then a new pool starts; a remainder at the bottom
    that stays below the minimum joins the pool above it.  Thin cells are young
    high earners (and very high earners at any age), so pooling along earnings keeps the
    age profile of marriage and children intact.  Every pool holds >= MIN_DONORS donors
    (every age band does).

Sex is not used: the CPS tax-unit file carries no sex of the head or spouse (none of
its 68 columns), so a male and a female worker of the same age and earnings draw from
the same donors.

Participation populations (``personas.generate(..., participation=True)``)
    Everyone, employed or not, is matched the same way on age and *potential* earnings
    (wage x usual hours, what the person would earn working).  The donors are still
    the earners of the source, so a person who ends up not working gets the household
    of an earner of the same age and potential earnings (a limitation: the households of
    non-earners, e.g. a non-working spouse of a joint filer, are not drawn as such; see
    ``docs/personas.md``).
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

#: Lower edges of the age bands above the first (the first band holds ages < 18).
AGE_EDGES = np.array([18, 21, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75])
#: Lower edges of the earnings bands above the first (2024 dollars a year).
EARNINGS_EDGES = np.array(
    [5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 45_000, 50_000,
     60_000, 70_000, 80_000, 90_000, 100_000, 125_000, 150_000, 200_000, 250_000,
     300_000, 400_000, 500_000], dtype=float)
#: Fewest donors (unweighted) a matching cell may hold; thinner cells are pooled.
MIN_DONORS = 100
#: Columns returned by :func:`draw_households`, with their dtypes.
HOUSEHOLD_COLUMNS = {
    "filing_status": np.int8,
    "children": np.int8,
    "eitc_children": np.int8,
    "spouse_age": np.int16,
    "spouse_wages": np.float64,
    "unit_earners": np.int8,
}
#: Filing status codes (Tax-Calculator's MARS).
FILING_STATUS = {1: "single", 2: "married filing jointly", 3: "married filing separately",
                 4: "head of household"}

_FILE = "households_cps.csv.gz"


def age_band(age) -> np.ndarray:
    """Index of the matching age band (0 = under 18, 13 = 75+)."""
    return np.searchsorted(AGE_EDGES, np.asarray(age, dtype=float), side="right")


def earnings_band(earnings) -> np.ndarray:
    """Index of the matching earnings band (0 = under $5,000, 22 = $500,000+)."""
    return np.searchsorted(EARNINGS_EDGES, np.asarray(earnings, dtype=float), side="right")


def age_band_labels() -> list[str]:
    lo = [15, *AGE_EDGES.tolist()]
    return [f"{a}-{b - 1}" for a, b in zip(lo[:-1], lo[1:], strict=True)] + [f"{lo[-1]}+"]


def earnings_band_labels() -> list[str]:
    lo = [0.0, *EARNINGS_EDGES.tolist()]
    return ([f"${a / 1000:,.0f}k-${b / 1000:,.0f}k" for a, b in zip(lo[:-1], lo[1:], strict=True)]
            + [f"${lo[-1] / 1000:,.0f}k+"])


@cache
def unit_table() -> pd.DataFrame:
    """The shipped table: one row per CPS tax unit with at least one earner."""
    raw = resources.files("personas").joinpath("data", _FILE).read_bytes()
    return pd.read_csv(io.BytesIO(gzip.decompress(raw)))


@cache
def donor_table() -> pd.DataFrame:
    """One row per earner of every tax unit (see the module docstring).

    Columns: ``unit`` (row of :func:`unit_table`), ``age``, ``wages``, ``filing_status``,
    ``spouse_age``, ``spouse_wages``, ``children``, ``eitc_children``, ``unit_earners``,
    ``weight`` (unit weight / unit_earners: sums count units once) and ``unit_weight``
    (the unit weight, the donor's weight as a person: the matching weight).  Treat it as
    read-only.
    """
    u = unit_table()
    hw = u["head_wages"].to_numpy(float)
    sw = u["spouse_wages"].to_numpy(float)
    earners = (hw > 0).astype(np.int64) + (sw > 0)
    ha = u["head_age"].to_numpy(np.int64)
    sa = u["spouse_age"].to_numpy(np.int64)

    def side(mask, own_a, own_w, sp_a, sp_w):
        idx = np.flatnonzero(mask)
        return pd.DataFrame({
            "unit": idx, "age": own_a[idx], "wages": own_w[idx],
            "filing_status": u["filing_status"].to_numpy()[idx],
            "spouse_age": sp_a[idx], "spouse_wages": sp_w[idx],
            "children": u["children"].to_numpy()[idx],
            "eitc_children": u["eitc_children"].to_numpy()[idx],
            "unit_earners": earners[idx],
            "weight": u["weight"].to_numpy(float)[idx] / earners[idx],
            "unit_weight": u["weight"].to_numpy(float)[idx]})

    return pd.concat([side(hw > 0, ha, hw, sa, sw), side(sw > 0, sa, sw, ha, hw)],
                     ignore_index=True)


def _pools(counts: np.ndarray, minimum: int) -> np.ndarray:
    """Pool ids of the earnings bands of one age band (the collapse rule)."""
    k = counts.size
    pool = np.empty(k, dtype=np.int64)
    pid, acc, members = 0, 0, []
    for e in range(k - 1, -1, -1):
        members.append(e)
        acc += counts[e]
        if acc >= minimum:
            pool[members] = pid
            pid, acc, members = pid + 1, 0, []
    if members:  # a thin remainder at the bottom joins the pool above it
        pool[members] = max(pid - 1, 0)
    return pid - 1 - pool if pid else np.zeros(k, dtype=np.int64)  # ascending in earnings


@dataclass(frozen=True)
class _Matcher:
    cell_pool: np.ndarray      # (n_age, n_earn) -> pool id
    order: np.ndarray          # donor rows sorted by pool
    cum: np.ndarray            # cumulative matching weight (unit_weight) of the sorted donors
    start: np.ndarray          # per pool: first index into order
    stop: np.ndarray           # per pool: one past the last
    pool_lo: np.ndarray        # per pool: cumulative weight before it
    pool_w: np.ndarray         # per pool: total weight
    columns: dict              # household columns of the sorted donors, final dtypes


@cache
def matcher(minimum: int = MIN_DONORS) -> _Matcher:
    """The matching cells, their pools and the donors sorted by pool."""
    d = donor_table()
    a = age_band(d["age"].to_numpy())
    e = earnings_band(d["wages"].to_numpy())
    n_a, n_e = AGE_EDGES.size + 1, EARNINGS_EDGES.size + 1
    counts = np.zeros((n_a, n_e), dtype=np.int64)
    np.add.at(counts, (a, e), 1)
    cell_pool = np.empty((n_a, n_e), dtype=np.int64)
    offset = 0
    for i in range(n_a):
        if counts[i].sum() < minimum:
            raise RuntimeError(f"age band {age_band_labels()[i]} has fewer than {minimum} donors")
        p = _pools(counts[i], minimum)
        cell_pool[i] = p + offset
        offset += int(p.max()) + 1
    pool = cell_pool[a, e]
    order = np.argsort(pool, kind="stable")
    w = d["unit_weight"].to_numpy(float)[order]
    cum = np.cumsum(w)
    sorted_pool = pool[order]
    n_pools = offset
    start = np.searchsorted(sorted_pool, np.arange(n_pools), side="left")
    stop = np.searchsorted(sorted_pool, np.arange(n_pools), side="right")
    pool_w = np.bincount(pool, weights=d["unit_weight"].to_numpy(float), minlength=n_pools)
    pool_lo = np.concatenate([[0.0], cum])[start]
    columns = {c: d[c].to_numpy()[order].astype(t) for c, t in HOUSEHOLD_COLUMNS.items()}
    return _Matcher(cell_pool, order, cum, start, stop, pool_lo, pool_w, columns)


def cell_table(minimum: int = MIN_DONORS) -> pd.DataFrame:
    """The matching cells: age band, earnings band, pool id and the pool's donor count."""
    m = matcher(minimum)
    n_a, n_e = m.cell_pool.shape
    ai, ei = np.meshgrid(np.arange(n_a), np.arange(n_e), indexing="ij")
    pool = m.cell_pool.ravel()
    return pd.DataFrame({
        "age_band": np.array(age_band_labels(), dtype=object)[ai.ravel()],
        "earnings_band": np.array(earnings_band_labels(), dtype=object)[ei.ravel()],
        "pool": pool, "pool_donors": (m.stop - m.start)[pool]})


def donor_pool(age, earnings, minimum: int = MIN_DONORS) -> np.ndarray:
    """Pool id (matching cell after collapsing) of each (age, earnings)."""
    return matcher(minimum).cell_pool[age_band(age), earnings_band(earnings)]


def draw_households(age, earnings, sex=None, rng: np.random.Generator | int | None = None,
                    ) -> pd.DataFrame:
    """Draw a household for each worker from the donors of its matching cell.

    ``age`` (years) and ``earnings`` (2024 dollars a year) are arrays of one length;
    ``sex`` is accepted for symmetry and ignored (the source has no sex, see the module
    docstring); ``rng`` is a ``numpy.random.Generator`` or a seed.  Donors are drawn
    with replacement, with probability proportional to the donor's ``unit_weight`` (its
    weight as a person) within the pool of the worker's cell, one uniform variate per
    worker.  Returns a frame with
    the columns and dtypes of :data:`HOUSEHOLD_COLUMNS`, one row per worker, in order.
    """
    del sex  # not in the source
    age = np.asarray(age, dtype=float).ravel()
    earnings = np.asarray(earnings, dtype=float).ravel()
    if age.shape != earnings.shape:
        raise ValueError(f"age and earnings differ in length ({age.size} vs {earnings.size})")
    if not (np.isfinite(age).all() and np.isfinite(earnings).all()):
        raise ValueError("age and earnings must be finite numbers")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    m = matcher()
    pool = m.cell_pool[age_band(age), earnings_band(earnings)]
    target = m.pool_lo[pool] + gen.random(age.size) * m.pool_w[pool]
    pos = np.searchsorted(m.cum, target, side="right")
    pos = np.clip(pos, m.start[pool], m.stop[pool] - 1)  # guard the pool edges (rounding)
    return pd.DataFrame({c: v[pos] for c, v in m.columns.items()})


# --- household phrases for persona texts ----------------------------------------------

_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            "ten")


def _kids(k: int) -> str:
    k = int(k)
    word = _NUMBERS[k] if 0 <= k < len(_NUMBERS) else f"{k:,}"
    return f"{word} {'child' if k == 1 else 'children'} under 17"


def _money_round(x: np.ndarray) -> np.ndarray:
    """Three significant figures, at least to $100 (the rounding of the persona text)."""
    x = np.maximum(np.asarray(x, dtype=float), 0.0)
    mag = np.floor(np.log10(np.maximum(x, 1.0)))
    step = np.maximum(10.0 ** (mag - 2), 100.0)
    return (np.rint(x / step) * step).astype(np.int64)


def _phrase(fs: int, k: int, spouse: int, sentence: bool) -> str:
    kids = _kids(k)
    if fs == 2:
        tail = (f"your spouse earns about ${spouse:,} a year" if spouse > 0
                else "your spouse has no earnings")
        return (f"You are married, with {kids}; {tail}." if sentence
                else f"married filing jointly, {kids}; {tail}")
    if fs == 3:
        return (f"You are married but file taxes separately from your spouse, with {kids}."
                if sentence else f"married filing separately, {kids}")
    if fs == 4:
        if k > 0:
            body = f"a single parent (head of household) of {kids}"
            return f"You are {body}." if sentence else body
        return ("You are unmarried and file as head of household, supporting a dependent; "
                "you have no children under 17." if sentence
                else "head of household supporting a dependent, no children under 17")
    return f"You are single, with {kids}." if sentence else f"single, {kids}"


def household_phrases(filing_status, children, spouse_wages, *, sentence: bool = False,
                      ) -> np.ndarray:
    """A household description per worker (object array of str).

    ``sentence=False``: a short phrase ("married filing jointly, two children under 17;
    your spouse earns about $48,300 a year", "single, no children under 17", "a single
    parent (head of household) of one child under 17"); ``sentence=True``: the
    second-person sentence of the persona text ("You are married, with two children
    under 17; your spouse earns about $48,300 a year.").  Spouse wages are named only
    for joint filers, rounded like the worker's own earnings (three significant figures).
    """
    fs = np.asarray(filing_status, dtype=np.int64).ravel()
    k = np.asarray(children, dtype=np.int64).ravel()
    sp = np.where(fs == 2, _money_round(np.asarray(spouse_wages, dtype=float).ravel()), 0)
    if fs.size == 0:
        return np.array([], dtype=object)
    k = np.clip(k, 0, 255)
    key = (sp * 8 + np.clip(fs, 0, 7)) * 256 + k
    uniq, inv = np.unique(key, return_inverse=True)
    texts = np.array([_phrase(int(v // 256 % 8), int(v % 256), int(v // 2048), sentence)
                      for v in uniq], dtype=object)
    return texts[inv.ravel()]
