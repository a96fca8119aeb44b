"""Issue 4, end to end: Tidsbanken records become Custompms records through `mapsync apply`, over real
HTTP to the emulators, with the state in SQLite and in PostgreSQL."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from e2e_expect import assert_in_sync, assert_no_duplicates, customer, project
from sync_harness import FLOWS, Harness, all_links, write_requests

from mapsync.errors import LockHeldError
from mapsync.sandbox import Faults
from mapsync.state import open_store

# -- the initial sync ------------------------------------------------------------------------------------


def test_initial_sync_creates_every_record_with_its_values(h: Harness) -> None:
    avdelinger = h.sb.tidsbanken.records("Avdeling")
    kunder = h.sb.tidsbanken.records("Kunde")
    prosjekter = h.sb.tidsbanken.records("Prosjekt")

    run = h.apply()

    assert run.exit_code == 0, run.output
    report = run.report
    assert report is not None
    assert report["status"] == "ok"
    assert report["dataflows"]["avdeling-customer"]["created"] == len(avdelinger)
    assert report["dataflows"]["kunde-customer"]["created"] == len(kunder)
    assert report["dataflows"]["prosjekt-project"]["created"] == len(prosjekter)
    assert report["total"]["created"] == len(avdelinger) + len(kunder) + len(prosjekter)
    assert report["total"]["failed"] == report["total"]["deferred"] == report["total"]["conflicts"] == 0
    for flow in FLOWS:
        assert report["dataflows"][flow]["status"] == "ok"
        assert report["dataflows"][flow]["errors"] == []
    # requests per connection and HTTP method, matching what the emulators counted
    assert report["requests"]["custompms"]["POST"] == report["total"]["created"]
    assert report["requests"]["custompms"]["GET"] >= 1
    assert report["requests"]["tidsbanken"]["GET"] >= 3
    assert sum(report["requests"]["custompms"].values()) == h.sb.custompms.request_count
    assert sum(report["requests"]["tidsbanken"].values()) == h.sb.tidsbanken.request_count

    customers = h.sb.custompms.records("customers")
    assert Counter(c["kind"] for c in customers) == {"department": len(avdelinger), "customer": len(kunder)}
    assert len(h.sb.custompms.records("projects")) == len(prosjekter)
    links = all_links(h)
    assert_in_sync(h.sb, links)
    assert_no_duplicates(h.sb)

    # spot checks of the conversions, against the raw records
    by_id = {c["id"]: c for c in customers}
    kunde = next(k for k in kunder if k["Postadresse"] == "" and k["Gateadresse"])
    pms = by_id[links["kunde-customer"][kunde["Id"]]]
    assert pms["kind"] == "customer"
    assert pms["postal_address"]["line1"] == kunde["Gateadresse"]
    assert pms["postal_address"]["line2"] is None  # "" -> null
    assert pms["active"] is kunde["Aktiv"]
    assert pms == pms | customer(kunde)
    projects = {p["id"]: p for p in h.sb.custompms.records("projects")}
    dated = next(p for p in prosjekter if p["StartDato"] and p["KundeId"] and p["AvdelingId"])
    pms_project = projects[links["prosjekt-project"][dated["Id"]]]
    assert pms_project["start_date"] == dated["StartDato"][:10]
    assert len(pms_project["start_date"]) == 10  # YYYY-MM-DD
    assert pms_project["customer_id"] == links["kunde-customer"][dated["KundeId"]]
    assert pms_project["department_id"] == links["avdeling-customer"][dated["AvdelingId"]]
    assert by_id[pms_project["customer_id"]]["kind"] == "customer"
    assert by_id[pms_project["department_id"]]["kind"] == "department"
    assert isinstance(pms_project["manager_employee_id"], int | None)
    assert pms_project == pms_project | project(dated, links["kunde-customer"], links["avdeling-customer"])


def test_rerun_with_nothing_changed_writes_nothing(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    before = h.writes()

    run = h.apply()
    assert run.exit_code == 0, run.output
    assert h.writes() == before
    assert run.counts()["created"] == run.counts()["updated"] == 0

    full = h.apply("--full")
    assert full.exit_code == 0, full.output
    assert h.writes() == before
    assert full.report is not None and full.report["status"] == "ok"
    assert full.counts()["created"] == full.counts()["updated"] == full.counts()["deleted"] == 0
    assert full.counts()["unchanged"] == sum(len(h.sb.tidsbanken.records(e)) for e in ("Avdeling", "Kunde",
                                                                                        "Prosjekt"))


def test_tidsbanken_edits_propagate_one_write_each(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    links = all_links(h)
    kunder = h.sb.tidsbanken.records("Kunde")
    avdeling = h.sb.tidsbanken.records("Avdeling")[0]
    prosjekt = next(p for p in h.sb.tidsbanken.records("Prosjekt") if p["KundeId"])
    other_kunde = next(k["Id"] for k in kunder if k["Id"] != prosjekt["KundeId"])
    kunde = kunder[0]

    h.sb.tidsbanken.edit("Kunde", kunde["Id"], Navn="Omdøpt Kunde AS", Telefon="")
    h.sb.tidsbanken.edit("Avdeling", avdeling["Id"], Adresse="Nyveien 7", Synlig=not avdeling["Synlig"])
    h.sb.tidsbanken.edit("Prosjekt", prosjekt["Id"], KundeId=other_kunde, StartDato="2025-06-02T00:00:00+02:00",
                         Avsluttet=True)
    before = write_requests(h)

    run = h.apply()
    assert run.exit_code == 0, run.output
    written = write_requests(h) - before
    assert written == Counter({
        ("custompms", "PATCH", f"/api/v1/customers/{links['kunde-customer'][kunde['Id']]}"): 1,
        ("custompms", "PATCH", f"/api/v1/customers/{links['avdeling-customer'][avdeling['Id']]}"): 1,
        ("custompms", "PATCH", f"/api/v1/projects/{links['prosjekt-project'][prosjekt['Id']]}"): 1,
    })
    assert run.counts()["updated"] == 3
    assert run.counts("kunde-customer")["updated"] == 1

    pms_kunde = h.sb.custompms.get("customers", links["kunde-customer"][kunde["Id"]])
    assert pms_kunde is not None
    assert pms_kunde["name"] == "Omdøpt Kunde AS"
    assert pms_kunde["phone"] is None
    pms_avdeling = h.sb.custompms.get("customers", links["avdeling-customer"][avdeling["Id"]])
    assert pms_avdeling is not None
    assert pms_avdeling["postal_address"]["line1"] == "Nyveien 7"
    assert pms_avdeling["active"] is (not avdeling["Synlig"])
    pms_project = h.sb.custompms.get("projects", links["prosjekt-project"][prosjekt["Id"]])
    assert pms_project is not None
    assert pms_project["customer_id"] == links["kunde-customer"][other_kunde]
    assert pms_project["start_date"] == "2025-06-02"
    assert pms_project["closed"] is True
    assert_in_sync(h.sb, all_links(h))

    # the written records read back unchanged: no echo
    settled = h.writes()
    again = h.apply()
    assert again.exit_code == 0, again.output
    assert h.writes() == settled
    assert h.apply("--full").exit_code == 0
    assert h.writes() == settled


# -- plan ------------------------------------------------------------------------------------------------


def test_plan_changes_nothing_and_reports_pending_changes(hs: Harness) -> None:
    h = hs
    kunde = h.sb.tidsbanken.records("Kunde")[0]
    first = h.plan("--exit-code")
    assert first.exit_code == 3, first.output
    assert f'create Customer from Kunde {kunde["Id"]}' in first.stdout
    as_json = h.plan("--json")
    assert as_json.exit_code == 0, as_json.output
    planned = json.loads(as_json.stdout)
    assert planned["pending"] is True
    creates = [a for a in planned["dataflows"]["kunde-customer"]["actions"] if a["source_id"] == kunde["Id"]]
    assert len(creates) == 1
    assert creates[0]["action"] == "create"
    assert creates[0]["target_changes"]["name"] == {"old": None, "new": kunde["Navn"]}
    assert planned["total"]["created"] == 48
    assert h.sb.custompms.request_count > 0  # it did read
    assert h.writes() == 0
    assert list(h.store().iter_links()) == []
    assert list(h.store().iter_dead_letters()) == []
    assert list(h.store().iter_pending()) == []

    # nothing was remembered: apply still creates everything
    run = h.apply()
    assert run.exit_code == 0, run.output
    assert run.counts()["created"] == 48

    settled = h.plan("--exit-code")
    assert settled.exit_code == 0, settled.output
    assert json.loads(h.plan("--json").stdout)["pending"] is False

    h.sb.tidsbanken.edit("Kunde", kunde["Id"], Navn="Planlagt Navn AS")
    writes = h.writes()
    pending = h.plan("--exit-code", "--json")
    assert pending.exit_code == 3, pending.output
    actions = json.loads(pending.stdout)["dataflows"]["kunde-customer"]["actions"]
    assert [(a["action"], a["source_id"], a["target_changes"]) for a in actions] == [
        ("update", kunde["Id"], {"name": {"old": kunde["Navn"], "new": "Planlagt Navn AS"}})]
    text = h.plan()
    assert f'Customer.name: "{kunde["Navn"]}" -> "Planlagt Navn AS"' in text.stdout
    assert h.writes() == writes
    # plan did not move the cursor either: apply still sees the edit
    run = h.apply()
    assert run.counts()["updated"] == 1
    assert h.plan("--exit-code").exit_code == 0


# -- references that wait --------------------------------------------------------------------------------


def test_prosjekt_waits_for_its_kunde(hs: Harness) -> None:
    h = hs
    avdeling = h.sb.tidsbanken.records("Avdeling")[0]["Id"]
    h.sb.tidsbanken.put("Prosjekt", {"Id": "P29999", "Navn": "Venter på kunden", "KundeId": "K19999",
                                     "AvdelingId": avdeling, "StartDato": "2024-02-01T00:00:00+01:00"})
    prosjekter = len(h.sb.tidsbanken.records("Prosjekt"))

    run = h.apply()
    assert run.report is not None
    flow = run.counts("prosjekt-project")
    assert flow["deferred"] == 1
    assert flow["created"] == prosjekter - 1
    assert flow["status"] == "partial"
    assert run.report["status"] == "partial"
    assert "P29999" not in h.links("prosjekt-project")
    assert [p for p in h.sb.custompms.records("projects") if p["name"] == "Venter på kunden"] == []
    assert h.sb.custompms.requests[("POST", "/api/v1/projects")] == prosjekter - 1  # not even tried
    letters = [d for d in h.store().iter_dead_letters("prosjekt-project")]
    assert [d.record_id for d in letters] == ["P29999"]
    assert "K19999" in letters[0].reason
    planned = h.plan()
    assert "? wait Prosjekt P29999" in planned.stdout

    # still waiting on the next run, and never written
    again = h.apply()
    assert again.counts("prosjekt-project")["deferred"] == 1
    assert [p for p in h.sb.custompms.records("projects") if p["name"] == "Venter på kunden"] == []

    h.sb.tidsbanken.put("Kunde", {"Id": "K19999", "Navn": "Sen Kunde AS", "Aktiv": True})
    done = h.apply()
    assert done.exit_code == 0, done.output
    assert done.counts("kunde-customer")["created"] == 1
    assert done.counts("prosjekt-project")["created"] == 1
    customer_id = h.links("kunde-customer")["K19999"]
    created = h.sb.custompms.get("projects", h.links("prosjekt-project")["P29999"])
    assert created is not None
    assert created["name"] == "Venter på kunden"
    assert created["customer_id"] == customer_id
    assert created["department_id"] == h.links("avdeling-customer")[avdeling]
    assert created["start_date"] == "2024-02-01"
    assert list(h.store().iter_dead_letters()) == []
    assert_in_sync(h.sb, all_links(h))


# -- refused records -------------------------------------------------------------------------------------


def test_refused_record_goes_to_the_dead_letter_ledger(hs: Harness) -> None:
    h = hs
    prosjekter = h.sb.tidsbanken.records("Prosjekt")
    used = Counter(p["KundeId"] for p in prosjekter)
    kunde = min(h.sb.tidsbanken.records("Kunde"), key=lambda k: used[k["Id"]])
    waiting = used[kunde["Id"]]  # Prosjekter of that Kunde wait for it
    name = kunde["Navn"]
    h.sb.custompms.refuse(lambda resource, body: "refused for the test"
                          if resource == "customers" and body.get("name") == name else None)

    run = h.apply()
    assert run.exit_code == 1, run.output
    assert run.report is not None
    assert run.report["status"] == "partial"
    assert run.report["total"]["failed"] == 1
    flow = run.counts("kunde-customer")
    assert flow["failed"] == 1
    assert flow["created"] == len(h.sb.tidsbanken.records("Kunde")) - 1
    assert flow["status"] == "partial"
    assert len(flow["errors"]) == 1
    assert kunde["Id"] in flow["errors"][0]
    assert "refused for the test" in flow["errors"][0]
    assert "refused for the test" in run.stderr
    assert run.counts("prosjekt-project")["deferred"] == waiting
    assert run.counts("prosjekt-project")["created"] == len(prosjekter) - waiting
    assert run.counts("avdeling-customer")["status"] == "ok"
    assert [c for c in h.sb.custompms.records("customers") if c["name"] == name] == []

    letters = [d for d in h.store().iter_dead_letters("kunde-customer")]
    assert [(d.record_id, d.status) for d in letters] == [(kunde["Id"], 422)]
    assert "refused for the test" in letters[0].reason

    h.sb.custompms.refuse(None)
    again = h.apply()
    assert again.exit_code == 0, again.output
    assert again.counts("kunde-customer")["created"] == 1
    assert again.counts("prosjekt-project")["created"] == waiting
    assert list(h.store().iter_dead_letters()) == []
    assert_in_sync(h.sb, all_links(h))
    assert_no_duplicates(h.sb)


# -- the run lock ----------------------------------------------------------------------------------------


def test_apply_refuses_while_the_lock_is_held(h: Harness) -> None:
    holder = h.open_another_store()
    with holder.lock("apply:kunde-customer"):
        run = h.apply()
        assert run.exit_code == 1
        assert "lock 'apply:kunde-customer'" in run.stderr
        assert "held by" in run.stderr
        assert "Traceback" not in run.output
        assert h.writes() == 0
    run = h.apply()
    assert run.exit_code == 0, run.output


def test_runs_of_disjoint_dataflows_go_side_by_side(h: Harness) -> None:
    holder = h.open_another_store()
    with holder.lock("apply:prosjekt-project"):
        run = h.apply("--dataflow", "avdeling-customer", "--dataflow", "kunde-customer")
        assert run.exit_code == 0, run.output
        assert "prosjekt-project" not in run.report["dataflows"]  # type: ignore[index]
        blocked = h.apply("--dataflow", "prosjekt-project")
        assert blocked.exit_code == 1 and "lock 'apply:prosjekt-project'" in blocked.stderr
    assert h.apply("--dataflow", "prosjekt-project").exit_code == 0


def test_apply_wait_waits_for_the_lock(h: Harness) -> None:
    held, release, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            store = open_store(h.state_url)  # used and closed on this thread only
            try:
                with store.lock("apply:prosjekt-project"):
                    held.set()
                    release.wait(30)
            finally:
                store.close()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            held.set()
            done.set()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        assert not errors
        timer = threading.Timer(1.0, release.set)
        timer.start()
        started = time.monotonic()
        run = h.apply("--wait", "30")
        waited = time.monotonic() - started
        timer.join()
    finally:
        release.set()
        thread.join(30)
    assert not errors
    assert run.exit_code == 0, run.output
    assert waited >= 0.9
    assert run.counts()["created"] == 48


def test_lock_left_by_a_killed_apply_is_recovered(make_harness: Callable[..., Harness], state_url: str) -> None:
    h = make_harness(state_url, socket=True)  # the apply is a subprocess
    h.sb.set_faults(Faults(latency=0.05))
    proc = h.spawn_apply()
    try:
        deadline = time.monotonic() + 30
        while h.sb.custompms.requests[("POST", "/api/v1/customers")] < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the apply subprocess made no progress"
            time.sleep(0.01)
        # it holds the lock now
        with pytest.raises(LockHeldError), h.open_another_store().lock("apply:avdeling-customer"):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    h.sb.set_faults(Faults())
    # SQLite sees the holder's pid is gone; PostgreSQL frees the advisory lock with the connection
    # (which the server notices a moment after the kill, hence a short wait there).
    wait = [] if h.state_url.startswith("sqlite") else ["--wait", "10"]
    run = h.apply(*wait)
    assert run.exit_code == 0, run.output
    assert_in_sync(h.sb, all_links(h))
    assert_no_duplicates(h.sb)
