"""The worker-policy interface: every hook the model, planners and runner call.

A policy decides for the whole population at once (a batch): ``decide(model) -> hours``
(hours a week, one per worker, for the current step) and ``respond(model, schedule) ->
pre-tax incomes`` (what the population would earn under another schedule; used to
measure elasticities and for counterfactual years).  Every optional hook is declared
here with a no-op default, so the model never probes for behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.economy.tax import TaxSchedule

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel
    from simulator.sim.workers.pool_plan import PoolingState


class WorkerPolicy:
    """Base class of worker policies (rational, fixed, llm)."""

    #: the name of ``workers.policy`` this class implements
    name = "base"
    #: utilities adjusted by the workers' own verdict (bounded LLM workers), else None
    adjusted_utility: np.ndarray | None = None
    #: the tax year ``adjusted_utility`` belongs to
    adjusted_year: int | None = None
    #: archetype pooling's state (cells' last spreads) when workers are pooled, else None
    pool_state: PoolingState | None = None
    #: share of workers whose last :meth:`respond` answer fell back (0 for exact policies)
    last_respond_fallback_rate: float | None = 0.0

    def decide(self, model: EconomyModel) -> np.ndarray:
        """Hours a week of every worker for the current step, shape ``(n_workers,)``."""
        raise NotImplementedError

    def respond(self, model: EconomyModel, schedule: TaxSchedule,
                rebate: float | None = None) -> np.ndarray:
        """Pre-tax incomes (dollars a year) the population would choose under ``schedule``;
        ``rebate`` (dollars a year) held fixed if given."""
        raise NotImplementedError

    def end_year(self, model: EconomyModel) -> None:
        """Called once at the end of every tax year, before its record is built (no-op)."""

    def count_counterfactual_replies(self, model: EconomyModel) -> None:
        """A counterfactual year was asked with :meth:`respond`: count its replies in the
        year's statistics (no-op for policies that do not ask anyone)."""

    def tables(self, model: EconomyModel) -> dict[str, pd.DataFrame]:
        """Extra run tables this policy contributes (name -> table; none by default)."""
        return {}

    # the checkpoint protocol (simulator.run.state)
    def checkpoint_state(self) -> dict:
        """The policy's state as a picklable dict (nothing by default)."""
        return {}

    def restore_state(self, state: dict) -> None:
        """Take back the state :meth:`checkpoint_state` returned."""
