"""`mapsync schema mapping|config|connector`: the shipped JSON Schemas, to stdout or --out FILE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mapsync.cli._app import _register_commands, cli

REPO = Path(__file__).parents[2]

_register_commands()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(("name", "file"), [("mapping", "mapping.schema.json"), ("config", "config.schema.json")])
def test_prints_the_shipped_schema(name: str, file: str) -> None:
    result = run("schema", name)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((REPO / "schemas" / file).read_text())


def test_out_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "editor" / "mapping.schema.json"
    result = run("schema", "mapping", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"wrote {out}\n"
    assert out.read_text() == (REPO / "schemas" / "mapping.schema.json").read_text()


def test_out_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run("schema", "config", "--out", str(tmp_path / "file" / "config.json"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot write {tmp_path / 'file' / 'config.json'}: ")
    assert len(result.stderr.splitlines()) == 1


def test_connector_definitions_have_their_schema() -> None:
    result = run("schema", "connector")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"] == "mapsync connector definition"


def test_an_unknown_name_is_a_usage_error() -> None:
    result = run("schema", "entity")
    assert result.exit_code == 2
    assert "'entity' is not one of 'config', 'connector', 'mapping'" in result.stderr
