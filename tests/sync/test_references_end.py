"""Issue 10, end to end: a reference row's `on_missing` says what happens when the record it points to is
gone. A Kunde deleted in Tidsbanken no longer holds back its Prosjekter (keep / null), or does (wait)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from sync_harness import Harness


def set_on_missing(h: Harness, value: str) -> None:
    """Give prosjekt-project's KundeId row `on_missing: value` in the copied mapping file."""
    path = h.ws / "mappings" / "prosjekt-project.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    row = next(r for r in data["properties"] if r["source"] == "KundeId")
    row["on_missing"] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def delete_busiest_kunde(h: Harness) -> tuple[str, list[str]]:
    """Remove from Tidsbanken the Kunde with the most Prosjekter, and rename each of those Prosjekter (an
    edit that must still reach Custompms); returns the Kunde's id and its Prosjekter's ids."""
    prosjekter = h.sb.tidsbanken.records("Prosjekt")
    used = Counter(p["KundeId"] for p in prosjekter if p["KundeId"])
    kunde = used.most_common(1)[0][0]
    orphans = sorted(p["Id"] for p in prosjekter if p["KundeId"] == kunde)
    h.sb.tidsbanken.remove("Kunde", kunde)
    for prosjekt_id in orphans:
        h.sb.tidsbanken.edit("Prosjekt", prosjekt_id, Navn=f"Omdøpt {prosjekt_id}")
    return kunde, orphans


def project_of(h: Harness, prosjekt_id: str) -> dict[str, Any]:
    project = h.sb.custompms.get("projects", h.links("prosjekt-project")[prosjekt_id])
    assert project is not None
    return project


def ledger(h: Harness) -> dict[str, tuple[str, int]]:
    return {d.record_id: (d.reason, d.attempts) for d in h.store().iter_dead_letters("prosjekt-project")}


def test_by_default_the_reference_keeps_its_value_and_the_rest_syncs(h: Harness) -> None:
    assert h.apply().exit_code == 0
    customer_of = {p: project_of(h, p)["customer_id"] for p in h.links("prosjekt-project")}
    kunde, orphans = delete_busiest_kunde(h)

    run = h.apply("--full")

    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["unlinked"] == 1
    flow = run.counts("prosjekt-project")
    assert (flow["deferred"], flow["updated"], flow["status"]) == (0, len(orphans), "ok")
    for prosjekt_id in orphans:
        project = project_of(h, prosjekt_id)
        assert project["name"] == f"Omdøpt {prosjekt_id}"
        assert project["customer_id"] == customer_of[prosjekt_id]  # kept
    # The ledger says why, once per record: a note, not a failure.
    noted = ledger(h)
    assert sorted(noted) == orphans
    assert all(f"kunde-customer {kunde} (KundeId) is gone or unlinked: customer_id kept as it is "
               "(on_missing: keep)" == reason and attempts == 1 for reason, attempts in noted.values())
    assert h.plan("--full", "--exit-code").exit_code == 0  # nothing waits, nothing to do

    # Later runs: still synced, the note is not written again, and edits keep flowing.
    h.sb.tidsbanken.edit("Prosjekt", orphans[0], Navn="Enda et navn")
    again = h.apply("--full")
    assert again.exit_code == 0, again.output
    assert again.counts("prosjekt-project")["updated"] == 1
    assert project_of(h, orphans[0])["name"] == "Enda et navn"
    assert ledger(h) == noted


def test_on_missing_null_writes_null(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    set_on_missing(h, "null")
    assert h.apply().exit_code == 0
    _, orphans = delete_busiest_kunde(h)

    run = h.apply("--full")

    assert run.exit_code == 0, run.output
    assert run.counts("prosjekt-project")["updated"] == len(orphans)
    for prosjekt_id in orphans:
        project = project_of(h, prosjekt_id)
        assert (project["name"], project["customer_id"]) == (f"Omdøpt {prosjekt_id}", None)
    assert all("customer_id set to null (on_missing: null)" in reason for reason, _ in ledger(h).values())
    assert sorted(ledger(h)) == orphans
    assert h.apply("--full").counts("prosjekt-project")["updated"] == 0  # written once


def test_on_missing_wait_keeps_the_record_waiting(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    set_on_missing(h, "wait")
    assert h.apply().exit_code == 0
    names = {p: project_of(h, p)["name"] for p in h.links("prosjekt-project")}
    kunde, orphans = delete_busiest_kunde(h)

    run = h.apply("--full")

    assert run.exit_code == 1, run.output
    assert run.counts("prosjekt-project")["deferred"] == len(orphans)
    assert all(project_of(h, p)["name"] == names[p] for p in orphans)  # not written
    assert all(f"waits for kunde-customer {kunde}" in reason for reason, _ in ledger(h).values())
    assert "? wait Prosjekt" in h.plan("--full").stdout


def test_a_kunde_not_linked_yet_still_defers_under_keep(hs: Harness) -> None:
    """A Kunde whose Customer could not be created is not linked *yet*: its Prosjekter wait, as before."""
    h = hs
    kunde = h.sb.tidsbanken.records("Kunde")[0]
    h.sb.custompms.refuse(lambda resource, body: "refused for the test"
                          if resource == "customers" and body.get("name") == kunde["Navn"] else None)
    waiting = sum(p["KundeId"] == kunde["Id"] for p in h.sb.tidsbanken.records("Prosjekt"))

    run = h.apply()

    assert run.exit_code == 1
    assert run.counts("prosjekt-project")["deferred"] == waiting > 0
