"""Defaults and lookups end to end: the emulators, SQLite state, several runs; a default written to the
target is never copied back, and a translated value never ping-pongs."""

from __future__ import annotations

from typing import Any

import pytest
from sync_harness import Harness

FLOW = "avdeling-customer"
ROWS = {
    "  - {source: Adresse,          target: postal_address.line1,       type: string}":
    "  - {source: Adresse,          target: postal_address.line1,       type: string, default: Ukjent adresse}",
    "  - {source: Poststed,         target: postal_address.city,        type: string}":
    "  - {source: Poststed,         target: postal_address.city,        type: string, lookup: towns,"
    " lookup_unknown: keep}",
}
LOOKUPS = 'lookups:\n  towns: {"Oslo": "OSLO", "Bergen": "BERGEN"}\nproperties:\n'


@pytest.fixture
def h(hs: Harness) -> Harness:
    """The seeded sandbox with the department mapping given a default and a lookup, and one department with
    no address in Oslo."""
    path = hs.ws / "mappings" / f"{FLOW}.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in ROWS.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text.replace("properties:\n", LOOKUPS, 1), encoding="utf-8")
    hs.sb.tidsbanken.edit("Avdeling", first_department(hs), Adresse="", Poststed="Oslo")
    return hs


def first_department(h: Harness) -> str:
    return str(sorted(r["Id"] for r in h.sb.tidsbanken.records("Avdeling"))[0])


def customer(h: Harness, avdeling_id: str) -> dict[str, Any]:
    record = h.sb.custompms.get("customers", h.links(FLOW)[avdeling_id])
    assert record is not None
    return record


def apply(h: Harness) -> dict[str, Any]:
    run = h.apply("--dataflow", FLOW)
    assert run.exit_code == 0, run.output
    return run.counts(FLOW)


def quiet_runs(h: Harness, runs: int = 2) -> None:
    """The next runs write nothing and find every pair unchanged."""
    for _ in range(runs):
        before = h.writes()
        counts = apply(h)
        assert h.writes() == before
        assert counts["created"] == counts["updated"] == counts["failed"] == 0


def test_a_default_reaches_the_target_and_never_comes_back(h: Harness) -> None:
    avdeling = first_department(h)
    counts = apply(h)
    assert counts["created"] == len(h.sb.tidsbanken.records("Avdeling"))
    made = customer(h, avdeling)
    assert made["postal_address"]["line1"] == "Ukjent adresse" and made["postal_address"]["city"] == "OSLO"
    assert h.sb.tidsbanken.get("Avdeling", avdeling)["Adresse"] == ""  # type: ignore[index]
    quiet_runs(h)

    h.sb.tidsbanken.edit("Avdeling", avdeling, Adresse="Storgata 5")
    apply(h)
    assert customer(h, avdeling)["postal_address"]["line1"] == "Storgata 5"
    h.sb.tidsbanken.edit("Avdeling", avdeling, Adresse="")
    apply(h)
    assert customer(h, avdeling)["postal_address"]["line1"] == "Ukjent adresse"
    assert h.sb.tidsbanken.get("Avdeling", avdeling)["Adresse"] == ""  # type: ignore[index]
    quiet_runs(h)


def test_a_target_emptied_by_hand_settles_without_ping_pong(h: Harness) -> None:
    avdeling = first_department(h)
    apply(h)
    made = customer(h, avdeling)
    h.sb.custompms.edit("customers", made["id"], postal_address={**made["postal_address"], "line1": None})
    apply(h)
    assert h.sb.tidsbanken.get("Avdeling", avdeling)["Adresse"] == ""  # type: ignore[index]
    quiet_runs(h)


def test_a_lookup_translates_both_ways_and_settles(h: Harness) -> None:
    avdeling = first_department(h)
    apply(h)
    made = customer(h, avdeling)
    h.sb.custompms.edit("customers", made["id"], postal_address={**made["postal_address"], "city": "BERGEN"})
    apply(h)
    assert h.sb.tidsbanken.get("Avdeling", avdeling)["Poststed"] == "Bergen"  # type: ignore[index]
    quiet_runs(h)


def test_an_unknown_value_fails_its_record_and_the_run_goes_on(h: Harness) -> None:
    path = h.ws / "mappings" / f"{FLOW}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(", lookup_unknown: keep", ""), encoding="utf-8")
    towns = {r["Id"]: r["Poststed"] for r in h.sb.tidsbanken.records("Avdeling")}
    unknown = sorted(i for i, town in towns.items() if town not in {"Oslo", "Bergen"})
    assert unknown and len(unknown) < len(towns)  # the seed has both kinds
    run = h.apply("--dataflow", FLOW)
    assert run.exit_code == 1
    counts = run.counts(FLOW)
    assert counts["failed"] == len(unknown) and counts["created"] == len(towns) - len(unknown)
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "lookup: towns" in text)
    assert f"Avdeling {unknown[0]}: cannot map it: Poststed: {towns[unknown[0]]!r} is not a key of lookup table " \
           f"'towns' (row at " in run.output
    assert f"mappings/{FLOW}.yaml:{line}, lookup_unknown: fail)" in run.output
    again = h.apply("--dataflow", FLOW)  # the failed ones fail again, the created ones rest
    assert again.exit_code == 1 and again.counts(FLOW)["created"] == again.counts(FLOW)["updated"] == 0
