"""Behavioural validity of a worker population (``econsim behaviour``).

One module per check family, pure functions over replies where possible:
:mod:`~simulator.validity.incentives` (ETI, income effect), :mod:`~simulator.validity.dispersion`
(hours against the CPS), :mod:`~simulator.validity.persona` (persona and wage sensitivity),
:mod:`~simulator.validity.consistency` (seed, row order), :mod:`~simulator.validity.reliability`
(fallbacks).  :func:`run_validity` collects the replies and returns a
:class:`~simulator.validity.report.ValidityReport`; :mod:`~simulator.validity.gate` stops a
run whose ``validity_gate`` fails.  See ``docs/validity.md``.
"""

from __future__ import annotations

from simulator.config.validity_names import (
    CHECK_IDS,
    FAMILIES,
    INFO,
    NOT_APPLICABLE,
    NOT_MEASURABLE,
    OUTSIDE,
    VERDICTS,
    WITHIN,
)
from simulator.validity.collect import run_validity
from simulator.validity.report import ValidityReport

__all__ = ["CHECK_IDS", "FAMILIES", "INFO", "NOT_APPLICABLE", "NOT_MEASURABLE", "OUTSIDE",
           "VERDICTS", "WITHIN", "ValidityReport", "run_validity"]
