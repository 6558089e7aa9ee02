"""Worker decision policies (``workers.policy``): the whole population decides at once.

:class:`~simulator.sim.workers.base.WorkerPolicy` declares the interface; the kinds are
``rational`` (exact best response), ``fixed`` and ``llm`` (persona prompts, optionally
pooled into archetype cells: :mod:`~simulator.sim.workers.pool_plan` makes the plan,
:mod:`~simulator.sim.workers.pool_ask` asks through it).  The model never needs to know
which policy it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.sim.workers.base import WorkerPolicy
from simulator.sim.workers.fixed import FixedPolicy
from simulator.sim.workers.llm import LLMWorkerPolicy
from simulator.sim.workers.rational import RationalPolicy

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


def build_policy(model: EconomyModel) -> WorkerPolicy:
    """The policy named in the scenario's ``workers`` section."""
    cfg = model.settings.workers
    if cfg.policy == "rational":
        return RationalPolicy(cfg.expectations)
    if cfg.policy == "fixed":
        return FixedPolicy(cfg.hours)
    if cfg.policy == "llm":
        return LLMWorkerPolicy(cfg.llm)
    raise ValueError(f"unknown worker policy {cfg.policy!r}")


__all__ = ["FixedPolicy", "LLMWorkerPolicy", "RationalPolicy", "WorkerPolicy", "build_policy"]
