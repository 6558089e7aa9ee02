"""Collect the replies every check needs and build the :class:`ValidityReport`.

Phases (each one batch of prompts for LLM workers, or array arithmetic otherwise):

1. incentives: the starting schedule with every net-of-tax rate scaled by each
   perturbation (the unperturbed one is the baseline of every other phase);
2. the baseline with the rebate raised by ``rebate_change``;
3. persona: one batch per persona field changed (age band, sex, education, occupation,
   state), wage and schedule fixed;
4. wage: the baseline with every wage scaled by ``wage_factor``, persona fixed;
5. consistency: the baseline with other seeds, and with the take-home rows reversed.

Every phase uses the same request seeds (a paired design) except the reseeded one; seeds
derive from ``run.seed``, so a second call asks exactly the same requests and is served by
the response cache.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import numpy as np
import pandas as pd

from simulator.config.schema import Scenario
from simulator.config.validity_names import INFO, LLM_ONLY
from simulator.economy.best_response import best_response, equilibrium
from simulator.economy.elasticity import perturb_net_of_tax
from simulator.economy.fixed_costs import REFORM_RATIO, reservation_cost
from simulator.economy.participation import FixedCostUtility, intensive
from simulator.sim.model import EconomyModel
from simulator.sim.workers.llm import LLMWorkerPolicy
from simulator.validity import (
    consistency,
    dispersion,
    incentives,
    participation,
    persona,
    reliability,
)
from simulator.validity.report import ValidityReport
from simulator.validity.result import CheckResult, not_applicable, unmeasurable

DEFAULT_PERTURBATIONS = (-0.2, -0.1, 0.0, 0.1, 0.2)


class _Progress:
    """A tqdm bar over prompts on a terminal, else one line per phase on ``stream``."""

    def __init__(self, total: int, enabled: bool | None, stream: TextIO | None) -> None:
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = True if enabled is None else enabled
        self.bar = None
        self.done = 0
        self.total = total
        if self.enabled and tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="validity", unit="prompt", file=self.stream, leave=False)

    def phase(self, name: str, count: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(f"validity: {name}")
        else:
            print(f"validity: {name} ({count} prompts, {self.done}/{self.total} done)",
                  file=self.stream, flush=True)

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Asker:
    """Asks the LLM workers of ``model`` for hours and records every reply."""

    def __init__(self, model, progress: _Progress) -> None:
        self.model = model
        self.policy = model.policy
        self.progress = progress
        self.fallback = np.asarray(self.policy.fallback_hours(model), dtype=float)
        self.rows: list[pd.DataFrame] = []

    def ask(self, phase: str, variant: str, schedule, rebate: float, seeds: np.ndarray, *,
            personas: pd.Series | None = None, wages: np.ndarray | None = None,
            hour_levels: list[float] | None = None, in_work_benefit: np.ndarray | None = None) -> np.ndarray:
        m = self.model
        pol = self.policy
        if hour_levels is not None:
            pol = LLMWorkerPolicy(pol.options.model_copy(update={"hour_levels": list(hour_levels)}))
        saved = (m.population, m.wages)
        try:
            if personas is not None:
                m.population = m.population.assign(persona=personas.to_numpy())
            if wages is not None:
                m.wages = np.asarray(wages, dtype=float)
            reqs = pol.requests(m, schedule, rebate, False, seeds, in_work_benefit=in_work_benefit)
        finally:
            m.population, m.wages = saved
        self.progress.phase(f"{phase} {variant}".strip(), len(reqs))
        step = len(reqs) if self.progress.bar is None else max(64, -(-len(reqs) // 10))
        responses = []
        for start in range(0, len(reqs), step):
            chunk = reqs[start:start + step]
            responses.extend(m.llm.generate(chunk))
            self.progress.update(len(chunk))
        hours = self.fallback.copy()
        answered = np.zeros(len(reqs), dtype=bool)
        for i, r in enumerate(responses):
            if r.ok and isinstance(r.value, dict) and "hours" in r.value:
                hours[i] = float(r.value["hours"])
                answered[i] = True
        hours = m.clip_hours(hours)
        self.rows.append(pd.DataFrame({
            "phase": phase, "variant": variant, "worker": np.arange(len(reqs)),
            "hours": hours, "answered": answered,
            "error_kind": [None if a else (r.error_kind or "invalid") for a, r in zip(answered, responses, strict=True)],
        }))
        return hours

    def replies(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame(columns=["phase", "variant", "worker", "hours", "answered", "error_kind"])
        return pd.concat(self.rows, ignore_index=True)


def _seeds(scenario: Scenario, n: int, stream: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([scenario.run.seed, 0x56414C, stream]))
    return rng.integers(0, 2**31 - 1, n)


def run_validity(
    scenario: Scenario,
    *,
    llm: Any = None,
    model=None,
    perturbations: tuple[float, ...] = DEFAULT_PERTURBATIONS,
    rebate_change: float = 10_000.0,
    wage_factor: float = 1.5,
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> ValidityReport:
    """The behavioural validity report of the scenario's worker policy (see the module doc).

    ``model``: an :class:`~simulator.sim.model.EconomyModel` to measure (default: a fresh one
    built from ``scenario`` with ``llm``); it is left as it was.  ``rebate_change``:
    dollars a year added to the rebate for the income effect; ``wage_factor``: the wage
    scale of the wage-dependence check.  ``progress``: None shows progress on ``stream``
    (stderr), False hides it.
    """
    started = time.perf_counter()
    if model is None:
        model = EconomyModel(scenario, llm=llm, agent_objects=False)
    perts = tuple(float(d) for d in perturbations)
    if 0.0 not in perts:
        perts = (*perts, 0.0)
    base = model.schedule
    n = model.n_workers
    w = model.wages
    weights = model.weights
    policy = model.policy
    is_llm = policy.name == "llm"
    bounds = model.hours_bounds
    checks: list[CheckResult] = []

    # --- rational workers of the same scenario (the comparison column)
    fb = np.asarray(best_response(model.budget(base), w, model.utility, model.expected_rebate, bounds))
    # the rebate workers are told: revenue at the rational hours (the LLM fallback)
    rebate0 = model.rebate_at(base, fb)
    if model.participation:
        # who works depends on the transfer at zero earnings: the one rational workers
        # expect in equilibrium (0 at current law under the default revenue requirement,
        # where the fixed costs were calibrated)
        fb, rebate0 = equilibrium(model.budget(base), w, model.utility, model.rebate_share, bounds,
                                  weights, requirement=model.revenue_requirement)
    rat_h0 = best_response(model.budget(base), w, model.utility, rebate0, bounds)
    rat_h1 = best_response(model.budget(base), w, model.utility, rebate0 + rebate_change, bounds)
    rat_mpe = float(np.average(incentives.marginal_propensity_to_earn(w, rat_h0, rat_h1, rebate_change),
                               weights=weights))
    schedules = [perturb_net_of_tax(base, d) for d in perts]
    # the ETI holds the rebate at its baseline: the response to the own marginal rate, as in
    # the tax-return literature (the income effect is measured on its own below)
    rat_incomes = np.stack([w * best_response(model.budget(s), w, model.utility, rebate0, bounds)
                            for s in schedules], axis=1)
    try:
        rat_eti = incentives.eti_from_incomes(base, perts, rat_incomes, weights)
    except ValueError:
        rat_eti = None
    rat_h_wage = best_response(model.budget(base), w * wage_factor, model.utility, rebate0, bounds)
    rat_wage = persona.movement(rat_h0, rat_h_wage, weights)[0]
    # --- participation: the in-work benefit that raises every net gain from working by 10 %
    benefit = rat_h_benefit = None
    if model.participation:
        # the gain at the hours worked when paying the largest cost at which working pays
        # (the calibration's reform: it reaches exactly the people at the margin)
        u = model.utility
        q = np.broadcast_to(np.asarray(u.fixed_cost, dtype=float), w.shape)
        b = model.budget(base)
        benefit = (REFORM_RATIO - 1.0) * reservation_cost(b, w, u, rebate0, bounds).net_gain
        rat_h_benefit = best_response(b, w, FixedCostUtility(intensive(u), q - benefit, u.nonwork_income),
                                      rebate0, bounds)

    # --- the scenario's workers
    replies = None
    persona_why = ""
    if is_llm:
        try:
            base_text, variants = persona.persona_variants(model.population)
        except ValueError as exc:
            base_text, variants, persona_why = None, {}, str(exc)
        same_text = base_text is not None and (base_text.to_numpy() == model.population["persona"].to_numpy()).all()
        n_phases = (len(perts) + 1 + len(variants) + (0 if same_text or base_text is None else 1) + 3
                    + (benefit is not None))
        prog = _Progress(n * n_phases, progress, stream)
        asker = _Asker(model, prog)
        seeds = _seeds(scenario, n, 0)
        try:
            r0 = rebate0
            cols = [asker.ask("incentives", f"net-of-tax {d:+.0%}", s, r0, seeds)
                    for d, s in zip(perts, schedules, strict=True)]
            h0 = cols[perts.index(0.0)]
            h_rebate = asker.ask("income_effect", f"rebate +${rebate_change:,.0f}", base, r0 + rebate_change, seeds)
            h_benefit = (asker.ask("participation", f"in-work benefit +{REFORM_RATIO - 1:.0%}", base, r0, seeds,
                                   in_work_benefit=benefit) if benefit is not None else None)
            h_persona0 = h0
            if base_text is not None and not same_text:
                h_persona0 = asker.ask("persona", "template text", base, r0, seeds, personas=base_text)
            h_fields = {f: asker.ask("persona", f, base, r0, seeds, personas=t) for f, t in variants.items()}
            h_wage = asker.ask("wage", f"x{wage_factor:g}", base, r0, seeds, wages=w * wage_factor)
            h_seed = asker.ask("consistency", "another seed", base, r0, _seeds(scenario, n, 1))
            levels = list(policy.options.hour_levels)
            # the rows each worker's table shows (a compact prompt's are its own), before and
            # after the reversal, read on the model the questions were asked on
            rows_shown = policy.table_hours(model)
            rows_reversed = LLMWorkerPolicy(policy.options.model_copy(
                update={"hour_levels": levels[::-1]})).table_hours(model)
            h_rev = asker.ask("consistency", "rows reversed", base, r0, seeds, hour_levels=levels[::-1])
        finally:
            prog.close()
        replies = asker.replies()
        incomes = np.stack([w * c for c in cols], axis=1)
    elif policy.name == "rational":
        h0, h_rebate, h_benefit = rat_h0, rat_h1, rat_h_benefit
        incomes, h_wage = rat_incomes, rat_h_wage  # the rational benchmark is the policy itself
    else:  # fixed hours (or any other non-LLM policy): its own respond()
        incomes = np.stack([np.asarray(policy.respond(model, s), float) for s in schedules], axis=1)
        h0 = incomes[:, perts.index(0.0)] / np.where(w > 0, w, 1.0)
        h_rebate = h_wage = h0
        h_benefit = None if benefit is None else h0
    # --- incentives
    try:
        est, why = incentives.eti_from_incomes(base, perts, incomes, weights), ""
    except ValueError as exc:
        est, why = None, str(exc)
    checks.append(incentives.eti_check(est, rat_eti, n, why))
    checks.append(incentives.income_effect_check(w, h0, h_rebate, rebate_change, weights, rat_mpe))
    # --- dispersion (of the hours of those who work, when people may not work)
    if model.participation:
        at_work = h0 > 0
        checks += dispersion.dispersion_checks(h0[at_work], None if weights is None else weights[at_work],
                                               rat_h0[rat_h0 > 0])
    else:
        checks += dispersion.dispersion_checks(h0, weights, rat_h0)
    # --- participation
    if model.participation:
        pop = model.population
        target = (float(np.average(pop["employment_target"].to_numpy(dtype=float), weights=weights))
                  if "employment_target" in pop.columns else float("nan"))
        rat_emp = float(np.average(rat_h0 > 0, weights=weights)) - target
        if np.isfinite(target):
            checks.append(participation.employment_check(h0, target, weights, rat_emp))
        else:
            checks.append(unmeasurable("participation.employment",
                                       "the population has no employment_target column", n))
        rat_el = participation.elasticity_value(rat_h0, rat_h_benefit, weights)[0]
        checks.append(participation.elasticity_check(h0, h_benefit, weights, rat_el))
    else:
        why = "population.participation is off: everyone works"
        checks += [not_applicable(c, why) for c in ("participation.employment", "participation.elasticity")]
    # --- persona, wage, consistency, reliability
    if is_llm:
        noise = np.abs(h_seed - h0)
        if variants:
            checks += persona.sensitivity_checks(h_persona0, h_fields, noise, weights)
        else:
            checks.append(unmeasurable("persona.sensitivity", persona_why, n))
        checks.append(persona.wage_check(h0, h_wage, wage_factor, noise, weights, rat_wage))
        checks.append(consistency.seed_check(h0, h_seed, weights))
        checks.append(consistency.order_check(h0, h_rev, rows_shown, consistency.share_moved(h0, h_seed, weights),
                                              weights, rows_reversed))
        checks += reliability.fallback_checks(replies)
        fell = 1.0 - float(replies["answered"].mean()) if len(replies) else 0.0
        if fell > scenario.llm.max_failure_rate:  # the numbers describe the fallbacks, not the model
            why = (f"{fell:.0%} of the replies fell back (> llm.max_failure_rate "
                   f"{scenario.llm.max_failure_rate:.0%}): the statistic would describe the fallback "
                   "answers, not the model")
            checks = [c if c.family == "reliability" or c.verdict == INFO
                      else unmeasurable(c.check, why, c.n, c.rational) for c in checks]
    else:
        checks.append(persona.wage_check(h0, h_wage, wage_factor, np.zeros(n), weights, rat_wage))
        why = f"worker policy {policy.name!r} does not ask a language model"
        checks += [not_applicable(c, why) for c in LLM_ONLY]
    order = {c: i for i, c in enumerate(
        ("incentives", "dispersion", "persona", "consistency", "reliability", "participation"))}
    checks.sort(key=lambda c: order[c.family])
    return ValidityReport(
        table=pd.DataFrame([c.row() for c in checks]),
        replies=replies,
        policy=policy.name,
        n_workers=n,
        scenario=scenario.name,
        wall_seconds=time.perf_counter() - started,
    )
