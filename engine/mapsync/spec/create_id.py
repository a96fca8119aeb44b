"""`create_id:` templates: their placeholders, the checks `validate` makes, and filling one in.

A template is a Python format string with four names: `{counter}` (a number the state store never gives
twice per dataflow and side; a format spec pads it: `{counter:05}`), `{uuid}` (32 hex digits), `{short}`
(8 hex digits) and `{value}` (what the entry's `expression` gives on the record being created). It must
hold one of the first three, so that an id refused as taken can be replaced by a new one.
"""

from __future__ import annotations

import string
import uuid
from typing import Any

from mapsync.spec._yaml import KeyPath

PLACEHOLDERS = ("counter", "uuid", "short", "value")
UNIQUE = ("counter", "uuid", "short")
SIDES_CREATED = {"target": {"target", "both"}, "source": {"source", "both"}}


def placeholders(template: str) -> set[str]:
    """The placeholder names a template uses (assumes template_problem found nothing)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def template_problem(template: str) -> str | None:
    """What is wrong with a template, in words; None when it can make ids."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:  # a lone { or }
        return f"{template!r} is not a usable template ({exc}; write a literal brace twice: {{{{ or }}}})"
    for name, spec, conversion in fields:
        problem = _field_problem(name, spec or "", conversion)
        if problem:
            return problem
    if not {name for name, _, _ in fields} & set(UNIQUE):
        return (f"{template!r} needs {{counter}}, {{uuid}} or {{short}}, so that an id another record holds "
                "can be replaced by a new one")
    return None


def _field_problem(name: str, spec: str, conversion: str | None) -> str | None:
    if name not in PLACEHOLDERS:
        known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        return f"unknown placeholder {{{name}}} (known: {known})"
    if conversion:
        return f"{{{name}!{conversion}}}: a placeholder takes no conversion"
    if spec and name != "counter":
        return f"{{{name}:{spec}}}: only {{counter}} takes a format (like {{counter:05}})"
    if spec:
        try:
            format(1, spec)
        except ValueError:
            return f"{{counter:{spec}}} is not a number format (write e.g. {{counter:05}})"
    return None


def create_id_problems(raw: dict[str, Any], create: str, schemas: dict[str, dict[str, Any] | None]
                       ) -> list[tuple[KeyPath, str]]:
    """The problems of a dataflow's `create_id:` section that need no expression check."""
    problems: list[tuple[KeyPath, str]] = []
    for side, entry in raw.items():
        schema = schemas.get(side)
        if schema is not None and _server_chooses_ids(schema):
            problems.append((("create_id", side), f"{schema.get('title', side)} ids are chosen by the server, "
                                                  "not by mapsync: remove this entry"))
        elif create not in SIDES_CREATED[side]:
            problems.append((("create_id", side), f"never used: this dataflow does not create {side} records "
                                                  f"(create: {create})"))
        problems.extend(_entry_problems(side, entry))
    return problems


def _entry_problems(side: str, entry: dict[str, Any]) -> list[tuple[KeyPath, str]]:
    template, expression = entry["template"], entry.get("expression")
    problem = template_problem(template)
    if problem:
        return [(("create_id", side, "template"), problem)]
    if "value" in placeholders(template) and not expression:
        return [(("create_id", side, "template"), f"{{value}} needs an expression: add create_id.{side}."
                                                  "expression (on the record being created)")]
    if expression and "value" not in placeholders(template):
        return [(("create_id", side, "expression"), "the expression is never used: the template has no {value}")]
    return []


def _server_chooses_ids(schema: dict[str, Any]) -> bool:
    """An entity's system chooses its ids when its key is among the fields only the server writes."""
    return str(schema.get("x-key", "id")) in schema.get("x-server-fields", [])


def client_chooses_ids(schema: dict[str, Any]) -> bool:
    return not _server_chooses_ids(schema)


def fill_template(template: str, *, counter: int | None = None, value: Any = None) -> str:
    """The id a template gives for this counter and value ({uuid} and {short} are new every time)."""
    fresh = uuid.uuid4().hex
    return template.format(counter=counter if counter is not None else 0, uuid=fresh, short=fresh[:8],
                           value="" if value is None else value)
