"""Checks of a ``workers.llm.pooling`` section that need more than one field: the cell
attributes exist in the population, and the call budget can cover the first attribute's
values (cells are never merged across it).  Pure configuration checks: nothing is asked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from personas.model import EDUCATION, SEXES
from simulator.errors import UserError

if TYPE_CHECKING:
    from simulator.config.schema import Scenario

#: Columns every population has, and those the Census and GB2 sources add.
POOLING_BASE_COLUMNS = ("wage", "hours", "weight")
POOLING_CENSUS_COLUMNS = ("sex", "age", "state", "education", "occupation", "occupation_name", "earnings")

DERIVED = ("age_band", "wage_band", "hours_band")


# --------------------------------------------------------------------------- validation
def _static_levels(scenario: Scenario, name: str) -> int | None:
    """Number of values attribute ``name`` can take, if known without the population."""
    pc = scenario.workers.llm.pooling
    if name == "age_band":
        return len(pc.age_edges)
    if name == "wage_band":
        return len(pc.wage_edges)
    if name == "hours_band":
        return len(pc.hours_edges)
    if scenario.population.source in ("census", "gb2"):
        if name == "sex":
            return len(SEXES)
        if name == "education":
            return len(EDUCATION)
        if name in ("occupation", "occupation_name"):
            return 22
        if name == "state":
            return 1 if scenario.population.census.state else 51
    return None


def check_pooling_config(scenario: Scenario, columns: list[str] | None = None) -> None:
    """Raise ``ValueError`` (one line) for a pooling section that cannot work.

    ``columns``: the population's columns when known (file sources); the Census and GB2
    sources' columns are known statically.
    """
    pc = scenario.workers.llm.pooling
    if pc is None:
        return
    if scenario.workers.policy != "llm":
        raise ValueError(
            f"workers.llm.pooling needs workers.policy: llm (got {scenario.workers.policy!r}); "
            "remove the pooling section or switch to LLM workers"
        )
    if columns is None and scenario.population.source in ("census", "gb2"):
        columns = [*POOLING_BASE_COLUMNS, *POOLING_CENSUS_COLUMNS]
    elif columns is not None:
        columns = list(dict.fromkeys([*columns, *POOLING_BASE_COLUMNS]))
    if columns is not None:
        for a in pc.attributes:
            if a not in DERIVED and a not in columns:
                raise ValueError(
                    f"workers.llm.pooling.attributes: {a!r} is not a population column "
                    f"(columns: {', '.join(c for c in columns if c not in ('id', 'persona'))}; "
                    f"derived: {', '.join(DERIVED)})"
                )
    if pc.budget == 0:
        raise ValueError("workers.llm.pooling.budget: 0 calls a step cannot decide anything (need >= 1)")
    floor = _static_levels(scenario, pc.attributes[0])
    if floor is not None:
        floor = min(floor, scenario.population.size)
    elif columns is not None and scenario.population.source == "file" and pc.attributes[0] in columns:
        floor = _file_column_levels(scenario.population.path, pc.attributes[0])
    if floor is not None:
        if pc.budget < floor:
            raise ValueError(
                f"workers.llm.pooling.budget: {pc.budget} is below the {floor} cells left after "
                f"merging (cells are never merged across the first attribute, "
                f"{pc.attributes[0]!r}); raise the budget or put a coarser attribute first"
            )


def _file_column_levels(path, name: str) -> int | None:
    """Distinct values (a missing value counts as one, as in :func:`attribute_codes`) of
    column ``name`` of a population file; ``None`` when it cannot be read here (the
    population loader reports that)."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            col = pd.read_parquet(path, columns=[name])[name]
        else:
            col = pd.read_csv(path, usecols=[name])[name]
    except Exception:  # noqa: BLE001 - malformed files are reported when loaded
        return None
    return int(col.nunique(dropna=False))


def population_columns(path) -> list[str]:
    """Column names of a population file, read without loading its rows."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return list(pd.read_csv(path, nrows=0).columns)
    except Exception as exc:  # noqa: BLE001 - malformed files are reported when loaded
        raise UserError(f"{path}: cannot read population columns: {str(exc).splitlines()[0]}") from None
