"""${VAR} and ${VAR:-default} in mapsync.yaml, read from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mapsync.spec._yaml import Document, KeyPath

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(doc: Document, env: Mapping[str, str]) -> tuple[Any, list[Any]]:
    """A copy of the document's data with every ${VAR} resolved, and the errors for unset ones."""
    errors: list[Any] = []

    def resolve(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return _VAR.sub(lambda m: substitute(m, path), value)
        return value

    def substitute(match: re.Match[str], path: KeyPath) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        errors.append(doc.error(path, f"environment variable {name} is not set and has no default"))
        return ""

    return resolve(doc.data, ()), errors
