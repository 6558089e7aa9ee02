"""Scenario files: YAML loading, ``--set`` overrides and the shipped scenarios, every
problem as one line naming the file and the field (:class:`~simulator.errors.UserError`)."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.config.pooling import check_pooling_config, population_columns
from simulator.config.schema import Scenario, format_error
from simulator.errors import UserError


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c = value`` in a nested dict, creating levels as needed."""
    keys = dotted.split(".")
    if not all(keys):
        raise UserError(f"--set {dotted}: empty key segment")
    cur = data
    for k in keys[:-1]:
        nxt = cur.get(k)
        if nxt is None:
            nxt = cur[k] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"--set {dotted}: {k} is not a section")
        cur = nxt
    cur[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with the value parsed as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected dotted.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def scenario_from_dict(
    data: dict[str, Any], source: str = "<scenario>", overrides: list[str] | None = None
) -> Scenario:
    """Validate a scenario dict (after applying ``key=value`` overrides)."""
    data = copy.deepcopy(data)
    set_keys: list[tuple[str, str]] = []
    for text in overrides or []:
        key, value = parse_override(text)
        set_dotted(data, key, value)
        set_keys.append((key, text))
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            blame = [t for k, t in set_keys if loc == k or loc.startswith(k + ".") or k.startswith(loc + ".")]
            lines.append(format_error(f"--set {blame[-1]}" if blame else source, e))
        raise UserError(*lines) from None


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, parse and validate a scenario YAML file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such scenario file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}:{where}: invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    if data is None:
        raise UserError(f"{path}: the file is empty (write at least `name:` and the sections you change)")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    sc = scenario_from_dict(data, str(path), overrides)
    sc.variants(str(path))  # validates every comparison variant now
    if sc.population.path is not None and not sc.population.path.is_absolute():
        sc.population.path = (path.parent / sc.population.path).resolve()
    if sc.population.source == "file" and not sc.population.path.exists():
        raise UserError(f"{path}: population.path: file not found ({sc.population.path})")
    if sc.workers.llm.pooling is not None and sc.population.source == "file":
        try:
            check_pooling_config(sc, population_columns(sc.population.path))
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
    return sc


def shipped_scenarios_dir() -> Path:
    """The shipped scenarios: package data ``simulator/scenarios`` (found with
    :mod:`importlib.resources`, so a wheel install has them too)."""
    return Path(str(resources.files("simulator") / "scenarios"))


def resolve_scenario_path(name: str) -> Path:
    """A path as given, or the name of a shipped scenario (``quickstart``)."""
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    shipped = shipped_scenarios_dir() / f"{name}.yaml"
    return shipped if shipped.exists() else p
