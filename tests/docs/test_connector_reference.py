"""docs/connector-reference.md is generated from schemas/connector.schema.json: it must stay in step."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from doc_scripts import ROOT, load_script

PAGE = ROOT / "docs" / "connector-reference.md"
SCHEMA = ROOT / "schemas" / "connector.schema.json"


def _generator() -> ModuleType:
    return load_script("_generate_connector_reference")


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


def test_committed_page_equals_the_generated_one() -> None:
    assert PAGE.read_text(encoding="utf-8") == _generator().render(), (
        "docs/connector-reference.md is out of date: run .venv/bin/python docs/_generate_connector_reference.py"
    )


def test_check_mode_fails_on_a_stale_page(tmp_path: Path) -> None:
    generator = _generator()
    generator.PAGE_PATH = tmp_path / "connector-reference.md"
    generator.PAGE_PATH.write_text("stale\n", encoding="utf-8")
    assert generator.main(["--check"]) == 1
    generator.PAGE_PATH.write_text(generator.render(), encoding="utf-8")
    assert generator.main(["--check"]) == 0


def _keys(node: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Every key of every object in the schema, $refs followed once."""
    found: list[str] = []
    for name, prop in node.get("properties", {}).items():
        found.append(name)
        target = defs.get(prop.get("$ref", "").rsplit("/", 1)[-1], prop)
        found += _keys(target, defs)
        extra = target.get("additionalProperties")
        if isinstance(extra, dict) and "$ref" in extra:
            found += _keys(defs[extra["$ref"].rsplit("/", 1)[-1]], defs)
    for rule in node.get("allOf", []):
        found += _keys(defs[rule["then"]["$ref"].rsplit("/", 1)[-1]], defs)
    return found


def test_every_key_of_every_object_is_documented() -> None:
    schema = _schema()
    page = PAGE.read_text(encoding="utf-8")
    missing = sorted({key for key in _keys(schema, schema["$defs"]) if f"| `{key}` |" not in page})
    assert not missing, f"not in the reference tables: {missing}"


def test_every_auth_kind_has_its_own_section() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for kind in _schema()["$defs"]["auth"]["properties"]["kind"]["enum"]:
        assert f"### `connection.auth` with `kind: {kind}`" in page


def test_a_new_schema_key_shows_up_in_the_page() -> None:
    schema = _schema()
    schema["$defs"]["entity"]["properties"]["list"]["properties"]["sort"] = {
        "description": "The order of the listing.", "enum": ["asc", "desc"], "default": "asc"}
    page = _generator().render(schema)
    assert "| `sort` | string |  | `asc`, `desc` | `asc` | The order of the listing. |" in page
