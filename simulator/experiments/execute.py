"""Running an experiment's (variant, seed) runs on a local process pool or on Ray.

Layout of an experiment directory::

    EXP_DIR/
      experiment.json     the plan (variants, seeds, baseline), executor, status, times
      index.parquet       one row per run: variant, seed, path, status, reason, wall_seconds
      comparison.parquet  the final tax year of every finished run (variant, seed, ...)
      runs/<variant>/seed-<s>/   a normal run directory (simulator.run.runner.run_scenario)

Runs are independent and deterministic given their scenario and seed, so the executor
(in-process, a ``ProcessPoolExecutor`` with the spawn start method, or Ray tasks)
changes only the wall time, never the results.  Running the same experiment again
into the same directory keeps finished runs and runs the failed and missing ones.

Process lifetimes and locks: the experiment directory is locked (``EXP_DIR/.lock``,
:mod:`simulator.run.lock`) by the process that runs the experiment, and each run
directory by the worker writing it, for the whole write; a second experiment into the
same directory, or a rerun while some run directory is still being written, fails at once
naming the holder's pid, and no run directory whose lock is held is ever removed.  Pool
workers end with the process that started them (:mod:`simulator.lifeline`; ``kill -9``
included), and so do Ray tasks on a local Ray instance started here (they watch the
driver's pid); the local instance's own processes share the driver's fate (Ray's own
parent-death handling).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from simulator.config.schema import Scenario
from simulator.errors import UserError
from simulator.experiments.plan import ExperimentPlan, Task, plan_experiment, scenario_key
from simulator.experiments.summary import summary_text
from simulator.lifeline import Reaper, descendants, pool_arguments, process_identity, watch_pid
from simulator.results import (
    _now,
    atomic_write_bytes,
    atomic_write_parquet,
    git_revision,
    package_versions,
)
from simulator.run.lock import LOCK_NAME, RunDirLock, RunLocked, is_locked, lock_run_dir
from simulator.run.resume import resume_run
from simulator.run.runner import default_run_dir, run_scenario
from simulator.run.signals import StopGuard
from simulator.run.state import finished_years

FINISHED = ("completed", "completed_with_warnings")
INDEX_COLUMNS = ["variant", "seed", "path", "status", "reason", "wall_seconds", "years_completed"]


# --------------------------------------------------------------------------- one run
def run_status(path: str | Path) -> dict[str, Any]:
    """Status of a run directory from its manifest (``missing`` if there is none)."""
    man = Path(path) / "manifest.json"
    if not man.exists():
        return {"status": "missing", "reason": None, "wall_seconds": None, "years_completed": 0}
    try:
        m = json.loads(man.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"status": "failed", "reason": "unreadable manifest", "wall_seconds": None,
                "years_completed": 0}
    return {"status": m.get("status", "failed"), "reason": m.get("reason"),
            "wall_seconds": m.get("wall_seconds"), "years_completed": m.get("years_completed", 0)}


def _continue_run(scenario_data: dict[str, Any], path: str | Path, lock: RunDirLock,
                  llm: Any = None) -> dict[str, Any]:
    """Bring an unfinished run (failed, interrupted or never started) to an end, holding
    its directory's ``lock``.

    A run that left a checkpoint of its tax years continues from it with
    :func:`simulator.run.resume.resume_run` (the result equals an uninterrupted run); one
    without a usable checkpoint (none written, another scenario or version) is emptied
    (the lock file stays, and stays held) and run again from scratch.
    """
    path = Path(path)
    if path.exists() and finished_years(path):
        try:
            return _recorded(path, lambda: resume_run(path, progress=False, llm=llm, stream=io.StringIO()),
                             reraise=UserError)
        except RunLocked:
            raise
        except UserError:
            pass  # no usable checkpoint: start again below
    lock.clear()
    return _fresh_run(scenario_data, path, llm)


def _fresh_run(scenario_data: dict[str, Any], path: Path, llm: Any = None) -> dict[str, Any]:
    scenario = Scenario.model_validate(scenario_data)
    return _recorded(path, lambda: run_scenario(scenario, path, progress=False, stream=io.StringIO(), llm=llm))


def _recorded(path: Path, work: Any, reraise: type[BaseException] = KeyboardInterrupt) -> dict[str, Any]:
    """Run ``work()`` (one run into ``path``) and return the run's status row; an error is
    recorded in the row (the run's manifest has it too), never raised, except Ctrl-C and
    ``reraise``."""
    started = time.perf_counter()
    try:
        work()
    except (KeyboardInterrupt, reraise):
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the index; the manifest has it too
        out = run_status(path)
        if out["status"] in FINISHED or out["status"] == "missing":
            out["status"] = "failed"
        out["reason"] = out.get("reason") or f"{type(exc).__name__}: {exc}"
        out["wall_seconds"] = time.perf_counter() - started
        return out
    return run_status(path)


#: Set in a pool's worker processes: once the experiment is interrupted, queued runs
#: are not started (see :meth:`PoolExecutor.interrupt`).
_STOP: Any = None


def _init_worker(stop: Any) -> None:
    global _STOP
    _STOP = stop


def run_task(scenario_data: dict[str, Any], path: str, llm: Any = None,
             driver: tuple[int, str | None] | None = None) -> dict[str, Any]:
    """Run one (variant, seed) into ``path`` unless it already finished there, holding
    the run directory's lock for the whole write.

    Module-level and taking plain data so it pickles for spawned processes and Ray
    (``llm``, a live language model, only in-process).  ``driver``: the
    :func:`~simulator.lifeline.process_identity` of the experiment's process, for a Ray
    task on a local instance: the task's process ends when the driver does.  A run
    directory locked by another process is left untouched and reported failed, naming
    the holder.
    """
    if driver is not None:
        watch_pid(driver)
    status = run_status(path)
    if status["status"] in FINISHED:
        return status
    if _STOP is not None and _STOP.is_set():
        return {**status, "reason": "not started: the experiment was interrupted"}
    try:
        lock = lock_run_dir(path)
    except RunLocked as exc:
        return {**status, "status": "failed", "reason": str(exc)}
    try:
        status = run_status(path)  # again, now that no one else can write it
        if status["status"] in FINISHED:
            return status
        return _continue_run(scenario_data, path, lock, llm)
    except KeyboardInterrupt:
        if _STOP is None:  # in this process: the experiment stops
            raise
        return run_status(path)  # a pool worker: report the interrupted run, don't pickle the signal
    except RunLocked as exc:
        return {**run_status(path), "status": "failed", "reason": str(exc)}
    finally:
        lock.release()


def _task_data(task: Task) -> dict[str, Any]:
    """The task's scenario as plain data; only the keys that were set, so that settings
    whose meaning depends on being given (e.g. ``population.size`` with a file) survive."""
    return task.scenario.model_dump(mode="json", exclude_unset=True)


# --------------------------------------------------------------------------- executors
class InlineExecutor:
    """Runs tasks one after another in this process (``--jobs 1``)."""

    kind = "inline"

    def __init__(self, llm: Any = None) -> None:
        self.llm = llm

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "jobs": 1}

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        for t in tasks:
            yield t, run_task(_task_data(t), str(t.path), self.llm)

    def close(self) -> None:
        pass


class PoolExecutor:
    """A local ``ProcessPoolExecutor`` (spawn start method) with ``jobs`` processes."""

    kind = "pool"

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        ctx = get_context("spawn")
        self.stop = ctx.Event()
        # the workers end with this process, SIGKILL included (simulator.lifeline)
        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                        **pool_arguments(_init_worker, (self.stop,)))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "jobs": self.jobs}

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        futures = {
            self.pool.submit(run_task, _task_data(t), str(t.path)): t
            for t in tasks
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    t = futures[f]
                    try:
                        yield t, f.result()
                    except Exception as exc:  # noqa: BLE001 - a worker process died
                        yield t, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                                  "wall_seconds": None, "years_completed": 0}
        finally:
            for f in pending:
                f.cancel()

    def interrupt(self) -> None:
        """Stop now: queued runs are not started, running ones get SIGTERM (each
        closes as ``interrupted`` at its last checkpoint)."""
        self.stop.set()
        for proc in list((self.pool._processes or {}).values()):
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, AttributeError):
                pass

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _check_reachable(address: str) -> None:
    """Fail fast (one line) when ``host:port`` does not accept connections."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray {address}: expected HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"--ray {address}: cannot reach a Ray cluster there ({exc.strerror or exc})") from None


class RayExecutor:
    """Ray tasks, one CPU each.  Without an address a local Ray instance with
    ``num_cpus`` CPUs is started here and stopped by :meth:`close`."""

    kind = "ray"

    def __init__(self, address: str | None, num_cpus: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--ray needs Ray: pip install 'econsim[ray]'") from None
        self.ray = ray
        self.address = address
        self.num_cpus = num_cpus
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {"env_vars": {"PYTHONPATH": path}}
        self._reaper: Reaper | None = None
        try:
            if address:
                _check_reachable(address)
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                # the local instance's processes (GCS, raylet, agents) end with this one:
                # the reaper kills those that outlive it (Ray's agents wait on the GCS)
                self._reaper = Reaper()
                before = descendants()
                ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                         runtime_env=env, log_to_driver=False, configure_logging=False)
                self._ray_pids = descendants() - before
                self._reaper.add(self._ray_pids)
        except UserError:
            self._close_reaper()
            raise
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
            self._close_reaper()
            raise UserError(f"--ray {address or '(local)'}: cannot start or reach Ray: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
        # the tasks of a local instance run on this machine: they watch this process and
        # end with it (a cluster's own workers end with their job, Ray's owner semantics)
        self._driver = None if address else process_identity()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "address": self.address or "local", "num_cpus": self.num_cpus}

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        ray = self.ray
        if self._reaper is not None:  # helpers the instance started after ray.init returned
            self._reaper.add(set().union(*(descendants(p) for p in self._ray_pids)))
        refs = {self._remote.remote(_task_data(t), str(t.path), None, self._driver): t for t in tasks}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    t = refs[ref]
                    try:
                        yield t, ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a worker died
                        yield t, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500],
                                  "wall_seconds": None, "years_completed": 0}
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _close_reaper(self) -> None:
        if self._reaper is not None:
            reaper, self._reaper = self._reaper, None
            reaper.close()  # kills what shutdown left running

    def close(self) -> None:
        try:
            self.ray.shutdown()
        finally:
            self._close_reaper()


def _uses_embedded_llm(scenario: Scenario) -> bool:
    return scenario.uses_llm and scenario.llm.backend == "embedded"


def auto_jobs(plan: ExperimentPlan, todo: int) -> int:
    """Default parallelism: one process per CPU, at most one per run to do; 1 when a
    variant uses the embedded LLM (its llama.cpp processes already use every core)."""
    if any(_uses_embedded_llm(v.scenario) for v in plan.variants):
        return 1
    return max(1, min(os.cpu_count() or 1, todo))


def make_executor(jobs: int | None = None, ray: str | bool | None = None, llm: Any = None):
    """``ray``: None/False for the local pool, True or ``"local"`` for a local Ray
    instance, or a cluster address; ``jobs``: processes (pool) or CPUs (local Ray)."""
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if llm is not None:
        if ray or (jobs or 1) > 1:
            raise UserError("a language-model object can only be shared in one process: use jobs=1")
        return InlineExecutor(llm)
    if ray:
        address = None if ray is True or ray == "local" else str(ray)
        return RayExecutor(address, jobs)
    if not jobs or jobs == 1:
        return InlineExecutor()
    return PoolExecutor(jobs)


# --------------------------------------------------------------------------- directory
def _prepare_root(plan: ExperimentPlan) -> dict[str, Any] | None:
    """Check the experiment directory; return the stored experiment.json if continuing."""
    root = plan.root
    if root.exists() and not root.is_dir():
        raise UserError(f"output path {root} exists and is not a directory")
    if (root / "manifest.json").exists():
        raise UserError(f"{root} holds a single run (manifest.json); write the experiment to another --out")
    stored_file = root / "experiment.json"
    if stored_file.exists():
        try:
            stored = json.loads(stored_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{stored_file}: corrupt ({exc.msg})") from None
        old = {v["label"]: v["scenario"] for v in stored.get("variants", [])}
        for v in plan.variants:
            if v.label in old and old[v.label] != scenario_key(v.scenario):
                raise UserError(
                    f"{root} holds an experiment whose variant {v.label!r} had other settings; "
                    "write to another --out (or delete it) to run changed variants"
                )
        return stored
    if root.exists() and any(p.name != LOCK_NAME for p in root.iterdir()):
        what = "a comparison of the older layout" if (root / "comparison.parquet").exists() else "other files"
        raise UserError(f"{root} is not empty and not an experiment directory ({what}); choose another --out")
    return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, default=str).encode("utf-8"))


def _index_frame(rows: dict[tuple[str, int], dict[str, Any]], plan: ExperimentPlan) -> pd.DataFrame:
    out = []
    for t in plan.tasks():
        r = rows.get((t.variant, t.seed), {"status": "missing"})
        out.append({
            "variant": t.variant, "seed": int(t.seed), "path": t.rel,
            "status": r.get("status", "missing"), "reason": r.get("reason"),
            "wall_seconds": r.get("wall_seconds"), "years_completed": int(r.get("years_completed") or 0),
        })
    df = pd.DataFrame(out, columns=INDEX_COLUMNS)
    df["wall_seconds"] = df["wall_seconds"].astype(float)
    df["reason"] = df["reason"].astype(object)
    return df


def final_years_table(root: str | Path, index: pd.DataFrame | None = None) -> pd.DataFrame:
    """The final tax year of every finished run: ``variant, seed, path`` + the year record."""
    root = Path(root)
    index = index if index is not None else pd.read_parquet(root / "index.parquet")
    rows = []
    for _, r in index.iterrows():
        if r["status"] not in FINISHED:
            continue
        years = pd.read_parquet(root / r["path"] / "years.parquet")
        if years.empty:
            continue
        rows.append({"variant": r["variant"], "seed": int(r["seed"]), "path": r["path"],
                     **years.iloc[-1].to_dict()})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- driver
def run_experiment(
    scenario: Scenario,
    out_dir: str | Path | None = None,
    *,
    jobs: int | str | None = None,
    ray: str | bool | None = None,
    baseline: str | None = None,
    stream: TextIO | None = None,
    source: str = "<scenario>",
    llm: Any = None,
) -> ExperimentPlan:
    """Run every (variant, seed) of ``scenario`` into ``out_dir``; returns the plan.

    ``jobs``: processes of the local pool (1 or None: in this process; ``"auto"``: see
    :func:`auto_jobs`), or CPUs of a local Ray instance.  Everything that can be wrong
    with the input (seeds, sweep keys, baseline, the directory, the executor) is checked
    before the directory is created.  The directory is locked while the experiment runs:
    a second experiment into it, or one whose unfinished runs are still being written by
    another process, raises :class:`~simulator.errors.RunLocked` (naming the holder's pid)
    and changes nothing.
    """
    stream = stream or sys.stdout
    root = Path(out_dir) if out_dir is not None else default_run_dir(scenario)
    plan = plan_experiment(scenario, root, baseline=baseline, source=source)
    stored = _prepare_root(plan)
    lock = RunDirLock(root)
    if root.is_dir():  # a rerun: refused at once while another process writes here
        lock.acquire()
    try:
        _check_runs_free(plan)
        if jobs == "auto":
            pending = sum(run_status(t.path)["status"] not in FINISHED for t in plan.tasks())
            jobs = None if (ray or llm is not None) else auto_jobs(plan, pending)
        executor = make_executor(jobs, ray, llm)
        created = not root.exists()
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except OSError as exc:
            executor.close()
            raise UserError(f"cannot create output directory {root}: {exc.strerror}") from None
        except BaseException:
            executor.close()
            raise
        return _execute(plan, stored, executor, lock, created, stream)
    finally:
        lock.release()


def _check_runs_free(plan: ExperimentPlan) -> None:
    """Raise :class:`RunLocked` if another process holds the lock of an unfinished run's
    directory (e.g. a worker of a killed experiment still writing, or an ``econsim
    resume`` of that run): it must never be removed or rewritten under its writer."""
    for t in plan.tasks():
        if t.path.is_dir() and run_status(t.path)["status"] not in FINISHED and is_locked(t.path):
            raise RunLocked(t.path, RunDirLock.holder_pid(t.path), None)


def _execute(plan: ExperimentPlan, stored: dict[str, Any] | None, executor: Any, lock: RunDirLock,
             created: bool, stream: TextIO) -> ExperimentPlan:
    """Run the plan's unfinished runs with ``executor`` into the locked ``plan.root``."""
    root = plan.root
    tasks = plan.tasks()
    rows = {(t.variant, t.seed): run_status(t.path) for t in tasks}
    todo = [t for t in tasks if rows[(t.variant, t.seed)]["status"] not in FINISHED]
    meta: dict[str, Any] = {
        "econsim_experiment": 1,
        **plan.describe(),
        "executor": executor.describe(),
        "versions": package_versions(),
        "git_revision": git_revision(),
        "command": " ".join(sys.argv),
        "started": (stored or {}).get("started") or _now(),
        "finished": None,
        "status": "running",
        "reason": None,
        "attempts": int((stored or {}).get("attempts", 0)) + 1,
    }
    if stored:
        # variants of earlier invocations stay listed so their runs stay readable
        known = {v["label"] for v in meta["variants"]}
        meta["variants"] += [v for v in stored.get("variants", []) if v["label"] not in known]
    _write_json(root / "experiment.json", meta)
    atomic_write_parquet(root / "index.parquet", _index_frame(rows, plan))
    kept = len(tasks) - len(todo)
    print(f"experiment {root}: {len(plan.variants)} variants x {len(plan.seeds)} seeds = "
          f"{len(tasks)} runs" + (f" ({kept} finished earlier, kept)" if kept else "")
          + f"; executor {executor.kind}", file=stream)
    done = 0
    guard = StopGuard().install()  # SIGTERM, like Ctrl-C, stops the experiment cleanly
    try:
        for t, res in executor.run(todo):
            rows[(t.variant, t.seed)] = res
            done += 1
            atomic_write_parquet(root / "index.parquet", _index_frame(rows, plan))
            wall = res.get("wall_seconds")
            print(f"[{done}/{len(todo)}] {t.variant} seed {t.seed}: {res['status']}"
                  + (f" ({wall:.1f} s)" if isinstance(wall, int | float) else "")
                  + (f": {res['reason']}" if res["status"] not in FINISHED and res.get("reason") else ""),
                  file=stream)
    except KeyboardInterrupt:
        guard.hold()
        if hasattr(executor, "interrupt"):
            executor.interrupt()
        meta.update(status="interrupted", reason="interrupted by the user", finished=_now())
        _write_json(root / "experiment.json", meta)
        executor.close()
        atomic_write_parquet(root / "index.parquet",
                             _index_frame({(t.variant, t.seed): run_status(t.path) for t in tasks}, plan))
        print(f"experiment interrupted: run the same command again to continue ({root})", file=stream)
        raise
    except BaseException as exc:
        meta.update(status="failed", reason=f"{type(exc).__name__}: {exc}", finished=_now())
        _write_json(root / "experiment.json", meta)
        executor.close()
        if created and not any((root / "runs").glob("*/seed-*/manifest.json")):
            lock.release(unlink=True)
            shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        guard.uninstall()
    executor.close()
    index = _index_frame(rows, plan)
    atomic_write_parquet(root / "index.parquet", index)
    final = final_years_table(root, index)
    if not final.empty:
        atomic_write_parquet(root / "comparison.parquet", final)
    failed = index[~index["status"].isin(FINISHED)]
    warned = index["status"].eq("completed_with_warnings").any()
    status = "failed" if not failed.empty else ("completed_with_warnings" if warned else "completed")
    reason = None if failed.empty else (
        f"{len(failed)} of {len(index)} runs did not finish (see index.parquet); "
        "run the same command again to retry them")
    meta.update(status=status, reason=reason, finished=_now())
    _write_json(root / "experiment.json", meta)
    plan.status = status
    if not final.empty:
        print(summary_text(root), file=stream)
    if status == "completed_with_warnings":
        n = int(index["status"].eq("completed_with_warnings").sum())
        reason = (f"{n} of {len(index)} runs completed with warnings (LLM replies failed or fell "
                  "back; see each run's manifest)")
        meta.update(reason=reason)
        _write_json(root / "experiment.json", meta)
    if reason:
        print(f"experiment {status}: {reason}", file=stream)
    print(f"experiment: {root}", file=stream)
    return plan


def run_comparison(
    scenario: Scenario,
    out_dir: str | Path | None = None,
    *,
    progress: bool | None = None,
    llm: Any = None,
    stream: TextIO | None = None,
) -> pd.DataFrame:
    """Run every ``compare`` variant (on every ``run.seeds`` seed) as an experiment.

    Delegates to :func:`run_experiment` (in this process): each
    (variant, seed) gets ``out_dir/runs/<variant>/seed-<s>/``; returns the final tax
    year of every run (columns ``variant``, ``seed``, ``path``, then the year record),
    also written to ``out_dir/comparison.parquet``.
    """
    root = Path(out_dir) if out_dir is not None else default_run_dir(scenario)
    run_experiment(scenario, root, stream=stream, llm=llm)
    return final_years_table(root)


def comparison_table(table: pd.DataFrame) -> str:
    """Final-year outcomes of each variant, side by side, as plain text."""
    swfs = [c for c in table.columns if c.startswith("swf_") and c != "swf_revenue"]
    cols = ["variant", "objective", *swfs, "revenue", "mean_hours", "gini_post_tax"]
    cols = [c for c in cols if c in table.columns]
    fmt = lambda v: f"{v:,.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[c.replace("swf_", "") for c in cols]] + [[fmt(r[c]) for c in cols] for _, r in table.iterrows()]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
