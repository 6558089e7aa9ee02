"""Saez optimal rates, recomputed every year from last year's incomes: Saez (2001), or
Saez (2002) with intensive and extensive margins when the model has participation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.economy.elasticity import estimate_elasticity
from simulator.economy.saez import saez_2002_bracket_rates, saez_bracket_rates
from simulator.economy.tax import TaxSchedule
from simulator.sim.planners.base import Planner

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


def objective_weights(model: EconomyModel) -> np.ndarray:
    """Social marginal welfare weights of consumption implied by the planner's objective.

    ``g_i = dW/dc_i`` at the consumption the utility sees (post-tax income, less the
    fixed cost of those who work, plus the support of those who do not, where people may
    not work): ``u_c(c_i)`` for utilitarian, ``u_c(c_i) / max(z_i, floor)`` for
    inverse-income weighting, ``c_i**-epsilon`` for Atkinson, 0 for revenue.  Other
    objectives fall back to inverse-income weights.
    """
    o = model.outcome
    obj = model.settings.planner.objective
    c = o.post_tax
    if hasattr(model.utility, "shift"):  # participation: the consumption utility sees, net of
        c = c + model.utility.shift(o.hours)  # the fixed cost, with the support when not working
    c = np.maximum(c, 1.0)
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

    When the model has an extensive margin (``model.participation``: workers may choose
    0 hours) the rates are Saez's (2002) intensive-extensive ones instead
    (:func:`~simulator.economy.saez.saez_2002_bracket_rates`): the intensive elasticity
    is the one above, the participation elasticity ``model.participation_elasticity``.
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
        if getattr(model, "participation", False):
            return self._propose_2002(model, e, weights, edges)
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

    def _propose_2002(self, model: EconomyModel, e: float, weights, edges: np.ndarray) -> TaxSchedule:
        """Saez (2002) rates from last year's earnings and employment (hours > 0)."""
        o = model.outcome
        eta = float(model.participation_elasticity)
        model.stats.set(saez_elasticity=e, saez_participation_elasticity=eta,
                        saez_model="intensive-extensive (2002)")
        if self.elasticity == "measured":
            model.stats.set(saez_elasticity_ci_low=self.ci[0], saez_elasticity_ci_high=self.ci[1],
                            saez_elasticity_rebate="held fixed")
        nan = float("nan")
        employed = (np.asarray(o.hours) > 0) & (np.asarray(o.pre_tax) > 0)
        if not employed.any():
            model.note(f"year {model.year}: nobody worked, so Saez (2002) has no occupations; "
                       "the schedule was kept")
            model.stats.set(saez_converged=0.0, saez_participation_tax_rate_bottom=nan,
                            saez_guaranteed_income=nan)
            return model.schedule
        res = saez_2002_bracket_rates(
            o.pre_tax,
            employed,
            edges,
            e,
            eta,
            weights=weights,
            population_weights=model.weights,
            revenue=self._revenue_requirement(model),
            income_floor=model.settings.planner.objective.floor,
        )
        if not res.converged:
            model.note(f"year {model.year}: the Saez (2002) fixed point did not converge "
                       f"(residual {res.occupations.residual:.2g}); the schedule was kept")
            model.stats.set(saez_converged=0.0, saez_participation_tax_rate_bottom=nan,
                            saez_guaranteed_income=nan)
            return model.schedule
        model.stats.set(
            saez_converged=1.0,
            saez_participation_tax_rate_bottom=res.participation_tax_rate_bottom,
            saez_guaranteed_income=res.guaranteed_income,
        )
        target = res.rates
        if model.world is not None:
            target = self._income_tax_rates(model, res.rates, edges, among=employed, clip=False,
                                            bottom_bracket=int(res.occupation_bracket[0]))
        rates = np.clip(target, 0.0, 1.0)
        moved = np.abs(rates - target)
        model.stats.set(saez_clipped_brackets=float(np.count_nonzero(moved > 0)),
                        saez_clipped_max=float(moved.max()))
        return model.base_schedule.with_rates(rates)

    @staticmethod
    def _revenue_requirement(model: EconomyModel) -> float:
        """The revenue per person the government spends under the revenue_requirement
        fiscal rule (dollars a year), else 0: then all revenue is rebated and the Saez
        (2002) guaranteed income -T_0 is that rebate."""
        settings = getattr(model, "settings", None)
        rule = getattr(getattr(settings, "economy", None), "fiscal_rule", "rebate_all")
        if rule != "revenue_requirement":
            return 0.0
        return float(getattr(model, "revenue_requirement", 0.0) or 0.0)

    @staticmethod
    def _income_tax_rates(model: EconomyModel, effective: np.ndarray, edges: np.ndarray,
                          among: np.ndarray | None = None, clip: bool = True,
                          bottom_bracket: int | None = None) -> np.ndarray:
        """The us_current_law world: the Saez rates are effective marginal rates, so each
        bracket's income-tax rate is the Saez rate less the mean marginal rate the rest
        of the system (payroll tax, credit phase-ins and phase-outs) adds to the workers
        of that bracket, measured with every bracket rate at zero; clipped to [0, 1]
        (unless ``clip`` is False).

        Saez (2002) passes ``among`` (the employed: the means are over them only) and
        ``bottom_bracket`` (the bracket of the lowest working occupation, whose rate is
        its participation tax rate): that bracket subtracts the mean participation tax
        rate of the rest of the system, ``(T(z) - T(0)) / z`` of its workers' own
        units, instead of the marginal rate."""
        z = model.outcome.pre_tax
        zero = model.base_schedule.with_rates(np.zeros(model.base_schedule.n_brackets))
        budget = model.budget(zero)
        other = budget.marginal_rate(z)
        k = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, len(effective) - 1)
        w = np.ones_like(z) if model.weights is None else model.weights
        if among is not None:
            w = np.where(among, w, 0.0)
        mass = np.bincount(k, weights=w, minlength=len(effective))
        mean_other = np.bincount(k, weights=w * other, minlength=len(effective)) / np.maximum(mass, 1e-300)
        mean_other = np.where(mass > 0, mean_other, 0.0)
        if among is None:
            model.stats.set(saez_other_marginal_rate=float(np.average(other, weights=model.weights)))
        else:
            model.stats.set(saez_other_marginal_rate=float(np.average(other, weights=w)))
        if bottom_bracket is not None:
            inb = (k == bottom_bracket) & (z > 0) & (w > 0)
            if inb.any():
                ptr = (budget.tax(z) - budget.tax(np.zeros_like(z)))[inb] / z[inb]
                mean_other[bottom_bracket] = float(np.average(ptr, weights=w[inb]))
                model.stats.set(saez_other_participation_tax_rate_bottom=float(mean_other[bottom_bracket]))
        out = np.asarray(effective) - mean_other
        return np.clip(out, 0.0, 1.0) if clip else out
