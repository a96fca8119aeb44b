"""YAML loading that remembers the line of every key, so each problem can point at its line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mapsync.errors import Location, SpecError

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


def load_document(path: Path, display: str | None = None) -> tuple[Document | None, list[SpecError]]:
    """Parse one YAML file; on a syntax error, return no document and that one error."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [SpecError(f"cannot read file: {exc.strerror}", Location(name))]
    except UnicodeDecodeError as exc:
        return None, [SpecError(f"cannot read file: not UTF-8 (byte {exc.start})", Location(name))]
    return parse_document(text, name)


def parse_document(text: str, name: str) -> tuple[Document | None, list[SpecError]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            # e.g. an unclosed bracket is noticed lines later: say where it was opened
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        return None, [SpecError(f"YAML syntax error: {problem}", Location(name, line))]
    except yaml.YAMLError as exc:
        return None, [SpecError(f"YAML syntax error: {exc}", Location(name))]
    finally:
        loader.dispose()
    doc = Document(name, data, {(): 1})
    errors: list[SpecError] = []
    if node is not None:
        _collect_lines(node, (), doc, errors)
    return doc, errors


def _collect_lines(node: yaml.Node, path: KeyPath, doc: Document, errors: list[SpecError]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                errors.append(SpecError(f"duplicate key {key!r}", doc_location(doc, child, key_node)))
            seen.add(key)
            doc.lines[child] = key_node.start_mark.line + 1
            _collect_lines(value_node, child, doc, errors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.lines[child] = item.start_mark.line + 1
            _collect_lines(item, child, doc, errors)


def doc_location(doc: Document, path: KeyPath, node: yaml.Node) -> Location:
    return Location(doc.file, node.start_mark.line + 1, render_path(path))
