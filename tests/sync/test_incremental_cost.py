"""Incremental runs cost only what changed: records listed again unchanged (the overlap window after a bulk
load, mapsync's own writes read back) are neither projected nor merged, and cost no per-record lookup.

The data here is loaded in bulk (every Tidsbanken change time within one minute, as after an import), so
every run's overlap window lists every record again. The counts asserted are records projected (the
mapper's project_source) and link lookups by source id, not times."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sync_harness import SEED, Harness

from mapsync.mapping.mapper import Mapper
from mapsync.sandbox.seed import generate
from mapsync.state._sql import SqlStore

BULK_END = datetime(2025, 1, 1, tzinfo=UTC)


def bulk_stamp(moment: datetime, like: str) -> str:
    """`moment` written as Tidsbanken writes `like` (UTC with Z, or Oslo time with an offset)."""
    if like.endswith("Z"):
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.astimezone(datetime.fromisoformat(like).tzinfo).isoformat(timespec="milliseconds")


class ServerClock:
    """Tidsbanken's clock (its write stamps and its `Date` header), moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> ServerClock:
    return ServerClock(BULK_END + timedelta(seconds=5))  # the import has just ended


@pytest.fixture
def hb(make_harness: Callable[..., Harness], sqlite_url: str, clock: ServerClock) -> Harness:
    return bulk_loaded(make_harness(sqlite_url, seed=None), clock)


def bulk_loaded(h: Harness, clock: ServerClock) -> Harness:
    """The reference seed, loaded into Tidsbanken in bulk: every change time within the minute before
    2025-01-01, and the server's clock five seconds after it."""
    h.sb.tidsbanken.clock = clock
    data = generate(SEED, 1)
    rng = random.Random(3)
    for entity, records in (("Avdeling", data.avdelinger), ("Kunde", data.kunder), ("Prosjekt", data.prosjekter)):
        for record in records:
            moment = BULK_END - timedelta(milliseconds=rng.randrange(60_000))
            record["SistEndretDato"] = bulk_stamp(moment, record["SistEndretDato"])
        h.sb.tidsbanken.load(entity, records)
    return h


class Costs:
    """What the runs since the last reset() projected and looked up."""

    def __init__(self) -> None:
        self.projected: Counter[str] = Counter()  # source record id -> times projected
        self.source_lookups = 0  # get_links calls by source id
        self.target_lookups = 0  # get_links calls by target id

    def reset(self) -> None:
        self.projected.clear()
        self.source_lookups = 0
        self.target_lookups = 0


@pytest.fixture
def costs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Costs]:
    found = Costs()
    project = Mapper.project_source
    get_links = SqlStore.get_links

    def counting_project(self: Mapper, record: Any, *args: Any, **kwargs: Any) -> Any:
        found.projected[str(record.get("Id"))] += 1
        return project(self, record, *args, **kwargs)

    def counting_get_links(self: SqlStore, dataflow: str, **kwargs: Any) -> Any:
        if list(kwargs.get("source_ids", ())):
            found.source_lookups += 1
        if list(kwargs.get("target_ids", ())):
            found.target_lookups += 1
        return get_links(self, dataflow, **kwargs)

    monkeypatch.setattr(Mapper, "project_source", counting_project)
    monkeypatch.setattr(SqlStore, "get_links", counting_get_links)
    yield found


RECORDS = SEED.avdelinger + SEED.kunder + SEED.prosjekter


def test_a_rerun_after_a_bulk_load_plans_nothing_again(hb: Harness, costs: Costs) -> None:
    first = hb.apply()
    assert first.exit_code == 0, first.output
    assert first.counts()["created"] == RECORDS
    for _ in range(2):  # the run right after the initial sync, and the one after it
        costs.reset()
        writes = hb.writes()
        run = hb.apply()
        assert run.exit_code == 0, run.output
        assert hb.writes() == writes
        assert sum(costs.projected.values()) == 0
        assert costs.source_lookups == 0  # every listed record was passed over before any lookup
        assert costs.target_lookups == 0  # mapsync's own writes, read back: known by their markers alone
        assert run.counts()["unchanged"] == 0


def test_a_record_changed_in_the_window_is_planned_and_only_it(hb: Harness, costs: Costs) -> None:
    assert hb.apply().exit_code == 0
    hb.sb.tidsbanken.edit("Kunde", "K10003", Navn="Endret Navn AS")
    costs.reset()
    run = hb.apply()
    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["updated"] == 1
    assert set(costs.projected) <= {"K10003"}  # (a reference prefetch may read it, nothing else is projected)
    assert hb.sb.custompms.get("customers", hb.links("kunde-customer")["K10003"])["name"] == "Endret Navn AS"


def test_a_record_committed_late_with_an_earlier_timestamp_is_not_lost(hb: Harness, costs: Costs) -> None:
    assert hb.apply().exit_code == 0
    late = dict(hb.sb.tidsbanken.get("Kunde", "K10001") or {})
    late.update(Id="K19999", Navn="Sent Lagret AS", Organisasjonsnummer="")
    late["SistEndretDato"] = bulk_stamp(BULK_END - timedelta(seconds=30), late["SistEndretDato"])
    hb.sb.tidsbanken.load("Kunde", [late])  # inside the window, before the cursor
    costs.reset()
    run = hb.apply()
    assert run.exit_code == 0, run.output
    assert run.counts("kunde-customer")["created"] == 1
    assert "K19999" in hb.links("kunde-customer")
    assert set(costs.projected) == {"K19999"}


def test_an_echo_of_mapsyncs_own_write_is_recognised_by_its_marker(hb: Harness, costs: Costs) -> None:
    assert hb.apply().exit_code == 0
    target_id = hb.links("kunde-customer")["K10002"]
    hb.sb.custompms.edit("customers", target_id, website="https://ekko.example")
    written = hb.apply()
    assert written.counts("kunde-customer")["updated"] == 1  # Url written back to Tidsbanken
    assert hb.sb.tidsbanken.get("Kunde", "K10002")["Url"] == "https://ekko.example"
    costs.reset()
    echo = hb.apply()  # the Kunde is listed again with the change time of mapsync's own write
    assert echo.exit_code == 0, echo.output
    assert echo.counts("kunde-customer")["unchanged"] >= 1
    assert echo.counts()["updated"] == 0
    assert sum(costs.projected.values()) == 0


def test_a_waiting_conflict_is_planned_in_full_when_listed_again(hb: Harness, costs: Costs) -> None:
    hb.set_mapping("kunde-customer", conflicts="manual")
    assert hb.apply().exit_code == 0
    target_id = hb.links("kunde-customer")["K10004"]
    hb.sb.tidsbanken.edit("Kunde", "K10004", Epost="a@tb.example")
    hb.sb.custompms.edit("customers", target_id, email="b@pms.example")
    assert hb.apply().report is not None
    assert [c.source_id for c in hb.store().iter_conflicts("kunde-customer")] == ["K10004"]
    costs.reset()
    run = hb.apply()  # nothing changed, but the pair waits: its record is not passed over
    assert costs.projected["K10004"] >= 1
    assert run.report is not None and run.report["dataflows"]["kunde-customer"]["conflicts_waiting"] == 1


def test_an_edited_mapping_plans_the_records_listed_again_once(hb: Harness, costs: Costs) -> None:
    assert hb.apply().exit_code == 0
    hb.set_mapping("avdeling-customer", conflicts="target-wins")
    costs.reset()
    run = hb.apply()
    assert run.exit_code == 0, run.output
    assert run.counts("avdeling-customer")["unchanged"] == SEED.avdelinger  # judged again under the new mapping
    assert sum(costs.projected.values()) == SEED.avdelinger
    costs.reset()
    assert hb.apply().exit_code == 0
    assert sum(costs.projected.values()) == 0


def test_a_settled_record_follows_its_reference_to_a_new_partner(hb: Harness, costs: Costs) -> None:
    """--full lists every record again; those whose link holds their marker are counted unchanged without
    being projected, but not a Prosjekt whose Kunde now links to another Customer."""
    assert hb.apply().exit_code == 0
    projects = {p["Id"]: p for p in hb.sb.tidsbanken.records("Prosjekt")}
    kunde = next(p["KundeId"] for p in projects.values() if p.get("KundeId"))
    new_customer = hb.sb.custompms.create("customers", {"name": "Ny Kunde AS", "kind": "customer"})
    assert hb.cli("links", "unlink", "kunde-customer", kunde).exit_code == 0
    assert hb.cli("links", "relink", "kunde-customer", kunde, new_customer["id"]).exit_code == 0
    costs.reset()
    run = hb.apply("--full")
    assert run.exit_code == 0, run.output
    referencing = {pid for pid, p in projects.items() if p.get("KundeId") == kunde}
    assert referencing and set(costs.projected) - {kunde} == referencing
    for pid in referencing:
        project = hb.sb.custompms.get("projects", hb.links("prosjekt-project")[pid])
        assert project is not None and project["customer_id"] == new_customer["id"]


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Records the connectors' listings returned, by entity."""
    from mapsync.connectors.declarative.reading import Reader

    found: Counter[str] = Counter()
    change = Reader._change

    def counting_change(self: Reader, entity: Any, record: Any) -> Any:
        found[entity.info.name] += 1
        return change(self, entity, record)

    monkeypatch.setattr(Reader, "_change", counting_change)
    return found


def test_once_the_window_has_passed_a_rerun_lists_only_what_changed(hb: Harness, clock: ServerClock,
                                                                      listed: Counter[str]) -> None:
    """The first run answered two minutes after the import: what changed before one window ahead of that
    answer was all there, so the next run lists from the last record on, not from a window before it."""
    clock.now = BULK_END + timedelta(minutes=2)
    assert hb.apply().exit_code == 0
    hb.sb.tidsbanken.edit("Kunde", "K10003", Navn="Endret Navn AS")
    listed.clear()
    writes = hb.writes()
    run = hb.apply()
    assert run.exit_code == 0, run.output
    assert hb.writes() == writes + 1
    assert listed["Kunde"] <= 2  # the edited Kunde, and the one listed last at the cursor's own instant
    assert listed["Prosjekt"] <= 1 and listed["Avdeling"] <= 1


def test_a_late_commit_inside_the_window_before_the_answer_is_not_lost(hb: Harness, clock: ServerClock,
                                                                         costs: Costs) -> None:
    """A record stamped 40 s before it became visible, and after the window that reached back from the
    first run's answer: the next run's listing starts early enough to find it."""
    clock.now = BULK_END + timedelta(minutes=2)
    assert hb.apply().exit_code == 0
    late = dict(hb.sb.tidsbanken.get("Kunde", "K10001") or {})
    late.update(Id="K19998", Navn="Sent Lagret Igjen AS", Organisasjonsnummer="")
    clock.now = BULK_END + timedelta(minutes=2, seconds=10)
    late["SistEndretDato"] = bulk_stamp(clock.now - timedelta(seconds=40), late["SistEndretDato"])
    hb.sb.tidsbanken.load("Kunde", [late])
    costs.reset()
    run = hb.apply()
    assert run.exit_code == 0, run.output
    assert "K19998" in hb.links("kunde-customer")
    assert set(costs.projected) == {"K19998"}


def test_without_a_date_header_the_whole_window_is_listed_again(hb: Harness, clock: ServerClock,
                                                                  listed: Counter[str], costs: Costs,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that sends no `Date`: no clock to trust, so the cursor stays at the last record listed and
    the next run reaches back the whole window (and still plans none of it again)."""
    from mapsync.connectors.declarative import reading

    monkeypatch.setattr(reading, "server_time", lambda response: None)
    clock.now = BULK_END + timedelta(minutes=2)
    assert hb.apply().exit_code == 0
    listed.clear()
    costs.reset()
    assert hb.apply().exit_code == 0
    assert listed["Kunde"] == SEED.kunder
    assert sum(costs.projected.values()) == 0


def test_over_sockets_the_servers_date_header_moves_the_resume_point(
        make_harness: Callable[..., Harness], sqlite_url: str, clock: ServerClock, listed: Counter[str]) -> None:
    """The same rule through a real HTTP server, whose `Date` header comes from the clock it stamps with."""
    h = bulk_loaded(make_harness(sqlite_url, seed=None, socket=True), clock)
    clock.now = BULK_END + timedelta(minutes=2)
    assert h.apply().exit_code == 0
    listed.clear()
    assert h.apply().exit_code == 0
    assert listed["Kunde"] <= 1 and listed["Prosjekt"] <= 1  # at most the record at the cursor's own instant
