"""Vote counting rules (pure functions over arrays of ballots).

Candidates are numbered ``0..m-1``.  Ballots may carry population weights (a voter
standing for ``w`` people counts ``w`` times).  Every rule returns ``(winner, scores)`` where
``scores`` has one entry per candidate; ties are broken uniformly at random with the
generator passed in (never the global RNG).
"""

from __future__ import annotations

from itertools import permutations

import numpy as np


def _pick(scores: np.ndarray, rng: np.random.Generator) -> int:
    best = np.flatnonzero(scores == scores.max())
    return int(best[0] if best.size == 1 else rng.choice(best))


def _w(n: int, weights) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, dtype=float)


def plurality(choices: np.ndarray, m: int, rng: np.random.Generator, weights=None) -> tuple[int, np.ndarray]:
    """Each ballot names one candidate; most (weighted) votes wins."""
    c = np.asarray(choices, dtype=int)
    if np.any((c < 0) | (c >= m)):
        raise ValueError("a plurality ballot names an unknown candidate")
    scores = np.bincount(c, weights=_w(c.size, weights), minlength=m).astype(float)
    return _pick(scores, rng), scores


def borda(rankings: np.ndarray, m: int, rng: np.random.Generator, weights=None) -> tuple[int, np.ndarray]:
    """Each ballot ranks all candidates (best first); rank r earns m - 1 - r points."""
    r = np.asarray(rankings, dtype=int)
    if r.ndim != 2 or r.shape[1] != m or np.any(np.sort(r, axis=1) != np.arange(m)):
        raise ValueError("a Borda ballot must rank every candidate exactly once")
    points = np.arange(m - 1, -1, -1, dtype=float)[None, :] * _w(r.shape[0], weights)[:, None]
    scores = np.zeros(m)
    np.add.at(scores, r.ravel(), points.ravel())
    return _pick(scores, rng), scores


def approval(approvals: np.ndarray, m: int, rng: np.random.Generator, weights=None) -> tuple[int, np.ndarray]:
    """Each ballot approves any subset (a boolean row); most approvals wins."""
    a = np.asarray(approvals, dtype=bool)
    if a.ndim != 2 or a.shape[1] != m:
        raise ValueError("an approval ballot needs one yes/no per candidate")
    scores = (a * _w(a.shape[0], weights)[:, None]).sum(axis=0).astype(float)
    return _pick(scores, rng), scores


RULES = {"plurality": plurality, "borda": borda, "approval": approval}


def rankings_as_strings(m: int) -> list[str]:
    """Every full ranking of ``m`` candidates as letters, e.g. 'BAC' (for m <= 5)."""
    if m > 5:
        raise ValueError("ranked ballots are offered for at most 5 candidates")
    letters = "ABCDE"[:m]
    return ["".join(p) for p in permutations(letters)]
