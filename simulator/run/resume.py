"""``econsim resume`` and ``econsim fork``: continue a run from its checkpoints.

``resume_run(run_dir)`` continues an interrupted or failed run from its last checkpoint;
``fork_run(run_dir, at_year, overrides, out)`` starts a new run from the state after
tax year ``at_year`` with changed settings.  Both build a fresh model, put it into the
checkpoint's state (``EconomyModel.restore_state``) and hand it to the runner.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from simulator.config.builders import build_base_schedule
from simulator.config.loading import scenario_from_dict
from simulator.config.schema import Scenario
from simulator.errors import UserError
from simulator.results import RunWriter, read_parquet_checked
from simulator.run.lock import lock_run_dir
from simulator.run.runner import RunStart, check_out_dir, run_scenario
from simulator.run.state import (
    CheckpointStore,
    check_year,
    checkpoint_path,
    finished_years,
    load_checkpoint,
    newest_good_checkpoint,
    same_objective,
    save_checkpoint,
    scenario_json,
    set_aside,
    sweep_temporary_files,
)
from simulator.sim.model import EconomyModel
from simulator.sim.planners.search import check_scenario as check_search_scenario
from simulator.validity.gate import enforce_gate

if TYPE_CHECKING:
    import pandas as pd

    from simulator.results import RunResults

#: Statuses from which ``econsim resume`` continues a run.
RESUMABLE = ("interrupted", "failed", "running")


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
    return scenario_from_dict(copy.deepcopy(manifest.get("scenario", {})), source, overrides)


def _process_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _population(run_dir: Path) -> pd.DataFrame:
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
    completed run, a run still going (its lock held: :class:`~simulator.errors.RunLocked`),
    or a checkpoint of another version or scenario.  A damaged newest checkpoint (digest
    mismatch, truncated, no digest record) is reported and set aside (``*.damaged``), and
    the run continues from the newest good one; temporary files of a write cut short are
    removed first.
    """
    run_dir = Path(run_dir)
    _read_manifest(run_dir)  # a run directory? (nothing is created before this)
    with lock_run_dir(run_dir):  # raises RunLocked at once while another process writes it
        return _resume_locked(run_dir, progress=progress, llm=llm, stream=stream or sys.stdout)


def _resume_locked(run_dir: Path, *, progress: bool | None, llm: Any, stream: TextIO) -> RunResults:
    manifest = _read_manifest(run_dir)  # again, now that no one else writes it
    status = manifest.get("status")
    if status not in RESUMABLE:
        raise UserError(
            f"{run_dir}: the run is {status}; nothing to resume (econsim fork continues it with other settings)"
        )
    if (status == "running" and manifest.get("host") == socket.gethostname()
            and manifest.get("pid") != os.getpid() and _process_alive(manifest.get("pid"))):
        raise UserError(f"{run_dir}: the run is still going (process {manifest['pid']}); stop it first")
    swept, swept_bytes = sweep_temporary_files(run_dir)  # a kill mid-write left them
    if not finished_years(run_dir):
        raise _no_checkpoint(run_dir, manifest)
    found = newest_good_checkpoint(run_dir)
    if found.year is None:
        raise UserError(f"{run_dir}: {found.messages()[0]}"
                        + (f" (and {len(found.damaged) - 1} older)" if len(found.damaged) > 1 else ""))
    path = checkpoint_path(run_dir, found.year)
    ckpt = load_checkpoint(path, manifest)
    scenario = _scenario_from_manifest(manifest, str(run_dir / "manifest.json"))
    population = _population(run_dir)
    writer = RunWriter.reopen(run_dir)
    for line in found.messages():
        print(f"econsim: {line}", file=stream)
    set_aside(run_dir, [y for y, _ in found.damaged])  # the resumed run writes those years again
    entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "after_year": ckpt["year"],
             "previous_status": status, "command": " ".join(sys.argv)}
    if found.damaged:
        entry["damaged_checkpoints"] = found.messages()
    if swept:
        entry["temporary_files_removed"] = swept
        print(f"econsim: removed {swept} temporary file{'s' * (swept > 1)} ({swept_bytes:,} bytes) "
              "left by a write that was cut short", file=stream)
    writer.manifest.setdefault("resumed", []).append(entry)
    writer.manifest.update(status="running", reason=None, finished=None)
    if "population.parquet" not in writer.manifest["files"]:  # killed before the manifest listed it
        writer.manifest["files"].append("population.parquet")

    def make_model(llm_: Any) -> EconomyModel:
        model = EconomyModel(scenario, population, llm=llm_, run_dir=run_dir,
                             agent_objects=scenario.run.mesa_agents)
        for note in model.restore_state(ckpt["model"], after_year=ckpt["year"],
                                        planner_too=same_objective(ckpt, model.settings)):
            model.note(note)
        return model

    print(f"econsim: resuming {run_dir} after tax year {ckpt['year']} "
          f"({ckpt['year'] + 1} of {scenario.run.tax_years} years done)", file=stream)
    return run_scenario(scenario, run_dir, progress=progress, llm=llm, stream=stream,
                        start=RunStart(writer, make_model, CheckpointStore.open(run_dir, found.year)))


def _shared_history_change(old: Scenario, new: Scenario) -> str | None:
    if scenario_json(old.population) != scenario_json(new.population):
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
    check_search_scenario(new, f"--set {' '.join(overrides)}")  # search planners: is any schedule feasible?
    if new.run.tax_years <= at_year + 1:
        raise UserError(
            f"the fork has no tax year to run: run.tax_years is {new.run.tax_years} and it starts "
            f"after year {at_year}; add --set run.tax_years=N with N > {at_year + 1}"
        )
    if out_dir is None:
        raise UserError("fork needs --out NEW_RUN_DIR")
    check_out_dir(out_dir, "--out")
    out = Path(out_dir)
    if out.resolve() == parent.resolve():
        raise UserError(f"--out {out}: is the parent run itself; choose a new directory")
    if (out / "manifest.json").exists():
        raise UserError(f"{out} already holds a run (manifest.json); choose another --out or delete it")
    if (why := check_year(parent, at_year)) is not None:
        good = newest_good_checkpoint(parent, upto=at_year).year
        raise UserError(f"--at-year {at_year}: checkpoint year {at_year} of {parent} is {why}"
                        + (f"; the newest good one before it is year {good}" if good is not None else ""))
    path = checkpoint_path(parent, at_year)
    ckpt = load_checkpoint(path, manifest)
    population = _population(parent)
    new = new.model_copy(update={"output": new.output.model_copy(update={"dir": out})})
    existed = out.exists()
    with lock_run_dir(out) as lock:  # raises RunLocked at once while another process writes it
        try:
            writer = RunWriter(out, new.model_dump(mode="json"), new.run.seed)
        except BaseException:
            lock.release(unlink=not existed)
            if not existed:
                try:
                    out.rmdir()
                except OSError:
                    pass
            raise
        writer.created_dir = not existed
        return _fork_locked(parent, at_year, overrides, out, old, new, ckpt, population, writer,
                            progress=progress, llm=llm, stream=stream)


def _fork_locked(parent: Path, at_year: int, overrides: list[str], out: Path, old: Scenario,
                 new: Scenario, ckpt: dict, population: pd.DataFrame, writer: RunWriter, *,
                 progress: bool | None, llm: Any, stream: TextIO | None) -> RunResults:
    writer.manifest["parent"] = {"run_dir": str(parent.resolve()), "fork_year": at_year,
                                 "set": overrides}
    writer.write_table("population", population)

    def make_model(llm_: Any) -> EconomyModel:
        model = EconomyModel(new, population, llm=llm_, run_dir=out, agent_objects=new.run.mesa_agents)
        for note in model.restore_state(ckpt["model"], after_year=ckpt["year"],
                                        planner_too=same_objective(ckpt, model.settings)):
            model.note(note)
        save_checkpoint(model, writer, store)  # the fork can be resumed (and forked) from its start
        if new.validity_gate and list(new.validity_gate) != list(old.validity_gate):
            enforce_gate(model, out, progress=progress)  # a gate the fork adds is checked now
        return model

    print(f"econsim: forking {parent} after tax year {at_year} into {out}"
          + (f" with {' '.join(overrides)}" if overrides else " (no changes)"), file=stream or sys.stdout)
    store = CheckpointStore(out)
    return run_scenario(new, out, progress=progress, llm=llm, stream=stream,
                        start=RunStart(writer, make_model, store))
