"""Census-calibrated synthetic U.S. worker personas.

:func:`generate` samples workers whose sex, age, state, education, occupation, hours
and earnings follow published ACS, CPS, OEWS and IRS SOI tables (see
``personas/data/SOURCES.md`` and ``docs/personas.md``); :func:`render_persona` turns
one worker's attributes into second-person prompt text; :func:`validation_table`
(in :mod:`personas.validate`) compares a sample with every calibrated source marginal.
``generate(..., participation=True)`` draws the working-age population, employed or
not, each person with an employment target (:mod:`personas.participation`).
"""

from __future__ import annotations

from personas.generator import PersonaInputError, bracket_thresholds, generate
from personas.text import render_persona, render_personas

__all__ = [
    "PersonaInputError",
    "bracket_thresholds",
    "generate",
    "render_persona",
    "render_personas",
    "validation_table",
]


def validation_table(*args, **kwargs):
    """See :func:`personas.validate.validation_table`."""
    from personas.validate import validation_table as _vt

    return _vt(*args, **kwargs)
