"""A workspace's own connector definitions (`type: definition`): each names its system once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mapsync.errors import SpecError, SpecErrors
from mapsync.spec.loader import load_workspace

WORKSPACE = Path(__file__).parent.parent / "thirdparty" / "workspace"
ENV = {"TIDSBANKEN_URL": "http://127.0.0.1:1", "TIDSBANKEN_API_KEY": "k", "TIDSBANKEN_SUBSCRIPTION_KEY": "s",
       "LEDGERLY_URL": "http://127.0.0.1:2", "LEDGERLY_CLIENT_ID": "id", "LEDGERLY_CLIENT_SECRET": "secret"}


def test_the_reference_workspace_loads(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WORKSPACE, ws)
    assert load_workspace(ws / "mapsync.yaml", env=ENV).connections["ledgerly"]["system"] == "ledgerly"


def test_two_definitions_naming_one_system_are_refused_at_the_second(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WORKSPACE, ws)
    shutil.copy(ws / "connectors" / "ledgerly.yaml", ws / "connectors" / "ledgerly-copy.yaml")
    config = (ws / "mapsync.yaml").read_text(encoding="utf-8")
    config += ("  ledgerly2:\n    type: definition\n    definition: connectors/ledgerly-copy.yaml\n"
               "    base_url: http://127.0.0.1:3\n    client_id: a\n    client_secret: b\n")
    (ws / "mapsync.yaml").write_text(config, encoding="utf-8")
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_workspace(ws / "mapsync.yaml", env=ENV)
    message = str(info.value)
    line = config.splitlines().index("    definition: connectors/ledgerly-copy.yaml") + 1
    assert f"mapsync.yaml:{line}: connections.ledgerly2.definition:" in message
    assert "names its system 'ledgerly', as the definition of connection 'ledgerly' does" in message
