"""Review r5 (issues 10 and 16): defects found while checking pooling and the vLLM path."""

from __future__ import annotations

import numpy as np

from simulator.llm.factory import build_llm
from simulator.model import EconomyModel
from simulator.scenario import load_scenario

BASE = ["llm.backend=scripted", "llm.cache=off", "population.size=300", "planner.kind=us_federal",
        "run.tax_years=3", "workers.llm.pooling.budget=40"]


def _pooled(extra):
    sc = load_scenario("scenarios/quickstart.yaml", BASE + extra)
    m = EconomyModel(sc, llm=build_llm(sc.llm), agent_objects=False)
    m.run()
    return m


def test_pooling_check_is_a_measurement_that_does_not_change_the_run():
    """pooling.check asks N extra workers directly; drawing them must not move the run's
    own random stream (representatives of later years, planner seeds)."""
    with_check = _pooled(["workers.llm.pooling.check=30"])
    without = _pooled(["workers.llm.pooling.check=0"])
    assert with_check.history[1]["pool_check_n"] == 30
    for y in range(3):
        assert np.array_equal(with_check.agent_years[y]["hours"], without.agent_years[y]["hours"]), y
