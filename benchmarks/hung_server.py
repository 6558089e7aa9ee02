"""How long ``econsim run`` takes to give up on a hung server, by population size.

A local OpenAI-compatible server (stdlib, in this process) answers ``GET /models`` and
never answers a chat completion.  For each population size, ``econsim run`` (one tax
year, LLM workers, ``llm.timeout_s`` and ``llm.concurrency`` as given, ``max_retries: 1``)
runs in a subprocess; printed: the requests the server received, the seconds from its
first request to the moment the client gave up on the last one (closed its connection),
and to the end of the subprocess (saving the failed run and exiting included; imports and
model building excluded), next to the bound of docs/inference.md, 2 x timeout_s + retry
backoff (0.5 s) + one probe.

    .venv/bin/python benchmarks/hung_server.py --workers 16,1024 --timeout 1
    .venv/bin/python benchmarks/hung_server.py --code ../before   # another checkout's simulator/
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import ROOT, footer, header, portable  # noqa: E402


class HangServer:
    def __init__(self) -> None:
        self.posts = 0
        self.first: float | None = None
        self.last_close: float | None = None  # the client closed a connection with a request pending
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                body = b'{"object": "list", "data": [{"id": "m", "object": "model"}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts += 1
                if outer.first is None:
                    outer.first = time.perf_counter()
                while not outer.release.is_set():  # hang, and note when the client gives up
                    ready, _, _ = select.select([self.connection], [], [], 0.02)
                    if ready and self.connection.recv(1, socket.MSG_PEEK) == b"":
                        outer.last_close = time.perf_counter()
                        break
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def one(workers: int, timeout: float, concurrency: int, code: Path) -> tuple[int, float, float, int]:
    srv = HangServer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scenario = {
                "name": "hung", "population": {"size": workers, "source": "census"},
                "workers": {"policy": "llm"}, "planner": {"kind": "us_federal"},
                "run": {"tax_years": 1, "seed": 1},
                "llm": {"backend": "openai", "model": "m", "base_url": srv.url, "dialect": "none",
                        "cache": "off", "timeout_s": timeout, "max_retries": 1, "concurrency": concurrency},
            }
            path = Path(tmp) / "hung.json"  # JSON is YAML
            path.write_text(json.dumps(scenario))
            env = {**os.environ, "PYTHONPATH": str(code)}
            proc = subprocess.run([sys.executable, "-m", "simulator.cli.main", "run", str(path), "--out",
                                   str(Path(tmp) / "run"), "--no-progress"], capture_output=True, text=True,
                                  env=env, cwd=tmp, timeout=3600)
            ended = time.perf_counter()
            time.sleep(0.1)  # the last closes noticed
        first = srv.first or ended
        return srv.posts, (srv.last_close or ended) - first, ended - first, proc.returncode
    finally:
        srv.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="16,256,1024", help="population sizes, comma-separated")
    ap.add_argument("--timeout", type=float, default=1.0, help="llm.timeout_s")
    ap.add_argument("--concurrency", type=int, default=16, help="llm.concurrency (chunks of 16 x this)")
    ap.add_argument("--code", type=Path, default=ROOT, help="the folder holding the simulator/ package to run")
    args = ap.parse_args()
    started = time.perf_counter()
    print(header(__file__))
    chunk = max(64, 16 * args.concurrency)
    bound = 2 * args.timeout + 0.5 + min(args.timeout, 10.0)
    print(f"code {portable(str(args.code))}; timeout_s {args.timeout:g}, concurrency {args.concurrency}, chunks of {chunk}, "
          f"max_retries 1; bound 2 x timeout_s + 0.5 s + probe = {bound:.1f} s")
    print(f"{'workers':>8} {'chunks':>6} {'requests sent':>13} {'s to give up':>12} {'s to exit':>9} {'exit':>4}")
    for n in (int(x) for x in args.workers.split(",")):
        posts, gave_up, secs, rc = one(n, args.timeout, args.concurrency, args.code)
        print(f"{n:>8,} {-(-n // chunk):>6} {posts:>13,} {gave_up:>12.1f} {secs:>9.1f} {rc:>4}")
    print(footer(started))


if __name__ == "__main__":
    main()
