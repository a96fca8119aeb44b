"""The write check: per-property verdicts remembered per value give jsonschema's own verdict and messages."""

from __future__ import annotations

import json
from importlib import resources
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from mapsync.mapping import write_check
from mapsync.mapping.write_check import Verdicts, WriteCheck


def shipped(system: str, entity: str) -> dict[str, Any]:
    text = resources.files("mapsync.schemas").joinpath(system, f"{entity}.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


# Keywords jsonschema tells apart where Python's equality does not (True == 1 == 1.0), nested objects,
# arrays, and a closed object with two required properties.
CRAFTED: dict[str, Any] = {
    "type": "object",
    "x-key": "id",
    "properties": {
        "id": {"type": "string"},
        "count": {"type": "integer", "minimum": 0},
        "level": {"type": ["integer", "null"]},  # only the type matters: judged by the value's JSON type
        "flag": {"type": "boolean"},
        "ratio": {"type": ["number", "null"], "maximum": 1},
        "kind": {"enum": ["a", "b", 1, None]},
        "code": {"type": "string", "pattern": "^[0-9]{3}$", "maxLength": 3},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 3},
        "address": {"type": ["object", "null"], "properties": {"city": {"type": "string"}},
                    "required": ["city"], "additionalProperties": False},
    },
    "required": ["id", "count", "kind"],
    "additionalProperties": False,
}
SCHEMAS = {
    "Customer": shipped("custompms", "customer"),
    "Project": shipped("custompms", "project"),
    "Kunde": shipped("tidsbanken", "kunde"),
    "Crafted": CRAFTED,
}
# One instance per schema for the whole run: its remembered verdicts carry over from body to body.
CHECKS = {name: WriteCheck(name, schema) for name, schema in SCHEMAS.items()}


def plain(name: str) -> WriteCheck:
    """The same check with every body through jsonschema's full pass (`allOf` is not reproduced)."""
    return WriteCheck(name, {**SCHEMAS[name], "allOf": [True]})


PLAIN = {name: plain(name) for name in SCHEMAS}

# A body that passes, per schema: most generated bodies change a few of its values, so that the per-property
# verdicts (not only a missing or unknown key) decide.
PASSING: dict[str, dict[str, Any]] = {
    "Customer": {"name": "n"}, "Project": {"name": "n"}, "Kunde": {"Navn": "n"}, "Crafted": {"count": 0, "kind": "a"},
}
CONFUSED = [True, False, 1, 0, 1.0, 0.0, -1, 0.5, None, "", "a", "123", "x" * 300,  # equal in Python, not in JSON
            [], ["a"], {}, {"city": "x"}, {"city": 1}, {"line1": "x", "other": None}]
SCALARS = st.one_of(st.sampled_from(CONFUSED), st.integers(-3, 3), st.text(max_size=4))
CONTAINERS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["city", "line1", "other"]), inner, max_size=3),
), max_leaves=6)
VALUES = st.one_of(st.sampled_from(CONFUSED), st.sampled_from(CONFUSED), SCALARS, CONTAINERS)  # scalars mostly


def names(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    return st.sampled_from([*schema["properties"], *schema.get("required", []), "unknown"])


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(SCHEMAS)))
    changed = draw(st.dictionaries(names(SCHEMAS[name]), VALUES, max_size=3))
    base = PASSING[name] if draw(st.integers(0, 9)) else {}  # now and then without a required property
    return name, {**base, **changed}


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(bodies())
def test_create_verdicts_and_messages_equal_the_full_pass(case: tuple[str, dict[str, Any]]) -> None:
    name, body = case
    found = CHECKS[name].create_problem(body)
    assert found == PLAIN[name].create_problem(body)
    whole = PLAIN[name]._create  # the validator of the full pass, its required list without x-key
    assert (found is None) == whole.is_valid(body)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(bodies())
def test_change_verdicts_and_messages_equal_the_full_pass(case: tuple[str, dict[str, Any]]) -> None:
    name, body = case
    found = CHECKS[name].change_problem(body)
    assert found == PLAIN[name].change_problem(body)
    properties = SCHEMAS[name]["properties"]
    sent_valid = all(Draft202012Validator(properties[key]).is_valid(value)
                     for key, value in body.items() if key in properties)
    assert (found is None) == sent_valid


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_value_after_each_other_value_gets_the_full_passs_answer(name: str) -> None:
    for order in (CONFUSED, CONFUSED[::-1]):  # every pair of values met in both orders
        check = WriteCheck(name, SCHEMAS[name])
        for prop in SCHEMAS[name]["properties"]:
            for value in order:
                body = {**PASSING[name], prop: value}
                assert check.create_problem(body) == PLAIN[name].create_problem(body), (prop, value)
                assert check.change_problem({prop: value}) == PLAIN[name].change_problem({prop: value})


def test_values_python_calls_equal_are_judged_apart() -> None:
    check = WriteCheck("Crafted", CRAFTED)
    base = {"id": "x", "kind": "a"}
    assert check.create_problem({**base, "count": 1}) is None
    assert check.create_problem({**base, "count": True}) == "Crafted.count: True is not of type 'integer'"
    assert check.create_problem({**base, "count": 1.0}) is None  # an integer to JSON Schema
    assert check.create_problem({**base, "count": 0, "flag": True}) is None
    assert check.create_problem({**base, "count": 0, "flag": 1}) == "Crafted.flag: 1 is not of type 'boolean'"
    assert check.create_problem({**base, "count": 0, "flag": 0}) == "Crafted.flag: 0 is not of type 'boolean'"
    assert check.create_problem({**base, "count": 0, "flag": False}) is None
    assert check.create_problem({"id": "x", "count": 0, "kind": True}) == (
        "Crafted.kind: True is not one of ['a', 'b', 1, None]")


def test_required_and_closedness_are_read_off_the_keys() -> None:
    check = WriteCheck("Crafted", CRAFTED)
    assert check.create_problem({"count": 0, "kind": "a"}) is None  # id is the key: mapsync fills it in
    assert check.create_problem({"kind": "a"}) == "Crafted: 'count' is a required property"
    assert check.create_problem({"count": 0, "kind": "a", "extra": 1}) == (
        "Crafted: Additional properties are not allowed ('extra' was unexpected)")


def test_a_long_text_is_never_quoted_and_every_problem_is_named_in_path_order() -> None:
    check = WriteCheck("Customer", SCHEMAS["Customer"])
    body = {"name": "n" * 10_000, "organization_number": "12", "kind": "other"}
    assert check.create_problem(body) == (
        "Customer.kind: 'other' is not one of ['customer', 'department']; "
        "Customer.name: 10000 characters is too long (at most 200); "
        "Customer.organization_number: '12' does not match '^[0-9]{9}$'")


@pytest.mark.parametrize("extra", [
    {"allOf": [{"properties": {"name": {"maxLength": 2}}}]},
    {"$defs": {"short": {"maxLength": 2}}},
    {"dependentRequired": {"name": ["kind"]}},
])
def test_schemas_with_other_keywords_keep_jsonschemas_verdict(extra: dict[str, Any]) -> None:
    schema: dict[str, Any] = {**SCHEMAS["Customer"], **extra}
    if "$defs" in schema:
        schema["properties"] = {**schema["properties"], "name": {"$ref": "#/$defs/short"}}
    check = WriteCheck("Customer", schema)
    for _ in range(2):  # the second time from what was remembered
        problem = check.create_problem({"name": "long"})
        assert problem is not None and problem.startswith("Customer")
    assert check.create_problem({"name": "ok", "kind": "customer"}) is None


def test_a_mapping_that_is_not_a_dict_is_judged_as_an_object() -> None:
    body = MappingProxyType({"name": "n", "kind": "customer"})
    assert WriteCheck("Customer", SCHEMAS["Customer"]).create_problem(body) is None


def test_remembered_verdicts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(write_check, "MEMO_LIMIT", 10)
    verdicts = Verdicts({"type": "string", "minLength": 1})
    for number in range(50):
        assert verdicts.passes(f"customer {number}")
        assert len(verdicts._memo) <= 10
    assert not verdicts.passes("")
    assert not verdicts.passes("")  # remembered


def test_only_the_json_type_is_remembered_where_only_the_type_matters() -> None:
    verdicts = Verdicts({"type": ["integer", "null"], "description": "Head of a department."})
    assert [verdicts.passes(value) for value in (1, 2, 1.0, 1.5, True, None, "1", 3, 2.0, False)] == [
        True, True, True, False, False, True, False, True, True, False]
    assert len(verdicts._memo) == 6  # int, integral float, other float, bool, NoneType, str: not one per value


def test_a_type_only_property_seen_before_is_judged_without_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    check = WriteCheck("Crafted", {"type": "object", "properties": {
        "name": {"type": "string"}, "count": {"type": ["integer", "null"]}, "ratio": {"type": "number"}}})
    assert check.create_problem({"name": "a", "count": 1, "ratio": 0.5}) is None
    calls = 0
    passes = Verdicts.passes

    def counted(self: Verdicts, value: Any) -> bool:
        nonlocal calls
        calls += 1
        return passes(self, value)

    monkeypatch.setattr(Verdicts, "passes", counted)
    assert check.create_problem({"name": "b", "count": 2, "ratio": 1.5}) is None
    assert calls == 2  # the body, and the float (1.0 and 1.5 differ to `integer`); not the name or the count
    assert check.create_problem({"name": "c", "count": "3", "ratio": 2}) == "Crafted.count: '3' is not of type " \
        "'integer', 'null'"
