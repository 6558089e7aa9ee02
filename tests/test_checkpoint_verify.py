"""Verified checkpoints stored once (econsim issue 21, part 3): a damaged, truncated or
unrecorded newest checkpoint is reported and the newest good one resumes the run to the
same results as an uninterrupted run; temporary files of a cut-short write are swept;
the disk taken by a run's checkpoints grows linearly with its years."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from test_checkpoint import assert_same_run

from simulator.cli.main import main
from simulator.config.loading import scenario_from_dict
from simulator.results import load_run
from simulator.run.runner import run_scenario
from simulator.run.state import (
    CHECKPOINT_DIR,
    checkpoint_path,
    digest_path,
    finished_years,
    load_checkpoint,
    newest_good_checkpoint,
)
from simulator.sim.model import EconomyModel

#: LLM workers (bounded: satisfaction, histories), an LLM planner and elections: the
#: richest state there is, on the scripted backend
RICH = {
    "name": "verify",
    "population": {"size": 30, "source": "census"},
    "workers": {"policy": "llm", "llm": {"bounded": True, "history": 2}},
    "planner": {"kind": "llm"},
    "democracy": {"enabled": True, "election_every": 2, "winner_mode": "planner"},
    "run": {"tax_years": 5, "seed": 5, "steps_per_year": 2},
    "llm": {"backend": "scripted", "cache": "off"},
}


def _quiet():
    return open(os.devnull, "w")


def _scenario(data: dict = RICH, **run):
    return scenario_from_dict({**data, "run": {**data["run"], **run}}, "test")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref"
    run_scenario(_scenario(), out, progress=False, stream=_quiet())
    return out


@pytest.fixture
def stopped(tmp_path, monkeypatch):
    """A run that crashed in tax year 4: checkpoints 0..3, status failed."""
    out = tmp_path / "run"
    real = EconomyModel.step

    def crash(self):
        if self.year == 4:
            raise RuntimeError("simulated crash")
        real(self)

    monkeypatch.setattr(EconomyModel, "step", crash)
    with pytest.raises(RuntimeError):
        run_scenario(_scenario(), out, progress=False, stream=_quiet())
    monkeypatch.undo()
    assert finished_years(out) == [0, 1, 2, 3]
    return out


def _resume_cli(capsys, run_dir: Path) -> tuple[str, float]:
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(["resume", str(run_dir), "--no-progress"]) == 0
    took = time.perf_counter() - t0
    return capsys.readouterr().out, took


def _flip(path: Path, at: float) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- damaged newest
@pytest.mark.parametrize("at", [0.2, 0.35])
def test_a_flipped_byte_in_the_newest_checkpoint_resumes_from_the_previous_one(stopped, reference, capsys, at):
    _flip(checkpoint_path(stopped, 3), at)
    out, took = _resume_cli(capsys, stopped)
    msg = "econsim: checkpoint year 3 is damaged (digest mismatch); resuming from year 2"
    assert msg in out.splitlines(), out
    assert "resuming" in out and took < 60
    res = load_run(stopped)
    assert res.status == "completed"
    entry = res.manifest["resumed"][-1]
    assert entry["after_year"] == 2 and entry["damaged_checkpoints"] == [msg.removeprefix("econsim: ")]
    assert_same_run(stopped, reference)  # hours, taxes, rebate, welfare: all as uninterrupted
    # the damaged file was set aside and year 3 written again, good
    assert (stopped / CHECKPOINT_DIR / "year-0003.pkl.damaged").exists()
    assert newest_good_checkpoint(stopped).year == 4 and newest_good_checkpoint(stopped).damaged == []


def test_a_truncated_newest_checkpoint_resumes_from_the_previous_one(stopped, reference, capsys):
    path = checkpoint_path(stopped, 3)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 3])
    out, took = _resume_cli(capsys, stopped)
    assert (f"econsim: checkpoint year 3 is damaged (truncated: {size // 3:,} of {size:,} bytes); "
            "resuming from year 2") in out.splitlines(), out
    assert took < 60
    assert load_run(stopped).status == "completed"
    assert_same_run(stopped, reference)


def test_a_checkpoint_without_its_digest_record_is_not_trusted(stopped, reference, capsys):
    """A kill between the data and its digest record: the year is written again."""
    digest_path(stopped, 3).unlink()
    out, _ = _resume_cli(capsys, stopped)
    assert ("econsim: checkpoint year 3 is incomplete (no digest record: the run stopped while "
            "writing it); resuming from year 2") in out.splitlines(), out
    assert_same_run(stopped, reference)


def test_damage_in_an_older_file_that_newer_ones_need(stopped, reference, capsys):
    """Year 1's file holds objects that years 2 and 3 name: all three are unusable."""
    rec = json.loads(digest_path(stopped, 3).read_text())
    assert rec["needs"] == [0, 1, 2, 3]
    _flip(checkpoint_path(stopped, 1), 0.5)
    out, _ = _resume_cli(capsys, stopped)
    lines = out.splitlines()
    assert ("econsim: checkpoint year 3 is unusable (it needs year 1's checkpoint, which is damaged); "
            "resuming from year 0") in lines, out
    assert "econsim: checkpoint year 1 is damaged (digest mismatch); resuming from year 0" in lines
    assert load_run(stopped).manifest["resumed"][-1]["after_year"] == 0
    assert_same_run(stopped, reference)


def test_no_good_checkpoint_left_is_one_line_exit_2(stopped, capsys):
    for year in finished_years(stopped):
        _flip(checkpoint_path(stopped, year), 0.9)
    before = (stopped / "manifest.json").read_bytes()
    capsys.readouterr()
    assert main(["resume", str(stopped), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"econsim: error: {stopped}: checkpoint year 3 is damaged (digest mismatch); "
                   "no good checkpoint is left (and 3 older)"], err
    assert (stopped / "manifest.json").read_bytes() == before


def test_fork_at_a_damaged_year_names_the_newest_good_one(stopped, capsys, tmp_path):
    _flip(checkpoint_path(stopped, 2), 0.3)
    capsys.readouterr()
    assert main(["fork", str(stopped), "--at-year", "3", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"econsim: error: --at-year 3: checkpoint year 3 of {stopped} is unusable (it needs "
                   "year 2's checkpoint, which is damaged); the newest good one before it is year 1"), err
    assert not (tmp_path / "f").exists()


# --------------------------------------------------------------------------- orphan temporary files
def test_temporary_files_of_a_cut_short_write_are_swept_on_resume(stopped, reference, capsys):
    orphans = [stopped / ".years.parquet.k1l2m3.tmp", stopped / CHECKPOINT_DIR / ".year-0004.pkl.a1b2c3.tmp",
               stopped / CHECKPOINT_DIR / ".year-0004.digest.json.x9y8.tmp"]
    for i, p in enumerate(orphans):
        p.write_bytes(os.urandom(1024) * (1 + 1000 * (i == 1)))  # one of about 1 MB
    total = sum(p.stat().st_size for p in orphans)
    keep = stopped / "my_notes.tmp"  # not a temporary file of ours (no leading dot)
    keep.write_text("kept")
    out, _ = _resume_cli(capsys, stopped)
    assert f"econsim: removed 3 temporary files ({total:,} bytes) left by a write that was cut short" in out
    assert not any(p.exists() for p in orphans) and keep.read_text() == "kept"
    assert load_run(stopped).manifest["resumed"][-1]["temporary_files_removed"] == 3
    keep.unlink()
    assert_same_run(stopped, reference)


# --------------------------------------------------------------------------- linear disk
#: per-agent arrays (400 workers: 3.2 kB each) dominate, as they do at scale
BIG = {"name": "linear", "population": {"size": 400, "source": "census"},
       "workers": {"policy": "rational"}, "planner": {"kind": "saez"},
       "run": {"tax_years": 16, "seed": 2, "steps_per_year": 1}}


def _disk(run_dir: Path, years: int) -> int:
    return sum(checkpoint_path(run_dir, y).stat().st_size + digest_path(run_dir, y).stat().st_size
               for y in range(years))


#: RICH with the verbose worker prompts: their logged samples, which every whole checkpoint
#: repeats, are what makes whole checkpoints grow quadratically (the compact prompts are
#: half as long, too short for the 2.5x margin below at 8 years)
RICH_VERBOSE = {**RICH, "workers": {"policy": "llm", "llm": {**RICH["workers"]["llm"], "prompt_layout": "verbose"}}}


@pytest.mark.parametrize("data,k", [(BIG, 8), (RICH_VERBOSE, 4)], ids=["rational-400", "llm-democracy"])
def test_checkpoint_disk_grows_linearly_with_the_years(tmp_path, data, k):
    out = tmp_path / "run"
    run_scenario(_scenario(data, tax_years=2 * k), out, progress=False, stream=_quiet())
    small, large = _disk(out, k), _disk(out, 2 * k)
    # what whole checkpoints (each year's full state, the old layout) would take: the same
    # states, pickled independently of the store
    whole = [len(pickle.dumps(load_checkpoint(checkpoint_path(out, y))["model"],
                              protocol=pickle.HIGHEST_PROTOCOL)) for y in range(2 * k)]
    whole_ratio = sum(whole) / sum(whole[:k])
    assert whole_ratio > 2.8, whole_ratio  # quadratic: the test can tell the two apart
    assert large / small < 2.3, (large / small, small, large)
    assert large < sum(whole) / 2.5
    # every year after the first adds about the same (its own records and arrays)
    per_year = np.diff([_disk(out, y) for y in range(1, 2 * k + 1)])
    assert per_year.max() < 1.5 * np.median(per_year), per_year


def test_checkpoints_last_are_self_contained_and_verified(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real = EconomyModel.step

    def crash(self):
        if self.year == 3:
            raise RuntimeError("simulated crash")
        real(self)

    data = {**RICH, "output": {"checkpoints": "last"}}
    monkeypatch.setattr(EconomyModel, "step", crash)
    with pytest.raises(RuntimeError):
        run_scenario(_scenario(data), out, progress=False, stream=_quiet())
    monkeypatch.undo()
    assert finished_years(out) == [2]
    assert json.loads(digest_path(out, 2).read_text())["needs"] == [2]
    assert sorted(p.name for p in (out / CHECKPOINT_DIR).iterdir()) == ["year-0002.digest.json", "year-0002.pkl"]
    good = checkpoint_path(out, 2).read_bytes()
    _flip(checkpoint_path(out, 2), 0.25)
    capsys.readouterr()
    assert main(["resume", str(out), "--no-progress"]) == 2
    assert "checkpoint year 2 is damaged (digest mismatch); no good checkpoint is left" in capsys.readouterr().err
    checkpoint_path(out, 2).write_bytes(good)
    ref = tmp_path / "ref"
    run_scenario(_scenario(data), ref, progress=False, stream=_quiet())
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert_same_run(out, ref)


def test_state_with_a_reference_cycle_is_stored_whole_and_loads_with_the_cycle(tmp_path):
    """A state whose lists refer back to themselves cannot be cut into objects stored once;
    that checkpoint is one plain pickle (the cycle and shared references kept), and the
    next year's checkpoint refers to no piece of it."""
    import pickle

    from simulator import __version__
    from simulator.run.state import CHECKPOINT_FORMAT, CheckpointStore, load_checkpoint

    store = CheckpointStore(tmp_path)
    ring = [list(range(40)), "x"]
    ring.append(ring)  # a list that holds itself
    shared = list(range(100))
    state = {"ring": ring, "a": shared, "b": shared}
    payload = {"econsim_checkpoint": CHECKPOINT_FORMAT, "econsim_version": __version__, "year": 0}
    p0 = store.write(payload, state, 0, self_contained=False)
    raw = pickle.loads(p0.read_bytes())
    assert raw["objects"] == {} and raw["needs"] == [0]
    got = load_checkpoint(p0)["model"]
    assert got["ring"][2] is got["ring"] and got["ring"][0] == list(range(40))
    assert got["a"] is got["b"] and got["a"] == shared
    p1 = store.write({**payload, "year": 1}, {"plain": [list(range(40))] * 3}, 1, self_contained=False)
    assert pickle.loads(p1.read_bytes())["needs"] == [1]
    assert load_checkpoint(p1)["model"]["plain"][2] == list(range(40))
