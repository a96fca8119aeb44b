"""`mapsync history` end to end against the emulators: creates, edits on both sides, a conflict settled by
the policy (its losing value kept), a manual conflict resolved by an operator, and pruning."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from mapsync.cli._app import _register_commands, cli
from mapsync.sandbox import Sandbox, SeedSize
from mapsync.state import StateStore, open_store
from mapsync.state.base import HistoryEntry

REPO = Path(__file__).resolve().parents[2]
SEED = SeedSize(avdelinger=2, kunder=4, prosjekter=3)
FLOW = "kunde-customer"

_register_commands()


@dataclass
class Workspace:
    """A copy of the reference workspace on a started sandbox, with its own SQLite state."""

    sb: Sandbox
    folder: Path
    state_url: str

    def cli(self, *args: str) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.folder / "mapsync.yaml"), *args],
                                    env=self.sb.env() | {"MAPSYNC_STATE": self.state_url})
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result

    def apply(self) -> None:
        result = self.cli("apply", "--no-progress")
        assert result.exit_code == 0, result.output

    def history(self, record_id: str, *args: str) -> list[dict[str, Any]]:
        result = self.cli("history", f"{FLOW}:{record_id}", "--json", *args)
        assert result.exit_code == 0, result.output
        entries: list[dict[str, Any]] = json.loads(result.stdout)
        return entries

    def store(self) -> StateStore:
        return open_store(self.state_url)

    def first_pair(self) -> tuple[str, str]:
        with self.store() as store:
            link = next(iter(store.iter_links(FLOW)))
            return link.source_id, link.target_id

    def edit_config(self, **keys: Any) -> None:
        path = self.folder / "mapsync.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8")) | keys
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def set_mapping(self, **keys: Any) -> None:
        path = self.folder / "mappings" / f"{FLOW}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8")) | keys
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def make_workspace(sandbox: Sandbox, tmp_path: Path, state_url: str = "") -> Workspace:
    folder = tmp_path / "ws"
    folder.mkdir()
    shutil.copy(REPO / "mapsync.yaml", folder / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", folder / "mappings")
    return Workspace(sandbox, folder, state_url or f"sqlite:///{tmp_path / 'state.db'}")


@pytest.fixture
def ws(make_sandbox: Any, tmp_path: Path) -> Iterator[Workspace]:
    yield make_workspace(make_sandbox(seed=SEED, rng_seed=1), tmp_path)


@pytest.fixture
def ws_both(make_sandbox: Any, tmp_path: Path, store_url: str) -> Iterator[Workspace]:
    """On SQLite and on PostgreSQL."""
    yield make_workspace(make_sandbox(seed=SEED, rng_seed=1), tmp_path, store_url)


def test_edits_on_both_sides_and_a_settled_conflict_keep_their_story(ws_both: Workspace) -> None:
    ws = ws_both
    ws.apply()
    kunde_id, customer_id = ws.first_pair()
    [created] = ws.history(kunde_id)
    assert created["kind"] == "create" and created["side"] == "target"
    assert created["target_id"] == customer_id and created["why"] == "new in the source: created in the target"
    kunde = ws.sb.tidsbanken.get("Kunde", kunde_id)
    assert kunde is not None and created["changes"]["name"] == {"old": None, "new": kunde["Navn"]}

    ws.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Endret i Tidsbanken AS")
    ws.apply()
    ws.sb.custompms.edit("customers", customer_id, phone="+47 11 22 33 44")
    ws.apply()
    # Both sides change the name: source-wins writes the target, and the target's value is kept as lost.
    ws.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Vinner AS")
    ws.sb.custompms.edit("customers", customer_id, name="Taper AS")
    ws.apply()

    conflict, from_target, from_source, _ = ws.history(kunde_id)
    assert from_source["kind"] == "update" and from_source["side"] == "target"
    assert from_source["why"] == "changed in the source"
    assert from_source["changes"]["name"]["new"] == "Endret i Tidsbanken AS"
    assert from_target["side"] == "source" and from_target["why"] == "changed in the target"
    assert from_target["changes"] == {"phone": {"old": kunde["Telefon"] or None, "new": "+47 11 22 33 44",
                                                "why": "changed in the target"}}
    assert conflict["side"] == "target"
    assert conflict["why"] == "conflict on name settled by source-wins (the source won)"
    assert conflict["changes"]["name"] == {"old": "Taper AS", "new": "Vinner AS", "lost": "Taper AS",
                                           "why": "conflict settled by source-wins", "policy": "source-wins",
                                           "winner": "source", "base": "Endret i Tidsbanken AS"}
    assert len({e["run_id"] for e in ws.history(kunde_id)}) == 4  # one run each
    assert [e["id"] for e in ws.history(customer_id, "--side", "target")] == \
        [e["id"] for e in ws.history(kunde_id)]
    assert [e["id"] for e in ws.history(kunde_id, "--limit", "1")] == [conflict["id"]]

    text = ws.cli("history", f"{FLOW}:{kunde_id}")
    assert text.exit_code == 0
    assert f"{FLOW} source {kunde_id}: 4 entries, newest first" in text.stdout
    assert '    name: "Taper AS" -> "Vinner AS"  [lost: "Taper AS"; source won]' in text.stdout


def test_a_manual_conflict_and_its_resolve_are_recorded(ws: Workspace) -> None:
    ws.set_mapping(conflicts="manual")
    ws.apply()
    kunde_id, customer_id = ws.first_pair()
    ws.sb.tidsbanken.edit("Kunde", kunde_id, Epost="tb@example.no")
    ws.sb.custompms.edit("customers", customer_id, email="pms@example.no")
    ws.apply()
    ws.apply()  # still waiting: not recorded a second time
    resolved = ws.cli("links", "resolve", FLOW, kunde_id, "--use", "target")
    assert resolved.exit_code == 0, resolved.output
    ws.apply()

    written, resolve, conflict, _ = ws.history(kunde_id)
    assert conflict["kind"] == "conflict" and conflict["side"] == "state"
    assert conflict["changes"]["email"]["source"] == "tb@example.no"
    assert conflict["changes"]["email"]["target"] == "pms@example.no"
    assert resolve["kind"] == "resolve" and resolve["run_id"].startswith("operator-")
    assert "resolved by hand for the target" in resolve["why"]
    assert resolve["changes"]["email"]["lost"] == "tb@example.no"
    assert resolve["changes"]["email"]["winner"] == "target"
    assert written["side"] == "source" and written["changes"]["email"]["new"] == "pms@example.no"
    assert written["changes"]["email"]["old"] == "tb@example.no"


def test_unlink_and_relink_by_hand_are_recorded(ws: Workspace) -> None:
    ws.apply()
    kunde_id, customer_id = ws.first_pair()
    assert ws.cli("links", "unlink", FLOW, kunde_id).exit_code == 0
    assert ws.cli("links", "relink", FLOW, kunde_id, customer_id).exit_code == 0

    relinked, unlinked, _ = ws.history(kunde_id)
    assert (unlinked["kind"], relinked["kind"]) == ("unlink", "relink")
    assert relinked["target_id"] == unlinked["target_id"] == customer_id


def test_old_entries_are_pruned_by_apply(ws: Workspace) -> None:
    ws.edit_config(history={"keep_days": 30})
    ws.apply()
    kunde_id, customer_id = ws.first_pair()
    with ws.store() as store:
        store.add_history([HistoryEntry(FLOW, kunde_id, customer_id, "target", "update", "long ago", {},
                                        run_id="old", at="2020-01-01T00:00:00.000000+00:00")])
    assert [e["run_id"] for e in ws.history(kunde_id)][-1] == "old"

    ws.apply()

    assert [e["kind"] for e in ws.history(kunde_id)] == ["create"]


def test_no_history_and_bad_arguments(ws: Workspace) -> None:
    empty = ws.cli("history", f"{FLOW}:NOPE")
    assert empty.exit_code == 0
    assert f"{FLOW} source NOPE: no writes recorded (kept for 90 days)" in empty.stdout
    unknown = ws.cli("history", "nope:1")
    assert unknown.exit_code == 2 and "unknown dataflow 'nope'" in unknown.output
    malformed = ws.cli("history", "K1")
    assert malformed.exit_code == 2 and "expected DATAFLOW:ID" in malformed.output
    assert "Traceback" not in unknown.output + malformed.output


def test_keep_days_must_be_a_positive_whole_number(ws: Workspace) -> None:
    ws.edit_config(history={"keep_days": 0})
    result = ws.cli("history", f"{FLOW}:K1")
    assert result.exit_code == 2
    assert "mapsync.yaml:" in result.output and "keep_days" in result.output


def test_a_delete_keeps_the_deleted_records_values(ws: Workspace) -> None:
    ws.set_mapping(deletes={"policy": "propagate", "max_share": 1})
    ws.apply()
    kunde_id, customer_id = ws.first_pair()
    customer = ws.sb.custompms.get("customers", customer_id)
    assert customer is not None
    ws.sb.tidsbanken.remove("Kunde", kunde_id)
    result = ws.cli("apply", "--full", "--no-progress")
    assert result.exit_code == 0, result.output

    deleted = ws.history(kunde_id)[0]
    assert (deleted["kind"], deleted["side"], deleted["target_id"]) == ("delete", "target", customer_id)
    assert deleted["why"] == "gone from the source (deletes.policy: propagate)"
    assert deleted["changes"]["name"] == {"old": customer["name"], "new": None}
