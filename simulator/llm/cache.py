"""Content-addressed response cache in SQLite, and replay.

The key is the sha256 of: the backend kind, model id and revision (for the embedded
backend the GGUF file's sha256), the messages, the constraint, ``max_tokens``,
``temperature`` and ``seed``.  Only valid responses are stored.  Modes:

- ``readwrite``: hits are served from the cache, misses go to the model and are stored;
- ``replay``: never calls a model; a miss raises :class:`CacheMissError` (a ``UserError``);
- ``off``: the wrapper is not used.

One :class:`ResponseCache` is safe for the threads of one process (a lock around one
connection).  Several processes (the runs of an experiment on a process pool or Ray)
can share one file: WAL journal (readers never block the writer), a 30 s busy timeout,
writes in ``BEGIN IMMEDIATE`` transactions, and a retry with backoff when SQLite still
reports the database locked or busy.

Any other SQLite error on the file (``sqlite3.DatabaseError`` and its subclasses: a
corrupt page, not a database, the disk full, read-only, still locked after
:data:`LOCK_RETRY_S`) is a :class:`~simulator.errors.UserError` of one line naming the
file and what to do (:func:`cache_error`), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.errors import UserError
from simulator.llm.constraints import constraint_to_json, parse_reply
from simulator.llm.types import LanguageModel, ModelInfo, ModelWrapper, Request, Response

KEY_VERSION = 2
#: SQLite's own wait for a lock (seconds) before it reports the database busy
BUSY_TIMEOUT_S = 30.0
#: total seconds to keep retrying an operation that finds the database locked
LOCK_RETRY_S = 120.0


def _locked(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def cache_error(path: Path, exc: BaseException) -> UserError:
    """One line naming the cache file, what SQLite (or the OS) said and what to do."""
    msg = " ".join(str(exc).split())[:160] or type(exc).__name__
    low = msg.lower()
    off = "or run with --set llm.cache=off"
    elsewhere = "set llm.cache_path or ECONSIM_CACHE_DIR to another folder"
    # SQLITE_CORRUPT ("database disk image is malformed") and SQLITE_NOTADB are plain
    # DatabaseErrors; full, locked, read-only and cannot-open are OperationalErrors
    corrupt = type(exc) is sqlite3.DatabaseError or "malformed" in low or "not a database" in low
    if corrupt:
        what, todo = "is damaged", f"move it away (a fresh one is made at the next run) {off}"
    elif "full" in low:
        what, todo = "cannot grow: the disk is full", f"free space, {elsewhere}, {off}"
    elif _locked(exc):
        what = f"is still locked by another process after {LOCK_RETRY_S:g} s"
        todo = f"wait for the other run to finish, {elsewhere}, {off}"
    elif "readonly" in low or "read-only" in low or "permission" in low:
        what, todo = "is read-only", f"make it writable, {elsewhere}, {off}"
    else:
        what, todo = "cannot be used", f"{elsewhere}, move the file away, {off}"
    return UserError(f"LLM response cache {path} {what} ({msg}): {todo}")


def _retrying(fn, *args, path: Path | None = None):
    """Call ``fn(*args)``, retrying with backoff while the database is locked; any SQLite
    error left is :func:`cache_error` (a ``UserError``) when ``path`` is given."""
    delay, waited = 0.01, 0.0
    while True:
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or waited >= LOCK_RETRY_S:
                if path is None:
                    raise
                raise cache_error(path, exc) from None
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)
        except sqlite3.Error as exc:  # DatabaseError: corrupt page, not a database, ...
            if path is None:
                raise
            raise cache_error(path, exc) from None


class CacheMissError(UserError):
    """A request was not in the cache in replay mode."""


def request_key(info: ModelInfo, request: Request) -> str:
    payload = {
        "v": KEY_VERSION,
        "backend": info.backend,
        "model": info.model,
        "revision": info.revision,
        "extra": {str(k): str(v) for k, v in dict(info.extra).items()},
        "messages": [dict(m) for m in request.messages],
        "constraint": constraint_to_json(request.constraint),
        "max_tokens": request.max_tokens,
        "temperature": float(request.temperature),
        "seed": request.seed,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A SQLite table of responses keyed by :func:`request_key`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                                         isolation_level=None)
            with self._lock:
                _retrying(self._setup, path=self.path)
        except OSError as exc:
            raise UserError(
                f"LLM response cache {self.path}: cannot use it ({exc}); set llm.cache_path or "
                "ECONSIM_CACHE_DIR to a writable folder, or run with --set llm.cache=off"
            ) from None
        except sqlite3.Error as exc:  # connect itself: unable to open the file
            raise cache_error(self.path, exc) from None

    def _setup(self) -> None:
        self._conn.execute(f"PRAGMA busy_timeout={int(1000 * BUSY_TIMEOUT_S)}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER,"
            " completion_tokens INTEGER, tag TEXT, model TEXT, created REAL)"
        )

    def _write(self, rows: list[tuple]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error says more
            raise

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, int, int]]:
        out: dict[str, tuple[str, int, int]] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(uniq), 500):
                chunk = uniq[i : i + 500]
                q = "SELECT key, text, prompt_tokens, completion_tokens FROM responses WHERE key IN (%s)"
                rows = _retrying(lambda q=q, c=chunk: self._conn.execute(q % ",".join("?" * len(c)), c).fetchall(),
                                 path=self.path)
                for k, text, pt, ct in rows:
                    out[k] = (text, pt or 0, ct or 0)
        return out

    def put_many(self, rows: Sequence[tuple[str, str, int, int, str, str]]) -> None:
        """rows: (key, text, prompt_tokens, completion_tokens, tag, model)."""
        if not rows:
            return
        now = time.time()
        with self._lock:
            _retrying(self._write, [(*r, now) for r in rows], path=self.path)

    def __len__(self) -> int:
        with self._lock:
            return int(_retrying(lambda: self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0],
                                 path=self.path))

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass


class CachedModel(ModelWrapper):
    """Serve responses from a :class:`ResponseCache`; store valid new ones."""

    def __init__(self, inner: LanguageModel, cache: ResponseCache, mode: str = "readwrite") -> None:
        super().__init__(inner)
        if mode not in ("readwrite", "replay"):
            raise ValueError(f"cache mode must be readwrite or replay, got {mode!r}")
        self.cache = cache
        self.mode = mode
        self.hits = 0
        self.misses = 0

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        info = self.inner.info
        keys = [request_key(info, r) for r in requests]
        t0 = time.perf_counter()
        found = self.cache.get_many(keys)
        out: list[Response | None] = [None] * len(requests)
        todo: list[int] = []
        for i, (k, r) in enumerate(zip(keys, requests, strict=True)):
            hit = found.get(k)
            if hit is not None:
                text, pt, ct = hit
                value, err = parse_reply(text, r.constraint)
                if err is None:
                    out[i] = Response(text=text, value=value, prompt_tokens=pt, completion_tokens=ct, cached=True)
                    continue
            todo.append(i)
        lookup = time.perf_counter() - t0
        for resp in out:
            if resp is not None:
                resp.latency_s = lookup / max(1, len(requests))
        self.hits += len(requests) - len(todo)
        self.misses += len(todo)
        if todo and self.mode == "replay":
            # a request that ended in a failure when it was recorded replays as that failure
            # (the run fell back there), so runs with fallbacks replay exactly too
            failed = self.cache.get_many([FAIL_PREFIX + keys[i] for i in todo])
            still = []
            for i in todo:
                hit = failed.get(FAIL_PREFIX + keys[i])
                if hit is None:
                    still.append(i)
                    continue
                rec = json.loads(hit[0])
                out[i] = Response(text=rec["text"], value=None, prompt_tokens=hit[1],
                                  completion_tokens=hit[2], cached=True, error=rec["error"],
                                  error_kind=rec["error_kind"])
            self.hits += len(todo) - len(still)
            self.misses -= len(todo) - len(still)
            todo = still
        if todo and self.mode == "replay":
            first = requests[todo[0]]
            raise CacheMissError(
                f"LLM cache replay miss: {len(todo)} of {len(requests)} requests are not in "
                f"{self.cache.path} (first: tag={first.tag!r}, prompt {first.prompt_excerpt()!r}); "
                "run once with cache: readwrite, or check that model, prompts and seeds match"
            )
        if todo:
            fresh = self.inner.generate([requests[i] for i in todo])
            rows = []
            for i, resp in zip(todo, fresh, strict=True):
                out[i] = resp
                if resp.ok:
                    rows.append(
                        (keys[i], resp.text, resp.prompt_tokens, resp.completion_tokens, requests[i].tag, info.model)
                    )
                else:  # recorded for replay only; readwrite runs ask again
                    rec = json.dumps({"text": resp.text, "error": resp.error, "error_kind": resp.error_kind})
                    rows.append((FAIL_PREFIX + keys[i], rec, resp.prompt_tokens, resp.completion_tokens,
                                 requests[i].tag, info.model))
            self.cache.put_many(rows)
        return [r for r in out if r is not None]  # all filled

    def close(self) -> None:
        self.cache.close()
        super().close()


FAIL_PREFIX = "failed:"


def file_sha256(path: str | os.PathLike, _memo: dict[Any, str] = {}) -> str:  # noqa: B006
    """sha256 of a file, memoised by (path, mtime, size)."""
    p = Path(path).resolve()
    st = p.stat()
    memo_key = (str(p), st.st_mtime_ns, st.st_size)
    h = _memo.get(memo_key)
    if h is None:
        d = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                d.update(block)
        h = d.hexdigest()
        _memo[memo_key] = h
    return h
