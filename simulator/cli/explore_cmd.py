"""``econsim explore SCENARIO``: serve the interactive exploration page (Mesa SolaraViz)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from simulator.errors import UserError


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
    import yaml

    out = {}
    for text in items:
        if "=" not in text:
            raise UserError(f"--param {text!r}: expected NAME=VALUE")
        k, v = text.split("=", 1)
        out[k.strip()] = yaml.safe_load(v) if v.strip() else ""
    return out


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
    from simulator.explore.model import (
        ExploreModel,  # deferred: every command loads only what it runs (fast --help)
    )

    params = _parse_params(args.params)
    path = resolve_scenario_path(args.scenario)
    if not path.exists():
        raise UserError(f"{args.scenario}: no such scenario file or shipped scenario")
    given = Path(args.scenario)
    scenario = str(given.resolve()) if given.exists() else args.scenario
    # build once here: a bad scenario or control is one line and exit 2, not a broken page
    ExploreModel(scenario, auto_first_year=False, **params)
    env = dict(os.environ,
               ECONSIM_EXPLORE_SCENARIO=scenario,
               ECONSIM_EXPLORE_PARAMS=json.dumps(params),
               SOLARA_TELEMETRY_MIXPANEL_ENABLE="False")
    cmd = [sys.executable, "-m", "solara", "run", "simulator.explore.app", "--host", args.host,
           "--port", str(args.port), "--production", "--open" if args.open else "--no-open",
           "--log-level", "warning"]
    print(f"econsim: serving {args.scenario} at http://{args.host}:{args.port} (Ctrl-C stops)",
          flush=True)
    return subprocess.call(cmd, env=env)
