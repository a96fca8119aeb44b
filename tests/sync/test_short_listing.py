"""A short listing (a flaky proxy, a server's paging bug) never makes duplicates, and the delete guard holds
over several runs: records that come back get their old partner back, and removals add up against the
links of the last confirmed full scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from e2e_expect import assert_in_sync, assert_no_duplicates
from sync_harness import Harness, all_links

from mapsync.state.base import GuardBaseline, RetiredLink

FLOW = "prosjekt-project"


def prosjekt_ids(h: Harness) -> list[str]:
    return [str(p["Id"]) for p in h.sb.tidsbanken.records("Prosjekt")]


def nine_percent(h: Harness) -> int:
    """9% of the Prosjekter: under the mapping's 10% guard (30 links allow 3)."""
    return int(len(prosjekt_ids(h)) * 0.09)


def retired(h: Harness, dataflow: str = FLOW) -> dict[str, str]:
    return {entry.source_id: entry.target_id for entry in h.store().iter_retired(dataflow)}


def test_a_prosjekt_missing_from_one_listing_gets_its_project_back(h: Harness) -> None:
    assert h.apply().exit_code == 0
    links_before = h.links(FLOW)
    projects_before = len(h.sb.custompms.records("projects"))
    hidden = prosjekt_ids(h)[:nine_percent(h)]
    assert len(hidden) == 2
    h.sb.tidsbanken.hidden.update(hidden)
    # edits made while the records are missing from listings, one on each side
    h.sb.tidsbanken.edit("Prosjekt", hidden[0], Navn="Omdøpt mens borte")
    h.sb.custompms.edit("projects", links_before[hidden[1]], manager_employee_id=4242)

    short = h.apply("--full")
    assert short.exit_code == 0, short.output
    assert short.counts(FLOW)["unlinked"] == 2
    assert retired(h) == {i: links_before[i] for i in hidden}

    h.sb.tidsbanken.hidden.clear()
    plan = h.plan("--full")
    relinks = [line.strip() for line in plan.stdout.splitlines() if "= relink" in line]
    assert sorted(relinks) == sorted(
        f'= relink Prosjekt {i} <-> Project {links_before[i]} "{h.sb.tidsbanken.get("Prosjekt", i)["Navn"]}" '  # type: ignore[index]
        "(came back)" for i in hidden)
    assert "0 to create" in plan.stdout and "2 to link" in plan.stdout

    back = h.apply("--full")
    assert back.exit_code == 0, back.output
    assert (back.counts(FLOW)["linked"], back.counts(FLOW)["created"]) == (2, 0)
    assert h.links(FLOW) == links_before
    assert len(h.sb.custompms.records("projects")) == projects_before
    assert retired(h) == {}
    project = h.sb.custompms.get("projects", links_before[hidden[0]])
    assert project is not None and project["name"] == "Omdøpt mens borte"
    prosjekt = h.sb.tidsbanken.get("Prosjekt", hidden[1])
    assert prosjekt is not None and prosjekt["AnsvarligId"] == 4242
    assert_no_duplicates(h.sb)
    assert_in_sync(h.sb, all_links(h))
    settled = h.writes()
    assert h.apply("--full").exit_code == 0
    assert h.writes() == settled


def test_the_guard_adds_up_short_listings_over_full_runs(h: Harness) -> None:
    assert h.apply().exit_code == 0
    links_before = h.links(FLOW)
    ids, step = prosjekt_ids(h), nine_percent(h)
    tripped_at = []
    for run_number in range(1, 7):
        h.sb.tidsbanken.hidden.update(ids[(run_number - 1) * step:run_number * step])
        plan = h.plan("--full")
        run = h.apply("--full")
        refused = [e for e in run.counts(FLOW)["errors"] if "refusing to delete or unlink" in e]
        assert ("x refused: mass delete" in plan.stdout) == bool(refused), plan.stdout
        if refused:
            tripped_at.append(run_number)
            assert run.exit_code == 1
            assert run.counts(FLOW)["unlinked"] == 0
            assert "removed since the last confirmed full scan" in refused[0]
            assert "--max-delete-share" in refused[0]
    # 30 links allow 3: run 1 unlinks 2, run 2 would make it 4.
    assert tripped_at == [2, 3, 4, 5, 6]
    assert len(h.links(FLOW)) == len(links_before) - step

    # The deletions are real: the operator reviews them with the override, lets them through once, and
    # that becomes the new baseline.
    reviewed = h.plan("--full", "--max-delete-share", "0.5")
    assert reviewed.exit_code == 0, reviewed.output
    assert "x refused: mass delete" not in reviewed.stdout
    assert f"{5 * step} to unlink" in reviewed.stdout
    allowed = h.apply("--full", "--max-delete-share", "0.5")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.counts(FLOW)["unlinked"] == 5 * step
    baseline = h.store().get_guard_baseline(FLOW)
    assert baseline is not None and baseline.links == len(links_before) - 6 * step
    # They were missing only from listings after all: every one comes back to its own Project.
    h.sb.tidsbanken.hidden.clear()
    back = h.apply("--full")
    assert back.exit_code == 0, back.output
    assert (back.counts(FLOW)["linked"], back.counts(FLOW)["created"]) == (6 * step, 0)
    assert h.links(FLOW) == links_before
    assert_no_duplicates(h.sb)


def test_a_full_scan_with_nothing_new_gone_confirms_the_baseline(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    ids, step = prosjekt_ids(h), nine_percent(h)
    h.sb.tidsbanken.hidden.update(ids[:step])
    assert h.apply("--full").counts(FLOW)["unlinked"] == step
    assert h.apply("--full").exit_code == 0  # still missing, but nothing new: confirmed at 28 links
    baseline = h.store().get_guard_baseline(FLOW)
    assert baseline is not None and baseline.links == len(ids) - step
    h.sb.tidsbanken.hidden.update(ids[step:2 * step])
    second = h.apply("--full")
    assert second.exit_code == 0, second.output  # 2 of 28 since the confirmation, not 4 of 30
    assert second.counts(FLOW)["unlinked"] == step


def test_a_prosjekt_whose_project_is_gone_too_is_created_again(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    prosjekt_id = prosjekt_ids(h)[0]
    project_id = h.links(FLOW)[prosjekt_id]
    h.sb.tidsbanken.hidden.add(prosjekt_id)
    assert h.apply("--full").counts(FLOW)["unlinked"] == 1
    h.sb.custompms.delete("projects", project_id)
    h.sb.tidsbanken.hidden.clear()

    run = h.apply("--full")
    assert run.exit_code == 0, run.output
    assert (run.counts(FLOW)["created"], run.counts(FLOW)["linked"]) == (1, 0)
    assert h.links(FLOW)[prosjekt_id] != project_id
    assert retired(h) == {}
    assert_no_duplicates(h.sb)


def test_a_full_scan_forgets_a_retired_link_whose_partner_is_gone(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    prosjekt_id = prosjekt_ids(h)[0]
    project_id = h.links(FLOW)[prosjekt_id]
    h.sb.tidsbanken.hidden.add(prosjekt_id)
    assert h.apply("--full").counts(FLOW)["unlinked"] == 1
    assert retired(h) == {prosjekt_id: project_id}
    h.sb.custompms.delete("projects", project_id)
    assert h.apply().exit_code == 0
    assert retired(h) == {prosjekt_id: project_id}  # an incremental run confirms nothing
    assert h.apply("--full").exit_code == 0
    assert retired(h) == {}


def test_a_relink_by_hand_clears_retired_links_naming_either_record(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    assert h.apply().exit_code == 0
    first, other = prosjekt_ids(h)[:2]
    links = h.links(FLOW)
    h.sb.tidsbanken.hidden.add(first)
    assert h.apply("--full").counts(FLOW)["unlinked"] == 1
    assert h.cli("links", "unlink", FLOW, other).exit_code == 0
    relinked = h.cli("links", "relink", FLOW, other, links[first])
    assert relinked.exit_code == 0, relinked.output
    assert retired(h) == {}

    h.sb.tidsbanken.hidden.clear()
    run = h.apply("--full")
    assert run.exit_code == 0, run.output
    assert h.links(FLOW)[other] == links[first]
    assert h.links(FLOW)[first] not in {links[first], links[other]}  # created anew, never the taken one


def test_a_dataflow_that_creates_back_relinks_instead_of_creating_a_duplicate(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    h.set_mapping("kunde-customer", create="both")
    assert h.apply().exit_code == 0
    flow = "kunde-customer"
    kunder_before = len(h.sb.tidsbanken.records("Kunde"))
    kunde_id = str(h.sb.tidsbanken.records("Kunde")[0]["Id"])
    customer_id = h.links(flow)[kunde_id]
    h.sb.tidsbanken.hidden.add(kunde_id)
    assert h.apply("--full", "--dataflow", flow).counts(flow)["unlinked"] == 1
    h.sb.custompms.edit("customers", customer_id, phone="+47 22 22 22 22")

    # Still missing from listings; its Customer changed, so it is listed unlinked: relinked, not created back.
    run = h.apply("--dataflow", flow)
    assert run.exit_code == 0, run.output
    assert (run.counts(flow)["linked"], run.counts(flow)["created"]) == (1, 0)
    assert h.links(flow)[kunde_id] == customer_id
    assert len(h.sb.tidsbanken.records("Kunde")) == kunder_before
    kunde = h.sb.tidsbanken.get("Kunde", kunde_id)
    assert kunde is not None and kunde["Telefon"] == "+47 22 22 22 22"


def test_retired_links_older_than_the_retention_and_the_baseline_are_dropped(h: Harness) -> None:
    assert h.apply().exit_code == 0
    prosjekt_id = prosjekt_ids(h)[0]
    store = h.store()
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    store.retire_link(RetiredLink(FLOW, "P-OLD", "p-old", retired_at=old))
    store.retire_link(RetiredLink(FLOW, "P-RECENT", "p-recent"))
    h.sb.tidsbanken.hidden.add(prosjekt_id)
    assert h.apply("--full").counts(FLOW)["unlinked"] == 1
    assert set(retired(h)) == {"P-RECENT", prosjekt_id}
    # An old entry the guard still counts (retired after its baseline) is kept.
    store.set_guard_baseline(GuardBaseline(FLOW, 30, (datetime.now(UTC) - timedelta(days=40)).isoformat()))
    store.retire_link(RetiredLink(FLOW, "P-OLD", "p-old", retired_at=old))
    assert h.apply().exit_code == 0
    assert "P-OLD" in retired(h)


def test_max_delete_share_must_be_a_share(hs: Harness) -> None:
    h = hs  # SQLite only: the subject is not the store
    run = h.cli("apply", "--max-delete-share", "1.5")
    assert run.exit_code == 2
    assert "--max-delete-share" in run.output and "Traceback" not in run.output
