"""One SQLite response cache written by several processes at once (experiment runs)."""

import multiprocessing as mp

from simulator.llm.cache import ResponseCache


def _writer(path: str, who: int, n: int, start) -> int:
    start.wait()  # every process opens the (new) file at the same moment
    cache = ResponseCache(path)
    for i in range(0, n, 5):
        rows = [(f"k{who}-{j}", f"text {who} {j}", j, 1, "worker", "m") for j in range(i, i + 5)]
        rows.append(("shared", f"from {who}", 0, 0, "worker", "m"))  # the same key from everyone
        cache.put_many(rows)
        got = cache.get_many([r[0] for r in rows])
        assert got[f"k{who}-{i}"][0] == f"text {who} {i}"
    cache.close()
    return n


def test_several_processes_write_one_cache(tmp_path):
    path = str(tmp_path / "sub" / "cache.sqlite")
    ctx = mp.get_context("spawn")
    procs, n = 4, 150
    with ctx.Manager() as manager:
        start = manager.Barrier(procs)
        with ctx.Pool(procs) as pool:
            results = pool.starmap(_writer, [(path, w, n, start) for w in range(procs)])
    assert results == [n] * procs
    cache = ResponseCache(path)
    assert len(cache) == procs * n + 1
    got = cache.get_many([f"k{w}-{j}" for w in range(procs) for j in range(n)])
    assert all(got[f"k{w}-{j}"][0] == f"text {w} {j}" for w in range(procs) for j in range(n))
    assert cache.get_many(["shared"])["shared"][0].startswith("from ")
    mode = cache._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"


def test_a_lock_held_longer_than_the_busy_timeout_is_waited_out(tmp_path, monkeypatch):
    import sqlite3
    import threading
    import time

    from simulator.llm import cache as cache_mod

    monkeypatch.setattr(cache_mod, "BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another process writing for a while
    threading.Timer(0.6, lambda: blocker.execute("COMMIT")).start()
    t0 = time.perf_counter()
    cache.put_many([("k", "v", 1, 1, "t", "m")])
    assert time.perf_counter() - t0 >= 0.4
    assert cache.get_many(["k"])["k"][0] == "v"
