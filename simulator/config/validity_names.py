"""Names of the validity checks and verdicts (no heavy imports: the scenario schema uses it)."""

from __future__ import annotations

#: Verdicts of a check.
WITHIN = "within range"
OUTSIDE = "outside"
NOT_MEASURABLE = "not measurable"
NOT_APPLICABLE = "not applicable"
#: Detail rows (band shares, per-field movements, fallback causes) carry no verdict.
INFO = "info"
VERDICTS = (WITHIN, OUTSIDE, NOT_MEASURABLE, NOT_APPLICABLE, INFO)

#: Every check with a verdict, ``family.name``.
CHECK_IDS = (
    "incentives.eti",
    "incentives.income_effect",
    "dispersion.sd",
    "dispersion.wasserstein",
    "dispersion.ks",
    "dispersion.top3_share",
    "persona.sensitivity",
    "persona.wage",
    "consistency.seed",
    "consistency.order",
    "reliability.fallback",
    "participation.employment",
    "participation.elasticity",
)
FAMILIES = ("incentives", "dispersion", "persona", "consistency", "reliability", "participation")
#: Checks that only make sense for LLM workers (not applicable to rational/fixed ones).
LLM_ONLY = ("persona.sensitivity", "consistency.seed", "consistency.order", "reliability.fallback")


def gate_checks(names: list[str]) -> list[str]:
    """Expand family names in a ``validity_gate`` list to check ids; ValueError if unknown."""
    out: list[str] = []
    for name in names:
        if name in CHECK_IDS:
            hits = [name]
        elif name in FAMILIES:
            hits = [c for c in CHECK_IDS if c.startswith(name + ".")]
        else:
            raise ValueError(
                f"unknown validity check {name!r}: use a family ({', '.join(FAMILIES)}) "
                f"or one of {', '.join(CHECK_IDS)}"
            )
        out += [h for h in hits if h not in out]
    return out
