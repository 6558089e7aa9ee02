"""The numerical optimum of the objective for rational workers (``kind: optimum``).

The search (:func:`simulator.economy.optimum.optimal_schedule`) runs once, before the
first tax year, on the whole population unless ``planner.optimum_max_agents`` asks for
a random subsample.  A subsample's optimum overfits it, so the schedule found is then
also evaluated on every worker, and the run says so: a note in the manifest, the
``optimum`` table (``optimum.parquet``) and the ``optimum_*`` columns of every year.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.economy.optimum import OptimumResult, optimal_schedule, welfare_of_rates
from simulator.economy.tax import TaxSchedule
from simulator.errors import UserError
from simulator.sim.planners.base import Planner

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel


class OptimumPlanner(Planner):
    """The numerical optimum of the objective for rational workers, found once."""

    kind = "optimum"

    def __init__(self, max_agents: int | None, max_evaluations: int) -> None:
        self.max_agents = max_agents
        self.max_evaluations = max_evaluations
        self.result: OptimumResult | None = None
        self.info: dict | None = None  # what the search ran on and found (the optimum table)

    @classmethod
    def from_config(cls, model: EconomyModel) -> OptimumPlanner:
        cfg = model.settings.planner
        if cfg.optimum_max_agents is not None and cfg.optimum_max_agents > model.n_workers:
            raise UserError(
                f"planner.optimum_max_agents is {cfg.optimum_max_agents} but the population has "
                f"{model.n_workers} workers: a subsample cannot be larger than the population "
                "(leave it out to search on everyone)"
            )
        return cls(cfg.optimum_max_agents, cfg.optimum_max_evaluations)

    def _search(self, model: EconomyModel) -> None:
        n = model.n_workers
        subsample = self.max_agents is not None and self.max_agents < n
        idx = np.sort(model.rng.choice(n, self.max_agents, replace=False)) if subsample else None
        obj = model.settings.planner.objective
        common = dict(objective=obj.swf, objective_params=obj.params(),
                      rebate_share=model.rebate_share, hours_bounds=model.hours_bounds,
                      requirement=model.revenue_requirement)
        if subsample:
            wages, utility = model.wages[idx], model.utility_subset(idx)
            weights = None if model.weights is None else model.weights[idx]
        else:
            wages, utility, weights = model.wages, model.utility, model.weights
        self.result = optimal_schedule(model.budget(model.base_schedule, idx), wages, utility, weights=weights,
                                       max_evaluations=self.max_evaluations, **common)
        rates = self.result.schedule.rate_array
        population_welfare = (
            welfare_of_rates(rates, model.budget(model.base_schedule), model.wages, model.utility,
                             obj.swf, obj.params(), model.rebate_share, model.weights,
                             model.hours_bounds, model.revenue_requirement)
            if subsample else self.result.welfare
        )
        self.info = {
            "agents": int(self.max_agents if subsample else n),
            "population": int(n),
            "subsampled": bool(subsample),
            "evaluations": int(self.result.evaluations),
            "max_evaluations": int(self.max_evaluations),
            "batches": int(self.result.batches),
            "search_objective": float(self.result.welfare),
            "population_objective": float(population_welfare),
            "start_objective": float(self.result.start_welfare),
            **{f"rate_{i}": float(r) for i, r in enumerate(rates)},
        }
        if subsample:
            model.note(
                f"optimum searched on a random subsample of {self.max_agents:,} of {n:,} workers "
                f"(planner.optimum_max_agents): objective {self.result.welfare:.6g} on the "
                f"subsample, {population_welfare:.6g} on every worker"
            )
        if len(self.result.history) >= self.max_evaluations:
            model.note(
                f"the optimum's search used its whole budget of {self.max_evaluations} "
                "evaluations (planner.optimum_max_evaluations): it may have stopped short"
            )

    def propose(self, model: EconomyModel) -> TaxSchedule:
        if self.result is None:
            self._search(model)
        if self.info is not None:
            model.stats.set(optimum_agents=self.info["agents"],
                            optimum_population=self.info["population"],
                            optimum_search_objective=self.info["search_objective"],
                            optimum_population_objective=self.info["population_objective"])
        return self.result.schedule

    def tables(self, model: EconomyModel) -> dict[str, pd.DataFrame]:
        return {"optimum": pd.DataFrame([self.info])} if self.info else {}

    def checkpoint_state(self) -> dict:
        return {"result": self.result, "info": self.info}

    def restore_state(self, state: dict) -> None:
        self.result = state["result"]
        self.info = state.get("info")
