"""Small fixed scenarios whose worker prompts ``tests/data/prompts_verbose.json`` holds, as
the code before the compact layout built them (``prompt_layout: verbose`` must rebuild
them byte for byte, tests/test_prompt_layout.py)."""

from __future__ import annotations

import numpy as np

from simulator.config.loading import load_scenario, resolve_scenario_path, scenario_from_dict
from simulator.llm import build_llm
from simulator.sim.model import EconomyModel

SCRIPTED = {"backend": "scripted", "cache": "off"}

#: name -> (scenario, tax years run before the prompts are built)
CASES = {
    "census": ({"population": {"size": 6, "source": "census"},
                "workers": {"policy": "llm", "llm": {"history": 3}}, "planner": {"kind": "us_federal"},
                "run": {"seed": 7, "mesa_agents": False, "tax_years": 3}, "llm": SCRIPTED}, 3),
    "census_year0": ({"population": {"size": 4, "source": "census"},
                      "workers": {"policy": "llm"}, "planner": {"kind": "us_federal"},
                      "run": {"seed": 1, "mesa_agents": False}, "llm": SCRIPTED}, 0),
    "half_rebate_explore": ({"population": {"size": 4, "source": "census"},
                             "economy": {"rebate_share": 0.5},
                             "workers": {"policy": "llm", "llm": {"history": 1, "hour_levels": [10, 45]}},
                             "planner": {"kind": "us_federal"},
                             "run": {"seed": 2, "mesa_agents": False, "tax_years": 2, "steps_per_year": 2},
                             "llm": SCRIPTED}, 2),
    "quickstart": ("quickstart", 2),
    "bounded": ("bounded", 2),
}


def scenario(name: str, layout: str | None):
    spec, _ = CASES[name]
    if isinstance(spec, str):
        sc = load_scenario(resolve_scenario_path(spec), [
            f"llm.backend={SCRIPTED['backend']}", f"llm.cache={SCRIPTED['cache']}",
            "run.mesa_agents=false", "population.size=8"])
    else:
        sc = scenario_from_dict(spec)
    if layout is not None:
        wl = sc.workers.llm.model_copy(update={"prompt_layout": layout})
        sc = sc.model_copy(update={"workers": sc.workers.model_copy(update={"llm": wl})})
    return sc


def model_after(name: str, layout: str | None) -> EconomyModel:
    """The case's model after its years were run (scripted replies)."""
    sc = scenario(name, layout)
    m = EconomyModel(sc, llm=build_llm(sc.llm), agent_objects=False)
    years = CASES[name][1]
    if years:
        m.run(years)
    return m


def prompts(m: EconomyModel) -> list[dict]:
    """Every worker's (system, user) for both cues, and the satisfaction system text, plus
    an in-work benefit variant of worker 0 where people may not work."""
    pol = m.policy
    seeds = np.arange(1, m.n_workers + 1)
    out = []
    for explore in (False, True):
        for r in pol.requests(m, m.schedule, m.expected_rebate, explore, seeds):
            out.append({"system": r.messages[0]["content"], "user": r.messages[-1]["content"]})
    if m.participation:
        benefit = np.linspace(500.0, 2_500.0, m.n_workers)
        for r in pol.requests(m, m.schedule, m.expected_rebate, False, seeds[:2], np.array([0, 1]),
                              in_work_benefit=benefit):
            out.append({"system": r.messages[0]["content"], "user": r.messages[-1]["content"]})
    return out


def build_case(name: str, layout: str | None) -> list[dict]:
    return prompts(model_after(name, layout))
