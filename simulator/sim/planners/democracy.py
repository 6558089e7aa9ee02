"""Democracy: workers elect who sets taxes (the paper's democratic scenario).

Every ``election_every`` tax years: candidates are drawn (at random, or from workers who
volunteer when asked), each publishes a platform (one rate per bracket, structured
output), every voter votes given its persona, its own last year and what each platform
would mean for its own take-home pay at its current hours (computed by the core), and
the votes are counted by the configured rule.  The winner then sets taxes until the next
election, either keeping its platform or acting as an in-context LLM planner for its own
utility.  A ballot the model cannot give validly is cast for the platform that maximises
the voter's own take-home pay (recorded as a fallback), so votes always sum to the
electorate.  Before the first election the base planner sets taxes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.config.schema import DemocracyConfig
from simulator.economy.tax import TaxSchedule
from simulator.llm import Request, boolean_field, choices, integer_field, json_object_constraint
from simulator.sim.planners.base import Planner
from simulator.sim.planners.llm import LLMPlanner, project_rates
from simulator.sim.prompts import money
from simulator.sim.voting import RULES, rankings_as_strings
from simulator.sim.workers.pool_ask import vote_plan
from simulator.sim.workers.pool_plan import carry_ballots

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel

LETTERS = "ABCDEFGHIJKLMNOPQRST"


def ballot_text(ballots: np.ndarray, m: int, rule: str) -> np.ndarray:
    """Ballots as letters, vectorised over voters: plurality ``(n,)`` platform indices ->
    ``"B"``; borda ``(n, m)`` rankings -> ``"BAC"``; approval ``(n, m)`` booleans ->
    the approved letters in order, ``"-"`` for none."""
    letters = np.array(list(LETTERS[:m]))
    b = np.asarray(ballots)
    if rule == "plurality":
        return letters[b.astype(int)]
    if rule == "borda":
        cols = [letters[b[:, j].astype(int)] for j in range(m)]
    else:
        cols = [np.where(b[:, j].astype(bool), letters[j], "") for j in range(m)]
    out = cols[0].astype(object)
    for c in cols[1:]:
        out = out + c.astype(object)
    return np.where(out == "", "-", out).astype(str) if rule == "approval" else out.astype(str)


def winner_planner(options, own: int, persona: str) -> LLMPlanner:
    """The in-context planner of an elected worker ``own``, judged by its own utility."""
    return LLMPlanner(
        options,
        objective_text="your own utility as a worker in this economy",
        objective_fn=lambda mdl, i=own: float(mdl.outcome.utility[i]),
        persona=persona,
        tag="winner_planner",
    )


class Democracy(Planner):
    """Elections every ``election_every`` years; the winner sets taxes in between."""

    kind = "democracy"

    def __init__(self, config: DemocracyConfig, fallback: Planner) -> None:
        self.config = config
        self.fallback = fallback
        self.current: Planner = fallback
        self.platform: TaxSchedule | None = None
        self.winner: int | None = None
        self.elections: list[dict] = []
        self.platforms: list[dict] = []
        self.ballots: list[pd.DataFrame] = []
        self.past_winner_logs: list[dict] = []  # planner logs of earlier winners

    # ------------------------------------------------------------------ planner API
    def propose(self, model: EconomyModel) -> TaxSchedule:
        if model.year > 0 and model.year % self.config.election_every == 0:
            self.hold_election(model)
        if self.config.winner_mode == "platform" and self.platform is not None:
            return self.platform
        return self.current.propose(model)

    def observe(self, model: EconomyModel, record: dict) -> None:
        self.current.observe(model, record)
        if self.current is not self.fallback:
            self.fallback.observe(model, record)

    # ------------------------------------------------------------------ election
    def _candidates(self, model: EconomyModel) -> np.ndarray:
        n, m = model.n_workers, min(self.config.candidates, model.n_workers)
        if self.config.selection == "random":
            return np.sort(model.rng.choice(n, m, replace=False))
        asked = np.sort(model.rng.choice(n, min(n, 4 * m), replace=False))
        personas = model.population["persona"]
        reqs = [
            Request.chat(
                f"{personas.iat[i]}\nAn election for who sets income taxes is coming. "
                "Do you want to stand as a candidate? Answer yes or no.",
                constraint=choices("yes", "no"), seed=int(model.rng.integers(2**31 - 1)),
                tag="volunteer", max_tokens=4,
            )
            for i in asked
        ]
        yes = [i for i, r in zip(asked, model.llm.generate(reqs), strict=True) if r.value == "yes"]
        chosen = list(yes[:m])
        rest = [i for i in asked if i not in chosen]
        while len(chosen) < m:  # top up at random from those who did not volunteer
            chosen.append(rest.pop(int(model.rng.integers(len(rest)))))
        return np.sort(np.array(chosen))

    def _platforms(self, model: EconomyModel, cands: np.ndarray) -> list[np.ndarray]:
        opts = model.settings.planner.llm
        k = model.schedule.n_brackets
        lo, hi = round(100 * opts.rate_bounds[0]), round(100 * opts.rate_bounds[1])
        constraint = json_object_constraint({f"b{i + 1}": integer_field(lo, hi) for i in range(k)})
        sched = model.schedule
        brackets = "; ".join(
            f"b{i + 1} from {money(t)}" for i, t in enumerate(sched.thresholds)
        )
        personas = model.population["persona"]
        o = model.outcome
        reqs = []
        for c in cands:
            user = (
                f"{personas.iat[c]}\nYou are a candidate in an election for who sets income taxes. "
                f"Last year you worked {o.hours[c]:.0f} hours a week and took home "
                f"{money(o.post_tax[c])}. Tax revenue is returned to all workers equally.\n"
                f"Brackets: {brackets}. Current rates (%): "
                f"{'/'.join(f'{100 * r:.0f}' for r in sched.rates)}.\n"
                f"Publish your platform: the rate of every bracket in whole percent from {lo} to {hi}.\n"
                'Reply with JSON only: {' + ", ".join(f'"b{i + 1}": N' for i in range(k)) + "}"
            )
            reqs.append(Request.chat(user, constraint=constraint, seed=int(model.rng.integers(2**31 - 1)),
                                     tag="platform", temperature=opts.temperature, max_tokens=opts.max_tokens))
        plats = []
        for c, r in zip(cands, model.llm.generate(reqs), strict=True):
            if r.ok:
                rates = np.array([r.value[f"b{i + 1}"] for i in range(k)], float) / 100.0
                rates = np.clip(rates, *opts.rate_bounds)
            else:  # an unusable platform: the current schedule
                rates = sched.rate_array.copy()
            plats.append(rates)
            self.platforms.append({"year": model.year, "candidate": int(c), "valid": bool(r.ok),
                                   **{f"rate_{i}": float(x) for i, x in enumerate(rates)}})
        return plats

    def hold_election(self, model: EconomyModel) -> None:
        cfg = self.config
        cands = self._candidates(model)
        m = len(cands)
        plats = self._platforms(model, cands)
        n = model.n_workers
        voters = np.arange(n) if cfg.voters is None or cfg.voters >= n else np.sort(
            model.rng.choice(n, cfg.voters, replace=False))
        o = model.outcome
        # what each platform means for each voter at last year's hours (static, by the core)
        z = o.pre_tax[voters]
        take_home = np.stack([z - model.attributed_tax(model.schedule.with_rates(p), z, voters)
                              for p in plats], axis=1)
        # a rational fallback ballot: the platform with the best own take-home pay
        # (the rebate is the same for everyone, so it does not change the ranking much)
        own_best = np.argmax(take_home, axis=1)
        personas = model.population["persona"]
        table_rows = [
            f"{LETTERS[j]}: rates % {'/'.join(f'{100 * r:.0f}' for r in plats[j])}"
            for j in range(m)
        ]
        system = (
            "You are voting in an election for who sets the income tax of your economy. "
            "Tax revenue is returned to all workers in equal shares.\nPlatforms:\n" + "\n".join(table_rows)
        )
        if cfg.rule == "plurality":
            constraint = choices(*LETTERS[:m])
            ask = "Which candidate do you vote for? Answer with one letter."
        elif cfg.rule == "borda":
            constraint = choices(*rankings_as_strings(m))
            ask = "Rank all candidates from best to worst as letters, e.g. " + LETTERS[:m][::-1] + "."
        else:
            constraint = json_object_constraint({LETTERS[j]: boolean_field() for j in range(m)})
            ask = "Which candidates do you approve of? Reply with JSON true/false for each letter."
        # under archetype pooling only representatives are asked; the others' ballots are
        # carried over in own-ranking terms (simulator.sim.workers.pool_plan.carry_ballots)
        plan = vote_plan(model, voters, z)
        asked = np.arange(len(voters)) if plan is None else plan.reps
        reqs = []
        for vi in asked:
            v = voters[vi]
            mine = "; ".join(f"{LETTERS[j]}: {money(take_home[vi, j])}" for j in range(m))
            reqs.append(Request.chat(
                f"{personas.iat[v]}\nLast year you worked {o.hours[v]:.0f} hours a week and earned "
                f"{money(o.pre_tax[v])} before tax. Your take-home pay before the rebate under each "
                f"platform: {mine}.\n{ask}",
                system=system, constraint=constraint, seed=int(model.rng.integers(2**31 - 1)),
                tag="voter", max_tokens=32,
            ))
        replies = model.llm.generate(reqs)
        valid = np.array([r.ok for r in replies], dtype=bool)
        # no reply at all (server down, ...) apart from an unusable reply
        no_reply = np.array([r.error_kind == "transport" for r in replies], dtype=bool)
        if cfg.rule == "plurality":
            ballots = np.array([LETTERS.index(r.value) if r.ok else own_best[i]
                                for i, r in zip(asked, replies, strict=True)])
        elif cfg.rule == "borda":
            ballots = np.array([
                [LETTERS.index(ch) for ch in r.value] if r.ok
                else list(np.argsort(-take_home[i], kind="stable"))
                for i, r in zip(asked, replies, strict=True)
            ])
        else:
            ballots = np.array([
                [bool(r.value[LETTERS[j]]) for j in range(m)] if r.ok
                else [j == own_best[i] for j in range(m)]
                for i, r in zip(asked, replies, strict=True)
            ])
        if plan is not None:
            rep_valid = valid
            carried, valid = carry_ballots(plan, ballots, rep_valid, take_home, cfg.rule)
            if cfg.rule == "plurality":
                carried = np.where(valid, carried, own_best)
            elif cfg.rule == "borda":
                carried = np.where(valid[:, None], carried, np.argsort(-take_home, axis=1, kind="stable"))
            else:
                carried = np.where(valid[:, None], carried, np.arange(m)[None, :] == own_best[:, None])
            ballots = carried
            rep_no_reply, no_reply = no_reply, np.zeros(len(voters), dtype=bool)
            no_reply[plan.reps] = rep_no_reply  # a representative with no reply, not carried over
            no_reply &= ~valid
            model.policy.pool_state.remember("vote", plan, (ballots[plan.reps] == own_best[plan.reps]).astype(float)
                                             if cfg.rule == "plurality" else rep_valid.astype(float), rep_valid)
            model.stats.add(pool_calls=float(len(asked)))
        shown = ballot_text(ballots, m, cfg.rule)
        weights = None if model.weights is None else model.weights[voters]
        winner_idx, scores = RULES[cfg.rule](ballots, m, model.rng, weights)
        winner = int(cands[winner_idx])
        self.winner = winner
        self.ballots.append(pd.DataFrame({
            "year": model.year, "voter": model.population["id"].to_numpy()[voters],
            "ballot": shown, "valid": valid, "transport_failure": no_reply,
        }))
        self.elections.append({
            "year": model.year, "rule": cfg.rule, "winner": winner,
            "candidates": [int(c) for c in cands], "scores": scores.tolist(),
            "electorate": int(len(voters)), "invalid_ballots": int((~valid & ~no_reply).sum()),
            "transport_failures": int(no_reply.sum()),
        })
        model.stats.set(election=1.0, election_winner=float(winner),
                                invalid_ballots=float((~valid & ~no_reply).sum()),
                                ballot_transport_failures=float(no_reply.sum()))
        if isinstance(self.current, LLMPlanner) and self.current is not self.fallback:
            self.past_winner_logs.extend(self.current.log)
        if cfg.winner_mode == "platform":
            # the platform is bound by the same constraints as any planner's schedule
            rates, notes = project_rates(
                plats[winner_idx], model.schedule.rate_array, model.settings.planner.llm,
                model.budget(model.schedule), o.pre_tax, model.weights,
            )
            self.elections[-1]["applied_rates"] = rates.tolist()
            self.elections[-1]["projection"] = "; ".join(notes)
            self.platform = model.base_schedule.with_rates(rates)
        else:
            self.platform = None
            own = int(winner)
            self.current = winner_planner(model.settings.planner.llm, own, str(personas.iat[own]))
            # it starts from the record of the years so far, judged by its own utility
            self.current.tried = []
            if model.outcome is not None:
                self.current.tried.append({
                    "year": model.year - 1, "rates": list(model.schedule.rates),
                    "objective": float(model.outcome.utility[own]),
                    "revenue": model.outcome.revenue,
                    "mean_hours": float(model.outcome.hours.mean()),
                    "gini": model.history[-1]["gini_post_tax"] if model.history else 0.0,
                    "fallback": model.history[-1].get("fallback_rate", 0.0) if model.history else 0.0,
                })

    # ------------------------------------------------------------------ checkpoint
    def checkpoint_state(self) -> dict:
        """Election records, the sitting winner (platform or its own planner's memory)
        and the base planner's state."""
        sitting = None
        if self.current is not self.fallback:
            sitting = {"options": self.current.options, "own": self.winner,
                       "persona": self.current.persona, "state": self.current.checkpoint_state()}
        return copy.deepcopy({
            "fallback": self.fallback.checkpoint_state(),
            "sitting": sitting,
            "platform": self.platform,
            "winner": self.winner,
            "elections": self.elections,
            "platforms": self.platforms,
            "ballots": self.ballots,
            "past_winner_logs": self.past_winner_logs,
        })

    def restore_state(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.fallback.restore_state(state["fallback"])
        sitting = state["sitting"]
        if sitting is None:
            self.current = self.fallback
        else:
            self.current = winner_planner(sitting["options"], sitting["own"], sitting["persona"])
            self.current.restore_state(sitting["state"])
        self.platform = state["platform"]
        self.winner = state["winner"]
        self.elections = state["elections"]
        self.platforms = state["platforms"]
        self.ballots = state["ballots"]
        self.past_winner_logs = state["past_winner_logs"]

    def tables(self, model: EconomyModel) -> dict[str, pd.DataFrame]:
        out = {}
        if self.elections:
            out["elections"] = pd.DataFrame(self.elections)
        if self.platforms:
            out["platforms"] = pd.DataFrame(self.platforms)
        if self.ballots:
            out["ballots"] = pd.concat(self.ballots, ignore_index=True)
        fn = self.fallback.tables
        if fn is not None:
            out.update(fn(model))
        winner_log = list(self.past_winner_logs)
        if isinstance(self.current, LLMPlanner) and self.current is not self.fallback:
            winner_log += self.current.log
        if winner_log:
            out["winner_planner"] = pd.DataFrame(winner_log)
        return out


__all__ = ["Democracy", "project_rates", "winner_planner"]
