"""Rational workers: exact utility maximisation with the core's best response."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.economy.best_response import best_response, equilibrium
from simulator.economy.tax import TaxSchedule
from simulator.sim.workers.base import WorkerPolicy

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class RationalPolicy(WorkerPolicy):
    """Exact utility maximisation (the core's best response).

    ``expectations="equilibrium"``: workers anticipate the self-consistent rebate
    (rational expectations); ``"adaptive"``: they take last step's rebate as given.
    """

    name = "rational"

    def __init__(self, expectations: str = "equilibrium") -> None:
        self.expectations = expectations

    def _hours(self, model: EconomyModel, schedule: TaxSchedule) -> np.ndarray:
        if self.expectations == "equilibrium":
            h, _ = equilibrium(
                model.budget(schedule), model.wages, model.utility, model.rebate_share,
                model.hours_bounds, model.weights, requirement=model.revenue_requirement,
            )
            return h
        return best_response(
            model.budget(schedule), model.wages, model.utility, model.expected_rebate,
            model.hours_bounds
        )

    def decide(self, model: EconomyModel) -> np.ndarray:
        return self._hours(model, model.schedule)

    def respond(self, model: EconomyModel, schedule: TaxSchedule,
                rebate: float | None = None) -> np.ndarray:
        """Pre-tax incomes under ``schedule``; ``rebate`` (dollars a year) held fixed if
        given (the elasticity the Saez formula needs), else as the expectations say."""
        if rebate is not None:
            return model.wages * best_response(model.budget(schedule), model.wages, model.utility,
                                               rebate, model.hours_bounds)
        return model.wages * self._hours(model, schedule)

    def checkpoint_state(self) -> dict:
        """Nothing to keep: the hours follow from the model's arrays."""
        return {}

    def restore_state(self, state: dict) -> None:
        pass
