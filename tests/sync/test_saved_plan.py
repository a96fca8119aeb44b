"""Issue 10, end to end: `plan --out FILE` saves a plan, `apply --plan FILE` performs exactly it; records
changed since are stale, and a plan for another workspace, other mappings or an older state is refused."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sync_harness import Harness, write_requests


def saved_plan(h: Harness, path: Path, *args: str) -> dict[str, Any]:
    run = h.plan("--out", str(path), *args)
    assert run.exit_code == 0, run.output
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def planned(document: dict[str, Any], dataflow: str) -> list[tuple[str, str | None]]:
    return [(a["action"], a["source_id"]) for a in document["dataflows"][dataflow]["actions"]]


def test_apply_plan_performs_exactly_the_planned_writes(h: Harness, tmp_path: Path) -> None:
    assert h.apply().exit_code == 0
    k1, k2 = h.sb.tidsbanken.records("Kunde")[:2]
    c1, c2 = (h.links("kunde-customer")[k["Id"]] for k in (k1, k2))
    h.sb.tidsbanken.edit("Kunde", k1["Id"], Navn="Planlagt AS")
    plan_file = tmp_path / "plan.json"
    document = saved_plan(h, plan_file)
    assert document["mapsync_plan"] == 1
    assert planned(document, "kunde-customer") == [("update", k1["Id"])]
    assert document["dataflows"]["kunde-customer"]["actions"][0]["target_changes"]["name"]["new"] == "Planlagt AS"

    h.sb.tidsbanken.edit("Kunde", k2["Id"], Navn="Ikke i planen AS")  # after the plan, and not in it
    before = write_requests(h)
    run = h.apply("--plan", str(plan_file))
    assert run.exit_code == 0, run.output
    assert write_requests(h) - before == Counter({("custompms", "PATCH", f"/api/v1/customers/{c1}"): 1})
    assert run.counts("kunde-customer")["updated"] == 1
    assert (h.sb.custompms.get("customers", c1) or {})["name"] == "Planlagt AS"
    assert (h.sb.custompms.get("customers", c2) or {})["name"] == k2["Navn"]

    # The cursors did not move: the next apply sees the edit left out, and nothing of the plan again.
    before = write_requests(h)
    run = h.apply()
    assert run.exit_code == 0, run.output
    assert write_requests(h) - before == Counter({("custompms", "PATCH", f"/api/v1/customers/{c2}"): 1})
    assert (h.sb.custompms.get("customers", c2) or {})["name"] == "Ikke i planen AS"


def test_a_create_in_a_saved_plan_is_made_once(hs: Harness, tmp_path: Path) -> None:
    assert hs.apply().exit_code == 0
    hs.sb.tidsbanken.put("Kunde", {"Id": "K19990", "Navn": "Ny Fra Planen AS", "Aktiv": True})
    plan_file = tmp_path / "plan.json"
    assert planned(saved_plan(hs, plan_file), "kunde-customer") == [("create", "K19990")]

    run = hs.apply("--plan", str(plan_file))
    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["created"] == 1
    target_id = hs.links("kunde-customer")["K19990"]
    assert (hs.sb.custompms.get("customers", target_id) or {})["name"] == "Ny Fra Planen AS"
    assert list(hs.store().iter_pending("kunde-customer")) == []  # recorded first, cleared once linked
    settled = hs.writes()
    assert hs.apply().exit_code == 0
    assert hs.writes() == settled


@pytest.mark.parametrize("edited", ["tidsbanken", "custompms"])
def test_a_record_edited_after_planning_is_stale(hs: Harness, tmp_path: Path, edited: str) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    k1, k2 = h.sb.tidsbanken.records("Kunde")[:2]
    c1, c2 = (h.links("kunde-customer")[k["Id"]] for k in (k1, k2))
    h.sb.tidsbanken.edit("Kunde", k1["Id"], Navn="Planlagt AS")
    h.sb.tidsbanken.edit("Kunde", k2["Id"], Navn="Også planlagt AS")
    plan_file = tmp_path / "plan.json"
    assert sorted(planned(saved_plan(h, plan_file), "kunde-customer")) == sorted(
        [("update", k1["Id"]), ("update", k2["Id"])])
    if edited == "tidsbanken":
        h.sb.tidsbanken.edit("Kunde", k1["Id"], Telefon="+47 22 00 00 01")
    else:
        h.sb.custompms.edit("customers", c1, phone="+47 22 00 00 01")

    before = write_requests(h)
    run = h.apply("--plan", str(plan_file))
    assert run.exit_code == 1, run.output
    assert run.counts("kunde-customer")["stale"] == 1
    assert run.counts("kunde-customer")["updated"] == 1
    assert f"Kunde {k1['Id']}: " in run.stderr and "changed" in run.stderr and "not written" in run.stderr
    assert write_requests(h) - before == Counter({("custompms", "PATCH", f"/api/v1/customers/{c2}"): 1})
    assert (h.sb.custompms.get("customers", c1) or {})["name"] == k1["Navn"]  # not written

    run = h.apply()  # the next run picks the stale record up, with the later edit
    assert run.exit_code == 0, run.output
    pms1, tb1 = h.sb.custompms.get("customers", c1) or {}, h.sb.tidsbanken.get("Kunde", k1["Id"]) or {}
    assert pms1["name"] == tb1["Navn"] == "Planlagt AS"
    assert pms1["phone"] == tb1["Telefon"] == "+47 22 00 00 01"


def other_base_url(h: Harness) -> str:
    was = h.env()["CUSTOMPMS_URL"]
    h.set_connection("custompms", base_url="http://127.0.0.1:9/")
    return f"made for another workspace: connection 'custompms' was custompms at {was}, here it is custompms at "


def edited_mapping(h: Harness) -> str:
    h.set_mapping("kunde-customer", conflicts="target-wins")
    return "kunde-customer.yaml (dataflow kunde-customer) changed since the plan was made"


def another_apply(h: Harness) -> str:
    k3 = h.sb.tidsbanken.records("Kunde")[2]
    h.sb.tidsbanken.edit("Kunde", k3["Id"], Navn="Synket imellom AS")
    assert h.apply("--dataflow", "kunde-customer").exit_code == 0
    return "the state of kunde-customer changed since the plan was made"


@pytest.mark.parametrize("change", [other_base_url, edited_mapping])
def test_a_plan_for_another_workspace_or_mapping_is_refused(hs: Harness, tmp_path: Path,
                                                            change: Callable[[Harness], str]) -> None:
    assert_refused(hs, tmp_path, change)


def test_a_plan_for_an_older_state_is_refused(h: Harness, tmp_path: Path) -> None:
    assert_refused(h, tmp_path, another_apply)  # the state as the store tells it: on both stores


def assert_refused(h: Harness, tmp_path: Path, change: Callable[[Harness], str]) -> None:
    assert h.apply().exit_code == 0
    k1 = h.sb.tidsbanken.records("Kunde")[0]
    h.sb.tidsbanken.edit("Kunde", k1["Id"], Navn="Planlagt AS")
    plan_file = tmp_path / "plan.json"
    saved_plan(h, plan_file)
    expected = change(h)

    before = h.writes()
    run = h.apply("--plan", str(plan_file))
    assert run.exit_code == 2, run.output
    assert f"{plan_file}: " in run.stderr and expected in run.stderr
    assert "make a new plan" in run.stderr and "Traceback" not in run.output
    assert h.writes() == before


def test_apply_plan_refuses_what_is_not_a_plan(hs: Harness, tmp_path: Path) -> None:
    not_a_plan = tmp_path / "plan.json"
    not_a_plan.write_text('{"dataflows": {}}', encoding="utf-8")
    run = hs.apply("--plan", str(not_a_plan))
    assert run.exit_code == 2
    assert "not a mapsync plan" in run.stderr
    assert hs.apply("--plan", str(not_a_plan), "--full").exit_code == 2
