"""Saez (2001) optimal rates, recomputed every year from last year's incomes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.economy.elasticity import estimate_elasticity
from simulator.economy.saez import saez_bracket_rates
from simulator.economy.tax import TaxSchedule
from simulator.sim.planners.base import Planner

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


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

    @classmethod
    def from_config(cls, model: EconomyModel) -> SaezPlanner:
        cfg = model.settings.planner
        return cls(cfg.elasticity, cfg.saez_weights, cfg.saez_remeasure_every)

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
        # bracket edges in gross income (the schedule applies after the deduction)
        edges = np.concatenate([[0.0], base.threshold_array[1:] + base.deduction])
        res = saez_bracket_rates(
            model.outcome.pre_tax,
            edges,
            e,
            weights=weights,
            population_weights=model.weights,
            income_floor=model.settings.planner.objective.floor,
        )
        model.stats.set(saez_elasticity=e, saez_top_pareto_a=float(res.pareto_a[-1]))
        if self.elasticity == "measured":
            model.stats.set(saez_elasticity_ci_low=self.ci[0], saez_elasticity_ci_high=self.ci[1],
                                    saez_elasticity_rebate="held fixed")
        if model.world is not None:
            return base.with_rates(self._income_tax_rates(model, res.rates, edges))
        return base.with_rates(res.rates)

    @staticmethod
    def _income_tax_rates(model: EconomyModel, effective: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """The us_current_law world: the Saez rates are effective marginal rates, so each
        bracket's income-tax rate is the Saez rate less the mean marginal rate the rest
        of the system (payroll tax, credit phase-ins and phase-outs) adds to the workers
        of that bracket, measured with every bracket rate at zero; clipped to [0, 1]."""
        z = model.outcome.pre_tax
        zero = model.base_schedule.with_rates(np.zeros(model.base_schedule.n_brackets))
        other = model.budget(zero).marginal_rate(z)
        k = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, len(effective) - 1)
        w = np.ones_like(z) if model.weights is None else model.weights
        mass = np.bincount(k, weights=w, minlength=len(effective))
        mean_other = np.bincount(k, weights=w * other, minlength=len(effective)) / np.maximum(mass, 1e-300)
        mean_other = np.where(mass > 0, mean_other, 0.0)
        model.stats.set(saez_other_marginal_rate=float(np.average(other, weights=model.weights)))
        return np.clip(np.asarray(effective) - mean_other, 0.0, 1.0)
