"""The LLM backends, in one place: name -> where it lives and what it needs.

``llm.backend``'s accepted values (:data:`simulator.llm.config.Backend`), the
``econsim llm check --backend`` choices and :func:`simulator.llm.factory.build_backend`
all come from :data:`BACKENDS`.  Each backend module defines ``build(config, script)``
(the :class:`~simulator.llm.config.LLMConfig` -> bare backend) and is imported only when
that backend is built, so an optional dependency (llama-cpp-python, vLLM) is needed only
by the runs that use it.

Adding a backend: one module with a :class:`~simulator.llm.types.LanguageModel` subclass
and a ``build`` function, one :data:`BACKENDS` line (and its options in ``config.py`` if
it has any).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.errors import UserError


@dataclass(frozen=True)
class BackendSpec:
    """One backend.

    ``module``: the module holding it; ``factory``: the name in that module of
    ``build(config, script) -> LanguageModel``; ``checker``: the name in that module of
    ``check(config) -> None``, which raises what ``build`` would reject about the
    configuration without starting anything (``""``: nothing to check); ``extra``: the optional extra of the
    ``econsim`` package that installs its dependency (``""``: a core backend);
    ``requires``: that dependency's distribution name (for the error message);
    ``description``: one line, shown in the config field's help; ``thread_safe``:
    ``False`` wraps it so one ``generate`` call runs at a time; ``retries_transport``:
    it retries transport failures per request itself (the retry wrapper then only
    re-asks invalid replies).
    """

    module: str
    description: str
    factory: str = "build"
    checker: str = ""
    extra: str = ""
    requires: str = ""
    thread_safe: bool = True
    retries_transport: bool = False

    def load(self, name: str) -> Callable[..., Any]:
        """The backend's ``build`` function; a missing optional dependency is one
        :class:`~simulator.errors.UserError` naming the extra to install."""
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if not self.extra or missing in ("", "simulator"):
                raise
            raise UserError(
                f"llm.backend {name} needs the optional dependency {self.requires or missing}: "
                f"pip install 'econsim[{self.extra}]'"
            ) from exc
        return getattr(module, self.factory)

    def check(self, name: str, config: Any) -> None:
        """What ``econsim validate`` checks of a backend before any run: its optional
        dependency is installed and its ``check(config)`` (if any) accepts ``config``."""
        build = self.load(name)
        if self.checker:
            getattr(importlib.import_module(build.__module__), self.checker)(config)


#: every backend, by ``llm.backend`` name (this order is the order of the error texts)
BACKENDS: dict[str, BackendSpec] = {
    "embedded": BackendSpec(
        "simulator.llm.embedded", "llama.cpp, offline, default",
        extra="embedded", requires="llama-cpp-python", thread_safe=False,
    ),
    "openai": BackendSpec(
        "simulator.llm.openai_backend", "any OpenAI-compatible server", retries_transport=True,
        checker="check",
    ),
    "vllm": BackendSpec(
        "simulator.llm.vllm_backend", "in-process, optional extra", extra="vllm", requires="vllm",
    ),
    "scripted": BackendSpec("simulator.llm.scripted", "tests"),
}


def backend_spec(name: str) -> BackendSpec:
    """The :class:`BackendSpec` of ``name``; an unknown name is a ``UserError``."""
    spec = BACKENDS.get(name)
    if spec is None:
        raise UserError(f"unknown llm backend {name!r} ({', '.join(BACKENDS)})")
    return spec


def backends_help() -> str:
    """``embedded (llama.cpp, offline, default) | openai (...) | ...``"""
    return " | ".join(f"{name} ({spec.description})" for name, spec in BACKENDS.items())


__all__ = ["BACKENDS", "BackendSpec", "backend_spec", "backends_help"]
