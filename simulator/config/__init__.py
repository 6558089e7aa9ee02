"""Configuration: the scenario schema (pydantic), YAML loading and ``--set`` overrides
with their one-line errors, cross-field checks, the planner registry, and the builders
that turn a scenario into economic-core objects.  Imports only the economic core, the
inference layer's configuration and ``personas``."""

from simulator.config.builders import build_base_schedule, build_utility
from simulator.config.loading import (
    load_scenario,
    parse_override,
    resolve_scenario_path,
    scenario_from_dict,
    set_dotted,
    shipped_scenarios_dir,
)
from simulator.config.schema import Scenario

__all__ = [
    "Scenario", "build_base_schedule", "build_utility", "load_scenario", "parse_override",
    "resolve_scenario_path", "scenario_from_dict", "set_dotted", "shipped_scenarios_dir",
]
