"""${VAR} and ${VAR:-default} in mapsync.yaml."""

from __future__ import annotations

from mapsync.spec._env import interpolate
from mapsync.spec._yaml import Document, parse_document

TEXT = """\
state: ${STATE:-sqlite:///s.db}
connections:
  pms:
    base_url: ${URL:-http://127.0.0.1:8712}
    token: ${TOKEN}
    both: ${A}-${B:-b}
    port: 8712
    list: ["${A}", plain]
"""


def doc() -> Document:
    parsed, errors = parse_document(TEXT, "mapsync.yaml")
    assert parsed is not None
    assert not errors
    return parsed


def test_values_come_from_the_environment() -> None:
    data, errors = interpolate(doc(), {"STATE": "postgresql://db", "URL": "https://pms", "TOKEN": "t", "A": "a"})
    assert errors == []
    assert data["state"] == "postgresql://db"
    assert data["connections"]["pms"] == {
        "base_url": "https://pms", "token": "t", "both": "a-b", "port": 8712, "list": ["a", "plain"],
    }


def test_defaults_apply_when_unset_or_empty() -> None:
    data, errors = interpolate(doc(), {"TOKEN": "t", "A": "a", "URL": ""})
    assert errors == []
    assert data["state"] == "sqlite:///s.db"
    assert data["connections"]["pms"]["base_url"] == "http://127.0.0.1:8712"


def test_unset_without_default_is_an_error_with_its_line() -> None:
    _, errors = interpolate(doc(), {"A": "a"})
    assert [str(e) for e in errors] == [
        "mapsync.yaml:5: connections.pms.token: environment variable TOKEN is not set and has no default",
    ]


def test_every_unset_variable_is_reported() -> None:
    _, errors = interpolate(doc(), {})
    assert sorted(e.location.line for e in errors if e.location and e.location.line) == [5, 6, 8]


def test_the_value_is_never_in_the_message() -> None:
    parsed, _ = parse_document("token: ${SECRET}\nother: ${MISSING}\n", "mapsync.yaml")
    assert parsed is not None
    data, errors = interpolate(parsed, {"SECRET": "hunter2"})
    assert data == {"token": "hunter2", "other": ""}
    assert all("hunter2" not in str(e) for e in errors)


def test_the_document_is_not_changed() -> None:
    parsed = doc()
    interpolate(parsed, {"TOKEN": "t", "A": "a"})
    assert parsed.data["connections"]["pms"]["token"] == "${TOKEN}"


def test_text_without_variables_is_left_alone() -> None:
    parsed, _ = parse_document("a: $HOME and {x} and $ {Y}\n", "m.yaml")
    assert parsed is not None
    data, errors = interpolate(parsed, {})
    assert data == {"a": "$HOME and {x} and $ {Y}"}
    assert errors == []
