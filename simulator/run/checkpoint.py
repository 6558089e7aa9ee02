"""Checkpoint, resume and fork: a run survives a crash exactly, and any year can branch.

At the end of every tax year the run writes ``RUN_DIR/checkpoints/year-KKKK.pkl`` (the
state after tax year ``K``; written to a temporary file and renamed, so a checkpoint is
either whole or absent).  It holds everything needed to continue:

- the model's arrays and records (hours, expected rebate, last outcome, schedule, yearly
  history, per-agent years, step statistics, notes) and the Mesa step counter;
- the numpy bit-generator state of ``model.rng`` and the state of ``model.random``;
- the ``DataCollector`` contents;
- the state of every stateful object, through the protocol below: the worker policy
  (histories, satisfaction), the planner (memory and log; elections for a democracy)
  and the LLM telemetry counters;
- the scenario and the econsim version, checked when the checkpoint is read.

**The protocol.**  Every object with state that a run needs to continue implements
``checkpoint_state(self) -> dict`` (a picklable snapshot; numpy arrays are fine; never
configuration, which comes from the scenario) and ``restore_state(self, state) -> None``.
An object without the protocol is restarted fresh on resume, with a note.

**Format.**  A checkpoint is a Python pickle: load only checkpoints you trust (a pickle
can run code when read).  A checkpoint from another econsim version, or whose scenario
is not the run's, is refused with one line.

``resume_run(run_dir)`` continues an interrupted or failed run from its last checkpoint;
``fork_run(run_dir, at_year, overrides, out)`` starts a new run from the state after
tax year ``at_year`` with changed settings.  The runner calls :func:`begin` (records the
process, installs SIGTERM/SIGINT handlers), :func:`save_checkpoint` after every tax year
and :func:`mark_interrupted` when a signal stops the run.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO, runtime_checkable

from simulator import __version__
from simulator.errors import UserError
from simulator.results import RunWriter, atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd

    from simulator.config.schema import Scenario
    from simulator.results import RunResults
    from simulator.sim.model import EconomyModel

#: Version of the checkpoint layout (bumped when its keys change).
CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"year-(\d{4,})\.pkl")

#: Statuses from which ``econsim resume`` continues a run.
RESUMABLE = ("interrupted", "failed", "running")


@runtime_checkable
class Stateful(Protocol):
    """What every stateful planner, policy, democracy or telemetry object implements."""

    def checkpoint_state(self) -> dict: ...

    def restore_state(self, state: dict) -> None: ...


# --------------------------------------------------------------------------- signals
class RunInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT stopped a run; the current tax year is abandoned."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopGuard:
    """Turns SIGTERM/SIGINT into :class:`RunInterrupted`, except inside critical sections.

    A signal that arrives while the end-of-year files are written is held until they are
    all on disk, so the run directory always holds whole tax years.  After the first
    signal further ones are ignored while the run winds down.
    """

    def __init__(self) -> None:
        self.pending: int | None = None
        self.depth = 0
        self.fired = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.fired:
            return
        if self.depth:
            self.pending = signum
            return
        self.fired = True
        raise RunInterrupted(signum)

    def install(self) -> StopGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Hold signals until the block has finished."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None and not self.fired:
            self.fired = True
            raise RunInterrupted(self.pending)

    def hold(self) -> None:
        """From now on (the run's last writes) signals are held for good."""
        self.depth += 1


def begin(writer: RunWriter) -> StopGuard:
    """Record this process in the manifest and install the stop-signal handlers."""
    writer.manifest.update(pid=os.getpid(), host=socket.gethostname())
    writer.write_manifest()
    return StopGuard().install()


def mark_interrupted(writer: RunWriter, model: EconomyModel | None, exc: BaseException,
                     stream: TextIO | None = None) -> None:
    """Close the run as ``interrupted``: only whole tax years stay, and say how to resume.

    The current tax year is abandoned: ``years``, ``steps`` and the other tables on disk
    are those of the last checkpoint (written together with it); ``agents`` is written
    for the same years.
    """
    stream = stream or sys.stderr
    done = finished_years(writer.dir)
    n_done = done[-1] + 1 if done else 0
    if model is not None and model.settings.output.agents_table and n_done:
        from simulator.run.agent_sample import agents_table

        writer.write_table("agents", agents_table(model, n_done))
    why = f"signal {exc.args[0]}" if isinstance(exc, RunInterrupted) else "interrupted by the user"
    total = model.settings.run.tax_years if model is not None else writer.manifest.get("scenario", {}).get(
        "run", {}).get("tax_years", "?")
    if done:
        reason = (f"{why}: stopped after tax year {done[-1]} ({n_done} of {total} years kept); "
                  f"continue with: econsim resume {writer.dir}")
    elif model is not None and model.settings.output.checkpoints == "off":
        reason = f"{why}: stopped (output.checkpoints is off, so it cannot be resumed)"
    else:
        reason = f"{why}: stopped before the first tax year ended (nothing to resume)"
    writer.manifest["years_completed"] = n_done
    writer.finish("interrupted", reason, notes=getattr(model, "notes", []))
    print(f"econsim: {reason}", file=stream)


# --------------------------------------------------------------------------- saving
def checkpoint_path(run_dir: str | Path, year: int) -> Path:
    """Where the state after tax year ``year`` is kept."""
    return Path(run_dir) / CHECKPOINT_DIR / f"year-{year:04d}.pkl"


def finished_years(run_dir: str | Path) -> list[int]:
    """Tax years with a checkpoint in ``run_dir``, ascending."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name)))


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _component(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    fn = getattr(obj, "checkpoint_state", None)
    return {"class": _qualname(obj), "state": fn() if fn is not None else None}


def model_state(model: EconomyModel) -> dict[str, Any]:
    """Everything the model needs to continue after the current tax year."""
    dc = model.datacollector
    return {
        "year": model.year,
        "step_in_year": model.step_in_year,
        "hours": model.hours.copy(),
        "expected_rebate": model.expected_rebate,
        "outcome": model.outcome,
        "schedule": model.schedule,
        "planner_schedule": model.planner.schedule,
        "history": model.history,
        "agent_years": model.agent_years,
        "step_stats": dict(model.step_stats),
        "notes": list(model.notes),
        "rng": model.rng.bit_generator.state,
        "random": model.random.getstate(),
        "mesa_steps": getattr(model, "steps", None),
        "datacollector": {
            name: getattr(dc, name)
            for name in ("model_vars", "_agent_records", "_agenttype_records", "tables")
            if hasattr(dc, name)
        },
        "policy": _component(model.policy),
        "planner": _component(model.planner.strategy),
        "telemetry": _component(model.telemetry),
        "health": _component(getattr(model, "health", None)),
    }


def _scenario_json(scenario: Scenario | dict) -> dict:
    data = scenario if isinstance(scenario, dict) else scenario.model_dump(mode="json")
    return json.loads(json.dumps(data, default=str))


def save_checkpoint(model: EconomyModel, writer: RunWriter) -> Path | None:
    """Write the checkpoint of the tax year just finished (atomically); prune per the scenario."""
    keep = model.settings.output.checkpoints
    if keep == "off":
        return None
    year = model.year - 1
    payload = {
        "econsim_checkpoint": CHECKPOINT_FORMAT,
        "econsim_version": __version__,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "year": year,
        "scenario": _scenario_json(model.settings),
        "model": model_state(model),
    }
    path = checkpoint_path(writer.dir, year)
    path.parent.mkdir(exist_ok=True)
    atomic_write_bytes(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    if keep == "last":
        for old in finished_years(writer.dir):
            if old != year:
                checkpoint_path(writer.dir, old).unlink(missing_ok=True)
    writer.manifest["checkpoint"] = str(path.relative_to(writer.dir))
    return path


# --------------------------------------------------------------------------- loading
def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (a pickle: only load checkpoints you trust); check its version."""
    path = Path(path)
    try:
        data = pickle.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # noqa: BLE001 - anything unreadable is one user-facing line
        raise UserError(f"{path}: not a readable econsim checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("econsim_checkpoint") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an econsim checkpoint of format {CHECKPOINT_FORMAT}")
    if data.get("econsim_version") != __version__:
        raise UserError(
            f"{path}: written by econsim {data.get('econsim_version')}, this is econsim "
            f"{__version__}; a checkpoint only continues with the version that wrote it"
        )
    return data


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _check_scenario(ckpt: dict, manifest: dict, path: Path) -> None:
    diff = _diff_keys(_scenario_json(ckpt["scenario"]), _scenario_json(manifest.get("scenario", {})))
    if diff:
        shown = ", ".join(diff[:3]) + (", ..." if len(diff) > 3 else "")
        raise UserError(
            f"{path}: the checkpoint belongs to another scenario than this run's manifest "
            f"(differs in {shown}); refusing to continue"
        )


def _same_objective(ckpt: dict, scenario: Scenario) -> bool:
    old = _scenario_json(ckpt["scenario"]).get("planner", {}).get("objective")
    return old == _scenario_json(scenario)["planner"]["objective"]


def restore_model(model: EconomyModel, ckpt: dict[str, Any]) -> list[str]:
    """Put a freshly built model into the checkpoint's state; returns notes on what
    started afresh (a fork that changed the planner, its objective or the worker policy).

    The planner is restored when it is of the same class and the objective is unchanged;
    the worker policy when it is of the same class (its options come from the scenario).
    """
    st = ckpt["model"]
    notes: list[str] = []
    model.year = st["year"]
    model.step_in_year = st["step_in_year"]
    model.hours = st["hours"].copy()
    model.expected_rebate = st["expected_rebate"]
    model.outcome = st["outcome"]
    model.schedule = st["schedule"]
    model.planner.schedule = st["planner_schedule"]
    model.history = list(st["history"])
    model.agent_years = list(st["agent_years"])
    model.step_stats = dict(st["step_stats"])
    for note in st["notes"]:
        model.note(note)
    model.rng.bit_generator.state = st["rng"]
    model.random.setstate(st["random"])
    if st["mesa_steps"] is not None:
        try:
            model.steps = st["mesa_steps"]
        except AttributeError:  # a Mesa whose step counter is read-only
            pass
    dc = model.datacollector
    for name, value in st["datacollector"].items():
        if name == "model_vars":
            for key, values in value.items():
                dc.model_vars[key] = list(values)
        elif hasattr(dc, name):
            setattr(dc, name, value)

    def put(obj: Any, saved: dict | None, what: str, allowed: bool) -> None:
        if saved is None:
            return
        if not allowed or saved["class"] != _qualname(obj):
            notes.append(f"{what} starts afresh after tax year {ckpt['year']} (changed in this fork)")
        elif saved["state"] is None or not hasattr(obj, "restore_state"):
            notes.append(f"{what} ({saved['class']}) keeps no checkpoint state: restarted fresh")
        else:
            obj.restore_state(saved["state"])

    put(model.policy, st["policy"], "the worker policy", True)
    put(model.planner.strategy, st["planner"], "the planner", _same_objective(ckpt, model.settings))
    if st["telemetry"] is not None and st["telemetry"]["state"] is not None:
        tel = getattr(model.llm, "telemetry", None)  # builds the language model now
        if tel is not None:
            tel.restore_state(st["telemetry"]["state"])
    saved_health = st.get("health")
    if saved_health is not None and saved_health["state"] is not None and hasattr(model, "health"):
        model.health.restore_state(saved_health["state"])  # after the telemetry: it indexes its records
    return notes


# --------------------------------------------------------------------------- resume / fork
@dataclass
class RunStart:
    """How :func:`simulator.run.runner.run_scenario` starts a resumed or forked run."""

    writer: RunWriter
    make_model: Callable[[Any], EconomyModel]


def _read_manifest(run_dir: Path) -> dict:
    man = run_dir / "manifest.json"
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if not man.exists():
        if (run_dir / "experiment.json").exists():  # an experiment (compare:, sweep:, seeds)
            raise UserError(
                f"{run_dir}: an experiment, not one run; run the same `econsim run` command "
                "again with this --out: finished runs are kept, and interrupted or failed ones "
                "continue from their checkpoints (or resume one of its runs/<variant>/seed-<s>)"
            )
        variants = sorted(p.name for p in run_dir.iterdir() if (p / "manifest.json").exists())
        if variants:  # the root of a compare: run, one run directory per variant
            raise UserError(
                f"{run_dir}: a comparison, not one run; resume or fork a variant's directory "
                f"({', '.join(str(run_dir / v) for v in variants)}); variants that never started "
                "need the comparison run again into a new --out"
            )
        raise UserError(f"{run_dir}: not a run directory (no manifest.json)")
    try:
        return json.loads(man.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{man}: cannot read the manifest ({exc})") from None


def _no_checkpoint(run_dir: Path, manifest: dict) -> UserError:
    if manifest.get("scenario", {}).get("output", {}).get("checkpoints") == "off":
        return UserError(f"{run_dir}: the run was made with output.checkpoints: off, so it has no checkpoint")
    return UserError(
        f"{run_dir}: no checkpoint (the run stopped before its first tax year ended); "
        f"start it again with econsim run (--out refuses an existing run: delete {run_dir} first "
        "or choose another --out)"
    )


def _scenario_from_manifest(manifest: dict, source: str, overrides: list[str] | None = None) -> Scenario:
    from simulator.config.loading import scenario_from_dict

    return scenario_from_dict(copy.deepcopy(manifest.get("scenario", {})), source, overrides)


def _process_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _population(run_dir: Path) -> pd.DataFrame:
    from simulator.results import read_parquet_checked

    path = run_dir / "population.parquet"
    if not path.exists():
        raise UserError(f"{run_dir}: population.parquet is missing; cannot continue the run")
    return read_parquet_checked(path)


def resume_run(
    run_dir: str | Path,
    *,
    progress: bool | None = None,
    llm: Any = None,
    stream: TextIO | None = None,
) -> RunResults:
    """Continue an interrupted or failed run from its last checkpoint, in the same directory.

    The result equals an uninterrupted run with the same seed in every column of every
    table but timing (and cache-hit counts, when the cache answered differently).
    Raises :class:`UserError` (one line) for a directory without a checkpoint, a
    completed run, a run still going, or a checkpoint of another version or scenario.
    """
    from simulator.run.runner import run_scenario
    from simulator.sim.model import EconomyModel

    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    status = manifest.get("status")
    if status not in RESUMABLE:
        raise UserError(
            f"{run_dir}: the run is {status}; nothing to resume (econsim fork continues it with other settings)"
        )
    if (status == "running" and manifest.get("host") == socket.gethostname()
            and manifest.get("pid") != os.getpid() and _process_alive(manifest.get("pid"))):
        raise UserError(f"{run_dir}: the run is still going (process {manifest['pid']}); stop it first")
    years = finished_years(run_dir)
    if not years:
        raise _no_checkpoint(run_dir, manifest)
    path = checkpoint_path(run_dir, years[-1])
    ckpt = load_checkpoint(path)
    _check_scenario(ckpt, manifest, path)
    scenario = _scenario_from_manifest(manifest, str(run_dir / "manifest.json"))
    population = _population(run_dir)
    writer = RunWriter.reopen(run_dir)
    writer.manifest.setdefault("resumed", []).append(
        {"at": datetime.now(UTC).isoformat(timespec="seconds"), "after_year": ckpt["year"],
         "previous_status": status, "command": " ".join(sys.argv)}
    )
    writer.manifest.update(status="running", reason=None, finished=None)
    if "population.parquet" not in writer.manifest["files"]:  # killed before the manifest listed it
        writer.manifest["files"].append("population.parquet")

    def make_model(llm_: Any) -> EconomyModel:
        model = EconomyModel(scenario, population, llm=llm_, run_dir=run_dir,
                             agent_objects=scenario.run.mesa_agents)
        for note in restore_model(model, ckpt):
            model.note(note)
        return model

    print(f"econsim: resuming {run_dir} after tax year {ckpt['year']} "
          f"({ckpt['year'] + 1} of {scenario.run.tax_years} years done)", file=stream or sys.stdout)
    return run_scenario(scenario, run_dir, progress=progress, llm=llm, stream=stream,
                        start=RunStart(writer, make_model))


def _shared_history_change(old: Scenario, new: Scenario) -> str | None:
    from simulator.config.builders import build_base_schedule

    if _scenario_json(old.population) != _scenario_json(new.population):
        return "population"
    if old.run.seed != new.run.seed:
        return "run.seed"
    a, b = build_base_schedule(old), build_base_schedule(new)
    if tuple(a.thresholds) != tuple(b.thresholds) or a.deduction != b.deduction:
        return "tax"
    return None


def fork_run(
    parent_dir: str | Path,
    at_year: int,
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    *,
    progress: bool | None = None,
    llm: Any = None,
    stream: TextIO | None = None,
) -> RunResults:
    """A new run in ``out_dir`` from ``parent_dir``'s state after tax year ``at_year``,
    with the scenario changed by ``overrides`` (``key=value``).

    The fork's tables hold the shared years ``0..at_year`` and its own years after; its
    manifest records ``parent`` (directory, fork year, changes).  With no overrides it
    continues exactly like its parent.  Changing the population, the seed or the bracket
    thresholds is refused (they would change the shared history); so is a fork year
    without a checkpoint.  Nothing is written when the input is refused.
    """
    from simulator.run.runner import run_scenario
    from simulator.sim.model import EconomyModel

    overrides = list(overrides or [])
    parent = Path(parent_dir)
    manifest = _read_manifest(parent)
    years = finished_years(parent)
    if not years:
        raise _no_checkpoint(parent, manifest)
    if at_year not in years:
        have = (f"{years[0]}..{years[-1]}" if years == list(range(years[0], years[-1] + 1))
                else ", ".join(map(str, years)))
        raise UserError(f"--at-year {at_year}: {parent} has checkpoints for tax years {have}")
    source = str(parent / "manifest.json")
    old = _scenario_from_manifest(manifest, source)
    new = _scenario_from_manifest(manifest, source, overrides)
    changed = _shared_history_change(old, new)
    if changed is not None:
        blame = [t for t in overrides if t.split("=", 1)[0].strip().startswith(changed)]
        what = {"population": "the population", "run.seed": "the seed",
                "tax": "the tax brackets"}[changed]
        raise UserError(
            f"--set {blame[-1] if blame else changed}: a fork shares its parent's history up to tax "
            f"year {at_year}, so it cannot change {what}"
        )
    if new.compare:
        raise UserError("--set compare: a fork is one run; fork each variant's run directory instead")
    from simulator.sim.planners.search import check_scenario

    check_scenario(new, f"--set {' '.join(overrides)}")  # search planners: is any schedule feasible?
    if new.run.tax_years <= at_year + 1:
        raise UserError(
            f"the fork has no tax year to run: run.tax_years is {new.run.tax_years} and it starts "
            f"after year {at_year}; add --set run.tax_years=N with N > {at_year + 1}"
        )
    if out_dir is None:
        raise UserError("fork needs --out NEW_RUN_DIR")
    out = Path(out_dir)
    if out.resolve() == parent.resolve():
        raise UserError(f"--out {out}: is the parent run itself; choose a new directory")
    if (out / "manifest.json").exists():
        raise UserError(f"{out} already holds a run (manifest.json); choose another --out or delete it")
    path = checkpoint_path(parent, at_year)
    ckpt = load_checkpoint(path)
    _check_scenario(ckpt, manifest, path)
    population = _population(parent)
    new = new.model_copy(update={"output": new.output.model_copy(update={"dir": out})})
    writer = RunWriter(out, new.model_dump(mode="json"), new.run.seed)
    writer.manifest["parent"] = {"run_dir": str(parent.resolve()), "fork_year": at_year,
                                 "set": overrides}
    writer.write_table("population", population)

    def make_model(llm_: Any) -> EconomyModel:
        model = EconomyModel(new, population, llm=llm_, run_dir=out, agent_objects=new.run.mesa_agents)
        for note in restore_model(model, ckpt):
            model.note(note)
        save_checkpoint(model, writer)  # the fork can be resumed (and forked) from its start
        if new.validity_gate and list(new.validity_gate) != list(old.validity_gate):
            from simulator.validity.gate import enforce_gate

            enforce_gate(model, out, progress=progress)  # a gate the fork adds is checked now
        return model

    print(f"econsim: forking {parent} after tax year {at_year} into {out}"
          + (f" with {' '.join(overrides)}" if overrides else " (no changes)"), file=stream or sys.stdout)
    return run_scenario(new, out, progress=progress, llm=llm, stream=stream,
                        start=RunStart(writer, make_model))


__all__ = [
    "CHECKPOINT_FORMAT", "RunInterrupted", "RunStart", "Stateful", "StopGuard", "begin",
    "checkpoint_path", "finished_years", "fork_run", "load_checkpoint", "mark_interrupted",
    "model_state", "restore_model", "resume_run", "save_checkpoint",
]
