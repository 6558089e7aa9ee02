"""A run never silently misleads: failures are classified, counted, and end the run.

Fault injection against real local HTTP servers started here (stdlib ``http.server``
threads that refuse, hang, truncate, answer a permanent 500 or count requests in
flight), and scripted models that fail on purpose.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

import numpy as np
import pandas as pd
import pytest
from conftest_llm import LocalHTTPServer

from simulator.config.loading import scenario_from_dict
from simulator.errors import UserError
from simulator.llm import Request, build_llm, integer_field, json_object_constraint
from simulator.llm.openai_backend import OpenAIModel
from simulator.llm.scripted import ScriptedModel, ScriptedTransportError
from simulator.llm.types import LanguageModel
from simulator.llm.wrappers import RetryPolicy
from simulator.results import load_run
from simulator.run.runner import run_scenario
from simulator.sim.health import RunFailed

HOURS = json_object_constraint(hours=integer_field(0, 100))
K = 7


def _completion(content: str) -> bytes:
    return json.dumps({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        "timings": {"prompt_ms": 30.0, "predicted_ms": 20.0},
    }).encode()


class FaultServer(LocalHTTPServer):
    """A chat-completions server whose POST behaviour is ``mode``:

    ok, hang (never answers), truncate (Content-Length larger than the body, then close),
    badjson (a complete but cut JSON body), dialect500 (HTTP 500 naming json_schema),
    slow (0.2 s per reply; counts requests in flight).  ``get_mode`` likewise for GET.
    """

    def __init__(self, mode: str = "ok", get_mode: str = "ok", owned_by: str | None = None) -> None:
        self.mode, self.get_mode = mode, get_mode
        models = {"object": "list", "data": [{"id": "m", "object": "model",
                                              **({"owned_by": owned_by} if owned_by else {})}]}
        self._models = json.dumps(models).encode()
        self.posts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body, length=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                if outer.get_mode == "hang":
                    outer._release.wait(30)
                    return
                self._send(200, outer._models)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                self.rfile.read(n)
                with outer._lock:
                    outer.posts += 1
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    m = outer.mode
                    if m == "hang":
                        outer._release.wait(30)
                    elif m == "truncate":
                        body = _completion('{"hours": 40}')
                        self._send(200, body[: len(body) // 2], length=len(body))
                        self.close_connection = True
                    elif m == "badjson":
                        body = _completion('{"hours": 40}')
                        self._send(200, body[: len(body) // 2])
                    elif m == "500":
                        self._send(500, b'{"error": {"message": "boom"}}')
                    elif m == "dialect500":
                        self._send(500, b'{"error": {"message": "Unrecognized schema: json_schema"}}')
                    elif m == "slow":
                        time.sleep(0.2)
                        self._send(200, _completion('{"hours": 40}'))
                    else:
                        self._send(200, _completion('{"hours": 40}'))
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        super().__init__(Handler)

    def release(self) -> None:
        self._release.set()


def model_for(url: str, **kw) -> OpenAIModel:
    kw.setdefault("retry", RetryPolicy(max_retries=2, base_s=0.01, cap_s=0.02))
    return OpenAIModel(model="m", base_url=url, api_key="x", dialect="none", **kw)


def ask(n: int = 1) -> list[Request]:
    return [Request.chat(f"hours? {i}", constraint=HOURS, seed=i, tag="worker") for i in range(n)]


# --------------------------------------------------------------------------- health check
def test_dead_server_is_a_one_line_user_error_within_seconds():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    m = model_for(url)
    t0 = time.perf_counter()
    with pytest.raises(UserError) as err:
        m.generate(ask())
    m.close()
    assert time.perf_counter() - t0 < 10
    msg = str(err.value)
    assert url in msg and "does not answer" in msg and "\n" not in msg


def test_hung_server_is_found_by_the_health_check():
    with FaultServer(get_mode="hang") as srv:
        m = model_for(srv.base_url, timeout_s=1.0)
        t0 = time.perf_counter()
        with pytest.raises(UserError, match="does not answer"):
            m.generate(ask())
        m.close()
        assert time.perf_counter() - t0 < 10
        assert srv.posts == 0  # no batch was sent


def test_connect_timeout_is_far_shorter_than_the_read_timeout():
    with FaultServer() as srv:
        m = model_for(srv.base_url, timeout_s=120.0)
        assert m.generate(ask())[0].ok
        t = m._client.timeout
        assert t.connect == 5.0 and t.read == 120.0
        m.close()


# --------------------------------------------------------------------------- classification
def test_truncated_body_is_a_retried_transport_error():
    with FaultServer("truncate") as srv:
        m = model_for(srv.base_url)
        r = m.generate(ask())[0]
        m.close()
    assert r.error_kind == "transport" and r.retries == 2, r
    assert srv.posts == 3


def test_cut_json_body_is_a_retried_transport_error_not_an_invalid_reply():
    with FaultServer("badjson") as srv:
        m = model_for(srv.base_url)
        r = m.generate(ask())[0]
        m.close()
    assert r.error_kind == "transport" and "truncated or malformed" in r.error and r.retries == 2


@pytest.mark.parametrize("owned_by", ["llamacpp", None])
def test_a_permanent_dialect_500_is_not_retried(owned_by):
    """The llama.cpp hint only when the health check found llama.cpp (``owned_by``)."""
    with FaultServer("dialect500", owned_by=owned_by) as srv:
        m = OpenAIModel(model="m", base_url=srv.base_url, api_key="x", dialect="openai_json_schema",
                        retry=RetryPolicy(max_retries=3, base_s=0.01, cap_s=0.02))
        out = m.generate(ask(3))
        m.close()
    assert all(r.error_kind == "request" and r.retries == 0 for r in out)
    assert ("llama.cpp's server answers 500 to json_schema" in out[0].error) == (owned_by is not None)
    assert "permanent: not retried" in out[0].error and "llm.dialect" in out[0].error
    assert srv.posts == 3  # one each, no retries


def test_the_llamacpp_hint_needs_llamacpp_and_a_json_schema():
    """A plain HTTP 500 from any other server, or to a request without a schema, carries no
    llama.cpp hint; the detection reads ``Server`` and ``owned_by`` of ``GET /models``."""
    from simulator.llm.openai_backend import server_kind

    assert server_kind("llama.cpp", "") == "llama.cpp"
    assert server_kind("uvicorn", '{"data": [{"id": "m", "owned_by": "me", "permissions": []}]}') == "llama.cpp"
    assert server_kind("uvicorn", '{"data": [{"id": "m", "owned_by": "llamacpp"}]}') == "llama.cpp"
    assert server_kind(None, '{"data": [{"id": "gpt", "owned_by": "openai"}]}') is None
    assert server_kind("nginx", "<html>") is None and server_kind(None, None) is None
    with FaultServer("500") as srv:
        m = OpenAIModel(model="m", base_url=srv.base_url, api_key="x", dialect="openai_json_schema",
                        retry=RetryPolicy(max_retries=0))
        (r,) = m.generate(ask(1))
        m.close()
    assert r.error_kind == "transport" and r.error.startswith("http 500") and "llama" not in r.error
    with FaultServer("500", owned_by="llamacpp") as srv:
        m = OpenAIModel(model="m", base_url=srv.base_url, api_key="x", dialect="openai_json_schema",
                        retry=RetryPolicy(max_retries=0))
        (with_schema,) = m.generate(ask(1))
        (plain,) = m.generate([Request.chat("hello", seed=1)])
        m.close()
    assert m.server_kind == "llama.cpp"
    assert "llama.cpp's server answers 500 to json_schema" in with_schema.error
    assert plain.error.startswith("http 500") and "llama" not in plain.error


def test_in_flight_requests_never_exceed_the_concurrency_bound():
    with FaultServer("slow") as srv:
        m = model_for(srv.base_url, concurrency=4)
        out = m.generate(ask(20))
        m.close()
    assert all(r.ok for r in out)
    assert srv.max_in_flight == 4  # reached, never exceeded


def test_server_timings_give_queue_wait_and_service_apart():
    with FaultServer("slow") as srv:
        llm = build_llm({"backend": "openai", "model": "m", "base_url": srv.base_url,
                         "dialect": "none", "cache": "off", "concurrency": 2})
        out = llm.generate(ask(4))
        llm.close()
    assert all(r.service_s == pytest.approx(0.05) for r in out)
    row = llm.telemetry.summary()["by_tag"]["worker"]
    assert row["service_p50_s"] == pytest.approx(0.05)
    # 4 replies of 0.2 s two at a time: the request wall time includes the server's time
    assert row["latency_p50_s"] >= 0.2 and row["queue_p50_s"] == pytest.approx(row["latency_p50_s"] - 0.05, abs=0.05)


# --------------------------------------------------------------------------- hung server
def bounded(fn, limit_s: float):
    """``fn()`` in a thread; fails if it has not returned within ``limit_s`` (without the
    breaker, a hung server holds a batch for timeout x tries per wave)."""
    box: dict = {}

    def target():
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t0 = time.perf_counter()
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"still waiting on the hung server after {limit_s} s"
    if "exc" in box:
        raise box["exc"]
    return box["out"], time.perf_counter() - t0


def test_a_timeout_is_retried_at_most_once():
    with FaultServer("hang") as srv:
        m = model_for(srv.base_url, timeout_s=0.5, retry=RetryPolicy(max_retries=3, base_s=0.01, cap_s=0.02))
        (out,), _ = bounded(lambda: m.generate(ask(1)), 10)
        m.close()
        assert srv.posts == 2  # 1 + one retry, not 1 + max_retries
    assert out.error_kind == "transport" and out.retries == 1 and "timeout after 0.5 s" in out.error


def test_a_hung_server_trips_the_breaker_and_the_next_batch_tries_again():
    """40 requests at concurrency 4, read timeout 1 s, 3 retries: without the breaker 10
    waves x 4 tries x 1 s = 40 s and 160 requests; with it, the first wave times out
    twice, the breaker opens after 4 failures in a row, the requests in flight are
    cancelled and the rest end at once: 2 x timeout_s."""
    with FaultServer("hang") as srv:
        m = model_for(srv.base_url, timeout_s=1.0, concurrency=4, probe_every_s=0.0,
                      retry=RetryPolicy(max_retries=3, base_s=0.01, cap_s=0.02))
        out, wall = bounded(lambda: m.generate(ask(40)), 15)
        posts = srv.posts
        assert 2.0 <= wall < 3.0, wall  # two timeouts, not a third for the requests in flight
        assert all(r.error_kind == "transport" for r in out)
        # the first wave twice (4 x 2), plus at most the 3 requests that took a slot
        # freed before the 4th failure opened the breaker (cancelled, none retried)
        assert 8 <= posts <= 11, posts
        skipped = [r for r in out if "server stopped answering" in r.error]
        assert len(skipped) >= 40 - 8 and all(r.retries == 0 for r in skipped)
        assert skipped[0].error.startswith(
            f"transport: server stopped answering at {srv.base_url}: 4 requests in a row timed out")
        # still hung: the next batch sends one probe (it times out) and nothing else
        again, wall = bounded(lambda: m.generate(ask(8)), 10)
        assert srv.posts == posts + 1 and wall < 1.5
        assert all("still not answering a probe (timeout after 1 s)" in r.error for r in again)
        # the server is back: the probe answers, and the batch is sent
        srv.mode = "ok"
        again = m.generate(ask(8))
        m.close()
    assert all(r.ok for r in again) and srv.posts == posts + 1 + 1 + 8


def test_the_breaker_holds_across_batches_until_a_probe_is_due():
    """Without a probe due (``probe_every_s``), later batches fail at once, unsent."""
    with FaultServer("hang") as srv:
        m = model_for(srv.base_url, timeout_s=0.5, concurrency=2, probe_every_s=60.0,
                      retry=RetryPolicy(max_retries=0))
        first, _ = bounded(lambda: m.generate(ask(4)), 10)
        posts = srv.posts
        later, wall = bounded(lambda: [m.generate(ask(64)) for _ in range(4)], 5)
        m.close()
    assert wall < 0.5 and srv.posts == posts  # 256 requests, none sent
    assert all(r.error_kind == "transport" and "server stopped answering" in r.error
               for batch in later for r in batch)
    assert m.breaker.trips == 1 and m.breaker.probes == 0


def test_a_server_answering_500_opens_the_breaker_and_a_probe_closes_it():
    """HTTP 500 to everything: retried, then the breaker opens naming the last error; a
    probe answered 500 keeps it open; once the server answers, the probe closes it."""
    with FaultServer("500") as srv:
        m = model_for(srv.base_url, concurrency=2, probe_every_s=0.0,
                      retry=RetryPolicy(max_retries=1, base_s=0.01, cap_s=0.02))
        out = m.generate(ask(10))
        # breaker_after=2 requests in a row, each sent twice; with 2 slots, a request that
        # took a freed slot may finish both tries before the other first one ends (a slow
        # machine), so at most (after + concurrency - 1) requests x 2 tries are sent
        assert 2 * 2 <= srv.posts <= (2 + 2 - 1) * 2
        assert out[-1].error.startswith(f"transport: server stopped answering at {srv.base_url}: 2 requests "
                                        "in a row failed (transport), the last: http 500: ")
        posts = srv.posts
        again = m.generate(ask(3))
        assert srv.posts == posts + 1  # the probe only
        assert all("still not answering a probe (http 500)" in r.error for r in again)
        srv.mode = "ok"
        back = m.generate(ask(3))
        m.close()
    assert all(r.ok for r in back) and srv.posts == posts + 1 + 1 + 3
    assert m.breaker.trips == 1 and m.breaker.probes == 2


def test_breaker_counts_in_a_row_and_can_be_turned_off():
    from simulator.llm.wrappers import CircuitBreaker

    now = [0.0]
    b = CircuitBreaker(3, probe_every_s=10.0, clock=lambda: now[0])
    fail = ("transport", "transport: connection error (x)")
    for kind, err in (fail, fail, (None, None), fail, fail):
        assert not b.ended(kind, err, "URL")
    assert b.open is None  # a reply in between starts the count again
    assert b.ended(*fail, "URL")
    assert b.open.startswith("transport: server stopped answering at URL: 3 requests in a row failed (transport)")
    assert not b.probe_due()  # just opened: no probe for probe_every_s
    now[0] = 10.0
    assert b.probe_due() and not b.probe_due()  # one caller probes, the others fail fast
    b.probed(False, "timeout after 1 s")
    assert "still not answering a probe (timeout after 1 s)" in b.open
    now[0] = 19.9
    assert not b.probe_due()
    now[0] = 20.0
    assert b.probe_due()
    b.probed(True, "answered")
    assert b.open is None and b.in_a_row == 0 and b.trips == 1 and b.probes == 2
    off = CircuitBreaker(0)
    for _ in range(50):
        off.ended(*fail, "URL")
    assert off.open is None
    llm = build_llm({"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1", "cache": "off",
                     "concurrency": 1, "read_timeout_retries": 0, "breaker_after": 0})
    inner = llm.inner.inner
    assert inner.breaker_after == 0 and inner.read_timeout_retries == 0
    assert OpenAIModel(model="m", api_key="x", concurrency=1).breaker_after == 2  # at least 2
    assert OpenAIModel(model="m", api_key="x", concurrency=16).breaker_after == 16


def test_a_run_against_a_hung_server_fails_quickly(tmp_path):
    with FaultServer("hang") as srv:
        sc = scenario(population={"size": 40}, planner={"kind": "us_federal"},
                      llm={"backend": "openai", "model": "m", "base_url": srv.base_url, "dialect": "none",
                           "timeout_s": 1.0, "concurrency": 4, "max_retries": 3})
        with pytest.raises(RunFailed) as err:
            bounded(lambda: run_scenario(sc, tmp_path / "run", progress=False), 20)
        assert srv.posts <= 11
    msg = str(err.value)
    assert "40 of 40 requests" in msg and "40 transport failures" in msg
    assert f"server stopped answering at {srv.base_url}: 4 requests in a row timed out" in msg
    res = load_run(tmp_path / "run")
    assert res.status == "failed" and res.years["transport_failure_rate"].tolist() == [1.0]


# --------------------------------------------------------------------------- runs
def scenario(**kw):
    base = {
        "population": {"size": 10, "source": "census"},
        "workers": {"policy": "llm"},
        "planner": {"kind": "llm"},
        "run": {"tax_years": 3, "seed": 2},
        "llm": {"backend": "scripted", "cache": "off", "max_retries": 0},
    }
    for k, v in kw.items():
        base[k] = {**base.get(k, {}), **v}
    return scenario_from_dict(base)


class Counting(LanguageModel):
    """Wraps a model: counts generate calls and batch sizes, and whether it was closed."""

    def __init__(self, inner):
        self.inner, self.sizes, self.closed = inner, [], 0

    @property
    def info(self):
        return self.inner.info

    def generate(self, requests):
        self.sizes.append(len(requests))
        return self.inner.generate(requests)

    def close(self):
        self.closed += 1


def dying_script(alive_years: int):
    """Valid replies until the planner's ``alive_years``-th call, then the server is gone."""
    state = {"planner": 0}

    def fn(req):
        if req.tag == "planner":
            state["planner"] += 1
        if state["planner"] >= alive_years:
            raise ScriptedTransportError("connection refused")
        if req.tag == "planner":
            return json.dumps({f"b{i + 1}": 0 for i in range(K)})
        return '{"hours": 35}'

    return fn


def test_a_server_that_dies_fails_the_run_with_exit_1(tmp_path, capsys, monkeypatch):
    sc = scenario()
    llm = build_llm(sc.llm, script=dying_script(2))
    with pytest.raises(RunFailed, match="transport failures"):
        run_scenario(sc, tmp_path / "run", progress=False, llm=llm)
    res = load_run(tmp_path / "run")
    assert res.status == "failed" and "max_failure_rate" in res.manifest["reason"]
    # years 0 and 1 answered; year 2's step failed entirely: recorded, then the run stopped
    assert res.years["transport_failure_rate"].tolist() == [0.0, 0.0, 1.0]
    assert res.manifest["years_completed"] == 3
    planner = res.tables["planner"]
    assert planner["projection"].iloc[-1] == "no reply (transport failure): kept"
    assert res.years["planner_transport_failures_total"].iloc[-1] == 1
    # the CLI: one line, exit status 1
    import simulator.run.runner as runner_mod
    from simulator.cli.main import main

    real = runner_mod.run_scenario
    monkeypatch.setattr(runner_mod, "run_scenario",
                        lambda s, out, **k: real(s, out, **{**k, "llm": build_llm(s.llm, script=dying_script(2))}))
    path = tmp_path / "s.yaml"
    import yaml

    path.write_text(yaml.safe_dump(sc.model_dump(mode="json")))
    rc = main(["run", str(path), "--out", str(tmp_path / "cli"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("econsim: run failed: the language model failed") and err.count("\n") == 1


def test_failures_below_the_bound_end_completed_with_warnings_and_exit_3(tmp_path, capsys, monkeypatch):
    def flaky(req):
        if req.tag == "planner":
            return json.dumps({f"b{i + 1}": 0 for i in range(K)})
        return '{"hours": 35}'

    seen = {"n": 0}

    def script(req):  # one worker request in ten never gets an answer
        if req.tag == "worker":
            seen["n"] += 1
            if seen["n"] % 10 == 0:
                raise ScriptedTransportError("reset")
        return flaky(req)

    sc = scenario()
    res = run_scenario(sc, tmp_path / "run", progress=False, llm=build_llm(sc.llm, script=script))
    assert res.status == "completed_with_warnings"
    y = res.years
    assert y["fallback_rate"].tolist() == [0.1, 0.1, 0.1]
    assert y["transport_failure_rate"].tolist() == [0.1, 0.1, 0.1]
    health = res.manifest["llm_health"]
    assert health["fallback_rate"] == pytest.approx(0.1)
    assert health["transport_failure_rate"] == pytest.approx(3 / 32)  # 30 workers + 2 planner calls
    assert res.manifest["warnings"] and "10.0% of worker replies fell back" in res.manifest["warnings"][0]
    out = capsys.readouterr().out
    assert "warning: degraded run: 10.0% of worker replies fell back" in out
    from simulator.report.markdown import write_report

    page = write_report(res.path, None).read_text()
    assert "- warning: degraded run" in page and "completed_with_warnings" in page
    html_page = (res.path / "report" / "report.html").read_text()
    assert 'id="status"' in html_page and "warning: degraded run: 10.0% of worker replies fell back" in html_page

    # exit status 3 from the CLI, and status 0 when every reply is usable
    import yaml

    import simulator.run.runner as runner_mod
    from simulator.cli.main import main

    real = runner_mod.run_scenario
    seen["n"] = 0
    monkeypatch.setattr(runner_mod, "run_scenario",
                        lambda s, out, **k: real(s, out, **{**k, "llm": build_llm(s.llm, script=script)}))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc.model_dump(mode="json")))
    assert main(["run", str(path), "--out", str(tmp_path / "cli"), "--no-progress"]) == 3
    monkeypatch.setattr(runner_mod, "run_scenario",
                        lambda s, out, **k: real(s, out, **{**k, "llm": build_llm(s.llm, script=flaky)}))
    assert main(["run", str(path), "--out", str(tmp_path / "clean"), "--no-progress"]) == 0
    assert load_run(tmp_path / "clean").status == "completed"


def dead(req):
    raise ScriptedTransportError("connection refused")


def test_max_failure_rate_one_never_stops(tmp_path):
    sc = scenario(llm={"max_failure_rate": 1.0}, run={"tax_years": 2})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=dead))
    assert res.status == "completed_with_warnings"
    assert res.years["fallback_rate"].tolist() == [1.0, 1.0]


def test_invalid_planner_reply_is_logged_as_invalid_not_transport(tmp_path):
    sc = scenario(llm={"max_failure_rate": 1.0}, run={"tax_years": 2})
    script = lambda r: "nonsense" if r.tag == "planner" else '{"hours": 30}'  # noqa: E731
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=script))
    log = res.tables["planner"]
    assert log["projection"].tolist() == ["invalid reply: kept"] and log["error_kind"].tolist() == ["invalid"]
    assert res.years["planner_invalid_total"].iloc[-1] == 1
    assert res.years["planner_transport_failures_total"].iloc[-1] == 0


# --------------------------------------------------------------------------- batching, closing
def test_one_worker_step_is_one_backend_call_even_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    sc = scenario(population={"size": 150}, run={"tax_years": 1})
    inner = Counting(ScriptedModel(lambda r: '{"hours": 30}'))
    llm = build_llm(sc.llm, backend=inner)
    run_scenario(sc, tmp_path, progress=False, llm=llm)
    assert inner.sizes == [150]  # today: cut into chunks of 64 on a terminal


@pytest.mark.parametrize("fail", [False, True])
def test_the_runner_closes_the_model_it_built_however_the_run_ends(tmp_path, monkeypatch, fail):
    import simulator.llm as llm_pkg

    built = []

    def fake_build(config, run_dir=None, **kw):
        script = dead if fail else (lambda r: '{"hours": 30}')
        inner = Counting(ScriptedModel(script))
        built.append(inner)
        return build_llm(config, backend=inner, run_dir=run_dir)

    monkeypatch.setattr(llm_pkg, "build_llm", fake_build)
    sc = scenario(run={"tax_years": 2}, planner={"kind": "us_federal"})
    if fail:
        with pytest.raises(RunFailed):
            run_scenario(sc, tmp_path, progress=False)
    else:
        run_scenario(sc, tmp_path, progress=False)
    assert len(built) == 1 and built[0].closed == 1


def test_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    sc = scenario(population={"size": 40}, run={"tax_years": 2})
    run_scenario(sc, tmp_path, llm=build_llm(sc.llm, script=lambda r: '{"hours": 30}'
                                             if r.tag == "worker" else json.dumps({f"b{i + 1}": 0 for i in range(K)})))
    err = capsys.readouterr().err
    # numbered like the years table, the batch lines, fork --at-year and the stop message
    assert "econsim: tax year 0 (1/2 done): objective" in err and "econsim: tax year 1 (2/2 done)" in err
    assert "year 0 workers: 40 prompts ..." in err and "40 prompts done in" in err


# --------------------------------------------------------------------------- files
def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        sc = scenario(workers={"policy": "rational"}, planner={"kind": "us_federal"}, run={"tax_years": 1})
        run_scenario(sc, tmp_path / "r", progress=False)
    finally:
        os.umask(old)
    for f in ("manifest.json", "years.parquet", "population.parquet"):
        assert stat.S_IMODE((tmp_path / "r" / f).stat().st_mode) == 0o644, f


def test_truncated_parquet_is_one_line_exit_2(tmp_path, capsys):
    from simulator.cli.main import main

    sc = scenario(workers={"policy": "rational"}, planner={"kind": "us_federal"}, run={"tax_years": 1})
    run_scenario(sc, tmp_path / "r", progress=False)
    p = tmp_path / "r" / "years.parquet"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(UserError, match="years.parquet: damaged parquet file"):
        load_run(tmp_path / "r")
    assert main(["report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "years.parquet" in err[0] and "re-run" in err[0]


def test_truncated_cached_model_file_is_one_line(tmp_path):
    pytest.importorskip("llama_cpp")
    from simulator.llm.embedded import _Engine

    models = tmp_path / "models"
    models.mkdir()
    bad = models / "smollm2.0123456789abcdef.Q4_0.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 200)
    with pytest.raises(UserError) as err:
        _Engine(str(bad), 1, 256)
    msg = str(err.value)
    assert str(bad) in msg and "delete it" in msg and "\n" not in msg


def test_years_frame_columns_are_plain(tmp_path):
    sc = scenario(run={"tax_years": 1}, planner={"kind": "us_federal"})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=lambda r: '{"hours": 30}'))
    y = res.years
    assert res.status == "completed"
    for col in ("fallback_rate", "transport_failure_rate", "llm_failure_rate", "llm_transport_failure_rate"):
        assert col in y and float(y[col].iloc[0]) == 0.0
    assert isinstance(y, pd.DataFrame) and np.isfinite(y["objective"]).all()


def test_ballots_without_a_reply_are_transport_failures_not_invalid(tmp_path):
    sc = scenario(democracy={"enabled": True, "election_every": 1, "candidates": 2},
                  run={"tax_years": 2}, population={"size": 6}, planner={"kind": "us_federal"},
                  llm={"max_failure_rate": 1.0})

    def script(req):
        if req.tag == "voter":
            if req.seed % 2:
                raise ScriptedTransportError("reset")
            return "Z"  # not a candidate: an unusable reply
        if req.tag == "platform":
            return json.dumps({f"b{i + 1}": 10 for i in range(K)})
        return '{"hours": 35}'

    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=script))
    ballots = res.tables["ballots"]
    e = res.tables["elections"]
    assert not ballots["valid"].any()
    assert e["transport_failures"].sum() == ballots["transport_failure"].sum() > 0
    assert e["invalid_ballots"].sum() == (~ballots["transport_failure"]).sum() > 0


def test_behaviour_prints_a_line_per_phase_off_a_terminal(capsys):
    """Piped (stderr not a terminal), ``econsim behaviour`` says what it is doing as it goes."""
    from simulator.cli.main import main

    assert main(["behaviour", "quickstart", "--workers", "12", "--perturbations=-0.1,0,0.1",
                 "--set", "llm.backend=scripted", "--set", "llm.cache=off"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("validity: ")]
    # quickstart lets people not work: the participation phase asks once more
    assert lines[0] == "validity: incentives net-of-tax -10% (12 prompts, 0/156 done)"
    assert len(lines) == 13 and lines[-1].endswith("(12 prompts, 144/156 done)")


def test_requests_before_the_run_or_of_another_run_are_not_counted(tmp_path):
    """A shared language model (run_comparison with llm=...) that failed earlier does not
    count against the next run."""
    sc = scenario(run={"tax_years": 1}, planner={"kind": "us_federal"})
    llm = build_llm(sc.llm, script=lambda r: '{"hours": 30}')
    bad = build_llm(sc.llm, script=dead)
    bad.generate(ask(50))  # 50 failures on the same telemetry object
    shared = build_llm(sc.llm, script=lambda r: '{"hours": 30}', telemetry=bad.telemetry)
    res = run_scenario(sc, tmp_path / "a", progress=False, llm=shared)
    assert res.status == "completed" and res.manifest["llm_health"]["llm_requests"] == 10
    assert run_scenario(sc, tmp_path / "b", progress=False, llm=llm).status == "completed"


@pytest.mark.parametrize("value", ["[1.5,0,0,0,0,0,0]", "[-0.1,0,0,0,0,0,0]", "[.nan,0,0,0,0,0,0]"])
def test_validate_rejects_planner_rates_outside_0_1(value, capsys):
    from simulator.cli.main import main

    rc = main(["validate", "rational_baselines", "--set", "compare=[]", "--set", "planner.kind=fixed",
               "--set", f"planner.rates={value}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "planner.rates must lie in [0, 1]" in err[0]


def test_an_unreachable_server_leaves_no_half_made_run(tmp_path, capsys):
    """A user error before the first tax year (here: nobody answers at the URL) is one line,
    exit 2, and leaves no run directory behind; an existing empty --out folder stays empty."""
    from simulator.cli.main import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    args = ["run", "quickstart", "--no-progress", "--set", "llm.backend=openai",
            "--set", f"llm.base_url={url}", "--set", "llm.model=m", "--set", "llm.cache=off",
            "--set", "population.size=4", "--set", "run.tax_years=1"]
    assert main([*args, "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert url in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    assert main([*args, "--out", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())


def test_one_question_failing_alone_stops_the_run(tmp_path):
    """Every satisfaction reply unusable while every hours reply is fine: the step's overall
    failure rate (about 1/2 with as many hours as satisfaction requests, diluted further by
    exploration steps) stays under the bound, but the satisfaction question is lost
    entirely; the run must stop and name it."""
    sc = scenario(workers={"llm": {"bounded": True, "welfare_on": "adjusted"}},
                  planner={"kind": "us_federal"}, population={"size": 12},
                  run={"tax_years": 2, "steps_per_year": 2})

    def script(req):
        if req.tag == "satisfaction":
            return "maybe"  # never a valid yes/no
        return '{"hours": 35}'

    with pytest.raises(RunFailed, match=r"worker satisfaction \('satisfaction'\) requests in a step") as err:
        run_scenario(sc, tmp_path / "run", progress=False, llm=build_llm(sc.llm, script=script))
    assert "failed 12 of 12" in str(err.value)
    assert load_run(tmp_path / "run").status == "failed"


# --------------------------------------------------------------------------- every question
def planner_reply(req):
    return json.dumps({f"b{i + 1}": 0 for i in range(K)})


def by_tag_from_llm_table(res) -> dict[str, tuple[int, int]]:
    """(requests, failures) per tag from the run's llm table (telemetry per year), an
    independent count of what the manifest's llm_health.questions says."""
    t = res.tables["llm"].groupby("tag")[["requests", "failures"]].sum()
    return {tag: (int(r.requests), int(r.failures)) for tag, r in t.iterrows() if tag != "persona"}


def test_a_planner_that_never_answers_fails_the_run_and_says_so(tmp_path, capsys, monkeypatch):
    """Every planner reply unusable, every worker reply fine: 2 planner failures among 32
    requests (6%) used to end completed_with_warnings; the planner is its own question."""
    script = lambda r: "no idea" if r.tag == "planner" else '{"hours": 30}'  # noqa: E731
    sc = scenario()
    with pytest.raises(RunFailed) as err:
        run_scenario(sc, tmp_path / "run", progress=False, llm=build_llm(sc.llm, script=script))
    msg = str(err.value)
    assert msg.startswith("the language model failed 2 of 2 the planner ('planner') requests over the run "
                          "(it never answered: the tax schedule never moved), in tax years 1, 2 (100% > "
                          "llm.max_failure_rate 50%; 0 transport failures, 2 unusable replies")
    res = load_run(tmp_path / "run")
    assert res.status == "failed" and res.manifest["reason"] == msg
    assert res.manifest["years_completed"] == 3  # the years are kept
    q = res.manifest["llm_health"]["questions"]
    assert q["planner"] == {"question": "the planner", "requests": 2, "failures": 2, "failure_rate": 1.0,
                            "transport_failures": 0, "invalid": 2, "failed_years": [1, 2]}
    assert {t: (v["requests"], v["failures"]) for t, v in q.items()} == by_tag_from_llm_table(res)
    assert res.years["rate_0"].nunique() == 1  # the schedule never moved
    out = capsys.readouterr().out
    assert "LLM failures by question (failed/asked): worker hours 0/30 (0.0%), the planner 2/2 (100.0%)" in out
    # the CLI: exit status 1 and the one line
    import yaml

    import simulator.run.runner as runner_mod
    from simulator.cli.main import main

    real = runner_mod.run_scenario
    monkeypatch.setattr(runner_mod, "run_scenario",
                        lambda s, out, **k: real(s, out, **{**k, "llm": build_llm(s.llm, script=script)}))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc.model_dump(mode="json")))
    assert main(["run", str(path), "--out", str(tmp_path / "cli"), "--no-progress"]) == 1
    err_out = capsys.readouterr().err
    assert err_out.count("\n") == 1 and "the planner ('planner') requests over the run" in err_out


def test_a_planner_failing_most_years_stops_the_run_early(tmp_path):
    """Held to the bound after every step once asked MIN_RUN_REQUESTS times: a 12-year run
    whose planner never answers stops at tax year 3, not after 12 years."""
    script = lambda r: "no idea" if r.tag == "planner" else '{"hours": 30}'  # noqa: E731
    sc = scenario(run={"tax_years": 12})
    with pytest.raises(RunFailed, match=r"failed 3 of 3 the planner \('planner'\) requests so far"):
        run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=script))
    assert load_run(tmp_path).manifest["years_completed"] == 4  # years 0..3


def test_a_planner_failing_once_is_a_warning_naming_it(tmp_path, capsys):
    """One planner reply in four unusable (25% <= 50%): completed_with_warnings, and the
    warning names the planner, its own rate and the year."""
    seen = {"planner": 0}

    def script(req):
        if req.tag == "planner":
            seen["planner"] += 1
            return "no idea" if seen["planner"] == 2 else planner_reply(req)
        return '{"hours": 30}'

    sc = scenario(run={"tax_years": 5})
    res = run_scenario(sc, tmp_path, progress=False, llm=build_llm(sc.llm, script=script))
    assert res.status == "completed_with_warnings"
    w = res.manifest["warnings"]
    assert w[0].startswith("degraded run: 0.0% of worker replies fell back, 1.9% of 54 LLM requests failed")
    assert w[1].startswith("the planner ('planner'): 1 of 4 requests failed (25.0%; tax year 2); "
                           "first error: invalid reply")
    assert len(w) == 2
    assert res.manifest["llm_health"]["questions"]["planner"]["failure_rate"] == 0.25
    assert "warning: the planner ('planner'): 1 of 4 requests failed" in capsys.readouterr().out


def test_candidates_and_the_leader_are_questions_of_their_own(tmp_path):
    """Elections every year: candidates' platforms, the elected leader's planner and the
    votes are counted apart; platforms that never parse fail the run, naming them."""
    demo = {"enabled": True, "election_every": 1, "candidates": 2, "winner_mode": "planner"}

    def ok(req):
        if req.tag in ("platform", "winner_planner", "planner"):
            return planner_reply(req)
        if req.tag == "voter":
            return "A"
        return '{"hours": 35}'

    sc = scenario(democracy=demo, run={"tax_years": 3}, population={"size": 8})
    res = run_scenario(sc, tmp_path / "ok", progress=False, llm=build_llm(sc.llm, script=ok))
    q = res.manifest["llm_health"]["questions"]
    assert res.status == "completed" and set(q) == {"worker", "platform", "voter", "winner_planner"}
    assert {t: (v["requests"], v["failures"]) for t, v in q.items()} == by_tag_from_llm_table(res)
    assert q["platform"]["requests"] == 4 and q["voter"]["requests"] == 16  # years 1, 2
    bad = lambda r: "vote for me" if r.tag == "platform" else ok(r)  # noqa: E731
    with pytest.raises(RunFailed, match=r"failed 4 of 4 candidate platforms \('platform'\) requests"):
        run_scenario(sc, tmp_path / "bad", progress=False, llm=build_llm(sc.llm, script=bad))


def test_a_checkpoint_without_question_counts_restores():
    from simulator.sim.health import RunHealth

    h = RunHealth()
    state = h.checkpoint_state()
    del state["questions"]  # written before per-question accounting
    h.restore_state(state)
    assert h.questions == {} and h.final_status([]) == ("completed", [])
