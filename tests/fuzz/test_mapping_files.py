"""Fuzzing the files a user controls: whatever the mapping or config holds, validate answers with
file:line messages (SpecErrors), never another exception."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapsync.errors import SpecErrors
from mapsync.mapping.examples import run_examples
from mapsync.spec.loader import load_workspace

REPO = Path(__file__).resolve().parents[2]
REFERENCE = yaml.safe_load((REPO / "mappings" / "kunde-customer.yaml").read_text(encoding="utf-8"))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["Navn", "name", "postal_address.line1", "a..b",
                                                           "join(' ', [Navn])", "[", "`x`", "${X}"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


@st.composite
def mutated_mappings(draw: st.DrawFn) -> Any:
    """The reference Kunde mapping with a few keys dropped, replaced or added at random depths."""
    document = copy.deepcopy(REFERENCE)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = document
        path = draw(st.lists(st.integers(0, 20), min_size=0, max_size=3))
        for step in path:
            children = _children(node)
            if not children:
                break
            child = children[step % len(children)]
            if not isinstance(node[child], dict | list):
                break
            node = node[child]
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node, key=str)))
            action = draw(st.sampled_from(["drop", "replace", "add"]))
            if action == "drop":
                del node[key]
            elif action == "replace":
                node[key] = draw(values)
            else:
                node[draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(values)
    return document


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    return list(range(len(node))) if isinstance(node, list) else []


def _check(workspace: Path, *, run_the_examples: bool = False) -> None:
    try:
        loaded = load_workspace(workspace / "mapsync.yaml", env={})
    except SpecErrors as exc:
        assert exc.errors, "SpecErrors without any error"
        for error in exc.errors:
            assert error.location is not None and error.location.file, str(error)
            assert "\n" not in error.message, "an error message is one line"
        return
    if run_the_examples:
        # a mapping validate accepted: its examples pass or fail, they never raise
        for result in run_examples(loaded):
            assert result.passed or result.diff() is not None


def _workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "mappings").mkdir(parents=True)
    shutil.copy(REPO / "mapsync.yaml", folder / "mapsync.yaml")
    for name in ("avdeling-customer.yaml", "prosjekt-project.yaml"):
        shutil.copy(REPO / "mappings" / name, folder / "mappings" / name)
    return folder


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=mutated_mappings())
def test_mutated_mapping_yields_spec_errors_only(tmp_path: Path, document: Any) -> None:
    folder = _workspace(tmp_path)
    (folder / "mappings" / "kunde-customer.yaml").write_text(yaml.safe_dump(document, allow_unicode=True),
                                                            encoding="utf-8")
    _check(folder)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.sampled_from([*"abc:-[]{}'\"\n #&*!|>%@`,?\t", "Navn", "target", "properties"]),
                    max_size=80).map("".join))
def test_arbitrary_text_as_a_mapping_yields_spec_errors_only(tmp_path: Path, text: str) -> None:
    folder = _workspace(tmp_path)
    (folder / "mappings" / "kunde-customer.yaml").write_text(text, encoding="utf-8")
    _check(folder)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(block=st.dictionaries(st.sampled_from(["type", "base_url", "api_key", "subscription_key", "token",
                                              "timeout", "max_retries", "rate_limit", "concurrency",
                                              "page_size", "overlap", "extra"]), values, max_size=6))
def test_arbitrary_connection_blocks_yield_spec_errors_only(tmp_path: Path, block: dict[str, Any]) -> None:
    folder = _workspace(tmp_path)
    config = yaml.safe_load((folder / "mapsync.yaml").read_text(encoding="utf-8"))
    config["connections"]["tidsbanken"] = block
    (folder / "mapsync.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _check(folder)


# JMESPath pieces that reach jmespath's odd corners: deep nesting, bare TypeErrors on comparisons, zero slice
# steps, unknown functions, wrong argument counts, long numbers.
_JMESPATH_PIECES = ["Navn", "Poststed", "Id", ".", "[", "]", "(", ")", "{", "}", "|", "||", "&&", "!", "*", ",",
                    ":", "::0", "[?", ">", "<", "==", "`1`", "`\"x\"`", "`[]`", "'a'", "@", "&", "length(",
                    "join(' ', ", "to_number(", "ceil(", "nope(", "sort(", "9" * 5000, "(" * 200, "!" * 200]


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(source=st.lists(st.sampled_from(_JMESPATH_PIECES), min_size=1, max_size=8).map("".join),
       reverse=st.lists(st.sampled_from(_JMESPATH_PIECES), min_size=1, max_size=8).map("".join))
def test_arbitrary_expressions_yield_spec_errors_or_failed_examples(tmp_path: Path, source: str,
                                                                    reverse: str) -> None:
    folder = _workspace(tmp_path)
    document = copy.deepcopy(REFERENCE)
    document["properties"][0] = {"source": source, "target": "name", "type": "string", "reverse": {"Navn": reverse}}
    (folder / "mappings" / "kunde-customer.yaml").write_text(yaml.safe_dump(document, allow_unicode=True),
                                                            encoding="utf-8")
    _check(folder, run_the_examples=True)


# Lines of YAML that reach the loader's bounds: anchors, aliases (recursive, undefined, many), merge keys,
# deep nesting, impossible dates, overlong integers, keys that are not text. Whole lines, so that most
# drawn documents are valid YAML and get past the parser.
_YAML_LINES = ["a: &x [1, 2]", "b: &y {k: v}", "c: [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]", "d: *x",
               "e: {<<: *y, k: w}", "f: &z [*x, *x, *x]", "g: [*z, *z, *z, *z, *z, *z, *z, *z, *z, *z]",
               "h: &r [*r]", "i: *undefined", "j: " + "[" * 400 + "]" * 400, "k: 2024-02-30", "l: " + "9" * 5000,
               "1: one", "null: none", "m: !!binary aGVsbG8=", "n: [" + ", ".join(["*x"] * 60) + "]"]


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.sampled_from(_YAML_LINES), min_size=1, max_size=6, unique=True))
def test_arbitrary_yaml_structure_yields_spec_errors_only(tmp_path: Path, lines: list[str]) -> None:
    folder = _workspace(tmp_path)
    text = "\n".join(lines) + "\n"
    (folder / "mappings" / "kunde-customer.yaml").write_text(text, encoding="utf-8")
    (folder / "mapsync.yaml").write_text((folder / "mapsync.yaml").read_text(encoding="utf-8") + text,
                                         encoding="utf-8")
    _check(folder)
