"""Worker agents: Mesa views onto the model's per-worker arrays."""

from __future__ import annotations

import mesa


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

    @property
    def pre_tax_income(self) -> float:
        return float(self.model.outcome.pre_tax[self.index]) if self.model.outcome else 0.0

    @property
    def tax(self) -> float:
        return float(self.model.outcome.tax[self.index]) if self.model.outcome else 0.0

    @property
    def post_tax_income(self) -> float:
        return float(self.model.outcome.post_tax[self.index]) if self.model.outcome else 0.0

    @property
    def utility(self) -> float:
        return float(self.model.outcome.utility[self.index]) if self.model.outcome else 0.0

    @property
    def persona(self) -> str:
        return str(self.model.population["persona"].iat[self.index])
