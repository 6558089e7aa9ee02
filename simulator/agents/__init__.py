"""Mesa agents of the economy."""

from simulator.agents.planner import PlannerAgent
from simulator.agents.worker import WorkerAgent

__all__ = ["PlannerAgent", "WorkerAgent"]
