"""Archetype pooling: ask the language model for a budget of representatives per step.

Workers are grouped into *cells* by the attributes that enter their prompt
(``workers.llm.pooling.attributes``: population columns such as occupation, sex or
education, and the derived ``age_band``, ``wage_band`` and ``hours_band`` — last year's
hours).  Each step:

1. **Cells.**  Every distinct combination of attribute values is a cell.  When there are
   more cells than the call ``budget``, the smallest cells are merged: at level ``L``
   (the first ``L`` attributes), every cell whose mass is below a threshold joins the
   "rest" cell of its level-``L`` parent; the threshold is the smallest that brings the
   count within the budget, and if even the whole level is too many the next attribute is
   dropped.  Cells are never merged across the first attribute: a budget below the
   number of its occupied values is a user error.
2. **Allocation.**  Every cell gets one representative; the remaining calls go in
   proportion to ``mass x spread`` (Neyman allocation), where ``spread`` is the standard
   deviation of the cell's replies (as deviations, see below) the last time it was asked
   (``prior_spread`` until then), capped at the cell's size; largest remainders break
   ties.
3. **Representatives.**  Within a cell, workers are ordered by a sort value (wage for the
   hours question, post-tax income for the satisfaction question, pre-tax income for
   ballots) and split into as many equal strata as the cell has representatives;
   systematic sampling with one random offset per cell (``model.rng``) picks one
   representative per stratum.  Every worker is assigned the representative of its own
   stratum (the one nearest to it in that order); a representative keeps its own reply.
4. **Carrying replies over** (:func:`carry_hours`, :func:`carry_choice`,
   :func:`carry_ballots`): see each function and docs/agents.md.

Everything here is vectorised numpy over workers; Python loops run over attributes,
merge levels, a bisection on thresholds, and (elsewhere) the prompt strings of
representatives only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator.errors import UserError

if TYPE_CHECKING:
    from simulator.config.schema import PoolingConfig

from simulator.config.pooling import DERIVED  # noqa: E402,F401  (cell attributes computed each step)


# --------------------------------------------------------------------------- cells
def attribute_codes(
    population: pd.DataFrame, names: list[str], cfg: PoolingConfig, last_hours: np.ndarray
) -> np.ndarray:
    """Integer codes, shape ``(n, len(names))``, one column per cell attribute."""
    n = len(population)
    out = np.empty((n, len(names)), dtype=np.int64)
    for j, name in enumerate(names):
        if name == "age_band":
            v, edges = population["age"].to_numpy(float), cfg.age_edges
        elif name == "wage_band":
            v, edges = population["wage"].to_numpy(float), cfg.wage_edges
        elif name == "hours_band":
            v, edges = np.asarray(last_hours, float), cfg.hours_edges
        else:
            if name not in population.columns:
                raise UserError(f"workers.llm.pooling.attributes: {name!r} is not a population column")
            col = population[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                out[:, j] = col.cat.codes.to_numpy(np.int64) + 1  # -1 (missing) -> 0
            else:
                out[:, j] = pd.factorize(col, sort=True)[0].astype(np.int64) + 1
            continue
        out[:, j] = np.clip(np.searchsorted(np.asarray(edges, float), v, side="right") - 1, 0, None)
    return out


def _combine(codes: np.ndarray) -> np.ndarray:
    """One int64 key per row of ``codes`` (mixed radix; dense re-coding if it would overflow)."""
    if codes.shape[1] == 0:
        return np.zeros(codes.shape[0], dtype=np.int64)
    radix = codes.max(axis=0) + 1
    if float(np.prod(radix.astype(float))) < 2.0**62:
        key = np.zeros(codes.shape[0], dtype=np.int64)
        for j in range(codes.shape[1]):
            key = key * radix[j] + codes[:, j]
        return key
    return np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


@dataclass
class Cells:
    """A partition of the workers into cells.

    ``of``: cell index of each worker, shape ``(n,)``; ``keys``: a hashable key per cell
    (``(level, code tuple, rest)``, stable across steps while the population's attributes
    are, used to remember each cell's spread); ``count``: workers per cell; ``mass``:
    population weight per cell.
    """

    of: np.ndarray
    keys: list[tuple]
    count: np.ndarray
    mass: np.ndarray

    @property
    def n(self) -> int:
        return len(self.keys)


def _unique_inverse(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.unique(key, return_inverse=True)`` of non-negative integer keys; by a count
    of every key (linear time) when the keys are below a few times their number, which
    the mixed-radix cell keys of a large population are, else by numpy's sort."""
    n = key.size
    top = int(key.max()) + 1 if n else 0
    if n == 0 or key.min() < 0 or top > max(4 * n, 1 << 16):
        uniq, inv = np.unique(key, return_inverse=True)
        return uniq, inv.reshape(-1)
    present = np.bincount(key, minlength=top) > 0
    uniq = np.flatnonzero(present)
    rank = np.cumsum(present) - 1
    return uniq.astype(key.dtype), rank[key]


def build_cells(codes: np.ndarray, weights: np.ndarray, budget: int, first_name: str = "",
                limit: int | None = None) -> Cells:
    """Cells of the workers (rows of ``codes``), merged to at most ``budget`` cells.

    See the module docstring for the merging rule.  When the occupied values of the first
    attribute alone exceed ``budget`` they are kept as they are if they fit ``limit``
    (the call budget; default ``budget``), else :class:`UserError`.
    """
    limit = budget if limit is None else limit
    n, k = codes.shape
    w = np.asarray(weights, float)
    # per-worker cell at the current state: (level, key at level, rest flag)
    level = k
    key = _combine(codes)
    uniq, of = _unique_inverse(key)
    first = np.zeros(uniq.size, dtype=np.int64)
    first[of[::-1]] = np.arange(n)[::-1]  # a representative row of each cell
    cell_codes = codes[first]
    cell_level = np.full(uniq.size, k)
    cell_rest = np.zeros(uniq.size, dtype=bool)
    while uniq.size > budget:
        if level <= 1:
            if uniq.size <= limit:
                break
            raise UserError(
                f"workers.llm.pooling.budget: {limit} is below the {uniq.size} occupied values of "
                f"the first attribute {first_name!r}, across which cells are never merged"
            )
        level -= 1
        mass = np.bincount(of, weights=w, minlength=uniq.size)
        parent = _combine(cell_codes[:, :level])
        # count after collapsing every cell with mass < t into its parent's rest cell
        order = np.sort(np.unique(mass))

        def count(t: float, mass=mass, parent=parent) -> int:
            small = mass < t
            return int((~small).sum() + np.unique(parent[small]).size)

        full = np.unique(parent).size
        if full > budget:
            # the whole level is too many: collapse to the parent level and go on
            thr = np.inf
        else:
            lo, hi = 0, order.size  # thresholds order[i] (collapse mass < order[i]); inf at size
            while lo < hi:
                mid = (lo + hi) // 2
                if count(order[mid]) <= budget:
                    hi = mid
                else:
                    lo = mid + 1
            thr = order[lo] if lo < order.size else np.inf
        small = mass < thr
        # new per-cell identity: kept cells keep theirs; small ones become parent-rest cells
        new_id_small = np.unique(parent[small], return_inverse=True)[1].reshape(-1)
        n_small = int(new_id_small.max()) + 1 if small.any() else 0
        cell_new = np.empty(uniq.size, dtype=np.int64)
        cell_new[small] = new_id_small
        cell_new[~small] = n_small + np.arange(int((~small).sum()))
        m = n_small + int((~small).sum())
        of = cell_new[of]
        first2 = np.zeros(m, dtype=np.int64)
        first2[of[::-1]] = np.arange(n)[::-1]
        lvl = np.empty(m, dtype=np.int64)
        rest = np.empty(m, dtype=bool)
        lvl[cell_new[~small]] = cell_level[~small]
        rest[cell_new[~small]] = cell_rest[~small]
        lvl[:n_small] = level
        rest[:n_small] = True
        cell_level, cell_rest, cell_codes = lvl, rest, codes[first2]
        uniq = np.arange(m)
    keys = [
        (int(lv), tuple(int(c) for c in cc[:lv]), bool(r))
        for lv, cc, r in zip(cell_level, cell_codes, cell_rest, strict=True)
    ]
    count = np.bincount(of, minlength=len(keys))
    mass = np.bincount(of, weights=w, minlength=len(keys))
    return Cells(of=of.astype(np.int64), keys=keys, count=count, mass=mass)


# --------------------------------------------------------------------------- allocation
def neyman_allocation(mass: np.ndarray, count: np.ndarray, spread: np.ndarray, budget: int) -> np.ndarray:
    """Representatives per cell: one each, the rest in proportion to ``mass * spread``.

    At most ``count`` per cell; largest remainders round; calls left over when every cell
    is full are not spent.  Returns an int array summing to ``min(budget, count.sum())``.
    """
    c = mass.size
    if budget < c:
        raise ValueError(f"budget {budget} below the number of cells {c}")
    reps = np.ones(c, dtype=np.int64)
    left = int(min(budget, count.sum()) - c)
    score = np.maximum(mass, 0) * np.maximum(spread, 0) + 1e-12 * np.maximum(mass, 1e-300)
    for _ in range(64):
        if left <= 0:
            break
        room = count - reps
        open_ = room > 0
        if not open_.any():
            break
        s = np.where(open_, score, 0.0)
        share = s / s.sum() * left
        add = np.floor(share).astype(np.int64)
        rest = left - int(add.sum())
        if rest > 0:  # largest remainders
            frac = np.where(open_, share - add, -1.0)
            top = np.argsort(-frac, kind="stable")[:rest]
            add[top[open_[top]]] += 1
        add = np.minimum(add, room)
        if add.sum() == 0:
            break
        reps += add
        left -= int(add.sum())
    return reps


@dataclass
class Plan:
    """Who is asked this step and whose reply each worker takes.

    ``reps``: worker indices of the representatives, ordered by (cell, stratum);
    ``rep_cell``: their cells; ``slot``: for every worker, the index into ``reps`` of its
    stratum's representative; ``cells``: the partition.
    """

    cells: Cells
    reps: np.ndarray
    rep_cell: np.ndarray
    slot: np.ndarray
    per_cell: np.ndarray
    codes: np.ndarray | None = None
    #: :func:`attribute_effects`'s factorised design per set of valid replies (the
    #: replies change between the error model's replicates, the design does not)
    fits: dict = field(default_factory=dict, init=False, repr=False, compare=False)


def choose_representatives(
    cells: Cells, per_cell: np.ndarray, sort_value: np.ndarray, rng: np.random.Generator,
    value_order: np.ndarray | None = None,
) -> Plan:
    """Systematic sampling within cells ordered by ``sort_value`` (see module docstring).

    ``value_order``: ``numpy.argsort(sort_value, kind="stable")`` when already known (the
    wages do not change during a run): the order within cells is then one stable sort of
    the cell indices, the same order as ``numpy.lexsort((sort_value, cells.of))``."""
    n = cells.of.size
    if value_order is None:
        order = np.lexsort((sort_value, cells.of))
    else:
        of = cells.of.astype(np.int16 if cells.n < 2**15 else np.int64)  # (a radix sort)
        order = value_order[np.argsort(of[value_order], kind="stable")]
    start = np.concatenate([[0], np.cumsum(cells.count)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start[cells.of[order]]
    cnt, k = cells.count, per_cell
    # stratum of each worker within its cell, and the representative position of each stratum
    stratum = (rank * k[cells.of]) // np.maximum(cnt[cells.of], 1)
    rep_cell = np.repeat(np.arange(cells.n), k)
    first_slot = np.concatenate([[0], np.cumsum(k)[:-1]])
    j = np.arange(rep_cell.size) - first_slot[rep_cell]
    u = rng.random(cells.n)
    # stratum j holds ranks ceil(j c / k) .. ceil((j + 1) c / k) - 1, exactly the workers
    # ``stratum`` maps to it, so a representative is always a member of its own stratum
    lo = -((-j * cnt[rep_cell]) // k[rep_cell])
    hi = -((-(j + 1) * cnt[rep_cell]) // k[rep_cell])
    pos = lo + np.minimum((u[rep_cell] * (hi - lo)).astype(np.int64), hi - lo - 1)
    reps = order[start[rep_cell] + pos]
    slot = first_slot[cells.of] + stratum
    slot[reps] = np.arange(reps.size)  # a representative takes its own reply
    return Plan(cells=cells, reps=reps, rep_cell=rep_cell, slot=slot, per_cell=k)


def nearest_valid(plan: Plan, valid: np.ndarray) -> np.ndarray:
    """For each representative slot, the nearest slot of the same cell with a valid reply
    (itself when valid; -1 when the cell has none)."""
    r = valid.size
    idx = np.arange(r)
    prev = np.where(valid, idx, -1)
    prev = np.maximum.accumulate(prev)
    nxt = np.where(valid, idx, r)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    cell = plan.rep_cell
    ok_prev = (prev >= 0) & (cell[np.clip(prev, 0, r - 1)] == cell)
    ok_next = (nxt < r) & (cell[np.clip(nxt, 0, r - 1)] == cell)
    d_prev = np.where(ok_prev, idx - prev, np.iinfo(np.int64).max)
    d_next = np.where(ok_next, nxt - idx, np.iinfo(np.int64).max)
    out = np.where(d_prev <= d_next, prev, nxt)
    return np.where(ok_prev | ok_next, out, -1)


# --------------------------------------------------------------------------- carrying over
def slot_weights(plan: Plan, weights: np.ndarray | None) -> np.ndarray:
    """Population weight each representative stands for (its stratum's mass), ``(R,)``."""
    w = None if weights is None else np.asarray(weights, float)
    return np.bincount(plan.slot, weights=w, minlength=plan.reps.size).astype(float)


def attribute_effects(codes: np.ndarray, plan: Plan, values: np.ndarray, valid: np.ndarray,
                      weights: np.ndarray | None = None,
                      rows: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Additive attribute effects on ``values`` fitted on the representatives.

    A weighted least-squares fit (weights: the population mass each representative
    stands for, :func:`slot_weights`) of the representatives' ``values`` on an intercept
    and one indicator per value of every cell attribute (main effects, minimum-norm
    solution, so values no representative has get no effect).  With the intercept in the
    design the weighted residuals sum to zero, so the pooled mean deviation is the
    regression (GREG) estimator over the population's own attributes.  Returns the
    prediction for every worker (``(n,)``, from per-attribute lookups, no ``n x p``
    matrix) and the number of effective parameters (the design's rank); ``rows``:
    the prediction for those workers only (``(len(rows),)``).

    (A ridge penalty on the effects was tried: it shrinks the between-attribute part of
    workers whose cell was merged and biases the SD of hours down by 5-9 % at small
    budgets; plain least squares keeps it unbiased.)
    """
    n, k = codes.shape
    shape = plan.fits.get(("radix", id(codes)))
    if shape is None:  # (one pass over every worker's codes per plan, not per fit)
        radix = codes.max(axis=0) + 1
        shape = plan.fits[("radix", id(codes))] = (radix, np.concatenate([[1], 1 + np.cumsum(radix)[:-1]]))
    radix, offset = shape
    reps = plan.reps[valid]
    r = reps.size
    out_codes = codes if rows is None else codes[rows]
    if r < 2:
        mean = float(values[valid].mean()) if r else 0.0
        return np.full(out_codes.shape[0], mean), 1
    key = (np.asarray(valid, dtype=bool).tobytes(), None if weights is None else id(weights), id(codes))
    fit = plan.fits.get(key)
    if fit is None:
        p = int(1 + radix.sum())
        x = np.zeros((r, p))
        x[:, 0] = 1.0
        rows_r = np.arange(r)
        for j in range(k):
            x[rows_r, offset[j] + codes[reps, j]] = 1.0
        w = slot_weights(plan, weights)[valid]
        sw = np.sqrt(np.maximum(w, 1e-12 * max(float(w.max()), 1e-300)))
        # the minimum-norm least-squares solution as numpy.linalg.lstsq (rcond=None)
        # computes it, from the SVD: singular values below eps * max(r, p) * s_max dropped
        u, sv, vt = np.linalg.svd(x * sw[:, None], full_matrices=False)
        keep = sv > np.finfo(float).eps * max(x.shape) * (sv[0] if sv.size else 0.0)
        proj = (vt[keep].T / sv[keep]) @ u[:, keep].T  # (p, r): coef = proj @ (y * sw)
        fit = plan.fits[key] = (proj, sw, int(keep.sum()))
    proj, sw, rank = fit
    coef = proj @ (values[valid] * sw)
    pred = np.full(out_codes.shape[0], coef[0])
    for j in range(k):
        pred += coef[offset[j]:offset[j] + radix[j]][out_codes[:, j]]
    return pred, int(rank)


@dataclass
class Deviations:
    """The model's replies this step split as the carry-over rule uses them (hours a week).

    ``pred``: the attribute prediction of every worker's deviation from its own best
    response, ``(n,)``; ``resid``: each representative's deviation minus its prediction,
    ``(R,)`` (0 where its reply is unusable); ``sigma``: the idiosyncratic SD of replies,
    ``sqrt(sum w resid^2 / sum w * r / (r - df))`` over the ``r`` valid replies (weighted
    by stratum mass, corrected for the ``df`` effective parameters of the fit: in-sample
    residuals carry only ``(r - df) / r`` of the noise variance).
    """

    pred: np.ndarray
    resid: np.ndarray
    sigma: float


def split_deviations(plan: Plan, rep_hours: np.ndarray, valid: np.ndarray, rational: np.ndarray,
                     codes: np.ndarray | None = None, weights: np.ndarray | None = None) -> Deviations:
    """Fit the attribute effects on this step's replies and return :class:`Deviations`."""
    dev_rep = np.where(valid, rep_hours - rational[plan.reps], 0.0)
    r = int(valid.sum())
    if codes is not None and r >= 2:
        pred, df = attribute_effects(codes, plan, dev_rep, valid, weights)
    else:  # no attribute model: the whole deviation is carried
        pred, df = np.zeros(rational.size), 1.0
    resid = np.where(valid, dev_rep - pred[plan.reps], 0.0)
    sigma = 0.0
    if r >= 2:
        w = slot_weights(plan, weights)[valid]
        e = resid[valid] - (np.average(resid[valid], weights=w) if codes is None else 0.0)
        var = float(np.sum(w * e**2) / max(w.sum(), 1e-300))
        sigma = float(np.sqrt(var * r / max(r - df, 1.0)))
    return Deviations(pred=pred, resid=resid, sigma=sigma)


def carry_hours(
    plan: Plan, rep_hours: np.ndarray, valid: np.ndarray, rational: np.ndarray,
    fallback: np.ndarray, bounds: tuple[float, float], codes: np.ndarray | None = None,
    weights: np.ndarray | None = None, split: Deviations | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hours a week for every worker from its representative's reply.

    The representative's *deviation from its own rational best response*
    (``reply - rational[rep]``, hours a week) is carried to the worker: the worker takes
    its own rational best response under the same schedule and rebate, plus the part of
    the deviation its attributes predict (:func:`attribute_effects` fitted on this step's
    representatives, when ``codes`` are given), plus its representative's residual
    (deviation minus what the representative's attributes predict, *unscaled*), rounded
    to whole hours and clipped to ``bounds``.  For a worker with its representative's
    attributes this is exactly the representative's deviation, so the pooled spread of
    hours is the representatives' spread, weighted by the workers each stands for: it is
    neither shrunk nor inflated (an earlier rule scaled the residuals by
    ``sqrt(r / (r - rank))``, which double-counted the noise the fitted effects already
    carry and overstated the SD of hours by about ``sigma^2 rank / r``).  A
    representative keeps its reply.  When a representative's reply is unusable the
    nearest valid representative of the same cell stands in; a cell with no valid reply
    gives its workers ``fallback``.  ``split``: the fit, when the caller already has it
    (:func:`split_deviations`).  Returns ``(hours, used)``.
    """
    src = nearest_valid(plan, valid)
    if split is None:
        split = split_deviations(plan, rep_hours, valid, rational, codes, weights)
    dev = np.where(src >= 0, split.resid[np.clip(src, 0, None)], 0.0)
    s = plan.slot
    used = src[s] >= 0
    hours = np.where(used, np.rint(rational + split.pred + dev[s]), fallback)
    hours[plan.reps[valid]] = rep_hours[valid]
    return np.clip(hours, *bounds), used


def carry_choice(plan: Plan, rep_value: np.ndarray, valid: np.ndarray, default: Any) -> tuple[np.ndarray, np.ndarray]:
    """A categorical answer (e.g. satisfied yes/no) for every worker: its stratum's
    representative's answer.  The strata follow the within-cell order the plan was made
    with (post-tax income for the satisfaction question: quantile matching within the
    cell).  Unusable replies: nearest valid representative of the cell, else ``default``."""
    src = nearest_valid(plan, valid)
    got = src[plan.slot]
    vals = np.where(got >= 0, rep_value[np.clip(got, 0, None)], default)
    return vals, got >= 0


def carry_ballots(plan: Plan, rep_ballots: np.ndarray, valid: np.ndarray, own_values: np.ndarray,
                  rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Ballots for every voter from its representative's, in *own-ranking* terms.

    ``own_values``: shape ``(voters, m)``, what each platform means for each voter (its
    take-home pay).  A representative's ballot is rewritten as positions in its own
    ranking of the platforms (best first), and the voter casts the ballot at the same
    positions of its own ranking: a representative that voted for its own best platform
    makes its voters vote for theirs; one that ranked its own second-best first makes
    them rank their own second-best first.  ``rep_ballots``: plurality ``(R,)`` platform
    indices; borda ``(R, m)`` rankings; approval ``(R, m)`` booleans.  Representatives
    keep their own ballots; voters whose cell has no valid ballot get ``None`` rows
    marked unused (the caller applies its fallback).
    """
    order = np.argsort(-own_values, axis=1, kind="stable")  # platform at each own position
    pos_of = np.argsort(order, axis=1, kind="stable")       # own position of each platform
    reps = plan.reps
    src = nearest_valid(plan, valid)
    got = src[plan.slot]
    use = np.clip(got, 0, None)
    if rule == "plurality":
        rep_pos = pos_of[reps, :][np.arange(reps.size), rep_ballots]     # (R,)
        ballots = order[np.arange(order.shape[0]), rep_pos[use]]
        ballots[reps[valid]] = rep_ballots[valid]
    elif rule == "borda":
        rep_pos = np.take_along_axis(pos_of[reps], rep_ballots, axis=1)    # (R, m) positions
        ballots = np.take_along_axis(order, rep_pos[use], axis=1)
        ballots[reps[valid]] = rep_ballots[valid]
    else:
        # approval: approve the same own positions
        rep_pos_ok = np.take_along_axis(rep_ballots, order[reps], axis=1)  # by own position
        ballots = np.take_along_axis(rep_pos_ok[use], pos_of, axis=1)
        ballots[reps[valid]] = rep_ballots[valid]
    return ballots, got >= 0


# --------------------------------------------------------------------------- state
@dataclass
class PoolingState:
    """What pooling remembers between steps: the spread of each cell's earlier replies,
    per question (``"hours"``, ``"satisfaction"``, ``"vote"``) as ``(sd, replies)``, and
    ``asks``, the count of hours questions asked so far (it seeds requests, see
    :func:`simulator.sim.workers.streaming.worker_seeds`).  Implements the checkpoint
    convention (``checkpoint_state`` / ``restore_state``)."""

    spreads: dict[str, dict[tuple, tuple[float, int]]] = field(default_factory=dict)
    asks: int = 0
    #: codes of the attributes that do not change during a run (all but ``hours_band``),
    #: computed once per population frame (:func:`make_plan`); not checkpointed
    static_codes: dict = field(default_factory=dict, repr=False, compare=False)

    def value_order(self, sort_value: np.ndarray) -> np.ndarray:
        """``argsort(sort_value, kind="stable")``, kept while the same array is passed
        (the wages of the hours question) and recomputed for any other."""
        got = self.static_codes.get("order")
        if got is None or got[0] is not sort_value:
            got = self.static_codes["order"] = (sort_value, np.argsort(sort_value, kind="stable"))
        return got[1]

    def codes_for(self, population: pd.DataFrame, names: list[str], cfg: PoolingConfig,
                  last_hours: np.ndarray, subset: np.ndarray | None = None) -> np.ndarray:
        """:func:`attribute_codes` of ``population`` (rows ``subset``), the static
        columns taken from the codes computed at the first call for this frame."""
        key = (tuple(names), tuple(cfg.age_edges), tuple(cfg.wage_edges))
        got = self.static_codes.get(key)
        if got is None or got[0] is not population:  # (the frame itself is kept: no id reuse)
            fixed = [nm for nm in names if nm != "hours_band"]
            got = (population, attribute_codes(population, fixed, cfg, np.zeros(len(population))))
            for old_key in [k for k in self.static_codes if k != "order"]:
                del self.static_codes[old_key]
            self.static_codes[key] = got
        fixed_codes = got[1] if subset is None else got[1][subset]
        lh = last_hours if subset is None else last_hours[subset]
        out = np.empty((fixed_codes.shape[0], len(names)), dtype=np.int64)
        j_fixed = 0
        for j, nm in enumerate(names):
            if nm == "hours_band":
                out[:, j] = np.clip(np.searchsorted(np.asarray(cfg.hours_edges, float),
                                                    np.asarray(lh, float), side="right") - 1, 0, None)
            else:
                out[:, j] = fixed_codes[:, j_fixed]
                j_fixed += 1
        return out

    def spread_of(self, question: str, cells: Cells, prior: float, prior_df: float = 10.0) -> np.ndarray:
        """Each cell's spread for the allocation: its last measured SD shrunk towards the
        pooled SD of all cells, ``sqrt(((k - 1) s^2 + prior_df s_pool^2) / (k - 1 + prior_df))``
        with ``k`` the replies it was measured on (an SD from two replies alone is too noisy
        to steer calls); ``prior`` before any cell was measured."""
        known = self.spreads.get(question, {})
        if not known:
            return np.full(cells.n, prior)
        sds = np.array([v[0] for v in known.values()])
        ks = np.array([v[1] for v in known.values()], dtype=float)
        pooled = float(np.sqrt(np.sum((ks - 1) * sds**2) / max(np.sum(ks - 1), 1e-12)))
        got = [known.get(key) for key in cells.keys]
        sd = np.array([g[0] if g else pooled for g in got])
        k = np.array([g[1] if g else 1 for g in got], dtype=float)
        return np.sqrt(((k - 1) * sd**2 + prior_df * pooled**2) / (k - 1 + prior_df))

    def remember(self, question: str, plan: Plan, values: np.ndarray, valid: np.ndarray) -> float:
        """Store each asked cell's SD of ``values`` (over valid representatives) and how
        many replies it rests on; return the mass-weighted mean within-cell SD (cells with
        one valid reply count as 0)."""
        c = plan.cells.n
        cell = plan.rep_cell[valid]
        v = values[valid].astype(float)
        k = np.bincount(cell, minlength=c)
        s1 = np.bincount(cell, weights=v, minlength=c)
        s2 = np.bincount(cell, weights=v * v, minlength=c)
        mean = s1 / np.maximum(k, 1)
        var = np.maximum(s2 / np.maximum(k, 1) - mean**2, 0.0) * k / np.maximum(k - 1, 1)
        sd = np.sqrt(var)
        known = self.spreads.setdefault(question, {})
        for i in np.flatnonzero(k >= 2):
            known[plan.cells.keys[i]] = (float(sd[i]), int(k[i]))
        m = plan.cells.mass
        return float(np.sum(m * sd) / max(m.sum(), 1e-300))

    def checkpoint_state(self) -> dict:
        return {"spreads": {q: dict(d) for q, d in self.spreads.items()}, "asks": self.asks}

    def restore_state(self, state: dict) -> None:
        self.spreads = {q: dict(d) for q, d in state.get("spreads", {}).items()}
        self.asks = int(state.get("asks", 0))


def make_plan(
    population: pd.DataFrame, cfg: PoolingConfig, weights: np.ndarray | None, last_hours: np.ndarray,
    sort_value: np.ndarray, state: PoolingState, question: str, rng: np.random.Generator,
    budget: int | None = None, subset: np.ndarray | None = None, scale: np.ndarray | None = None,
) -> Plan:
    """Cells, Neyman allocation and representatives for one question this step.

    ``subset``: restrict to these workers (e.g. the voters); plan indices then refer to
    positions in ``subset``.
    """
    codes = state.codes_for(population, list(cfg.attributes), cfg, last_hours, subset)
    n = codes.shape[0]
    w = np.ones(n) if weights is None else (weights if subset is None else weights[subset])
    b = int(cfg.budget if budget is None else budget)
    cells = build_cells(codes, w, max(1, int(b * cfg.cell_share)), cfg.attributes[0], limit=b)
    spread = state.spread_of(question, cells, cfg.prior_spread if question == "hours" else 0.5)
    if scale is not None:
        sc = np.asarray(scale if subset is None else scale[subset], float)
        rms = np.sqrt(np.bincount(cells.of, weights=w * sc * sc, minlength=cells.n) / np.maximum(cells.mass, 1e-300))
        spread = spread * rms
    per_cell = neyman_allocation(cells.mass, cells.count, spread, b)
    plan = choose_representatives(cells, per_cell, sort_value, rng,
                                  state.value_order(sort_value) if subset is None else None)
    plan.codes = codes
    return plan
