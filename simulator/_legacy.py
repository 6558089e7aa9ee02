"""Old module paths of econsim 0.1, kept for one release (0.2) with a DeprecationWarning.

econsim 0.2 re-laid ``simulator/`` into ``config/``, ``sim/``, ``run/`` and ``report/``
(``docs/architecture.md``).  ``import simulator.model`` and the like still work: a
meta-path finder answers each old name with a module that forwards attribute access to
the new modules (the first that has the name) and warns once on import.  Remove in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

#: old module -> the modules that now hold its names, searched in order
MOVED: dict[str, tuple[str, ...]] = {
    "simulator.scenario": ("simulator.config.schema", "simulator.config.loading",
                           "simulator.config.pooling"),
    "simulator.model": ("simulator.sim.model", "simulator.config.builders"),
    "simulator.agents": ("simulator.sim.agents",),
    "simulator.agents.worker": ("simulator.sim.agents",),
    "simulator.agents.planner": ("simulator.sim.agents",),
    "simulator.population": ("simulator.sim.population",),
    "simulator.enrichment": ("simulator.sim.enrichment",),
    "simulator.prompts": ("simulator.sim.prompts",),
    "simulator.voting": ("simulator.sim.voting",),
    "simulator.behaviour": ("simulator.sim.behaviour",),
    "simulator.progress": ("simulator.sim.progress",),
    "simulator.run_health": ("simulator.sim.health",),
    "simulator.policies": ("simulator.sim.workers",),
    "simulator.policies.llm": ("simulator.sim.workers.llm",),
    "simulator.policies.pooling": ("simulator.sim.workers.pool_plan", "simulator.config.pooling"),
    "simulator.policies.pooled": ("simulator.sim.workers.pool_ask",),
    "simulator.policies.streaming": ("simulator.sim.workers.streaming",),
    "simulator.planners": ("simulator.sim.planners",),
    "simulator.planners.llm": ("simulator.sim.planners.llm",),
    "simulator.planners.search": ("simulator.sim.planners.search",),
    "simulator.planners.democracy": ("simulator.sim.planners.democracy",),
    "simulator.runner": ("simulator.run.runner", "simulator.experiments"),
    "simulator.checkpoint": ("simulator.run.state", "simulator.run.signals", "simulator.run.resume"),
    "simulator.agent_sample": ("simulator.run.agent_sample",),
    "simulator.report_html": ("simulator.report.html", "simulator.report.common"),
}


class _Forward(types.ModuleType):
    """A module whose attributes are looked up in the new modules."""

    __targets__: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for target in self.__targets__:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (moved to {', '.join(self.__targets__)}) "
                             f"has no attribute {name!r}")


class _LegacyFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname not in MOVED:
            return None
        is_pkg = any(other.startswith(fullname + ".") for other in MOVED)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_pkg)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _Forward(spec.name)
        module.__targets__ = MOVED[spec.name]
        if spec.submodule_search_locations is not None:
            module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        warnings.warn(
            f"{module.__name__} moved to {' / '.join(MOVED[module.__name__])} in econsim 0.2; "
            "the old path goes in 0.3", DeprecationWarning, stacklevel=2,
        )


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _LegacyFinder) for f in sys.meta_path):
        sys.meta_path.append(_LegacyFinder())
