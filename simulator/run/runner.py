"""The ``econsim run`` pipeline: scenario -> model -> run directory -> summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
from tqdm import tqdm

from simulator.config.schema import Scenario
from simulator.errors import UserError
from simulator.results import RunResults, RunWriter, load_run
from simulator.run import agent_sample
from simulator.run.lock import LOCK_NAME, RunDirLock, lock_file
from simulator.run.signals import begin, mark_interrupted
from simulator.run.state import CheckpointStore, save_checkpoint
from simulator.sim.health import RunFailed
from simulator.sim.model import EconomyModel
from simulator.sim.progress import year_line
from simulator.validity.gate import enforce_gate


@dataclass
class RunStart:
    """How :func:`run_scenario` starts a resumed or forked run (see :mod:`simulator.run.resume`)."""

    writer: RunWriter
    make_model: Callable[[Any], EconomyModel]
    #: the run's stored checkpoint objects (None: read from the run directory)
    store: CheckpointStore | None = None


def check_out_dir(path: str | Path, label: str = "output directory", *, contents: bool = True) -> None:
    """Refuse an output directory that is not a run's own: the current directory (``''``,
    ``.``, or any path resolving to it) and, with ``contents``, an existing non-empty
    directory that is not an econsim run (no ``manifest.json``), whose files a run would
    mix with its own.  One :class:`UserError` line naming ``label`` (e.g. ``--out``).
    An existing run or experiment is left to :class:`~simulator.results.RunWriter`, which
    refuses it with its own line."""
    text = str(path)
    if not text.strip():
        raise UserError(f"{label} '': empty; a run needs a directory of its own (e.g. {label} runs/NAME)")
    p = Path(path)
    try:
        here = p.resolve() == Path.cwd().resolve()
    except OSError:
        here = False
    if here:
        raise UserError(f"{label} {text}: is the current directory; a run needs a directory of "
                        f"its own (e.g. {label} runs/NAME)")
    if not contents or not p.is_dir():
        return
    if (p / "manifest.json").exists() or (p / "experiment.json").exists():
        return
    others = sorted(e.name for e in p.iterdir() if e.name != LOCK_NAME)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise UserError(f"{label} {text}: not empty and not an econsim run (no manifest.json; "
                        f"holds {shown}); choose a new or empty directory")


def default_run_dir(scenario: Scenario) -> Path:
    if scenario.output.dir is not None:
        return Path(scenario.output.dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scenario.name}-{stamp}"


SUMMARY_COLUMNS = (
    ("year", "year", "{:d}"),
    ("objective", "objective", "{:.4g}"),
    ("revenue", "revenue $/yr", "{:,.0f}"),
    ("mean_hours", "hours/wk", "{:.1f}"),
    ("gini_post_tax", "Gini post", "{:.3f}"),
    ("fallback_rate", "fallback", "{:.0%}"),
    ("llm_requests", "LLM calls", "{:,.0f}"),
    ("llm_cache_hits", "cache hits", "{:,.0f}"),
    ("llm_latency_p50_s", "p50 s", "{:.2f}"),
)


def summary_table(years: pd.DataFrame, rate_columns: bool = True) -> str:
    """A plain-text table of the per-year outcomes."""
    cols = [(k, h, f) for k, h, f in SUMMARY_COLUMNS if k in years.columns]
    rate_cols = [c for c in years.columns if c.startswith("rate_")] if rate_columns else []
    header = [h for _, h, _ in cols] + ["rates %"] * bool(rate_cols)
    rows = []
    for _, r in years.iterrows():
        cells = []
        for k, _, f in cols:
            v = r[k]
            try:
                cells.append(f.format(int(v) if f == "{:d}" else float(v)))
            except (TypeError, ValueError):
                cells.append("-")
        if rate_cols:
            cells.append("/".join(f"{100 * r[c]:.0f}" for c in rate_cols))
        rows.append(cells)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def run_scenario(
    scenario: Scenario,
    out_dir: str | Path | None = None,
    *,
    progress: bool | None = None,
    llm: Any = None,
    stream: TextIO | None = None,
    start: RunStart | None = None,
) -> RunResults:
    """Run a scenario to completion and write its run directory.

    Results and a checkpoint are saved after every tax year; if the run fails or is
    interrupted the manifest records why, the years completed so far stay readable and
    ``econsim resume`` continues it.  ``start`` (from :mod:`simulator.run.resume`)
    continues a resumed or forked run instead of starting a new one.

    The run holds its directory's lock (:mod:`simulator.run.lock`) for the whole write:
    a second writer of the same directory fails at once with
    :class:`~simulator.errors.RunLocked`; the current directory and a non-empty
    directory that is not a run are refused (:func:`check_out_dir`).
    """
    stream = stream or sys.stdout
    if out_dir is not None and start is None:
        check_out_dir(out_dir)
    run_dir = Path(out_dir) if out_dir is not None else default_run_dir(scenario)
    existed = run_dir.exists()
    had_lock_file = lock_file(run_dir).exists()
    lock = RunDirLock(run_dir).acquire()  # re-entrant: resume, fork and experiments hold it already
    try:
        if start is not None:
            writer = start.writer
        else:
            writer = RunWriter(run_dir, scenario.model_dump(mode="json"), scenario.run.seed)
            writer.created_dir = not existed  # the lock made the directory, not the user
    except BaseException:  # refused (e.g. an existing run): leave the directory as it was
        lock.release(unlink=not had_lock_file)
        if not existed:
            try:
                run_dir.rmdir()
            except OSError:
                pass
        raise
    try:
        return _run_locked(scenario, run_dir, writer, lock, progress=progress, llm=llm,
                           stream=stream, start=start)
    finally:
        lock.release()


def _run_locked(scenario: Scenario, run_dir: Path, writer: RunWriter, lock: RunDirLock, *,
                progress: bool | None, llm: Any, stream: TextIO, start: RunStart | None) -> RunResults:
    started = time.perf_counter()
    model = None
    guard = begin(writer)
    try:
        if start is not None:
            model = start.make_model(llm)
        else:
            model = EconomyModel(scenario, llm=llm, run_dir=run_dir,
                                 agent_objects=scenario.run.mesa_agents)
            writer.write_table("population", model.population)
            enforce_gate(model, run_dir, progress=progress)
        store = start.store if start is not None else None
        if store is None:  # a fresh run has none; otherwise those the newest good checkpoint needs
            store = CheckpointStore(run_dir) if start is None else CheckpointStore.open(run_dir)
        bar = tqdm(
            total=scenario.run.tax_years, initial=model.year, desc="tax years", unit="yr",
            disable=(not sys.stderr.isatty()) if progress is None else not progress,
            file=sys.stderr,
        )

        def after_year(record: dict) -> None:
            bar.update(1)
            if bar.disable and progress is None:  # off a terminal: one plain line per year
                year_line(record, scenario.run.tax_years)
            bar.set_postfix(objective=f"{record['objective']:.4g}", hours=f"{record['mean_hours']:.1f}")
            with guard.critical():  # a stop signal waits until the year is on disk
                save_checkpoint(model, writer, store)
                _save_progress(writer, model, final=False)

        with bar:
            model.run(years=scenario.run.tax_years - model.year, callback=after_year)
        guard.hold()
        _save_progress(writer, model, final=True)
        status, warnings = model.health.final_status(model.history)
        writer.finish(status, notes=model.notes, warnings=warnings,
                      llm_health=model.health.rates(model.history),
                      wall_seconds=time.perf_counter() - started)
    except RunFailed as exc:
        _save_progress(writer, model, final=True)
        writer.finish("failed", str(exc), notes=model.notes,
                      llm_health=model.health.rates(model.history))
        if (line := model.health.questions_line()) is not None:
            print(line, file=stream)  # each question's own failure rate, also of a failed run
        raise
    except KeyboardInterrupt as exc:
        mark_interrupted(writer, model, exc)
        raise
    except UserError as exc:
        writer.finish("failed", str(exc))
        if start is None and (model is None or not model.history):
            lock.release(unlink=True)  # (when it is ours alone) so that the directory can go
            writer.discard_if_empty()  # a user error before any tax year leaves no half-made run
        raise
    except Exception as exc:
        if model is not None:
            try:
                _save_progress(writer, model, final=True)
            except Exception:  # noqa: BLE001 - keep the original error
                pass
        writer.finish("failed", f"{type(exc).__name__}: {exc}", notes=getattr(model, "notes", []))
        raise
    finally:
        guard.uninstall()
        # the runner built the language model (processes, engines, clients): close it
        if llm is None and model is not None and model._llm is not None:
            try:
                model._llm.close()
            except Exception:  # noqa: BLE001 - never mask the run's own outcome
                pass
    results = load_run(run_dir)
    print(summary_table(results.years), file=stream)
    for note in model.notes:
        print(f"note: {note}", file=stream)
    for warning in writer.manifest.get("warnings", []):
        print(f"warning: {warning}", file=stream)
    if (line := model.health.questions_line()) is not None:
        print(line, file=stream)  # each question's own failure rate (manifest llm_health.questions)
    print(f"results: {run_dir}", file=stream)
    return results


def _save_progress(writer: RunWriter, model: EconomyModel, final: bool) -> None:
    # output.agents_sample: the per-agent tables hold a fixed subsample of workers
    writer.write_table("years", model.years_frame())
    writer.write_table("steps", model.datacollector.get_model_vars_dataframe())
    for name, df in agent_sample.restrict(model, model_extra_tables(model)).items():
        writer.write_table(name, df)
    if final and model.settings.output.agents_table:
        writer.write_table("agents", agent_sample.agents_table(model))
    if (entry := agent_sample.manifest_entry(model)) is not None:
        writer.manifest["agents_sample"] = entry
    writer.manifest["years_completed"] = len(model.history)
    writer.write_manifest()


def model_extra_tables(model: EconomyModel) -> dict[str, pd.DataFrame]:
    """Tables contributed by LLM agents, elections and telemetry, if any."""
    tables: dict[str, pd.DataFrame] = {}
    for owner in (model.policy, model.planner.strategy):
        fn = getattr(owner, "tables", None)
        if fn is not None:
            tables.update(fn(model))
    tel = getattr(model, "telemetry", None)
    if tel is not None and hasattr(tel, "period_rows"):
        rows = tel.period_rows()
        if rows:
            tables["llm"] = pd.DataFrame(rows)
    return {k: v for k, v in tables.items() if isinstance(v, pd.DataFrame)}


def seeded(scenario: Scenario, seed: int | None) -> Scenario:
    if seed is None:
        return scenario
    return scenario.model_copy(update={"run": scenario.run.model_copy(update={"seed": int(seed)})})


__all__ = ["check_out_dir", "default_run_dir", "run_scenario", "seeded", "summary_table"]
