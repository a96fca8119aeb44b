"""The check of a write against the entity schema of the system it goes to.

Every body the planner writes is checked, so the check is on the initial sync's hot path. jsonschema stays
the one validator; what is saved is asking it again about values it cannot tell apart (`Verdicts`): an
object is judged from its keys and its properties' verdicts, a value whose schema only names a type by its
JSON type, any other value once per distinct value. Only a body that fails goes through jsonschema's full
pass, which explains every problem."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from jsonschema import Draft202012Validator

from mapsync.spec._yaml import render_path

# Keywords whose verdict on an object is its required keys, its closedness and each property's own verdict,
# and on anything else the type alone; any other keyword (allOf, enum, pattern, if/then, ...) means the
# verdict is remembered per distinct value instead.
_ASSEMBLED = frozenset({"type", "properties", "required", "additionalProperties"})
# Keywords that validate nothing (plus every `x-` extension; `format` too, as no format checker is set),
# and references, which a subschema's own validator could not resolve against the root.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples", "default",
                          "deprecated", "readOnly", "writeOnly", "format"})
_REFERENCES = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
MEMO_LIMIT = 4096  # verdicts kept per (sub)schema; its memo starts afresh when full
MEMO_TEXT_LIMIT = 256  # longer texts (and containers holding one) are validated each time, never kept
MEMO_ITEMS_LIMIT = 32  # so are arrays and objects with more items


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
        self._create_verdicts = Verdicts(whole, self._create)
        self._property: dict[str, Verdicts] = {}

    def create_problem(self, body: Mapping[str, Any]) -> str | None:
        """Why a create body would be refused (every problem, in path order), or None."""
        body = body if type(body) is dict else dict(body)  # jsonschema's `object` is a dict
        if self._create_verdicts.passes(body):
            return None
        return self._explain(self._create.iter_errors(body), "")

    def change_problem(self, body: Mapping[str, Any]) -> str | None:
        """Why an update body would be refused: each property sent against its own schema (nothing is
        required of an update), or None."""
        sent = [(self._verdicts(name), name, value) for name, value in body.items() if name in self.properties]
        if all(verdicts.passes(value) for verdicts, _, value in sent):
            return None
        problems = [self._explain(verdicts.validator.iter_errors(value), name) for verdicts, name, value in sent]
        return "; ".join(p for p in problems if p) or None

    def _verdicts(self, name: str) -> Verdicts:
        if name not in self._property:
            self._property[name] = Verdicts(self.properties[name])
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


class Verdicts:
    """jsonschema's verdict (valid or not) on values of one schema, without asking it again for values it
    cannot tell apart: an object is judged by its keys and its properties' verdicts where that is all the
    schema asks (type, properties, required, additionalProperties), anything else by its JSON type there;
    under any other schema each distinct value is asked once and remembered."""

    def __init__(self, schema: Any, validator: Draft202012Validator | None = None) -> None:
        self.validator = validator or Draft202012Validator(schema)
        self._assembled = _assembled(schema)
        self._object = self._assembled and _admits_object(schema.get("type", "object"))
        self._required = frozenset(schema.get("required", ())) if self._assembled else frozenset()
        self._closed = self._assembled and schema.get("additionalProperties") is False
        self._properties = ({name: Verdicts(sub) for name, sub in schema.get("properties", {}).items()}
                            if self._assembled else {})
        self._memo: dict[object, bool] = {}  # by class or JSON type (_json_type), or by value (_frozen)

    def passes(self, value: Any) -> bool:
        if self._object and type(value) is dict:
            return self._object_passes(value)
        key = _json_type(value) if self._assembled else _frozen(value, MEMO_ITEMS_LIMIT)
        if key is None:
            return self.validator.is_valid(value)
        verdict = self._memo.get(key)
        if verdict is None:
            verdict = self.validator.is_valid(value)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = verdict
        return verdict

    def _object_passes(self, value: dict[str, Any]) -> bool:
        if not value.keys() >= self._required:
            return False
        properties = self._properties
        for name, item in value.items():
            verdicts = properties.get(name)
            if verdicts is None:
                if self._closed:
                    return False
                continue
            # A verdict kept by the value's class (a type-only schema, see _json_type), read without a call:
            # the check runs once per property of every body written.
            verdict = verdicts._memo.get(type(item))
            if not (verdicts.passes(item) if verdict is None else verdict):
                return False
        return True


def _assembled(schema: Any) -> bool:
    """Whether the schema's verdict is the type's, and on an object also the required keys', the
    closedness's and each property's own."""
    if not isinstance(schema, dict):
        return False
    keywords = {key for key in schema if not key.startswith("x-") and key not in _ANNOTATIONS}
    return (keywords <= _ASSEMBLED
            and isinstance(schema.get("additionalProperties", True), bool)
            and isinstance(schema.get("properties", {}), dict)
            and isinstance(schema.get("required", []), list)
            and not _mentions_reference(schema.get("properties", {})))


def _admits_object(kind: Any) -> bool:
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def _mentions_reference(node: Any) -> bool:
    if isinstance(node, dict):
        return any(key in _REFERENCES or _mentions_reference(value) for key, value in node.items())
    if isinstance(node, list):
        return any(_mentions_reference(item) for item in node)
    return False


_JSON_CLASSES = frozenset({str, int, bool, type(None), list, dict})


def _json_type(value: Any) -> object | None:
    """What `type` sees of a value: its class, and of a float whether it is integral (1.0 is an integer).
    A class is never a key of a per-value memo (see _frozen), so _object_passes may look one up in any."""
    kind = type(value)
    if kind is float:
        return ("float", value.is_integer())
    return kind if kind in _JSON_CLASSES else None


def _frozen(value: Any, budget: int) -> Hashable | None:
    """A hashable stand-in equal only for values jsonschema cannot tell apart, or None (not kept).

    Types are part of it: True == 1 == 1.0 in Python, but `type: integer` accepts 1 and 1.0, not True.
    """
    kind = type(value)
    if kind is str:
        return value if len(value) <= MEMO_TEXT_LIMIT else None
    if value is None or kind is bool or kind is int or kind is float:
        return (kind, value)
    if kind is list and len(value) <= budget:
        items = tuple(_frozen(item, budget - len(value)) for item in value)
        return None if None in items else ("[", items)
    if kind is dict and len(value) <= budget:
        pairs = tuple((name, _frozen(item, budget - len(value))) for name, item in value.items())
        return None if any(item is None for _, item in pairs) else ("{", pairs)
    return None
