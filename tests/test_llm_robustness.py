"""Inference-layer robustness: crashed workers, seeds on retry, cache keys, bad cache paths."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest_llm import needs_llama

from simulator.errors import UserError
from simulator.llm import (
    LLMConfig,
    ModelInfo,
    Request,
    build_llm,
    integer_field,
    json_object_constraint,
)
from simulator.llm.cache import ResponseCache, request_key
from simulator.llm.constraints import parse_reply
from simulator.llm.openai_backend import wire_schema

HOURS = json_object_constraint(hours=integer_field(0, 100))


def test_parser_takes_the_first_object_that_validates_and_rejects_duplicates():
    assert parse_reply('Example {"x": 1}. Answer: {"hours": 40}', HOURS) == ({"hours": 40}, None)
    value, err = parse_reply('{"hours": 200, "hours": 40}', HOURS)
    assert value is None and "duplicate key" in err
    value, err = parse_reply('{"hours": 400}', HOURS)
    assert value is None and "hours" in err


def test_wire_schema_keeps_a_property_called_maxLength():
    schema = json_object_constraint(
        {"maxLength": integer_field(0, 5), "note": {"type": "string", "maxLength": 20}}
    ).schema
    wired = wire_schema(dict(schema))
    assert "maxLength" in wired["properties"]
    assert "maxLength" not in wired["properties"]["note"]


def test_transport_retry_keeps_the_seed(tmp_path):
    seen = []
    state = {"n": 0}

    def script(req):
        from simulator.llm import ScriptedTransportError

        seen.append(req.seed)
        state["n"] += 1
        if state["n"] == 1:
            raise ScriptedTransportError("connection reset")
        return '{"hours": 5}'

    llm = build_llm(LLMConfig(backend="scripted", cache="off", max_retries=2), script=script)
    r = llm.generate([Request.chat("x", constraint=HOURS, seed=7)])[0]
    assert r.ok and r.retries == 1
    assert seen == [7, 7]


def test_cache_key_includes_backend_extras():
    r = Request.chat("x", constraint=HOURS, seed=1)
    a = ModelInfo("openai", "m", extra={"base_url": "http://127.0.0.1:1/v1", "dialect": "grammar"})
    b = ModelInfo("openai", "m", extra={"base_url": "http://127.0.0.1:2/v1", "dialect": "grammar"})
    c = ModelInfo("openai", "m", extra={"base_url": "http://127.0.0.1:1/v1", "dialect": "none"})
    assert len({request_key(a, r), request_key(b, r), request_key(c, r)}) == 3


def test_unusable_cache_path_is_a_user_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UserError, match="cannot use it"):
        ResponseCache(afile / "sub" / "cache.sqlite")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError) as err:
        ResponseCache(bad)
    assert str(err.value) == (f"LLM response cache {bad} is damaged (file is not a database): move it "
                              "away (a fresh one is made at the next run) or run with --set llm.cache=off")


def _filled_cache(path, n=400):
    c = ResponseCache(path)
    c.put_many([(f"k{i}", "x" * 300, 1, 1, "worker", "m") for i in range(n)])
    c.close()  # checkpoints the WAL into the file
    assert not (path.parent / (path.name + "-wal")).exists() or (path.parent / (path.name + "-wal")).stat().st_size == 0


def test_a_corrupt_cache_page_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "cache.sqlite"
    _filled_cache(path)
    with open(path, "r+b") as f:  # garbage over pages 3-6 (the responses table's b-tree)
        f.seek(2 * 4096)
        f.write(bytes(range(256)) * 64)
    with pytest.raises(UserError) as err:
        c = ResponseCache(path)
        c.get_many([f"k{i}" for i in range(400)])
        len(c)
    msg = str(err.value)
    assert msg.startswith(f"LLM response cache {path} is damaged (")
    assert "malformed" in msg and msg.endswith("or run with --set llm.cache=off") and "\n" not in msg


def test_a_full_disk_and_a_lock_held_too_long_are_one_line_each(tmp_path, monkeypatch):
    import sqlite3

    import simulator.llm.cache as cache_mod

    path = tmp_path / "full.sqlite"
    c = ResponseCache(path)
    c._conn.execute("PRAGMA max_page_count=8")  # what a full disk does to SQLite: SQLITE_FULL
    with pytest.raises(UserError) as err:
        c.put_many([(f"k{i}", "x" * 2000, 1, 1, "worker", "m") for i in range(200)])
    assert str(err.value).startswith(f"LLM response cache {path} cannot grow: the disk is full "
                                     "(database or disk is full): free space")
    assert len(c) == 0  # the failed write was rolled back
    c.close()

    monkeypatch.setattr(cache_mod, "BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(cache_mod, "LOCK_RETRY_S", 0.3)
    locked = tmp_path / "locked.sqlite"
    c = ResponseCache(locked)
    other = sqlite3.connect(str(locked), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writing and never finishing
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=r"is still locked by another process after 0.3 s \(database is locked\)"):
        c.put_many([("k", "x", 1, 1, "worker", "m")])
    assert time.perf_counter() - t0 < 5
    other.execute("ROLLBACK")
    other.close()
    c.put_many([("k", "x", 1, 1, "worker", "m")])  # free again: it works
    assert len(c) == 1
    c.close()


def test_a_damaged_cache_during_a_run_is_exit_2_with_one_line(tmp_path, capsys):
    from simulator.cli.main import main

    path = tmp_path / "cache.sqlite"
    _filled_cache(path)
    with open(path, "r+b") as f:
        f.seek(2 * 4096)
        f.write(bytes(range(256)) * 64)
    rc = main(["run", "quickstart", "--no-progress", "--set", "llm.backend=scripted",
               "--set", f"llm.cache_path={path}", "--set", "population.size=4",
               "--set", "run.tax_years=1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"econsim: error: LLM response cache {path} is damaged (") and "llm.cache=off" in err


@needs_llama
@pytest.mark.embedded
@pytest.mark.timeout(300)
def test_a_killed_embedded_worker_fails_the_batch_instead_of_hanging():
    from simulator.llm.embedded import EmbeddedModel

    m = EmbeddedModel(processes=2, threads=1, min_batch_for_pool=4)
    try:
        reqs = [Request.chat(f"Worker {i}: hours?", constraint=HOURS, seed=i, max_tokens=8)
                for i in range(40)]
        m.generate(reqs[:4])  # start the pool
        victim = next(iter(m._pool._processes.values()))

        def cpu_ticks(pid: int) -> int:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        idle = cpu_ticks(victim.pid)
        killed = threading.Event()

        def kill_when_busy():  # the victim is working on this batch: kill it now
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and cpu_ticks(victim.pid) <= idle + 2:
                time.sleep(0.02)
            os.kill(victim.pid, signal.SIGKILL)
            killed.set()

        t = threading.Thread(target=kill_when_busy, daemon=True)
        t.start()
        out = m.generate(reqs)
        t.join()
        assert killed.is_set() and len(out) == 40
        failed = [r for r in out if not r.ok]
        assert failed, "the kill landed during the batch: its requests must fail"
        assert all(r.error_kind == "transport" and "pool" in r.error for r in failed)
        # a fresh pool serves the next batch
        again = m.generate(reqs[:6])
        assert all(r.ok for r in again)
    finally:
        m.close()


@needs_llama
@pytest.mark.embedded
@pytest.mark.timeout(300)
def test_an_interrupted_pool_batch_stops_at_once_instead_of_finishing():
    """Ctrl-C / SIGTERM (KeyboardInterrupt in the main thread) during a pooled batch ends
    the workers: close() then returns at once instead of waiting for the whole batch."""
    from simulator.llm.embedded import EmbeddedModel

    m = EmbeddedModel(processes=2, threads=1, min_batch_for_pool=4)
    try:
        reqs = [Request.chat(f"Worker {i}: hours?", constraint=HOURS, seed=i, max_tokens=8)
                for i in range(400)]
        m.generate(reqs[:4])  # start the pool
        workers = list(m._pool._processes.values())
        threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # a real Ctrl-C
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            m.generate(reqs)  # 400 prompts: far more than 3 s on 2 cores
        m.close()
        assert time.monotonic() - t0 < 20
        # the worker processes end (checked in /proc: multiprocessing's is_alive() races
        # with the pool's own thread reaping the same children)
        def running(pid: int) -> bool:
            try:
                state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return False
            return state != "Z"

        deadline = time.monotonic() + 10
        while any(running(p.pid) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(running(p.pid) for p in workers)
    finally:
        m.close()
