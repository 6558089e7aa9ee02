"""The planner agent: the government that sets the tax schedule each tax year."""

from __future__ import annotations

import mesa

from simulator.economy.tax import TaxSchedule


class PlannerAgent(mesa.Agent):
    """Holds a planner strategy (see :mod:`simulator.planners`) and the current schedule."""

    def __init__(self, model: mesa.Model, strategy, schedule: TaxSchedule) -> None:
        super().__init__(model)
        self.strategy = strategy
        self.schedule = schedule

    @property
    def kind(self) -> str:
        return self.strategy.kind

    def set_taxes(self) -> TaxSchedule:
        """Called at the start of each tax year."""
        self.schedule = self.strategy.propose(self.model)
        return self.schedule

    def observe(self, record: dict) -> None:
        """Called at the end of each tax year with its outcome."""
        self.strategy.observe(self.model, record)
