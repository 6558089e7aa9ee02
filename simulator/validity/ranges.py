"""The ranges each check is judged against, with their provenance.

Read from ``data/validity_ranges.csv``: literature ranges (elasticity of taxable income,
income effect) with the papers they come from, and the project's conventions for the
checks that have no literature value (dispersion distances, consistency, fallbacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd


@dataclass(frozen=True)
class Range:
    check: str
    statistic: str
    low: float
    high: float
    unit: str
    source: str
    verification: str

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


@lru_cache(maxsize=1)
def ranges() -> dict[str, Range]:
    """Every shipped range by check id."""
    with resources.files("simulator.validity").joinpath("data/validity_ranges.csv").open() as f:
        df = pd.read_csv(f, keep_default_na=False)
    out = {}
    for r in df.itertuples(index=False):
        low = float(r.low) if r.low != "" else float("-inf")
        high = float(r.high) if r.high != "" else float("inf")
        out[r.check] = Range(r.check, r.statistic, low, high, r.unit, r.source, r.verification)
    return out


def range_of(check: str) -> Range:
    return ranges()[check]
