"""Loading of the packaged calibration tables (``personas/data/*.csv``).

Everything is read through :mod:`importlib.resources`, so the package works from a
wheel or a zip and never looks outside itself.  See ``personas/data/SOURCES.md`` for
the source, year and universe of each table.
"""

from __future__ import annotations

import io
from functools import cache
from importlib import resources

import pandas as pd

#: Dtypes that must stay strings (codes with leading zeros).
_STR_COLUMNS = {"soc_major": str, "state_fips": str, "state": str}


@cache
def load_table(name: str) -> pd.DataFrame:
    """Return a copy-safe DataFrame of ``personas/data/<name>.csv``."""
    text = resources.files("personas").joinpath("data", f"{name}.csv").read_text("utf-8")
    return pd.read_csv(io.StringIO(text), dtype=_STR_COLUMNS)


def table(name: str) -> pd.DataFrame:
    """Like :func:`load_table` but returns a copy the caller may modify."""
    return load_table(name).copy()
