"""The check of a write against the entity schema of the system it goes to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator

from mapsync.spec._yaml import render_path


class WriteCheck:
    """What a system will refuse (maxLength, pattern, enum, required, types), checked with jsonschema against
    the entity schema the spec loaded, before anything is sent: plan shows it, apply fails the record."""

    def __init__(self, entity: str, schema: dict[str, Any]) -> None:
        self.entity = entity
        self.properties: dict[str, Any] = schema.get("properties", {})
        # mapsync fills the key in (a client-chosen Id) or the server does; no body of ours carries them.
        filled = {schema.get("x-key", "id"), *schema.get("x-server-fields", [])}
        whole = {**schema, "required": [name for name in schema.get("required", []) if name not in filled]}
        self._create = Draft202012Validator(whole)
        self._property: dict[str, Draft202012Validator] = {}

    def create_problem(self, body: Mapping[str, Any]) -> str | None:
        """Why a create body would be refused (every problem, in path order), or None."""
        return self._explain(self._create.iter_errors(dict(body)), "")

    def change_problem(self, body: Mapping[str, Any]) -> str | None:
        """Why an update body would be refused: each property sent against its own schema (nothing is
        required of an update), or None."""
        problems = [self._explain(self._validator(name).iter_errors(value), name)
                    for name, value in body.items() if name in self.properties]
        return "; ".join(p for p in problems if p) or None

    def _validator(self, name: str) -> Draft202012Validator:
        if name not in self._property:
            self._property[name] = Draft202012Validator(self.properties[name])
        return self._property[name]

    def _explain(self, errors: Any, prefix: str) -> str | None:
        found = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
        lines = []
        for error in found:
            message = error.message
            if error.validator == "maxLength" and isinstance(error.instance, str):  # never quote 10 000 characters
                message = f"{len(error.instance)} characters is too long (at most {error.validator_value})"
            path = render_path((prefix, *error.absolute_path) if prefix else tuple(error.absolute_path))
            lines.append(f"{self.entity}.{path}: {message}" if path else f"{self.entity}: {message}")
        return "; ".join(lines) or None
