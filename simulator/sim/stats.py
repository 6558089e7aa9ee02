"""The tax year's statistics beyond the core aggregates: one typed record per year.

Each statistic is a column of ``years.parquet`` and has one owner that writes it: the
LLM worker policy (reply, fallback and transport-failure counts, satisfaction), archetype
pooling (``pool_*``), the planners (``saez_*``, ``search_*``, ``<tag>_invalid_total``)
and elections (``election*``).  Owners write through two operations only:

- :meth:`YearStats.add` sums a count over the year's steps (``fallbacks``, ``pool_calls``);
- :meth:`YearStats.set` records a value of this year (``pool_cells``, ``saez_elasticity``).

The model starts a fresh record at the first step of every tax year and appends it to
the year's row (:meth:`simulator.sim.model.EconomyModel.year_record`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

Value = float | str


class YearStats(Mapping[str, Value]):
    """An ordered record of this tax year's statistics (name -> number, or a short label).

    Read it like a mapping (``stats.get("fallbacks", 0.0)``); write it with :meth:`add` and
    :meth:`set`.  Names keep the order in which they were first written (the column order
    of ``years.parquet``).
    """

    def __init__(self, values: Mapping[str, Value] | None = None) -> None:
        self._values: dict[str, Value] = dict(values or {})

    def add(self, **counts: float) -> None:
        """Add ``counts`` to this year's running totals (a missing total starts at 0)."""
        for name, v in counts.items():
            self._values[name] = float(self._values.get(name, 0.0)) + float(v)

    def set(self, **values: Value) -> None:
        """Record this year's ``values`` (replacing earlier ones of the same name)."""
        self._values.update(values)

    def __getitem__(self, name: str) -> Value:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict[str, Value]:
        return dict(self._values)

    # the checkpoint protocol
    def checkpoint_state(self) -> dict[str, Value]:
        return dict(self._values)

    def restore_state(self, state: Mapping[str, Value]) -> None:
        self._values = dict(state)
