"""Expressions compiled to closures give what jmespath gives, value for value and error for error."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest

from mapsync.mapping.compiler import coalesced_fields, compile_expression, text_chain
from mapsync.mapping.functions import OPTIONS
from mapsync.mapping.paths import make_getter, make_predicate

EXPRESSIONS = [
    "a", "a.b", "lower(a)", "upper(a)", "trim(a)", "lower(trim(a))", "lower(a.b)", "replace(a, ' ', '')",
    "replace(a, '', 'x')", "regex_replace(a, '[^0-9]', '')", "regex_replace(a, '(x)', '\\2')",
    "regex_replace(a, b, '')", "regex_match(a, '^[0-9]+$')", "upper(regex_match(a, 'x'))",
    "pad_left(a, `4`, '0')", "pad_left(a, `4`, '00')", "pad_left(a, `4.5`, '0')", "pad_left(a, `4`, b)",
    "substring(a, `0`, `2`)", "substring(a, `1`)", "substring(a, `-2`)", "substring(a, `1`, `2`, `3`)",
    "substring(a, b)", "split(a, ' ')[0]", "split(a, '')", "coalesce(a, b)", "coalesce(a, lower(b))",
    "coalesce(a, b, c)", "concat(a, ' ', b)", "concat(a, b)", "a || b", "a && b", "!a", "a == `1`",
    "a == `true`", "a != b", "a > `2`", "a < b", "a >= 'm'", "length(a)", "to_string(a)", "join(',', a)",
    "a[0]", "a[-1]", "@", "a | b", "abs(a)", "not_null(a, b)", "a.b.c", "`null`", "'text'", "lower('ABC')",
    "lower(`5`)", "type(a)", "starts_with(a, 'x')", "contains(a, b)", "!(a == b)", "a == b && !c",
    # field == a literal true, false, null or string: one lookup (1 and 0 are still not true and false)
    "a == `false`", "a == `null`", "a == 'x'", "a == ''", "b == `true`", "a == `\"x\"`", "a == `[]`",
]

VALUES: list[Any] = [None, "", " Mixed Case ", "0150", "a b c", "x", "NO 974 760 673", 0, 1, 2, 4.0, 2.5, True,
                     False, [], ["p", "q"], [1, 2], {}, {"b": "inner", "c": 3}]


def records() -> list[Any]:
    out: list[Any] = [{}, "not an object", None, [1, 2]]
    for value in VALUES:
        for other in (None, "", "m", 1, ["s"], {"c": True}, "(x)", "[0-9"):
            out.append({"a": value, "b": other, "c": value})
    return out


def outcome(evaluate: Any, record: Any) -> tuple[str, Any]:
    try:
        return "value", evaluate(record)
    except Exception as exc:  # the kind and the message must be the same
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_a_compiled_expression_evaluates_as_jmespath_does(expression: str) -> None:
    compiled = compile_expression(expression)
    assert compiled is not None, f"{expression} should compile"
    parsed = jmespath.compile(expression)
    for record in records():
        expected = outcome(lambda r: parsed.search(r, options=OPTIONS), record)
        actual = outcome(compiled, record)
        assert actual == expected, (expression, record)
        assert type(actual[1]) is type(expected[1]), (expression, record)  # True is not 1


@pytest.mark.parametrize("expression", ["a[*].b", "a[?b == `1`]", "{x: a}", "sort_by(a, &b)", "a[1:2]",
                                        "max_by(a, &b)", "[a, b]", "lower(a[*].b)"])
def test_what_is_not_compiled_is_left_to_jmespath(expression: str) -> None:
    assert compile_expression(expression) is None
    record = {"a": [{"b": 1}, {"b": 2}], "b": 3}
    parsed = jmespath.compile(expression)
    assert outcome(make_getter(expression), record) == outcome(lambda r: parsed.search(r, options=OPTIONS), record)


def test_text_functions_on_one_field_are_a_chain_of_string_steps() -> None:
    chain = text_chain("lower(trim(Epost))")
    assert chain is not None
    key, steps, gives_text = chain
    value = " Post@Firma.NO "
    for step in steps:
        value = step(value)
    assert (key, value, gives_text) == ("Epost", "post@firma.no", True)
    match = text_chain("regex_match(trim(Postnr), '^[0-9]{4}$')")
    assert match is not None
    assert (match[0], match[1][1](match[1][0](" 0150 ")), match[2]) == ("Postnr", True, False)  # a boolean out


@pytest.mark.parametrize("expression", ["Epost", "lower(a.b)", "upper(regex_match(a, 'x'))", "lower(a || b)",
                                        "pad_left(a, `4`, '00')", "regex_replace(a, '(x)', '\\2')",
                                        "regex_replace(a, b, '')", "concat(a, 'x')", "lower(`5`)"])
def test_other_shapes_are_no_chain(expression: str) -> None:
    assert text_chain(expression) is None


def test_coalesce_of_plain_fields_is_recognised() -> None:
    assert coalesced_fields("coalesce(Mobil, Telefon)") == ("Mobil", "Telefon")
    assert coalesced_fields("coalesce(Mobil, lower(Telefon))") is None
    assert coalesced_fields("lower(Mobil)") is None


@pytest.mark.parametrize("expression", ["a", "a.b", "lower(a)", "a == `1`", "a[0]"])
def test_a_predicate_is_jmespath_truthiness(expression: str) -> None:
    holds = make_predicate(expression)
    parsed = jmespath.compile(expression)
    for record in records():
        if not isinstance(record, dict):
            continue
        expected = outcome(lambda r: parsed.search(r, options=OPTIONS), record)
        if expected[0] != "value":
            assert outcome(holds, record)[0] == expected[0]
            continue
        value = expected[1]
        truthy = not (value is None or value is False or value in ("", [], {}))
        assert holds(record) is truthy, (expression, record)
