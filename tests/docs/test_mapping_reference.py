"""docs/mapping-reference.md is generated from schemas/mapping.schema.json: it must stay in step."""

from __future__ import annotations

import json
from types import ModuleType

from doc_scripts import ROOT, load_script

PAGE = ROOT / "docs" / "mapping-reference.md"
SCHEMA = ROOT / "schemas" / "mapping.schema.json"


def _generator() -> ModuleType:
    return load_script("_generate_mapping_reference")


def test_committed_page_equals_the_generated_one() -> None:
    expected = _generator().render()
    assert PAGE.read_text(encoding="utf-8") == expected, (
        "docs/mapping-reference.md is out of date: run .venv/bin/python docs/_generate_mapping_reference.py"
    )


def test_every_top_level_property_is_documented() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    page = PAGE.read_text(encoding="utf-8")
    missing = [name for name in schema["properties"] if f"| `{name}` |" not in page]
    assert not missing, f"not in the reference tables: {missing}"


def test_every_key_of_side_row_and_example_is_documented() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    page = PAGE.read_text(encoding="utf-8")
    for name in ("side", "row", "example"):
        for key in schema["$defs"][name]["properties"]:
            assert f"| `{key}` |" in page, f"$defs/{name}: {key} is not documented"


def test_a_new_schema_key_shows_up_in_the_page() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    schema["properties"]["owner"] = {"description": "Who to ask.", "type": "string", "default": "ops"}
    page = _generator().render(schema)
    assert "| `owner` | string |  |  | `ops` | Who to ask. |" in page
