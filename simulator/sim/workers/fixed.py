"""Fixed workers: constant hours whatever the taxes (a baseline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.economy.tax import TaxSchedule
from simulator.sim.workers.base import WorkerPolicy

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class FixedPolicy(WorkerPolicy):
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
