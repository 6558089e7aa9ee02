"""Per-year checkpoints: the state after each tax year, written whole or not at all.

At the end of every tax year the runner writes ``RUN_DIR/checkpoints/year-KKKK.pkl``
(temporary file, then renamed).  It holds the scenario, the econsim version and
``model.checkpoint_state()``: the model's arrays, records, random-generator states and
DataCollector, and the state of every stateful object it holds (worker policy, planner,
LLM telemetry, run health), each through the protocol below.

**The protocol.**  Every object with state that a run needs to continue implements
``checkpoint_state(self) -> dict`` (a picklable snapshot; numpy arrays are fine; never
configuration, which comes from the scenario) and ``restore_state(self, state) -> None``.

**Format.**  A checkpoint is a Python pickle: load only checkpoints you trust (a pickle
can run code when read).  A checkpoint of another format or econsim version, or whose
scenario is not the run's, is refused with one line.
"""

from __future__ import annotations

import json
import pickle
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from simulator import __version__
from simulator.errors import UserError
from simulator.results import RunWriter, atomic_write_bytes

if TYPE_CHECKING:
    from simulator.config.schema import Scenario
    from simulator.sim.model import EconomyModel

#: Version of the checkpoint layout (bumped when its keys change; 2: the model's own
#: ``checkpoint_state``, econsim 0.2 module paths).
CHECKPOINT_FORMAT = 2
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"year-(\d{4,})\.pkl")


@runtime_checkable
class Stateful(Protocol):
    """What the model and every stateful policy, planner, democracy or telemetry object implements."""

    def checkpoint_state(self) -> dict: ...

    def restore_state(self, state: dict) -> None: ...


def checkpoint_path(run_dir: str | Path, year: int) -> Path:
    """Where the state after tax year ``year`` is kept."""
    return Path(run_dir) / CHECKPOINT_DIR / f"year-{year:04d}.pkl"


def finished_years(run_dir: str | Path) -> list[int]:
    """Tax years with a checkpoint in ``run_dir``, ascending."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name)))


def scenario_json(scenario: Scenario | dict) -> dict:
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
        "scenario": scenario_json(model.settings),
        "model": model.checkpoint_state(),
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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (a pickle: only load checkpoints you trust); check its version."""
    path = Path(path)
    try:
        data = pickle.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # noqa: BLE001 - anything unreadable is one user-facing line
        raise UserError(f"{path}: not a readable econsim checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or "econsim_checkpoint" not in data:
        raise UserError(f"{path}: not an econsim checkpoint")
    if data.get("econsim_checkpoint") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: written by econsim {data.get('econsim_version')} (checkpoint format "
            f"{data.get('econsim_checkpoint')}), this is econsim {__version__} (format "
            f"{CHECKPOINT_FORMAT}); a checkpoint only continues with the version that wrote it"
        )
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


def check_scenario(ckpt: dict, manifest: dict, path: Path) -> None:
    diff = _diff_keys(scenario_json(ckpt["scenario"]), scenario_json(manifest.get("scenario", {})))
    if diff:
        shown = ", ".join(diff[:3]) + (", ..." if len(diff) > 3 else "")
        raise UserError(
            f"{path}: the checkpoint belongs to another scenario than this run's manifest "
            f"(differs in {shown}); refusing to continue"
        )


def same_objective(ckpt: dict, scenario: Scenario) -> bool:
    old = scenario_json(ckpt["scenario"]).get("planner", {}).get("objective")
    return old == scenario_json(scenario)["planner"]["objective"]
