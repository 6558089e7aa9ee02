"""The openai backend against a scripted stdlib server and a real llama.cpp server."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from conftest_llm import llama_server, needs_llama, scripted_server  # noqa: F401

from simulator.llm import (
    LLMConfig,
    Request,
    build_llm,
    choices,
    integer_field,
    json_object_constraint,
)
from simulator.llm.openai_backend import OpenAIModel, build_chat_kwargs, is_local_url
from simulator.llm.wrappers import RetryPolicy

HOURS = json_object_constraint(hours=integer_field(0, 100))


def req(mode: str, seed: int = 0, **kw) -> Request:
    return Request.chat(f"How many hours? MODE:{mode}", constraint=kw.pop("constraint", HOURS),
                        seed=seed, tag="worker", **kw)


def model(srv, **kw) -> OpenAIModel:
    kw.setdefault("retry", RetryPolicy(max_retries=3, base_s=0.01, cap_s=0.05))
    return OpenAIModel(model="scripted", base_url=srv.base_url, api_key="x", **kw)


# --------------------------------------------------------------------------- pure request building
def test_request_kwargs_per_dialect():
    r = req("ok", seed=5, max_tokens=9, temperature=0.3)
    base = build_chat_kwargs(r, "m", "none")
    assert base["seed"] == 5 and base["max_tokens"] == 9 and base["temperature"] == 0.3
    assert base["messages"] == [{"role": "user", "content": "How many hours? MODE:ok"}]
    assert "response_format" not in base and "extra_body" not in base
    js = build_chat_kwargs(r, "m", "openai_json_schema")["response_format"]
    assert js["type"] == "json_schema" and js["json_schema"]["schema"]["properties"]["hours"]["maximum"] == 100
    jo = build_chat_kwargs(r, "m", "llamacpp_json_object")["response_format"]
    assert jo["type"] == "json_object" and jo["schema"]["required"] == ["hours"]
    gr = build_chat_kwargs(r, "m", "grammar")["extra_body"]["grammar"]
    assert '"100" | [1-9] [0-9] | [0-9]' in gr
    ch = build_chat_kwargs(req("ok", constraint=choices("yes", "no")), "m", "openai_json_schema")
    assert ch["response_format"]["json_schema"]["schema"]["properties"]["choice"]["enum"] == ["yes", "no"]
    assert is_local_url("http://127.0.0.1:8000/v1") and is_local_url("http://localhost/v1")
    assert not is_local_url("https://api.openai.com/v1") and not is_local_url(None)


# --------------------------------------------------------------------------- scripted server
def test_bad_replies_are_recorded(scripted_server):  # noqa: F811
    m = model(scripted_server, dialect="none")
    modes = ["ok", "malformed", "empty", "null", "overrange", "fence", "badbody", "400"]
    out = m.generate([req(x) for x in modes])
    by = dict(zip(modes, out, strict=True))
    assert by["ok"].value == {"hours": 40} and by["ok"].prompt_tokens == 7
    assert by["fence"].value == {"hours": 12}
    for bad in ("malformed", "empty", "null", "overrange"):
        assert by[bad].value is None and by[bad].error_kind == "invalid", bad
    assert "above maximum" in by["overrange"].error
    assert by["badbody"].error is not None and by["badbody"].value is None
    assert by["400"].error_kind == "request" and by["400"].retries == 0
    m.close()


def test_retries_on_5xx_and_429(scripted_server):  # noqa: F811
    m = model(scripted_server, dialect="none")
    a, b, c = m.generate([req("500x2"), req("429x1"), req("500always")])
    assert a.value == {"hours": 41} and a.retries == 2
    assert b.value == {"hours": 41} and b.retries == 1
    assert c.error_kind == "transport" and c.retries == 3 and "http 500" in c.error
    assert scripted_server.hits["500always"] == 4
    m.close()


def test_timeout_is_transport_error(scripted_server):  # noqa: F811
    m = model(scripted_server, dialect="none", timeout_s=0.3, retry=RetryPolicy(max_retries=1, base_s=0.01))
    r = m.generate([req("slow")])[0]
    assert r.error_kind == "transport" and "timeout" in r.error and r.retries == 1
    m.close()


def test_whole_batch_concurrent(scripted_server):  # noqa: F811
    m = model(scripted_server, dialect="none", concurrency=8)
    t0 = time.perf_counter()
    out = m.generate([req("slow") for _ in range(8)])
    assert all(r.ok for r in out)
    assert time.perf_counter() - t0 < 6  # 8 x 2 s sequentially would be 16 s
    m.close()


def test_reask_through_factory_and_sent_params(scripted_server, tmp_path):  # noqa: F811
    c = LLMConfig(backend="openai", model="scripted", base_url=scripted_server.base_url,
                  dialect="llamacpp_json_object", cache_path=tmp_path / "c.sqlite", max_retries=2)
    llm = build_llm(c)
    r = llm.generate([req("overrange", seed=3)])[0]
    assert r.error_kind == "invalid" and r.retries == 2
    seeds = [b["seed"] for b in scripted_server.bodies]
    assert seeds[0] == 3 and len(set(seeds)) == 3
    assert scripted_server.bodies[0]["response_format"]["type"] == "json_object"
    llm.close()


def test_generate_inside_running_loop(scripted_server):  # noqa: F811
    m = model(scripted_server, dialect="none")

    async def notebook_cell():
        return m.generate([req("ok")])  # a sync call from inside a running loop

    assert asyncio.run(notebook_cell())[0].value == {"hours": 40}
    # and from several threads at once
    results = []
    ts = [threading.Thread(target=lambda: results.extend(m.generate([req("ok")]))) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == 3 and all(r.ok for r in results)
    m.close()
    m.close()  # idempotent


# --------------------------------------------------------------------------- real llama.cpp server
@pytest.fixture(scope="module")
def smollm2_file():
    from simulator.llm.embedded import quantized_copy, resolve_gguf

    return str(quantized_copy(resolve_gguf(None)))  # once, in the user cache dir


@needs_llama
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_llama_server_dialects_and_kill_mid_batch(smollm2_file, tmp_path):
    prompt = "Reply with JSON. You earn $15 per hour. How many hours do you work this week?"
    with llama_server(smollm2_file) as (proc, base):
        results = {}
        for dialect in ("llamacpp_json_object", "grammar"):
            m = OpenAIModel(model="smollm2", base_url=base, api_key="x", dialect=dialect,
                            retry=RetryPolicy(max_retries=1, base_s=0.05))
            out = m.generate([Request.chat(prompt, constraint=HOURS, seed=s, max_tokens=12, tag="worker")
                              for s in range(3)])
            results[dialect] = out
            m.close()
        for r in results["grammar"]:  # the grammar enforces the range exactly
            assert r.ok and 0 <= r.value["hours"] <= 100 and r.completion_tokens > 0, r
        assert all(r.text.strip().startswith("{") for r in results["llamacpp_json_object"])
        # json_schema: llama.cpp's server answers HTTP 500; recorded with a hint, no traceback
        m = OpenAIModel(model="smollm2", base_url=base, api_key="x", dialect="openai_json_schema",
                        retry=RetryPolicy(max_retries=0))
        r = m.generate([Request.chat(prompt, constraint=HOURS, max_tokens=12)])[0]
        m.close()
        if r.error is not None:
            assert "http 5" in r.error and "llamacpp_json_object" in r.error

        # kill the server mid-batch: earlier replies survive, the rest fail cleanly after retries
        m = OpenAIModel(model="smollm2", base_url=base, api_key="x", dialect="grammar", concurrency=4,
                        retry=RetryPolicy(max_retries=2, base_s=0.05, cap_s=0.2))
        batch = [Request.chat(f"{prompt} (case {i})", constraint=HOURS, seed=i, max_tokens=60)
                 for i in range(40)]
        killer = threading.Timer(1.0, proc.kill)
        killer.start()
        try:
            out = m.generate(batch)
        finally:
            killer.cancel()
            m.close()
        proc.wait(timeout=10)
        failed = [r for r in out if not r.ok]
        assert len(out) == 40 and failed, "the server was killed, some requests must fail"
        print(f"killed mid-batch: {len(out) - len(failed)} ok, {len(failed)} failed: {failed[0].error}")
        for r in failed:
            assert r.error_kind == "transport" and r.retries <= 2 and r.value is None
            assert "connection" in r.error or "timeout" in r.error or "http" in r.error or (
                f"server stopped answering at {base}" in r.error and r.retries == 0)
        # the breaker opens only after 4 (the concurrency) requests in a row failed after
        # their retries; the requests not yet sent then end at once
        assert sum(r.retries == 2 for r in failed) >= 4
        if len(failed) > 8:
            assert any("server stopped answering" in r.error for r in failed)
        for r in out:
            if r.ok:
                assert 0 <= r.value["hours"] <= 100


@needs_llama
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cli_check_against_llama_server(smollm2_file, capsys):
    from simulator.cli.main import main as cli_main

    with llama_server(smollm2_file) as (_proc, base):
        rc = cli_main(["llm", "check", "--backend", "openai", "--base-url", base, "--model", "smollm2",
                       "--dialect", "grammar"])
    out = capsys.readouterr().out
    assert rc == 0 and "held" in out
