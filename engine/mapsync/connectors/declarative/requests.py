"""How a definition's templates become requests: `${setting}` placeholders, `{id}` and `{since}`, the query
string, timestamps in a filter, and JMESPath on answers."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote

import jmespath
from jmespath.parser import ParsedResult

from mapsync.connectors.declarative.definition import TimestampFormat
from mapsync.errors import ConnectorError

SETTING = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
RECORD_PLACEHOLDER = re.compile(r"\{(id|id:odata|since)\}")
ANY_BRACES = re.compile(r"(?<!\$)\{([^{}]*)\}")

# Kept readable in a query value: OData's literal quotes and punctuation. A space travels as %20 and a `+` as
# %2B, so a server decoding with or without form rules (where `+` would mean a space) reads the same value.
_QUERY_SAFE = "'*:(),"


def fill_settings(template: str, settings: Mapping[str, Any], *, connection: str, where: str) -> str:
    """`template` with every `${name}` replaced by the connection's setting `name`."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = settings.get(name)
        if found is None:
            raise ConnectorError(f"{where} needs the setting {name!r}, which the connection does not set",
                                 connection=connection)
        return str(found)

    return SETTING.sub(value, template)


def odata_literal(value: str) -> str:
    """A string literal for an OData filter: quoted, with a `'` inside doubled."""
    return "'" + value.replace("'", "''") + "'"


def fill_path(template: str, record_id: str) -> str:
    """A path with `{id}` as one percent-encoded segment, `{id:odata}` as an OData literal (quotes kept)."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) == "id":
            return quote(record_id, safe="")
        if match.group(1) == "id:odata":
            return quote(odata_literal(record_id), safe="'")
        return match.group(0)

    return RECORD_PLACEHOLDER.sub(value, template)


def fill_value(template: str, *, record_id: str | None = None, since: str | None = None) -> str:
    """A query value with `{id}`, `{id:odata}` and `{since}` filled in (not yet encoded)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "since" and since is not None:
            return since
        if name == "id" and record_id is not None:
            return record_id
        if name == "id:odata" and record_id is not None:
            return odata_literal(record_id)
        return match.group(0)

    return RECORD_PLACEHOLDER.sub(value, template)


def query_string(params: Mapping[str, str]) -> str:
    """`$filter=SistEndretDato%20gt%202024-05-01T12:00:01.499%2B02:00&$top=100`: names keep their `$`."""
    return "&".join(f"{quote(key, safe='$')}={quote(value, safe=_QUERY_SAFE)}" for key, value in params.items())


def with_query(path: str, params: Mapping[str, str]) -> str:
    return f"{path}?{query_string(params)}" if params else path


def format_timestamp(moment: datetime, spec: TimestampFormat) -> str:
    """A moment as a filter wants it. Digits beyond the precision are cut (the bound moves earlier: a
    listing may repeat a record, never miss one)."""
    if spec.format == "unix":
        return str(int(moment.timestamp() // 1))
    if spec.format == "unix_ms":
        return str(int(moment.timestamp() * 1000 // 1))
    if spec.zone == "utc":
        moment = moment.astimezone(UTC)
    precision: str = spec.precision
    if precision == "auto":
        precision = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    text = moment.isoformat(timespec=precision)
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@cache
def compiled(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


@cache
def single_field(expression: str) -> str | None:
    """The field name an expression is, when it is nothing more (`version`, `value`); else None."""
    parsed = compiled(expression).parsed
    return str(parsed["value"]) if parsed.get("type") == "field" else None


def search(expression: str | None, data: Any) -> Any:
    """JMESPath `expression` on `data`; None when there is no expression or it cannot be applied."""
    if expression is None:
        return data
    try:
        return evaluator(expression)(data)
    except jmespath.exceptions.JMESPathError:
        return None


@cache
def evaluator(expression: str) -> Callable[[Any], Any]:
    """`expression` as a function of the data, evaluated as JMESPath does but without its interpreter where
    it can be (a plain field; or the closures of mapping/compiler): once or twice per record listed."""
    field = single_field(expression)
    if field is not None:
        return lambda data: data.get(field) if isinstance(data, dict) else None
    from mapsync.mapping.compiler import compile_expression  # not needed to load a definition

    closure = compile_expression(expression)
    return closure if closure is not None else compiled(expression).search


def without_annotations(record: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    if not prefixes:
        return dict(record)
    return {key: value for key, value in record.items() if not key.startswith(prefixes)}
