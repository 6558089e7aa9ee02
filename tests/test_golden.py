"""Golden runs: the code ``simulator`` imports now reproduces, bit for bit, every output
table of the runs recorded with the 0.1 layout (``tests/golden/record.py``, its cases:
rational_baselines, quickstart, bounded, democratic and million on the scripted backend,
a three-seed experiment, a resume and a fork).  The cases run through the command line
only, in subprocesses; what is left out (wall-clock columns, timestamps, paths,
versions) is listed, with its reason, in ``tests/data/golden.json``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("golden_record", HERE / "golden" / "record.py")
record = importlib.util.module_from_spec(_spec)
sys.modules["golden_record"] = record
_spec.loader.exec_module(record)

GOLDEN = json.loads(record.GOLDEN.read_text())
RERECORD = "re-record with tests/golden/record.py (from the code you trust)"


@pytest.fixture(scope="module")
def current(tmp_path_factory) -> dict:
    """Every case, run once with the current code (two at a time)."""
    return record.record(tmp_path_factory.mktemp("golden"), jobs=2, keep_going=True)


def test_golden_file_is_current():
    """The golden file holds every case and was recorded with today's exclusions."""
    assert GOLDEN["format"] == record.FORMAT, RERECORD
    assert sorted(GOLDEN["runs"]) == sorted(record.CASES), RERECORD
    for name, case in GOLDEN["runs"].items():
        assert case["commands"] == record.CASES[name], f"{name}: commands changed; {RERECORD}"
        assert case["tables"], f"{name}: no tables recorded"
    excluded = {"columns": record.EXCLUDED_COLUMNS, "json_keys": record.EXCLUDED_KEYS,
                "files": record.EXCLUDED_FILES}
    assert GOLDEN["excluded"] == excluded, RERECORD


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(record.CASES))
def test_case_matches_golden(current, case):
    got = current[case]
    if isinstance(got, Exception):
        raise got
    diffs = record.differences(GOLDEN["runs"][case], got)
    assert not diffs, (f"golden case {case!r} (simulator from {record.simulator_location()}) differs:\n  "
                       + "\n  ".join(diffs))


def test_digests_see_one_changed_value(tmp_path):
    """The digests are not blind: one ulp, one character, one list element or one
    dictionary entry changed changes that column's digest, and only that one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(**change):
        cols = {
            "x": [1.0, 2.0, float("nan")], "n": [1, 2, None], "b": [True, False, None],
            "s": ["a", "bc", None], "d": pa.array(["u", "v", "u"]).dictionary_encode(),
            "l": [[0.1, 0.2], [], None], "z": pa.nulls(3),
        }
        cols.update(change)
        return pa.table(cols)

    def digest(t):
        (tmp_path / "run").mkdir(exist_ok=True)
        pq.write_table(t, tmp_path / "run" / "t.parquet", row_group_size=2)
        return {"tables": record.digest_run(tmp_path / "run", tmp_path)["tables"], "json": {}}

    base = digest(table())
    assert record.differences(base, digest(table())) == []
    changes = {
        "x": [1.0, 2.0000000000000004, float("nan")], "n": [1, 2, 0], "b": [True, False, False],
        "s": ["a", "bd", None], "d": pa.array(["u", "v", "v"]).dictionary_encode(),
        "l": [[0.1, 0.2000000000000001], [], None],
    }
    for col, values in changes.items():
        assert record.differences(base, digest(table(**{col: values}))) == [
            f"t.parquet: values differ in columns: {col}"], col
    # same values, another Arrow type: told apart by the types
    assert record.differences(base, digest(table(n=pa.array([1, 2, None], pa.int32())))) == [
        "t.parquet: types differ: n int64 -> int32"]
    # chunking (row groups) does not matter
    t = table()
    pq.write_table(t, tmp_path / "run" / "t.parquet", row_group_size=1)
    assert record.differences(base, {"tables": record.digest_run(tmp_path / "run", tmp_path)["tables"],
                                     "json": {}}) == []
