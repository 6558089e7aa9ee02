"""One row of the validity table (:class:`CheckResult`) and small shared helpers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from simulator.config.validity_names import INFO, NOT_APPLICABLE, NOT_MEASURABLE
from simulator.validity.ranges import range_of

NAN = float("nan")


@dataclass
class CheckResult:
    """One statistic with its verdict.

    ``value`` (with ``ci_low``/``ci_high`` when there is an interval) is the scenario's
    worker policy; ``rational`` the same statistic for rational workers of the same
    scenario; ``range_low``/``range_high`` what counts as within range (``source``).
    """

    family: str
    check: str
    statistic: str
    value: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    range_low: float = NAN
    range_high: float = NAN
    rational: float = NAN
    verdict: str = INFO
    n: int = 0
    detail: str = ""
    source: str = ""

    def row(self) -> dict:
        return asdict(self)


def ranged(check: str, **kw) -> CheckResult:
    """A result for ``check`` carrying its shipped range and provenance."""
    r = range_of(check)
    fam = check.split(".", 1)[0]
    kw.setdefault("statistic", r.statistic)
    return CheckResult(fam, check, range_low=r.low, range_high=r.high, source=r.source, **kw)


def unmeasurable(check: str, why: str, n: int = 0, rational: float = NAN) -> CheckResult:
    return ranged(check, verdict=NOT_MEASURABLE, detail=why, n=n, rational=rational)


def not_applicable(check: str, why: str) -> CheckResult:
    return ranged(check, verdict=NOT_APPLICABLE, detail=why)


def wmean(x: np.ndarray, w: np.ndarray | None) -> float:
    """Weighted mean (plain mean without weights)."""
    x = np.asarray(x, dtype=float)
    return float(np.average(x, weights=w)) if x.size else NAN


def mean_se(x: np.ndarray, w: np.ndarray | None) -> tuple[float, float]:
    """Weighted mean and its standard error (effective sample size n = (sum w)^2 / sum w^2)."""
    x = np.asarray(x, dtype=float)
    ww = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    m = float(np.average(x, weights=ww))
    n_eff = ww.sum() ** 2 / np.sum(ww**2)
    var = float(np.average((x - m) ** 2, weights=ww)) * n_eff / max(n_eff - 1.0, 1.0)
    return m, float(np.sqrt(var / n_eff))
