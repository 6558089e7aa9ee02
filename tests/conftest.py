"""Shared fixtures."""

from __future__ import annotations

import pytest

from simulator.config.loading import scenario_from_dict


@pytest.fixture
def make_scenario():
    """Build a validated scenario from nested overrides on a small rational setup."""

    def make(**sections):
        base = {
            "population": {"size": 300, "source": "census"},
            "run": {"tax_years": 3, "seed": 11},
            "workers": {"policy": "rational"},
            "planner": {"kind": "us_federal"},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return scenario_from_dict(base, "test")

    return make


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep LLM caches and converted models out of the user's home during tests."""
    import os

    shared = os.environ.get("ECONSIM_TEST_CACHE_DIR")
    if shared:
        monkeypatch.setenv("ECONSIM_CACHE_DIR", shared)
    else:
        monkeypatch.setenv("ECONSIM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "econsim-cache"))
