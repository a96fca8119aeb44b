"""`mapsync validate --online`: one cheap request per connection, against the real emulators."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from mapsync.cli._app import _register_commands, cli
from mapsync.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]


def _workspace(tmp_path: Path) -> Path:
    shutil.copy(REPO / "mapsync.yaml", tmp_path / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    return tmp_path / "mapsync.yaml"


def _validate_online(config: Path, env: dict[str, str]) -> tuple[int, str, str]:
    _register_commands()
    result = CliRunner().invoke(cli, ["--config", str(config), "validate", "--online"], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_reachable_connections_with_right_credentials_pass(tmp_path: Path, empty_sandbox: Sandbox) -> None:
    code, out, err = _validate_online(_workspace(tmp_path), empty_sandbox.env())
    assert code == 0, err
    assert "tidsbanken: reachable, credentials accepted" in out
    assert "custompms: reachable, credentials accepted" in out


def test_a_wrong_key_names_the_connection_and_never_the_key(tmp_path: Path, empty_sandbox: Sandbox) -> None:
    env = empty_sandbox.env() | {"TIDSBANKEN_API_KEY": "wrong-secret-value"}
    code, out, err = _validate_online(_workspace(tmp_path), env)
    assert code == 1
    assert "tidsbanken: FAILED" in err and "401" in err
    assert "custompms: reachable, credentials accepted" in out
    assert "wrong-secret-value" not in out + err


def test_an_unreachable_system_is_reported_as_such(tmp_path: Path, empty_sandbox: Sandbox) -> None:
    env = empty_sandbox.env() | {"CUSTOMPMS_URL": "http://127.0.0.1:9"}
    config = _workspace(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["connections"]["custompms"]["max_retries"] = 1  # still retried, without 5 backoffs' wait
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    code, _, err = _validate_online(config, env)
    assert code == 1
    assert "custompms: FAILED" in err
