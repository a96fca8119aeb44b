"""JSON Schema rendered as Markdown: the pieces both generated references share (the mapping reference and
the connector reference, `docs/_generate_*_reference.py`), and how such a page is written or checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def code(value: Any) -> str:
    """A value as inline code: text as written, anything else as JSON."""
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value, ensure_ascii=False)}`"


def cell(text: str) -> str:
    """Text for one table cell: on one line, its pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def type_of(prop: dict[str, Any]) -> str:
    """A short human type: string, number, list of string, object: name -> string, object (a definition)."""
    if "$ref" in prop:
        return f"object ({prop['$ref'].rsplit('/', 1)[-1]})"
    kind = prop.get("type")
    if kind is None and ("enum" in prop or "const" in prop):
        return _type_of_values(prop["enum"] if "enum" in prop else [prop["const"]])
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = prop.get("items", {})
        return f"list of {type_of(items)}" if items else "list"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"object: name -> {type_of(prop['additionalProperties'])}"
    return str(kind or "any")


def _type_of_values(values: list[Any]) -> str:
    """The type an enum or const without a `type` implies: its values' Python types, strings as "string"."""
    kinds = sorted({type(value).__name__ for value in values})
    return "string" if kinds == ["str"] else " or ".join(kinds)


def allowed_of(prop: dict[str, Any]) -> str:
    """Allowed values and limits, from enum, const, pattern, minimum/maximum, lengths and counts."""
    parts: list[str] = []
    if "enum" in prop:
        parts.append(", ".join(dict.fromkeys(code(v) for v in prop["enum"])))  # "null" and null read alike
    if "const" in prop:
        parts.append(code(prop["const"]))
    if "pattern" in prop:
        parts.append(f"matches `{prop['pattern']}`")
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum")
    above = ">" if "exclusiveMinimum" in prop and "minimum" not in prop else ">="
    if low is not None and high is not None:
        parts.append(f"{low} to {high}")
    elif low is not None:
        parts.append(f"{above} {low}")
    elif high is not None:
        parts.append(f"<= {high}")
    if prop.get("minLength"):
        parts.append("not empty")
    if prop.get("minItems"):
        parts.append(f"at least {prop['minItems']} item{'s' if prop['minItems'] != 1 else ''}")
    if prop.get("uniqueItems"):
        parts.append("no duplicates")
    if prop.get("minProperties"):
        count = prop["minProperties"]
        parts.append(f"at least {count} entr{'ies' if count != 1 else 'y'}")
    return "; ".join(parts)


def write_or_check(page: str, path: Path, root: Path, script: str, argv: list[str]) -> int:
    """Write the generated page, or with `--check` only say whether the file on disk is current (exit 1
    when not): the test suite and CI use the check."""
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    if "--check" in argv:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != page:
            print(f"{shown} is out of date: run {script}")
            return 1
        return 0
    path.write_text(page, encoding="utf-8")
    print(f"wrote {shown}")
    return 0
