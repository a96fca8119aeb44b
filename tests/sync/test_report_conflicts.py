"""The JSON report and the text summary: manual conflicts waiting for a person (listed, counted once, a
status to alert on) and the run's --max-delete-share; end to end through `mapsync apply`."""

from __future__ import annotations

from sync_harness import Harness

FLOW = "kunde-customer"


def _conflict_on_email(h: Harness) -> tuple[str, str]:
    h.set_mapping(FLOW, conflicts="manual")
    assert h.apply().exit_code == 0
    links = h.links(FLOW)
    kunde_id = sorted(links)[0]
    h.sb.tidsbanken.edit("Kunde", kunde_id, Epost="tb@example.no")
    h.sb.custompms.edit("customers", links[kunde_id], email="pms@example.no")
    return kunde_id, links[kunde_id]


def test_a_waiting_conflict_is_listed_counted_once_and_alerts(h: Harness) -> None:
    kunde_id, customer_id = _conflict_on_email(h)
    first = h.apply()
    assert first.exit_code == 0, first.output  # nothing failed: conflicts wait, the run synced what it could
    report = first.report
    assert report is not None
    assert report["status"] == "conflicts"
    assert report["dataflows"][FLOW]["status"] == "conflicts"
    assert report["dataflows"]["avdeling-customer"]["status"] == "ok"
    assert (report["conflicts_waiting"], report["dataflows"][FLOW]["conflicts_waiting"]) == (1, 1)
    assert first.counts(FLOW)["conflicts"] == 1
    [waiting] = report["waiting_conflicts"]
    since = waiting.pop("since")
    assert since
    assert waiting == {"dataflow": FLOW, "source_id": kunde_id, "target_id": customer_id, "property": "email",
                       "base": waiting["base"], "source_value": "tb@example.no", "target_value": "pms@example.no"}
    assert "1 manual conflict waiting for a person" in first.stdout

    again = h.apply("--full")  # reads the pair again: the same conflict, still waiting, not a new one
    assert again.exit_code == 0, again.output
    assert again.counts(FLOW)["conflicts"] == 0
    assert again.report is not None and again.report["status"] == "conflicts"
    assert [c["since"] for c in again.report["waiting_conflicts"]] == [since]

    assert h.cli("links", "resolve", FLOW, kunde_id, "--use", "source").exit_code == 0
    settled = h.apply()
    assert settled.exit_code == 0, settled.output
    assert settled.report is not None
    assert (settled.report["status"], settled.report["conflicts_waiting"], settled.report["waiting_conflicts"]) \
        == ("ok", 0, [])
    assert "manual conflict" not in settled.stdout


def test_a_changed_conflict_is_counted_again(hs: Harness) -> None:
    kunde_id, _ = _conflict_on_email(hs)
    assert hs.apply().counts(FLOW)["conflicts"] == 1
    hs.sb.tidsbanken.edit("Kunde", kunde_id, Epost="tb2@example.no")
    changed = hs.apply()
    assert changed.counts(FLOW)["conflicts"] == 1
    assert changed.report is not None
    assert [c["source_value"] for c in changed.report["waiting_conflicts"]] == ["tb2@example.no"]


def test_failures_take_precedence_over_waiting_conflicts(hs: Harness) -> None:
    _conflict_on_email(hs)
    hs.sb.custompms.refuse(lambda resource, body: "not today" if body.get("name") == "Refused AS" else None)
    hs.sb.tidsbanken.put("Kunde", {"Id": "KX1", "Navn": "Refused AS", "Aktiv": True})
    run = hs.apply()
    assert run.exit_code == 1
    assert run.report is not None
    assert (run.report["status"], run.report["dataflows"][FLOW]["status"]) == ("partial", "partial")
    assert run.report["conflicts_waiting"] == 1


def test_the_runs_max_delete_share_is_reported(hs: Harness) -> None:
    plain = hs.apply()
    assert plain.report is not None and plain.report["max_delete_share"] is None
    assert "max delete share" not in plain.stdout
    overridden = hs.apply("--max-delete-share", "0.5")
    assert overridden.exit_code == 0, overridden.output
    assert overridden.report is not None and overridden.report["max_delete_share"] == 0.5
    assert "max delete share: 0.5 (--max-delete-share, for this run)" in overridden.stdout
