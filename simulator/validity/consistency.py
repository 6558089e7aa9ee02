"""Consistency: the same prompt with another seed, and with the take-home rows reversed."""

from __future__ import annotations

import numpy as np

from simulator.config.validity_names import OUTSIDE, WITHIN
from simulator.validity.result import CheckResult, ranged, unmeasurable, wmean

MIN_WORKERS = 10
#: An answer "moves" when it changes by more than this many hours a week.
MOVE_HOURS = 5.0
#: Reversal may move answers at most this much more often than a new seed does.
ORDER_MARGIN = 0.15


def share_moved(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None) -> float:
    return wmean((np.abs(np.asarray(b, float) - np.asarray(a, float)) > MOVE_HOURS).astype(float), weights)


def position_share(base: np.ndarray, reversed_: np.ndarray, levels, weights: np.ndarray | None,
                   reversed_levels=None) -> float:
    """Share of workers whose answer after the reversal is the level now shown in the row
    their first answer occupied (only rows whose level changes with the reversal count).

    ``levels``: the table's hours in the order shown, one sequence for every worker or
    one per worker (a compact prompt's rows are the worker's own); ``reversed_levels``:
    the rows of the reversed tables in the same form (default: each ``levels`` reversed).
    """
    b = np.asarray(base, float)
    r = np.asarray(reversed_, float)
    per_worker = len(levels) > 0 and np.ndim(levels[0]) > 0
    lvs = list(levels) if per_worker else [levels] * b.size
    if reversed_levels is None:
        revs = [list(x)[::-1] for x in lvs]
    else:
        revs = list(reversed_levels) if per_worker else [reversed_levels] * b.size
    follows = np.zeros(b.size, dtype=float)
    for i in range(b.size):
        lv, rev = np.asarray(lvs[i], dtype=float), np.asarray(revs[i], dtype=float)
        at = np.flatnonzero(lv == b[i])
        if at.size and at[0] < rev.size:
            k = int(at[0])
            follows[i] = float(r[i] == rev[k] and rev[k] != lv[k])
    return wmean(follows, weights)


def seed_check(base: np.ndarray, reseeded: np.ndarray, weights: np.ndarray | None) -> CheckResult:
    n = len(base)
    if n < MIN_WORKERS:
        return unmeasurable("consistency.seed", f"needs at least {MIN_WORKERS} workers, have {n}", n)
    v = share_moved(base, reseeded, weights)
    mad = wmean(np.abs(np.asarray(reseeded, float) - np.asarray(base, float)), weights)
    changed = wmean((np.asarray(reseeded) != np.asarray(base)).astype(float), weights)
    res = ranged("consistency.seed", value=v, n=n,
                 detail=f"{changed:.0%} of answers changed at all; mean |change| {mad:.2f} h")
    res.verdict = WITHIN if v <= res.range_high else OUTSIDE
    return res


def order_check(base: np.ndarray, reversed_: np.ndarray, levels, seed_moved: float,
                weights: np.ndarray | None, reversed_levels=None) -> CheckResult:
    """``levels``, ``reversed_levels``: the rows shown, as :func:`position_share` takes them."""
    n = len(base)
    if n < MIN_WORKERS:
        return unmeasurable("consistency.order", f"needs at least {MIN_WORKERS} workers, have {n}", n)
    pos = position_share(base, reversed_, levels, weights, reversed_levels)
    moved = share_moved(base, reversed_, weights)
    res = ranged("consistency.order", value=pos, n=n,
                 detail=f"{moved:.0%} of answers moved by more than {MOVE_HOURS:g} h "
                        f"(seed alone: {seed_moved:.0%})")
    ok = pos <= res.range_high and moved <= seed_moved + ORDER_MARGIN
    res.verdict = WITHIN if ok else OUTSIDE
    return res
