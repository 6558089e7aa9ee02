"""The server fault suite: ``econsim run`` against a local OpenAI-compatible server that
fails on purpose, one way per case.

Each case starts :class:`FaultServer` (a threaded stdlib HTTP server in this process,
speaking chat completions, whose valid replies follow the request's JSON schema), runs
``econsim run`` in a subprocess on a small population with a small ``timeout_s``, and
checks the exit status, the manifest's status, the message and a wall-time bound.  The
bounds on a dead or hung server are on the time from the server's first request to the
end of the subprocess (both clocks of this process), so they do not depend on how long
the interpreter takes to import and build the model on a loaded machine.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from conftest_llm import LocalHTTPServer, free_port

from simulator.llm.types import BREAKER_MARK

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1.0  # llm.timeout_s of every case
#: a step against a dead or hung server: two timeouts (the first wave and its one retry),
#: the retry backoff (at most base 0.5 s) and one probe
STEP_BOUND_S = 2 * TIMEOUT_S + 0.5 + TIMEOUT_S
#: what the run does after the failed step (save its tables and manifest, exit), loaded
AFTER_S = 6.0


def reply_for(schema: dict) -> dict:
    """A valid reply to a JSON-schema request: each integer or number at the middle of
    its range, the first enum option, ``true``."""
    out = {}
    for name, p in schema.get("properties", {}).items():
        if "enum" in p:
            out[name] = p["enum"][0]
        elif p.get("type") in ("integer", "number"):
            lo, hi = p.get("minimum", 0), p.get("maximum", 100)
            out[name] = (lo + hi) // 2 if p["type"] == "integer" else (lo + hi) / 2
        elif p.get("type") == "boolean":
            out[name] = True
        else:
            out[name] = "x"
    return out


def completion(content: str) -> bytes:
    return json.dumps({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }).encode()


class FaultServer(LocalHTTPServer):
    """POST behaviour per ``mode``: ok, hang (never answers), 500 (every request),
    garbage (a 200 whose body is HTML), truncate (Content-Length larger than the body,
    then the connection closes), slow (0.3 s a reply), planner_invalid (the planner's
    replies unusable, every other one valid); ``die_after``: after that many POSTs the
    server dies (the listening socket closes, open connections are dropped unanswered)."""

    def __init__(self, mode: str = "ok", die_after: int | None = None) -> None:
        self.mode, self.die_after = mode, die_after
        self.posts = 0
        self.first_post: float | None = None  # time.perf_counter() of the first POST
        self.gave_up: float | None = None  # the client closed a connection a hung POST held
        self.dead = False
        self._lock = threading.Lock()
        self._release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers

            def log_message(self, *a):
                pass

            def _send(self, code: int, body: bytes, length: int | None = None, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                self._send(200, b'{"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "test"}]}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer._lock:
                    outer.posts += 1
                    if outer.first_post is None:
                        outer.first_post = time.perf_counter()
                    dying = outer.die_after is not None and outer.posts > outer.die_after
                if dying or outer.dead:
                    outer.die()
                    self.close_connection = True  # dropped without an answer
                    return
                m = outer.mode
                rf = body.get("response_format") or {}
                schema = (rf.get("json_schema") or {}).get("schema") or {}
                system = " ".join(x.get("content", "") for x in body.get("messages", []) if x.get("role") == "system")
                if m == "hang":
                    while not outer._release.is_set():  # never answer; note when the client gives up
                        ready, _, _ = select.select([self.connection], [], [], 0.02)
                        if ready and self.connection.recv(1, socket.MSG_PEEK) == b"":
                            outer.gave_up = time.perf_counter()
                            break
                    self.close_connection = True
                elif m == "500":
                    self._send(500, b'{"error": {"message": "internal error"}}')
                elif m == "garbage":
                    self._send(200, b"<html><body>502 Bad Gateway</body></html>", ctype="text/html")
                elif m == "truncate":
                    full = completion(json.dumps(reply_for(schema)))
                    self._send(200, full[: len(full) // 2], length=len(full))
                    self.close_connection = True
                elif m == "planner_invalid" and "You set the income tax" in system:
                    self._send(200, completion("I would rather not say."))
                else:
                    if m == "slow":
                        time.sleep(0.3)
                    self._send(200, completion(json.dumps(reply_for(schema)) if schema else "OK"))

        super().__init__(Handler)

    def die(self) -> None:
        with self._lock:
            if self.dead:
                return
            self.dead = True
        threading.Thread(target=self._close_listener, daemon=True).start()

    def _close_listener(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()  # new connections are refused from now on

    def release(self) -> None:
        self._release.set()


def run_econsim(tmp_path: Path, base_url: str, *, workers: int = 16, years: int = 3,
                llm: dict | None = None, limit_s: float = 60) -> tuple[subprocess.CompletedProcess, dict | None, float]:
    """``econsim run`` in a subprocess; (process, manifest or None, ``time.perf_counter()``
    when it ended)."""
    scenario = {
        "name": "faults",
        "population": {"size": workers, "source": "census"},
        "workers": {"policy": "llm"},
        "planner": {"kind": "llm"},
        "run": {"tax_years": years, "seed": 1},
        "llm": {"backend": "openai", "model": "m", "base_url": base_url, "dialect": "openai_json_schema",
                "cache": "off", "timeout_s": TIMEOUT_S, "max_retries": 1, "concurrency": 4, **(llm or {})},
    }
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(scenario))
    out = tmp_path / "run"
    env = {**os.environ, "ECONSIM_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "simulator.cli.main", "run", str(path), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=limit_s, env=env,
                          cwd=tmp_path)
    ended = time.perf_counter()
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    return proc, manifest, ended


def one_line(proc: subprocess.CompletedProcess) -> str:
    """The one line of a failed run (progress lines aside), and no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("econsim: error:", "econsim: run failed:"))]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# --------------------------------------------------------------------------- cases
def test_dead_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens
    t0 = time.perf_counter()
    proc, manifest, ended = run_econsim(tmp_path, url)
    assert proc.returncode == 2 and manifest is None and not (tmp_path / "run").exists()
    line = one_line(proc)
    assert line.startswith(f"econsim: error: cannot reach the model server at {url}: it does not answer")
    assert ended - t0 < 45  # the whole subprocess: connection refused is found at once


def test_server_dies_mid_run(tmp_path):
    with FaultServer(die_after=16 + 1) as srv:  # year 0's 16 workers and year 1's planner
        proc, manifest, ended = run_econsim(tmp_path, srv.base_url)
    assert proc.returncode == 1 and manifest["status"] == "failed"
    line = one_line(proc)
    assert line.startswith("econsim: run failed: the language model failed 16 of 16 worker hours ('worker') "
                           "requests in a step of tax year 1")
    assert f"{BREAKER_MARK} at {srv.base_url}" in line and "connection error" in line
    assert manifest["years_completed"] == 2 and manifest["llm_health"]["questions"]["worker"]["failures"] == 16
    assert srv.posts <= 17 + 4 * 2 + 3, srv.posts  # after it died: one wave and its retries, then nothing


def test_server_hangs(tmp_path):
    with FaultServer("hang") as srv:
        proc, manifest, ended = run_econsim(tmp_path, srv.base_url)
        posts = srv.posts
    assert proc.returncode == 1 and manifest["status"] == "failed"
    line = one_line(proc)
    assert f"{BREAKER_MARK} at {srv.base_url}: 4 requests in a row timed out" in line
    assert "failed 16 of 16 requests in a step of tax year 0" in line
    assert posts <= 4 * 2 + 3, posts  # the first wave twice, then nothing
    assert srv.gave_up - srv.first_post < STEP_BOUND_S, srv.gave_up - srv.first_post
    assert ended - srv.first_post < STEP_BOUND_S + AFTER_S, ended - srv.first_post


def test_a_hung_server_is_found_in_bounded_time_whatever_the_population(tmp_path):
    """1,024 workers, 16 chunks of 64 (concurrency 4): before, each chunk paid the timeouts
    again (about 3 x timeout_s each, 48 s in all); now the first chunk opens the run's
    breaker within 2 x timeout_s and the other 15 fail at once, unsent: the bound is
    STEP_BOUND_S whatever the number of workers."""
    with FaultServer("hang") as srv:
        proc, manifest, ended = run_econsim(tmp_path, srv.base_url, workers=1024, years=1, limit_s=90)
        posts = srv.posts
    assert proc.returncode == 1 and manifest["status"] == "failed", proc.stderr
    line = one_line(proc)
    assert "failed 1024 of 1024 requests in a step of tax year 0" in line
    assert posts <= 4 * 2 + 3, posts  # the other chunks send nothing, not even a probe
    assert srv.gave_up - srv.first_post < STEP_BOUND_S, srv.gave_up - srv.first_post
    assert ended - srv.first_post < STEP_BOUND_S + AFTER_S, ended - srv.first_post


@pytest.mark.parametrize("mode, words", [
    ("500", "http 500: "),
    ("garbage", "truncated or malformed response body"),
    ("truncate", "connection error"),
])
def test_server_answers_errors_or_broken_bodies(tmp_path, mode, words):
    with FaultServer(mode) as srv:
        proc, manifest, ended = run_econsim(tmp_path, srv.base_url)
    assert proc.returncode == 1 and manifest["status"] == "failed"
    line = one_line(proc)
    assert "failed 16 of 16 requests in a step of tax year 0" in line
    assert words in line and f"{BREAKER_MARK} at {srv.base_url}" in line
    assert "llama.cpp" not in line  # not a llama.cpp server: no llama.cpp hint
    assert ended - srv.first_post < STEP_BOUND_S + AFTER_S, ended - srv.first_post


def test_slow_replies_within_the_timeout_succeed(tmp_path):
    with FaultServer("slow") as srv:
        proc, manifest, ended = run_econsim(tmp_path, srv.base_url)
    assert proc.returncode == 0 and manifest["status"] == "completed", proc.stderr
    assert "LLM failures by question (failed/asked): worker hours 0/48 (0.0%), the planner 0/2 (0.0%)" in proc.stdout
    # 3 years of 16 replies 4 at a time and 2 planner replies, 0.3 s each: about 4.2 s
    assert 3.6 < ended - srv.first_post < 20, ended - srv.first_post


def test_only_the_planner_replies_invalid(tmp_path):
    with FaultServer("planner_invalid") as srv:
        proc, manifest, ended = run_econsim(tmp_path, srv.base_url)
    assert proc.returncode == 1 and manifest["status"] == "failed"
    line = one_line(proc)
    assert line.startswith("econsim: run failed: the language model failed 2 of 2 the planner ('planner') "
                           "requests over the run (it never answered: the tax schedule never moved)")
    q = manifest["llm_health"]["questions"]
    assert q["planner"]["failure_rate"] == 1.0 and q["planner"]["invalid"] == 2
    assert q["worker"]["failure_rate"] == 0.0 and manifest["years_completed"] == 3
    assert "the planner 2/2 (100.0%)" in proc.stdout
    assert ended - srv.first_post < 20, ended - srv.first_post
