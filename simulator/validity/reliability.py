"""Reliability of replies: the share that fell back, and why (``Response.error_kind``)."""

from __future__ import annotations

import pandas as pd

from simulator.config.validity_names import INFO, OUTSIDE, WITHIN
from simulator.validity.result import CheckResult, ranged, unmeasurable


def fallback_checks(replies: pd.DataFrame) -> list[CheckResult]:
    """``replies`` has one row per LLM reply with ``answered`` and ``error_kind``."""
    n = len(replies)
    if n == 0:
        return [unmeasurable("reliability.fallback", "no replies were collected")]
    fell = ~replies["answered"].to_numpy(bool)
    res = ranged("reliability.fallback", value=float(fell.mean()), n=n,
                 detail=f"{int(fell.sum())} of {n} replies fell back")
    res.verdict = WITHIN if res.value <= res.range_high else OUTSIDE
    out = [res]
    kinds = replies.loc[fell, "error_kind"].fillna("invalid").astype(str)
    for kind, count in kinds.value_counts().sort_index().items():
        out.append(CheckResult("reliability", f"reliability.{kind}", f"share of replies failing as {kind}",
                               value=float(count / n), verdict=INFO, n=n))
    return out

