"""LLM workers under archetype pooling: the hours question, the satisfaction question and
ballots asked of representatives only (:mod:`simulator.sim.workers.pool_plan` holds the cells,
allocation and carry-over rules; this module connects them to the LLM worker policy).

Per step it adds to the year record (``model.stats``): ``pool_calls`` (model calls
of the pooled questions this year, checks included), ``pool_cells``,
``pool_representatives``, ``pool_dispersion`` (mass-weighted mean within-cell SD of the
representatives' deviations from their rational best response, hours a week) and, with
``pooling.check: N``, ``pool_check_n`` and the relative errors
``pool_check_err_mean_hours``, ``pool_check_err_revenue``, ``pool_check_err_objective``
of the pooled decisions against one call per worker on a random subsample of N
non-representative workers (each evaluated as an economy of its own: hours, taxes, the
subsample's own rebate, the scenario's objective).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.economy.best_response import best_response
from simulator.economy.participation import intensive
from simulator.economy.tax import TaxSchedule
from simulator.economy.welfare import social_welfare
from simulator.sim.workers.pool_plan import (
    Deviations,
    Plan,
    attribute_effects,
    carry_choice,
    carry_hours,
    make_plan,
    nearest_valid,
    split_deviations,
)

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel
    from simulator.sim.workers.llm import LLMWorkerPolicy


def _last_hours(model: EconomyModel) -> np.ndarray:
    return model.agent_years[-1]["hours"] if model.agent_years else model.usual_hours


def ask_hours_pooled(
    policy: LLMWorkerPolicy, model: EconomyModel, schedule: TaxSchedule, rebate: float,
    explore: bool, fallback: np.ndarray, check: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Hours for every worker from the replies of this step's representatives."""
    pc = policy.options.pooling
    rational = best_response(model.budget(schedule), model.wages, model.utility, rebate,
                             model.hours_bounds)
    plan = make_plan(model.population, pc, model.weights, _last_hours(model), model.wages,
                     policy.pool_state, "hours", model.rng, scale=model.wages)
    checked = np.zeros(0, dtype=np.int64)
    if check and pc.check:
        others = np.setdiff1d(np.arange(model.n_workers), plan.reps, assume_unique=True)
        if others.size:
            # a stream of its own (run seed, ask number): the check observes the run without
            # consuming model.rng, so check: N leaves every decision of the run unchanged
            rng = np.random.default_rng(np.random.SeedSequence(
                [model.settings.run.seed, 0x434845434B, policy.pool_state.asks]))
            checked = np.sort(rng.choice(others, min(pc.check, others.size), replace=False))
    who = np.concatenate([plan.reps, checked])
    replies, ok = policy._ask(model, schedule, rebate, explore, who)
    r = plan.reps.size
    rep_hours, rep_ok = replies[:r], ok[:r]
    if model.participation:
        hours, used, split = _carry_with_participation(model, schedule, rebate, plan, rep_hours, rep_ok,
                                                       fallback)
    else:
        split = split_deviations(plan, rep_hours, rep_ok, rational, plan.codes, model.weights)
        hours, used = carry_hours(plan, rep_hours, rep_ok, rational, fallback.astype(float),
                                  model.hours_bounds, split=split)
    disp = policy.pool_state.remember("hours", plan, rep_hours - rational[plan.reps], rep_ok)
    model.stats.add(pool_calls=who.size)
    model.stats.set(pool_cells=float(plan.cells.n), pool_representatives=float(r),
                            pool_dispersion=disp, pool_noise_sd=split.sigma)
    if check and pc.error_replicates and rep_ok.sum() >= 2:
        # a stream of its own (run seed, ask number): the error model draws no model.rng
        rng = np.random.default_rng(np.random.SeedSequence(
            [model.settings.run.seed, 0x5345, policy.pool_state.asks]))
        model.stats.set(**pooling_errors(model, schedule, plan, split, rational, rep_ok,
                                         pc.error_replicates, rng))
    if checked.size:
        direct_ok = ok[r:]
        s = checked[direct_ok]
        if s.size:
            direct = model.clip_hours(replies[r:][direct_ok])
            errs = check_errors(model, schedule, s, hours[s], direct)
            model.stats.set(pool_check_n=float(s.size), **errs)
    return hours, used


def _carry_with_participation(model: EconomyModel, schedule: TaxSchedule, rebate: float, plan: Plan,
                              rep_hours: np.ndarray, rep_ok: np.ndarray, fallback: np.ndarray):
    """Carry-over when people may not work: participation is part of the reply
    distribution.  Each worker works exactly when its stratum's representative does
    (:func:`carry_choice`: a cell's share not working carries over, weighted by the
    workers each representative stands for); a worker who works takes its own best
    *positive* hours (the intensive best response with its fixed cost paid) plus the
    deviation of the working representatives (:func:`carry_hours` fitted on the working
    representatives only), at least 1 hour.  Representatives keep their replies."""
    u = model.utility
    positive = best_response(model.budget(schedule), model.wages, intensive(u),
                             rebate - np.asarray(u.fixed_cost, dtype=float), model.hours_bounds)
    working = rep_ok & (rep_hours > 0)
    split = split_deviations(plan, rep_hours, working, positive, plan.codes, model.weights)
    if working.any():
        pos_hours, _ = carry_hours(plan, rep_hours, working, positive, fallback.astype(float),
                                   model.hours_bounds, split=split)
    else:
        pos_hours = positive
    works, got = carry_choice(plan, rep_hours > 0, rep_ok, False)
    works = np.where(got, works, fallback > 0)
    hours = np.where(works, np.maximum(np.where(pos_hours > 0, pos_hours, np.rint(positive)), 1.0), 0.0)
    hours[plan.reps[rep_ok]] = rep_hours[rep_ok]
    return model.clip_hours(hours), got, split


#: the aggregates :func:`pooling_errors` and ``check`` compare
ERROR_METRICS = ("mean_hours", "revenue", "objective", "sd_hours")


def _aggregates(model: EconomyModel, schedule: TaxSchedule, hours: np.ndarray,
                idx: np.ndarray | None = None) -> np.ndarray:
    """(R, 4) mean hours, revenue, objective and SD of hours of each row of ``hours``
    (of workers ``idx``, an economy of their own, when given)."""
    w = model.weights if idx is None or model.weights is None else model.weights[idx]
    u = None if idx is None else model.utility_subset(idx)
    obj = model.settings.planner.objective
    out = np.empty((hours.shape[0], len(ERROR_METRICS)))
    for k, h in enumerate(hours):
        o = model.evaluate(schedule, h, idx=idx, utility=u)
        mean = float(np.average(h, weights=w))
        out[k] = (mean, float(o.revenue), float(social_welfare(obj.swf, o, **obj.params())),
                  float(np.sqrt(np.average((h - mean) ** 2, weights=w))))
    return out


#: workers the error model replicates at most (a uniform sample above it, see below)
ERROR_SAMPLE = 50_000


def pooling_errors(model: EconomyModel, schedule: TaxSchedule, plan: Plan, split: Deviations,
                   rational: np.ndarray, valid: np.ndarray, replicates: int,
                   rng: np.random.Generator, sample: int = ERROR_SAMPLE,
                   per_representative: int = 100) -> dict[str, float]:
    """Standard errors of this step's pooled aggregates against one call per worker.

    The error model of docs/agents.md ("Error bounds"): every worker's reply is its own
    best response plus the fitted attribute effect (``split.pred``) plus independent
    noise of SD ``split.sigma``, rounded and clipped as replies are.  Each replicate draws
    that noise for every worker, takes the representatives' draws as their replies,
    refits and carries them over exactly as the run does (:func:`carry_hours`), and
    compares the pooled aggregates with those of the direct draws (every worker its own
    reply).  Returns ``pool_se_<metric>``: the root-mean-square relative error over the
    replicates (bias included), for mean hours, revenue, the objective and the SD of
    hours.  For mean hours without the attribute refit (``plan.codes`` None) this
    reproduces the closed form ``sigma sqrt(sum_r m_r (m_r - 1)) / N`` (equal weights,
    strata of ``m_r`` workers); the refit adds the regression estimator's overfit
    variance, about ``rank / r`` of it; the replicates extend both to the non-linear
    aggregates.

    Above ``max(sample, per_representative * r)`` workers the aggregates of each
    replicate are those of a uniform sample of that many workers (drawn once per call from ``rng``), each taking the
    pooled hours its representative's draw gives it (the refit still uses every
    representative's draw): an economy of its own, as the ``check`` subsample is.  The
    sample adds the sampling variance of a difference of per-worker terms, about
    ``2 sigma^2 / S`` to the squared error of mean hours for a sample of ``S`` workers,
    against ``sigma^2 / r`` from ``r`` representatives: a share ``2 r / S`` of the
    variance, so about 1 % of the standard error with 100 sampled workers per
    representative (exactly, for mean hours without the refit: the closed form's
    ``sum_r m_r^2 / N^2`` plus ``(2 - f) / S`` for a sample that is a fraction ``f``
    of the workers); in exchange a replicate costs a fixed sample, not the population
    (at 1 M workers and 500 calls, a twentieth).
    """
    lo, hi = model.hours_bounds
    n = rational.size
    sample = max(int(sample), per_representative * plan.reps.size)  # (the bound above)
    rows = None if n <= sample else np.sort(rng.choice(n, sample, replace=False))
    rel = np.empty((replicates, len(ERROR_METRICS)))
    for k in range(replicates):  # one replicate at a time: two (n,) arrays, not (R, n)
        if rows is None:
            base = rational + split.pred
            direct = np.clip(np.rint(base + rng.normal(0.0, split.sigma, n)), lo, hi)
            h, used = carry_hours(plan, direct[plan.reps], valid, rational, direct, (lo, hi),
                                  codes=plan.codes, weights=model.weights)
            pooled = np.where(used, h, direct)
            a, b = _aggregates(model, schedule, np.stack([direct, pooled]))
        else:
            direct, pooled = _sampled_replicate(model, plan, split, rational, valid, rows, rng)
            a, b = _aggregates(model, schedule, np.stack([direct, pooled]), rows)
        rel[k] = (b - a) / np.maximum(np.abs(a), 1e-12)
    se = np.sqrt(np.mean(rel**2, axis=0))
    return {f"pool_se_{m}": float(v) for m, v in zip(ERROR_METRICS, se, strict=True)}


def _sampled_replicate(model: EconomyModel, plan: Plan, split: Deviations, rational: np.ndarray,
                       valid: np.ndarray, rows: np.ndarray, rng: np.random.Generator):
    """One replicate of :func:`pooling_errors` on the workers ``rows``: their direct
    draws and pooled hours (:func:`carry_hours`'s rule, evaluated for ``rows`` only)."""
    lo, hi = model.hours_bounds
    reps = plan.reps
    r = reps.size
    need = np.concatenate([reps, rows])  # the representatives' draws refit the effects
    pred_need = split.pred[need]
    direct_need = np.clip(np.rint(rational[need] + pred_need + rng.normal(0.0, split.sigma, need.size)),
                          lo, hi)
    rep_draw = direct_need[:r]
    direct = direct_need[r:]
    # the refit on the representatives' draws (split_deviations, for reps and rows only)
    dev_rep = np.where(valid, rep_draw - rational[reps], 0.0)
    if plan.codes is not None and int(valid.sum()) >= 2:
        pred, _ = attribute_effects(plan.codes, plan, dev_rep, valid, model.weights, rows=need)
    else:
        pred = np.zeros(need.size)
    resid = np.where(valid, dev_rep - pred[:r], 0.0)
    src = nearest_valid(plan, valid)
    dev = np.where(src >= 0, resid[np.clip(src, 0, None)], 0.0)
    slot = plan.slot[rows]
    used = src[slot] >= 0
    pooled = np.where(used, np.rint(rational[rows] + pred[r:] + dev[slot]), direct)
    is_rep = np.zeros(model.n_workers, dtype=bool)
    is_rep[reps[valid]] = True
    pooled = np.where(is_rep[rows], direct, np.clip(pooled, lo, hi))  # representatives keep theirs
    return direct, pooled


def check_errors(model: EconomyModel, schedule: TaxSchedule, idx: np.ndarray,
                 pooled: np.ndarray, direct: np.ndarray) -> dict[str, float]:
    """Relative errors (pooled - direct) / |direct| of mean hours, revenue per person and
    the objective, on the workers ``idx`` treated as an economy of their own."""
    w = None if model.weights is None else model.weights[idx]
    u = model.utility_subset(idx)
    obj = model.settings.planner.objective
    out = {}
    res = {}
    for name, h in (("pooled", pooled), ("direct", direct)):
        o = model.evaluate(schedule, h, idx=idx, utility=u)
        res[name] = {
            "mean_hours": float(np.average(h, weights=w)),
            "revenue": float(o.revenue),
            "objective": float(social_welfare(obj.swf, o, **obj.params())),
        }
    for k in ("mean_hours", "revenue", "objective"):
        d = res["direct"][k]
        out[f"pool_check_err_{k}"] = (res["pooled"][k] - d) / max(abs(d), 1e-12)
    return out


def satisfaction_pooled(policy: LLMWorkerPolicy, model: EconomyModel, system: str) -> tuple[np.ndarray, np.ndarray]:
    """The satisfaction question asked of representatives; every worker takes the answer
    of the representative of its stratum, strata ordered by post-tax income within the
    cell (quantile matching).  Returns ``(satisfied, invalid)``."""
    pc = policy.options.pooling
    o = model.outcome
    plan = make_plan(model.population, pc, model.weights, o.hours, o.post_tax,
                     policy.pool_state, "satisfaction", model.rng)
    sat, invalid = policy._ask_satisfaction(model, system, plan.reps)
    rep_ok = ~invalid
    satisfied, got = carry_choice(plan, sat, rep_ok, True)
    policy.pool_state.remember("satisfaction", plan, sat.astype(float), rep_ok)
    model.stats.add(pool_calls=plan.reps.size)
    return satisfied.astype(bool), ~got


def vote_plan(model: EconomyModel, voters: np.ndarray, sort_value: np.ndarray) -> Plan | None:
    """A plan over ``voters`` (positions in the voter array) when LLM workers are pooled,
    else ``None``: elections then ask representatives only (see
    :func:`simulator.sim.workers.pool_plan.carry_ballots`)."""
    pc = model.settings.workers.llm.pooling
    state = model.policy.pool_state
    if pc is None or state is None or voters.size <= pc.budget:
        return None
    return make_plan(model.population, pc, model.weights, _last_hours(model), sort_value, state,
                     "vote", model.rng, subset=voters)
