"""`mapsync test`: the examples both ways; 0 when all pass, 1 with a diff when one fails, 2 when invalid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mapsync.cli._app import _register_commands, cli

REPO = Path(__file__).parents[2]
CLEAN_ENV: dict[str, str | None] = {name: None for name in (
    "MAPSYNC_CONFIG", "MAPSYNC_STATE", "TIDSBANKEN_URL", "TIDSBANKEN_API_KEY", "TIDSBANKEN_SUBSCRIPTION_KEY",
    "CUSTOMPMS_URL", "CUSTOMPMS_TOKEN")}

_register_commands()


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(cli, list(args))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "mapsync.yaml", tmp_path / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_reference_examples_pass() -> None:
    result = run("--config", str(REPO / "mapsync.yaml"), "test")
    assert result.exit_code == 0, result.output
    assert result.stdout == "12 passed, 0 failed\n"


def test_verbose_lists_every_example() -> None:
    result = run("--config", str(REPO / "mapsync.yaml"), "test", "-v")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len([line for line in lines if line.startswith("PASS ")]) == 12
    assert "PASS kunde-customer: a customer with both addresses (forward)" in lines
    assert "PASS prosjekt-project: an internal, closed project with no customer (backward)" in lines


def test_a_wrong_example_fails_with_a_unified_diff(workspace: Path) -> None:
    path = workspace / "mappings" / "kunde-customer.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("      active: false", "      active: true"),
                    encoding="utf-8")
    result = run("test")
    assert result.exit_code == 1
    out = result.stdout
    assert ("FAIL kunde-customer: an inactive customer with nothing but a name (forward)  "
            "[mappings/kunde-customer.yaml:61]") in out
    assert "--- expected\n+++ actual\n@@" in out
    assert '-  "active": true,' in out
    assert '+  "active": false,' in out
    assert '-  "Aktiv": false,\n+  "Aktiv": true,' in out  # and backward: the target now says true
    assert out.endswith("10 passed, 2 failed\n")
    assert "Traceback" not in result.output


def test_a_record_that_cannot_be_mapped_is_a_failure(workspace: Path) -> None:
    path = workspace / "mappings" / "avdeling-customer.yaml"
    text = path.read_text(encoding="utf-8").replace("      Avdelingsleder: 1042", "      Avdelingsleder: sjefen")
    path.write_text(text, encoding="utf-8")
    result = run("test")
    assert result.exit_code == 1
    assert "mapping failed: Avdelingsleder: expected an integer, got 'sjefen'" in result.stdout


def test_an_invalid_workspace_exits_2_with_every_problem(workspace: Path) -> None:
    path = workspace / "mappings" / "kunde-customer.yaml"
    text = path.read_text(encoding="utf-8").replace("conflicts: source-wins", "conflicts: sometimes")
    path.write_text(text.replace("{source: Navn,     ", "{source: Navnn,    "), encoding="utf-8")
    result = run("test")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("mappings/kunde-customer.yaml:8: conflicts: 'sometimes' is not one of")
    assert lines[1].startswith("mappings/kunde-customer.yaml:16: properties[0].source: Tidsbanken Kunde has no")
    assert "Traceback" not in result.output


def test_config_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("test", env={"MAPSYNC_CONFIG": str(REPO / "mapsync.yaml")})
    assert result.exit_code == 0
    assert run("test").exit_code == 2  # no mapsync.yaml here
