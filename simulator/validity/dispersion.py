"""Dispersion checks: chosen hours against the CPS hours distribution shipped in ``personas``.

The reference is BLS CPS 2024 Table 19 (persons at work by hours), the table the persona
generator is calibrated to, spread uniformly over whole hours within each band (60 hours
and over as 60-70, as in :mod:`personas.model`).  Pure functions over hours a week.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import wasserstein_distance

from simulator.config.validity_names import INFO, OUTSIDE, WITHIN
from simulator.validity.result import CheckResult, ranged, unmeasurable

#: Fewer workers than this: no distribution statistic is judged.
MIN_WORKERS = 20
#: CPS Table 19 bands (label, first hour, last hour); 0 hours is a band of its own
#: (persons at work have none, so its CPS share is 0).
BANDS = (("0 hours", 0, 0), ("1 to 4 hours", 1, 4), ("5 to 14 hours", 5, 14),
         ("15 to 29 hours", 15, 29), ("30 to 34 hours", 30, 34), ("35 to 39 hours", 35, 39),
         ("40 hours", 40, 40), ("41 to 48 hours", 41, 48), ("49 to 59 hours", 49, 59),
         ("60 hours and over", 60, 70))


@lru_cache(maxsize=1)
def cps_reference() -> tuple[np.ndarray, np.ndarray]:
    """Support (whole hours 0..70) and probabilities of the CPS hours distribution."""
    from personas._tables import load_table

    t = load_table("hours_worked_cps2024")
    t19 = t[(t.bls_table == "cpsaat19") & (t.sex == "total")].set_index("measure")["value"]
    support = np.arange(0, 71, dtype=float)
    p = np.zeros_like(support)
    for label, lo, hi in BANDS[1:]:
        p[lo:hi + 1] += float(t19[label]) / (hi - lo + 1)
    return support, p / p.sum()


def band_shares(hours: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Share of (weighted) workers in each of :data:`BANDS` (hours above 70 count as 60+)."""
    h = np.rint(np.asarray(hours, dtype=float))
    w = np.ones_like(h) if weights is None else np.asarray(weights, dtype=float)
    upper = np.array([b[2] for b in BANDS], dtype=float)
    idx = np.minimum(np.searchsorted(upper, h, side="left"), len(BANDS) - 1)
    return np.bincount(idx, weights=w, minlength=len(BANDS)) / w.sum()


def cps_band_shares() -> np.ndarray:
    support, p = cps_reference()
    return band_shares(support, p)


def ks_distance(hours: np.ndarray, weights: np.ndarray | None = None) -> float:
    """sup |F_n - F_CPS| over whole hours (both distributions are on whole hours, so the
    step CDFs are compared on the grid; scipy's ``kstest`` assumes a continuous CDF)."""
    support, p = cps_reference()
    h = np.rint(np.asarray(hours, dtype=float))
    w = np.ones_like(h) if weights is None else np.asarray(weights, dtype=float)
    grid = np.arange(0, max(70.0, h.max()) + 1)
    f_n = np.array([w[h <= g].sum() for g in grid]) / w.sum()
    f_ref = np.cumsum(np.concatenate([p, np.zeros(grid.size - p.size)]))
    return float(np.max(np.abs(f_n - f_ref)))


def wasserstein_to_cps(hours: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Wasserstein-1 distance (hours a week) between the answers and the CPS distribution."""
    support, p = cps_reference()
    return float(wasserstein_distance(np.asarray(hours, float), support, weights, p))


def top3_share(hours: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Share of (weighted) workers on the three most common whole-hour answers."""
    h = np.rint(np.asarray(hours, dtype=float))
    w = np.ones_like(h) if weights is None else np.asarray(weights, dtype=float)
    _, inv = np.unique(h, return_inverse=True)
    mass = np.bincount(inv, weights=w)
    return float(np.sort(mass)[::-1][:3].sum() / w.sum())


def weighted_sd(x: np.ndarray, w: np.ndarray | None = None) -> float:
    x = np.asarray(x, dtype=float)
    m = np.average(x, weights=w)
    return float(np.sqrt(np.average((x - m) ** 2, weights=w)))


def cps_sd() -> float:
    support, p = cps_reference()
    return weighted_sd(support, p)


def dispersion_checks(hours: np.ndarray, weights: np.ndarray | None,
                      rational_hours: np.ndarray | None) -> list[CheckResult]:
    """SD ratio, Wasserstein, KS and top-3 share with verdicts, plus the band shares."""
    h = np.asarray(hours, dtype=float)
    n = h.size
    rat = rational_hours
    stats = {
        "dispersion.sd": lambda x, w: weighted_sd(x, w) / cps_sd(),
        "dispersion.wasserstein": wasserstein_to_cps,
        "dispersion.ks": ks_distance,
        "dispersion.top3_share": top3_share,
    }
    out = []
    for check, fn in stats.items():
        r_val = fn(rat, weights) if rat is not None else float("nan")
        if n < MIN_WORKERS:
            out.append(unmeasurable(check, f"needs at least {MIN_WORKERS} workers, have {n}", n, r_val))
            continue
        res = ranged(check, value=fn(h, weights), rational=r_val, n=n)
        if check == "dispersion.ks":
            res.range_high = max(res.range_high, 1.63 / np.sqrt(n))
        if check == "dispersion.sd":
            res.detail = f"SD {weighted_sd(h, weights):.1f} h vs CPS {cps_sd():.1f} h"
        res.verdict = WITHIN if res.range_low <= res.value <= res.range_high else OUTSIDE
        out.append(res)
    shares = band_shares(h, weights) if n else np.full(len(BANDS), np.nan)
    r_shares = band_shares(rat, weights) if rat is not None else np.full(len(BANDS), np.nan)
    for (label, _, _), s, c, r in zip(BANDS, shares, cps_band_shares(), r_shares, strict=True):
        out.append(CheckResult("dispersion", "dispersion.band", f"share at {label}", value=float(s),
                               range_low=float(c), range_high=float(c), rational=float(r),
                               verdict=INFO, n=n, detail=f"CPS share {c:.1%}",
                               source="CPS 2024 Table 19"))
    return out
