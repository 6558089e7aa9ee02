"""LLM workers: each worker asks the language model how many hours to work.

One prompt per worker per step, built from the shared part (instructions, this year's
schedule, the expected rebate, an explore/exploit cue) followed by the worker's own part
(persona, wage, a take-home table computed by the core at several hour levels, its last
few years and its best year).  Replies are constrained to ``{"hours": <int lo..hi>}``;
a reply that still cannot be used falls back to the worker's last-year hours (first
year: the rational best response), is counted, and never stops the run.

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

from simulator.economy.best_response import best_response
from simulator.economy.tax import TaxSchedule
from simulator.llm import Request, choices, integer_field, json_object_constraint
from simulator.prompts import money, rebate_phrase, schedule_text, table, take_home_grid
from simulator.scenario import LLMWorkerOptions

if TYPE_CHECKING:
    from simulator.model import EconomyModel

def system_text(rebate_share: float) -> str:
    return (
        "You are a worker in a simulated economy choosing how many hours a week to work this "
        "tax year. Your pre-tax income is your wage times your weekly hours. The government "
        f"taxes income with the marginal tax schedule below, and {rebate_phrase(rebate_share)} "
        "(the rebate). More hours mean more money but less free time; "
        "the utility column measures how good a year feels to you, higher is better."
    )
EXPLORE = "This is an early step of the year: try an amount of hours you have not tried, to learn."
EXPLOIT = "This is the deciding step of the year: choose the hours you believe are best for you."


def generate_with_progress(llm, requests: list[Request], desc: str) -> list:
    """``llm.generate`` on the whole batch in one call, whatever the terminal.

    Batching backends (vLLM, a server's continuous batching) must see the whole batch;
    progress is the backend's to show (see :func:`simulator.progress.batch_progress`).
    """
    from simulator.progress import batch_progress

    with batch_progress(desc, len(requests)):
        return llm.generate(requests)


class LLMWorkerPolicy:
    """Hours from a language model, one batched call per step."""

    name = "llm"

    def __init__(self, options: LLMWorkerOptions) -> None:
        self.options = options
        self.adjusted_utility: np.ndarray | None = None
        self.adjusted_year: int | None = None
        self.adjusted_history: list[np.ndarray] = []
        self.samples: list[dict] = []
        self.satisfaction: list[dict] = []

    # ------------------------------------------------------------------ prompts
    def shared_prefix(self, model: EconomyModel, schedule: TaxSchedule, rebate: float, explore: bool) -> str:
        lo, hi = model.hours_bounds
        cue = EXPLORE if explore else EXPLOIT
        return (
            f"{system_text(model.rebate_share)}\n\nTax year {model.year}. Marginal tax schedule:\n{schedule_text(schedule)}\n"
            f"Expected rebate per person this year: {money(rebate)}.\n{cue}\n"
            f'Reply with JSON only: {{"hours": N}} with N a whole number from {lo:.0f} to {hi:.0f}.'
        )

    def worker_parts(self, model: EconomyModel, schedule: TaxSchedule, rebate: float) -> list[str]:
        o = self.options
        grid = take_home_grid(schedule, model.wages, o.hour_levels, rebate, model.utility)
        past = model.agent_years[-o.history:] if o.history else []
        past_years = list(range(len(model.agent_years) - len(past), len(model.agent_years)))
        shown_u = self.adjusted_history[-len(past):] if self.adjusted_history and past else None
        all_u = (
            np.stack(self.adjusted_history, 1) if self.adjusted_history
            else np.stack([y["utility"] for y in model.agent_years], 1) if model.agent_years else None
        )
        personas = model.population["persona"].astype(str).tolist()
        parts = []
        head = ["hours/wk", "pre-tax", "tax", "rebate", "take-home", "utility"]
        for i in range(model.n_workers):
            rows = [
                [f"{grid['hours'][i, j]:.0f}", money(grid["pre_tax"][i, j]), money(grid["tax"][i, j]),
                 money(rebate), money(grid["post_tax"][i, j]), f"{grid['utility'][i, j]:.3f}"]
                for j in range(len(o.hour_levels))
            ]
            text = [
                personas[i],
                f"Your wage: {money(model.wages[i])} a year for each weekly hour "
                f"(40 hours a week earns {money(40 * model.wages[i])} a year before tax).",
                "What different hours would give you this year:",
                table(head, rows),
            ]
            if past:
                hist = []
                for k, y in enumerate(past):
                    u = shown_u[k][i] if shown_u is not None else y["utility"][i]
                    hist.append([str(past_years[k]), f"{y['hours'][i]:.0f}", money(y["pre_tax"][i]),
                                 money(y["tax"][i]), money(y["rebate"][i]), money(y["post_tax"][i]),
                                 f"{u:.3f}"])
                text += ["Your past years:", table(["year", *head], hist)]
                b = int(np.argmax(all_u[i]))
                best = model.agent_years[b]
                text.append(
                    f"Your best year so far: year {b}, {best['hours'][i]:.0f} hours, "
                    f"take-home {money(best['post_tax'][i])}, utility {all_u[i, b]:.3f}."
                )
            text.append("How many hours a week will you work this year?")
            parts.append("\n".join(text))
        return parts

    def requests(self, model: EconomyModel, schedule: TaxSchedule, rebate: float, explore: bool,
                 seeds: np.ndarray) -> list[Request]:
        lo, hi = model.hours_bounds
        constraint = json_object_constraint(hours=integer_field(int(np.ceil(lo)), int(np.floor(hi))))
        system = self.shared_prefix(model, schedule, rebate, explore)
        temp = min(2.0, self.options.temperature * (1.5 if explore else 1.0))
        return [
            Request.chat(part, system=system, constraint=constraint, seed=int(s), tag="worker",
                         temperature=temp, max_tokens=self.options.max_tokens)
            for part, s in zip(self.worker_parts(model, schedule, rebate), seeds, strict=True)
        ]

    # ------------------------------------------------------------------ decisions
    def _ask_hours(self, model: EconomyModel, schedule: TaxSchedule, rebate: float, explore: bool,
                   fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seeds = model.rng.integers(0, 2**31 - 1, model.n_workers)
        reqs = self.requests(model, schedule, rebate, explore, seeds)
        responses = generate_with_progress(model.llm, reqs, desc=f"year {model.year} workers")
        hours = fallback.astype(float).copy()
        used = np.zeros(model.n_workers, dtype=bool)
        self.last_transport = np.array([r.error_kind == "transport" for r in responses], dtype=bool)
        for i, r in enumerate(responses):
            if r.ok and isinstance(r.value, dict) and "hours" in r.value:
                hours[i] = float(r.value["hours"])
                used[i] = True
        if len(self.samples) < 2000:
            for i in range(min(3, len(reqs))):
                self.samples.append({
                    "year": model.year, "step": model.step_in_year, "worker": i,
                    "system": reqs[i].messages[0]["content"], "prompt": reqs[i].messages[-1]["content"],
                    "reply": responses[i].text, "used": bool(used[i]), "error": responses[i].error,
                })
        return np.clip(hours, *model.hours_bounds), used

    def fallback_hours(self, model: EconomyModel) -> np.ndarray:
        if model.agent_years:
            return model.agent_years[-1]["hours"]
        return best_response(model.schedule, model.wages, model.utility, model.expected_rebate,
                             model.hours_bounds)

    def decide(self, model: EconomyModel) -> np.ndarray:
        explore = model.steps_per_year > 1 and model.step_in_year < model.steps_per_year - 1
        hours, used = self._ask_hours(model, model.schedule, model.expected_rebate, explore,
                                      self.fallback_hours(model))
        # summed over the year's steps (step_stats is reset at the start of each year)
        n_fb = model.step_stats.get("fallbacks", 0.0) + float((~used).sum())
        asked = model.step_stats.get("worker_replies", 0.0) + model.n_workers
        n_tr = model.step_stats.get("transport_failures", 0.0) + float(self.last_transport.sum())
        model.step_stats.update(fallbacks=n_fb, worker_replies=asked,
                                fallback_rate=n_fb / max(asked, 1.0),
                                transport_failures=n_tr,
                                transport_failure_rate=n_tr / max(asked, 1.0))
        return hours

    def respond(self, model: EconomyModel, schedule: TaxSchedule,
                rebate: float | None = None) -> np.ndarray:
        """Pre-tax incomes the LLM population would choose under ``schedule`` (one batch);
        the rebate shown is ``rebate`` if given, else the schedule's at last year's hours."""
        from simulator.economy.rebate import lump_sum_rebate

        fb = self.fallback_hours(model)
        if rebate is None:
            rebate = lump_sum_rebate(schedule.tax(model.wages * fb), model.rebate_share, model.weights)
        hours, used = self._ask_hours(model, schedule, rebate, False, fb)
        self.last_respond_fallback_rate = float((~used).mean())
        return model.wages * hours

    # ------------------------------------------------------------------ bounded rationality
    def end_year(self, model: EconomyModel) -> None:
        if not self.options.bounded:
            return
        o = model.outcome
        system = (
            f"{system_text(model.rebate_share)}\n\nTax year {model.year}. Marginal tax schedule:\n{schedule_text(model.schedule)}\n"
            "Answer with one word: yes or no."
        )
        personas = model.population["persona"].astype(str).tolist()
        seeds = model.rng.integers(0, 2**31 - 1, model.n_workers)
        reqs = [
            Request.chat(
                f"{personas[i]}\nThis year you worked {o.hours[i]:.0f} hours a week, earned "
                f"{money(o.pre_tax[i])} before tax, paid {money(o.tax[i])} in tax, received a "
                f"rebate of {money(o.rebate)} and took home {money(o.post_tax[i])}.\n"
                "Given your year, are you satisfied with the tax policy?",
                system=system, constraint=choices("yes", "no"), seed=int(seeds[i]),
                tag="satisfaction", temperature=self.options.temperature, max_tokens=4,
            )
            for i in range(model.n_workers)
        ]
        replies = model.llm.generate(reqs)
        satisfied = np.array([r.value != "no" for r in replies])  # invalid -> neutral
        invalid = np.array([not r.ok for r in replies])
        penalty = (1.0 - self.options.satisfaction_scale) * np.abs(o.utility)
        self.adjusted_utility = np.where(satisfied, o.utility, o.utility - penalty)
        self.adjusted_year = model.year
        self.adjusted_history.append(self.adjusted_utility.copy())
        model.step_stats.update(
            satisfied_share=float(satisfied.mean()),
            satisfaction_invalid=float(invalid.sum()),
        )
        self.satisfaction.append({"year": model.year, "satisfied": satisfied, "invalid": invalid})

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
            "last_respond_fallback_rate": getattr(self, "last_respond_fallback_rate", None),
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
