"""The checks of one mapping file against the format and the entity schemas of both systems."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema

from mapsync.errors import SpecError
from mapsync.mapping.paths import field_names, plain_path
from mapsync.mapping.types import target_type_fits
from mapsync.spec._expression import expression_problem, shown
from mapsync.spec._row_values import Problem, lookup_tables, lookup_unknown_of, row_value_problems
from mapsync.spec._schema_errors import schema_errors
from mapsync.spec._yaml import Document, KeyPath
from mapsync.spec.create_id import create_id_problems
from mapsync.spec.entities import entity_names, entity_schema, format_schema, property_schema
from mapsync.spec.model import CreateId, DataflowSpec, Direction, Example, Row, RowType, Side, _member
from mapsync.spec.ownership import settle_shared_writes


class MappingChecker:
    """Checks one mapping document against the format and the entity schemas, collecting problems."""

    def __init__(self, doc: Document, connections: dict[str, dict[str, Any]], errors: list[SpecError],
                 broken: Collection[str] = ()) -> None:
        self.doc = doc
        self.connections = connections
        self.errors = errors
        self.broken = broken  # connections in mapsync.yaml that are unusable (reported there already)
        self.lookups: dict[str, dict[str, Any]] = {}  # the `lookups:` tables, keyed by key text

    def fail(self, path: KeyPath, message: str) -> None:
        self.errors.append(self.doc.error(path, message))

    def fail_all(self, problems: Iterable[Problem]) -> None:
        for path, message in problems:
            self.fail(path, message)

    def build(self) -> DataflowSpec | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.fail((), "a mapping file must be a mapping of keys (dataflow, source, target, properties)")
            return None
        before = len(self.errors)
        self.errors.extend(schema_errors(self.doc, format_schema("mapping.schema.json")))
        schema_valid = len(self.errors) == before
        if not schema_valid and not _usable(data):
            return None
        checked = len(self.errors)
        try:
            return self._build(data)
        except (TypeError, AttributeError, ValueError, KeyError, OverflowError):
            # The semantic checks assume a document the schema accepts; on one it refused they are a best
            # effort, and the schema errors already say what is wrong. On a valid one this is a bug.
            if schema_valid:
                raise
            del self.errors[checked:]
            return None

    def _build(self, data: dict[str, Any]) -> DataflowSpec:
        source = self._side("source", data["source"])
        target = self._side("target", data["target"])
        source_schema = self._entity_schema("source", source)
        target_schema = self._entity_schema("target", target)
        zone = self._timezone(data.get("timezone", "Europe/Oslo"))
        self.lookups = lookup_tables(data.get("lookups"))
        positions = [i for i, raw in enumerate(data["properties"]) if isinstance(raw, dict)]
        rows = [self._row(i, data["properties"][i], source_schema, target_schema) for i in positions]
        self._check_duplicate_targets(rows)
        rows = self._settle_shared_writes(rows, positions, source, target)
        self._check_constants(data.get("constants") or {}, target_schema)
        self._check_match(data.get("match") or [], target_schema)
        self._check_filter("where", data.get("where"), source_schema, "source")
        self._check_filter("target_where", data.get("target_where"), target_schema, "target")
        deletes = data.get("deletes") or {}
        return DataflowSpec(
            name=data["dataflow"], file=self.doc.file, source=source, target=target, rows=rows,
            title=data.get("title", ""), description=data.get("description", ""),
            create=data.get("create", "target"), timezone=zone,
            create_ids=self._create_ids(data.get("create_id") or {}, data.get("create", "target"),
                                        {"source": source_schema, "target": target_schema}),
            conflicts=data.get("conflicts", "source-wins"),
            delete_policy=deletes.get("policy", "unlink"), delete_max_share=float(deletes.get("max_share", 0.1)),
            match=[list(keys) for keys in data.get("match") or []], constants=dict(data.get("constants") or {}),
            where=_text_or_none(data.get("where")), target_where=_text_or_none(data.get("target_where")),
            where_line=self.doc.line_of(("where",)), target_where_line=self.doc.line_of(("target_where",)),
            examples=self._examples(data.get("examples") or [], source_schema, target_schema),
            source_schema=source_schema or {}, target_schema=target_schema or {}, lookups=self.lookups,
        )

    def _create_ids(self, raw: dict[str, Any], create: str, schemas: dict[str, dict[str, Any] | None]
                    ) -> dict[str, CreateId]:
        for path, message in create_id_problems(raw, create, schemas):
            self.fail(path, message)
        for side, entry in raw.items():
            expression = entry.get("expression")
            if expression and self._compiles(("create_id", side, "expression"), expression):
                self._known_fields(("create_id", side, "expression"), expression, schemas[side], side)
        return {side: CreateId(entry["template"], entry.get("expression"), self.doc.line_of(("create_id", side)))
                for side, entry in raw.items()}

    def _side(self, key: str, raw: dict[str, Any]) -> Side:
        name, entity = raw["connection"], raw["entity"]
        settings = self.connections.get(name)
        if settings is None and name in self.broken:
            return Side(name, "", entity)
        if settings is None:
            known = ", ".join(sorted(self.connections)) or "none"
            self.fail((key, "connection"), f"unknown connection {name!r} (known: {known})")
            return Side(name, "", entity)
        # a workspace definition's connection names its system (set by the loader); others are their type
        return Side(name, str(settings.get("system") or settings["type"]), entity)

    def _entity_schema(self, key: str, side: Side) -> dict[str, Any] | None:
        if not side.system:
            return None
        schema = entity_schema(side.system, side.entity)
        if schema is None:
            self.fail((key, "entity"), f"unknown entity {side.entity!r} for {side.system} "
                                       f"(known: {', '.join(entity_names(side.system))})")
        return schema

    def _timezone(self, name: Any) -> str:
        try:
            ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(("timezone",), f"unknown time zone {name!r} (use an IANA name like Europe/Oslo)")
        return str(name)

    def _compiles(self, path: KeyPath, expression: str) -> bool:
        problem = expression_problem(expression)
        if problem:
            self.fail(path, problem)
        return problem is None

    def _known_fields(self, path: KeyPath, expression: str, schema: dict[str, Any] | None, side: str) -> None:
        if schema is None:
            return
        plain = plain_path(expression)
        names = [".".join(plain)] if plain else sorted(field_names(expression))
        for name in names:
            if property_schema(schema, name) is None:
                self.fail(path, f"{schema.get('title', side)} has no property {shown(name)}"
                                f"{_suggest(name, schema)}")

    def _row(self, index: int, raw: dict[str, Any], source_schema: dict[str, Any] | None,
             target_schema: dict[str, Any] | None) -> Row:
        at: KeyPath = ("properties", index)
        expression = str(raw.get("source", ""))
        kind = str(raw.get("type", "string"))
        direction = str(raw.get("direction", "both"))
        reverse = tuple((str(k), str(v)) for k, v in (raw.get("reverse") or {}).items())
        compiles = bool(expression) and self._compiles((*at, "source"), expression)
        plain = plain_path(expression) if compiles else None
        if compiles:
            self._known_fields((*at, "source"), expression, source_schema, "source")
        target = str(raw.get("target", ""))
        if target_schema is not None and target:
            prop = property_schema(target_schema, target)
            if prop is None:
                self.fail((*at, "target"), f"{target_schema.get('title', 'target')} has no property "
                                           f"{target!r}{_suggest(target, target_schema)}")
            elif kind in {"string", "integer", "number", "boolean", "date", "datetime", "reference"}:
                why = target_type_fits(kind, prop)
                if why:
                    self.fail((*at, "type"), why)
        if plain is None and compiles and not reverse and direction in {"both", "reverse"}:
            self.fail(at, "a computed source expression needs a `reverse` (source field -> expression on the "
                          "target) or `direction: forward`")
        if "on_missing" in raw and kind != "reference":
            self.fail((*at, "on_missing"), f"`on_missing` is only for reference rows (type: reference, with a "
                                           f"dataflow); this row is of type {kind!r}: remove it")
        if kind == "reference" and plain is None and compiles:
            self.fail((*at, "source"), "a reference row's source must be a plain field path holding the id")
        for field_path, rexpr in reverse:
            if plain is not None:
                self.fail((*at, "reverse"), "a plain field path syncs back by itself: remove `reverse`")
                break
            if source_schema is not None and property_schema(source_schema, field_path) is None:
                self.fail((*at, "reverse", field_path), f"{source_schema.get('title', 'source')} has no property "
                                                        f"{field_path!r}")
            if self._compiles((*at, "reverse", field_path), rexpr):
                self._known_fields((*at, "reverse", field_path), rexpr, target_schema, "target")
        self.fail_all(row_value_problems(
            raw, at, kind=kind, direction=direction, plain=plain is not None or not compiles, tables=self.lookups,
            prop=property_schema(target_schema, target) if target_schema and target else None,
            entity=str((target_schema or {}).get("title", "target"))))
        return Row(source=expression, target=target, type=_member(RowType, kind),
                   direction=_member(Direction, direction), reverse=reverse,
                   dataflow=_text_or_none(raw.get("dataflow")), on_missing=_on_missing(raw),
                   source_path=".".join(plain) if plain else None,
                   description=str(raw.get("description", "")), line=self.doc.line_of(at),
                   wins=raw.get("wins") is True, lookup=_text_or_none(raw.get("lookup")),
                   lookup_unknown=lookup_unknown_of(raw), default=raw.get("default"))

    def _check_filter(self, key: str, expression: Any, schema: dict[str, Any] | None, side: str) -> None:
        """`where` / `target_where`: it compiles, and every field it reads is one of its side's."""
        if isinstance(expression, str) and expression and self._compiles((key,), expression):
            self._known_fields((key,), expression, schema, side)

    def _check_duplicate_targets(self, rows: list[Row]) -> None:
        seen: dict[str, int] = {}
        for index, row in enumerate(rows):
            if row.target in seen:
                self.fail(("properties", index, "target"),
                          f"target {row.target!r} is already mapped by the row on line {seen[row.target]}")
            else:
                seen[row.target] = row.line

    def _settle_shared_writes(self, rows: list[Row], positions: list[int], source: Side, target: Side) -> list[Row]:
        """Rows writing the same property must say which wins; the losers give that write up."""
        settled, problems = settle_shared_writes(rows, {"source": source.label, "target": target.label})
        for problem in problems:
            self.fail(("properties", positions[problem.position]), problem.message)
        return settled

    def _check_constants(self, constants: dict[str, Any], target_schema: dict[str, Any] | None) -> None:
        if target_schema is None or not isinstance(constants, dict):
            return
        for key, value in constants.items():
            prop = property_schema(target_schema, key)
            if prop is None:
                self.fail(("constants", key), f"{target_schema.get('title')} has no property {key!r}")
                continue
            problem = jsonschema.Draft202012Validator(prop).iter_errors(value)
            for error in problem:
                self.fail(("constants", key), f"constant {value!r} does not fit: {error.message}")

    def _check_match(self, match: list[Any], target_schema: dict[str, Any] | None) -> None:
        if target_schema is None:
            return
        for i, keys in enumerate(match):
            for j, key in enumerate(keys if isinstance(keys, list) else []):
                if isinstance(key, str) and property_schema(target_schema, key) is None:
                    self.fail(("match", i, j), f"match key {key!r} is not a property of "
                                               f"{target_schema.get('title')}")

    def _examples(self, raw: list[Any], source_schema: dict[str, Any] | None,
                  target_schema: dict[str, Any] | None) -> list[Example]:
        examples: list[Example] = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                continue
            at: KeyPath = ("examples", index)
            self._check_json_values(at, item)
            for side, schema in (("source", source_schema), ("target", target_schema)):
                record = item.get(side)
                if schema is not None and isinstance(record, dict):
                    for key in record:
                        if key not in schema.get("properties", {}):
                            self.fail((*at, side, key), f"{schema.get('title')} has no property {key!r}")
            examples.append(Example(
                name=str(item.get("name", f"example {index + 1}")), source=dict(item.get("source") or {}),
                target=dict(item.get("target") or {}), direction=str(item.get("direction", "both")),
                links={str(k): dict(v) for k, v in (item.get("links") or {}).items()},
                line=self.doc.line_of(at)))
        return examples


    def _check_json_values(self, at: KeyPath, example: dict[str, Any]) -> None:
        """Example records are JSON records: YAML's dates, binaries and sets never come from a system."""
        for key in ("source", "target", "links"):
            found = _first_non_json(example.get(key), (*at, key))
            if found:
                path, value = found
                self.fail(path, _not_json(value))


def _first_non_json(value: Any, path: KeyPath) -> tuple[KeyPath, Any] | None:
    """The first value under `value` that JSON cannot hold, with its path (walked without recursion)."""
    stack: list[tuple[Any, KeyPath]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, (*where, str(k))) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in reversed(list(enumerate(item))))
        elif item is not None and not isinstance(item, str | int | float):
            return where, item
    return None


_YAML_TAGS: dict[type, str] = {bytes: "!!binary", set: "!!set", tuple: "!!omap or !!pairs"}


def _not_json(value: Any) -> str:
    if isinstance(value, date):  # the usual slip: an unquoted date
        return f"YAML reads {value.isoformat()} as a date, which no record holds: quote it (\"{value.isoformat()}\")"
    kind = _YAML_TAGS.get(type(value), type(value).__name__)
    return (f"a YAML {kind} value is not a JSON value (records hold text, numbers, booleans, null, lists "
            "and objects)")


def _on_missing(raw: dict[str, Any]) -> str:
    # `on_missing: null` is YAML's null, not the text "null": both mean "write null".
    value = raw.get("on_missing", "keep")
    return "null" if value is None else str(value)


def _text_or_none(value: Any) -> str | None:
    # a reference row's `dataflow` of the wrong type is a schema error; it must not reach the loader's lookups
    return value if isinstance(value, str) else None


def _usable(data: dict[str, Any]) -> bool:
    """Whether a mapping with schema errors is still whole enough to check further."""
    sides_ok = all(isinstance(data.get(k), dict) and isinstance(data[k].get("connection"), str)
                   and isinstance(data[k].get("entity"), str) for k in ("source", "target"))
    return sides_ok and isinstance(data.get("dataflow"), str) and isinstance(data.get("properties"), list)


def _suggest(name: str, schema: dict[str, Any]) -> str:
    import difflib

    names = list(_all_paths(schema.get("properties", {})))
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _all_paths(props: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in props.items():
        yield prefix + key
        if isinstance(sub, dict) and "properties" in sub:
            yield from _all_paths(sub["properties"], f"{prefix}{key}.")
