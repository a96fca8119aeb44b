"""The per-record functions of a dataflow, generated as Python source once per Mapper and compiled.

A loop over rows pays for the loop itself on every row of every record (unpacking, branches on the row's
kind). The generated function is what one would write by hand for the dataflow: one read and one
conversion per row, in straight-line code, and the target record as one dict display. It computes exactly
what the row loop in mapper.py computes; on any exception it hands the record to that loop (`fallback`),
which raises the error naming its row (the generated code never needs to).

Safety: no text from a mapping is pasted into the source. Field names and target paths appear only as
`repr()` of a `str` (a Python string literal of exactly that text); every other value (constants,
converters, getters, rows) is passed in by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mapsync.mapping.types import Coerce

Getter = Callable[[Any], Any]


@dataclass(frozen=True)
class RowCode:
    """What the generator needs to know of a compiled row."""

    target: str  # the target path, dotted
    target_parts: tuple[str, ...]
    key: str | None  # a top-level source field read with record.get, or None: `read` is called
    read: Getter  # the row's getter on the source record, without the ExpressionError wrapper
    canonical: Coerce  # to the canonical value; for a row with a lookup or a default, those too
    unchanged: type | None  # a non-empty value of this type is its own canonical value (None: always convert)
    always_convert: bool  # a lookup or a default: null and "" are converted too (into the default)
    reference: Any  # the Row of a reference row (its value is translated through the links), else None
    # Text functions on one field (compiler.text_chain): for a string value, `read` is these steps on it.
    text_key: str | None = None
    text_steps: tuple[Callable[[str], Any], ...] = ()
    text_gives_text: bool = False  # the last step gives text (not regex_match's boolean)
    coalesced: tuple[str, ...] = ()  # coalesce of these top-level fields (compiler.coalesced_fields)
    default: Any = None  # the row's canonical default (always_convert rows)
    table: dict[str, Any] | None = None  # the row's lookup table by key text (always_convert rows)


def generate_projection(rows: list[RowCode], to_target_id: Callable[..., Any],
                        fallback: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """project(record, links=None, settled=None) -> {target path: canonical value}, as the row loop of
    Mapper.project_source."""
    names: dict[str, Any] = {"to_target_id": to_target_id, "fallback": fallback}
    body = ["    get = record.get"]
    for index, row in enumerate(rows):
        body += _row_lines(index, row, names, settled=True)
    body.append("    return {" + ", ".join(f"{_text(row.target)}: v{i}" for i, row in enumerate(rows)) + "}")
    return _compiled("project", "record, links=None, settled=None", body, "fallback(record, links, settled)", names)


def generate_forward(rows: list[RowCode], constants: dict[str, Any], to_target_id: Callable[..., Any],
                     fallback: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]] | None:
    """forward(record, links=None) -> the target record, as the row loop of Mapper.forward; None when the
    target paths need more than top-level properties and objects one level down (the loop then does it)."""
    display = _record_display(rows, constants)
    if display is None:
        return None
    names: dict[str, Any] = {"to_target_id": to_target_id, "fallback": fallback}
    names.update({f"k{index}": value for index, value in enumerate(constants.values())})
    body = ["    get = record.get"]
    for index, row in enumerate(rows):
        body += _row_lines(index, row, names, settled=False)
    body.append(f"    return {display}")
    return _compiled("forward", "record, links=None", body, "fallback(record, links)", names)


def _row_lines(index: int, row: RowCode, names: dict[str, Any], *, settled: bool) -> list[str]:
    """The statements computing v<index>, the canonical value of one row."""
    names[f"c{index}"] = row.canonical
    names[f"g{index}"] = row.read
    lines = _read_and_convert(index, row, names)
    if row.reference is not None:
        value = f"v{index}"
        names[f"r{index}"] = row.reference
        translate = f"to_target_id(r{index}, {value}, links)"
        if settled:
            target = _text(row.target)
            translate = f"settled[{target}] if settled and {target} in settled else {translate}"
        lines += [f"    if {value} is not None:", f"        {value} = {translate}"]
    return lines


def _read_and_convert(index: int, row: RowCode, names: dict[str, Any]) -> list[str]:
    if row.text_key is not None and row.text_gives_text and row.unchanged is str:
        return _text_steps(index, row, names, converted=True) + _defaulted(index, row, names)
    if row.key is not None:
        lines = [f"    v{index} = get({_text(row.key)})"]
    elif row.text_key is not None:
        lines = _text_steps(index, row, names)
    elif row.coalesced:
        lines = _coalesce(index, row)
    else:
        lines = [f"    v{index} = g{index}(record)"]
    if row.table is not None:
        return lines + _lookup(index, row, names)
    return lines + _conversion(index, row, names) + _defaulted(index, row, names)


def _conversion(index: int, row: RowCode, names: dict[str, Any]) -> list[str]:
    """v<index> to its canonical value, as the row loop does: null stays null, a value of the type the
    converter keeps is kept ("" is null), anything else is converted."""
    value = f"v{index}"
    if row.unchanged is None:
        return [f"    if {value} is not None:", f"        {value} = c{index}({value})"]
    names[f"t{index}"] = row.unchanged
    lines = [f"    if type({value}) is not t{index}:",
             f"        if {value} is not None:",
             f"            {value} = c{index}({value})"]
    if row.unchanged is str:
        lines += [f"    elif not {value}:", f"        {value} = None"]
    return lines


def _defaulted(index: int, row: RowCode, names: dict[str, Any]) -> list[str]:
    """A row's default (an always-converted row without a lookup table) for a null result."""
    if not row.always_convert:
        return []
    names[f"d{index}"] = row.default
    return [f"    if v{index} is None:", f"        v{index} = d{index}"]


def _lookup(index: int, row: RowCode, names: dict[str, Any]) -> list[str]:
    """v<index> through the lookup table, as lookups.forward_converter (c<index>) does: an empty value gives
    the default, a text key found is its value, anything else is for the converter (numbers, unknowns)."""
    value = f"v{index}"
    names[f"d{index}"], names[f"T{index}"] = row.default, row.table
    return [f"    if {value} is None or {value} == '':",
            f"        {value} = d{index}",
            f"    elif type({value}) is str and {value} in T{index}:",
            f"        {value} = T{index}[{value}]",
            "    else:",
            f"        {value} = c{index}({value})"]


def _coalesce(index: int, row: RowCode) -> list[str]:
    """v<index> = the first of the fields that is neither null nor "" (else null), read in place."""
    value = f"v{index}"
    lines = []
    for depth, key in enumerate(row.coalesced):
        indent = "    " * (depth + 1)
        lines += [f"{indent}{value} = get({_text(key)})", f"{indent}if {value} is None or {value} == '':"]
    return [*lines, f"{'    ' * (len(row.coalesced) + 1)}{value} = None"]


def _text_steps(index: int, row: RowCode, names: dict[str, Any], *, converted: bool = False) -> list[str]:
    """v<index> = the steps on the field's text, inline (a value that is not text takes the getter).
    `converted`: text out is converted in place ("" is null), the getter's value as _conversion says."""
    value, applied = f"v{index}", f"v{index}"
    for number, step in enumerate(row.text_steps):
        names[f"s{index}_{number}"] = step
        applied = f"s{index}_{number}({applied})"
    if not converted:
        return [f"    {value} = get({_text(row.text_key)})",
                f"    if type({value}) is str:",
                f"        {value} = {applied}",
                "    else:",
                f"        {value} = g{index}(record)"]
    return [f"    {value} = get({_text(row.text_key)})",
            f"    if type({value}) is str:",
            f"        {value} = {applied} or None",
            "    else:",
            f"        {value} = g{index}(record)",
            *(f"    {line}" for line in _conversion(index, row, names))]


def _text(text: str | None) -> str:
    """A field name or path as a Python string literal (repr of a str is exactly that text)."""
    if type(text) is not str:
        raise TypeError(f"not text: {text!r}")
    return repr(text)


def _record_display(rows: list[RowCode], constants: dict[str, Any]) -> str | None:
    """The dict display building the target record: constants first, then each top-level property (a
    nested object at the place of its first row), as the row loop's set_path would; None for deeper paths
    or a property written twice (a constant and a row, a value and an object)."""
    if any(not isinstance(key, str) or "." in key for key in constants):
        return None
    tops: dict[str, list[tuple[str, str]] | str] = {}  # top -> "v<i>" or [(leaf, "v<i>"), ...]
    for index, row in enumerate(rows):
        parts = row.target_parts
        if len(parts) > 2 or parts[0] in constants:
            return None
        existing = tops.get(parts[0])
        if len(parts) == 1:
            if existing is not None:
                return None
            tops[parts[0]] = f"v{index}"
        elif isinstance(existing, str):
            return None
        else:
            tops.setdefault(parts[0], []).append((parts[1], f"v{index}"))  # type: ignore[union-attr]
    items = [f"{_text(key)}: k{index}" for index, key in enumerate(constants)]
    for top, held in tops.items():
        if isinstance(held, str):
            items.append(f"{_text(top)}: {held}")
        else:
            if len({leaf for leaf, _ in held}) != len(held):
                return None
            items.append(f"{_text(top)}: {{" + ", ".join(f"{_text(leaf)}: {value}" for leaf, value in held) + "}")
    return "{" + ", ".join(items) + "}"


def _compiled(name: str, parameters: str, body: list[str], fallback: str,
              names: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """The function `name`, running `body`; any exception hands the record to `fallback` instead."""
    lines = [f"def {name}({parameters}):", "    try:", *(f"    {line}" for line in body),
             "    except Exception:", f"        return {fallback}"]
    source = "\n".join(lines) + "\n"
    namespace = dict(names)  # every value the code uses, by name: no mapping text is code (module doc)
    exec(compile(source, f"<mapsync generated {name}>", "exec"), namespace)
    function: Callable[..., dict[str, Any]] = namespace[name]
    return function
