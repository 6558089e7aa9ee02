"""Planner strategies: who sets the tax schedule each year, and how.

A strategy implements ``propose(model) -> TaxSchedule`` (called at the start of every
tax year) and ``observe(model, record)`` (called at its end with the year's outcome
record).  Kinds: fixed, us_federal, flat, grid, saez, optimum, (with LLMs) llm, and search (a
black-box optimiser, ``simulator.sim.planners.search``); a democracy wraps any of them with
elections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.economy.elasticity import estimate_elasticity
from simulator.economy.optimum import optimal_schedule
from simulator.economy.saez import saez_bracket_rates
from simulator.economy.tax import TaxSchedule

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class Planner:
    """Base class: keeps the model's schedule, learns nothing."""

    kind = "base"

    def propose(self, model: EconomyModel) -> TaxSchedule:
        return model.schedule

    def observe(self, model: EconomyModel, record: dict) -> None:
        pass

    # checkpoint protocol (see simulator.run.checkpoint): what this planner has learned
    def checkpoint_state(self) -> dict:
        """The planner's learned state as a picklable dict (none for a fixed rule)."""
        return {}

    def restore_state(self, state: dict) -> None:
        """Take back the state :meth:`checkpoint_state` returned."""


class FixedPlanner(Planner):
    """A constant schedule (``fixed``, ``us_federal`` and ``flat`` kinds)."""

    def __init__(self, schedule: TaxSchedule, kind: str = "fixed") -> None:
        self.schedule = schedule
        self.kind = kind

    def propose(self, model: EconomyModel) -> TaxSchedule:
        return self.schedule


class GridPlanner(Planner):
    """A fixed list of rate vectors, one per year, cycled."""

    kind = "grid"

    def __init__(self, schedules: list[list[float]]) -> None:
        self.schedules = schedules

    def propose(self, model: EconomyModel) -> TaxSchedule:
        return model.base_schedule.with_rates(self.schedules[model.year % len(self.schedules)])


def objective_weights(model: EconomyModel) -> np.ndarray:
    """Social marginal welfare weights of consumption implied by the planner's objective.

    ``g_i = dW/dc_i``: ``u_c(c_i)`` for utilitarian, ``u_c(c_i) / max(z_i, floor)`` for
    inverse-income weighting, ``c_i**-epsilon`` for Atkinson, 0 for revenue.  Other
    objectives fall back to inverse-income weights.
    """
    o = model.outcome
    obj = model.settings.planner.objective
    c = np.maximum(o.post_tax, 1.0)
    eta = getattr(model.utility, "eta", 0.0)
    u_c = c ** (-eta)
    if obj.swf == "utilitarian":
        return u_c
    if obj.swf == "atkinson":
        return c ** (-obj.epsilon)
    if obj.swf == "revenue":
        return np.zeros_like(c)
    return u_c / np.maximum(o.pre_tax, obj.floor)


FALLBACK_ELASTICITY = 0.25


class SaezPlanner(Planner):
    """Saez (2001) rates recomputed every year from last year's incomes.

    The elasticity is fixed, or ``"measured"``: estimated from the workers' own policy by
    perturbing net-of-tax rates with the lump-sum rebate held fixed at last year's
    (re-measured every ``remeasure_every`` years).  Saez's formula needs that elasticity:
    re-solving the rebate for each perturbation would add its income effect.
    """

    kind = "saez"

    def __init__(self, elasticity: float | str, weights: str, remeasure_every: int = 0) -> None:
        self.elasticity = elasticity
        self.weights = weights
        self.remeasure_every = remeasure_every
        self.measured: float | None = None
        self.ci = (float("nan"), float("nan"))

    def current_elasticity(self, model: EconomyModel) -> float:
        if self.elasticity != "measured":
            return float(self.elasticity)
        due = self.remeasure_every and model.year % self.remeasure_every == 0
        if self.measured is None or due:
            try:
                rebate = model.outcome.rebate if model.outcome is not None else model.expected_rebate
                est = estimate_elasticity(
                    lambda s: model.policy.respond(model, s, rebate=rebate), model.schedule,
                    weights=model.weights,
                )
                value, ci = est.value, (est.ci_low, est.ci_high)
            except ValueError as exc:  # e.g. nobody earns anything
                model.note(f"elasticity could not be measured ({exc}); using {FALLBACK_ELASTICITY}")
                value, ci = FALLBACK_ELASTICITY, (float("nan"), float("nan"))
            if not np.isfinite(value) or value <= 0.01:
                model.note(f"measured elasticity {value:.3g} is not usable; using {FALLBACK_ELASTICITY}")
                value = FALLBACK_ELASTICITY
            self.measured = float(value)
            self.ci = ci
        return self.measured

    def checkpoint_state(self) -> dict:
        return {"measured": self.measured, "ci": tuple(self.ci)}

    def restore_state(self, state: dict) -> None:
        self.measured = state["measured"]
        self.ci = tuple(state["ci"])

    def propose(self, model: EconomyModel) -> TaxSchedule:
        if model.outcome is None:  # first year: nothing observed yet
            return model.schedule
        e = self.current_elasticity(model)
        weights = objective_weights(model) if self.weights == "objective" else self.weights
        base = model.base_schedule
        res = saez_bracket_rates(
            model.outcome.pre_tax,
            # bracket edges in gross income (the schedule applies after the deduction)
            np.concatenate([[0.0], base.threshold_array[1:] + base.deduction]),
            e,
            weights=weights,
            population_weights=model.weights,
            income_floor=model.settings.planner.objective.floor,
        )
        model.step_stats.update(saez_elasticity=e, saez_top_pareto_a=float(res.pareto_a[-1]))
        if self.elasticity == "measured":
            model.step_stats.update(saez_elasticity_ci_low=self.ci[0], saez_elasticity_ci_high=self.ci[1],
                                    saez_elasticity_rebate="held fixed")
        return base.with_rates(res.rates)


class OptimumPlanner(Planner):
    """The numerical optimum of the objective for rational workers, found once."""

    kind = "optimum"

    def __init__(self, max_agents: int, max_evaluations: int) -> None:
        self.max_agents = max_agents
        self.max_evaluations = max_evaluations
        self.result = None

    def propose(self, model: EconomyModel) -> TaxSchedule:
        if self.result is None:
            n = model.n_workers
            idx = np.arange(n)
            if n > self.max_agents:
                idx = np.sort(model.rng.choice(n, self.max_agents, replace=False))
            weights = None if model.weights is None else model.weights[idx]
            utility = model.utility_subset(idx)
            obj = model.settings.planner.objective
            self.result = optimal_schedule(
                model.base_schedule,
                model.wages[idx],
                utility,
                objective=obj.swf,
                objective_params=obj.params(),
                rebate_share=model.rebate_share,
                weights=weights,
                hours_bounds=model.hours_bounds,
                max_evaluations=self.max_evaluations,
            )
        return self.result.schedule

    def checkpoint_state(self) -> dict:
        return {"result": self.result}

    def restore_state(self, state: dict) -> None:
        self.result = state["result"]


def build_planner(model: EconomyModel) -> Planner:
    """The planner strategy named in the scenario (wrapped in a democracy if enabled)."""
    cfg = model.settings.planner
    base = model.base_schedule
    if cfg.kind == "us_federal":
        planner: Planner = FixedPlanner(base, "us_federal")
    elif cfg.kind == "fixed":
        planner = FixedPlanner(base.with_rates(cfg.rates), "fixed")
    elif cfg.kind == "flat":
        planner = FixedPlanner(base.with_rates([cfg.rate] * base.n_brackets), "flat")
    elif cfg.kind == "grid":
        planner = GridPlanner(cfg.schedules)
    elif cfg.kind == "saez":
        planner = SaezPlanner(cfg.elasticity, cfg.saez_weights, cfg.saez_remeasure_every)
    elif cfg.kind == "optimum":
        planner = OptimumPlanner(cfg.optimum_max_agents, cfg.optimum_max_evaluations)
    elif cfg.kind == "llm":
        from simulator.sim.planners.llm import LLMPlanner

        planner = LLMPlanner(cfg.llm)
    elif cfg.kind == "search":
        from simulator.sim.planners.search import SearchPlanner

        planner = SearchPlanner(cfg.search, cfg.llm)
    else:  # pragma: no cover - the scenario schema rules this out
        raise ValueError(f"unknown planner kind {cfg.kind!r}")
    if model.settings.democracy.enabled:
        from simulator.sim.planners.democracy import Democracy

        planner = Democracy(model.settings.democracy, fallback=planner)
    return planner
