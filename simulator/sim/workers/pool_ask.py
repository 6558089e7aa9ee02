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
from simulator.economy.outcome import evaluate
from simulator.economy.tax import TaxSchedule
from simulator.economy.welfare import social_welfare
from simulator.sim.workers.pool_plan import Plan, carry_choice, carry_hours, make_plan

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
    rational = best_response(schedule, model.wages, model.utility, rebate, model.hours_bounds)
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
    hours, used = carry_hours(plan, rep_hours, rep_ok, rational, fallback.astype(float), model.hours_bounds,
                              codes=plan.codes)
    disp = policy.pool_state.remember("hours", plan, rep_hours - rational[plan.reps], rep_ok)
    model.stats.add(pool_calls=who.size)
    model.stats.set(pool_cells=float(plan.cells.n), pool_representatives=float(r),
                            pool_dispersion=disp)
    if checked.size:
        direct_ok = ok[r:]
        s = checked[direct_ok]
        if s.size:
            direct = np.clip(replies[r:][direct_ok], *model.hours_bounds)
            errs = check_errors(model, schedule, s, hours[s], direct)
            model.stats.set(pool_check_n=float(s.size), **errs)
    return hours, used


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
        o = evaluate(schedule, model.wages[idx], h, u, model.rebate_share, w)
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
