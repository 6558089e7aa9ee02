"""Budget-balanced lump-sum redistribution of tax revenue."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def lump_sum_rebate(
    taxes: ArrayLike, share: float = 1.0, weights: ArrayLike | None = None,
    requirement: float = 0.0,
) -> float:
    """Per-person rebate (dollars a year) that returns ``share`` of revenue equally.

    ``requirement`` (dollars a year per person) is the revenue the government spends
    (the revenue-requirement fiscal rule): only revenue above it is returned, and a
    shortfall is collected lump-sum (a negative rebate):
    ``rebate = share * (mean tax - requirement)``.  0 is the paper's rule.

    ``taxes`` are the taxes paid by each agent (dollars a year).  With population
    ``weights`` (e.g. survey weights) revenue and headcount are weighted:
    ``rebate = share * sum(w * tax) / sum(w)``; the budget balances exactly:
    ``sum(w * rebate) == share * sum(w * tax)``.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"rebate share must lie in [0, 1], got {share}")
    t = np.asarray(taxes, dtype=float)
    if t.size == 0:
        return 0.0
    if weights is None:
        return float(share * (t.mean() - requirement))
    w = np.asarray(weights, dtype=float)
    return float(share * (np.dot(w, t) / w.sum() - requirement))
