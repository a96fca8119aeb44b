"""`mapsync validate` and `mapsync test` start fast: what they import, and what they skip (issue 15).

No timing here: the import list is deterministic, the clock on a shared machine is not (docs/performance.md
has the figures).
"""

from __future__ import annotations

import atexit
import gc
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mapsync.cli._app import _register_commands, cli
from mapsync.connectors.declarative import checks, loading
from mapsync.spec import _bounded_yaml
from mapsync.spec._yaml import parse_document

REPO = Path(__file__).parents[2]

# Modules neither command needs: the HTTP stack, the sync engine, the state backends, the worker, rich.
NOT_FOR_VALIDATE = (
    "httpx", "httpcore", "sqlite3", "psycopg", "rich", "prometheus_client", "difflib",
    "mapsync.sync", "mapsync.sync.executor", "mapsync.sync.planner", "mapsync.connectors.http",
    "mapsync.connectors.declarative.connector", "mapsync.state.base", "mapsync.state.sqlite", "mapsync.worker",
    "mapsync.observe.metrics", "mapsync.mapping.mapper", "mapsync.mapping.generated", "mapsync.mapping.examples",
)
NOT_FOR_TEST = tuple(m for m in NOT_FOR_VALIDATE if not m.startswith("mapsync.mapping."))


def imported_by(*command: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAPSYNC_", "TIDSBANKEN_", "CUSTOMPMS_"))}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mapsync", *command], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", done.stderr, re.MULTILINE))


def test_validate_imports_none_of_the_heavy_modules() -> None:
    imported = imported_by("validate")
    assert "mapsync.spec.checker" in imported  # the list is read right: the command's own modules are there
    assert sorted(imported.intersection(NOT_FOR_VALIDATE)) == []


def test_test_imports_the_mapper_but_not_the_engine() -> None:
    imported = imported_by("test")
    assert "mapsync.mapping.mapper" in imported
    assert sorted(imported.intersection(NOT_FOR_TEST)) == []


def test_the_lazy_names_still_import() -> None:
    from mapsync.mapping import Mapper
    from mapsync.mapping.mapper import Mapper as FromModule
    from mapsync.state import Link, StateStore
    from mapsync.state.base import Link as BaseLink

    assert Mapper is FromModule and Link is BaseLink and StateStore.__name__ == "StateStore"
    import mapsync.state

    with pytest.raises(AttributeError):
        _ = mapsync.state.NoSuchThing


# -- YAML: libyaml's parser under mapsync's bounded composer ------------------------------------------------


def _read_both(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fast = parse_document(text, "x.yaml")
    with monkeypatch.context() as patch:
        patch.setattr(_bounded_yaml, "_FastBoundedLoader", None)
        slow = parse_document(text, "x.yaml")
    return [(d and (d.data, d.lines), [str(e) for e in errors]) for d, errors in (fast, slow)]  # type: ignore[return-value]


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_a_mapping_file_is_parsed_by_libyaml_and_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    compose = _bounded_yaml._compose_fast

    def spied(text: str) -> Any:
        used.append(text)
        return compose(text)

    monkeypatch.setattr(_bounded_yaml, "_compose_fast", spied)
    for path in sorted((REPO / "mappings").glob("*.yaml")):
        fast, slow = _read_both(path.read_text(), monkeypatch)
        assert fast == slow and fast[1] == []
    assert used and isinstance(compose((REPO / "mapsync.yaml").read_text()), tuple)


@pytest.mark.parametrize("text", [
    "a: [1, 2\nb: 3\n",  # a syntax error: PyYAML's own words, at its line
    "key: value\n\tother: 1\n",  # a tab: libyaml is laxer
    "row: {source: a?b, target: c}\n",  # a `?` in a flow mapping: libyaml is laxer
    "a: &x [1]\nb: *x\nc: *y\n",  # an undefined alias
    "a:\n  b: 1\n  b: 2\n",  # a duplicate key
    "a: 2024-02-30\n",  # a value Python cannot build
    "1: one\n",  # a key that is not text
])
def test_problems_are_reported_as_pyyaml_always_did(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = _read_both(text, monkeypatch)
    assert fast == slow


def test_an_alias_bomb_is_refused_by_the_fast_reader_too(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    fast, slow = _read_both(bomb, monkeypatch)
    assert fast == slow and "alias" in fast[1][0]


# -- the shipped connector definitions -----------------------------------------------------------------------


def test_a_shipped_definition_is_not_checked_against_the_meta_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """mapsync's own entity schemas are checked by the tests (test_definition.py), not at every start."""
    calls: list[Any] = []
    monkeypatch.setattr(checks, "json_schema_problems", _counting(checks.json_schema_problems, calls))
    definition = loading.shipped_definition.__wrapped__("tidsbanken")  # past the cache
    assert set(definition.entities) == {"Avdeling", "Kunde", "Prosjekt"}
    entity_calls = [schema for schema in calls if isinstance(schema, dict) and "x-key" in schema]
    assert entity_calls == []
    assert checks.entity_schema_problem({"properties": {"id": {"type": "nope"}}, "x-key": "id", "x-modified": "id"}
                                        ) is not None  # a workspace's own definition still gets the check


def _counting(function: Callable[..., Any], calls: list[Any]) -> Callable[..., Any]:
    def counted(schema: Any) -> Any:
        calls.append(schema)
        return function(schema)

    return counted


# -- the last garbage collections are left to the OS -----------------------------------------------------------


@pytest.mark.parametrize(("command", "skips"), [(["validate"], True), (["test"], True), (["schema", "config"], False)])
def test_validate_and_test_skip_the_final_collection(command: list[str], skips: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Any] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", lambda f: None)
    _register_commands()
    result = CliRunner().invoke(cli, ["--config", str(REPO / "mapsync.yaml"), *command])
    assert result.exit_code == 0, result.output
    assert (gc.freeze in registered) is skips
