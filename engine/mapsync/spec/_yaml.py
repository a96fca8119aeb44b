"""YAML loading that remembers the line of every key, so each problem can point at its line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mapsync.errors import Location, SpecError
from mapsync.spec._bounded_yaml import YamlProblem, read_yaml

KeyPath = tuple[str | int, ...]


def render_path(path: KeyPath) -> str:
    """('properties', 3, 'type') -> 'properties[3].type'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Document:
    """A parsed YAML file with the line of every key path."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def at(self, path: KeyPath) -> Location:
        return Location(self.file, self.line_of(path), render_path(path))

    def error(self, path: KeyPath, message: str) -> SpecError:
        return SpecError(message, self.at(path))


MAX_FILE_BYTES = 10_000_000  # a mapping file is a few kB; more is a mistake (or /dev/zero behind a link)


def load_document(path: Path, display: str | None = None) -> tuple[Document | None, list[SpecError]]:
    """Parse one YAML file; on a syntax error, return no document and that one error."""
    name = display or str(path)
    if path.is_dir():
        return None, [SpecError("cannot read file: it is a folder", Location(name))]
    if path.exists() and not path.is_file():
        # reading a named pipe would wait for a writer forever
        return None, [SpecError("cannot read file: not a regular file (a pipe, socket or device)", Location(name))]
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [SpecError(f"cannot read file: {exc.strerror or exc}", Location(name))]
    if len(raw) > MAX_FILE_BYTES:
        return None, [SpecError(f"cannot read file: larger than {MAX_FILE_BYTES // 1_000_000} MB", Location(name))]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        return None, [SpecError(f"cannot read file: not UTF-8 (byte {exc.start})", Location(name, line))]
    return parse_document(text, name)


def parse_document(text: str, name: str) -> tuple[Document | None, list[SpecError]]:
    doc = Document(name, None, {(): 1})
    errors: list[SpecError] = []
    fatal: list[SpecError] = []
    try:
        doc.data = read_yaml(text, lambda root: _collect_lines(root, (), doc, errors, fatal))
    except YamlProblem as exc:
        return None, [SpecError(exc.message, Location(name, exc.line, _short_path(exc.path)))]
    if fatal:
        # every later check (and the engine) takes keys for text: stop at this file, as for a syntax error
        return None, [*errors, *fatal]
    return doc, errors


def _short_path(path: KeyPath, keep: int = 6) -> str:
    """A key path short enough to read: the first steps of a very deep one, then how many more."""
    if len(path) <= keep:
        return render_path(path)
    return f"{render_path(path[:keep])}...({len(path) - keep} levels more)"


def _collect_lines(node: yaml.Node, path: KeyPath, doc: Document, errors: list[SpecError],
                   fatal: list[SpecError]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                errors.append(SpecError(f"duplicate key {key!r}", doc_location(doc, child, key_node)))
            seen.add(key)
            problem = _key_problem(key_node)
            if problem:
                fatal.append(SpecError(problem, doc_location(doc, child, key_node)))
            doc.lines[child] = key_node.start_mark.line + 1
            _collect_lines(value_node, child, doc, errors, fatal)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.lines[child] = item.start_mark.line + 1
            _collect_lines(item, child, doc, errors, fatal)


_NOT_TEXT = {"int": "a number", "float": "a number", "bool": "a boolean", "null": "a null", "timestamp": "a date"}


def _key_problem(key_node: yaml.Node) -> str | None:
    """Why a key is unusable: YAML reads `1:`, `true:`, `null:` or `2024-01-01:` as something other than text,
    which no check and no lookup by name expects (and numeric record ids in `links:` would never match)."""
    kind = _NOT_TEXT.get(str(key_node.tag).rsplit(":", 1)[-1]) if isinstance(key_node, yaml.ScalarNode) else None
    if kind is None:
        return None
    return f"YAML reads the key {key_node.value} as {kind}, not as text: quote it (\"{key_node.value}\")"


def doc_location(doc: Document, path: KeyPath, node: yaml.Node) -> Location:
    return Location(doc.file, node.start_mark.line + 1, render_path(path))
