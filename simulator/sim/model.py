"""The economy: a Mesa model of workers and a tax-setting planner.

Two timescales, as in the LLM Economist: a tax year has ``steps_per_year`` steps; the
planner sets the schedule at the start of each year; every step all workers choose hours
(one batched call to the worker policy); incomes, taxes, the lump-sum rebate, utilities
and welfare are computed with the economic core; at the end of the year the planner
observes the year's outcome (its last step, the workers' exploitation step).

Worker state lives in numpy arrays owned by the model (``wages``, ``hours``,
``outcome``), so a step over 100 k workers is array arithmetic; the ``WorkerAgent``
objects are Mesa views onto those arrays.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import mesa
import numpy as np
import pandas as pd

from simulator import llm as inference
from simulator.config.builders import build_base_schedule, build_utility, build_world
from simulator.config.schema import Scenario
from simulator.economy.best_response import best_response
from simulator.economy.outcome import evaluate
from simulator.economy.participation import FixedCostUtility
from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.utility import (
    Utility,
    subset_utility,
)
from simulator.economy.welfare import (
    SWF_NAMES,
    Outcome,
    social_welfare,
)
from simulator.sim import participation as extensive
from simulator.sim.agents import PlannerAgent, WorkerAgent
from simulator.sim.enrichment import enrich_personas
from simulator.sim.health import RunHealth
from simulator.sim.planners import build_planner
from simulator.sim.population import build_population
from simulator.sim.stats import YearStats
from simulator.sim.workers import build_policy


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _component(obj: Any) -> dict[str, Any] | None:
    """A stateful object's class and ``checkpoint_state()`` (None when there is none)."""
    return None if obj is None else {"class": _qualname(obj), "state": obj.checkpoint_state()}


def _wmean(x: np.ndarray, w: np.ndarray | None) -> float:
    return float(np.average(x, weights=w)) if x.size else 0.0


class EconomyModel(mesa.Model):
    """Workers and one planner playing a two-timescale Stackelberg game.

    Parameters
    ----------
    scenario:
        The validated scenario.
    population:
        A population table (see :mod:`simulator.sim.population`); drawn from the scenario's
        source if omitted.
    llm:
        A language model (``simulator.llm``) for LLM workers/planners/voters; built
        from ``scenario.llm`` on first use if omitted.
    agent_objects:
        Create a ``WorkerAgent`` per worker (Mesa views); switch off for very large
        populations where only the arrays are needed.
    """

    def __init__(
        self,
        scenario: Scenario,
        population: pd.DataFrame | None = None,
        *,
        llm: Any = None,
        agent_objects: bool = True,
        run_dir: Any = None,
    ) -> None:
        # ``rng=`` seeds ``self.rng`` (numpy) on Mesa 3.3 and 3.5 alike; the scenario is
        # kept as ``settings`` because Mesa 3.5 reserves ``Model.scenario`` for its own
        super().__init__(rng=scenario.run.seed)
        self.settings = scenario
        self.run_dir = run_dir
        self.notes: list[str] = []
        self.year = 0
        pop_seed = scenario.population.seed
        pop_seed = scenario.run.seed if pop_seed is None else pop_seed
        # a stream of its own, derived from the one seed
        pop_rng = np.random.default_rng(np.random.SeedSequence([pop_seed, 0x504F50]))
        if population is None:
            population = build_population(scenario.population, pop_rng)
        self.population = population.reset_index(drop=True)
        self._llm = llm
        if scenario.population.enrich and "persona_template" not in self.population.columns:
            enriched, fallbacks = enrich_personas(self.population, self.llm)
            self.population["persona_template"] = self.population["persona"]
            self.population["persona"] = enriched
            if fallbacks:
                self.note(f"persona enrichment kept the template text for {fallbacks} workers")
        self.n_workers = len(self.population)
        self.wages = self.population["wage"].to_numpy(dtype=float)
        self.usual_hours = self.population["hours"].to_numpy(dtype=float)
        w = self.population["weight"].to_numpy(dtype=float)
        self.weights = None if np.all(w == w[0]) else w
        self.utility = build_utility(scenario)
        self.hours_bounds = tuple(map(float, scenario.economy.hours_bounds))
        self.rebate_share = scenario.economy.rebate_share
        self.base_schedule = build_base_schedule(scenario)
        self.schedule = self.base_schedule
        self.world = build_world(scenario, self.population)  # None: income tax only
        self._budgets: dict = {}
        # the extensive margin: a fixed cost of working per person, calibrated (or read
        # from the population), so that some people choose not to work
        self.participation = scenario.population.participation.enabled
        self.participation_elasticity = scenario.population.participation.elasticity
        self.participation_summary: dict[str, Any] | None = None
        employed = None
        if self.participation:
            setup = extensive.setup(self, pop_seed)
            self.utility = FixedCostUtility(self.utility, setup.fixed_cost,
                                            scenario.population.participation.nonwork_income)
            self.population["fixed_cost"] = setup.fixed_cost
            self.participation_summary = setup.summary
            employed = setup.employed
            self.wage_deciles = extensive.wage_deciles(self.wages, self.weights)
            self.household_groups = extensive.household_group(self.population)
        self.revenue_requirement = self._revenue_requirement()
        self.hours = self.clip_hours(self.usual_hours)
        if employed is not None:  # who works at the calibration starts the run working
            self.hours = np.where(employed, self.hours, 0.0)
        self.expected_rebate = self.rebate_at(self.schedule, self.hours)
        self.outcome: Outcome | None = None
        self.step_in_year = 0
        self.steps_per_year = scenario.run.steps_per_year
        self.history: list[dict[str, Any]] = []
        self.agent_years: list[dict[str, np.ndarray]] = []
        self.stats = YearStats()  # this year's statistics beyond the core aggregates
        self.health = RunHealth.for_model(self)  # LLM failures per step -> run status
        if self._llm is not None:
            self._llm_period()

        if agent_objects:
            WorkerAgent.create_agents(self, self.n_workers, list(range(self.n_workers)))
        self.policy = build_policy(self)
        self.planner = PlannerAgent(self, build_planner(self), self.schedule)
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "year": "year",
                "step_in_year": "step_in_year",
                "objective": "objective_value",
                "revenue": "revenue",
                "mean_hours": "mean_hours",
                "gini_post_tax": "gini_post_tax",
            }
        )

    # ------------------------------------------------------------------ language model
    @property
    def llm(self):
        """The language model shared by every LLM agent (built on first use)."""
        if self._llm is None:
            self._llm = inference.build_llm(self.settings.llm, run_dir=self.run_dir)
            self._llm_period()
        return self._llm

    @property
    def telemetry(self):
        """The language model's telemetry, or None if no LLM was used."""
        return getattr(self._llm, "telemetry", None) if self._llm is not None else None

    def _llm_period(self) -> None:
        tel = getattr(self._llm, "telemetry", None)
        if tel is not None:
            tel.start_period(self.year)

    def llm_year_stats(self) -> dict[str, float]:
        """This year's LLM calls summed over tags (requests, cache hits, tokens, ...)."""
        tel = self.telemetry
        if tel is None:
            return {}
        rows = [r for r in tel.period_rows() if r["period"] == str(self.year)]
        if not rows:
            return {}
        out = {
            f"llm_{k}": float(sum(r[k] for r in rows))
            for k in ("requests", "cache_hits", "prompt_tokens", "completion_tokens", "retries",
                      "failures", "constraint_violations", "transport_errors")
        }
        n = max(out["llm_requests"], 1.0)
        out["llm_failure_rate"] = out["llm_failures"] / n
        out["llm_transport_failure_rate"] = out["llm_transport_errors"] / n
        worker = [r for r in rows if r["tag"] == "worker"] or rows
        out["llm_latency_p50_s"] = float(max(r["latency_p50_s"] for r in worker))
        out["llm_latency_p95_s"] = float(max(r["latency_p95_s"] for r in worker))
        if any(r.get("service_p50_s", float("nan")) == r.get("service_p50_s") for r in worker):
            # the server reported its own time: queue wait and service apart
            out["llm_service_p50_s"] = float(np.nanmax([r["service_p50_s"] for r in worker]))
            out["llm_queue_p50_s"] = float(np.nanmax([r["queue_p50_s"] for r in worker]))
        return out

    # ------------------------------------------------------------------ tax-benefit world
    def budget(self, schedule, idx=None):
        """What every worker faces under the planner's ``schedule``: the schedule itself
        in the income-tax-only world, else the household budget of the us_current_law
        world (``simulator.economy.taxbenefit.system.HouseholdBudget``); ``idx`` restricts
        it to those workers."""
        if self.world is None:
            return schedule
        key = tuple(schedule.rates), tuple(schedule.thresholds)
        b = self._budgets.get(key)
        if b is None:
            # a budget keeps its workers' composed segments (about 0.5 GB at 1 M workers):
            # keep few of them for large populations
            limit = 64 if self.n_workers <= 100_000 else 3
            while len(self._budgets) >= limit:
                self._budgets.pop(next(iter(self._budgets)))
            b = self._budgets[key] = self.world.bind(schedule)
        return b if idx is None else b.subset(idx)

    def attributed_tax(self, schedule, z, idx=None) -> np.ndarray:
        """Each worker's share of taxes at pre-tax incomes ``z`` (what revenue adds up)."""
        b = self.budget(schedule, idx)
        return b.attributed_tax(z) if self.world is not None else b.tax(z)

    def rebate_at(self, schedule, hours, idx=None) -> float:
        """The lump-sum transfer per person the fiscal rule gives at ``hours``."""
        w = self.wages if idx is None else self.wages[idx]
        wt = self.weights if (idx is None or self.weights is None) else self.weights[idx]
        return lump_sum_rebate(self.attributed_tax(schedule, w * hours, idx), self.rebate_share, wt,
                               self.revenue_requirement)

    def evaluate(self, schedule, hours, idx=None, utility=None) -> Outcome:
        """:func:`~simulator.economy.outcome.evaluate` in this model's world and fiscal rule."""
        w = self.wages if idx is None else self.wages[idx]
        wt = self.weights if (idx is None or self.weights is None) else self.weights[idx]
        u = self.utility if utility is None else utility
        return evaluate(self.budget(schedule, idx), w, hours, u, self.rebate_share, wt,
                        requirement=self.revenue_requirement)

    def _revenue_requirement(self) -> float:
        eco = self.settings.economy
        if eco.fiscal_rule != "revenue_requirement":
            return 0.0
        if eco.revenue_requirement is not None:
            return float(eco.revenue_requirement)
        # current law's net revenue per person at the hours rational workers choose with
        # no transfer (docs/economics.md, "Fiscal rule")
        b = self.budget(self.base_schedule)
        h = best_response(b, self.wages, self.utility, 0.0, self.hours_bounds)
        tax = b.attributed_tax(self.wages * h) if self.world is not None else b.tax(self.wages * h)
        return float(np.average(tax, weights=self.weights))

    def clip_hours(self, hours) -> np.ndarray:
        """Hours a week within ``economy.hours_bounds``; with participation 0 (not
        working) stays 0 below any minimum hours of a job."""
        h = np.clip(np.asarray(hours, dtype=float), *self.hours_bounds)
        if self.participation:
            h = np.where(np.asarray(hours, dtype=float) <= 0, 0.0, h)
        return h

    def note(self, message: str) -> None:
        """Record a warning for the run manifest."""
        if message not in self.notes:
            self.notes.append(message)

    def utility_subset(self, idx: np.ndarray) -> Utility:
        """The utility with per-agent parameters restricted to ``idx``."""
        return subset_utility(self.utility, idx)

    # ------------------------------------------------------------------ properties
    @property
    def objective_value(self) -> float:
        if self.outcome is None:
            return float("nan")
        obj = self.settings.planner.objective
        return social_welfare(obj.swf, self.welfare_outcome, **obj.params())

    @property
    def welfare_outcome(self) -> Outcome:
        """The outcome welfare is computed on (utilities possibly adjusted by agents)."""
        if self._adjusted_now():
            return replace(self.outcome, utility=self.policy.adjusted_utility)
        return self.outcome

    def _adjusted_now(self) -> bool:
        """Satisfaction-adjusted utilities exist for this very year and are asked for."""
        return (
            self.settings.workers.llm.welfare_on == "adjusted"
            and self.policy.adjusted_utility is not None
            and self.policy.adjusted_year == self.year
        )

    @property
    def revenue(self) -> float:
        return self.outcome.revenue if self.outcome is not None else float("nan")

    @property
    def mean_hours(self) -> float:
        return _wmean(self.hours, self.weights)

    @property
    def gini_post_tax(self) -> float:
        return self.outcome.gini_post_tax if self.outcome is not None else float("nan")

    # ------------------------------------------------------------------ dynamics
    def step(self) -> None:
        """One step: (planner at year start) -> workers decide -> accounting."""
        if self.step_in_year == 0:
            self.stats = YearStats()
            if self._llm is not None:
                self._llm_period()
            proposed = self.planner.set_taxes()
            if tuple(proposed.thresholds) != tuple(self.base_schedule.thresholds):
                raise ValueError("a planner changed the bracket thresholds")
            self.schedule = proposed
        hours = np.asarray(self.policy.decide(self), dtype=float)
        if hours.shape != (self.n_workers,):
            raise ValueError(f"worker policy returned shape {hours.shape}, expected ({self.n_workers},)")
        self.hours = self.clip_hours(hours)
        self.outcome = self.evaluate(self.schedule, self.hours)
        self.expected_rebate = self.outcome.rebate
        self.datacollector.collect(self)
        self.step_in_year += 1
        if self.step_in_year >= self.steps_per_year:
            self._end_year()
        self.health.after_step(self)  # raises RunFailed when too many LLM requests failed

    def run_year(self) -> dict[str, Any]:
        """All steps of one tax year; returns the year's record."""
        for _ in range(self.steps_per_year - self.step_in_year):
            self.step()
        return self.history[-1]

    def _end_year(self) -> None:
        self.policy.end_year(self)
        record = self.year_record()
        self.history.append(record)
        o = self.outcome
        year = {
            "hours": o.hours.copy(),
            "pre_tax": o.pre_tax.copy(),
            "tax": o.tax.copy(),
            "rebate": np.full(self.n_workers, o.rebate),
            "post_tax": o.post_tax.copy(),
            "utility": o.utility.copy(),
        }
        if self.world is not None:
            year.update(self._components)
        if self.participation:
            rates = extensive.person_rates(self)
            year.update({k: np.asarray(v).copy() for k, v in rates.items()})
            if self.world is None:
                year["marginal_rate"] = self.schedule.marginal_rate(o.pre_tax)
        self.agent_years.append(year)
        self.planner.observe(record)
        self.year += 1
        self.step_in_year = 0

    def year_record(self) -> dict[str, Any]:
        """The current year's outcome as one flat row (rates, every SWF, aggregates)."""
        o = self.outcome
        wo = self.welfare_outcome
        obj = self.settings.planner.objective
        w = self.weights
        rec: dict[str, Any] = {
            "year": self.year,
            "planner": self.planner.kind,
            "objective_swf": obj.swf,
            "objective": social_welfare(obj.swf, wo, **obj.params()),
        }
        for i, r in enumerate(self.schedule.rates):
            rec[f"rate_{i}"] = r
        for name in SWF_NAMES:
            try:
                rec[f"swf_{name}"] = social_welfare(name, wo, **obj.params(name))
            except ValueError:
                rec[f"swf_{name}"] = float("nan")
        rec.update(
            revenue=o.revenue,
            rebate=o.rebate,
            mean_hours=_wmean(o.hours, w),
            share_at_hours_cap=_wmean((o.hours >= self.hours_bounds[1] - 1e-9).astype(float), w),
            mean_pre_tax_income=_wmean(o.pre_tax, w),
            mean_post_tax_income=_wmean(o.post_tax, w),
            mean_utility=_wmean(o.utility, w),
            gini_pre_tax=o.gini_pre_tax,
            gini_post_tax=o.gini_post_tax,
            welfare_on="adjusted" if self._adjusted_now() else "raw",
        )
        if self.world is not None:
            rec.update(self._world_record())
        if self.participation:
            rec.update(extensive.employment_record(self))
            if self.participation_summary is not None:
                rec.update(self.participation_summary)
        rec.update(self.stats.as_dict())
        rec.update(self.llm_year_stats())
        return rec

    #: per-agent columns of the us_current_law world (dollars a year, the unit's amounts)
    COMPONENT_COLUMNS = ("income_tax_before_credits", "elderly_credit", "ctc", "actc", "eitc",
                         "income_tax", "payroll_tax", "payroll_tax_employer", "net_tax",
                         "marginal_rate")

    @property
    def _components(self) -> dict[str, np.ndarray]:
        """This year's components per worker (us_current_law world), computed once."""
        cached = getattr(self, "_components_cache", None)
        key = (self.year, self.step_in_year, id(self.outcome))
        if cached is not None and cached[0] == key:
            return cached[1]
        b = self.budget(self.schedule)
        z = self.outcome.pre_tax
        c = b.components(z)
        out = {k: np.asarray(c[k], dtype=float) for k in self.COMPONENT_COLUMNS if k in c}
        out["marginal_rate"] = b.marginal_rate(z)
        self._components_cache = (key, out)
        return out

    def _world_record(self) -> dict[str, float]:
        """Year totals of the us_current_law world, per person of the population
        (dollars a year; each tax unit counted once) and recipient shares."""
        c = self._components
        b = self.budget(self.schedule)
        share = b.share
        w = np.ones(self.n_workers) if self.weights is None else self.weights
        tot = float(w.sum())

        def per_person(x):
            return float(np.dot(w, x * share) / tot)

        def recipients(x):
            return float(np.dot(w, (x > 0) * share) / tot)

        return {
            "world": "us_current_law",
            "revenue_requirement": self.revenue_requirement,
            "income_tax_revenue": per_person(c["income_tax"]),
            "payroll_revenue": per_person(c["payroll_tax"]),
            "payroll_revenue_employer": per_person(c["payroll_tax_employer"]),
            "eitc_cost": per_person(c["eitc"]),
            "ctc_cost": per_person(c["ctc"]),
            "actc_cost": per_person(c["actc"]),
            "eitc_recipients": recipients(c["eitc"]),
            "ctc_recipients": recipients(c["ctc"] + c["actc"]),
            "actc_recipients": recipients(c["actc"]),
            "mean_marginal_rate": float(np.average(c["marginal_rate"], weights=self.weights)),
        }

    def run(self, years: int | None = None, callback=None) -> list[dict[str, Any]]:
        """Run ``years`` tax years (default: the scenario's); ``callback(record)`` after each."""
        for _ in range(years if years is not None else self.settings.run.tax_years):
            rec = self.run_year()
            if callback is not None:
                callback(rec)
        return self.history

    # ------------------------------------------------------------------ checkpoint
    def checkpoint_state(self) -> dict[str, Any]:
        """Everything the model needs to continue after the current tax year: its arrays
        and records, both random generators, the DataCollector's model variables, and the
        state of the worker policy, the planner, the LLM telemetry and the run health."""
        dc = self.datacollector
        return {
            "year": self.year,
            "step_in_year": self.step_in_year,
            "hours": self.hours.copy(),
            "expected_rebate": self.expected_rebate,
            "outcome": self.outcome,
            "schedule": self.schedule,
            "planner_schedule": self.planner.schedule,
            "history": self.history,
            "agent_years": self.agent_years,
            "stats": self.stats.checkpoint_state(),
            "notes": list(self.notes),
            "rng": self.rng.bit_generator.state,
            "random": self.random.getstate(),
            "mesa_steps": self.steps,
            "model_vars": {k: list(v) for k, v in dc.model_vars.items()},
            "policy": _component(self.policy),
            "planner": _component(self.planner.strategy),
            "telemetry": _component(self.telemetry),
            "health": _component(self.health),
            "participation_summary": self.participation_summary,
        }

    def restore_state(self, state: dict[str, Any], *, after_year: int | None = None,
                      planner_too: bool = True) -> list[str]:
        """Take back :meth:`checkpoint_state`; returns notes on what started afresh.

        The worker policy and the planner are restored when they are of the class that
        was saved (a fork may change them; their options come from the scenario), the
        planner only when ``planner_too`` (a fork that changed the objective restarts it).
        ``after_year`` names the checkpoint's tax year in the notes.
        """
        st = state
        when = f" after tax year {after_year}" if after_year is not None else ""
        notes: list[str] = []
        self.year = st["year"]
        self.step_in_year = st["step_in_year"]
        self.hours = st["hours"].copy()
        self.expected_rebate = st["expected_rebate"]
        self.outcome = st["outcome"]
        self.schedule = st["schedule"]
        self.planner.schedule = st["planner_schedule"]
        self.history = list(st["history"])
        self.agent_years = list(st["agent_years"])
        self.stats.restore_state(st["stats"])
        if st.get("participation_summary") is not None:  # the calibration of the run's costs
            self.participation_summary = st["participation_summary"]
        for note in st["notes"]:
            self.note(note)
        self.rng.bit_generator.state = st["rng"]
        self.random.setstate(st["random"])
        try:
            self.steps = st["mesa_steps"]
        except AttributeError:  # a Mesa whose step counter is read-only
            pass
        for key, values in st["model_vars"].items():
            self.datacollector.model_vars[key] = list(values)

        def put(obj: Any, saved: dict | None, what: str, allowed: bool) -> None:
            if saved is None:
                return
            if not allowed or saved["class"] != _qualname(obj):
                notes.append(f"{what} starts afresh{when} (changed in this fork)")
            else:
                obj.restore_state(saved["state"])

        put(self.policy, st["policy"], "the worker policy", True)
        put(self.planner.strategy, st["planner"], "the planner", planner_too)
        if st["telemetry"] is not None:
            tel = getattr(self.llm, "telemetry", None)  # builds the language model now
            if tel is not None:
                tel.restore_state(st["telemetry"]["state"])
        # after the telemetry: the health indexes its records
        self.health.restore_state(st["health"]["state"])
        return notes

    # ------------------------------------------------------------------ tables
    def years_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history)

    def agents_frame(self) -> pd.DataFrame:
        """One row per worker per tax year."""
        if not self.agent_years:
            return pd.DataFrame(
                columns=["year", "id", "wage", "hours", "pre_tax", "tax", "rebate", "post_tax", "utility"]
            )
        n = self.n_workers
        ids = self.population["id"].to_numpy()
        parts = {
            "year": np.repeat(np.arange(len(self.agent_years)), n),
            "id": np.tile(ids, len(self.agent_years)),
            "wage": np.tile(self.wages, len(self.agent_years)),
        }
        for key in ("hours", "pre_tax", "tax", "rebate", "post_tax", "utility"):
            parts[key] = np.concatenate([y[key] for y in self.agent_years])
        if self.world is not None:
            years = len(self.agent_years)
            for col in ("filing_status", "children", "eitc_children", "spouse_age", "spouse_wages"):
                if col in self.population.columns:
                    parts[col] = np.tile(self.population[col].to_numpy(), years)
            for key in self.COMPONENT_COLUMNS:
                if all(key in y for y in self.agent_years):
                    parts[key] = np.concatenate([y[key] for y in self.agent_years])
        if self.participation:
            years = len(self.agent_years)
            for key in ("employed", "participation_tax_rate", "potential_earnings", "marginal_rate"):
                if key not in parts and all(key in y for y in self.agent_years):
                    parts[key] = np.concatenate([y[key] for y in self.agent_years])
            parts["fixed_cost"] = np.tile(self.population["fixed_cost"].to_numpy(dtype=float), years)
            parts["household_type"] = np.tile(extensive.household_group(self.population), years)
        return pd.DataFrame(parts)
