"""The mapping functions (lower, regex_replace, coalesce, ...): results, nulls and edge values, their checks
in `validate`, both directions of a row that uses them, and runtime failures naming the row and record."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mapsync.cli._app import _register_commands, cli
from mapsync.errors import MappingError, SpecError
from mapsync.mapping.functions import FUNCTION_DOCS, FUNCTION_TABLE, FunctionDoc, _compiled
from mapsync.mapping.mapper import Mapper
from mapsync.mapping.paths import ExpressionError, make_evaluator, make_getter
from mapsync.sandbox import Sandbox, SeedSize
from mapsync.spec._expression import expression_problem
from mapsync.spec._yaml import parse_document
from mapsync.spec.checker import MappingChecker

REPO = Path(__file__).parents[2]
CONNECTIONS: dict[str, dict[str, Any]] = {"tidsbanken": {"type": "tidsbanken"}, "custompms": {"type": "custompms"}}


_register_commands()


def evaluate(expression: str, record: dict[str, Any] | None = None) -> Any:
    return make_getter(expression)(record or {})


def custom(rows: str) -> Mapper:
    text = ("dataflow: custom\nsource: {connection: tidsbanken, entity: Kunde}\n"
            "target: {connection: custompms, entity: Customer}\nproperties:\n" + rows)
    doc, syntax = parse_document(text, "mappings/custom.yaml")
    assert doc is not None, syntax
    errors: list[SpecError] = []
    spec = MappingChecker(doc, CONNECTIONS, errors).build()
    assert spec is not None and errors == [], errors
    return Mapper(spec)


# -- every documented example gives its documented result ------------------------------------------

@pytest.mark.parametrize("doc", FUNCTION_DOCS, ids=[d.call for d in FUNCTION_DOCS])
def test_documented_example(doc: FunctionDoc) -> None:
    assert evaluate(doc.expression, doc.record) == doc.result
    assert expression_problem(doc.expression) is None


def test_every_mapping_function_is_documented() -> None:
    documented = {doc.call.split("(")[0] for doc in FUNCTION_DOCS}
    assert documented == {"lower", "upper", "trim", "replace", "regex_replace", "regex_match", "split",
                          "substring", "pad_left", "concat", "coalesce"}
    assert documented <= set(FUNCTION_TABLE)


# -- results, nulls and edge values ------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "record", "expected"), [
    # null in, null out: never an exception
    ("lower(a)", {}, None), ("upper(a)", {"a": None}, None), ("trim(a)", {}, None),
    ("replace(a, 'x', 'y')", {}, None), ("replace('axa', a, 'y')", {}, None), ("replace('axa', 'x', a)", {}, None),
    ("regex_replace(a, 'x', 'y')", {}, None), ("regex_match(a, 'x')", {}, None), ("split(a, ',')", {}, None),
    ("substring(a, `1`)", {}, None), ("substring('abc', a)", {}, None), ("substring('abc', `0`, a)", {}, None),
    ("pad_left(a, `3`, '0')", {}, None), ("pad_left('1', a, '0')", {}, None), ("concat(a, b)", {}, None),
    ("coalesce(a, b)", {}, None), ("coalesce(a, b)", {"a": "", "b": ""}, None),
    # empty strings stay empty
    ("lower(a)", {"a": ""}, ""), ("trim(a)", {"a": " \t\n"}, ""), ("split(a, ',')", {"a": ""}, [""]),
    ("substring(a, `0`, `3`)", {"a": ""}, ""), ("pad_left(a, `3`, '0')", {"a": ""}, "000"),
    # numbers are written as JSON writes them
    ("lower(a)", {"a": 42}, "42"), ("concat(a, b)", {"a": 1.5, "b": 10.0}, "1.510"),
    ("pad_left(a, `6`, '0')", {"a": 42}, "000042"), ("regex_match(a, '^[0-9]+$')", {"a": 974760673}, True),
    # edges
    ("upper(a)", {"a": "blåbær"}, "BLÅBÆR"), ("trim(a)", {"a": "  a b  "}, "a b"),
    ("replace(a, '', 'x')", {"a": "abc"}, "abc"), ("replace(a, '.', '')", {"a": "1.2.3"}, "123"),
    ("regex_replace(a, '(\\d{3})(\\d{3})', '\\2-\\1')", {"a": "123456"}, "456-123"),
    ("regex_replace(a, '(?P<y>\\d{4})-(?P<m>\\d{2})', '\\g<m>/\\g<y>')", {"a": "2024-05"}, "05/2024"),
    ("regex_match(a, 'oslo')", {"a": "Salg Oslo"}, False), ("regex_match(a, '(?i)oslo')", {"a": "Salg Oslo"}, True),
    ("split(a, ',')", {"a": "a,,b"}, ["a", "", "b"]), ("split(a, '')", {"a": "ab"}, ["a", "b"]),
    ("split(a, '; ')[1]", {"a": "x; y"}, "y"),
    ("substring(a, `2`)", {"a": "abcdef"}, "cdef"), ("substring(a, `-3`)", {"a": "abcdef"}, "def"),
    ("substring(a, `1`, `99`)", {"a": "abc"}, "bc"), ("substring(a, `5`, `2`)", {"a": "abcdef"}, ""),
    ("substring(a, `1.0`, `2`)", {"a": "abc"}, "b"),
    ("pad_left(a, `2`, '0')", {"a": "12345"}, "12345"), ("pad_left(a, `4`, ' ')", {"a": "7"}, "   7"),
    ("concat(a, ' ', b)", {"a": "Kari"}, "Kari "), ("concat(a, b, c, d)", {"b": "x", "d": "y"}, "xy"),
    ("concat(a, b)", {"a": "", "b": None}, ""),
    ("coalesce(a, b, c)", {"a": "", "b": None, "c": "z"}, "z"), ("coalesce(a, b)", {"a": 0, "b": 1}, 0),
    ("coalesce(a, b)", {"a": False, "b": True}, False), ("coalesce(a, `\"fallback\"`)", {}, "fallback"),
    ("coalesce(a, b)", {"a": [], "b": 1}, []),
    # JMESPath's own functions keep working beside them
    ("join(' ', [a, b])", {"a": "x", "b": "y"}, "x y"), ("to_string(a)", {"a": 1}, "1"),
    ("length(lower(a))", {"a": "ABC"}, 3), ("lower(join('-', split(a, ' ')))", {"a": "A B"}, "a-b"),
])
def test_function_results(expression: str, record: dict[str, Any], expected: Any) -> None:
    assert evaluate(expression, record) == expected
    assert type(evaluate(expression, record)) is type(expected)


@pytest.mark.parametrize(("expression", "record", "message"), [
    ("lower(a)", {"a": True}, "lower() cannot take a boolean there (it takes string or number or null)"),
    ("concat(a, b, c)", {"a": "x", "c": ["y"]}, "concat() takes text or a number, not an array ['y']"),
    ("regex_match(a, b)", {"a": "x", "b": "(oslo"}, "regex_match(): regular expression '(oslo' does not compile: "
                                                   "missing ), unterminated subpattern at position 0"),
    ("regex_replace(a, '(x)', b)", {"a": "x", "b": "\\3"}, "regex_replace(): replacement '\\3' does not fit the "
                                                          "pattern '(x)': invalid group reference 3 at position 1"),
    ("pad_left(a, `3`, b)", {"a": "x", "b": "ab"}, "pad_left(): the pad must be one character, not 'ab'"),
    ("substring(a, `1.5`)", {"a": "abc"}, "substring() takes a whole number there, not 1.5"),
    ("substring(a, `1`, `2`, `3`)", {"a": "abc"}, "substring() takes 2 or 3 arguments, not 4"),
    ("concat(a)", {"a": "x"}, "concat() takes at least 2 arguments, not 1"),
    ("a > b", {"a": "x", "b": 1}, "> cannot compare a string with a number"),
])
def test_a_failing_call_names_the_function_and_the_value(expression: str, record: dict[str, Any],
                                                          message: str) -> None:
    evaluator = make_evaluator(expression, "mappings/custom.yaml:7", "Kunde", "Id")
    with pytest.raises(ExpressionError) as info:
        evaluator({"Id": "K1", **record})
    assert str(info.value) == (f"mappings/custom.yaml:7: cannot evaluate {expression!r} on Kunde record 'K1': "
                               f"{message}")
    assert info.value.prop == expression


def test_a_regular_expression_is_compiled_once() -> None:
    # A literal pattern is compiled with the expression (compiler.py); one read from the record, once per
    # distinct pattern (the cache).
    getter = make_getter("regex_replace(a, p, '')")
    getter({"a": "1", "p": "[^0-9]+ once"})
    before = _compiled.cache_info()
    for _ in range(5):
        getter({"a": "2", "p": "[^0-9]+ once"})
    after = _compiled.cache_info()
    assert (after.misses, after.hits - before.hits) == (before.misses, 5)
    literal = make_getter("regex_replace(a, '[^0-9]', '')")
    before = _compiled.cache_info()
    assert [literal({"a": "12 literal3"}) for _ in range(5)] == ["123"] * 5
    assert _compiled.cache_info()[:2] == before[:2]  # neither compiled nor looked up per record


# -- validate -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "problem"), [
    ("lowercase(a)", "unknown JMESPath function lowercase() (known: abs, avg, ceil, coalesce, concat, "),
    ("lower(a, b)", "JMESPath function lower() takes 1 argument, not 2"),
    ("replace(a, 'x')", "JMESPath function replace() takes 3 arguments, not 2"),
    ("substring(a)", "JMESPath function substring() takes 2 or 3 arguments, not 1"),
    ("coalesce(a)", "JMESPath function coalesce() takes at least 2 arguments, not 1"),
    ("not_null()", "JMESPath function not_null() takes at least 1 argument, not 0"),
    ("join(', ')", "JMESPath function join() takes 2 arguments, not 1"),
    ("regex_match(a, '*x')", "regex_match(): regular expression '*x' does not compile: nothing to repeat at "
                             "position 0"),
    ("lower(regex_replace(a, `\"[\"`, ''))", "regex_replace(): regular expression '[' does not compile: "),
    ("regex_replace(a, 'x', '\\1')", "regex_replace(): replacement '\\1' does not fit the pattern 'x': "
                                     "invalid group reference 1 at position 1"),
    ("pad_left(a, `5`, '')", "pad_left(): the pad must be one character, not ''"),
])
def test_validate_finds(expression: str, problem: str) -> None:
    found = expression_problem(expression)
    assert found is not None and found.startswith(problem), found


@pytest.mark.parametrize("expression", [
    "substring(a, `1`)", "substring(a, `1`, `2`)", "concat(a, b, c, d, e)", "regex_match(a, b)",
    "regex_replace(a, '(x)', '\\1')", "pad_left(a, `5`, b)", "join(', ', [a, b])", "not_null(a, b)",
])
def test_validate_accepts(expression: str) -> None:
    assert expression_problem(expression) is None


# -- in a mapping: both directions, and failures naming the row and the record ------------------------

LOWER_EMAIL = ("  - {source: Navn, target: name, type: string}\n"
               "  - source: lower(trim(Epost))\n"
               "    target: email\n"
               "    type: string\n"
               "    reverse: {Epost: \"upper(email)\"}\n"
               "  - source: \"coalesce(Mobil, Telefon)\"\n"
               "    target: phone\n"
               "    type: string\n"
               "    reverse: {Mobil: \"regex_replace(phone, '[^0-9+]', '')\"}\n")


def test_a_row_with_functions_maps_forward_and_back() -> None:
    m = custom(LOWER_EMAIL)
    record = {"Id": "K1", "Navn": "Fjordbygg", "Epost": "  Post@Fjordbygg.NO ", "Mobil": "", "Telefon": "55 12"}
    assert m.forward(record) == {"name": "Fjordbygg", "email": "post@fjordbygg.no", "phone": "55 12"}
    assert m.backward({"name": "Fjordbygg", "email": "post@fjordbygg.no", "phone": "+47 55 12"}) == \
        {"Navn": "Fjordbygg", "Epost": "POST@FJORDBYGG.NO", "Mobil": "+475512"}
    assert m.forward({"Id": "K2", "Navn": "Tom"}) == {"name": "Tom", "email": None, "phone": None}
    # Tidsbanken writes an empty text field as "" (its convention for null)
    assert m.backward({"name": "Tom", "email": None, "phone": None}) == {"Navn": "Tom", "Epost": "", "Mobil": ""}


def test_a_forward_failure_names_the_row_line_and_the_record() -> None:
    m = custom(LOWER_EMAIL)
    record = {"Id": "K7", "Navn": "X", "Epost": ["not", "text"]}
    for project in (m.forward, m.project_source):
        with pytest.raises(MappingError) as info:
            project(record)
        assert str(info.value) == ("mappings/custom.yaml:6: cannot evaluate 'lower(trim(Epost))' on Kunde record "
                                   "'K7': trim() cannot take an array there (it takes string or number or null)")


def test_a_reverse_failure_names_the_row_line_and_the_target_record() -> None:
    m = custom(LOWER_EMAIL)
    with pytest.raises(MappingError) as info:
        m.backward({"id": "c-9", "name": "X", "email": {"a": 1}, "phone": None})
    assert str(info.value) == ("mappings/custom.yaml:6: cannot evaluate 'upper(email)' on Customer record 'c-9': "
                               "upper() cannot take an object there (it takes string or number or null)")


def test_a_record_without_an_id_is_named_so() -> None:
    evaluator = make_evaluator("lower(a)", "mappings/custom.yaml:3", "Kunde", "Id")
    with pytest.raises(ExpressionError, match=r"on Kunde record \(no id\): lower\(\) cannot take a boolean"):
        evaluator({"a": False})


# -- at run time: `mapsync plan` fails the record, naming the row's file:line and the record ------------

def test_plan_fails_a_record_whose_expression_fails_naming_row_and_record(
        make_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(REPO / "mapsync.yaml", tmp_path / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    mapping = tmp_path / "mappings" / "kunde-customer.yaml"
    plain = "{source: Epost,               target: email,                        type: string}"
    text = mapping.read_text(encoding="utf-8")
    line = text[:text.index(plain)].count("\n") + 1
    # The pattern comes from the record: only a record whose Navn is not a valid pattern fails.
    mapping.write_text(text.replace(plain, "{source: \"regex_replace(Epost, Navn, '')\", target: email, "
                                           "type: string, direction: forward}"), encoding="utf-8")
    sandbox = make_sandbox(seed=SeedSize(avdelinger=1, kunder=3, prosjekter=0), rng_seed=1)
    kunde = sandbox.tidsbanken.records("Kunde")[0]["Id"]
    sandbox.tidsbanken.edit("Kunde", kunde, Navn="Fjord (AS")
    env = sandbox.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path}/state.db"}
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["plan"], env=env)
    assert result.exit_code in {0, 1}, result.output
    assert f"x fail Kunde {kunde}" in result.stdout
    assert (f"cannot map it: mappings/kunde-customer.yaml:{line}: cannot evaluate \"regex_replace(Epost, Navn, "
            f"'')\" on Kunde record '{kunde}': regex_replace(): regular expression 'Fjord (AS' does not compile: "
            f"missing ), unterminated subpattern at position 6") in result.stdout
    assert result.stdout.count("x fail") == 1 and "Traceback" not in result.output
