"""Issue 10, the plan is a contract: at its edges (create bodies of one-way rows, values the other system
would refuse, records left waiting by an unlink, `plan --exit-code`), plan says what apply then does."""

from __future__ import annotations

import json
from typing import Any

import yaml
from sync_harness import Harness

ORG = "Organisasjonsnummer"


def plan_actions(h: Harness, *args: str) -> dict[str, Any]:
    run = h.plan("--json", *args)
    assert run.exit_code == 0, run.output
    planned: dict[str, Any] = json.loads(run.stdout)
    return planned


def posts(h: Harness, resource: str) -> list[Any]:
    return [w.body for w in h.sb.custompms.write_log if w.method == "POST" and w.path == f"/api/v1/{resource}"]


def leaves(body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A request body as {dotted path: value}, nulls left out (the plan lists the values a create sets)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, dict):
            out |= leaves(value, f"{prefix}{key}.")
        elif value is not None:
            out[f"{prefix}{key}"] = value
    return out


def set_row(h: Harness, dataflow: str, source: str, **changes: Any) -> None:
    path = h.ws / "mappings" / f"{dataflow}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    row = next(r for r in data["properties"] if r["source"] == source)
    row.update(changes)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


# -- create bodies ---------------------------------------------------------------------------------------


def test_a_reverse_row_is_neither_planned_nor_sent_nor_expected_on_create(hs: Harness) -> None:
    h = hs
    set_row(h, "kunde-customer", "Epost", direction="reverse")
    kunde = next(k for k in h.sb.tidsbanken.records("Kunde") if k["Epost"])

    planned = plan_actions(h, "--dataflow", "kunde-customer")["dataflows"]["kunde-customer"]["actions"]
    create = next(a for a in planned if a["source_id"] == kunde["Id"])
    assert create["action"] == "create"
    assert "email" not in create["target_changes"]
    assert create["target_changes"]["name"] == {"old": None, "new": kunde["Navn"]}
    assert "Customer.email" not in h.plan("--dataflow", "kunde-customer").stdout

    assert h.apply("--dataflow", "kunde-customer").exit_code == 0
    bodies = posts(h, "customers")
    assert len(bodies) == len(h.sb.tidsbanken.records("Kunde"))
    assert all("email" not in body for body in bodies)
    sent = next(b for b in bodies if b["name"] == kunde["Navn"])
    assert leaves(sent) == {"kind": "customer", **{p: c["new"] for p, c in create["target_changes"].items()}}

    # `mapsync test` expects what a create writes: an example that still lists email fails on it
    result = h.cli("test")
    assert result.exit_code == 1, result.output
    assert '-  "email": "post@fjordbygg.no",' in result.stdout


def test_a_create_back_carries_only_rows_that_flow_back(hs: Harness) -> None:
    h = hs
    h.set_mapping("kunde-customer", create="both")
    set_row(h, "kunde-customer", "Telefon", direction="forward")
    assert h.apply("--dataflow", "kunde-customer").exit_code == 0
    made = h.sb.custompms.create("customers", {"kind": "customer", "name": "Fra Custompms AS", "phone": "+47 1",
                                               "email": "a@pms.no"})

    planned = plan_actions(h, "--dataflow", "kunde-customer")["dataflows"]["kunde-customer"]["actions"]
    create = next(a for a in planned if a["target_id"] == made["id"])
    assert (create["action"], create["side"]) == ("create", "source")
    assert create["source_changes"] == {"name": {"old": None, "new": "Fra Custompms AS"},
                                        "email": {"old": None, "new": "a@pms.no"},
                                        "active": {"old": None, "new": True}}

    assert h.apply("--dataflow", "kunde-customer").exit_code == 0
    [body] = [w.body for w in h.sb.tidsbanken.write_log if w.method == "POST"]
    assert "Telefon" not in body
    assert (body["Navn"], body["Epost"]) == ("Fra Custompms AS", "a@pms.no")


# -- values the other system would refuse ----------------------------------------------------------------


def test_a_value_the_target_refuses_fails_in_plan_and_apply_without_a_request(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    kunder = h.sb.tidsbanken.records("Kunde")
    bad, long_name = kunder[0], kunder[1]
    h.sb.tidsbanken.edit("Kunde", bad["Id"], **{ORG: "974 760 673"})

    text = h.plan("--dataflow", "kunde-customer")
    assert f'x fail Kunde {bad["Id"]} "{bad["Navn"]}"' in text.stdout
    assert "Customer.organization_number: '974 760 673' does not match '^[0-9]{9}$'" in text.stdout
    assert "1 failing" in text.stdout

    run = h.apply("--dataflow", "kunde-customer")
    assert run.exit_code == 1, run.output
    assert (run.counts()["failed"], run.counts()["created"]) == (1, len(kunder) - 1)
    assert all(w.status < 400 for w in h.sb.custompms.write_log)  # never sent, so never a 422
    assert bad["Id"] not in h.links("kunde-customer")
    [letter] = h.store().iter_dead_letters("kunde-customer")
    assert (letter.record_id, letter.reason) == (
        bad["Id"], "Customer.organization_number: '974 760 673' does not match '^[0-9]{9}$'")

    # an update the target would refuse fails the same way; the record that was fixed syncs
    h.sb.tidsbanken.edit("Kunde", long_name["Id"], Navn="N" * 250)
    h.sb.tidsbanken.edit("Kunde", bad["Id"], **{ORG: "974760673"})
    planned = plan_actions(h, "--dataflow", "kunde-customer")["dataflows"]["kunde-customer"]
    assert {(a["action"], a["source_id"]) for a in planned["actions"]} == {("fail", long_name["Id"]),
                                                                           ("create", bad["Id"])}
    writes = len(h.sb.custompms.write_log)
    run = h.apply("--dataflow", "kunde-customer")
    assert (run.counts()["failed"], run.counts()["created"], run.counts()["updated"]) == (1, 1, 0)
    assert run.counts() | {"unchanged": 0} == planned["counts"] | {"unchanged": 0}
    assert [w.method for w in h.sb.custompms.write_log[writes:]] == ["POST"]
    assert any("Customer.name: 250 characters is too long (at most 200)" in e
               for e in run.report["dataflows"]["kunde-customer"]["errors"])  # type: ignore[index]


# -- cascades --------------------------------------------------------------------------------------------


def test_prosjekter_of_an_unlinked_kunde_wait_in_plan_as_in_apply(hs: Harness) -> None:
    h = hs
    set_row(h, "prosjekt-project", "KundeId", on_missing="wait")  # a Prosjekt waits for its Kunde's link
    assert h.apply().exit_code == 0
    prosjekter = h.sb.tidsbanken.records("Prosjekt")
    kunde = max({p["KundeId"] for p in prosjekter if p["KundeId"]},
                key=lambda k: sum(p["KundeId"] == k for p in prosjekter))
    orphans = sorted(p["Id"] for p in prosjekter if p["KundeId"] == kunde)
    h.sb.tidsbanken.remove("Kunde", kunde)

    planned = plan_actions(h, "--full")["dataflows"]
    assert [(a["action"], a["source_id"]) for a in planned["kunde-customer"]["actions"]] == [("unlink", kunde)]
    waiting = sorted(a["source_id"] for a in planned["prosjekt-project"]["actions"] if a["action"] == "defer")
    assert waiting == orphans
    assert planned["prosjekt-project"]["counts"]["deferred"] == len(orphans)
    assert h.plan("--full", "--exit-code").exit_code == 1

    run = h.apply("--full")
    assert run.counts("prosjekt-project")["deferred"] == len(orphans)
    assert run.counts("kunde-customer")["unlinked"] == 1


# -- plan --exit-code ------------------------------------------------------------------------------------


def test_plan_exit_code_says_whether_apply_would_fail(hs: Harness) -> None:
    h = hs
    assert h.plan("--exit-code").exit_code == 3  # only changes to make
    assert h.apply().exit_code == 0
    assert h.plan("--exit-code").exit_code == 0  # nothing to do

    kunde = h.sb.tidsbanken.records("Kunde")[0]
    h.sb.tidsbanken.edit("Kunde", kunde["Id"], **{ORG: "12345"})
    refused = h.plan("--exit-code")
    assert refused.exit_code == 1, refused.output  # apply would fail that record
    assert h.plan().exit_code == 0  # without --exit-code, a plan that worked exits 0

    h.sb.tidsbanken.edit("Kunde", kunde["Id"], **{ORG: ""})
    assert h.plan("--exit-code").exit_code == 3
