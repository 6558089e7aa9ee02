"""What the 0.2 re-layout added: old module paths forwarding with a warning, the planner
and backend registries, the typed year record, the declared hooks, and the checkpoint
format check."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from simulator import __version__, _legacy
from simulator.config.planners import PLANNER_KINDS, planner_kind
from simulator.config.schema import PlannerConfig
from simulator.errors import UserError
from simulator.llm.registry import BACKENDS, BackendSpec, backend_spec
from simulator.run.state import CHECKPOINT_FORMAT, load_checkpoint
from simulator.sim.model import EconomyModel
from simulator.sim.planners.base import Planner
from simulator.sim.stats import YearStats
from simulator.sim.workers.base import WorkerPolicy


# --------------------------------------------------------------------------- old paths
def test_every_old_module_path_imports_with_a_deprecation_warning():
    """In a fresh interpreter: each old path's import warns naming its new home, and
    every public name of its first new module is the very same object through it."""
    code = textwrap.dedent("""
        import importlib, warnings
        from simulator._legacy import MOVED
        bad = []
        for old_name, targets in sorted(MOVED.items()):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                old = importlib.import_module(old_name)
            msgs = [str(w.message) for w in seen if issubclass(w.category, DeprecationWarning)]
            if not any(old_name in m and targets[0] in m for m in msgs):
                bad.append((old_name, "no warning naming the new module", msgs))
            new = importlib.import_module(targets[0])
            names = [n for n in dir(new) if not n.startswith("_")]
            if not names or any(getattr(old, n) is not getattr(new, n) for n in names):
                bad.append((old_name, "names differ"))
            try:
                old.no_such_name_anywhere
                bad.append((old_name, "unknown attribute resolved"))
            except AttributeError as exc:
                if targets[0] not in str(exc):
                    bad.append((old_name, str(exc)))
        assert not bad, bad
        print(len(MOVED))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) == len(_legacy.MOVED) >= 20


def test_names_that_left_a_split_module_are_found_in_their_new_modules():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simulator.checkpoint as old_ckpt
        import simulator.model as old_model
        import simulator.scenario as old_scenario
    from simulator.config.builders import build_base_schedule
    from simulator.config.loading import load_scenario
    from simulator.config.pooling import POOLING_BASE_COLUMNS
    from simulator.run.resume import resume_run
    from simulator.run.signals import StopGuard

    assert old_model.build_base_schedule is build_base_schedule
    assert old_scenario.load_scenario is load_scenario
    assert old_scenario.POOLING_BASE_COLUMNS is POOLING_BASE_COLUMNS
    assert old_ckpt.resume_run is resume_run and old_ckpt.StopGuard is StopGuard


# --------------------------------------------------------------------------- planner registry
def test_planner_kinds_are_the_registry(make_scenario):
    """The schema accepts exactly the registered kinds; each builds a Planner of its own kind."""
    literal = PlannerConfig.model_fields["kind"].annotation.__args__
    assert tuple(literal) == tuple(PLANNER_KINDS)
    extra = {"fixed": {"rates": [0.1] * 7}, "grid": {"schedules": [[0.2] * 7]}}
    for name, kind in PLANNER_KINDS.items():
        cls = kind.load()
        assert issubclass(cls, Planner), name
        if kind.uses_llm:
            continue
        sc = make_scenario(population={"size": 30}, planner={"kind": name, **extra.get(name, {})})
        model = EconomyModel(sc, agent_objects=False)
        assert type(model.planner.strategy) is cls
        assert model.planner.kind == (name if cls.__name__ == "FixedPlanner" else cls.kind)
    with pytest.raises(ValueError, match="unknown planner kind 'nope'.*fixed"):
        planner_kind("nope")


def test_planner_cross_checks_come_from_the_registry(make_scenario):
    with pytest.raises(UserError, match="planner kind 'fixed' needs planner.rates"):
        make_scenario(planner={"kind": "fixed"})
    with pytest.raises(UserError, match="planner kind 'grid' needs planner.schedules"):
        make_scenario(planner={"kind": "grid"})


def test_docs_list_every_planner_kind_and_backend():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    scenarios = (docs / "scenarios.md").read_text()
    assert [k for k in PLANNER_KINDS if f"`{k}`" not in scenarios and f"kind: {k}" not in scenarios] == []
    inference = (docs / "inference.md").read_text()
    assert [b for b in BACKENDS if b not in inference] == []


# --------------------------------------------------------------------------- backend registry
def test_unknown_backend_and_missing_extra_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"unknown llm backend 'nope' \(embedded, openai, vllm, scripted\)"):
        backend_spec("nope")
    (tmp_path / "fake_backend_mod.py").write_text("import no_such_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = BackendSpec("fake_backend_mod", "a test", extra="fake", requires="fake-dist")
    with pytest.raises(UserError) as err:
        spec.load("fake")
    assert str(err.value) == "llm.backend fake needs the optional dependency fake-dist: pip install 'econsim[fake]'"
    # a core backend that fails to import is a bug, not a user error
    with pytest.raises(ModuleNotFoundError):
        BackendSpec("fake_backend_mod", "core").load("core")


# --------------------------------------------------------------------------- year record
def test_year_stats_sum_set_order_and_state():
    s = YearStats()
    s.add(fallbacks=2, worker_replies=10)
    s.set(pool_cells=4.0, label="held fixed")
    s.add(fallbacks=3.5)
    s.set(pool_cells=5.0)
    assert list(s) == ["fallbacks", "worker_replies", "pool_cells", "label"]
    assert s.as_dict() == {"fallbacks": 5.5, "worker_replies": 10.0, "pool_cells": 5.0, "label": "held fixed"}
    assert s.get("missing", 0.0) == 0.0 and len(s) == 4
    t = YearStats()
    t.restore_state(pickle.loads(pickle.dumps(s.checkpoint_state())))
    assert t.as_dict() == s.as_dict()


# --------------------------------------------------------------------------- declared hooks
class ConstantHours(WorkerPolicy):
    """A policy that implements only the two required methods."""

    name = "constant"

    def decide(self, model):
        return np.full(model.n_workers, 30.0)

    def respond(self, model, schedule, rebate=None):
        return model.wages * 30.0


def test_a_policy_with_only_decide_and_respond_runs_on_the_declared_defaults(make_scenario):
    model = EconomyModel(make_scenario(population={"size": 40}), agent_objects=False)
    model.policy = ConstantHours()
    rec = model.run_year()
    assert rec["mean_hours"] == pytest.approx(30.0)
    assert rec["welfare_on"] == "raw" and model.policy.tables(model) == {}
    with pytest.raises(NotImplementedError):
        WorkerPolicy().decide(model)


def test_model_state_round_trip_continues_like_the_original(make_scenario):
    sc = make_scenario(population={"size": 60}, planner={"kind": "saez"}, run={"tax_years": 4})
    a = EconomyModel(sc, agent_objects=False)
    a.run(years=2)
    state = pickle.loads(pickle.dumps(a.checkpoint_state()))
    b = EconomyModel(sc, agent_objects=False)
    assert b.restore_state(state, after_year=1) == []
    a.run(years=2)
    b.run(years=2)
    assert a.years_frame().equals(b.years_frame())
    assert a.datacollector.get_model_vars_dataframe().equals(b.datacollector.get_model_vars_dataframe())


# --------------------------------------------------------------------------- checkpoint format
def test_a_checkpoint_of_the_old_layout_is_refused_naming_its_version(tmp_path):
    path = tmp_path / "year-0000.pkl"
    path.write_bytes(pickle.dumps({"econsim_checkpoint": 1, "econsim_version": "0.1.0", "model": {}}))
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    line = str(err.value)
    assert "\n" not in line
    assert f"written by econsim 0.1.0 (checkpoint format 1), this is econsim {__version__} (format {CHECKPOINT_FORMAT})" in line
