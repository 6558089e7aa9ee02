"""``econsim explore SCENARIO``: serve the interactive exploration page (Mesa SolaraViz).

The page is served by a Solara server in a child process, which ends with this one:
Ctrl-C and SIGTERM stop it (terminated, killed after a grace period), and any other
end of this process (SIGKILL, SIGHUP, ...) ends it through its lifeline (:mod:`simulator.lifeline`).  The
address is printed once the server accepts connections, with the real port (``--port
0`` picks a free one).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from simulator.errors import UserError
from simulator.lifeline import ChildLifeline

#: Seconds to wait for the server to accept connections (imports take a while on a
#: loaded machine), and for it to end after SIGTERM before it is killed.
START_TIMEOUT_S = 300.0
STOP_GRACE_S = 5.0
#: What the server process runs: arm the lifeline first, then Solara's own command line.
_SERVER_MAIN = ("from simulator.lifeline import arm_from_env; arm_from_env(); "
                "from solara.__main__ import main; main()")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore",
        help="serve an interactive page to design a tax schedule (needs econsim[explore])",
        description="Serve a Mesa SolaraViz page for SCENARIO: sliders for the bracket rates, "
        "planner, population and utility; step tax years and watch revenue, welfare and "
        "winners and losers respond.",
    )
    p.add_argument("scenario", metavar="SCENARIO", nargs="?", default="rational_baselines",
                   help="a YAML file or a shipped scenario (default rational_baselines)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="starting value of a page control, e.g. --param population_size=5000 "
                   "or --param rate_6=45 (repeatable)")
    p.add_argument("--open", action="store_true", help="open a browser")
    p.set_defaults(func=run)


def _parse_params(items: list[str]) -> dict:
    """``NAME=VALUE`` items -> {name: value}, each value read as YAML (a number, a word)."""
    import yaml

    out = {}
    for text in items:
        if "=" not in text:
            raise UserError(f"--param {text!r}: expected NAME=VALUE")
        k, v = text.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v) if v.strip() else ""
        except yaml.YAMLError:
            out[k.strip()] = v  # not YAML: kept as text, and checked as such
    return out


def _listen_port(host: str, port: int) -> int:
    """The port the server will listen on: ``port``, checked to be free on ``host``, or a
    free one for 0 (the server binds it a moment later)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc})") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            s.bind(addr)
        except OSError as exc:
            raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                            "choose another --port (0: a free one)") from None
        return int(s.getsockname()[1])


def _connect_host(host: str) -> str:
    """Where to check that a server bound to ``host`` accepts connections."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _wait_serving(proc: subprocess.Popen, host: str, port: int, timeout: float) -> bool:
    """Wait until ``host:port`` accepts connections (True) or ``proc`` ended (False)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection((_connect_host(host), port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen) -> None:
    """End the server: SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve(cmd: list[str], env: dict[str, str], host: str, port: int, name: str) -> int:
    """Run the server ``cmd`` as a child that ends with this process; print its address
    once it serves; return its exit status (128 + signal when a signal stopped us)."""
    from simulator.run.signals import (
        StopGuard,  # deferred: every command loads only what it runs (fast --help)
    )

    lifeline = ChildLifeline()
    guard = StopGuard().install()  # SIGTERM, like Ctrl-C, raises here (the child is stopped below)
    proc = None
    try:
        proc = subprocess.Popen(cmd, **lifeline.popen_kwargs(env))
        lifeline.started()
        if not _wait_serving(proc, host, port, START_TIMEOUT_S):
            if proc.poll() is None:
                raise UserError(f"the page server did not accept connections on {host}:{port} "
                                f"within {START_TIMEOUT_S:.0f} s")
            print(f"econsim: error: the page server stopped before serving (exit status {proc.returncode})",
                  file=sys.stderr)
            return proc.returncode or 1
        print(f"econsim: serving {name} at http://{host}:{port} (Ctrl-C stops)", flush=True)
        return proc.wait()
    finally:
        guard.hold()  # no second signal interrupts the clean-up
        if proc is not None:
            _stop(proc)
        lifeline.close()
        guard.uninstall()


def run(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in ("solara", "altair") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(
            f"econsim explore needs the 'explore' extra ({', '.join(missing)} missing): "
            "pip install 'econsim[explore]'"
        )
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0-65535, got {args.port}")
    from simulator.config.loading import (
        resolve_scenario_path,  # deferred: every command loads only what it runs (fast --help)
    )
    from simulator.explore.model import (  # deferred: every command loads only what it runs (fast --help)
        ExploreModel,
        check_controls,
        default_settings,
    )

    raw = _parse_params(args.params)
    path = resolve_scenario_path(args.scenario)
    if not path.exists():
        raise UserError(f"{args.scenario}: no such scenario file or shipped scenario")
    given = Path(args.scenario)
    scenario = str(given.resolve()) if given.exists() else args.scenario
    try:
        params = check_controls(raw, default_settings(scenario))
    except UserError as exc:
        raise UserError(*(f"--param {p}" for p in exc.problems)) from None
    # build once here: a bad scenario or combination is one line and exit 2, not a broken page
    ExploreModel(scenario, auto_first_year=False, **params)
    port = _listen_port(args.host, args.port)
    env = dict(os.environ,
               ECONSIM_EXPLORE_SCENARIO=scenario,
               ECONSIM_EXPLORE_PARAMS=json.dumps(params),
               SOLARA_TELEMETRY_MIXPANEL_ENABLE="False")
    cmd = [sys.executable, "-c", _SERVER_MAIN, "run", "simulator.explore.app", "--host", args.host,
           "--port", str(port), "--workers", "1", "--production",
           "--open" if args.open else "--no-open", "--log-level", "warning"]
    return serve(cmd, env, args.host, port, args.scenario)
