"""``validity_gate``: stop a run before its first tax year when chosen checks fail."""

from __future__ import annotations

from pathlib import Path

from simulator.config.validity_names import gate_checks
from simulator.errors import UserError
from simulator.validity.collect import run_validity


class ValidityGateError(UserError):
    """The scenario's validity gate failed (one line with the reasons)."""


def enforce_gate(model, run_dir: str | Path | None = None, *, progress: bool | None = None) -> None:
    """Run the validity report on ``model`` if its scenario has a ``validity_gate``.

    Writes ``validity.parquet`` into ``run_dir`` and raises :class:`ValidityGateError`
    naming every gated check that is outside its range or not measurable (a check that
    is not applicable to the worker policy passes).  LLM calls are counted in the
    telemetry period ``validity``.
    """
    names = getattr(model.settings, "validity_gate", None)
    if not names:
        return
    if model.policy.name == "llm":
        tel = getattr(model.llm, "telemetry", None)
        if tel is not None:
            tel.start_period("validity")
    report = run_validity(model.settings, model=model, progress=progress)
    if run_dir is not None:
        report.write(run_dir)
    problems = report.failing(gate_checks(list(names)))
    if problems:
        raise ValidityGateError("validity gate failed before the first tax year: " + "; ".join(problems))
