"""Interface, scripted backend, retry, cache/replay, telemetry, config and CLI (no model)."""

from __future__ import annotations

import json
import random
import threading

import pytest
from conftest_llm import scripted_server  # noqa: F401  (fixture)
from pydantic import ValidationError

from simulator.cli.main import main as cli_main
from simulator.errors import UserError
from simulator.llm import (
    CacheMissError,
    ConcurrencyLimit,
    LLMConfig,
    Request,
    Response,
    ResponseCache,
    RetryingModel,
    RetryPolicy,
    ScriptedModel,
    ScriptedTransportError,
    Telemetry,
    build_llm,
    choices,
    demo_reply,
    derive_seed,
    enum_field,
    integer_field,
    json_object_constraint,
    number_field,
    parse_reply,
    request_key,
)

HOURS = json_object_constraint(hours=integer_field(0, 100))


def worker_requests(n: int, seed0: int = 0) -> list[Request]:
    return [
        Request.chat(f"Wage {10 + i}, tax {i % 7 * 10}%: hours?", system="You are a worker.",
                     constraint=HOURS, seed=seed0 + i, tag="worker")
        for i in range(n)
    ]


def cfg(tmp_path, **kw) -> LLMConfig:
    base = {"backend": "scripted", "cache_path": tmp_path / "cache.sqlite"}
    base.update(kw)
    return LLMConfig(**base)


# --------------------------------------------------------------------------- scripted
def test_scripted_callable_and_canned():
    m = ScriptedModel(lambda r: f'{{"hours": {r.seed * 2}}}')
    out = m.generate(worker_requests(3))
    assert [r.value for r in out] == [{"hours": 0}, {"hours": 2}, {"hours": 4}]
    assert m.calls == 3 and m.batches == 1
    canned = ScriptedModel(["yes", "no"])
    vote = [Request.chat("vote", constraint=choices("yes", "no"), tag="voter")] * 3
    assert [r.value for r in canned.generate(vote)] == ["yes", "no", "yes"]
    assert ScriptedModel(["x"]).generate([]) == []


@pytest.mark.parametrize(
    "reply, kind",
    [("", "invalid"), ("garbage", "invalid"), ('{"hours": 1000}', "invalid"), ('{"hours": -3}', "invalid")],
)
def test_bad_replies_recorded_not_raised(reply, kind):
    r = ScriptedModel([reply]).generate(worker_requests(1))[0]
    assert r.value is None and r.error_kind == kind and r.error.startswith("invalid reply")
    assert not r.ok


def test_script_exceptions_become_errors():
    def boom(req):
        if req.seed == 1:
            raise ValueError("script bug")
        if req.seed == 2:
            raise ScriptedTransportError("connection reset")
        return '{"hours": 5}'

    out = ScriptedModel(boom).generate(worker_requests(3))
    assert out[0].ok
    assert out[1].error_kind == "backend" and "script bug" in out[1].error
    assert out[2].error_kind == "transport"


def test_demo_reply_is_valid_and_reproducible():
    c = json_object_constraint(h=integer_field(-5, 5), r=number_field(0, 1), v=enum_field("a", "b"))
    for s in range(30):
        req = Request.chat("x", constraint=c, seed=s)
        v, err = parse_reply(demo_reply(req), c)
        assert err is None
        assert demo_reply(req) == demo_reply(Request.chat("x", constraint=c, seed=s))
    assert parse_reply(demo_reply(Request.chat("v", constraint=choices("y", "n"))), choices("y", "n"))[1] is None


# --------------------------------------------------------------------------- retry
def test_reask_invalid_with_derived_seed():
    seen = []

    def script(req):
        seen.append((req.seed, req.temperature))
        return '{"hours": 7}' if len(seen) >= 3 else "nonsense"

    m = RetryingModel(ScriptedModel(script), RetryPolicy(max_retries=3), sleep=lambda s: None)
    r = m.generate(worker_requests(1, seed0=11))[0]
    assert r.ok and r.value == {"hours": 7} and r.retries == 2
    seeds = [s for s, _ in seen]
    assert seeds == [11, derive_seed(11, 1), derive_seed(11, 2)] and len(set(seeds)) == 3
    assert seen[0][1] == 0.0 and seen[1][1] >= 0.7  # greedy re-asks would repeat the reply


def test_reask_gives_up_after_max_retries():
    base = ScriptedModel(["never valid"])
    r = RetryingModel(base, RetryPolicy(max_retries=2), sleep=lambda s: None).generate(worker_requests(1))[0]
    assert r.error_kind == "invalid" and r.retries == 2 and base.calls == 3


def test_transport_retry_with_backoff_and_jitter():
    sleeps: list[float] = []
    state = {"n": 0}

    def flaky(req):
        state["n"] += 1
        if state["n"] <= 2:
            raise ScriptedTransportError("refused")
        return '{"hours": 3}'

    pol = RetryPolicy(max_retries=4, base_s=0.1, cap_s=1.0)
    m = RetryingModel(ScriptedModel(flaky), pol, sleep=sleeps.append, rng=random.Random(0))
    r = m.generate(worker_requests(1))[0]
    assert r.ok and r.retries == 2
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2
    assert all(0 <= pol.delay(a) <= 1.0 for a in range(20))
    off = RetryingModel(ScriptedModel(flaky), pol, retry_transport=False, sleep=sleeps.append)
    state["n"] = 0
    assert off.generate(worker_requests(1))[0].error_kind == "transport"


# --------------------------------------------------------------------------- cache
def test_cache_warm_rerun_is_exact_with_zero_calls(tmp_path):
    def script(req):
        return f'{{"hours": {random.Random(req.seed).randint(0, 100)}}}'

    c = cfg(tmp_path)
    reqs = worker_requests(20)
    first = build_llm(c, script=script)
    a = first.generate(reqs)
    first.close()
    base = ScriptedModel(lambda r: "SHOULD NOT BE CALLED")
    second = build_llm(c, backend=base)
    b = second.generate(reqs)
    assert base.calls == 0
    assert [x.text for x in a] == [x.text for x in b] and [x.value for x in a] == [x.value for x in b]
    assert all(x.cached for x in b) and not any(x.cached for x in a)
    assert second.telemetry.summary()["cache_hits"] == 20
    second.close()
    # replay: same outputs, never calls a model
    replay = build_llm(cfg(tmp_path, cache="replay"), backend=base)
    assert [x.value for x in replay.generate(reqs)] == [x.value for x in a] and base.calls == 0
    replay.close()


def test_replay_miss_raises_user_error_naming_tag(tmp_path):
    llm = build_llm(cfg(tmp_path, cache="replay"), backend=ScriptedModel(['{"hours": 1}']))
    with pytest.raises(CacheMissError) as ei:
        llm.generate([Request.chat("What is the top marginal rate you set?", constraint=HOURS, tag="planner")])
    assert isinstance(ei.value, UserError)
    msg = str(ei.value)
    assert "planner" in msg and "top marginal rate" in msg and "\n" not in msg


def test_failures_are_recorded_for_replay_but_asked_again_in_readwrite(tmp_path):
    calls = {"n": 0}

    def script(req):
        calls["n"] += 1
        return "bad" if calls["n"] <= 2 else '{"hours": 9}'

    c = cfg(tmp_path, max_retries=0)
    llm = build_llm(c, script=script)
    assert llm.generate(worker_requests(1))[0].error_kind == "invalid"
    assert len(ResponseCache(c.resolved_cache_path())) == 1  # the failure, kept for replay
    replay = build_llm(cfg(tmp_path, max_retries=0, cache="replay"), script=script)
    again = replay.generate(worker_requests(1))[0]
    assert again.error_kind == "invalid" and again.cached and calls["n"] == 1
    assert llm.generate(worker_requests(1))[0].error_kind == "invalid"  # readwrite asks again
    assert llm.generate(worker_requests(1))[0].value == {"hours": 9}
    assert llm.generate(worker_requests(1))[0].cached
    llm.close()


def test_key_depends_on_everything_that_matters():
    from simulator.llm import ModelInfo

    info = ModelInfo("embedded", "m", "rev1")
    r = worker_requests(1)[0]
    k = request_key(info, r)
    assert k == request_key(info, worker_requests(1)[0])
    for other in (
        r.replace(seed=99), r.replace(temperature=0.5), r.replace(max_tokens=3),
        r.replace(constraint=json_object_constraint(hours=integer_field(0, 99))),
        r.replace(messages=({"role": "user", "content": "other"},)),
    ):
        assert request_key(info, other) != k
    assert request_key(ModelInfo("embedded", "m", "rev2"), r) != k
    assert request_key(ModelInfo("openai", "m", "rev1"), r) != k
    assert request_key(info, r.replace(tag="other")) == k  # the tag is not part of the output


def test_cache_threads(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")

    def work(t):
        for i in range(50):
            cache.put_many([(f"{t}-{i}", "x", 1, 1, "w", "m")])
            assert cache.get_many([f"{t}-{i}"])

    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(cache) == 200


def test_default_cache_path_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ECONSIM_CACHE_DIR", str(tmp_path / "cc"))
    assert LLMConfig().resolved_cache_path() == tmp_path / "cc" / "llm-cache.sqlite"
    assert LLMConfig(cache_path="x.sqlite").resolved_cache_path(tmp_path) == tmp_path / "x.sqlite"


# --------------------------------------------------------------------------- telemetry
def test_telemetry_per_period_and_tag(tmp_path):
    def script(req):
        return "bad" if "MODE:bad" in req.messages[-1]["content"] else '{"hours": 5}'

    llm = build_llm(cfg(tmp_path, max_retries=1), script=script)
    tel: Telemetry = llm.telemetry
    tel.start_period(2024)
    llm.generate(worker_requests(4) + [Request.chat("MODE:bad", constraint=HOURS, tag="planner")])
    tel.start_period(2025)
    llm.generate(worker_requests(4))  # all cache hits
    rows = {(r["period"], r["tag"]): r for r in tel.period_rows()}
    assert rows[("2024", "worker")]["requests"] == 4 and rows[("2024", "worker")]["cache_hits"] == 0
    assert rows[("2024", "planner")]["failures"] == 1
    assert rows[("2024", "planner")]["constraint_violations"] == 1
    assert rows[("2024", "planner")]["retries"] == 1
    assert rows[("2025", "worker")]["cache_hits"] == 4
    s = tel.summary()
    assert s["requests"] == 9 and s["by_tag"]["worker"]["requests"] == 8 and s["batches"] == 2
    for key in ("latency_p50_s", "latency_p95_s", "prompt_tokens", "completion_tokens"):
        assert key in s
    import pandas as pd

    assert len(pd.DataFrame(tel.period_rows())) == 3
    json.dumps(s)  # plain data
    llm.close()


def test_concurrency_limit_splits_batches():
    base = ScriptedModel(['{"hours": 1}'])
    m = ConcurrencyLimit(base, max_calls=1, max_batch=3)
    assert len(m.generate(worker_requests(7))) == 7 and base.batches == 3


def test_empty_batch(tmp_path):
    llm = build_llm(cfg(tmp_path))
    assert llm.generate([]) == []


# --------------------------------------------------------------------------- config & secrets
def test_config_defaults_and_validation():
    c = LLMConfig()
    assert c.backend == "embedded" and c.cache == "readwrite" and c.api_key_env == "OPENAI_API_KEY"
    assert c.vllm.enable_prefix_caching is True
    with pytest.raises(ValidationError):
        LLMConfig(backend="gpt")
    with pytest.raises(ValidationError):
        LLMConfig(unknown_field=1)
    with pytest.raises(ValidationError):
        LLMConfig(api_key_env="sk-abc123-secret")
    with pytest.raises(ValidationError):
        LLMConfig(backend="vllm")
    with pytest.raises(ValidationError):
        LLMConfig(vllm={"tensor_parallel_size": 0})
    yaml_like = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1",
                 "dialect": "grammar", "vllm": {"max_model_len": 1024}}
    assert LLMConfig.model_validate(yaml_like).vllm.max_model_len == 1024
    with pytest.raises(UserError):
        build_llm({"backend": "nope"})


def test_api_key_never_leaks(tmp_path, monkeypatch, scripted_server):  # noqa: F811
    secret = "sk-test-SECRET-1234567890"
    monkeypatch.setenv("ECONSIM_TEST_KEY", secret)
    c = LLMConfig(backend="openai", model="m", base_url=scripted_server.base_url,
                  api_key_env="ECONSIM_TEST_KEY", cache_path=tmp_path / "c.sqlite")
    assert secret not in repr(c) and secret not in json.dumps(c.model_dump(mode="json"))
    llm = build_llm(c)
    out = llm.generate(worker_requests(2))
    assert all(r.ok for r in out)
    hdrs = {k.lower(): v for k, v in scripted_server.headers[0].items()}
    assert hdrs["authorization"] == f"Bearer {secret}"  # it is sent...
    assert secret not in repr(llm) and secret not in repr(out)  # ...but never shown
    assert secret not in json.dumps(llm.telemetry.summary())
    llm.close()
    assert secret.encode() not in (tmp_path / "c.sqlite").read_bytes()


def test_missing_key_is_user_error(monkeypatch):
    monkeypatch.delenv("ECONSIM_NO_SUCH_KEY", raising=False)
    with pytest.raises(UserError, match="ECONSIM_NO_SUCH_KEY"):
        build_llm(LLMConfig(backend="openai", model="m", api_key_env="ECONSIM_NO_SUCH_KEY", cache="off"))
    # a server on this machine needs no key
    build_llm(LLMConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1",
                        api_key_env="ECONSIM_NO_SUCH_KEY", cache="off")).close()


# --------------------------------------------------------------------------- CLI
def test_cli_check_scripted(capsys):
    assert cli_main(["llm", "check", "--backend", "scripted"]) == 0
    out = capsys.readouterr().out
    assert "structured output" in out and "value=" in out


def test_cli_check_unreachable(capsys):
    from conftest_llm import free_port

    port = free_port()
    rc = cli_main(["llm", "check", "--backend", "openai", "--model", "m",
                   "--base-url", f"http://127.0.0.1:{port}/v1", "--dialect", "grammar"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and len(err.strip().splitlines()) == 1


def test_cli_bad_backend():
    with pytest.raises(SystemExit) as ei:
        cli_main(["llm", "check", "--backend", "gpt"])
    assert ei.value.code == 2


def test_response_defaults():
    r = Response()
    assert not r.ok and r.retries == 0 and r.cached is False

