"""JSON Schema errors as file:line messages, pointing at the offending key.

The one renderer of jsonschema's errors: the same wording and the same secret rule whether the
instance was read from a file (`schema_errors`, with file and line) or handed over in code
(`schema_problems`, key paths only).
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from mapsync.errors import SpecError
from mapsync.spec._yaml import Document, KeyPath

Problem = tuple[KeyPath, str]


def schema_errors(doc: Document, schema: dict[str, Any], base: KeyPath = (), data: Any = None) -> list[SpecError]:
    instance = doc.data if data is None else data
    return [doc.error(path, message) for path, message in schema_problems(schema, instance, base)]


def schema_problems(schema: dict[str, Any], instance: Any, base: KeyPath = ()) -> list[Problem]:
    """Every way `instance` fails `schema`: the key path (under `base`) and what is wrong there."""
    validator = jsonschema.Draft202012Validator(schema)
    found: list[Problem] = []
    for error in validator.iter_errors(instance):
        found.extend(_explain(base, error))
    return found


def _explain(base: KeyPath, error: jsonschema.ValidationError) -> list[Problem]:
    path: KeyPath = (*base, *error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return [((*path, key), f"unknown key {key!r}{hint}") for key in extra]
    if error.validator in {"oneOf", "anyOf"} and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        return _explain(base, best)
    if path and isinstance(path[-1], str) and _SECRET.search(path[-1]):
        # jsonschema's own message repeats the value, and this one may be a secret: describe, never quote.
        return [(path, f"invalid value (it fails the {error.validator!r} rule of this setting)")]
    return [(path, error.message)]


_SECRET = re.compile(r"key|token|secret|password", re.IGNORECASE)
