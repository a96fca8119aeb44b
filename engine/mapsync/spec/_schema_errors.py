"""JSON Schema errors as file:line messages, pointing at the offending key."""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from mapsync.errors import SpecError
from mapsync.spec._yaml import Document, KeyPath


def schema_errors(doc: Document, schema: dict[str, Any], base: KeyPath = (), data: Any = None) -> list[SpecError]:
    instance = doc.data if data is None else data
    validator = jsonschema.Draft202012Validator(schema)
    found: list[SpecError] = []
    for error in validator.iter_errors(instance):
        found.extend(_explain(doc, base, error))
    return found


def _explain(doc: Document, base: KeyPath, error: jsonschema.ValidationError) -> list[SpecError]:
    path: KeyPath = (*base, *error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return [doc.error((*path, key), f"unknown key {key!r}{hint}") for key in extra]
    if error.validator in {"oneOf", "anyOf"} and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        return _explain(doc, base, best)
    if path and isinstance(path[-1], str) and _SECRET.search(path[-1]):
        # jsonschema's own message repeats the value, and this one may be a secret: describe, never quote.
        return [doc.error(path, f"invalid value (it fails the {error.validator!r} rule of this setting)")]
    return [doc.error(path, error.message)]


_SECRET = re.compile(r"key|token|secret|password", re.IGNORECASE)
