"""LLM workers: each worker asks the language model how many hours to work.

One prompt per worker per step, built from the shared part (the system message:
instructions, the reply format, this year's schedule, the expected rebate, then the year
and an explore/exploit cue, so that what changes between steps comes last) followed by
the worker's own part (persona, wage, a take-home table computed by the core at a few
hour levels, its last few years and its best year).  ``workers.llm.prompt_layout``
chooses the compact layout (default; a few rows, one line of past years, about half the
tokens) or the verbose one of earlier releases (every ``hour_levels`` row; byte for byte
as they built it).  Replies are constrained to ``{"hours": <int lo..hi>}``; a reply that
still cannot be used falls back to the worker's last-year hours (first year: the
rational best response), is counted, and never stops the run.

With ``bounded: true`` every worker is also asked once a year whether it is satisfied
with the tax policy (yes/no); a "no" lowers the utility it sees by
``(1 - satisfaction_scale) * |u|``, and the planner's welfare uses raw or adjusted
utility as the scenario says.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.config.schema import LLMWorkerOptions
from simulator.economy.best_response import best_response
from simulator.economy.tax import TaxSchedule
from simulator.llm import Request, choices, integer_field, json_object_constraint
from simulator.sim.prompts import (
    dollars,
    household_taxes_compact_text,
    household_taxes_text,
    money,
    rebate_phrase,
    schedule_compact_text,
    schedule_text,
    table,
    take_home_grid,
    utility_decimals,
    utility_text,
)
from simulator.sim.workers.base import WorkerPolicy
from simulator.sim.workers.pool_ask import ask_hours_pooled, satisfaction_pooled
from simulator.sim.workers.pool_plan import PoolingState
from simulator.sim.workers.streaming import chunk_size_for, generate_streamed, worker_seeds

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel

def system_text(rebate_share: float, participation: bool = False) -> str:
    text = (
        "You are a worker in a simulated economy choosing how many hours a week to work this "
        "tax year. Your pre-tax income is your wage times your weekly hours. The government "
        f"taxes income with the marginal tax schedule below, and {rebate_phrase(rebate_share)} "
        "(the rebate). More hours mean more money but less free time; "
        "the utility column measures how good a year feels to you, higher is better."
    )
    if participation:
        text += (" Not working at all this year is an option: answer 0 hours. Working at all has a "
                 "yearly cost (commuting, childcare, time); the utility column counts it.")
    return text


def system_text_compact(rebate_share: float, participation: bool = False, household: bool = False) -> str:
    """The compact layout's instructions (what every worker of every step shares)."""
    if rebate_share >= 1.0:
        back = "all revenue returns as an equal rebate, in take-home"
    elif rebate_share <= 0.0:
        back = "no revenue returns to the workers"
    else:
        back = f"{rebate_share:.0%} of revenue returns as an equal rebate, in take-home"
    text = (
        "Choose your weekly work hours this tax year. Income (wage times hours) is taxed at the marginal "
        f"rates below; {back}. Utility (higher is better) weighs money against free time."
    )
    if participation:
        text += " 0 hours: not working; working has a yearly cost (commuting, childcare, time), in utility."
    if household:
        text += " Take-home and tax are your household's (tax: income tax after credits, plus payroll tax)."
    return text


def hour_levels(model: EconomyModel, levels) -> list[float]:
    """The take-home table's rows: the scenario's, with 0 hours when not working is an option."""
    levels = [float(x) for x in levels]
    if model.participation and 0.0 not in levels:
        levels = [0.0, *levels]
    return levels


def compact_rows(levels, last, bounds: tuple[float, float], participation: bool,
                 spread: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The compact take-home table's hours, one row of ``(n, k)`` per worker, and how
    many of each row's first entries are the table (the rest repeat its last one).

    The table: 0 hours where people may not work, then ``spread`` positive hours: the
    worker's last hours (``last``, rounded, within ``bounds``) and the ``spread`` positive
    ``levels`` spread over their range (first, middle, last) without the one nearest to
    the last hours, so the rows span the range and include where the worker stands.  Rows
    keep the order of ``levels`` (descending when they are given descending: the
    validity report's reversed-rows check)."""
    pos = list(dict.fromkeys(float(x) for x in levels if float(x) > 0))
    desc = len(pos) > 1 and pos[0] > pos[-1]
    pos = sorted(pos)
    if len(pos) > spread:
        pos = [pos[int(k)] for k in np.unique(np.rint(np.linspace(0, len(pos) - 1, spread)).astype(int))]
    lo, hi = bounds
    last = np.rint(np.clip(np.asarray(last, dtype=float), max(lo, 0.0), hi))
    n = last.size
    width = (1 if participation else 0) + max(len(pos), 1) + 1
    out = np.zeros((n, width))
    counts = np.zeros(n, dtype=np.int64)
    grid = np.asarray(pos, dtype=float)
    for p in range(n):
        h = last[p]
        rows = set(pos)
        if rows and h not in rows and (h > 0 or not participation):
            if len(pos) >= spread:  # make room: drop the level nearest the last hours
                rows.discard(pos[int(np.argmin(np.abs(grid - h)))])
            rows.add(h)
        elif not rows:
            rows = {h}
        if participation:
            rows.add(0.0)
        r = sorted(rows, reverse=desc)
        counts[p] = len(r)
        out[p, :len(r)] = r
        out[p, len(r):] = r[-1]
    return out, counts


EXPLORE = "This is an early step of the year: try an amount of hours you have not tried, to learn."
EXPLOIT = "This is the deciding step of the year: choose the hours you believe are best for you."
EXPLORE_COMPACT = "Early step: try hours you have not tried, to learn."
EXPLOIT_COMPACT = "Deciding step: choose the hours you believe are best for you."


class LLMWorkerPolicy(WorkerPolicy):
    """Hours from a language model, one batched call per step."""

    name = "llm"

    def __init__(self, options: LLMWorkerOptions) -> None:
        self.options = options
        self.adjusted_utility: np.ndarray | None = None
        self.adjusted_year: int | None = None
        self.adjusted_history: list[np.ndarray] = []
        self.samples: list[dict] = []
        self.satisfaction: list[dict] = []
        self._prefix: np.ndarray | None = None
        self.pool_state = PoolingState()
        # requests sent and transport failures among them, since the last reset (decide)
        self.asked_requests = 0
        self.transport_failures = 0

    # ------------------------------------------------------------------ prompts
    def shared_prefix(self, model: EconomyModel, schedule: TaxSchedule, rebate: float, explore: bool) -> str:
        """The system message, identical for every worker of a step (``prompt_layout``)."""
        if self.options.prompt_layout == "verbose":
            return self._shared_prefix_verbose(model, schedule, rebate, explore)
        lo, hi = model.hours_bounds
        low = 0.0 if model.participation else lo
        # one step a year: every step decides, no cue
        cue = "" if model.steps_per_year <= 1 else f" {EXPLORE_COMPACT if explore else EXPLOIT_COMPACT}"
        # what never changes in a run first, then the year's schedule and rebate, then the step's cue
        return (
            f"{system_text_compact(model.rebate_share, model.participation, model.world is not None)}\n"
            f'Reply {{"hours": N}}, N from {low:.0f} to {hi:.0f}.\n'
            f"{schedule_compact_text(schedule)}\n"
            f"Expected rebate: {dollars(rebate)}.\n"
            f"Tax year {model.year}.{cue}"
        )

    def _shared_prefix_verbose(self, model: EconomyModel, schedule: TaxSchedule, rebate: float,
                               explore: bool) -> str:
        lo, hi = model.hours_bounds
        cue = EXPLORE if explore else EXPLOIT
        return (
            f"{system_text(model.rebate_share, model.participation)}\n\nTax year {model.year}. "
            f"Marginal tax schedule:\n{schedule_text(schedule)}\n"
            f"Expected rebate per person this year: {money(rebate)}.\n{cue}\n"
            f'Reply with JSON only: {{"hours": N}} with N a whole number from {lo:.0f} to {hi:.0f}.'
        )

    def worker_parts(self, model: EconomyModel, schedule: TaxSchedule, rebate: float,
                     idx: np.ndarray | None = None, in_work_benefit: np.ndarray | None = None) -> list[str]:
        """The worker-specific prompt parts of workers ``idx`` (default: everyone).
        ``in_work_benefit`` (dollars a year, one per worker of the population): a payment
        to those who work, added to the table's positive-hours rows and said in words
        (the validity report's participation reform)."""
        if self.options.prompt_layout == "verbose":
            return self._worker_parts_verbose(model, schedule, rebate, idx, in_work_benefit)
        return self._worker_parts_compact(model, schedule, rebate, idx, in_work_benefit)

    def table_hours(self, model: EconomyModel, idx: np.ndarray | None = None) -> list[list[float]]:
        """The hours of each worker's take-home rows, in the order its prompt shows them
        (``prompt_layout``): what a reply's row position is read from."""
        idx = np.arange(model.n_workers) if idx is None else np.asarray(idx, dtype=np.int64)
        if self.options.prompt_layout == "verbose":
            return [hour_levels(model, self.options.hour_levels)] * idx.size
        levels, counts = compact_rows(self.options.hour_levels, self._last_hours(model, idx),
                                      model.hours_bounds, model.participation)
        return [levels[p, :counts[p]].tolist() for p in range(idx.size)]

    @staticmethod
    def _with_benefit(model: EconomyModel, grid: dict, idx: np.ndarray,
                      in_work_benefit: np.ndarray | None) -> tuple[dict, np.ndarray | None]:
        """The take-home grid with the in-work benefit (dollars a year, one per worker of the
        population) added to its positive-hours rows, and the benefit of workers ``idx``."""
        if in_work_benefit is None:
            return grid, None
        benefit = np.asarray(in_work_benefit, dtype=float)[idx]
        grid = dict(grid)
        grid["post_tax"] = grid["post_tax"] + np.where(grid["hours"] > 0, benefit[:, None], 0.0)
        grid["utility"] = model.utility_subset(idx)(grid["post_tax"], grid["hours"])
        return grid, benefit

    def _history(self, model: EconomyModel, idx: np.ndarray):
        """``(past, past_years, shown_u, all_u)``: the last ``history`` years shown, their
        numbers, the utilities shown for them (satisfaction-adjusted where asked) and every
        year's utility of workers ``idx`` (for the best year)."""
        o = self.options
        past = model.agent_years[-o.history:] if o.history else []
        past_years = list(range(len(model.agent_years) - len(past), len(model.agent_years)))
        shown_u = self.adjusted_history[-len(past):] if self.adjusted_history and past else None
        all_u = (
            np.stack([u[idx] for u in self.adjusted_history], 1) if self.adjusted_history
            else np.stack([y["utility"][idx] for y in model.agent_years], 1) if model.agent_years else None
        )
        return past, past_years, shown_u, all_u

    @staticmethod
    def _last_hours(model: EconomyModel, idx: np.ndarray) -> np.ndarray:
        """Last year's hours (the first year: the hours the model starts from)."""
        return np.asarray((model.agent_years[-1]["hours"] if model.agent_years else model.hours)[idx], dtype=float)

    def _worker_parts_compact(self, model: EconomyModel, schedule: TaxSchedule, rebate: float,
                              idx: np.ndarray | None, in_work_benefit: np.ndarray | None) -> list[str]:
        """Persona, wage, a take-home table of a few rows (:func:`compact_rows`), the past
        years in one line and the best year."""
        o = self.options
        idx = np.arange(model.n_workers) if idx is None else np.asarray(idx, dtype=np.int64)
        levels, counts = compact_rows(o.hour_levels, self._last_hours(model, idx), model.hours_bounds,
                                      model.participation)
        grid = take_home_grid(model.budget(schedule, idx), model.wages[idx], levels, rebate,
                              model.utility_subset(idx))
        grid, benefit = self._with_benefit(model, grid, idx, in_work_benefit)
        costs = support = None
        if model.participation:
            costs = np.broadcast_to(np.asarray(model.utility.fixed_cost, dtype=float), (model.n_workers,))[idx]
            support = np.broadcast_to(np.asarray(model.utility.nonwork_income, dtype=float),
                                      (model.n_workers,))[idx]
        past, past_years, shown_u, all_u = self._history(model, idx)
        personas = [str(x) for x in model.population["persona"].iloc[idx]]  # (only the rows asked)
        parts = []
        for p, i in enumerate(idx):
            k = int(counts[p])
            d = utility_decimals(grid["utility"][p, :k])
            rows = [[f"{levels[p, j]:.0f}", dollars(grid["tax"][p, j]), dollars(grid["post_tax"][p, j]),
                     utility_text(grid["utility"][p, j], d)] for j in range(k)]
            text = [personas[p], f"Your wage: {dollars(model.wages[i])} a year per weekly hour."]
            if costs is not None:
                was = past[-1]["hours"][i] if past else model.hours[i]
                status = "worked" if was > 0 else "did not work"
                cost = "more than you could earn" if not np.isfinite(costs[p]) else f"about {dollars(costs[p])} a year"
                other = (f"; not working, you get about {dollars(support[p])} a year of other support "
                         "(food assistance, family), not in take-home" if support[p] > 0 else "")
                text.append(f"Last year you {status}. Working would cost you {cost}{other}.")
            if benefit is not None:
                text.append(f"This year anyone who works also receives an in-work benefit of "
                            f"{dollars(benefit[p])} (in take-home).")
            text.append(table(["hours", "tax", "take-home", "utility"], rows))
            if model.world is not None and past:
                text.append(household_taxes_compact_text(past[-1], i))
            if past:
                b = int(np.argmax(all_u[p]))
                us = [shown_u[k][i] if shown_u is not None else y["utility"][i] for k, y in enumerate(past)]
                d = utility_decimals([*us, all_u[p, b]])
                hist = [f"year {yr}: {y['hours'][i]:.0f}, {dollars(y['post_tax'][i])}, {utility_text(us[k], d)}"
                        + (" (best)" if yr == b else "") for k, (yr, y) in enumerate(zip(past_years, past, strict=True))]
                text.append(f"Past years (hours, take-home, utility): {'; '.join(hist)}.")
                if b not in past_years:
                    best = model.agent_years[b]
                    text.append(f"Best year so far: year {b}: {best['hours'][i]:.0f}, "
                                f"{dollars(best['post_tax'][i])}, {utility_text(all_u[p, b], d)}.")
            parts.append("\n".join(text))
        return parts

    def _worker_parts_verbose(self, model: EconomyModel, schedule: TaxSchedule, rebate: float,
                              idx: np.ndarray | None = None,
                              in_work_benefit: np.ndarray | None = None) -> list[str]:
        """The layout of earlier releases: every ``hour_levels`` row, all columns."""
        o = self.options
        idx = np.arange(model.n_workers) if idx is None else np.asarray(idx, dtype=np.int64)
        levels = hour_levels(model, o.hour_levels)
        grid = take_home_grid(model.budget(schedule, idx), model.wages[idx], levels, rebate,
                              model.utility_subset(idx))
        grid, benefit = self._with_benefit(model, grid, idx, in_work_benefit)
        costs = (np.broadcast_to(np.asarray(model.utility.fixed_cost, dtype=float), (model.n_workers,))[idx]
                 if model.participation else None)
        past, past_years, shown_u, all_u = self._history(model, idx)
        personas = [str(x) for x in model.population["persona"].iloc[idx]]  # (only the rows asked)
        parts = []
        head = ["hours/wk", "pre-tax", "tax", "rebate", "take-home", "utility"]
        for p, i in enumerate(idx):
            rows = [
                [f"{grid['hours'][p, j]:.0f}", money(grid["pre_tax"][p, j]), money(grid["tax"][p, j]),
                 money(rebate), money(grid["post_tax"][p, j]), f"{grid['utility'][p, j]:.3f}"]
                for j in range(len(levels))
            ]
            text = [
                personas[p],
                f"Your wage: {money(model.wages[i])} a year for each weekly hour "
                f"(40 hours a week earns {money(40 * model.wages[i])} a year before tax).",
            ]
            if costs is not None:
                last = past[-1]["hours"][i] if past else model.hours[i]
                status = "worked" if last > 0 else "did not work"
                cost = "more than you could earn" if not np.isfinite(costs[p]) else f"about {money(costs[p])} a year"
                support = float(np.broadcast_to(np.asarray(model.utility.nonwork_income, dtype=float),
                                                (model.n_workers,))[i])
                other = (f" Not working, you would also have about {money(support)} a year of other support "
                         "(food assistance, family), not in the table's take-home." if support > 0 else "")
                text.append(f"Last year you {status}. Working at all would cost you {cost} "
                            f"(commuting, childcare, time); 0 hours means not working.{other}")
            if benefit is not None:
                text.append(f"This year anyone who works also receives an in-work benefit of "
                            f"{money(benefit[p])} (in the take-home column).")
            text += ["What different hours would give you this year:", table(head, rows)]
            if model.world is not None and past:
                text.append(household_taxes_text(past[-1], i))
            if past:
                hist = []
                for k, y in enumerate(past):
                    u = shown_u[k][i] if shown_u is not None else y["utility"][i]
                    hist.append([str(past_years[k]), f"{y['hours'][i]:.0f}", money(y["pre_tax"][i]),
                                 money(y["tax"][i]), money(y["rebate"][i]), money(y["post_tax"][i]),
                                 f"{u:.3f}"])
                text += ["Your past years:", table(["year", *head], hist)]
                b = int(np.argmax(all_u[p]))
                best = model.agent_years[b]
                text.append(
                    f"Your best year so far: year {b}, {best['hours'][i]:.0f} hours, "
                    f"take-home {money(best['post_tax'][i])}, utility {all_u[p, b]:.3f}."
                )
            text.append("How many hours a week will you work this year?")
            parts.append("\n".join(text))
        return parts

    def requests(self, model: EconomyModel, schedule: TaxSchedule, rebate: float, explore: bool,
                 seeds: np.ndarray, idx: np.ndarray | None = None,
                 in_work_benefit: np.ndarray | None = None) -> list[Request]:
        lo, hi = model.hours_bounds
        # with participation 0 (not working) is always a reply, whatever the minimum hours
        low = 0 if model.participation else int(np.ceil(lo))
        constraint = json_object_constraint(hours=integer_field(low, int(np.floor(hi))))
        system = self.shared_prefix(model, schedule, rebate, explore)
        temp = min(2.0, self.options.temperature * (1.5 if explore else 1.0))
        return [
            Request.chat(part, system=system, constraint=constraint, seed=int(s), tag="worker",
                         temperature=temp, max_tokens=self.options.max_tokens)
            for part, s in zip(self.worker_parts(model, schedule, rebate, idx, in_work_benefit), seeds,
                               strict=True)
        ]

    # ------------------------------------------------------------------ decisions
    def _ask(self, model: EconomyModel, schedule: TaxSchedule, rebate: float, explore: bool,
             who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Replies (hours a week) and validity of workers ``who``, streamed in backend-sized
        chunks, prompts sharing a prefix sent together.  Seeds depend on the run seed, the
        ask counter and the worker (:func:`~simulator.sim.workers.streaming.worker_seeds`)."""
        self.pool_state.asks += 1
        seeds = worker_seeds(model.settings.run.seed, self.pool_state.asks, 1, who)
        out = np.zeros(who.size)
        ok = np.zeros(who.size, dtype=bool)
        order = self._send_order(model, who)

        def build(pos: np.ndarray) -> list[Request]:
            return self.requests(model, schedule, rebate, explore, seeds[pos], who[pos])

        def consume(pos: np.ndarray, responses: list, reqs: list[Request]) -> None:
            self.asked_requests += len(responses)
            self.transport_failures += sum(r.error_kind == "transport" for r in responses)
            for p, r in zip(pos, responses, strict=True):
                if r.ok and isinstance(r.value, dict) and "hours" in r.value:
                    out[p] = float(r.value["hours"])
                    ok[p] = True
            if len(self.samples) < 2000:
                for k in range(min(3, len(reqs))):
                    self.samples.append({
                        "year": model.year, "step": model.step_in_year, "worker": int(who[pos[k]]),
                        "system": reqs[k].messages[0]["content"], "prompt": reqs[k].messages[-1]["content"],
                        "reply": responses[k].text, "used": bool(ok[pos[k]]), "error": responses[k].error,
                    })

        generate_streamed(model.llm, order, build, consume, desc=f"year {model.year} workers")
        return out, ok

    def _send_order(self, model: EconomyModel, who: np.ndarray) -> np.ndarray:
        """Positions of ``who`` in sending order: as given when one backend call takes them
        all (the backend groups shared prefixes itself), else sorted by persona so that
        each chunk holds prompts with a common start."""
        if who.size <= chunk_size_for(model.llm):
            return np.arange(who.size)
        return np.argsort(self._prefix_key(model)[who], kind="stable")

    def _prefix_key(self, model: EconomyModel) -> np.ndarray:
        """Worker order that puts prompts with a common start together (persona text)."""
        if self._prefix is None or self._prefix.size != model.n_workers:
            personas = model.population["persona"].to_numpy().astype(str)
            rank = np.empty(personas.size, dtype=np.int64)
            rank[np.argsort(personas, kind="stable")] = np.arange(personas.size)
            self._prefix = rank
        return self._prefix

    def _ask_hours(self, model: EconomyModel, schedule: TaxSchedule, rebate: float, explore: bool,
                   fallback: np.ndarray, check: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if self.options.pooling is not None:
            return ask_hours_pooled(self, model, schedule, rebate, explore, fallback, check)
        replies, used = self._ask(model, schedule, rebate, explore, np.arange(model.n_workers))
        hours = np.where(used, replies, fallback.astype(float))
        return model.clip_hours(hours), used

    def fallback_hours(self, model: EconomyModel) -> np.ndarray:
        if model.agent_years:
            return model.agent_years[-1]["hours"]
        return best_response(model.budget(model.schedule), model.wages, model.utility, model.expected_rebate,
                             model.hours_bounds)

    def decide(self, model: EconomyModel) -> np.ndarray:
        explore = model.steps_per_year > 1 and model.step_in_year < model.steps_per_year - 1
        self.asked_requests = self.transport_failures = 0
        hours, used = self._ask_hours(model, model.schedule, model.expected_rebate, explore,
                                      self.fallback_hours(model), check=not explore)
        # summed over the year's steps (model.stats is fresh at the start of each year)
        n_fb = model.stats.get("fallbacks", 0.0) + float((~used).sum())
        asked = model.stats.get("worker_replies", 0.0) + model.n_workers
        # transport failures per request sent (with pooling, fewer requests than workers)
        n_tr = model.stats.get("transport_failures", 0.0) + float(self.transport_failures)
        n_req = model.stats.get("worker_requests", 0.0) + float(self.asked_requests)
        if model.participation:  # a reply of 0 hours is a choice not to work
            model.stats.set(not_working_replies=model.stats.get("not_working_replies", 0.0)
                            + float(((hours <= 0) & used).sum()))
        model.stats.set(fallbacks=n_fb, worker_replies=asked,
                                fallback_rate=n_fb / max(asked, 1.0),
                                transport_failures=n_tr, worker_requests=n_req,
                                transport_failure_rate=n_tr / max(n_req, 1.0))
        return hours

    def respond(self, model: EconomyModel, schedule: TaxSchedule,
                rebate: float | None = None) -> np.ndarray:
        """Pre-tax incomes the LLM population would choose under ``schedule`` (one batch);
        the rebate shown is ``rebate`` if given, else the schedule's at last year's hours."""
        fb = self.fallback_hours(model)
        if rebate is None:
            rebate = model.rebate_at(schedule, fb)
        hours, used = self._ask_hours(model, schedule, rebate, False, fb)
        self.last_respond_fallback_rate = float((~used).mean())
        return model.wages * hours

    def count_counterfactual_replies(self, model: EconomyModel) -> None:
        """The last :meth:`respond` was a counterfactual year: its fallbacks count in this
        year's fallback rate (``fallbacks`` and ``worker_replies``)."""
        fb = float(self.last_respond_fallback_rate or 0.0)
        if fb:
            n = float(model.n_workers)
            model.stats.add(fallbacks=fb * n, worker_replies=n)

    # ------------------------------------------------------------------ bounded rationality
    def end_year(self, model: EconomyModel) -> None:
        if not self.options.bounded:
            return
        o = model.outcome
        system = (
            f"{system_text(model.rebate_share, model.participation)}\n\nTax year {model.year}. "
            f"Marginal tax schedule:\n{schedule_text(model.schedule)}\n"
            "Answer with one word: yes or no."
        )
        if self.options.pooling is not None:
            satisfied, invalid = satisfaction_pooled(self, model, system)
        else:
            satisfied, invalid = self._ask_satisfaction(model, system, np.arange(model.n_workers))
        penalty = (1.0 - self.options.satisfaction_scale) * np.abs(o.utility)
        self.adjusted_utility = np.where(satisfied, o.utility, o.utility - penalty)
        self.adjusted_year = model.year
        self.adjusted_history.append(self.adjusted_utility.copy())
        model.stats.set(
            satisfied_share=float(satisfied.mean()),
            satisfaction_invalid=float(invalid.sum()),
        )
        self.satisfaction.append({"year": model.year, "satisfied": satisfied, "invalid": invalid})

    def _ask_satisfaction(self, model: EconomyModel, system: str, who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(satisfied, invalid) of workers ``who``, streamed; an invalid reply is neutral."""
        persona_col = [str(x) for x in model.population["persona"].iloc[who]]  # (only the rows asked)
        seeds = worker_seeds(model.settings.run.seed, model.year, 2, who)
        satisfied = np.ones(who.size, dtype=bool)
        invalid = np.zeros(who.size, dtype=bool)

        def build(pos: np.ndarray) -> list[Request]:
            return [self._satisfaction_request(model, system, persona_col[p], int(who[p]),
                                               int(seeds[p])) for p in pos]

        def consume(pos: np.ndarray, replies: list, reqs: list) -> None:
            for p, r in zip(pos, replies, strict=True):
                satisfied[p] = r.value != "no"  # invalid -> neutral
                invalid[p] = not r.ok

        order = self._send_order(model, who)
        generate_streamed(model.llm, order, build, consume, desc=f"year {model.year} satisfaction")
        return satisfied, invalid

    def _satisfaction_request(self, model: EconomyModel, system: str, persona: str, i: int, seed: int) -> Request:
        o = model.outcome
        return Request.chat(
                f"{persona}\nThis year you worked {o.hours[i]:.0f} hours a week, earned "
                f"{money(o.pre_tax[i])} before tax, paid {money(o.tax[i])} in tax, received a "
                f"rebate of {money(o.rebate)} and took home {money(o.post_tax[i])}.\n"
                "Given your year, are you satisfied with the tax policy?",
                system=system, constraint=choices("yes", "no"), seed=seed,
                tag="satisfaction", temperature=self.options.temperature, max_tokens=4,
            )

    # ------------------------------------------------------------------ checkpoint
    def checkpoint_state(self) -> dict:
        """Satisfaction-adjusted utilities (this year's and their history), the logged
        prompt samples and the satisfaction answers."""
        return copy.deepcopy({
            "adjusted_utility": self.adjusted_utility,
            "adjusted_year": self.adjusted_year,
            "adjusted_history": self.adjusted_history,
            "samples": self.samples,
            "satisfaction": self.satisfaction,
            "last_respond_fallback_rate": self.last_respond_fallback_rate,
            "pool_state": self.pool_state.checkpoint_state(),
        })

    def restore_state(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.adjusted_utility = state["adjusted_utility"]
        self.adjusted_year = state["adjusted_year"]
        self.adjusted_history = state["adjusted_history"]
        self.samples = state["samples"]
        self.satisfaction = state["satisfaction"]
        if state.get("last_respond_fallback_rate") is not None:
            self.last_respond_fallback_rate = state["last_respond_fallback_rate"]
        if state.get("pool_state") is not None:
            self.pool_state.restore_state(state["pool_state"])

    def tables(self, model: EconomyModel) -> dict[str, pd.DataFrame]:
        out = {}
        if self.samples:
            out["llm_samples"] = pd.DataFrame(self.samples)
        if self.satisfaction:
            ids = model.population["id"].to_numpy()
            out["satisfaction"] = pd.DataFrame({
                "year": np.concatenate([np.full(len(s["satisfied"]), s["year"]) for s in self.satisfaction]),
                "id": np.concatenate([ids for _ in self.satisfaction]),
                "satisfied": np.concatenate([s["satisfied"] for s in self.satisfaction]),
                "invalid": np.concatenate([s["invalid"] for s in self.satisfaction]),
            })
        return out
