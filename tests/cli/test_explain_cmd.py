"""`mapsync explain` end to end against the emulators: the link, the last-synced and live values, what the
next run would do and why, a waiting conflict, a failed record's entry, and the latest history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_history_cmd import FLOW, SEED, Workspace, make_workspace

from mapsync.state.base import DeadLetter


@pytest.fixture
def ws(make_sandbox: Any, tmp_path: Path) -> Iterator[Workspace]:
    yield make_workspace(make_sandbox(seed=SEED, rng_seed=1), tmp_path)


def explain(ws: Workspace, *args: str) -> dict[str, Any]:
    result = ws.cli("explain", *args, "--json")
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def prop(found: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in found["properties"] if row["property"] == name)


def test_a_pair_in_sync_then_edited_on_both_sides(ws: Workspace) -> None:
    ws.apply()
    kunde_id, customer_id = ws.first_pair()
    calm = explain(ws, f"{FLOW}:{kunde_id}")
    assert calm["link"]["target_id"] == customer_id and calm["link"]["state"] == "ok"
    assert calm["next_run"] == [] and calm["plan_error"] is None
    assert prop(calm, "name")["state"] == "in sync"
    assert [e["kind"] for e in calm["history"]] == ["create"]

    ws.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Ny i Tidsbanken AS")
    ws.sb.custompms.edit("customers", customer_id, phone="+47 99 88 77 66")
    writes_before = _writes(ws)
    found = explain(ws, f"{FLOW}:{customer_id}", "--side", "target")

    assert _writes(ws) == writes_before  # explain changes nothing
    name, phone = prop(found, "name"), prop(found, "phone")
    assert name["source"] == "Ny i Tidsbanken AS" and name["synced_source"] == name["synced_target"] != name["source"]
    assert name["state"] == "changed in the source"
    assert phone["target"] == "+47 99 88 77 66" and phone["state"] == "changed in the target"
    [action] = found["next_run"]
    assert action["action"] == "update"
    assert action["target_changes"]["name"]["new"] == "Ny i Tidsbanken AS"
    assert action["source_changes"]["phone"]["new"] == "+47 99 88 77 66"
    assert found["source"]["id"] == kunde_id and found["target"]["values"]["name"] == name["target"]

    text = ws.cli("explain", f"{FLOW}:{kunde_id}")
    assert text.exit_code == 0, text.output
    assert f"link: Kunde {kunde_id} <-> Customer {customer_id}, ok, last synced " in text.stdout
    assert '  name: ' in text.stdout and '"Ny i Tidsbanken AS" |' in text.stdout and "(changed in the source)" in \
        text.stdout
    assert "next run:\n  ~ update Kunde" in text.stdout
    assert f"latest history (all: `mapsync history {FLOW}:{kunde_id}`):" in text.stdout


def test_a_waiting_conflict_and_a_failed_record(ws: Workspace) -> None:
    ws.set_mapping(conflicts="manual")
    ws.apply()
    kunde_id, customer_id = ws.first_pair()
    ws.sb.tidsbanken.edit("Kunde", kunde_id, Navn="Tidsbanken sier AS")
    ws.sb.custompms.edit("customers", customer_id, name="Custompms sier AS")
    ws.apply()
    with ws.store() as store:
        store.add_dead_letter(DeadLetter(FLOW, "target", kunde_id, "refused: not today", 422))

    found = explain(ws, f"{FLOW}:{kunde_id}")

    assert found["link"]["state"] == "conflict"
    [waiting] = found["conflicts_waiting"]
    assert (waiting["property"], waiting["source_value"], waiting["target_value"]) == \
        ("name", "Tidsbanken sier AS", "Custompms sier AS")
    assert prop(found, "name")["state"] == "changed on both sides: a conflict"
    assert [a["action"] for a in found["next_run"]] == ["conflict"]
    assert found["next_run"][0]["conflicts"][0]["resolution"] == "manual"
    [failed] = found["failed"]
    assert failed["status"] == 422 and failed["reason"] == "refused: not today"
    assert found["history"][0]["kind"] == "conflict"
    text = ws.cli("explain", f"{FLOW}:{kunde_id}").stdout
    assert "conflict waiting on name since " in text and f"mapsync links resolve {FLOW} {kunde_id}" in text
    assert "failed record (target " in text and "(HTTP 422): refused: not today" in text


def test_a_record_not_linked_yet_and_one_found_nowhere(ws: Workspace) -> None:
    ws.apply()
    ws.sb.tidsbanken.put("Kunde", {"Id": "KNEW1", "Navn": "Helt Ny AS", "Aktiv": True})

    new = explain(ws, f"{FLOW}:KNEW1")
    assert new["link"] is None and new["target"]["problem"] == "no partner (not linked)"
    assert new["source"]["values"]["name"] == "Helt Ny AS"
    assert [(a["action"], a["side"]) for a in new["next_run"]] == [("create", "target")]
    assert new["history"] == []

    nowhere = explain(ws, f"{FLOW}:NOPE")
    assert nowhere["source"]["problem"] == "Kunde NOPE not found"
    assert [a["action"] for a in nowhere["next_run"]] == ["missing"]
    assert ws.cli("explain", "nope:1").exit_code == 2


def _writes(ws: Workspace) -> int:
    return sum(n for server in (ws.sb.tidsbanken, ws.sb.custompms)
               for (method, _), n in server.requests.items() if method in {"POST", "PUT", "PATCH", "DELETE"})
