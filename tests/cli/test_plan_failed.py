"""A plan that cannot read a system says so on stdout and exits 1: never a row of zeros, as if there were
nothing to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from mapsync.cli._app import _register_commands, cli
from mapsync.sandbox import Sandbox

REPO = Path(__file__).parents[2]

_register_commands()


def plan_with_custompms_down(sandbox: Sandbox, tmp_path: Path, *args: str) -> Result:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    shutil.copytree(REPO / "mappings", workspace / "mappings")
    config = yaml.safe_load((REPO / "mapsync.yaml").read_text(encoding="utf-8"))
    config["connections"]["custompms"]["max_retries"] = 0  # fail at once; the retries are tested elsewhere
    (workspace / "mapsync.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    env = sandbox.env() | {"MAPSYNC_STATE": "sqlite:///" + str(tmp_path / "state.db")}
    sandbox.custompms.stop()  # its URL now points at a closed port
    return CliRunner().invoke(cli, ["--config", str(workspace / "mapsync.yaml"), "plan", *args], env=env)


def test_a_failed_plan_says_so_on_stdout_and_exits_1(sandbox: Sandbox, tmp_path: Path) -> None:
    result = plan_with_custompms_down(sandbox, tmp_path)

    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("plan failed: custompms: GET /api/v1/customers: ")
    assert "  plan failed: custompms: GET /api/v1/customers: " in result.stdout  # under its dataflow too
    assert "0 to create" not in result.stdout
    assert "error: custompms: " in result.stderr
    assert "Traceback" not in result.output


def test_one_failed_dataflow_fails_the_plan(sandbox: Sandbox, tmp_path: Path) -> None:
    result = plan_with_custompms_down(sandbox, tmp_path, "--dataflow", "prosjekt-project")

    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[-1].startswith("plan failed: custompms: GET /api/v1/projects: ")
