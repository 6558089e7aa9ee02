"""A fixed random subsample of workers for the per-agent tables (``output.agents_sample``).

At a million workers one row per worker per tax year is too much to keep; the
aggregates in ``years.parquet`` are always computed on every worker.  With
``output.agents_sample: N`` the per-agent-per-year tables (``agents``, and the LLM
workers' ``satisfaction`` and a democracy's ``ballots``) keep only ``N`` workers: the
same workers every tax year, drawn without replacement, uniformly, from a numpy
``Generator`` of their own derived from the run seed (never the global RNG and never
``model.rng``, so the run's results are the same with or without the option, and a
resumed run keeps the same sample).  ``N`` at least the population keeps every worker.

The sampled ``agents`` table carries, besides its usual columns, the worker's
population ``weight`` and ``sample_weight = weight * workers / N`` (the inverse of the
inclusion probability ``N / workers`` times the population weight), so weighted totals
over the sample estimate population totals and weighted means are unchanged in
expectation.  ``manifest.json`` records the sample under ``agents_sample``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from simulator.sim.model import EconomyModel

#: Stream tag mixed with the run seed ("SAMP"): the sample's own random stream.
SAMPLE_STREAM = 0x53414D50
#: Per-agent-per-year tables the sample applies to, and the column naming the worker.
PER_AGENT_TABLES: dict[str, str] = {"agents": "id", "satisfaction": "id", "ballots": "voter"}


def sample_positions(seed: int, n_workers: int, size: int | None) -> np.ndarray | None:
    """Sorted row positions of the sampled workers, or ``None`` for every worker.

    ``size`` workers out of ``n_workers``, without replacement, from
    ``default_rng(SeedSequence([seed, SAMPLE_STREAM]))``; ``None`` when ``size`` is
    ``None`` or at least ``n_workers``.
    """
    if size is None or size >= n_workers:
        return None
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SAMPLE_STREAM]))
    return np.sort(rng.choice(n_workers, size=int(size), replace=False))


def model_positions(model: EconomyModel) -> np.ndarray | None:
    """The model's sampled row positions (``None``: every worker)."""
    return sample_positions(model.settings.run.seed, model.n_workers, model.settings.output.agents_sample)


def agents_table(model: EconomyModel, years: int | None = None) -> pd.DataFrame:
    """``agents.parquet``: every worker, or the sampled ones with their weights.

    ``years``: keep only the first ``years`` tax years (an interrupted run).  Rows of a
    sampled worker are exactly that worker's rows of the full table.
    """
    pos = model_positions(model)
    view = copy.copy(model)
    view.agent_years = model.agent_years[:years] if years is not None else model.agent_years
    if pos is None:
        return EconomyModel.agents_frame(view)
    view.n_workers = int(pos.size)
    view.population = model.population.iloc[pos].reset_index(drop=True)
    view.wages = model.wages[pos]
    view.agent_years = [{k: v[pos] for k, v in y.items()} for y in view.agent_years]
    df = EconomyModel.agents_frame(view)
    w = view.population["weight"].to_numpy(dtype=float)
    reps = len(view.agent_years)
    df["weight"] = np.tile(w, reps)
    df["sample_weight"] = np.tile(w * (model.n_workers / pos.size), reps)
    return df


def restrict(model: EconomyModel, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``tables`` with the per-agent-per-year ones (but ``agents``) cut to the sample."""
    pos = model_positions(model)
    if pos is None:
        return tables
    ids = model.population["id"].to_numpy()[pos]
    out = dict(tables)
    for name, col in PER_AGENT_TABLES.items():
        df = out.get(name)
        if name != "agents" and df is not None and col in df.columns:
            out[name] = df[df[col].isin(ids)].reset_index(drop=True)
    return out


def manifest_entry(model: EconomyModel) -> dict[str, Any] | None:
    """What ``manifest.json`` records under ``agents_sample`` (``None``: option unset)."""
    size = model.settings.output.agents_sample
    if size is None:
        return None
    pos = model_positions(model)
    return {
        "requested": int(size),
        "sampled": pos is not None,
        "size": int(pos.size) if pos is not None else int(model.n_workers),
        "population": int(model.n_workers),
        "seed": int(model.settings.run.seed),
        "tables": [t for t in PER_AGENT_TABLES if t != "agents" or model.settings.output.agents_table],
        "id_column": {t: c for t, c in PER_AGENT_TABLES.items()},
        "weight_column": "sample_weight" if pos is not None else None,
    }


__all__ = ["PER_AGENT_TABLES", "SAMPLE_STREAM", "agents_table", "manifest_entry", "model_positions",
           "restrict", "sample_positions"]
