"""Compile output constraints to GBNF grammars (llama.cpp) and regular expressions.

llama.cpp's own JSON-schema mode ignores ``minimum``/``maximum`` (it returned 222, 450,
1129 for a 0..100 field), so integer ranges are compiled here into digit patterns that
accept exactly the integers in ``lo..hi``; for 0..100::

    "100" | [1-9] [0-9] | [0-9]

Numbers get a bounded format (sign only if the range allows negatives, at most as many
integer digits as the bounds need, up to 4 decimals) and are range-checked after parsing.

The constrained text is compact JSON in property order (``{"hours": 40}``), so a grammar
splits into a literal *prefix* (``{"hours":``) that can be appended to the prompt as the
start of the assistant's reply, and the *rest*, which the model generates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from simulator.llm.constraints import field_type
from simulator.llm.types import Choices, Constraint, JsonSchema

DigitPattern = list[tuple[int, int]]  # one (lo, hi) digit range per position


# --------------------------------------------------------------------------- integer ranges
def _same_length(x: str, y: str) -> list[DigitPattern]:
    """Digit patterns matching exactly the numbers x..y (same length, x <= y)."""
    if not x:
        return [[]]
    x0, y0, n = int(x[0]), int(y[0]), len(x) - 1
    if x0 == y0:
        return [[(x0, x0), *rest] for rest in _same_length(x[1:], y[1:])]
    zeros, nines = "0" * n, "9" * n
    out: list[DigitPattern] = []
    lo_first, hi_first = x0, y0
    if x[1:] != zeros:
        out += [[(x0, x0), *rest] for rest in _same_length(x[1:], nines)]
        lo_first = x0 + 1
    if y[1:] != nines:
        hi_first = y0 - 1
    if lo_first <= hi_first:
        out.append([(lo_first, hi_first)] + [(0, 9)] * n)
    if y[1:] != nines:
        out += [[(y0, y0), *rest] for rest in _same_length(zeros, y[1:])]
    return out


def _nonneg_patterns(lo: int, hi: int) -> list[DigitPattern]:
    """Patterns (no leading zeros) for the non-negative integers lo..hi."""
    assert 0 <= lo <= hi
    out: list[DigitPattern] = []
    for length in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (length - 1) if length > 1 else 0)
        b = min(hi, 10**length - 1)
        if a <= b:
            out += _same_length(str(a), str(b))
    # longest first reads naturally ("100" | [1-9] [0-9] | [0-9])
    out.sort(key=len, reverse=True)
    return out


def integer_range_patterns(lo: int, hi: int) -> tuple[list[DigitPattern], list[DigitPattern]]:
    """(patterns for the negative part without the sign, patterns for the non-negative part)."""
    if lo > hi:
        raise ValueError(f"empty integer range {lo}..{hi}")
    neg = _nonneg_patterns(max(1, -hi), -lo) if lo < 0 else []
    pos = _nonneg_patterns(max(0, lo), hi) if hi >= 0 else []
    return neg, pos


def _digit_regex(d: tuple[int, int]) -> str:
    a, b = d
    return str(a) if a == b else ("[0-9]" if (a, b) == (0, 9) else f"[{a}-{b}]")


def integer_range_regex(lo: int, hi: int) -> str:
    """A regex (no anchors) matching exactly the decimal integers lo..hi (no leading zeros)."""
    neg, pos = integer_range_patterns(lo, hi)
    alts = ["".join(_digit_regex(d) for d in p) for p in pos]
    if neg:
        alts.append("-(?:" + "|".join("".join(_digit_regex(d) for d in p) for p in neg) + ")")
    return "(?:" + "|".join(alts) + ")"


def _digit_gbnf(d: tuple[int, int]) -> str:
    a, b = d
    return f'"{a}"' if a == b else f"[{a}-{b}]"


def _merge_literals(p: DigitPattern) -> str:
    """``"1" "0" "0"`` -> ``"100"`` for readability."""
    parts: list[str] = []
    lit = ""
    for a, b in p:
        if a == b:
            lit += str(a)
        else:
            if lit:
                parts.append(f'"{lit}"')
                lit = ""
            parts.append(_digit_gbnf((a, b)))
    if lit:
        parts.append(f'"{lit}"')
    return " ".join(parts)


def integer_range_gbnf(lo: int, hi: int) -> str:
    """A GBNF expression matching exactly the integers lo..hi."""
    neg, pos = integer_range_patterns(lo, hi)
    alts = [_merge_literals(p) for p in pos]
    if neg:
        alts.append('"-" ( ' + " | ".join(_merge_literals(p) for p in neg) + " )")
    return " | ".join(alts)


# --------------------------------------------------------------------------- GBNF pieces
def gbnf_literal(s: str) -> str:
    """A GBNF string literal for ``s``."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_JSON_CHAR_RULE = r'jchar ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'


def _number_int_bound(p: dict[str, Any]) -> int:
    """The largest integer part a number within the bounds can have."""
    lo, hi = p.get("minimum"), p.get("maximum")
    if lo is None or hi is None:
        return 10**9
    return int(max(abs(lo), abs(hi)))


def _number_gbnf(p: dict[str, Any]) -> str:
    """Sign only if negatives are allowed, integer part within the bound, <= 4 decimals."""
    lo = p.get("minimum")
    intpart = integer_range_gbnf(0, _number_int_bound(p))
    sign = '"-"? ' if lo is None or lo < 0 else ""
    return f'{sign}( {intpart} ) ( "." [0-9]{{1,4}} )?'


def _value_gbnf(p: dict[str, Any], rules: dict[str, str]) -> str:
    t = field_type(p)
    if "enum" in p:
        return "( " + " | ".join(gbnf_literal(json.dumps(v)) for v in p["enum"]) + " )"
    if t == "integer":
        lo, hi = p.get("minimum"), p.get("maximum")
        if lo is None or hi is None:
            lo = -(10**9) if lo is None else lo
            hi = 10**9 if hi is None else hi
        return "( " + integer_range_gbnf(int(lo), int(hi)) + " )"
    if t == "number":
        return "( " + _number_gbnf(p) + " )"
    if t == "boolean":
        return '( "true" | "false" )'
    # free string
    rules["jchar"] = _JSON_CHAR_RULE
    n = int(p.get("maxLength", 200))
    return f'"\\"" jchar{{0,{n}}} "\\""'


@dataclass(frozen=True)
class Grammar:
    """A constraint compiled for llama.cpp.

    ``prefix``: literal text every valid reply starts with (may be empty).
    ``rest_gbnf``: a GBNF grammar (rule ``root``) for what follows the prefix.
    ``gbnf``: a GBNF grammar for the whole reply.
    """

    prefix: str
    rest_gbnf: str
    gbnf: str


def compile_grammar(constraint: Constraint) -> Grammar:
    """Compile a constraint to GBNF (see module docstring)."""
    rules: dict[str, str] = {}
    if isinstance(constraint, Choices):
        body = " | ".join(gbnf_literal(o) for o in constraint.options)
        g = f"root ::= {body}\n"
        return Grammar("", g, g)
    if not isinstance(constraint, JsonSchema):
        raise TypeError(f"cannot compile {constraint!r}")
    props = list(constraint.schema["properties"].items())
    pieces: list[str] = []  # alternating literal text and GBNF expressions
    literal = "{"
    first_literal: str | None = None
    for i, (name, p) in enumerate(props):
        literal += ("" if i == 0 else ", ") + json.dumps(name) + ":"
        if first_literal is None:
            first_literal = literal
            pieces.append(("lit", " "))
        else:
            pieces.append(("lit", literal + " "))
        literal = ""
        pieces.append(("expr", _value_gbnf(dict(p), rules)))
    pieces.append(("lit", "}"))
    assert first_literal is not None

    def render(items: list[tuple[str, str]]) -> str:
        out = [gbnf_literal(v) if kind == "lit" else v for kind, v in items if v]
        return " ".join(out)

    extra = "".join(f"{r}\n" for r in rules.values())
    rest = f"root ::= {render(pieces)}\n{extra}"
    whole = f"root ::= {gbnf_literal(first_literal)} {render(pieces)}\n{extra}"
    return Grammar(first_literal, rest, whole)


# --------------------------------------------------------------------------- regex
def constraint_regex(constraint: Constraint) -> str:
    """A regex (for ``re.fullmatch``) of the compact replies a grammar allows.

    Free strings and numbers use simplified patterns; integers and enums are exact.
    """
    if isinstance(constraint, Choices):
        return "(?:" + "|".join(re.escape(o) for o in constraint.options) + ")"
    parts = []
    for name, p in constraint.schema["properties"].items():
        t = field_type(p)
        if "enum" in p:
            v = "(?:" + "|".join(re.escape(json.dumps(x)) for x in p["enum"]) + ")"
        elif t == "integer":
            lo, hi = p.get("minimum", -(10**9)), p.get("maximum", 10**9)
            v = integer_range_regex(int(lo), int(hi))
        elif t == "number":
            sign = "-?" if p.get("minimum") is None or p["minimum"] < 0 else ""
            v = f"{sign}{integer_range_regex(0, _number_int_bound(p))}(?:\\.[0-9]{{1,4}})?"
        elif t == "boolean":
            v = "(?:true|false)"
        else:
            v = f'"(?:[^"\\\\\\x00-\\x1f]|\\\\.){{0,{int(p.get("maxLength", 200))}}}"'
        parts.append(re.escape(json.dumps(name)) + ": " + v)
    return r"\{" + ", ".join(parts) + r"\}"
