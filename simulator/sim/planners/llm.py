"""The in-context reinforcement-learning planner: an LLM proposes tax schedules.

Each tax year (from the second on; the first keeps the initial schedule) the planner
sees the objective stated exactly, the brackets and the allowed rates, a table of the
schedules tried so far with their outcomes, the best ``k`` of them, the share of workers
and their mean utility in each bracket (a fixed-size view whatever the population), and
an exploration cue that decays over the run.  It answers with one rate per bracket
(absolute percentages, or changes in percentage points), which is projected onto the
constraints: rate range, maximum change per year, optional monotone progressivity, and
an optional revenue floor (checked on last year's incomes, i.e. without behavioural
response).  An unusable reply keeps the current schedule and is counted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.config.builders import build_base_schedule
from simulator.config.schema import LLMPlannerOptions, Scenario
from simulator.economy.tax import TaxSchedule
from simulator.llm import Request, integer_field, json_object_constraint
from simulator.sim.planners.base import Planner
from simulator.sim.prompts import histogram_text, money, rebate_phrase, table

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel

OBJECTIVE_TEXT = {
    "utilitarian": "the average utility of all workers (utilitarian welfare)",
    "inverse_income": "the average utility of the workers weighted by 1/max(pre-tax income, "
    "{income_floor:,.0f} dollars), which puts more weight on low earners",
    "inverse_income_sum": "the sum over workers of utility divided by max(pre-tax income, "
    "{income_floor:,.0f} dollars)",
    "maxmin": "the utility of the worst-off worker (Rawlsian max-min welfare)",
    "atkinson": "the equally-distributed-equivalent post-tax income with inequality "
    "aversion {epsilon:g} (Atkinson welfare)",
    "equality_productivity": "(1 - Gini of post-tax income) times average pre-tax income "
    "(equality times productivity)",
    "revenue": "tax revenue per person",
}


def objective_text(value: float) -> str:
    """An objective value with 6 significant digits whatever its scale (0.0131234,
    10.4897, 61073.3): fixed decimals would leave 3 digits of a 0.013 objective."""
    return f"{value:.6g}"


def constraint_warnings(scenario: Scenario) -> list[str]:
    """Warnings (one line each) when a constrained planner (``llm``, ``search``, or an
    election's winners) starts from rates its own constraints exclude: it then breaks
    ``rate_bounds`` (or ``monotone``) for the years it needs, at ``max_step`` a year, to
    step back into range.  Empty for unconstrained planners and for consistent settings."""
    if scenario.planner.kind not in ("llm", "search") and not scenario.democracy.enabled:
        return []
    o = scenario.planner.llm
    start = np.asarray(build_base_schedule(scenario).rates, dtype=float)
    lo, hi = o.rate_bounds
    out = []
    gap = float(np.max(np.maximum(lo - start, start - hi)))
    if gap > 1e-12:
        years = int(np.ceil(gap / o.max_step - 1e-9))
        out.append(
            f"planner.llm.rate_bounds [{lo:g}, {hi:g}] excludes starting rates "
            f"{', '.join(f'{r:g}' for r in start)}: at max_step {o.max_step:g} the planner needs "
            f"{years} tax year(s) to step into range and breaks the bounds meanwhile"
        )
    if o.monotone and np.any(np.diff(start) < -1e-12):
        out.append("planner.llm.monotone: the starting rates are not non-decreasing; the planner "
                   "breaks monotonicity until max_step lets it repair them")
    return out


def project_rates(
    proposed: np.ndarray,
    current: np.ndarray,
    options: LLMPlannerOptions,
    schedule: TaxSchedule | None = None,
    last_incomes: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Project proposed rates onto the planner's constraints; returns (rates, what changed).

    Order: rate range, revenue floor (population-weighted mean tax on last year's
    incomes), monotone progressivity, then the maximum change per year, which takes
    precedence over everything else: when the others cannot all hold within one year's
    step the result moves as far towards them as the step allows, and says so.
    """
    lo, hi = options.rate_bounds
    notes = []
    r = np.clip(np.asarray(proposed, dtype=float), lo, hi)
    if not np.allclose(r, proposed):
        notes.append("clipped to the rate range")
    if options.revenue_floor is not None and schedule is not None and last_incomes is not None:
        def revenue(x: np.ndarray) -> float:
            s = schedule.with_rates(x)  # a household budget counts each unit's share
            tax = s.attributed_tax(last_incomes) if getattr(s, "per_agent", False) else s.tax(last_incomes)
            return float(np.average(tax, weights=weights))

        if revenue(r) < options.revenue_floor:
            top = np.full_like(r, hi)
            if revenue(top) < options.revenue_floor:
                r = top
                notes.append("revenue floor unreachable: all rates at the maximum")
            else:
                a, b = 0.0, 1.0
                for _ in range(50):
                    m = 0.5 * (a + b)
                    a, b = (m, b) if revenue(r + m * (top - r)) < options.revenue_floor else (a, m)
                r = r + b * (top - r)
                notes.append("raised to meet the revenue floor")
    if options.monotone:
        mono = np.maximum.accumulate(r)
        if not np.allclose(mono, r):
            notes.append("made non-decreasing")
        r = mono
    step = options.max_step
    stepped = np.clip(r, current - step, current + step)
    if not np.allclose(stepped, r):
        notes.append("limited to the maximum change per year")
    r = np.clip(stepped, lo, hi)
    if options.monotone and np.any(np.diff(r) < -1e-12):
        # the step limit wins; make the schedule as close to monotone as one step allows
        r = np.clip(np.maximum.accumulate(r), current - step, current + step)
        if np.any(np.diff(r) < -1e-12):
            notes.append("not yet non-decreasing: more than one year's step away")
    return r, notes


class LLMPlanner(Planner):
    """Tax schedules proposed by a language model that learns in context."""

    kind = "llm"

    @classmethod
    def from_config(cls, model: EconomyModel) -> LLMPlanner:
        return cls(model.settings.planner.llm)

    def __init__(
        self,
        options: LLMPlannerOptions,
        *,
        objective_text: str | None = None,
        objective_fn: Callable[[EconomyModel], float] | None = None,
        persona: str | None = None,
        tag: str = "planner",
    ) -> None:
        self.options = options
        self.objective_text = objective_text
        self.objective_fn = objective_fn
        self.persona = persona
        self.tag = tag
        self.tried: list[dict] = []  # one entry per observed year
        self.log: list[dict] = []

    # ------------------------------------------------------------------ prompt
    def _objective(self, model: EconomyModel) -> str:
        if self.objective_text:
            return self.objective_text
        obj = model.settings.planner.objective
        return OBJECTIVE_TEXT[obj.swf].format(income_floor=obj.floor, epsilon=obj.epsilon)

    def exploration(self, year: int) -> float:
        return self.options.exploration_start * self.options.exploration_decay ** max(year - 1, 0)

    def prompt(self, model: EconomyModel) -> tuple[str, str]:
        o = self.options
        sched = model.schedule
        k = sched.n_brackets
        lo, hi = o.rate_bounds
        who = f"{self.persona}\nYou have been elected to set taxes. " if self.persona else ""
        system = (
            f"{who}You set the income tax of a simulated economy of {model.n_workers:,} workers. "
            "Each tax year you choose the marginal tax rate of every income bracket; "
            f"{rebate_phrase(model.rebate_share)}; then the workers choose how "
            "many hours to work. Your goal is to maximise "
            f"{self._objective(model)}. Learn from the outcomes of the schedules you tried."
        )
        brackets = [
            f"b{i + 1}: {money(sched.thresholds[i])}"
            + (f" to {money(sched.thresholds[i + 1])}" if i + 1 < k else " and above")
            for i in range(k)
        ]
        head = ["year", "rates % (b1..)", "objective", "revenue/person", "hours/wk", "Gini", "fallback"]
        employment = model.participation and all("employment" in t for t in self.tried[-o.history:])
        if employment:  # people may not work: the planner sees who does
            head.insert(5, "employed")
        rows = []
        for t in self.tried[-o.history:]:
            row = [str(t["year"]), "/".join(f"{100 * x:.0f}" for x in t["rates"]), objective_text(t["objective"]),
                   money(t["revenue"]), f"{t['mean_hours']:.1f}", f"{t['gini']:.3f}", f"{t['fallback']:.0%}"]
            if employment:
                row.insert(5, f"{t['employment']:.1%}")
            rows.append(row)
        best = sorted(self.tried, key=lambda t: -t["objective"])[: o.best_k]
        best_txt = "; ".join(
            f"year {t['year']}: {'/'.join(f'{100 * x:.0f}' for x in t['rates'])} -> {objective_text(t['objective'])}"
            for t in best
        )
        # workers per bracket and their mean utility (fixed size, any population)
        out = model.outcome
        taxable = np.maximum(out.pre_tax - sched.deduction, 0.0)
        idx = np.clip(np.searchsorted(sched.threshold_array, taxable, side="right") - 1, 0, k - 1)
        pw = np.ones_like(taxable) if model.weights is None else model.weights
        mass = np.bincount(idx, weights=pw, minlength=k)
        mean_u = np.bincount(idx, weights=pw * out.utility, minlength=k) / np.maximum(mass, 1e-300)
        dist = "; ".join(
            f"b{i + 1}: {mass[i] / pw.sum():.0%} of workers"
            + (f", mean utility {mean_u[i]:.3f}" if mass[i] > 0 else "")
            for i in range(k)
        )
        u_lo, u_hi = float(out.utility.min()), float(out.utility.max())
        edges = np.linspace(u_lo, u_hi if u_hi > u_lo else u_lo + 1.0, o.histogram_bins + 1)[:-1]
        u_hist = histogram_text(out.utility, edges, "Utility distribution (share of workers)",
                                model.weights, decimals=3)
        level = self.exploration(model.year)
        cue = (
            "explore: try a clearly different schedule from those above"
            if level >= 0.5 else "exploit: make small changes to the best schedule so far"
        )
        if o.action == "absolute":
            ask = (f"Give the new rate of every bracket in whole percent between {100 * lo:.0f} "
                   f"and {100 * hi:.0f}.")
        else:
            ask = (f"Give the change of every bracket's rate in percentage points, between "
                   f"-{100 * o.max_step:.0f} and +{100 * o.max_step:.0f}.")
        user = "\n".join([
            "Brackets of taxable income: " + "; ".join(brackets),
            f"Current rates (%): {'/'.join(f'{100 * x:.0f}' for x in sched.rates)}",
            "Schedules tried so far:",
            table(head, rows),
            f"Best so far: {best_txt}",
            f"Last year, workers by bracket: {dist}",
            u_hist,
            f"Exploration level {level:.2f} ({cue}).",
            ask,
            'Reply with JSON only: {' + ", ".join(f'"b{i + 1}": N' for i in range(k)) + "}",
        ])
        return system, user

    def constraint(self, k: int):
        o = self.options
        if o.action == "absolute":
            lo, hi = round(100 * o.rate_bounds[0]), round(100 * o.rate_bounds[1])
        else:
            hi = round(100 * o.max_step)
            lo = -hi
        return json_object_constraint({f"b{i + 1}": integer_field(lo, hi) for i in range(k)})

    # ------------------------------------------------------------------ acting
    def observe(self, model: EconomyModel, record: dict) -> None:
        value = self.objective_fn(model) if self.objective_fn else record["objective"]
        self.tried.append({
            "year": record["year"],
            "rates": list(model.schedule.rates),
            "objective": float(value),
            "revenue": record["revenue"],
            "mean_hours": record["mean_hours"],
            "gini": record["gini_post_tax"],
            "fallback": record.get("fallback_rate", 0.0),
            **({"employment": record["employment_rate"]} if "employment_rate" in record else {}),
        })

    def propose(self, model: EconomyModel) -> TaxSchedule:
        if not self.tried or model.outcome is None:
            return model.schedule
        k = model.schedule.n_brackets
        system, user = self.prompt(model)
        seed = int(model.rng.integers(0, 2**31 - 1))
        req = Request.chat(user, system=system, constraint=self.constraint(k), seed=seed,
                           tag=self.tag, temperature=self.options.temperature,
                           max_tokens=self.options.max_tokens)
        resp = model.llm.generate([req])[0]
        current = model.schedule.rate_array
        entry = {"year": model.year, "tag": self.tag, "prompt": user, "reply": resp.text,
                 "valid": bool(resp.ok), "error": resp.error, "error_kind": resp.error_kind}
        if resp.ok:
            raw = np.array([resp.value[f"b{i + 1}"] for i in range(k)], dtype=float) / 100.0
            proposed = raw if self.options.action == "absolute" else current + raw
            rates, notes = project_rates(proposed, current, self.options, model.budget(model.schedule),
                                         model.outcome.pre_tax, model.weights)
            entry.update(proposed=proposed.tolist(), applied=rates.tolist(), projection="; ".join(notes))
        else:
            rates = current
            why = ("no reply (transport failure): kept" if resp.error_kind == "transport"
                   else "invalid reply: kept" if resp.error_kind == "invalid"
                   else f"no reply ({resp.error_kind} error): kept")
            entry.update(proposed=None, applied=rates.tolist(), projection=why)
        self.log.append(entry)
        invalid = sum(e.get("error_kind") == "invalid" for e in self.log if e["tag"] == self.tag)
        transport = sum(e.get("error_kind") == "transport" for e in self.log if e["tag"] == self.tag)
        model.stats.set(**{f"{self.tag}_invalid_total": float(invalid),
                                 f"{self.tag}_transport_failures_total": float(transport),
                                 f"{self.tag}_valid": float(resp.ok)})
        return model.schedule.with_rates(rates)

    def tables(self, model: EconomyModel) -> dict[str, pd.DataFrame]:
        return {"planner": pd.DataFrame(self.log)} if self.log else {}

    # ------------------------------------------------------------------ checkpoint
    def checkpoint_state(self) -> dict:
        """The in-context memory (schedules tried and their outcomes) and the prompt log."""
        return {"tried": copy.deepcopy(self.tried), "log": copy.deepcopy(self.log)}

    def restore_state(self, state: dict) -> None:
        self.tried = copy.deepcopy(state["tried"])
        self.log = copy.deepcopy(state["log"])
