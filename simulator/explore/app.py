"""The Solara app served by ``econsim explore``: ``solara run simulator.explore.app``.

The scenario and starting controls come from environment variables set by the CLI:
``ECONSIM_EXPLORE_SCENARIO`` (a shipped scenario name or a YAML path) and
``ECONSIM_EXPLORE_PARAMS`` (a JSON object of controls, e.g. ``{"population_size": 2000}``).
Every browser session gets its own model.
"""

from __future__ import annotations

import json
import os

import solara

from simulator.explore.model import DEFAULT_SCENARIO, ExploreModel
from simulator.explore.page import ExplorePage


def _new_model() -> ExploreModel:
    scenario = os.environ.get("ECONSIM_EXPLORE_SCENARIO", DEFAULT_SCENARIO)
    params = json.loads(os.environ.get("ECONSIM_EXPLORE_PARAMS", "{}") or "{}")
    return ExploreModel(scenario, **params)


@solara.component
def Page():
    model = solara.use_memo(_new_model, [])
    ExplorePage(model=model)
