"""Population sources: where the workers (wages, usual hours, personas) come from.

A source returns a DataFrame with at least ``id``, ``wage`` (dollars a year per weekly
hour), ``hours`` (usual hours a week), ``weight`` (population weight) and ``persona``
(text); the Census source adds the demographic attributes.  Every population also has
the household columns ``filing_status`` (1 single, 2 married filing jointly, 3 married
filing separately, 4 head of household), ``children`` (qualifying children under 17),
``eitc_children`` (0-3), ``spouse_age`` (0 if none), ``spouse_wages`` (dollars a year,
0 unless filing jointly) and ``unit_earners`` (1 or 2): drawn for census and gb2
populations (``personas.households``), read from a file when it has them (checked) and
otherwise the defaults of :data:`HOUSEHOLD_DEFAULTS` (a single earner without
children).  All randomness comes from the generator passed in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.config.schema import PopulationConfig
from simulator.errors import UserError

REQUIRED = ("id", "wage", "hours", "weight", "persona")
#: Household columns: default for a file without them, dtype, allowed range, meaning.
HOUSEHOLD_DEFAULTS = {
    "filing_status": (1, np.int8, (1, 4),
                      "an integer 1-4 (1 single, 2 joint, 3 separate, 4 head of household)"),
    "children": (0, np.int8, (0, 10), "an integer 0-10 (children under 17)"),
    "eitc_children": (0, np.int8, (0, 3), "an integer 0-3 (EITC qualifying children)"),
    "spouse_age": (0, np.int16, (0, 120), "an integer 0-120 (0 when there is no spouse)"),
    "spouse_wages": (0.0, np.float64, (0.0, np.inf), "a finite number >= 0 (dollars a year)"),
    "unit_earners": (1, np.int8, (1, 2), "1 or 2 (earners in the tax unit)"),
}


def build_population(cfg: PopulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Draw (or read) the worker population described by ``cfg``."""
    if cfg.source == "file":
        # population.size, when given, draws a random subsample of the file's rows
        size = cfg.size if "size" in cfg.model_fields_set else None
        return read_population(cfg.path, size, rng)
    import personas
    from personas.generator import PersonaInputError

    opts = cfg.census
    # working-age adults, employed or not, with employment targets (the extensive margin)
    extra = {"participation": True} if cfg.participation.enabled else {}
    try:
        df = personas.generate(
            cfg.size,
            rng=rng,
            state=opts.state,
            age_range=opts.age_range,
            stratify=opts.stratify,
            min_per_stratum=opts.min_per_stratum,
            income_mode="gb2" if cfg.source == "gb2" else "census",
            **extra,
        )
    except PersonaInputError as exc:
        raise UserError(f"population.census: {exc}") from None
    return _normalise(df, "population")


def read_population(
    path: Path | None, size: int | None = None, rng: np.random.Generator | None = None
) -> pd.DataFrame:
    """A population table from parquet or CSV; needs a non-negative ``wage`` column.

    With ``size`` smaller than the table, a random subsample of ``size`` rows (in file
    order) is drawn with ``rng``; a table with fewer rows than ``size`` is an error.
    """
    if path is None:
        raise UserError("population.path: no file given")
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix in (".csv", ".txt"):
            df = pd.read_csv(path)
        else:
            raise UserError(f"{path}: population files must be .parquet or .csv")
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path}: population file not found") from None
    except Exception as exc:  # malformed file: pandas/pyarrow raise many kinds
        raise UserError(f"{path}: cannot read population table: {str(exc).splitlines()[0]}") from None
    if len(df) == 0:
        raise UserError(f"{path}: the population table has no rows")
    if "wage" not in df.columns:
        raise UserError(f"{path}: population table needs a 'wage' column (dollars a year per weekly hour)")
    wage = pd.to_numeric(df["wage"], errors="coerce")
    bad = ~np.isfinite(wage) | (wage < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(
            f"{path}: column 'wage' row {row}: expected a finite number >= 0, got {str(df['wage'].iloc[row])!r}"
        )
    df = df.assign(wage=wage.astype(float))
    _households(df, str(path))  # checked here so that errors name the file's rows
    if size is not None:
        if size > len(df):
            raise UserError(f"{path}: population.size is {size} but the table has only {len(df)} rows")
        if size < len(df):
            gen = rng if rng is not None else np.random.default_rng(0)
            df = df.iloc[np.sort(gen.choice(len(df), size, replace=False))]
    return _normalise(df, str(path))


def _normalise(df: pd.DataFrame, where: str) -> pd.DataFrame:
    df = df.reset_index(drop=True).copy()
    if "id" not in df.columns:
        df["id"] = np.arange(len(df))
    if "hours" not in df.columns:
        df["hours"] = 40.0
    if "weight" not in df.columns:
        df["weight"] = 1.0
    generic = pd.Series(
        [f"You are a worker earning ${w * 40:,.0f} a year at 40 hours a week." for w in df["wage"]],
        index=df.index,
    )
    if "persona" not in df.columns:
        df["persona"] = generic
    else:
        text = df["persona"].astype("string")
        df["persona"] = text.where(text.notna() & (text.str.strip() != ""), generic).astype(str)
    if df["id"].duplicated().any():
        dup = df["id"][df["id"].duplicated()].iloc[0]
        raise UserError(f"{where}: column 'id' has duplicates (e.g. {str(dup)!r})")
    hours = pd.to_numeric(df["hours"], errors="coerce")
    if (~np.isfinite(hours) | (hours < 0) | (hours > 168)).any():
        raise UserError(f"{where}: column 'hours' must hold hours a week in [0, 168]")
    weight = pd.to_numeric(df["weight"], errors="coerce")
    if (~np.isfinite(weight) | (weight < 0)).any() or weight.sum() <= 0:
        raise UserError(f"{where}: column 'weight' must be non-negative and not all zero")
    df["hours"] = hours.astype(float)
    df["weight"] = weight.astype(float)
    return _households(df, where)


def _bad_row(where: str, df: pd.DataFrame, col: str, bad: np.ndarray, expected: str) -> UserError:
    row = int(np.flatnonzero(bad)[0])
    return UserError(f"{where}: column {col!r} row {row}: expected {expected}, got {str(df[col].iloc[row])!r}")


def _households(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check the household columns a table has and add the missing ones.

    A missing column gets its default (:data:`HOUSEHOLD_DEFAULTS`), except
    ``eitc_children`` (``min(children, 3)`` when the table gives ``children``) and
    ``unit_earners`` (2 where ``spouse_wages > 0``, else 1).  Spouse wages need filing
    status 2, and ``unit_earners``, when given, must be 2 exactly where the spouse earns.
    """
    out = {}
    for col, (_, dtype, (lo, hi), expected) in HOUSEHOLD_DEFAULTS.items():
        if col not in df.columns:
            continue
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v) | (v < lo) | (v > hi)
        if np.issubdtype(dtype, np.integer):
            bad |= np.where(np.isfinite(v), v != np.round(v), True)
        if bad.any():
            raise _bad_row(where, df, col, bad, expected)
        out[col] = v.astype(dtype)
    n = len(df)
    fs = out.get("filing_status", np.ones(n, dtype=np.int8))
    sw = out.get("spouse_wages", np.zeros(n))
    if "spouse_wages" in out:
        bad = (sw > 0) & (fs != 2)
        if bad.any():
            raise _bad_row(where, df, "spouse_wages", bad,
                           "0 unless filing_status is 2 (married filing jointly)")
    earners = (1 + (sw > 0)).astype(np.int8)
    if "unit_earners" in out:
        bad = out["unit_earners"] != earners
        if bad.any():
            raise _bad_row(where, df, "unit_earners", bad,
                           "2 where spouse_wages > 0 and 1 elsewhere")
    defaults = {c: np.full(n, d, dtype=t) for c, (d, t, _, _) in HOUSEHOLD_DEFAULTS.items()}
    if "children" in out:
        defaults["eitc_children"] = np.minimum(out["children"], 3).astype(np.int8)
    defaults["unit_earners"] = earners
    df = df.copy()
    for col in HOUSEHOLD_DEFAULTS:
        df[col] = out.get(col, defaults[col])
    return df
