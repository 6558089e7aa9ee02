"""Golden runs: the re-laid package reproduces, bit for bit, every output table of runs
recorded with the econsim 0.1 layout (``tests/golden/record.py``; its list of runs
covers rational_baselines, quickstart, bounded, democratic and million on the scripted
backend, a three-seed experiment, a resume and a fork).  Columns that measure time
(latencies, wall seconds) are left out; everything else must match exactly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import record  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden.json").read_text())


@pytest.fixture(scope="module")
def current(tmp_path_factory) -> dict:
    return record.record(tmp_path_factory.mktemp("golden"))


def _differences(want: dict, got: dict) -> list[str]:
    out = []
    for table in sorted(set(want) | set(got)):
        if table not in got or table not in want:
            out.append(f"{table}: {'missing' if table not in got else 'not in the golden run'}")
            continue
        w, g = want[table], got[table]
        if w["columns"] != g["columns"]:
            out.append(f"{table}: columns {w['columns']} != {g['columns']}")
        if w["rows"] != g["rows"]:
            out.append(f"{table}: {g['rows']} rows, golden {w['rows']}")
        bad = [c for c in w["digest"] if w["digest"][c] != g["digest"].get(c)]
        if bad:
            out.append(f"{table}: columns differ: {', '.join(bad)}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("run", sorted(GOLDEN))
def test_run_matches_golden(current, run):
    assert current[run], f"{run}: no tables"
    assert _differences(GOLDEN[run], current[run]) == []


def test_digest_sees_a_changed_value(tmp_path):
    """The digest is not blind: one changed cell changes its column's digest only."""
    import pandas as pd

    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6]})
    df.to_parquet(tmp_path / "t.parquet")
    before = record.digest_dir(tmp_path)
    df.loc[1, "a"] = 2.0000000000000004
    df.to_parquet(tmp_path / "t.parquet")
    after = record.digest_dir(tmp_path)
    assert _differences(before, after) == ["t.parquet: columns differ: a"]
