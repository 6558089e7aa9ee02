"""Per-year checkpoints: the state after each tax year, verified, stored once.

At the end of every tax year the runner writes ``RUN_DIR/checkpoints/year-KKKK.pkl``
and then its digest record ``year-KKKK.digest.json`` (each a temporary file, then
renamed).  The checkpoint holds the scenario, the econsim version and
``model.checkpoint_state()``: the model's arrays, records, random-generator states and
DataCollector, and the state of every stateful object it holds (worker policy, planner,
LLM telemetry, run health), each through the protocol below.

**The protocol.**  Every object with state that a run needs to continue implements
``checkpoint_state(self) -> dict`` (a picklable snapshot; numpy arrays are fine; never
configuration, which comes from the scenario) and ``restore_state(self, state) -> None``.

**Stored once (format 3).**  A run's state after year K repeats everything of years
``0..K-1`` (records, per-agent arrays, telemetry, answers), so whole checkpoints would
take disk quadratic in the number of years.  The state is therefore pickled into a
content-addressed tree (like git's objects): a list of :data:`CHUNK` or more elements,
or one holding more than scalars, is cut into chunks of :data:`CHUNK` elements (the
last partial chunk stays inline, the chunks' names are a list cut the same way), and
each of its elements but scalars, short strings and lists is an object of its own; so
are long dicts (in chunks of items), every numpy array of :data:`MIN_ARRAY` bytes or more
and every chunk.  Each object is named by the SHA-256 of its pickle.  ``year-KKKK.pkl`` holds only the objects that no
earlier checkpoint of the run holds, and names the others by (year, digest); a year's
records, arrays and answers are thus written once, in the year they were made, and the
disk taken by all checkpoints grows linearly with the years.  (With
``output.checkpoints: last`` each checkpoint holds all of its objects, so that the older
ones can be deleted.)  Within one object, shared references stay shared; two references
to one list or array from different objects load as two equal copies (the model's state
does not share them).

**Verified.**  ``year-KKKK.digest.json``, written after the data, records the SHA-256
and size of the checkpoint file, the years whose files it needs, and the digests of the
objects it holds.  Resume checks the digests of the newest checkpoint and of every file
it needs; a damaged or incomplete one (a flipped byte, a truncated file, no digest record
because the run was killed between the two writes) is reported and the newest good one
is used (:func:`newest_good_checkpoint`).  Temporary files left by a kill mid-write are
swept when a run resumes (:func:`sweep_temporary_files`).

**Format.**  A checkpoint is a Python pickle: load only checkpoints you trust (a pickle
can run code when read; the digests catch damage, not forgery).  A checkpoint of another
format or econsim version, or whose scenario is not the run's, is refused with one line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from simulator import __version__
from simulator.errors import UserError
from simulator.results import RunWriter, atomic_write_bytes

if TYPE_CHECKING:
    from simulator.config.schema import Scenario
    from simulator.sim.model import EconomyModel

#: Version of the checkpoint layout (bumped when its keys change; 2: the model's own
#: ``checkpoint_state``, econsim 0.2 module paths; 3: content-addressed objects stored
#: once per run, with a digest record per checkpoint).
CHECKPOINT_FORMAT = 3
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"year-(\d{4,})\.pkl")
#: elements per stored chunk of a list (and items per chunk of a dict longer than this)
CHUNK = 16
#: numpy arrays of at least this many bytes are objects of their own
MIN_ARRAY = 1024
_PROTOCOL = pickle.HIGHEST_PROTOCOL


@runtime_checkable
class Stateful(Protocol):
    """What the model and every stateful policy, planner, democracy or telemetry object implements."""

    def checkpoint_state(self) -> dict: ...

    def restore_state(self, state: dict) -> None: ...


def checkpoint_path(run_dir: str | Path, year: int) -> Path:
    """Where the state after tax year ``year`` is kept."""
    return Path(run_dir) / CHECKPOINT_DIR / f"year-{year:04d}.pkl"


def digest_path(run_dir: str | Path, year: int) -> Path:
    """Where the digest record of the checkpoint of tax year ``year`` is kept."""
    return Path(run_dir) / CHECKPOINT_DIR / f"year-{year:04d}.digest.json"


def _digest_path_of(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".pkl") + ".digest.json")


def finished_years(run_dir: str | Path) -> list[int]:
    """Tax years with a checkpoint file in ``run_dir``, ascending (not yet verified: see
    :func:`newest_good_checkpoint`)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name)))


def scenario_json(scenario: Scenario | dict) -> dict:
    data = scenario if isinstance(scenario, dict) else scenario.model_dump(mode="json")
    return json.loads(json.dumps(data, default=str))


# --------------------------------------------------------------------------- object tree
class _Elem:
    """An element of a list (or a value of a long dict) to be stored as an object of its own."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj


_SCALARS = (int, float, complex, type(None), np.generic)
#: strings and bytes at least this long in a list are objects of their own (prompts, replies)
_LONG_TEXT = 256


def _own_object(x: Any) -> bool:
    """Whether a list element is stored as an object of its own: anything but a scalar, a
    short string and a list (a list is cut into chunks of its own)."""
    t = type(x)
    if t is list or isinstance(x, _SCALARS):
        return False
    if t is str or t is bytes:
        return len(x) >= _LONG_TEXT
    return True


def _wrap(x: Any) -> Any:
    return _Elem(x) if _own_object(x) else x


def _chunk_list(obj: list) -> bool:
    """Whether a list is stored as chunks: a long one, or one holding anything but
    scalars and short strings; a short list of scalars stays inline."""
    return len(obj) >= CHUNK or (len(obj) >= 2 and any(type(x) is list or _own_object(x) for x in obj))


def _ref(year: int, digest: bytes) -> bytes:
    """An object's name: the year of the checkpoint file holding it and its SHA-256 (one
    short bytes value, so a list of names is itself cut into chunks, not wrapped)."""
    return year.to_bytes(4, "little") + digest


class _Cycle(Exception):
    """The state refers back to a list or dict that is being stored: it cannot be cut into
    objects of their own (each would need the other's name first)."""


class _Pickler(pickle.Pickler):
    """Pickles one object; lists, long dicts and big arrays in it become references
    ``("b", name)`` / ``("L", chunk names, tail)`` / ``("D", chunk names, tail)`` to
    objects of their own (collected by :class:`_Saver`)."""

    def __init__(self, saver: _Saver, top: Any, buf: io.BytesIO) -> None:
        super().__init__(buf, protocol=_PROTOCOL)
        self.saver, self.top = saver, top

    def persistent_id(self, obj: Any) -> Any:
        if obj is self.top:
            return None
        t = type(obj)
        if t is _Elem:
            return self.saver.ref(obj.obj)
        if t is list:
            if not _chunk_list(obj):
                return None
            return self.saver.memo(obj, lambda: self.saver.chunked("L", [_wrap(x) for x in obj]))
        if t is dict:
            if len(obj) <= CHUNK:
                return None
            return self.saver.memo(obj, lambda: self.saver.chunked(
                "D", [(k, _wrap(v)) for k, v in obj.items()]))
        if t is np.ndarray and obj.nbytes >= MIN_ARRAY and not obj.dtype.hasobject:
            return self.saver.ref(obj)
        return None


@dataclass
class _Saver:
    """One checkpoint's pickling: objects already stored (digest -> year) are named,
    new ones are collected in ``new``."""

    year: int
    known: dict[bytes, int]
    new: dict[bytes, bytes] = field(default_factory=dict)
    years: set[int] = field(default_factory=set)
    _memo: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    _busy: set[int] = field(default_factory=set)

    def dumps(self, obj: Any) -> bytes:
        buf = io.BytesIO()
        _Pickler(self, obj, buf).dump(obj)
        return buf.getvalue()

    def memo(self, obj: Any, make: Any) -> Any:
        hit = self._memo.get(id(obj))
        if hit is None:
            if id(obj) in self._busy:  # a cycle back to an object still being stored
                raise _Cycle
            self._busy.add(id(obj))
            try:
                value = make()
            finally:
                self._busy.discard(id(obj))
            hit = self._memo[id(obj)] = (obj, value)  # obj kept alive: its id stays unique
        return hit[1]

    def ref(self, obj: Any) -> tuple[str, bytes]:
        return self.memo(obj, lambda: ("b", self._store(self.dumps(obj))))

    def _store(self, data: bytes) -> bytes:
        d = hashlib.sha256(data).digest()
        year = self.known.get(d)
        if year is None:
            year = self.year
            self.new.setdefault(d, data)
        self.years.add(year)
        return _ref(year, d)

    def chunked(self, kind: str, items: list) -> tuple[str, list[bytes], tuple]:
        full = len(items) - len(items) % CHUNK
        refs = [self._store(self.dumps(items[i:i + CHUNK])) for i in range(0, full, CHUNK)]
        return kind, refs, tuple(items[full:])  # a tuple: the tail is not cut again


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, blobs: dict[int, dict[bytes, bytes]], where: Path) -> None:
        super().__init__(io.BytesIO(data))
        self.blobs, self.where = blobs, where

    def _blob(self, ref: bytes) -> Any:
        year, digest = int.from_bytes(ref[:4], "little"), ref[4:]
        try:
            data = self.blobs[year][digest]
        except KeyError:
            raise _Missing(year, digest) from None
        return _Unpickler(data, self.blobs, self.where).load()

    def persistent_load(self, pid: Any) -> Any:
        kind = pid[0]
        if kind == "b":
            return self._blob(pid[1])
        out: list = []
        for ref in pid[1]:
            out.extend(self._blob(ref))
        out.extend(pid[2])
        return out if kind == "L" else dict(out)


class _Missing(Exception):
    def __init__(self, year: int, digest: bytes) -> None:
        super().__init__(f"object {digest.hex()[:12]} of year {year}")
        self.year = year


# --------------------------------------------------------------------------- writing
@dataclass
class CheckpointStore:
    """The objects a run's checkpoints hold so far (digest -> year of the file holding
    it) and the files each year's checkpoint needs; kept by the runner across years."""

    run_dir: Path
    known: dict[bytes, int] = field(default_factory=dict)
    needs: dict[int, set[int]] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: str | Path, upto: int | None = None) -> CheckpointStore:
        """The store of the checkpoints in ``run_dir`` that the newest good one (or the
        one of year ``upto``) needs, read from their digest records."""
        store = cls(Path(run_dir))
        if upto is None:
            upto = newest_good_checkpoint(run_dir).year
        if upto is None:
            return store
        rec = _read_digest_record(digest_path(run_dir, upto))
        for year in (rec or {}).get("needs", []):
            r = _read_digest_record(digest_path(run_dir, year))
            if r is None:
                continue
            store.needs[year] = set(r["needs"])
            for hexd in r.get("objects", []):
                store.known[bytes.fromhex(hexd)] = year
        return store

    def write(self, payload: dict, model_state: Any, year: int, self_contained: bool) -> Path:
        saver = _Saver(year, {} if self_contained else self.known)
        try:
            root = saver.dumps(model_state)
        except (_Cycle, RecursionError):
            # a state with reference cycles through lists or dicts (or nested too deep to
            # cut): this year's checkpoint is one plain pickle, whole and self-contained
            # (pickle keeps the cycles and shared references); later years start afresh
            saver = _Saver(year, {})
            root = pickle.dumps(model_state, protocol=_PROTOCOL)
            self_contained = True
        needs = {year}
        for y in saver.years:
            needs |= self.needs.get(y, {y})
        data = pickle.dumps({**payload, "needs": sorted(needs), "objects": saver.new, "root": root},
                            protocol=_PROTOCOL)
        path = checkpoint_path(self.run_dir, year)
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, data)
        record = {"econsim_checkpoint": CHECKPOINT_FORMAT, "year": year, "file": path.name,
                  "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                  "needs": sorted(needs), "objects": sorted(d.hex() for d in saver.new)}
        atomic_write_bytes(digest_path(self.run_dir, year), json.dumps(record).encode("utf-8"))
        if self_contained:
            self.known, self.needs = {}, {}
        for d in saver.new:
            self.known[d] = year
        self.needs[year] = needs
        return path


def save_checkpoint(model: EconomyModel, writer: RunWriter,
                    store: CheckpointStore | None = None) -> Path | None:
    """Write the checkpoint of the tax year just finished (atomically, then its digest
    record); prune per the scenario.  ``store``: the run's objects so far (opened from
    the run directory when not given)."""
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
    }
    if store is None:
        store = CheckpointStore.open(writer.dir) if keep != "last" else CheckpointStore(writer.dir)
    path = store.write(payload, model.checkpoint_state(), year, self_contained=keep == "last")
    if keep == "last":
        for old in finished_years(writer.dir):
            if old != year:
                checkpoint_path(writer.dir, old).unlink(missing_ok=True)
                digest_path(writer.dir, old).unlink(missing_ok=True)
    writer.manifest["checkpoint"] = str(path.relative_to(writer.dir))
    return path


# --------------------------------------------------------------------------- reading
def _read_digest_record(path: Path) -> dict | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (isinstance(rec, dict) and isinstance(rec.get("sha256"), str)
          and isinstance(rec.get("needs"), list) and isinstance(rec.get("objects", []), list))
    return rec if ok else None


def _format_error(data: Any, path: Path) -> UserError | None:
    """The refusal for a checkpoint of another format or version (None: this format)."""
    if not isinstance(data, dict) or "econsim_checkpoint" not in data:
        return None
    if data.get("econsim_checkpoint") != CHECKPOINT_FORMAT:
        return UserError(
            f"{path}: written by econsim {data.get('econsim_version')} (checkpoint format "
            f"{data.get('econsim_checkpoint')}), this is econsim {__version__} (format "
            f"{CHECKPOINT_FORMAT}); a checkpoint only continues with the version that wrote it"
        )
    if data.get("econsim_version") != __version__:
        return UserError(
            f"{path}: written by econsim {data.get('econsim_version')}, this is econsim "
            f"{__version__}; a checkpoint only continues with the version that wrote it"
        )
    return None


def _other_format(path: Path) -> UserError | None:
    """For a checkpoint without a digest record: the refusal if it is of another format."""
    try:
        data = pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - unreadable: not of another format, just damaged
        return None
    return _format_error(data, path)


@dataclass
class Verified:
    """What :func:`newest_good_checkpoint` found: the newest checkpoint whose file and
    every file it needs match their digests (``year``, None if none), and one line per
    newer one that does not (``damaged``: (year, why))."""

    year: int | None
    damaged: list[tuple[int, str]]

    def messages(self) -> list[str]:
        then = (f"resuming from year {self.year}" if self.year is not None
                else "no good checkpoint is left")
        return [f"checkpoint year {y} is {why}; {then}" for y, why in self.damaged]


class _Checker:
    """Digest checks of one run's checkpoint files, each file read and hashed once."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.files: dict[int, str | None] = {}  # year -> None (good) or what is wrong

    def file_problem(self, year: int) -> str | None:
        if year not in self.files:
            self.files[year] = self._check(year)
        return self.files[year]

    def _check(self, year: int) -> str | None:
        path = checkpoint_path(self.run_dir, year)
        rec = _read_digest_record(digest_path(self.run_dir, year))
        if rec is None:
            if (err := _other_format(path)) is not None:
                raise err
            return "incomplete (no digest record: the run stopped while writing it)"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return "missing"
        if len(data) != rec.get("bytes"):
            return f"damaged (truncated: {len(data):,} of {rec.get('bytes'):,} bytes)" if len(
                data) < rec.get("bytes", 0) else "damaged (digest mismatch)"
        if hashlib.sha256(data).hexdigest() != rec["sha256"]:
            return "damaged (digest mismatch)"
        return None

    def problem(self, year: int) -> str | None:
        """Why the checkpoint of ``year`` cannot be used (None: it can)."""
        own = self.file_problem(year)
        if own is not None:
            return own
        rec = _read_digest_record(digest_path(self.run_dir, year))
        for need in sorted(set(rec["needs"]) - {year}, reverse=True):
            if (why := self.file_problem(need)) is not None:
                return f"unusable (it needs year {need}'s checkpoint, which is {why.split(' (')[0]})"
        return None


def newest_good_checkpoint(run_dir: str | Path, upto: int | None = None) -> Verified:
    """The newest checkpoint in ``run_dir`` (of a year <= ``upto``) that passes its digest
    checks, with the reasons the newer ones fail.  Raises :class:`UserError` for a
    checkpoint of another format or version."""
    run_dir = Path(run_dir)
    checker = _Checker(run_dir)
    damaged = []
    for year in reversed(finished_years(run_dir)):
        if upto is not None and year > upto:
            continue
        why = checker.problem(year)
        if why is None:
            return Verified(year, damaged)
        damaged.append((year, why))
    return Verified(None, damaged)


def check_year(run_dir: str | Path, year: int) -> str | None:
    """Why the checkpoint of ``year`` cannot be used (None: it passes its digest checks)."""
    return _Checker(Path(run_dir)).problem(year)


def set_aside(run_dir: str | Path, years: list[int]) -> list[str]:
    """Rename the checkpoints of ``years`` (damaged ones, newer than the one a run resumes
    from) to ``*.damaged`` so the resumed run writes those years again; returns the names."""
    moved = []
    for year in years:
        for path in (checkpoint_path(run_dir, year), digest_path(run_dir, year)):
            if path.exists():
                os.replace(path, path.with_name(path.name + ".damaged"))
                moved.append(path.name)
    return moved


def sweep_temporary_files(run_dir: str | Path) -> tuple[int, int]:
    """Remove the temporary files that a kill in the middle of an atomic write leaves
    (``.NAME.*.tmp`` in the run directory and in ``checkpoints/``); only while holding
    the run's lock.  Returns (files, bytes) removed."""
    n = size = 0
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT_DIR):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                try:
                    size += p.stat().st_size
                    p.unlink()
                    n += 1
                except FileNotFoundError:
                    pass
    return n, size


def load_checkpoint(path: str | Path, manifest: dict | None = None) -> dict[str, Any]:
    """Read a checkpoint (a pickle: only load checkpoints you trust): check its format and
    version, its scenario against ``manifest``'s (when given) and the digests of its file
    and of every file it needs; returns the payload with ``model``, the model's state."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    try:
        data = pickle.loads(raw)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is one user-facing line
        raise UserError(f"{path}: not a readable econsim checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or "econsim_checkpoint" not in data:
        raise UserError(f"{path}: not an econsim checkpoint")
    if (err := _format_error(data, path)) is not None:
        raise err
    if manifest is not None:
        check_scenario(data, manifest, path)
    m = _NAME.fullmatch(path.name)
    year = int(m.group(1)) if m else data.get("year")
    run_dir = path.parent.parent
    why = _Checker(run_dir).problem(year) if m else "not in a run's checkpoints folder"
    if why is not None:
        raise UserError(f"{path}: checkpoint year {year} is {why}")
    blobs = {year: data["objects"]}
    for need in data["needs"]:
        if need != year:
            blobs[need] = pickle.loads(checkpoint_path(run_dir, need).read_bytes())["objects"]
    try:
        data["model"] = _Unpickler(data["root"], blobs, path).load()
    except _Missing as exc:
        raise UserError(f"{path}: checkpoint year {year} refers to {exc}, which this run's "
                        "checkpoints do not hold (copied from another run?)") from None
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
