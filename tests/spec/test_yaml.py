"""YAML loading with the line of every key, and syntax errors with their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapsync.errors import Location
from mapsync.spec._yaml import Document, load_document, parse_document, render_path

TEXT = """\
# a comment
dataflow: x
source: {connection: tb, entity: Kunde}
properties:
  - {source: Navn, target: name, type: string}
  - source: Epost
    target: email

    type: string
"""


def parse(text: str) -> Document:
    doc, errors = parse_document(text, "m.yaml")
    assert errors == []
    assert doc is not None
    return doc


def test_lines_of_keys() -> None:
    doc = parse(TEXT)
    assert doc.line_of(("dataflow",)) == 2
    assert doc.line_of(("source", "entity")) == 3
    assert doc.line_of(("properties",)) == 4
    assert doc.line_of(("properties", 0)) == 5
    assert doc.line_of(("properties", 0, "type")) == 5
    assert doc.line_of(("properties", 1)) == 6
    assert doc.line_of(("properties", 1, "target")) == 7
    assert doc.line_of(("properties", 1, "type")) == 9


def test_line_of_falls_back_to_the_nearest_ancestor() -> None:
    doc = parse(TEXT)
    assert doc.line_of(("properties", 1, "reverse", "Navn")) == 6
    assert doc.line_of(("nothing", "here")) == 1
    assert doc.line_of(()) == 1


def test_error_carries_file_line_and_key_path() -> None:
    doc = parse(TEXT)
    error = doc.error(("properties", 1, "type"), "bad")
    assert error.location == Location("m.yaml", 9, "properties[1].type")
    assert str(error) == "m.yaml:9: properties[1].type: bad"


@pytest.mark.parametrize(("path", "text"), [
    ((), ""),
    (("a",), "a"),
    (("properties", 3, "type"), "properties[3].type"),
    (("examples", 0, "source", "Navn"), "examples[0].source.Navn"),
    ((0, "x"), "[0].x"),
])
def test_render_path(path: tuple[str | int, ...], text: str) -> None:
    assert render_path(path) == text


def test_data_is_plain_python() -> None:
    doc = parse(TEXT)
    assert doc.data["properties"][1] == {"source": "Epost", "target": "email", "type": "string"}


def test_duplicate_keys_are_reported_at_the_second_one() -> None:
    doc, errors = parse_document("a: 1\nb:\n  c: 1\n  c: 2\n", "d.yaml")
    assert doc is not None
    assert [str(e) for e in errors] == ["d.yaml:4: b.c: duplicate key 'c'"]


@pytest.mark.parametrize(("text", "line"), [
    ("a: 1\n b: 2\n", 2),  # bad indentation
    ("a: [1, 2\nb: 3\n", 2),  # unclosed bracket: noticed at the next key
    ("a: {x: 1\n", 2),
    ("a: 'open\n", 2),
    ("- a\nb: 1\n", 2),
    ("a:\n\t- 1\n", 2),  # a tab
])
def test_syntax_errors_point_at_a_line(text: str, line: int) -> None:
    doc, errors = parse_document(text, "s.yaml")
    assert doc is None
    assert len(errors) == 1
    assert errors[0].location is not None
    assert errors[0].location.file == "s.yaml"
    assert errors[0].location.line == line
    assert errors[0].message.startswith("YAML syntax error: ")


def test_empty_document() -> None:
    doc, errors = parse_document("", "e.yaml")
    assert errors == []
    assert doc is not None
    assert doc.data is None


def test_several_documents_are_an_error() -> None:
    doc, errors = parse_document("a: 1\n---\nb: 2\n", "two.yaml")
    assert doc is None
    assert "YAML syntax error" in errors[0].message


def test_load_document(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("dataflow: x\n", encoding="utf-8")
    doc, errors = load_document(path, "shown.yaml")
    assert errors == []
    assert doc is not None
    assert doc.file == "shown.yaml"
    assert doc.data == {"dataflow": "x"}


def test_load_document_unreadable(tmp_path: Path) -> None:
    doc, errors = load_document(tmp_path / "missing.yaml", "missing.yaml")
    assert doc is None
    assert errors[0].location == Location("missing.yaml")
    assert "cannot read file" in errors[0].message


def test_non_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("navn: Åsane\n".encode("latin-1"))
    doc, errors = load_document(path, "latin1.yaml")
    assert doc is None
    assert len(errors) == 1
    assert "not UTF-8" in errors[0].message


def test_an_unclosed_bracket_names_the_line_it_was_opened_on() -> None:
    _, errors = parse_document("a: 1\nb: [1, 2\nc: 3\n", "u.yaml")
    assert [str(e) for e in errors] == [
        "u.yaml:3: YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow sequence on line 2)"]
