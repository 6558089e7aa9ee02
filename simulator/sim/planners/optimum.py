"""The numerical optimum of the objective for rational workers (``kind: optimum``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.economy.optimum import optimal_schedule
from simulator.economy.tax import TaxSchedule
from simulator.sim.planners.base import Planner

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class OptimumPlanner(Planner):
    """The numerical optimum of the objective for rational workers, found once."""

    kind = "optimum"

    def __init__(self, max_agents: int, max_evaluations: int) -> None:
        self.max_agents = max_agents
        self.max_evaluations = max_evaluations
        self.result = None

    @classmethod
    def from_config(cls, model: EconomyModel) -> OptimumPlanner:
        cfg = model.settings.planner
        return cls(cfg.optimum_max_agents, cfg.optimum_max_evaluations)

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
