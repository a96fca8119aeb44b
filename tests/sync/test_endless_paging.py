"""Issue 9, end to end: a listing whose pages never end stops its dataflow at `max_pages`; nothing it read
half is trusted (no cursor moves, no deletes), the other dataflows sync, and the next run converges."""

from __future__ import annotations

from e2e_expect import assert_in_sync, assert_no_duplicates
from sync_harness import FLOWS, Harness, all_links

ENDLESS = "the server's paging never ends"


def unthrottled(h: Harness) -> None:
    """The emulators answer at once: the sample config's rate limit would only make the test slow."""
    h.set_connection("tidsbanken", rate_limit=1000)
    h.set_connection("custompms", rate_limit=1000)


def cursors(h: Harness, flow: str) -> tuple[str | None, str | None]:
    return h.store().get_cursor(flow, "source"), h.store().get_cursor(flow, "target")


def edit_one_of_each(h: Harness) -> tuple[str, str, str]:
    """A Tidsbanken edit for each dataflow; the ids of the Avdeling, Kunde and Prosjekt edited."""
    avdeling = h.sb.tidsbanken.records("Avdeling")[0]["Id"]
    kunde = h.sb.tidsbanken.records("Kunde")[0]["Id"]
    prosjekt = h.sb.tidsbanken.records("Prosjekt")[0]["Id"]
    h.sb.tidsbanken.edit("Avdeling", avdeling, Navn="Avdeling Endeløs")
    h.sb.tidsbanken.edit("Kunde", kunde, Navn="Kunde Endeløs AS")
    h.sb.tidsbanken.edit("Prosjekt", prosjekt, Navn="Prosjekt Endeløs")
    return avdeling, kunde, prosjekt


def customer_name(h: Harness, flow: str, source_id: str) -> str:
    return h.sb.custompms.get("customers", h.links(flow)[source_id])["name"]


def project_name(h: Harness, prosjekt: str) -> str:
    return h.sb.custompms.get("projects", h.links("prosjekt-project")[prosjekt])["name"]


def assert_only_projects_stopped(h: Harness, message: str) -> None:
    run = h.apply("--full")
    assert run.exit_code == 1
    assert run.report is not None
    statuses = {flow: run.report["dataflows"][flow]["status"] for flow in FLOWS}
    assert statuses == {"avdeling-customer": "ok", "kunde-customer": "ok", "prosjekt-project": "failed"}
    assert run.report["dataflows"]["prosjekt-project"]["errors"] == [f"prosjekt-project: stopped: {message}"]
    assert message in run.output


def test_tidsbanken_pages_that_never_end_stop_the_dataflow_at_max_pages(hs: Harness) -> None:
    unthrottled(hs)
    assert hs.apply().exit_code == 0
    avdeling, kunde, prosjekt = edit_one_of_each(hs)
    before_cursors, before_links = cursors(hs, "prosjekt-project"), hs.links("prosjekt-project")
    projects_before = hs.sb.custompms.records("projects")
    hs.set_connection("tidsbanken", page_size=5, max_pages=10)
    hs.sb.tidsbanken.endless_paging = {"Prosjekt"}

    # --full: a partial full scan that were trusted would take every Prosjekt it never reached as deleted
    assert_only_projects_stopped(
        hs, f"tidsbanken: GET /prosjekt/Prosjekt: listing Prosjekt stopped after 10 pages (max_pages); {ENDLESS}")
    assert customer_name(hs, "avdeling-customer", avdeling) == "Avdeling Endeløs"
    assert customer_name(hs, "kunde-customer", kunde) == "Kunde Endeløs AS"
    assert cursors(hs, "prosjekt-project") == before_cursors
    assert hs.links("prosjekt-project") == before_links  # nothing unlinked
    # 10 pages of 5 are fewer records than the planner reads before it plans: nothing was created
    assert hs.sb.custompms.records("projects") == projects_before

    hs.sb.tidsbanken.endless_paging = set()
    hs.set_connection("tidsbanken", page_size=100)
    run = hs.apply()
    assert run.exit_code == 0, run.output
    endless = [p for p in hs.sb.tidsbanken.records("Prosjekt") if p["Id"].startswith("ENDLESS-")]
    assert len(endless) == 50 and run.counts("prosjekt-project")["created"] == 50
    assert project_name(hs, prosjekt) == "Prosjekt Endeløs"
    assert_no_duplicates(hs.sb)
    assert_in_sync(hs.sb, all_links(hs))


def test_creates_planned_before_the_cap_trips_are_bounded_and_never_duplicated(hs: Harness) -> None:
    unthrottled(hs)
    assert hs.apply().exit_code == 0
    hs.set_connection("tidsbanken", page_size=170, max_pages=3)
    hs.sb.tidsbanken.endless_paging = {"Prosjekt"}
    run = hs.apply()
    assert run.exit_code == 1
    assert f"listing Prosjekt stopped after 3 pages (max_pages); {ENDLESS}" in run.output
    # The planner plans from blocks of 500 listed records (fewer distinct ones: pages overlap): the first
    # block's creates went out before the cap tripped; more than max_pages x page_size (510) never can.
    created = len(hs.sb.custompms.records("projects")) - 30
    assert 0 < created <= 500

    hs.sb.tidsbanken.endless_paging = set()
    hs.set_connection("tidsbanken", max_pages=100)
    run = hs.apply()
    assert run.exit_code == 0, run.output
    # every record listed gets its partner once: the creates of the stopped run are found again by
    # their idempotency keys, not made twice
    assert len(hs.sb.custompms.records("projects")) == len(hs.sb.tidsbanken.records("Prosjekt")) == 30 + 3 * 170
    assert_no_duplicates(hs.sb)
    assert_in_sync(hs.sb, all_links(hs))


def test_custompms_fresh_cursor_every_time_stops_the_dataflow_at_max_pages(hs: Harness) -> None:
    unthrottled(hs)
    assert hs.apply().exit_code == 0
    avdeling, kunde, prosjekt = edit_one_of_each(hs)
    before_cursors, before_links = cursors(hs, "prosjekt-project"), hs.links("prosjekt-project")
    hs.set_connection("custompms", page_size=5, max_pages=8)
    hs.sb.custompms.endless_paging = {"projects"}
    hs.sb.custompms.reset_counts()

    assert_only_projects_stopped(
        hs, f"custompms: GET /api/v1/projects: listing Project stopped after 8 pages (max_pages); {ENDLESS}")
    assert customer_name(hs, "kunde-customer", kunde) == "Kunde Endeløs AS"
    assert cursors(hs, "prosjekt-project") == before_cursors
    assert hs.links("prosjekt-project") == before_links
    assert hs.sb.custompms.requests[("GET", "/api/v1/projects")] == 8
    assert not [key for key in hs.sb.custompms.requests if key[1].startswith("/api/v1/projects/")]

    hs.sb.custompms.endless_paging = set()
    run = hs.apply()
    assert run.exit_code == 0, run.output
    assert project_name(hs, prosjekt) == "Prosjekt Endeløs"
    assert customer_name(hs, "avdeling-customer", avdeling) == "Avdeling Endeløs"
    assert_no_duplicates(hs.sb)
    assert_in_sync(hs.sb, all_links(hs))
