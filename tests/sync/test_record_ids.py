"""Issue 9, end to end: record ids are data, never paths. An id that cannot be one URL path segment fails
its record with a clear reason, sends no request to a collection, and every other record still syncs."""

from __future__ import annotations

import json

from sync_harness import WRITE_METHODS, Harness

ODD_IDS = ("..", ".")


def test_avdeling_ids_that_are_no_path_segment_fail_alone(hs: Harness) -> None:
    hs.set_connection("tidsbanken", rate_limit=1000)
    hs.set_connection("custompms", rate_limit=1000)
    for odd in ODD_IDS:
        hs.sb.tidsbanken.put("Avdeling", {"Id": odd, "Navn": f"Avdeling {odd!r}", "Postnr": "0150"})
    assert hs.apply().exit_code == 0  # creating their Customers puts no Tidsbanken id in a path
    links = hs.links("avdeling-customer")
    plain = next(a["Id"] for a in hs.sb.tidsbanken.records("Avdeling") if a["Id"] not in ODD_IDS)
    kunde = hs.sb.tidsbanken.records("Kunde")[0]["Id"]
    # Edited in Custompms: the edits flow back as PATCH /ansatt/Avdeling/{Id}
    for source_id in (*ODD_IDS, plain):
        hs.sb.custompms.edit("customers", links[source_id], name=f"Ny avdeling {source_id}")
    hs.sb.custompms.edit("customers", hs.links("kunde-customer")[kunde], phone="+47 22 22 22 22")
    hs.sb.tidsbanken.reset_counts()

    run = hs.apply()
    assert run.exit_code == 1
    assert run.counts("avdeling-customer")["failed"] == 2
    assert run.counts("avdeling-customer")["updated"] == 1
    assert run.counts("kunde-customer")["updated"] == 1
    for odd in ODD_IDS:
        assert (f"avdeling-customer: Avdeling {odd}: tidsbanken: PATCH /ansatt/Avdeling: "
                f"Avdeling id {odd!r} cannot be used in a URL path") in run.output
        assert hs.sb.tidsbanken.get("Avdeling", odd)["Navn"] == f"Avdeling {odd!r}"
    assert hs.sb.tidsbanken.get("Avdeling", plain)["Navn"] == f"Ny avdeling {plain}"
    assert hs.sb.tidsbanken.get("Kunde", kunde)["Telefon"] == "+47 22 22 22 22"
    # the only writes: the plain Avdeling's PATCH and the Kunde's PUT, none to a collection's URL
    writes = {key: n for key, n in hs.sb.tidsbanken.requests.items() if key[0] in WRITE_METHODS}
    assert writes == {("PATCH", f"/ansatt/Avdeling/{plain}"): 1, ("PUT", "/prosjekt/Kunde"): 1}

    failed = hs.cli("links", "failed", "--dataflow", "avdeling-customer", "--json")
    assert failed.exit_code == 0
    listed = {row["record_id"]: row["reason"] for row in json.loads(failed.stdout)}
    for odd in ODD_IDS:
        assert f"Avdeling id {odd!r} cannot be used in a URL path" in listed[odd]
    ledger = {letter.record_id: letter.reason for letter in hs.store().iter_dead_letters("avdeling-customer")}
    assert ledger == {odd: f"tidsbanken: PATCH /ansatt/Avdeling: Avdeling id {odd!r} cannot be used in a URL path"
                      for odd in ODD_IDS}
    # nothing duplicated: one Customer per Avdeling and Kunde
    assert len(hs.sb.custompms.records("customers")) == len(hs.sb.tidsbanken.records("Avdeling")) \
        + len(hs.sb.tidsbanken.records("Kunde"))
