"""Where the embedded backend runs a batch: pool or in-process, chosen by measured throughput.

The chooser and the dispatch are tested with a fake engine and a fake pool (no model);
the last test runs the real SmolLM2 model and checks that the layout never changes a reply.
"""

from __future__ import annotations

import pytest
from conftest_llm import needs_llama

from simulator.errors import UserError
from simulator.llm import Request, integer_field, json_object_constraint
from simulator.llm.embedded import (
    CHUNKS_PER_PROCESS,
    IN_PROCESS,
    POOL,
    EmbeddedModel,
    LayoutChooser,
    _chunks,
)

HOURS = json_object_constraint(hours=integer_field(0, 100))


# --------------------------------------------------------------------------- chooser
def test_chooser_tries_the_pool_then_in_process_then_keeps_the_faster():
    c = LayoutChooser(refresh_every=3)
    assert c.choose() == POOL  # nothing measured: the pool (the fast layout on an idle machine)
    c.record(POOL, 1000, 10.0)  # 100 tokens/s
    assert c.choose() == IN_PROCESS  # the other layout, once
    c.record(IN_PROCESS, 1000, 5.0)  # 200 tokens/s: in-process wins (a loaded machine)
    picks = []
    for _ in range(8):
        picks.append(c.choose())
        c.record(picks[-1], 1000, 5.0 if picks[-1] == IN_PROCESS else 10.0)
    # the pool is re-measured after every 3 in-process batches, then dropped again
    assert picks == [IN_PROCESS, IN_PROCESS, POOL, IN_PROCESS, IN_PROCESS, IN_PROCESS, POOL, IN_PROCESS]


def test_chooser_wants_the_pool_clearly_faster():
    c = LayoutChooser(margin=1.1)
    c.record(POOL, 1050, 10.0)  # 105/s: within the noise of 100/s
    c.record(IN_PROCESS, 1000, 10.0)
    assert c.choose() == IN_PROCESS
    c.record(POOL, 2000, 10.0)  # the average, 152.5/s, is clearly faster
    assert c.choose() == POOL


def test_chooser_follows_a_change_of_load():
    c = LayoutChooser(refresh_every=4, alpha=0.5)
    c.record(POOL, 2000, 10.0)  # 200/s: idle machine, the pool wins
    c.record(IN_PROCESS, 1000, 10.0)  # 100/s
    assert c.choose() == POOL
    for _ in range(3):  # other sessions load the cores: the pool falls to 50/s
        c.record(POOL, 500, 10.0)
    assert c.rates[POOL] < c.rates[IN_PROCESS]
    assert c.choose() == IN_PROCESS


def test_chooser_moving_average_and_empty_batches():
    c = LayoutChooser(alpha=0.5)
    c.record(POOL, 100, 1.0)
    c.record(POOL, 300, 1.0)
    assert c.rates[POOL] == pytest.approx(200.0)
    c.record(IN_PROCESS, 0, 1.0)  # a batch of errors measures nothing
    c.record(IN_PROCESS, 10, 0.0)
    assert IN_PROCESS not in c.rates


# --------------------------------------------------------------------------- chunks
@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 50, 101])
@pytest.mark.parametrize("k", [1, 2, 8])
def test_chunks_are_contiguous_near_equal_and_cover_everything(n, k):
    items = list(range(n))
    parts = _chunks(items, k)
    assert len(parts) == min(n, k)
    assert [x for p in parts for x in p] == items  # order kept: shared prefixes stay together
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


# --------------------------------------------------------------------------- dispatch
class FakeEngine:
    def __init__(self):
        self.ran = 0

    def render(self, messages):
        return "|".join(m["content"] for m in messages)

    def run(self, job):
        self.ran += 1
        return job.index, job.prefix + f" {job.seed % 100}}}", 100, 2, 0.001, None


class FakePool:
    def __init__(self):
        self.engine = FakeEngine()
        self.chunks: list[int] = []
        self._processes: dict = {}

    def map(self, fn, chunks):
        chunks = list(chunks)
        self.chunks.append(len(chunks))
        return [[self.engine.run(j) for j in c] for c in chunks]

    def shutdown(self, **kw):
        pass


def fake_model(layout="auto", processes=2) -> EmbeddedModel:
    import threading

    m = object.__new__(EmbeddedModel)  # no model file: only the dispatch is under test
    m.processes, m.threads, m.min_batch_for_pool, m.layout = processes, 1, 4, layout
    m.chooser, m.last_layout, m._lock, m._pool = LayoutChooser(), None, threading.Lock(), None
    m._engine_ = FakeEngine()
    m.fake_pool = FakePool()

    def get_pool():
        m._pool = m.fake_pool
        return m._pool

    m._get_pool = get_pool
    return m


def batch(n, seed0=0):
    return [Request.chat(f"Worker {i}: hours?", system="You work.", constraint=HOURS, seed=seed0 + i)
            for i in range(n)]


def test_auto_layout_runs_batches_where_the_chooser_says():
    m = fake_model()
    reqs = batch(12)
    first = m.generate(reqs)
    assert m.last_layout == POOL and m.fake_pool.chunks == [2 * CHUNKS_PER_PROCESS]
    assert m.chooser.rates == {}  # the batch that started the pool is not measured
    m.generate(reqs)
    assert m.last_layout == POOL and POOL in m.chooser.rates
    m.generate(reqs)
    assert m.last_layout == IN_PROCESS and IN_PROCESS in m.chooser.rates
    m.chooser.rates = {POOL: 1.0, IN_PROCESS: 2.0}
    again = m.generate(reqs)
    assert m.last_layout == IN_PROCESS
    assert [r.value for r in again] == [r.value for r in first] == [{"hours": i % 100} for i in range(12)]
    m.chooser.rates = {POOL: 1.0, IN_PROCESS: 2.0}
    m.generate(batch(3))  # a small batch always runs here, and is not measured
    assert m.last_layout == IN_PROCESS and m.chooser.rates == {POOL: 1.0, IN_PROCESS: 2.0}
    m.generate(batch(12))
    assert m.chooser.rates[IN_PROCESS] > 2.0  # a batch the pool could have taken is


def test_forced_layouts_and_single_process():
    m = fake_model(layout=IN_PROCESS)
    m.generate(batch(12))
    assert m.last_layout == IN_PROCESS and m._pool is None
    m = fake_model(layout=POOL)
    m.chooser.rates = {POOL: 1.0, IN_PROCESS: 100.0}
    m.generate(batch(12))
    m.generate(batch(12))
    assert m.last_layout == POOL and m.fake_pool.chunks == [8, 8]
    m = fake_model(processes=1)
    m.generate(batch(12))
    assert m.last_layout == IN_PROCESS and m._pool is None


def test_an_unknown_layout_is_a_user_error():
    with pytest.raises(UserError, match="layout"):
        EmbeddedModel(layout="threads")


# --------------------------------------------------------------------------- real model
SYSTEM_A = (
    "You are a worker in a simulated economy choosing how many hours a week to work this "
    "tax year. Your pre-tax income is your wage times your weekly hours. The government "
    "taxes income with a marginal schedule: 10% up to $11,600, 12% up to $47,150, 22% up "
    "to $100,525, 24% above. All revenue is returned to the workers in equal shares. "
    'Reply with JSON only: {"hours": N} with N a whole number from 0 to 100.'
)
SYSTEM_B = "You are a retired worker deciding whether to take a part-time job. Reply with JSON only."


def real_batch(n: int, seed0: int) -> list[Request]:
    return [
        Request.chat(f"You are worker #{i}, aged {25 + i % 40}, earning ${12 + 3 * i} an hour. "
                     "How many hours a week will you work?",
                     system=SYSTEM_A if i % 5 else SYSTEM_B,  # two prefixes, mixed
                     constraint=HOURS, seed=seed0 + i, temperature=0.9, max_tokens=8, tag="worker")
        for i in range(n)
    ]


@needs_llama
@pytest.mark.embedded
@pytest.mark.timeout(300)
def test_batched_replies_equal_one_at_a_time_in_every_layout():
    """Same seeds, same replies: one at a time, batched on the pool (several chunks per
    worker, workers holding the previous batch's prefix), batched in-process, and auto."""
    with EmbeddedModel(processes=2, threads=1, layout="auto") as m:
        first = real_batch(20, seed0=7)
        second = real_batch(20, seed0=500)
        one = [m.generate([r])[0] for r in first]
        assert all(r.ok for r in one), [r.error for r in one if not r.ok]
        m.layout = POOL
        assert [r.text for r in m.generate(first)] == [r.text for r in one]
        pooled_second = m.generate(second)  # the workers start from the first batch's prompts
        assert m.last_layout == POOL and m._pool is not None
        m.layout = IN_PROCESS
        assert [r.text for r in m.generate(first)] == [r.text for r in one]
        assert [r.text for r in m.generate(second)] == [r.text for r in pooled_second]
        m.layout = "auto"
        for _ in range(3):  # whatever the chooser picks
            assert [r.text for r in m.generate(second)] == [r.text for r in pooled_second]
        assert set(m.chooser.rates) == {POOL, IN_PROCESS}


# --------------------------------------------------------------------------- benchmark
def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "llm.py"
    spec = importlib.util.spec_from_file_location("bench_llm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_layouts_and_load_processes_stop_by_pid():
    import os

    bench = _bench()
    assert bench.parse_layout("2x1") == (2, 1, "auto")
    assert bench.parse_layout("2x1/pool") == (2, 1, "pool")
    assert bench.parse_layout("1X2/in-process") == (1, 2, "in-process")
    with pytest.raises(ValueError):
        bench.parse_layout("2x1/threads")
    with bench.Load(2, own_sessions=True) as load:
        pids = [p.pid for p in load.procs]
        assert len(pids) == 2 and all(p.poll() is None for p in load.procs)
        assert all(os.getsid(pid) == pid != os.getsid(0) for pid in pids)  # each its own session
    assert load.procs == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
