"""What ``econsim run`` checks before its first tax year, runnable on its own.

``econsim validate`` and ``econsim run`` both call :func:`preflight`, so a scenario that
validates is one whose run gets past its set-up: every variant's population file can be
read, its language-model backend is installed and configured (e.g. an ``openai`` backend
names a model and has its key), its elections have enough workers to stand, and settings
that contradict each other are errors rather than one of them silently dropped.  Nothing
here starts a model, connects to a server or writes a file.

Not checked here, because they need the model itself: the ``validity_gate`` (it asks the
workers) and whether the server answers (``econsim llm check``).
"""

from __future__ import annotations

import numpy as np

from simulator.config.planners import optimum_subsample_problem
from simulator.config.schema import Scenario
from simulator.errors import UserError
from simulator.llm.registry import backend_spec
from simulator.sim.participation import check_participation_columns
from simulator.sim.population import read_population


def check_seed_flag(scenario: Scenario, seed: int | None, where: str) -> None:
    """``--seed`` shifts a counted ``run.seeds`` (``seeds: 5`` is seed..seed+4) but would be
    silently ignored by an explicit list: that is an error."""
    if seed is None:
        return
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if isinstance(scenario.run.seeds, list):
        raise UserError(f"{where}: --seed {seed} contradicts run.seeds {scenario.run.seeds} "
                        "(a list names every seed): drop --seed, or set run.seeds to a count")


def preflight(scenario: Scenario, where: str, baseline: str | None = None) -> None:
    """Raise :class:`UserError` for anything the run of ``scenario`` would reject before
    its first tax year; ``where`` names the scenario file in the messages."""
    variants = scenario.variants(where)
    labels = [label for label, _ in variants]
    wanted = baseline if baseline is not None else scenario.experiment.baseline
    if wanted is not None and wanted not in labels:
        what = "experiment.baseline" if baseline is None else "--baseline"
        raise UserError(f"{where}: {what} {wanted!r} is not a variant "
                        f"(variants: {', '.join(labels)})")
    for label, variant in variants:
        at = f"{where} [{label}]" if scenario.compare else where
        size = _population_size(variant, at)
        _elections(variant, size, at)
        if (problem := optimum_subsample_problem(variant, size)) is not None:
            raise UserError(f"{at}: {problem}")
        if variant.uses_llm:
            backend_spec(variant.llm.backend).check(variant.llm.backend, variant.llm)


def _population_size(scenario: Scenario, where: str) -> int:
    """The number of workers the run will have; reads (and so checks) a population file."""
    cfg = scenario.population
    if cfg.source != "file":
        return cfg.size
    size = cfg.size if "size" in cfg.model_fields_set else None
    try:
        df = read_population(cfg.path, size, np.random.default_rng(0))
        if cfg.participation.enabled:  # its targets (or employed flags) and saved costs
            check_participation_columns(df)
    except UserError as exc:
        raise UserError(f"{where}: population.path: {exc}") from None
    return len(df)


def _elections(scenario: Scenario, n_workers: int, where: str) -> None:
    d = scenario.democracy
    if d.enabled and d.candidates > n_workers:
        raise UserError(f"{where}: democracy.candidates is {d.candidates} but the population has "
                        f"only {n_workers} workers to stand")


__all__ = ["check_seed_flag", "preflight"]
