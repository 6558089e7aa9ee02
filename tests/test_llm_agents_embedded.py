"""LLM workers and planner on the real embedded model, then an exact cached replay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest_llm import needs_llama

from simulator.config.loading import scenario_from_dict
from simulator.run.runner import run_scenario

pytestmark = [needs_llama, pytest.mark.embedded, pytest.mark.timeout(600)]


def scenario(cache_path, mode="readwrite"):
    return scenario_from_dict({
        "population": {"size": 4, "source": "census"},
        "workers": {"policy": "llm", "llm": {"temperature": 0.0, "history": 1}},
        "planner": {"kind": "llm", "llm": {"action": "delta", "max_step": 0.05,
                                            "rate_bounds": [0.05, 0.5], "monotone": True}},
        "run": {"tax_years": 2, "seed": 5},
        "llm": {"backend": "embedded", "cache": mode, "cache_path": str(cache_path)},
    })


def test_embedded_llm_economy_runs_and_replays(tmp_path):
    cache = tmp_path / "cache.sqlite"
    first = run_scenario(scenario(cache), tmp_path / "a", progress=False)
    y = first.years
    # replies are used: the embedded model's grammar makes every reply valid
    assert y["fallback_rate"].max() < 0.5
    hours = first.agents["hours"].to_numpy()
    assert np.all((hours >= 0) & (hours <= 100)) and np.all(hours == np.round(hours))
    # the planner's action respects its constraints
    prev = np.array([y[f"rate_{i}"].iloc[0] for i in range(7)])
    new = np.array([y[f"rate_{i}"].iloc[1] for i in range(7)])
    assert np.all(np.abs(new - prev) <= 0.05 + 1e-9)
    assert np.all((new >= 0.05 - 1e-9) & (new <= 0.5 + 1e-9))
    assert np.all(np.diff(new) >= -1e-12)
    # telemetry is in the outputs
    tel = first.tables["llm"]
    assert set(tel["tag"]) == {"worker", "planner"}
    assert tel["prompt_tokens"].sum() > 0 and y["llm_requests"].tolist() == [4, 5]
    # replay: same outputs, zero model calls
    second = run_scenario(scenario(cache, "replay"), tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(first.agents, second.agents)
    assert second.years["llm_cache_hits"].tolist() == second.years["llm_requests"].tolist()
    assert [first.years[f"rate_{i}"].iloc[1] for i in range(7)] == [
        second.years[f"rate_{i}"].iloc[1] for i in range(7)
    ]
