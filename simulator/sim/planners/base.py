"""The planner interface: who sets the tax schedule each year, and how.

A planner implements ``propose(model) -> TaxSchedule`` (called at the start of every
tax year) and ``observe(model, record)`` (called at its end with the year's outcome
record); every other hook is declared on :class:`Planner` with a no-op default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from simulator.economy.tax import TaxSchedule

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class Planner:
    """Base class: keeps the model's schedule, learns nothing.

    Hooks (each with a no-op default): :meth:`propose` at the start of every tax year,
    :meth:`observe` at its end with the year's record, :meth:`tables` for extra run
    tables, and the checkpoint protocol.
    """

    #: the ``planner.kind`` this class implements
    kind = "base"

    @classmethod
    def from_config(cls, model: EconomyModel) -> Planner:
        """Build this planner from ``model.settings.planner`` (its registry entry's class)."""
        return cls()

    def propose(self, model: EconomyModel) -> TaxSchedule:
        """The schedule of the tax year that starts now (default: keep the current one)."""
        return model.schedule

    def observe(self, model: EconomyModel, record: dict) -> None:
        """Learn from the year just finished (``record``: its row of ``years.parquet``)."""

    def tables(self, model: EconomyModel) -> dict[str, pd.DataFrame]:
        """Extra run tables this planner contributes (name -> table; none by default)."""
        return {}

    # checkpoint protocol (see simulator.run.checkpoint): what this planner has learned
    def checkpoint_state(self) -> dict:
        """The planner's learned state as a picklable dict (none for a fixed rule)."""
        return {}

    def restore_state(self, state: dict) -> None:
        """Take back the state :meth:`checkpoint_state` returned."""
