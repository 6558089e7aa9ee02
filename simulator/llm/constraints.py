"""Output constraints: builders, the supported JSON-schema subset, and a robust parser.

Builders::

    schema = json_object_constraint(hours=integer_field(0, 100))
    vote = choices("yes", "no")

The parser (:func:`parse_reply`) never evaluates text: it scans for each ``{`` and
decodes the first complete JSON object with :meth:`json.JSONDecoder.raw_decode`, then
checks required keys, types, bounds and enums.  Keys not in the schema are dropped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.llm.types import Choices, Constraint, JsonSchema
from simulator.llm.types import check_schema as check_schema  # re-export: it lives in types now


# --------------------------------------------------------------------------- builders
def integer_field(lo: int, hi: int, description: str | None = None) -> dict[str, Any]:
    """An integer property with inclusive bounds ``lo..hi``."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"integer_field: lo {lo} > hi {hi}")
    return _describe({"type": "integer", "minimum": lo, "maximum": hi}, description)


def number_field(lo: float, hi: float, description: str | None = None) -> dict[str, Any]:
    """A number property with inclusive bounds ``lo..hi`` (checked after parsing)."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"number_field: bad bounds {lo}..{hi}")
    return _describe({"type": "number", "minimum": lo, "maximum": hi}, description)


def enum_field(*values: str, description: str | None = None) -> dict[str, Any]:
    """A string property that must be one of ``values``."""
    if len(values) == 1 and isinstance(values[0], list | tuple):
        values = tuple(values[0])
    vals = [str(v) for v in values]
    if not vals or len(set(vals)) != len(vals):
        raise ValueError(f"enum_field needs distinct values, got {values!r}")
    return _describe({"type": "string", "enum": vals}, description)


def string_field(max_length: int = 200, description: str | None = None) -> dict[str, Any]:
    """A free string property of at most ``max_length`` characters."""
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    return _describe({"type": "string", "maxLength": int(max_length)}, description)


def boolean_field(description: str | None = None) -> dict[str, Any]:
    return _describe({"type": "boolean"}, description)


def _describe(d: dict[str, Any], description: str | None) -> dict[str, Any]:
    if description:
        d["description"] = description
    return d


def json_object_constraint(
    fields: Mapping[str, Mapping[str, Any]] | None = None,
    /,
    *,
    required: Sequence[str] | None = None,
    **kw_fields: Mapping[str, Any],
) -> JsonSchema:
    """A JSON object with the given properties, in the given order.

    ``json_object_constraint(hours=integer_field(0, 100))`` or
    ``json_object_constraint({"labor hours": integer_field(0, 100)})``.  All properties are
    required unless ``required`` names a subset.  Constrained backends emit the
    properties in this order, compactly: ``{"hours": 40}``.
    """
    props: dict[str, Any] = dict(fields or {})
    for k, v in kw_fields.items():
        if k in props:
            raise ValueError(f"property {k!r} given twice")
        props[k] = v
    if not props:
        raise ValueError("json_object_constraint needs at least one property")
    req = list(props) if required is None else list(required)
    schema = {
        "type": "object",
        "properties": {k: dict(v) for k, v in props.items()},
        "required": req,
        "additionalProperties": False,
    }
    return JsonSchema(schema)


def choices(*options: str) -> Choices:
    """The reply must be exactly one of ``options``."""
    if len(options) == 1 and isinstance(options[0], list | tuple):
        options = tuple(options[0])
    return Choices(tuple(options))


def field_type(p: Mapping[str, Any]) -> str:
    t = p.get("type")
    return "string" if t is None and "enum" in p else str(t)


def constraint_to_json(constraint: Constraint | None) -> Any:
    """A canonical JSON-able form (used in cache keys)."""
    return None if constraint is None else constraint.to_json()


def choices_as_schema(c: Choices) -> dict[str, Any]:
    """How a :class:`Choices` constraint is sent to servers that only take JSON schemas."""
    return {
        "type": "object",
        "properties": {"choice": {"type": "string", "enum": list(c.options)}},
        "required": ["choice"],
        "additionalProperties": False,
    }


def describe_constraint(constraint: Constraint | None) -> str:
    """A one-line instruction describing the expected reply, to put in prompts.

    Constrained backends enforce the format anyway; this helps servers without
    structured output (dialect ``none``) and makes the model's job explicit.
    """
    if constraint is None:
        return ""
    if isinstance(constraint, Choices):
        return "Answer with exactly one of: " + ", ".join(constraint.options) + "."
    parts = []
    for name, p in constraint.schema["properties"].items():
        t = field_type(p)
        if "enum" in p:
            desc = " | ".join(json.dumps(v) for v in p["enum"])
        elif t in ("integer", "number"):
            lo, hi = p.get("minimum"), p.get("maximum")
            rng = f" {_fmt(lo)}..{_fmt(hi)}" if lo is not None and hi is not None else ""
            desc = f"<{t}{rng}>"
        else:
            desc = f"<{t}>"
        parts.append(f"{json.dumps(name)}: {desc}")
    return "Reply with only a JSON object: {" + ", ".join(parts) + "}"


def _fmt(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


# --------------------------------------------------------------------------- parsing


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"duplicate key {k!r}")
        out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def json_objects(text: str):
    """Every complete top-level JSON object in ``text``, in order (scanning each ``{``).

    Yields ``(object, None)`` or ``(None, error)`` for an object with duplicate keys.
    """
    start = text.find("{")
    while start >= 0:
        try:
            obj, end = _DECODER.raw_decode(text, start)
        except _DuplicateKey as exc:
            yield None, str(exc)
            obj, end = None, None
        except (json.JSONDecodeError, RecursionError, ValueError):
            obj, end = None, None
        if isinstance(obj, dict):
            yield obj, None
            start = text.find("{", end)
        else:
            start = text.find("{", start + 1)


def find_json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The first complete JSON object in ``text`` (scanning each ``{``), or an error."""
    if not text or not text.strip():
        return None, "empty reply"
    if text.find("{") < 0:
        return None, "no JSON object in reply"
    for obj, err in json_objects(text):
        if obj is not None:
            return obj, None
        return None, err
    return None, "no complete JSON object in reply"


def validate_object(obj: Mapping[str, Any], schema: Mapping[str, Any]) -> tuple[dict | None, str | None]:
    """Check ``obj`` against ``schema``; returns (clean value, None) or (None, error)."""
    props: Mapping[str, Any] = schema["properties"]
    out: dict[str, Any] = {}
    for name in schema.get("required", []):
        if name not in obj:
            return None, f"missing key {name!r}"
    for name, p in props.items():
        if name not in obj:
            continue
        v = obj[name]
        t = field_type(p)
        if t == "integer":
            if isinstance(v, bool):
                return None, f"{name}: expected integer, got {v!r}"
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int):
                return None, f"{name}: expected integer, got {_short(v)}"
        elif t == "number":
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None, f"{name}: expected number, got {_short(v)}"
            if not math.isfinite(v):
                return None, f"{name}: not a finite number"
            v = float(v)
        elif t == "boolean":
            if not isinstance(v, bool):
                return None, f"{name}: expected boolean, got {_short(v)}"
        elif t == "string":
            if not isinstance(v, str):
                return None, f"{name}: expected string, got {_short(v)}"
            if "maxLength" in p and len(v) > p["maxLength"]:
                return None, f"{name}: longer than {p['maxLength']} characters"
        if "enum" in p and v not in p["enum"]:
            return None, f"{name}: {_short(v)} not one of {p['enum']}"
        if t in ("integer", "number"):
            lo, hi = p.get("minimum"), p.get("maximum")
            if lo is not None and v < lo:
                return None, f"{name}: {v} below minimum {lo}"
            if hi is not None and v > hi:
                return None, f"{name}: {v} above maximum {hi}"
        out[name] = v
    return out, None


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


_CHOICE_STRIP = " \t\r\n\"'`.,;:!?*()[]"


def parse_choice(text: str, c: Choices) -> tuple[str | None, str | None]:
    """Exact match (ignoring case, quotes and punctuation around it), then a JSON object
    ``{"choice": ...}``, then a single option occurring as a whole word."""
    if not text or not text.strip():
        return None, "empty reply"
    stripped = text.strip(_CHOICE_STRIP)
    lower = {o.lower(): o for o in c.options}
    if stripped.lower() in lower:
        return lower[stripped.lower()], None
    obj, _ = find_json_object(text)
    if obj is not None:
        for v in obj.values():
            if isinstance(v, str) and v.strip().lower() in lower:
                return lower[v.strip().lower()], None
    found = [
        o for o in c.options if re.search(r"(?<!\w)" + re.escape(o) + r"(?!\w)", text, re.IGNORECASE)
    ]
    if len(found) == 1:
        return found[0], None
    if len(found) > 1:
        return None, f"ambiguous reply mentions {found}"
    return None, f"reply is not one of {list(c.options)}"


def parse_reply(text: str, constraint: Constraint | None) -> tuple[Any, str | None]:
    """Parse and validate ``text``; returns ``(value, None)`` or ``(None, error)``."""
    if constraint is None:
        t = (text or "").strip()
        return (t, None) if t else (None, "empty reply")
    if isinstance(constraint, Choices):
        return parse_choice(text, constraint)
    if not text or not text.strip():
        return None, "empty reply"
    if text.find("{") < 0:
        return None, "no JSON object in reply"
    # the first object that validates wins (a reply may quote an example first)
    first_err = None
    for obj, err in json_objects(text):
        if obj is None:
            first_err = first_err or err
            continue
        value, verr = validate_object(obj, constraint.schema)
        if verr is None:
            return value, None
        first_err = first_err or verr
    return None, first_err or "no complete JSON object in reply"
