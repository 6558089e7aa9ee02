"""Does a worker population respond to taxes at all?  Measure its ETI.

``measure_behaviour`` perturbs every net-of-tax rate of the scenario's starting schedule,
asks the scenario's worker policy (rational, fixed or LLM) what it would earn under each
perturbed schedule, and regresses log income on the log net-of-tax rate with worker fixed
effects (:func:`simulator.economy.elasticity.estimate_elasticity`), reporting a 95 %
confidence interval and the share of LLM replies that fell back.  Each perturbed schedule
comes with its own rebate, so the estimate includes the rebate's income effect.

``econsim behaviour`` runs the full validity report instead (:mod:`simulator.validity`),
whose ETI holds the rebate at its baseline and measures the income effect separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.config.schema import Scenario
from simulator.economy.elasticity import ElasticityEstimate, estimate_elasticity
from simulator.sim.model import EconomyModel
from simulator.sim.progress import line


@dataclass
class BehaviourReport:
    estimate: ElasticityEstimate
    table: pd.DataFrame  # one row per perturbation
    fallback_share: float
    policy: str

    def text(self) -> str:
        e = self.estimate
        lines = [
            f"worker policy: {self.policy}",
            self.table.to_string(index=False, float_format=lambda x: f"{x:,.3f}"),
            "",
            f"elasticity of taxable income: {e.value:.3f} (95% CI {e.ci_low:.3f} to {e.ci_high:.3f}; "
            f"{e.n_agents} workers, {e.n_dropped} dropped with zero income)",
            f"share of replies that fell back: {self.fallback_share:.1%}",
        ]
        if e.ci_low <= 0 <= e.ci_high:
            lines.append("warning: the interval includes 0 - this population may not respond to taxes")
        return "\n".join(lines)


def measure_behaviour(
    scenario: Scenario,
    perturbations: tuple[float, ...] = (-0.2, -0.1, 0.0, 0.1, 0.2),
    llm=None,
) -> BehaviourReport:
    model = EconomyModel(scenario, llm=llm, agent_objects=False)
    rows = []
    fallbacks = []

    def respond(schedule):
        z = model.policy.respond(model, schedule)
        fb = model.policy.last_respond_fallback_rate
        fallbacks.append(fb)
        # one line per perturbation on stderr (each may be a long LLM batch)
        line(f"behaviour: perturbation {len(rows) + 1}/{len(perturbations)} done (fallback {fb:.0%})")
        rows.append({
            "net_of_tax_change": perturbations[len(rows)],
            "mean_rate_pct": 100 * float(np.mean(schedule.rates)),
            "mean_hours": float(np.mean(z / np.where(model.wages > 0, model.wages, 1))),
            "mean_income": float(np.mean(z)),
            "fallback_share": fb,
        })
        return z

    try:
        est = estimate_elasticity(respond, model.schedule, perturbations)
    finally:
        if llm is None and model._llm is not None:
            model._llm.close()
    return BehaviourReport(
        estimate=est,
        table=pd.DataFrame(rows),
        fallback_share=float(np.mean(fallbacks)) if fallbacks else 0.0,
        policy=model.policy.name,
    )
