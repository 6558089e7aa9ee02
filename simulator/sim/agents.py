"""Mesa agents of the economy: workers (views onto the model's per-worker arrays) and the
planner agent (the government that sets the tax schedule each tax year)."""

from __future__ import annotations

import mesa

from simulator.economy.tax import TaxSchedule


class WorkerAgent(mesa.Agent):
    """One worker.  Its state lives in the model's arrays at index ``index``.

    The model updates all workers at once with array arithmetic; these objects exist so
    that Mesa tooling (AgentSet operations, agent reporters) and users can look at a
    single worker.  Units: ``wage`` dollars a year per weekly hour, ``hours`` hours a
    week, incomes and ``tax`` / ``rebate`` dollars a year.
    """

    def __init__(self, model: mesa.Model, index: int) -> None:
        super().__init__(model)
        self.index = index

    @property
    def wage(self) -> float:
        return float(self.model.wages[self.index])

    @property
    def hours(self) -> float:
        return float(self.model.hours[self.index])

    def _outcome(self, field: str) -> float:
        """This worker's entry of the last step's outcome array (0 before the first step)."""
        o = self.model.outcome
        return float(getattr(o, field)[self.index]) if o is not None else 0.0

    pre_tax_income = property(lambda self: self._outcome("pre_tax"))
    tax = property(lambda self: self._outcome("tax"))
    post_tax_income = property(lambda self: self._outcome("post_tax"))
    utility = property(lambda self: self._outcome("utility"))

    @property
    def persona(self) -> str:
        return str(self.model.population["persona"].iat[self.index])


class PlannerAgent(mesa.Agent):
    """Holds a planner strategy (see :mod:`simulator.sim.planners`) and the current schedule."""

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
