"""Planner strategies: who sets the tax schedule each year, and how.

The interface is :class:`~simulator.sim.planners.base.Planner`; the kinds and the class
implementing each are registered in :data:`simulator.config.planners.PLANNER_KINDS`:
fixed rules (:mod:`.rules`: fixed, us_federal, flat, grid), :mod:`.saez`,
:mod:`.optimum`, the in-context LLM planner (:mod:`.llm`) and the black-box search
(:mod:`.search`); a democracy (:mod:`.democracy`) wraps any of them with elections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.config.planners import planner_kind
from simulator.sim.planners.base import Planner
from simulator.sim.planners.democracy import Democracy
from simulator.sim.planners.optimum import OptimumPlanner
from simulator.sim.planners.rules import FixedPlanner, GridPlanner
from simulator.sim.planners.saez import FALLBACK_ELASTICITY, SaezPlanner, objective_weights

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


def build_planner(model: EconomyModel) -> Planner:
    """The planner strategy named in the scenario (wrapped in a democracy if enabled)."""
    cls = planner_kind(model.settings.planner.kind).load()
    planner: Planner = cls.from_config(model)
    if model.settings.democracy.enabled:
        planner = Democracy(model.settings.democracy, fallback=planner)
    return planner


__all__ = ["FALLBACK_ELASTICITY", "Democracy", "FixedPlanner", "GridPlanner", "OptimumPlanner",
           "Planner", "SaezPlanner", "build_planner", "objective_weights"]
