"""Worker decision policies: the whole population decides at once (a batch).

A policy implements ``decide(model) -> hours`` (hours a week, one per worker, for the
current step) and ``respond(model, schedule) -> pre-tax incomes`` (what the population
would earn under another schedule; used to measure elasticities).  The model never
needs to know which policy it runs: rational, fixed, or LLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from simulator.economy.best_response import best_response, equilibrium
from simulator.economy.tax import TaxSchedule

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class WorkerPolicy(Protocol):
    name: str

    def decide(self, model: EconomyModel) -> np.ndarray: ...

    def respond(self, model: EconomyModel, schedule: TaxSchedule,
                rebate: float | None = None) -> np.ndarray: ...

    # the checkpoint protocol of simulator.run.checkpoint
    def checkpoint_state(self) -> dict: ...

    def restore_state(self, state: dict) -> None: ...


class RationalPolicy:
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
                schedule, model.wages, model.utility, model.rebate_share, model.hours_bounds,
                model.weights,
            )
            return h
        return best_response(
            schedule, model.wages, model.utility, model.expected_rebate, model.hours_bounds
        )

    def decide(self, model: EconomyModel) -> np.ndarray:
        return self._hours(model, model.schedule)

    def respond(self, model: EconomyModel, schedule: TaxSchedule,
                rebate: float | None = None) -> np.ndarray:
        """Pre-tax incomes under ``schedule``; ``rebate`` (dollars a year) held fixed if
        given (the elasticity the Saez formula needs), else as the expectations say."""
        if rebate is not None:
            return model.wages * best_response(schedule, model.wages, model.utility, rebate,
                                               model.hours_bounds)
        return model.wages * self._hours(model, schedule)

    def checkpoint_state(self) -> dict:
        """Nothing to keep: the hours follow from the model's arrays."""
        return {}

    def restore_state(self, state: dict) -> None:
        pass


class FixedPolicy:
    """Constant hours: ``hours`` for everyone, or each worker's usual hours."""

    name = "fixed"

    def __init__(self, hours: float | None = None) -> None:
        self.hours = hours

    def decide(self, model: EconomyModel) -> np.ndarray:
        if self.hours is None:
            return model.usual_hours.copy()
        return np.full(model.n_workers, float(self.hours))

    def respond(self, model: EconomyModel, schedule: TaxSchedule,
                rebate: float | None = None) -> np.ndarray:
        return model.wages * self.decide(model)

    def checkpoint_state(self) -> dict:
        return {}

    def restore_state(self, state: dict) -> None:
        pass


def build_policy(model: EconomyModel) -> WorkerPolicy:
    """The policy named in the scenario's ``workers`` section."""
    cfg = model.settings.workers
    if cfg.policy == "rational":
        return RationalPolicy(cfg.expectations)
    if cfg.policy == "fixed":
        return FixedPolicy(cfg.hours)
    if cfg.policy == "llm":
        from simulator.sim.workers.llm import LLMWorkerPolicy

        return LLMWorkerPolicy(cfg.llm)
    raise ValueError(f"unknown worker policy {cfg.policy!r}")
