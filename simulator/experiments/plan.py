"""The plan of an experiment: variants (``compare:`` x ``sweep:``) times seeds.

Every variant runs on every seed; the population of a run is drawn from its seed (or
``population.seed``), so all variants of one seed see the same workers and the
differences between variants are paired.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from simulator.config.loading import set_dotted
from simulator.config.schema import Scenario, format_error
from simulator.errors import UserError

LABEL_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Variant:
    """One policy variant: a label, the full scenario (without seeds) and ``overrides``,
    what it changes in the base scenario as dotted keys (its ``compare:`` entry, then its
    sweep point), e.g. ``{"planner.kind": "flat", "planner.rate": 0.2}``."""

    label: str
    scenario: Scenario
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One run of an experiment: a variant on a seed, written to ``path``."""

    variant: str
    seed: int
    path: Path
    scenario: Scenario

    @property
    def rel(self) -> str:
        return f"runs/{self.variant}/seed-{self.seed}"


@dataclass
class ExperimentPlan:
    """Variants, seeds and the baseline of an experiment rooted at ``root``."""

    root: Path
    base: Scenario
    variants: list[Variant]
    seeds: list[int]
    baseline: str
    status: str = "planned"

    def tasks(self) -> list[Task]:
        """Every (variant, seed) run, seed-major so early results cover every variant."""
        out = []
        for seed in self.seeds:
            for v in self.variants:
                sc = with_seed(v.scenario, seed)
                out.append(Task(v.label, seed, self.root / "runs" / v.label / f"seed-{seed}", sc))
        return out

    def describe(self) -> dict[str, Any]:
        """The JSON-able plan stored in ``experiment.json``."""
        return {
            "name": self.base.name,
            "seeds": self.seeds,
            "baseline": self.baseline,
            "variants": [
                {"label": v.label, "overrides": v.overrides, "scenario": scenario_key(v.scenario)}
                for v in self.variants
            ],
            "scenario": self.base.model_dump(mode="json"),
        }


def with_seed(scenario: Scenario, seed: int) -> Scenario:
    """The scenario with ``run.seed`` set (and ``run.seeds`` cleared): one run."""
    run = scenario.run.model_copy(update={"seed": int(seed), "seeds": None})
    return scenario.model_copy(update={"run": run})


def scenario_key(scenario: Scenario) -> dict[str, Any]:
    """What must match for a stored run to count as a run of this variant."""
    d = scenario.model_dump(mode="json", exclude={"compare", "sweep", "output", "experiment"})
    d["run"].pop("seed", None)
    d["run"].pop("seeds", None)
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def is_experiment(scenario: Scenario) -> bool:
    """True when the scenario has ``run.seeds``, ``compare:`` or ``sweep:`` (an
    experiment directory, even for one seed); a plain ``run.seed`` is a single run."""
    return bool(scenario.compare or scenario.sweep or scenario.run.seeds is not None)


def _check_sweep_key(key: str, source: str) -> None:
    model: type[BaseModel] | None = Scenario
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields if model is not None else {}
        if part not in fields or part in ("compare", "sweep", "experiment", "output"):
            raise UserError(f"{source}: sweep: {key!r} is not a scenario field")
        ann = fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None and i < len(parts) - 1:
            raise UserError(f"{source}: sweep: {key!r} is not a scenario field ({part} is a value)")
    if model is not None:
        raise UserError(f"{source}: sweep: {key!r} is a section; sweep one of its fields")


def dotted(changes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested scenario changes as dotted keys: ``{"planner": {"kind": "flat"}}`` ->
    ``{"planner.kind": "flat"}`` (lists and other values are kept as they are)."""
    out: dict[str, Any] = {}
    for k, v in changes.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(dotted(v, key + "."))
        else:
            out[key] = v
    return out


def _fmt_value(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
    return text or "x"


def sweep_points(scenario: Scenario, source: str = "<scenario>") -> list[tuple[str, dict[str, Any]]]:
    """The sweep grid as (label, {dotted key: value}) pairs; ``[("", {})]`` without a sweep."""
    if not scenario.sweep:
        return [("", {})]
    keys = list(scenario.sweep)
    for k in keys:
        _check_sweep_key(k, source)
        vals = scenario.sweep[k]
        if not isinstance(vals, list) or not vals:
            raise UserError(f"{source}: sweep.{k}: expected a non-empty list of values")
    short = [k.rsplit(".", 1)[-1] for k in keys]
    if len(set(short)) < len(short):
        short = keys
    out = []
    for combo in itertools.product(*(scenario.sweep[k] for k in keys)):
        label = "_".join(f"{s}-{_fmt_value(v)}" for s, v in zip(short, combo, strict=True))[:64]
        out.append((label, dict(zip(keys, combo, strict=True))))
    labels = [lab for lab, _ in out]
    if len(set(labels)) < len(labels):  # values that print alike: number them
        out = [(f"p{i}", o) for i, (_, o) in enumerate(out)]
    return out


def plan_experiment(
    scenario: Scenario,
    root: str | Path,
    *,
    baseline: str | None = None,
    source: str = "<scenario>",
) -> ExperimentPlan:
    """Expand ``compare:`` x ``sweep:`` x ``run.seeds`` into a validated plan.

    Raises :class:`UserError` for a sweep key that is not a scenario field, a sweep
    point that does not validate, or a baseline that is not a variant.
    """
    root = Path(root)
    seeds = scenario.run.seed_list()
    compare = scenario.variants(source)  # validates compare labels and sections
    changes = [dotted({k: v for k, v in c.items() if k != "label"}) for c in scenario.compare] or [{}]
    points = sweep_points(scenario, source)
    variants: list[Variant] = []
    for (clabel, csc), cchanges in zip(compare, changes, strict=True):
        for slabel, over in points:
            if not over:
                label = clabel
                sc = csc
            else:
                label = slabel if not scenario.compare else f"{clabel}_{slabel}"[:64]
                data = csc.model_dump(mode="json", exclude={"compare", "sweep"}, exclude_unset=True)
                for k, v in over.items():
                    set_dotted(data, k, v)
                data["name"] = f"{scenario.name}-{label}"
                try:
                    sc = Scenario.model_validate(data)
                except ValidationError as exc:
                    where = ", ".join(f"{k}={v!r}" for k, v in over.items())
                    raise UserError(*[
                        format_error(f"{source}: sweep point {where}", e) for e in exc.errors()
                    ]) from None
            variants.append(Variant(label, sc, {**cchanges, **over}))
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise UserError(f"{source}: variant labels repeat: {', '.join(labels)}")
    for lab in labels:
        if not LABEL_RE.fullmatch(lab) or lab in (".", ".."):
            raise UserError(f"{source}: variant label {lab!r} cannot name a folder")
    baseline = baseline if baseline is not None else scenario.experiment.baseline
    if baseline is None:
        baseline = labels[0]
    elif baseline not in labels:
        raise UserError(f"baseline {baseline!r} is not a variant (variants: {', '.join(labels)})")
    # relative LLM cache paths are shared by the whole experiment, not one per run
    if scenario.llm.cache_path is not None and not Path(scenario.llm.cache_path).expanduser().is_absolute():
        cache = (root / scenario.llm.cache_path).resolve()
        variants = [
            Variant(v.label, v.scenario.model_copy(update={
                "llm": v.scenario.llm.model_copy(update={"cache_path": cache})}), v.overrides)
            for v in variants
        ]
    return ExperimentPlan(root=root, base=scenario, variants=variants, seeds=seeds, baseline=baseline)


__all__ = ["ExperimentPlan", "Task", "Variant", "is_experiment", "plan_experiment",
           "scenario_key", "sweep_points", "with_seed"]
