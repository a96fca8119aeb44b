"""A compiled dataflow mapping: project records of both sides to canonical values, and back.

Everything is compiled once per dataflow (expressions, getters, converters); the per-record work is
a loop over prepared callables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from jmespath.exceptions import JMESPathError

from mapsync.errors import MappingError
from mapsync.mapping.compiler import coalesced_fields, text_chain
from mapsync.mapping.generated import RowCode, generate_forward, generate_projection
from mapsync.mapping.lookups import back_converter, forward_converter, forward_table
from mapsync.mapping.paths import ExpressionError, Getter, get_path, make_evaluator, make_getter, set_path, split
from mapsync.mapping.types import Coerce, canonical_converter, source_converter
from mapsync.mapping.write_check import WriteCheck
from mapsync.spec.entities import property_schema
from mapsync.spec.model import DataflowSpec, Row

Values = dict[str, Any]


class LinkLookup(Protocol):
    """Translates ids through another dataflow's links (for reference rows)."""

    def to_target(self, dataflow: str, source_id: str) -> str | None: ...

    def to_source(self, dataflow: str, target_id: str) -> str | None: ...


class Forward(Protocol):
    """Mapper.forward: the target record for a source record (references translated through `links`)."""

    def __call__(self, record: Mapping[str, Any], links: LinkLookup | None = None) -> dict[str, Any]: ...


class UnresolvedReference(MappingError):
    """A reference whose record is not linked: the record waits, it is never written with a guess (unless
    the row's `on_missing` settles it, for a record that is gone rather than not linked yet)."""

    def __init__(self, prop: str, dataflow: str, record_id: str, row: Row | None = None) -> None:
        self.dataflow = dataflow
        self.record_id = record_id
        self.row = row  # the reference row, where known
        super().__init__(f"{record_id!r} is not linked yet in dataflow {dataflow!r}", prop=prop, value=record_id)


class DictLinks:
    """Links held in memory: {dataflow: {source id: target id}} (examples, tests)."""

    def __init__(self, links: Mapping[str, Mapping[str, str]]) -> None:
        self.forward = {name: dict(pairs) for name, pairs in links.items()}
        self.backward = {name: {t: s for s, t in pairs.items()} for name, pairs in links.items()}

    def to_target(self, dataflow: str, source_id: str) -> str | None:
        return self.forward.get(dataflow, {}).get(source_id)

    def to_source(self, dataflow: str, target_id: str) -> str | None:
        return self.backward.get(dataflow, {}).get(target_id)


@dataclass(frozen=True)
class CompiledRow:
    row: Row
    target_parts: tuple[str, ...]
    read_source: Getter
    read_target: Getter
    canonical: Coerce
    back: tuple[tuple[tuple[str, ...], Getter, Coerce], ...]  # (source path, getter on target, to source repr)
    convert_source: Coerce | None = None  # source value -> canonical, for a row with a lookup or a default
    read_source_raw: Getter | None = None  # read_source without the ExpressionError wrapper (generated code)


def _evaluator(expression: str, spec: DataflowSpec, row: Row, side: str = "source") -> Getter:
    """The getter of a row's expression on a record of `side`: a failure is an ExpressionError naming the
    row's file:line and the record (see make_evaluator)."""
    schema, entity = (spec.source_schema, spec.source.entity) if side == "source" else \
        (spec.target_schema, spec.target.entity)
    return make_evaluator(expression, f"{spec.file}:{row.line}", entity, str(schema.get("x-key", "id")))


class Mapper:
    """Forward (source -> canonical target values) and backward (target -> source values) for a dataflow."""

    def __init__(self, spec: DataflowSpec) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self.rows = [self._compile(row) for row in spec.rows]
        self.targets = [r.row.target for r in self.rows]
        # A create carries only the rows that flow its way (see create_values).
        self.creates_with = frozenset(r.row.target for r in self.rows if r.row.flows_forward)
        self.creates_back_with = frozenset(r.row.target for r in self.rows if r.row.flows_back)
        self.target_check = WriteCheck(spec.target.entity, spec.target_schema)
        # The target's object properties and the members each has (with_whole_objects fills them in).
        self._whole_objects = tuple((key, tuple(prop["properties"]))
                                    for key, prop in spec.target_schema.get("properties", {}).items()
                                    if isinstance(prop, dict) and isinstance(prop.get("properties"), dict))
        self.source_check = WriteCheck(spec.source.entity, spec.source_schema)
        # Precomputed per-row tuples for the hot paths (forward runs once per record and row).
        self._forward_plan = tuple((r.row.target, *_forward_step(r), r.row.type == "reference", r.row)
                                   for r in self.rows)
        self._placement = tuple((r.row.target, *_place(r.target_parts)) for r in self.rows)
        self._constants = tuple((split(key), value) for key, value in spec.constants.items())
        self._flat_constants = all(len(parts) == 1 for parts, _ in self._constants)
        self._template = {parts[0]: value for parts, value in self._constants} if self._flat_constants else {}
        # How forward places each row: _TOP (out[top]), _FIRST_CHILD (a fresh parent object, first child
        # of it), _CHILD (a later child of that object) or _DEEP (set_path); see _placements.
        self._forward_build = tuple(
            (key, read, canonical, unchanged, row if is_reference else None, *place)
            for (_, key, read, canonical, unchanged, is_reference, row), place
            in zip(self._forward_plan, _placements([r.target_parts for r in self.rows]), strict=True))
        # The hot paths as generated straight-line code (generated.py); the loops below are the reference
        # they follow, and what raises an error naming its row.
        code = [_row_code(spec, r) for r in self.rows]
        self._generated_project = generate_projection(code, self._to_target_id, self._project_source_by_rows)
        generated = generate_forward(code, self._template, self._to_target_id, self._forward_by_rows) \
            if self._flat_constants else None
        # forward(record, links=None): a whole target record for a source record, what a create sends; the
        # same as target_record(project_source(record, links)) in one pass. The hot path: the generated
        # function itself, not a method calling it.
        self.forward: Forward = generated or self._forward_by_rows

    def _compile(self, row: Row) -> CompiledRow:
        canonical = canonical_converter(row.type, self.zone)
        back: tuple[tuple[tuple[str, ...], Getter, Coerce], ...]
        if row.source_path is not None:
            prop = property_schema(self.spec.source_schema, row.source_path) or {}
            to_source = source_converter(row.type, prop, self.zone)
            back = ((split(row.source_path), make_getter(row.target),
                     back_converter(self.spec, row, canonical, to_source)),)
        else:
            back = tuple(
                (split(path), _evaluator(expression, self.spec, row, "target"),
                 source_converter(_loose_type(self.spec, path), property_schema(self.spec.source_schema, path) or {},
                                  self.zone))
                for path, expression in row.reverse)
        return CompiledRow(row, split(row.target), _evaluator(row.source, self.spec, row), make_getter(row.target),
                           canonical, back, forward_converter(self.spec, row, canonical), make_getter(row.source))

    # -- forward ------------------------------------------------------------------------------------

    def project_source(self, record: Mapping[str, Any], links: LinkLookup | None = None,
                       settled: Mapping[str, Any] | None = None) -> Values:
        """The canonical value of every row, computed from a source record (references translated).

        `settled` holds, by target path, the value of a reference row whose record is gone: used as it is,
        instead of a translation (see the row's `on_missing`)."""
        return self._generated_project(record, links, settled)  # on a failure, the row loop below says why

    def _project_source_by_rows(self, record: Mapping[str, Any], links: LinkLookup | None = None,
                                settled: Mapping[str, Any] | None = None) -> Values:
        out: Values = {}
        get = record.get
        for target, key, read, canonical, unchanged, is_reference, row in self._forward_plan:
            try:
                value: Any = get(key) if key is not None else read(record)
                # Fast path: None, and a non-empty value already of the canonical type, convert to themselves.
                if value is not None and (type(value) is not unchanged or value == ""):
                    value = canonical(value)
            except ExpressionError:
                raise  # names the row's file:line and the record already
            except MappingError as exc:
                raise MappingError(str(exc.args[0]).split(": ", 1)[-1], prop=row.source, value=exc.value) from None
            except JMESPathError as exc:
                raise MappingError(f"cannot evaluate {row.source!r}: {exc}", prop=row.source) from None
            if is_reference and value is not None:
                value = settled[target] if settled and target in settled else self._to_target_id(row, value, links)
            out[target] = value
        return out

    def _to_target_id(self, row: Row, source_id: str, links: LinkLookup | None) -> str:
        target_id = links.to_target(row.dataflow or "", source_id) if links else None
        if target_id is None:
            raise UnresolvedReference(row.source, row.dataflow or "", source_id, row)
        return target_id

    def project_target(self, record: Mapping[str, Any]) -> Values:
        """The canonical value of every row, read from a target record."""
        out: Values = {}
        for compiled in self.rows:
            try:
                out[compiled.row.target] = compiled.canonical(compiled.read_target(record))
            except MappingError as exc:
                raise MappingError(str(exc.args[0]).split(": ", 1)[-1], prop=compiled.row.target,
                                   value=exc.value) from None
        return out

    def target_record(self, values: Values, *, with_constants: bool = True) -> dict[str, Any]:
        """A target record (nested) holding `values` and the dataflow's constants."""
        record: dict[str, Any] = {}
        if with_constants:
            for parts, value in self._constants:
                set_path(record, parts, value)
        for target, top, leaf, parts in self._placement:
            if target not in values:
                continue
            if leaf is None and top is not None:
                record[top] = values[target]
            elif top is not None and leaf is not None:
                node = record.get(top)
                if not isinstance(node, dict):
                    node = record[top] = {}
                node[leaf] = values[target]
            else:
                set_path(record, parts, values[target])
        return record

    def target_patch(self, changes: Values, current: Mapping[str, Any] | None) -> dict[str, Any]:
        """Top-level properties to send for `changes`; a nested object is sent whole, merged with `current`."""
        patch: dict[str, Any] = {}
        for compiled in self.rows:
            path = compiled.row.target
            if path not in changes:
                continue
            top = compiled.target_parts[0]
            if len(compiled.target_parts) > 1 and top not in patch:
                existing = (current or {}).get(top)
                patch[top] = _deep_copy(existing) if isinstance(existing, dict) else {}
            set_path(patch, compiled.target_parts, changes[path])
        return patch

    def _forward_by_rows(self, record: Mapping[str, Any], links: LinkLookup | None = None) -> dict[str, Any]:
        if not self._flat_constants:
            return self.target_record(self.project_source(record, links))
        out = self._template.copy()
        get = record.get
        try:
            for key, read, canonical, unchanged, reference, how, top, leaf, parts in self._forward_build:
                value: Any = get(key) if key is not None else read(record)
                # Fast paths: None, and a value already of the canonical type, are themselves; "" is None.
                if value is not None:
                    if type(value) is not unchanged:
                        value = canonical(value)
                    elif not value and unchanged is str:
                        value = None
                if reference is not None and value is not None:
                    value = self._to_target_id(reference, value, links)
                if how is _TOP:
                    out[top] = value
                elif how is _CHILD:
                    out[top][leaf] = value
                elif how is _FIRST_CHILD:
                    out[top] = {leaf: value}
                else:
                    set_path(out, parts, value)
        except (MappingError, JMESPathError):
            # Off the happy path: project_source raises the same problem, naming the row it happened in.
            self.project_source(record, links)
            raise
        return out

    # -- what a create carries (plan, apply, `mapsync test` and the docs all follow this one rule) ----

    def create_values(self, values: Values, side: str = "target") -> Values:
        """The canonical values a create on `side` carries: only the rows that flow that way. A
        `direction: reverse` row belongs to the target and is not sent in a create there; a
        `direction: forward` row belongs to the source and is not sent in a create back."""
        rows = self.creates_with if side == "target" else self.creates_back_with
        return {path: value for path, value in values.items() if path in rows}

    def create_record(self, values: Values) -> dict[str, Any]:
        """The target record a create writes for a source record's values (constants included)."""
        return self.target_record(self.create_values(values))

    def create_body(self, values: Values) -> dict[str, Any]:
        """The request body of a create in the target: create_record with whole nested objects."""
        return self.with_whole_objects(self.create_record(values))

    def create_back_body(self, target_record: Mapping[str, Any], links: LinkLookup | None = None) -> dict[str, Any]:
        """The source fields a create in the source sends for a target record (its key is added on sending)."""
        return self.source_changes(target_record, set(self.creates_back_with), links)

    def with_whole_objects(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with every nested object given all the properties its schema names (null if unmapped).

        A create sends postal_address {line1, postal_code, city} as {line1, line2: null, postal_code, city}:
        a strict server may insist on the whole object.
        """
        for key, names in self._whole_objects:
            value = record.get(key)
            if isinstance(value, dict):
                for name in names:
                    value.setdefault(name, None)
        return record

    # -- backward -----------------------------------------------------------------------------------

    def source_changes(self, target_record: Mapping[str, Any], rows: set[str] | None = None,
                       links: LinkLookup | None = None) -> dict[str, Any]:
        """Source field values for the given rows (all that flow back when None), read from a target record."""
        out: dict[str, Any] = {}
        for compiled in self.rows:
            row = compiled.row
            if not row.flows_back or (rows is not None and row.target not in rows):
                continue
            for parts, read, convert in compiled.back:
                try:
                    value = read(target_record)
                    if row.type == "reference":
                        value = self._to_source_id(row, compiled.canonical(value), links)
                    value = convert(value)
                except (UnresolvedReference, ExpressionError):
                    raise  # the record waits for its reference; a failed expression names its row and record
                except MappingError as exc:
                    raise MappingError(str(exc.args[0]).split(": ", 1)[-1], prop=row.target,
                                       value=exc.value) from None
                except JMESPathError as exc:
                    raise MappingError(f"cannot evaluate the reverse of {row.target!r} for {'.'.join(parts)}: "
                                       f"{exc}", prop=row.target) from None
                set_path(out, parts, value)
        return out

    def _to_source_id(self, row: Row, target_id: str | None, links: LinkLookup | None) -> str | None:
        if target_id is None:
            return None
        source_id = links.to_source(row.dataflow or "", target_id) if links else None
        if source_id is None:
            raise UnresolvedReference(row.target, row.dataflow or "", target_id, row)
        return source_id

    def backward(self, target_record: Mapping[str, Any], links: LinkLookup | None = None) -> dict[str, Any]:
        return self.source_changes(target_record, None, links)

    # -- which records belong here ------------------------------------------------------------------

    def owns_target(self, record: Mapping[str, Any]) -> bool:
        """Whether a target record belongs to this dataflow: it carries every constant (e.g. kind)."""
        return all(get_path(record, parts) == value for parts, value in self._constant_paths)

    @cached_property
    def _constant_paths(self) -> list[tuple[tuple[str, ...], Any]]:
        return [(split(path), value) for path, value in self.spec.constants.items()]


# Row types whose canonical converter returns a non-empty value of exactly this type unchanged.
_UNCHANGED: dict[str, type] = {"string": str, "reference": str, "integer": int, "boolean": bool}


_TOP, _FIRST_CHILD, _CHILD, _DEEP = "top", "first child", "child", "deep"


def _placements(targets: list[tuple[str, ...]]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(how, top, leaf, parts) per target path, for building a record in one pass (flat constants only).

    Same result as set_path for each path in turn: a parent object is created fresh at its first child
    (replacing a scalar constant of that name, as set_path does) and filled by the later ones.
    """
    placed: list[tuple[str, str, str, tuple[str, ...]]] = []
    parents: set[str] = set()
    deep: set[str] = set()  # tops that set_path has written below: set_path from then on
    for parts in targets:
        if len(parts) == 1:
            placed.append((_TOP, parts[0], "", parts))
            parents.discard(parts[0])
            deep.discard(parts[0])  # a later child of it finds a scalar there, and replaces it
        elif parts[0] in deep:
            placed.append((_DEEP, parts[0], "", parts))
        elif len(parts) == 2 and parts[0] not in parents:
            placed.append((_FIRST_CHILD, parts[0], parts[1], parts))
            parents.add(parts[0])
        elif len(parts) == 2:
            placed.append((_CHILD, parts[0], parts[1], parts))
        else:
            placed.append((_DEEP, parts[0], "", parts))
            deep.add(parts[0])
    return placed


def _place(parts: tuple[str, ...]) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(top, None) for a top-level property, (parent, leaf) one level down, (None, None) deeper."""
    if len(parts) == 1:
        return parts[0], None, parts
    if len(parts) == 2:
        return parts[0], parts[1], parts
    return None, None, parts


def _forward_step(compiled: CompiledRow) -> tuple[str | None, Getter, Coerce, type | None]:
    """(field key for a direct dict read or None, getter, converter, the type the converter keeps as it is)
    of a row in the forward hot path. A row with a lookup or a default reads and converts in its getter."""
    row, convert, read = compiled.row, compiled.convert_source, compiled.read_source
    if convert is not None:
        return None, lambda record: convert(read(record)), _same, None
    key = row.source_path if row.source_path is not None and "." not in row.source_path else None
    return key, read, compiled.canonical, _UNCHANGED.get(row.type)


def _row_code(spec: DataflowSpec, compiled: CompiledRow) -> RowCode:
    """What the generated hot paths need of a row: the same read and conversion as _forward_step."""
    row, convert = compiled.row, compiled.convert_source
    key = row.source_path if row.source_path is not None and "." not in row.source_path else None
    read = compiled.read_source_raw or compiled.read_source
    chain = text_chain(row.source) if row.source_path is None else None
    default, table = forward_table(spec, row, compiled.canonical) if convert is not None else (None, None)
    text_key, text_steps, text_gives_text = chain or (None, (), False)
    return RowCode(
        target=row.target, target_parts=compiled.target_parts, key=key, read=read,
        canonical=convert if table is not None and convert is not None else compiled.canonical,
        unchanged=_UNCHANGED.get(row.type) if table is None else None, always_convert=convert is not None,
        reference=row if row.type == "reference" else None,
        text_key=text_key, text_steps=text_steps, text_gives_text=text_gives_text,
        coalesced=(coalesced_fields(row.source) or ()) if row.source_path is None else (),
        default=default, table=table)


def _same(value: Any) -> Any:
    return value


def _loose_type(spec: DataflowSpec, source_path: str) -> str:
    """The row type to use when writing a computed row's reverse value into a source field."""
    prop = property_schema(spec.source_schema, source_path) or {}
    kind = prop.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "string" in kinds and prop.get("format") == "date-time":
        return "datetime"
    return "string" if "string" in kinds else "integer" if "integer" in kinds else "boolean"


def _deep_copy(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in value.items()}


