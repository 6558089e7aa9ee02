"""The planner registry: every ``planner.kind``, in one place.

Each kind names the class that implements it (``"module:Class"``, imported when a model
is built, so configuration never imports the simulation), a one-line summary, the label
the explore page shows (``None``: not offered there), whether it asks a language model,
and an optional cross-field check of the scenario.  The scenario schema, the explore
page, ``econsim validate`` and the docs read their lists of kinds from here.

Adding a planner: one module under ``simulator/sim/planners/`` with a
:class:`~simulator.sim.planners.base.Planner` subclass whose ``from_config(model)``
builds it, its options (a field or sub-model of ``PlannerConfig`` in
:mod:`simulator.config.schema`, if it has any), and one line in :data:`PLANNER_KINDS`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.config.schema import Scenario


@dataclass(frozen=True)
class PlannerKind:
    """One ``planner.kind``."""

    name: str
    #: the implementing class, ``"module:Class"``
    implementation: str
    summary: str
    #: the explore page's label, or ``None`` when the page does not offer it
    explore_label: str | None = None
    uses_llm: bool = False
    #: raises ``ValueError`` (one line) for a scenario this kind cannot run
    check: Callable[[Scenario], None] | None = None

    def load(self) -> type:
        """The implementing class (imports its module)."""
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name)


def _check_fixed(sc: Scenario) -> None:
    if sc.planner.rates is None:
        raise ValueError("planner kind 'fixed' needs planner.rates")


def _check_grid(sc: Scenario) -> None:
    if not sc.planner.schedules:
        raise ValueError("planner kind 'grid' needs planner.schedules")


def optimum_subsample_problem(sc: Scenario, n_workers: int) -> str | None:
    """``kind: optimum``: why ``planner.optimum_max_agents`` cannot be used with a
    population of ``n_workers`` (a subsample larger than it), or None.  Checked by
    ``econsim validate``/``run`` before the first tax year (:mod:`simulator.run.preflight`),
    not when a scenario is read, so the reports of runs made before 0.2.1 (default 2,000)
    still load."""
    k = sc.planner.optimum_max_agents
    if sc.planner.kind == "optimum" and k is not None and k > n_workers:
        return (f"planner.optimum_max_agents is {k} but the population has {n_workers} workers: "
                "a subsample cannot be larger than the population (leave it out to search on "
                "everyone)")
    return None


#: optimiser name -> the Python package it needs (``planner.search.optimizer``)
SEARCH_OPTIMIZERS = {"cma": "cma"}


def _check_search(sc: Scenario) -> None:
    """``kind: search``: the optimiser's package is installed.

    (Whether the revenue floor can be met depends on the population's incomes:
    ``simulator.sim.planners.search.feasibility_problem`` checks it when the population exists.)
    """
    opt = sc.planner.search.optimizer
    package = SEARCH_OPTIMIZERS[opt]
    if importlib.util.find_spec(package) is None:
        raise ValueError(
            f"planner.search.optimizer {opt!r} is not available: install the package "
            f"{package} (pip install 'econsim[search]')"
        )


_P = "simulator.sim.planners."
#: Every planner kind, in the order the docs and the explore page list them.
PLANNER_KINDS: dict[str, PlannerKind] = {k.name: k for k in (
    PlannerKind("fixed", _P + "rules:FixedPlanner", "a constant schedule: planner.rates",
                "fixed: the rate sliders", check=_check_fixed),
    PlannerKind("us_federal", _P + "rules:FixedPlanner", "the starting schedule of tax:, unchanged",
                "US federal (starting schedule)"),
    PlannerKind("flat", _P + "rules:FixedPlanner", "one rate on every bracket: planner.rate",
                "flat rate"),
    PlannerKind("saez", _P + "saez:SaezPlanner", "Saez (2001) rates from last year's incomes",
                "Saez (2001)"),
    PlannerKind("optimum", _P + "optimum:OptimumPlanner",
                "the numerical optimum of the objective for rational workers", "numerical optimum"),
    PlannerKind("grid", _P + "rules:GridPlanner", "planner.schedules, one per year, cycled",
                check=_check_grid),
    PlannerKind("llm", _P + "llm:LLMPlanner", "the in-context LLM planner", "LLM planner",
                uses_llm=True),
    PlannerKind("search", _P + "search:SearchPlanner",
                "black-box CMA-ES search under the LLM planner's constraints", check=_check_search),
)}


def planner_kind(name: str) -> PlannerKind:
    """The registry entry of ``name`` (``ValueError`` naming the kinds for an unknown one)."""
    try:
        return PLANNER_KINDS[name]
    except KeyError:
        raise ValueError(
            f"unknown planner kind {name!r} (kinds: {', '.join(PLANNER_KINDS)})") from None
