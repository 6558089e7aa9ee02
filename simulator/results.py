"""Run outputs: one directory per run, written atomically, read back with ``load_run``.

Layout::

    RUN_DIR/
      manifest.json       resolved scenario, seed, versions, git revision, times, status
      years.parquet       one row per tax year
      agents.parquet      one row per agent per tax year (optional)
      population.parquet  the workers with their persona attributes and text
      steps.parquet       the DataCollector's per-step model variables
      (llm.parquet, elections.parquet, ... when LLM agents or democracy are used)
      checkpoints/        year-KKKK.pkl: the state after each tax year, each piece of it stored
                          once (later years refer to earlier years' pieces by digest), and
                          year-KKKK.digest.json: its sha256, checked before resume / fork
                          (pickles: load only checkpoints you trust)
      .lock               held (flock) by the process writing the run

Every file is written to a temporary name in the same directory and then renamed, so a
crash never leaves a half-written file that looks complete.  The manifest's ``status``
is ``running`` until the run ends, then ``completed``, ``completed_with_warnings`` (some
LLM replies failed or fell back: ``warnings`` and ``llm_health`` say how many),
``failed`` with the reason, or ``interrupted`` (SIGTERM / Ctrl-C; ``econsim resume``
continues it).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.errors import UserError

#: the lock file of a run directory, held by its one writer (:mod:`simulator.run.lock`)
LOCK_FILE = ".lock"

PACKAGES = ("econsim", "numpy", "pandas", "mesa", "scipy", "pydantic", "pyarrow", "openai",
            "llama_cpp_python", "vllm")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    out["python"] = platform.python_version()
    return out


def git_revision() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _user_mode(fd_or_path: int | str) -> None:
    """Give a ``mkstemp`` file (0600) the permissions of any file the user creates
    (0666 less the umask), so run files are shared like the user's other files."""
    os.chmod(fd_or_path, 0o666 & ~_umask())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _user_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        _user_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunWriter:
    """Creates the run directory and writes its files atomically."""

    def __init__(self, run_dir: Path, scenario_dump: dict[str, Any], seed: int) -> None:
        self.dir = Path(run_dir)
        if (self.dir / "manifest.json").exists():
            raise UserError(
                f"{self.dir} already holds a run (manifest.json); choose another --out or delete it"
            )
        if self.dir.exists() and not self.dir.is_dir():
            raise UserError(f"output path {self.dir} exists and is not a directory")
        if (self.dir / "experiment.json").exists():
            raise UserError(f"{self.dir} holds an experiment (experiment.json); choose another --out")
        self.created_dir = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output directory {self.dir}: {exc.strerror}") from None
        if not os.access(self.dir, os.W_OK):
            raise UserError(f"output directory {self.dir} is not writable")
        self.manifest: dict[str, Any] = {
            "econsim_run": 1,
            "scenario": scenario_dump,
            "seed": seed,
            "versions": package_versions(),
            "git_revision": git_revision(),
            "command": " ".join(sys.argv),
            "started": _now(),
            "finished": None,
            "status": "running",
            "reason": None,
            "notes": [],
            "files": [],
        }
        self.write_manifest()

    @classmethod
    def reopen(cls, run_dir: Path) -> RunWriter:
        """A writer for an existing run directory (to resume it), keeping its manifest."""
        self = cls.__new__(cls)
        self.dir = Path(run_dir)
        try:
            self.manifest = json.loads((self.dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.dir}: cannot read manifest.json ({exc})") from None
        if not os.access(self.dir, os.W_OK):
            raise UserError(f"run directory {self.dir} is not writable")
        self.manifest.setdefault("files", [])
        return self

    def write_manifest(self) -> None:
        atomic_write_bytes(
            self.dir / "manifest.json",
            json.dumps(self.manifest, indent=2, default=str).encode("utf-8"),
        )

    def write_table(self, name: str, df: pd.DataFrame) -> None:
        atomic_write_parquet(self.dir / f"{name}.parquet", df)
        if f"{name}.parquet" not in self.manifest["files"]:
            self.manifest["files"].append(f"{name}.parquet")

    #: what a run writes before its first tax year; a user error then leaves nothing else
    START_FILES = ("manifest.json", "population.parquet", "checkpoints")

    def discard_if_empty(self) -> bool:
        """After a user error before the first tax year: remove what this writer wrote
        (manifest, population, an empty checkpoint folder) and the directory if it made
        it, so no half-made run is left.  Keeps everything when anything else is there
        (e.g. a validity gate's tables).  Returns whether it removed the run."""
        names = {p.name for p in self.dir.iterdir()} if self.dir.is_dir() else set()
        names = {n for n in names if not n.endswith(".tmp")}
        # the run directory's lock file (simulator.run.lock): whoever holds it keeps it, and
        # keeps the directory, which it owns for as long as it holds the lock
        locked = LOCK_FILE in names
        names.discard(LOCK_FILE)
        ckpt = self.dir / "checkpoints"
        if not names <= set(self.START_FILES) or (ckpt.is_dir() and any(ckpt.iterdir())):
            return False
        for n in names:
            path = self.dir / n
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        if self.created_dir and not locked:
            try:
                self.dir.rmdir()
            except OSError:
                pass
        return True

    def finish(self, status: str, reason: str | None = None, **extra: Any) -> None:
        self.manifest.update(status=status, reason=reason, finished=_now(), **extra)
        self.write_manifest()


@dataclass
class RunResults:
    """A finished (or failed) run read back from disk."""

    path: Path
    manifest: dict[str, Any]
    years: pd.DataFrame
    agents: pd.DataFrame | None
    population: pd.DataFrame | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.manifest.get("status", "unknown")


def read_parquet_checked(path: Path) -> pd.DataFrame:
    """``pd.read_parquet``, with a damaged file (truncated, not parquet) as a one-line
    :class:`UserError` naming the file."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        why = " ".join(str(exc).split())[:120]
        raise UserError(
            f"{path}: damaged parquet file ({why}); the run directory is damaged: re-run "
            "the scenario (or restore the file)"
        ) from None


def load_run(path: str | Path) -> RunResults:
    """Read a run directory into pandas DataFrames.

    ``years``, ``agents`` and ``population`` as attributes; any other parquet file of
    the run under ``tables[name]``.
    """
    path = Path(path)
    man = path / "manifest.json"
    if not man.exists():
        raise UserError(f"{path}: not a run directory (no manifest.json)")
    try:
        manifest = json.loads(man.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{man}: corrupt manifest ({exc.msg})") from None

    # only the files this run wrote (the manifest lists them)
    listed = [f for f in manifest.get("files", []) if f.endswith(".parquet")]

    def read(name: str) -> pd.DataFrame | None:
        p = path / f"{name}.parquet"
        return read_parquet_checked(p) if f"{name}.parquet" in listed and p.exists() else None

    years = read("years")
    tables = {
        Path(f).stem: read_parquet_checked(path / f)
        for f in sorted(listed)
        if Path(f).stem not in ("years", "agents", "population") and (path / f).exists()
    }
    return RunResults(
        path=path,
        manifest=manifest,
        years=years if years is not None else pd.DataFrame(),
        agents=read("agents"),
        population=read("population"),
        tables=tables,
    )
