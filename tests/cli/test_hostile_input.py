"""Hostile or broken input gets one clear line and exit 2 from every command that loads the workspace,
never an internal error (the corpus in tests/spec/corpus covers `validate` case by case)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from spec.corpus_cases import load_case, materialize

from mapsync.cli._app import _register_commands, cli

REPO = Path(__file__).parents[2]
CLEAN_ENV: dict[str, str | None] = {"MAPSYNC_CONFIG": None, "MAPSYNC_STATE": None}

_register_commands()


def run(*args: str) -> Result:
    return CliRunner(env=CLEAN_ENV).invoke(cli, list(args))


def copy_case(name: str, tmp_path: Path) -> Path:
    return materialize(name, tmp_path).parent


@pytest.mark.parametrize("command", [["test"], ["docs", "--out", "out"], ["plan"]])
@pytest.mark.parametrize("case", ["yaml-alias-bomb-in-mapping", "jmespath-nested-too-deep-in-reverse",
                                  "config-mappings-absolute-glob", "example-unquoted-date"])
def test_every_command_refuses_a_broken_workspace_with_exit_2(case: str, command: list[str], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_case(case, tmp_path)
    monkeypatch.chdir(folder)
    result = run(*command)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.splitlines() == list(load_case(case).expected)  # one line, as `validate` says it


def test_the_alias_bomb_stays_small_in_a_real_process(tmp_path: Path) -> None:
    # In a child process capped at 1 GB: before the bound, the bomb grew past 5 GB and died of MemoryError.
    folder = copy_case("yaml-alias-bomb-in-config", tmp_path)
    cap = "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
    code = cap + "from mapsync.cli import main; sys.argv = ['mapsync', 'validate']; main()"
    env = {k: v for k, v in os.environ.items() if k != "MAPSYNC_CONFIG"}
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "mapsync.yaml:12: lol4[0]: aliases expand to more than 10000 nodes (an alias bomb?)", "1 problem found"]


def test_a_config_that_is_a_named_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "mapsync.yaml"
    os.mkfifo(fifo)
    result = run("--config", str(fifo), "validate")
    assert result.exit_code == 2
    assert "cannot read file: not a regular file (a pipe, socket or device)" in result.stderr


def test_a_mapping_that_is_a_named_pipe_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_case("yaml-anchors-and-merge-keys-are-fine", tmp_path)
    os.mkfifo(folder / "mappings" / "pipe.yaml")
    monkeypatch.chdir(folder)
    result = run("validate")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "mapsync.yaml:3: mappings[0]: mappings/pipe.yaml is not a regular file (a pipe, socket or device)")


def test_merge_keys_work_and_are_not_duplicate_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(copy_case("yaml-anchors-and-merge-keys-are-fine", tmp_path))
    result = run("validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ok: 1 dataflows, 3 property rows, 2 connections\n"


# -- mapsync docs --out -------------------------------------------------------------------------------

def test_docs_out_pointing_at_a_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("not a folder", encoding="utf-8")
    result = run("--config", str(REPO / "mapsync.yaml"), "docs", "--out", str(target))
    assert result.exit_code == 2
    assert f"'{target}' is a file" in result.stderr
    assert target.read_text(encoding="utf-8") == "not a folder"


def test_docs_out_where_no_folder_can_be_made_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder would have to be", encoding="utf-8")
    out = blocker / "dataflows"
    result = run("--config", str(REPO / "mapsync.yaml"), "docs", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert f"cannot write the documents to {out}: Not a directory" in result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output


# -- mapsync test: an expression jmespath cannot evaluate on an example's values -----------------------

def test_an_expression_failing_inside_jmespath_fails_its_example(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # jmespath raises a bare TypeError comparing a string with a number: a failed example, not a crash.
    folder = copy_case("yaml-anchors-and-merge-keys-are-fine", tmp_path)
    (folder / "mappings" / "avdeling-customer.yaml").write_text(
        "dataflow: avdeling-customer\n"
        "source: {connection: tidsbanken, entity: Avdeling}\n"
        "target: {connection: custompms, entity: Customer}\n"
        "properties:\n"
        "  - {source: Navn, target: name, type: string}\n"
        "  - {source: 'Navn > `1`', target: active, type: boolean, direction: forward}\n"
        "examples:\n"
        "  - name: a name compared with a number\n"
        "    direction: forward\n"
        "    source: {Navn: Salg}\n"
        "    target: {name: Salg, active: true}\n", encoding="utf-8")
    monkeypatch.chdir(folder)
    result = run("test")
    assert result.exit_code == 1, result.output
    assert "FAIL avdeling-customer: a name compared with a number (forward)" in result.stdout
    assert ("mappings/avdeling-customer.yaml:6: cannot evaluate 'Navn > `1`' on Avdeling record (no id): "
            "> cannot compare a string with a number") in result.stdout
