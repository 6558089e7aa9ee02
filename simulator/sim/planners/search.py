"""A black-box schedule search: a fair, non-LLM opponent for the LLM planner.

Each tax year the search proposes one schedule on the base brackets, observes the
year's objective (the same number the LLM planner sees) and updates a black-box
optimiser over the bracket rates.  Every schedule it proposes goes through the LLM
planner's own constraint projection (:func:`simulator.sim.planners.llm.project_rates`:
rate range, maximum change per year, monotone, revenue floor), so the two compete under
one rule set and one budget of real tax years.

The optimiser is CMA-ES from the package ``cma`` (pycma, N. Hansen), used in ask-and-tell
mode.  It suits this problem: a handful of continuous variables (one rate per bracket),
an objective with kinks and, with LLM workers, noise, and very few evaluations.  CMA-ES
ranks candidates, so it is invariant to the objective's scale (the paper's objective
sums utilities divided by incomes and can be huge); it accepts the projected ("repaired")
schedules that were actually applied; and its whole state pickles, so runs checkpoint
and resume exactly.  Its random numbers come from a numpy Generator seeded from
``model.rng`` (never the global RNG), so a run is reproducible from ``run.seed``.

``planner.search.evaluations_per_year`` (default 1) adds ``E - 1`` counterfactual years
per tax year: schedules evaluated offline on the current population through the worker
policy's ``respond`` interface (rational workers: their best response; LLM workers: one
batch of prompts).  With ``E = 1`` the real year is the optimiser's next candidate; with
``E > 1`` the counterfactual years explore and the real year applies the optimiser's
current estimate of the optimum (the CMA-ES mean; before its first update, the best
schedule evaluated so far).  Counterfactual work is reported in
separate columns of ``years.parquet`` (``search_*``) and rows of the ``search`` table,
so comparisons at an equal number of real tax years stay fair.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator.config.builders import build_base_schedule
from simulator.config.schema import LLMPlannerOptions, SearchPlannerOptions
from simulator.economy.tax import TaxSchedule
from simulator.economy.welfare import social_welfare
from simulator.errors import UserError
from simulator.sim.planners.base import Planner
from simulator.sim.planners.llm import project_rates
from simulator.sim.population import build_population

if TYPE_CHECKING:
    from simulator.config.schema import Scenario
    from simulator.economy.welfare import Outcome
    from simulator.sim.model import EconomyModel


class SeededNormal:
    """pycma's ``randn`` option backed by a seeded numpy Generator (picklable, no global RNG)."""

    def __init__(self, seed: int) -> None:
        self.gen = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.gen.standard_normal(shape)


def feasibility_problem(
    schedule: TaxSchedule,
    incomes: np.ndarray,
    constraints: LLMPlannerOptions,
    weights: np.ndarray | None = None,
) -> str | None:
    """Why no schedule can satisfy the constraints on these incomes, or None if one can.

    The rate range is never empty (the schema checks ``min < max``) and any box contains
    non-decreasing schedules, so the only way to leave no feasible schedule is a revenue
    floor (dollars a year per person) above the revenue of every rate at its maximum on
    ``incomes`` (pre-tax, dollars a year; the projection's own test, without behavioural
    response).
    """
    floor = constraints.revenue_floor
    if floor is None:
        return None
    hi = constraints.rate_bounds[1]
    top = schedule.with_rates(np.full(schedule.n_brackets, hi))
    best = float(np.average(top.tax(incomes), weights=weights))
    if best < floor:
        return (
            f"planner.llm.revenue_floor: no feasible schedule: {floor:,.0f} $/person a year is more "
            f"than every rate at its maximum ({100 * hi:g} %) raises on this population "
            f"({best:,.0f} $/person)"
        )
    return None


def check_scenario(scenario: Scenario, source: str = "<scenario>") -> None:
    """Raise a one-line UserError if a ``kind: search`` variant has no feasible schedule.

    Builds the population (as the model does) only for variants that need it: a search
    planner with a revenue floor.  Used by ``econsim validate``.
    """
    for label, sc in scenario.variants(source):
        if sc.planner.kind != "search" or sc.planner.llm.revenue_floor is None:
            continue
        seed = sc.population.seed if sc.population.seed is not None else sc.run.seed
        pop = build_population(sc.population, np.random.default_rng(np.random.SeedSequence([seed, 0x504F50])))
        hours = np.clip(pop["hours"].to_numpy(float), *sc.economy.hours_bounds)
        incomes = pop["wage"].to_numpy(float) * hours
        w = pop["weight"].to_numpy(float)
        problem = feasibility_problem(build_base_schedule(sc), incomes, sc.planner.llm, w)
        if problem:
            where = f"compare {label}: " if scenario.compare else ""
            raise UserError(f"{source}: {where}{problem}")


def counterfactual_outcome(model: EconomyModel, schedule: TaxSchedule) -> Outcome:
    """The outcome of a counterfactual tax year under ``schedule`` on the current population.

    Hours come from the worker policy's ``respond(model, schedule)`` (pre-tax incomes,
    dollars a year) divided by wages; workers without a wage keep their current hours.
    Utilities are the raw ones (no satisfaction question is asked for a year that did
    not happen).
    """
    incomes = np.asarray(model.policy.respond(model, schedule), dtype=float)
    hours = np.where(model.wages > 0, incomes / np.where(model.wages > 0, model.wages, 1.0), model.hours)
    hours = model.clip_hours(hours)
    return model.evaluate(schedule, hours)


class SearchPlanner(Planner):
    """Black-box search over bracket rates under the LLM planner's constraints."""

    kind = "search"

    @classmethod
    def from_config(cls, model: EconomyModel) -> SearchPlanner:
        cfg = model.settings.planner
        return cls(cfg.search, cfg.llm)

    def __init__(self, options: SearchPlannerOptions, constraints: LLMPlannerOptions) -> None:
        self.options = options
        self.constraints = constraints
        self.es: Any = None  # the cma.CMAEvolutionStrategy, built at the first proposal
        self.queue: list[np.ndarray] = []  # asked candidates not yet evaluated
        self.generation: list[tuple[np.ndarray, float]] = []  # (applied rates, objective) this generation
        self.pending: dict | None = None  # the real year's trial, completed by observe()
        self.trials: list[dict] = []  # one row per evaluation (real or counterfactual)
        self.best: tuple[float, list[float]] | None = None  # best objective seen and its rates
        self.evaluations = 0

    # ------------------------------------------------------------------ checkpointing
    def checkpoint_state(self) -> dict:
        """Everything needed to continue identically (picklable; a deep copy)."""
        return copy.deepcopy({
            "version": 1,
            "es": self.es,
            "queue": self.queue,
            "generation": self.generation,
            "pending": self.pending,
            "trials": self.trials,
            "best": self.best,
            "evaluations": self.evaluations,
        })

    def restore_state(self, state: dict) -> None:
        """Continue from :meth:`checkpoint_state` (the state is copied, not shared)."""
        if state.get("version") != 1:
            raise ValueError(f"unknown search planner state version {state.get('version')!r}")
        state = copy.deepcopy(state)
        for key in ("es", "queue", "generation", "pending", "trials", "best", "evaluations"):
            setattr(self, key, state[key])

    # ------------------------------------------------------------------ optimiser
    def _start(self, model: EconomyModel) -> None:
        import cma

        lo, hi = self.constraints.rate_bounds
        x0 = np.clip(model.schedule.rate_array, lo, hi)
        if self.constraints.monotone:
            x0 = np.maximum.accumulate(x0)
        opts = {
            "bounds": [lo, hi],
            "seed": np.nan,  # pycma seeds nothing; samples come from randn below
            "randn": SeededNormal(int(model.rng.integers(0, 2**63 - 1))),
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
            "CMA_mirrors": 0,  # mirrored samples are injected; repaired schedules would orphan them
            "popsize": self.options.popsize,
        }
        self.es = cma.CMAEvolutionStrategy(x0, self.options.sigma0, opts)

    def _candidate(self) -> np.ndarray:
        if not self.queue:
            self.queue = [np.asarray(x, dtype=float) for x in self.es.ask()]
        return self.queue.pop(0)

    def _tell(self, rates: np.ndarray, value: float) -> None:
        self.generation.append((rates, value))
        if len(self.generation) >= self.es.popsize:
            xs = [x for x, _ in self.generation]
            # CMA-ES minimises; a non-finite objective ranks last
            fs = [-v if np.isfinite(v) else np.inf for _, v in self.generation]
            self.es.tell(xs, fs)
            self.generation = []

    def _project(self, model: EconomyModel, proposed: np.ndarray) -> tuple[np.ndarray, list[str]]:
        last = model.outcome.pre_tax if model.outcome is not None else model.wages * model.hours
        return project_rates(proposed, model.schedule.rate_array, self.constraints,
                             model.budget(model.schedule), last, model.weights)

    def _row(self, model: EconomyModel, kind: str, proposed: np.ndarray, applied: np.ndarray,
             notes: list[str], told: bool) -> dict:
        row: dict[str, Any] = {"year": model.year, "kind": kind, "evaluation": self.evaluations,
                               "proposed": [float(x) for x in proposed]}
        for i, r in enumerate(applied):
            row[f"rate_{i}"] = float(r)
        row.update(projection="; ".join(notes), told=told)
        return row

    def _record(self, row: dict, value: float) -> None:
        es = self.es
        row.update(
            objective=float(value),
            generation=int(es.countiter),
            sigma=float(es.sigma),
            optimizer_mean=[float(x) for x in es.result.xfavorite],
        )
        rates = [row[k] for k in row if k.startswith("rate_")]
        if np.isfinite(value) and (self.best is None or value > self.best[0]):
            self.best = (float(value), rates)
        row["best_objective"] = self.best[0] if self.best else float("nan")
        self.trials.append(row)
        self.evaluations += 1

    # ------------------------------------------------------------------ acting
    def propose(self, model: EconomyModel) -> TaxSchedule:
        if model.outcome is None:  # first year: the initial schedule, like the LLM planner
            self.pending = self._row(model, "real", model.schedule.rate_array,
                                     model.schedule.rate_array, ["initial schedule"], False)
            problem = feasibility_problem(model.schedule, model.wages * model.hours,
                                          self.constraints, model.weights)
            if problem:
                raise UserError(problem)
            return model.schedule
        if self.es is None:
            self._start(model)
        e = self.options.evaluations_per_year
        obj = model.settings.planner.objective
        cf_values = []
        for _ in range(e - 1):
            proposed = self._candidate()
            rates, notes = self._project(model, proposed)
            out = counterfactual_outcome(model, model.schedule.with_rates(rates))
            value = social_welfare(obj.swf, out, **obj.params())
            # LLM workers answer a counterfactual year too; their fallbacks count in the year's
            # fallback rate, and a year where most of them fell back teaches the optimiser
            # nothing: the candidate goes back in the queue instead of being told
            fb = float(model.policy.last_respond_fallback_rate or 0.0)
            model.policy.count_counterfactual_replies(model)
            usable = fb <= model.settings.llm.max_failure_rate
            row = self._row(model, "counterfactual", proposed, rates, notes, usable)
            row["fallback_rate"] = fb
            if usable:
                self._tell(rates, value)
                cf_values.append(value)
            else:
                self.queue.insert(0, np.asarray(proposed, dtype=float))
            self._record(row, value)
        if e == 1:
            proposed, told = self._candidate(), True
        else:  # the optimiser's estimate: its mean, or before its first update the best seen
            first = self.es.countiter == 0 and self.best is not None
            proposed = np.asarray(self.best[1] if first else self.es.result.xfavorite, dtype=float)
            told = False
        rates, notes = self._project(model, proposed)
        self.pending = self._row(model, "real", proposed, rates, notes, told)
        stats = {
            "search_counterfactual_years": float(e - 1),
            "search_evaluations_total": float(self.evaluations + 1),
            "search_sigma": float(self.es.sigma),
            "search_generation": float(self.es.countiter),
        }
        if cf_values:
            finite = [v for v in cf_values if np.isfinite(v)]
            stats["search_best_counterfactual_objective"] = max(finite) if finite else float("nan")
        model.stats.set(**stats)
        return model.schedule.with_rates(rates)

    def observe(self, model: EconomyModel, record: dict) -> None:
        if self.pending is None:
            return
        row, self.pending = self.pending, None
        value = float(record["objective"])
        if row["told"]:
            self._tell(np.array([row[k] for k in row if k.startswith("rate_")]), value)
        if self.es is None:  # the first year, before the optimiser exists
            rates = [row[k] for k in row if k.startswith("rate_")]
            row.update(objective=value, generation=0, sigma=float("nan"), optimizer_mean=rates)
            if np.isfinite(value):
                self.best = (value, rates)
            row["best_objective"] = self.best[0] if self.best else float("nan")
            self.trials.append(row)
            self.evaluations += 1
        else:
            self._record(row, value)

    def tables(self, model: EconomyModel) -> dict[str, pd.DataFrame]:
        return {"search": pd.DataFrame(self.trials)} if self.trials else {}
