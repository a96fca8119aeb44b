"""`mapsync init [DIR]`: the reference workspace, from the package, into an empty or new folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mapsync.cli._app import _register_commands, cli

REPO = Path(__file__).parents[2]
CLEAN_ENV: dict[str, str | None] = {name: None for name in (
    "MAPSYNC_CONFIG", "MAPSYNC_STATE", "TIDSBANKEN_URL", "TIDSBANKEN_API_KEY", "TIDSBANKEN_SUBSCRIPTION_KEY",
    "CUSTOMPMS_URL", "CUSTOMPMS_TOKEN")}

_register_commands()


def run(*args: str) -> Result:
    return CliRunner(env=CLEAN_ENV).invoke(cli, list(args))


def test_init_writes_a_workspace_that_validates(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "my-sync"
    result = run("init", str(folder))
    assert result.exit_code == 0, result.output
    assert f"wrote {folder / 'mapsync.yaml'}" in result.stdout
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == [".gitignore", "mappings/avdeling-customer.yaml", "mappings/kunde-customer.yaml",
                       "mappings/prosjekt-project.yaml", "mapsync.yaml", "schemas/config.schema.json",
                       "schemas/mapping.schema.json"]
    for mapping in (REPO / "mappings").glob("*.yaml"):  # the reference mappings, unchanged
        assert (folder / "mappings" / mapping.name).read_text() == mapping.read_text()
    validated = run("--config", str(folder / "mapsync.yaml"), "validate")
    assert validated.exit_code == 0, validated.output
    assert validated.stdout.startswith("ok: 3 dataflows")


def test_every_schema_line_names_a_written_schema(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).exit_code == 0
    files = [tmp_path / "mapsync.yaml", *sorted((tmp_path / "mappings").glob("*.yaml"))]
    for path in files:
        first = path.read_text().splitlines()[0]
        found = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert found, f"{path.name}: {first}"
        schema = (path.parent / found.group(1)).resolve()
        assert schema.is_file(), f"{path.name} points at {schema}"
        assert json.loads(schema.read_text())["$schema"].startswith("https://json-schema.org/")
    assert (tmp_path / "mapsync.yaml").read_text().splitlines()[0].endswith("schemas/config.schema.json")


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = run("init", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == (f"error: {tmp_path} is not empty: choose an empty or new folder, or pass --force to "
                             "write the workspace's files over those of the same name (others are left alone)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_force_replaces_the_workspace_files_and_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "mapsync.yaml").write_text("state: broken\n")
    result = run("init", str(tmp_path), "--force")
    assert result.exit_code == 0, result.output
    assert f"replaced {tmp_path / 'mapsync.yaml'}" in result.stdout
    assert f"wrote {tmp_path / 'mappings' / 'kunde-customer.yaml'}" in result.stdout
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert "connections:" in (tmp_path / "mapsync.yaml").read_text()


def test_init_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run("init", str(tmp_path / "file"), "--force")
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'file'} exists and is not a folder\n"


def test_init_defaults_to_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init").exit_code == 0
    assert (tmp_path / "mapsync.yaml").is_file()
