"""Fixed rules: a constant schedule (``fixed``, ``us_federal``, ``flat``) or a cycled grid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.economy.tax import TaxSchedule
from simulator.sim.planners.base import Planner

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class FixedPlanner(Planner):
    """A constant schedule (``fixed``, ``us_federal`` and ``flat`` kinds)."""

    def __init__(self, schedule: TaxSchedule, kind: str = "fixed") -> None:
        self.schedule = schedule
        self.kind = kind

    @classmethod
    def from_config(cls, model: EconomyModel) -> FixedPlanner:
        cfg, base = model.settings.planner, model.base_schedule
        if cfg.kind == "fixed":
            return cls(base.with_rates(cfg.rates), "fixed")
        if cfg.kind == "flat":
            return cls(base.with_rates([cfg.rate] * base.n_brackets), "flat")
        return cls(base, cfg.kind)

    def propose(self, model: EconomyModel) -> TaxSchedule:
        return self.schedule


class GridPlanner(Planner):
    """A fixed list of rate vectors, one per year, cycled."""

    kind = "grid"

    def __init__(self, schedules: list[list[float]]) -> None:
        self.schedules = schedules

    @classmethod
    def from_config(cls, model: EconomyModel) -> GridPlanner:
        return cls(model.settings.planner.schedules)

    def propose(self, model: EconomyModel) -> TaxSchedule:
        return model.base_schedule.with_rates(self.schedules[model.year % len(self.schedules)])
