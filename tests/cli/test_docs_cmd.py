"""`mapsync docs`: writes docs/dataflows/<source>-<target>.rst (or to --out)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from spec.corpus_cases import materialize

from mapsync.cli._app import _register_commands, cli

REPO = Path(__file__).parents[2]
COMMITTED = REPO / "docs" / "dataflows" / "tidsbanken-custompms.rst"
CLEAN_ENV: dict[str, str | None] = {name: None for name in (
    "MAPSYNC_CONFIG", "MAPSYNC_STATE", "TIDSBANKEN_URL", "TIDSBANKEN_API_KEY", "TIDSBANKEN_SUBSCRIPTION_KEY",
    "CUSTOMPMS_URL", "CUSTOMPMS_TOKEN")}

_register_commands()


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(cli, list(args))


def without_generated(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("Generated: ")]


def test_docs_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("--config", str(REPO / "mapsync.yaml"), "docs", "--out", str(out))
    assert result.exit_code == 0, result.output
    written = out / "tidsbanken-custompms.rst"
    assert result.stdout == f"wrote {written}\n"
    assert sorted(p.name for p in out.iterdir()) == ["tidsbanken-custompms.rst"]
    text = written.read_text(encoding="utf-8")
    # The committed document never drifts from the mappings: regenerate it with `mapsync docs`.
    assert without_generated(text) == without_generated(COMMITTED.read_text(encoding="utf-8"))
    assert sum(line.startswith("Generated: ") for line in text.splitlines()) == 1


def test_docs_default_folder_is_beside_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    shutil.copy(REPO / "mapsync.yaml", workspace / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", workspace / "mappings")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("docs", env={"MAPSYNC_CONFIG": str(workspace / "mapsync.yaml")})
    assert result.exit_code == 0, result.output
    assert (workspace / "docs" / "dataflows" / "tidsbanken-custompms.rst").is_file()
    assert not (elsewhere / "docs").exists()


def test_docs_of_an_invalid_workspace_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(materialize("unknown-source-property", tmp_path).parent)
    result = run("--config", "mapsync.yaml", "docs", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr.startswith("mappings/kunde-customer.yaml:16: properties[0].source: Tidsbanken Kunde has no "
                                    "property 'Navnn'")
    assert not (tmp_path / "out").exists()
    assert "Traceback" not in result.output
