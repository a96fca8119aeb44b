"""`mapsync validate`: exit codes, one line per problem, the corpus through the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from spec.corpus_cases import CASE_NAMES, load_case, materialize

from mapsync.cli import main
from mapsync.cli._app import _register_commands, cli

REPO = Path(__file__).parents[2]
# Nothing the workspaces read from the environment leaks in from the machine running the tests.
CLEAN_ENV: dict[str, str | None] = {name: None for name in (
    "MAPSYNC_CONFIG", "MAPSYNC_STATE", "TIDSBANKEN_URL", "TIDSBANKEN_API_KEY", "TIDSBANKEN_SUBSCRIPTION_KEY",
    "CUSTOMPMS_URL", "CUSTOMPMS_TOKEN", "MAPSYNC_CORPUS_UNSET_TOKEN")}

_register_commands()


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(cli, list(args))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_through_the_command_line(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = materialize(name, tmp_path)
    monkeypatch.chdir(config.parent)
    result = run("--config", str(config), "validate")
    expected = list(load_case(name).expected)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if not expected:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    # One line per problem, exactly as load_workspace words it, then the count.
    assert result.stderr.splitlines() == [
        *expected, f"{len(expected)} problem{'s' if len(expected) != 1 else ''} found"]


def test_the_reference_workspace_is_valid() -> None:
    result = run("--config", str(REPO / "mapsync.yaml"), "validate")
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 3 dataflows, 32 property rows, 2 connections\n"
    assert result.stderr == ""


def test_config_from_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert run("validate").exit_code == 0


def test_config_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("validate", env={"MAPSYNC_CONFIG": str(REPO / "mapsync.yaml")}).exit_code == 0
    broken = materialize("unknown-entity", tmp_path)
    assert run("validate", env={"MAPSYNC_CONFIG": str(broken)}).exit_code == 2


def test_the_option_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    broken = materialize("unknown-entity", tmp_path)
    result = run("--config", str(REPO / "mapsync.yaml"), "validate", env={"MAPSYNC_CONFIG": str(broken)})
    assert result.exit_code == 0


def test_run_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    materialize("unknown-time-zone", tmp_path).parent.rename(tmp_path / "integrator")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("--config", "../integrator/mapsync.yaml", "validate")
    assert result.exit_code == 2
    # Outside the current folder, files are named by the path that reaches them.
    first = result.stderr.splitlines()[0]
    assert re.match(r"^\S*integrator/mappings/prosjekt-project\.yaml:9: timezone: unknown time zone", first), first


def test_no_config_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("validate")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "mapsync.yaml: no workspace config: mapsync.yaml not found (run mapsync in the folder holding "
        "mapsync.yaml, or pass --config PATH)",
        "1 problem found"]


def test_usage_errors_exit_2() -> None:
    assert run("validate", "--no-such-option").exit_code == 2
    assert run("no-such-command").exit_code == 2
    result = run("--config", str(REPO), "validate")  # a folder, not a file
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("validate", "test", "docs"):
        assert command in result.stdout


def test_an_internal_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mapsync.cli import validate_cmd

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(validate_cmd, "workspace_from", broken)
    monkeypatch.setattr("sys.argv", ["mapsync", "--config", str(REPO / "mapsync.yaml"), "validate"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err == "internal error: RuntimeError: boom (rerun with --debug for details)\n"
    # --debug shows the traceback instead.
    monkeypatch.setattr("sys.argv", ["mapsync", "--debug", "--config", str(REPO / "mapsync.yaml"), "validate"])
    with pytest.raises(RuntimeError, match="boom"):
        main()
