"""Constraint builders, the reply parser/validator and the grammar compiler."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.llm import (
    Request,
    choices,
    compile_grammar,
    constraint_regex,
    describe_constraint,
    enum_field,
    integer_field,
    integer_range_gbnf,
    integer_range_regex,
    json_object_constraint,
    number_field,
    parse_reply,
    string_field,
)
from simulator.llm.constraints import boolean_field

HOURS = json_object_constraint(hours=integer_field(0, 100))


# --------------------------------------------------------------------------- parser
@pytest.mark.parametrize(
    "text, value",
    [
        ('{"hours": 40}', {"hours": 40}),
        ('Sure! {"hours": 40} hope that helps', {"hours": 40}),
        ('{"hours": 40.0}', {"hours": 40}),
        ('{"hours": 0, "extra": "dropped"}', {"hours": 0}),
        ('{"note": "a } inside", "hours": 100}', {"hours": 100}),
        ('{broken {"hours": 7}', {"hours": 7}),
        ('```json\n{\n  "hours": 12\n}\n```', {"hours": 12}),
        ('[1, 2] {"hours": 3}', {"hours": 3}),
    ],
)
def test_parse_valid(text, value):
    v, err = parse_reply(text, HOURS)
    assert err is None and v == value
    assert type(v["hours"]) is int


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("forty hours", "no JSON object"),
        ('{"hours": 40', "no complete JSON"),
        ('{"hours": 101}', "above maximum"),
        ('{"hours": -1}', "below minimum"),
        ('{"hours": "40"}', "expected integer"),
        ('{"hours": true}', "expected integer"),
        ('{"hours": 40.5}', "expected integer"),
        ('{"hrs": 40}', "missing key"),
        ("{'hours': 40}", "no complete JSON"),
        ('{"hours": __import__("os")}', "no complete JSON"),
    ],
)
def test_parse_invalid(text, fragment):
    v, err = parse_reply(text, HOURS)
    assert v is None and fragment in err


def test_parse_other_types():
    c = json_object_constraint(
        rate=number_field(0, 1), vote=enum_field("yes", "no"), why=string_field(10), ok=boolean_field()
    )
    v, err = parse_reply('{"rate": 0.25, "vote": "no", "why": "short", "ok": false}', c)
    assert err is None and v == {"rate": 0.25, "vote": "no", "why": "short", "ok": False}
    assert parse_reply('{"rate": 1.5, "vote": "no", "why": "", "ok": true}', c)[1].startswith("rate")
    assert "not one of" in parse_reply('{"rate": 0, "vote": "maybe", "why": "", "ok": true}', c)[1]
    assert "longer than" in parse_reply('{"rate": 0, "vote": "no", "why": "' + "x" * 11 + '", "ok": true}', c)[1]
    assert "not a finite" in parse_reply('{"rate": NaN, "vote": "no", "why": "", "ok": true}', c)[1]


def test_optional_fields():
    c = json_object_constraint(a=integer_field(0, 5), b=integer_field(0, 5), required=["a"])
    assert parse_reply('{"a": 1}', c) == ({"a": 1}, None)
    with pytest.raises(ValueError):
        json_object_constraint(a=integer_field(0, 5), required=["zzz"])


@pytest.mark.parametrize(
    "text, value",
    [("yes", "yes"), ("  No.", "no"), ('"yes"', "yes"), ('{"choice": "no"}', "no"), ("I vote yes!", "yes")],
)
def test_choices_parse(text, value):
    assert parse_reply(text, choices("yes", "no")) == (value, None)


@pytest.mark.parametrize("text", ["", "maybe", "yes or no"])
def test_choices_invalid(text):
    v, err = parse_reply(text, choices("yes", "no"))
    assert v is None and err


def test_free_text():
    assert parse_reply("  hello ", None) == ("hello", None)
    assert parse_reply("", None)[0] is None


def test_builders_validate():
    with pytest.raises(ValueError):
        integer_field(5, 1)
    with pytest.raises(ValueError):
        enum_field("a", "a")
    with pytest.raises(ValueError):
        choices()
    with pytest.raises(ValueError):
        json_object_constraint()
    with pytest.raises(ValueError):
        json_object_constraint({"x": {"type": "array"}})


def test_request_validation():
    r = Request([{"role": "user", "content": "hi"}], HOURS, seed=3, tag="worker")
    assert isinstance(r.messages, tuple) and r.messages[0] == {"role": "user", "content": "hi"}
    with pytest.raises(ValueError):
        Request([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError):
        Request([])
    with pytest.raises(TypeError):
        Request("hi")  # type: ignore[arg-type]
    assert Request.chat("x" * 200).prompt_excerpt(20).endswith("...")
    assert hash(r) == hash(Request([{"role": "user", "content": "hi"}], HOURS, seed=3, tag="worker"))


def test_describe():
    assert describe_constraint(HOURS) == 'Reply with only a JSON object: {"hours": <integer 0..100>}'
    assert "yes, no" in describe_constraint(choices("yes", "no"))


# --------------------------------------------------------------------------- grammar
def test_known_grammar():
    assert integer_range_gbnf(0, 100) == '"100" | [1-9] [0-9] | [0-9]'
    g = compile_grammar(HOURS)
    assert g.prefix == '{"hours":'
    assert g.rest_gbnf.startswith('root ::= " " ( "100" | [1-9] [0-9] | [0-9] ) "}"')
    assert g.gbnf.startswith('root ::= "{\\"hours\\":" " "')


def gbnf_alternation_to_regex(expr: str) -> str:
    """Translate the integer-range GBNF subset (literals, [a-b], |, parentheses) to a regex."""
    out = []
    for tok in re.findall(r'"[^"]*"|\[[^\]]*\]|\||\(|\)|\S+', expr):
        if tok.startswith('"'):
            out.append(re.escape(tok[1:-1]))
        elif tok == "(":
            out.append("(?:")
        else:
            out.append(tok)
    return "(?:" + "".join(out) + ")"


ranges = st.integers(-3000, 3000).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo, lo + 3000)))


@settings(max_examples=300, deadline=None)
@given(ranges, st.integers(-7000, 7000))
def test_integer_range_language(bounds, x):
    lo, hi = bounds
    rx = re.compile(integer_range_regex(lo, hi))
    gx = re.compile(gbnf_alternation_to_regex(integer_range_gbnf(lo, hi)))
    inside = lo <= x <= hi
    assert bool(rx.fullmatch(str(x))) == inside
    assert bool(gx.fullmatch(str(x))) == inside


@settings(max_examples=60, deadline=None)
@given(ranges)
def test_integer_range_every_member(bounds):
    lo, hi = bounds
    lo, hi = lo, min(hi, lo + 400)
    rx = re.compile(integer_range_regex(lo, hi))
    gx = re.compile(gbnf_alternation_to_regex(integer_range_gbnf(lo, hi)))
    for x in range(lo - 3, hi + 4):
        assert bool(rx.fullmatch(str(x))) == (lo <= x <= hi), x
        assert bool(gx.fullmatch(str(x))) == (lo <= x <= hi), x
    # no leading zeros, no "-0", no "+"
    for bad in ("-0", "00", "+1", "01", " 1"):
        assert not rx.fullmatch(bad)


@settings(max_examples=100, deadline=None)
@given(st.integers(-500, 500), st.integers(0, 500), st.data())
def test_constraint_regex_matches_valid_replies(lo, span, data):
    c = json_object_constraint(n=integer_field(lo, lo + span), v=enum_field("a", 'q"x'))
    n = data.draw(st.integers(lo - 5, lo + span + 5))
    text = f'{{"n": {n}, "v": "a"}}'
    ok = lo <= n <= lo + span
    assert bool(re.fullmatch(constraint_regex(c), text)) == ok
    assert (parse_reply(text, c)[1] is None) == ok


def test_gbnf_literal_escapes():
    g = compile_grammar(choices('say "hi"', "back\\slash"))
    assert '"say \\"hi\\""' in g.gbnf and '"back\\\\slash"' in g.gbnf
