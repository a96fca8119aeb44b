"""Links: what each side held at the last sync, by source id and by target id."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mapsync.errors import StateError
from mapsync.state import Link, StateStore


def make_link(n: int, dataflow: str = "kunde", **changes: object) -> Link:
    link = Link(dataflow, f"S{n:05}", f"T{n:05}", {"name": f"Kunde {n}", "orgnr": None},
                {"name": f"Kunde {n}", "tags": ["a", "ø"]}, source_version=f"v{n}", target_version="1")
    for key, value in changes.items():
        setattr(link, key, value)
    return link


def put_many(store: StateStore, count: int, dataflow: str = "kunde") -> list[Link]:
    links = [make_link(n, dataflow) for n in range(count)]
    with store.transaction():
        for link in links:
            store.put_link(link)
    return links


def test_a_link_reads_back_by_either_id_with_its_values(store: StateStore) -> None:
    link = make_link(1, source_values={"nested": {"list": [1, 2.5, "x", None, True]}, "é": "ü"})
    store.put_link(link)

    by_source = store.link_by_source("kunde", "S00001")
    assert by_source is not None
    assert by_source.updated_at  # stamped by the store
    by_source.updated_at = ""
    assert by_source == link
    assert store.link_by_target("kunde", "T00001") == store.link_by_source("kunde", "S00001")
    assert store.link_by_source("kunde", "nope") is None
    assert store.link_by_source("avdeling", "S00001") is None


def test_put_link_replaces_the_link_of_the_same_source(store: StateStore) -> None:
    store.put_link(make_link(1))
    store.put_link(make_link(1, target_id="T-new", target_values={"name": "renamed"}, state="conflict"))

    link = store.link_by_source("kunde", "S00001")
    assert link is not None
    assert (link.target_id, link.target_values, link.state) == ("T-new", {"name": "renamed"}, "conflict")
    assert store.link_by_target("kunde", "T00001") is None
    assert store.count_links("kunde") == 1


def test_delete_link_removes_only_that_link(store: StateStore) -> None:
    put_many(store, 3)
    store.delete_link("kunde", "S00001")
    store.delete_link("kunde", "never-linked")  # not an error

    assert [link.source_id for link in store.iter_links("kunde")] == ["S00000", "S00002"]


def test_a_target_is_linked_to_one_source_per_dataflow(store: StateStore) -> None:
    store.put_link(make_link(1))

    with pytest.raises(StateError, match="target 'T00001' is already linked"):
        store.put_link(make_link(2, target_id="T00001"))

    store.put_link(make_link(2, dataflow="avdeling", target_id="T00001"))  # another dataflow: fine
    store.put_link(make_link(3))  # and the store goes on working after the refusal
    assert store.count_links("kunde") == 2


def test_get_links_fetches_large_batches_by_either_id(store: StateStore) -> None:
    put_many(store, 1234)
    wanted = [f"S{n:05}" for n in range(0, 1234, 2)] + ["unknown", "S00000"]  # 617 known, > one chunk

    by_source = store.get_links("kunde", source_ids=wanted)
    assert [link.source_id for link in by_source] == sorted({f"S{n:05}" for n in range(0, 1234, 2)})

    by_target = store.get_links("kunde", target_ids=(f"T{n:05}" for n in range(600, 1234)))
    assert len(by_target) == 634

    both = store.get_links("kunde", source_ids=["S00001", "S00002"], target_ids=["T00002", "T00003"])
    assert [link.source_id for link in both] == ["S00001", "S00002", "S00003"]
    assert store.get_links("kunde") == []
    assert store.get_links("avdeling", source_ids=wanted) == []


def test_iter_links_filters_by_dataflow_and_state(store: StateStore) -> None:
    put_many(store, 3, "kunde")
    put_many(store, 2, "avdeling")
    store.put_link(make_link(7, "avdeling", state="conflict"))

    def ids(dataflow: str | None = None, state: str | None = None) -> list[tuple[str, str]]:
        return [(link.dataflow, link.source_id) for link in store.iter_links(dataflow, state)]

    assert len(ids()) == 6
    assert ids("kunde") == [("kunde", "S00000"), ("kunde", "S00001"), ("kunde", "S00002")]
    assert ids(state="conflict") == [("avdeling", "S00007")]
    assert ids("avdeling", "ok") == [("avdeling", "S00000"), ("avdeling", "S00001")]
    assert ids("prosjekt") == []
    assert (store.count_links("kunde"), store.count_links("avdeling"), store.count_links("x")) == (3, 3, 0)


def test_iter_links_streams_past_a_page_while_the_caller_writes(store: StateStore) -> None:
    put_many(store, 1234)

    seen = []
    for link in store.iter_links("kunde"):
        seen.append(link.source_id)
        link.state = "checked"
        store.put_link(link)  # commits mid-iteration must not end or repeat the stream

    assert len(seen) == len(set(seen)) == 1234
    assert sum(1 for _ in store.iter_links("kunde", "checked")) == 1234


def test_a_second_store_sees_committed_links(store: StateStore,
                                             open_stores: Callable[[], StateStore]) -> None:
    store.put_link(make_link(1))
    assert open_stores().link_by_target("kunde", "T00001") is not None


def test_put_links_writes_a_batch_and_keeps_targets_unique(store: StateStore) -> None:
    links = [Link("kunde", f"S{i}", f"T{i}", {"name": f"n{i}"}, {"name": f"n{i}"}) for i in range(700)]
    store.put_links(links)
    store.put_links([])
    assert store.count_links("kunde") == 700
    found = store.link_by_target("kunde", "T699")
    assert found is not None and found.source_id == "S699" and found.source_values == {"name": "n699"}
    with pytest.raises(StateError, match="already"):
        store.put_links([Link("kunde", "S-new", "T5")])
    assert store.link_by_source("kunde", "S-new") is None


def test_linked_source_ids_and_target_markers_read_no_values(store: StateStore) -> None:
    links = [Link("d", f"S{n:04d}", f"T{n:04d}", {"name": f"n{n}"}, {"name": f"n{n}"}, f"s{n}",
                  f"2026-11-26T10:00:{n % 60:02d}.000Z", target_token=n) for n in range(1205)]
    store.put_links([*links, Link("other", "S0001", "X1", target_version="elsewhere")])
    assert list(store.iter_linked_source_ids("d")) == [link.source_id for link in links]  # past a page
    markers = store.target_markers("d", ["T0003", "T1204", "X1", "missing"])
    # The marker alone, without the concurrency token kept beside it; none for another dataflow's target.
    assert markers == {"T0003": "2026-11-26T10:00:03.000Z", "T1204": "2026-11-26T10:00:04.000Z"}
