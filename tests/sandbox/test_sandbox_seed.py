"""The seed data: sizes, determinism, realism, references, and speed."""

from __future__ import annotations

import re
import time
from datetime import date, datetime

import pytest

from mapsync.sandbox import Sandbox, SeedSize
from mapsync.sandbox.seed import TOWNS, generate, is_valid_org_number, mod11_check_digit, oslo_midnight

PHONE = re.compile(r"\+47 [\d ]{8,11}")


def test_counts_and_id_forms() -> None:
    data = generate(SeedSize(avdelinger=4, kunder=30, prosjekter=50), rng_seed=3)
    assert (len(data.avdelinger), len(data.kunder), len(data.prosjekter)) == (4, 30, 50)
    assert data.avdelinger[0]["Id"] == "A101"
    assert data.kunder[0]["Id"] == "K10001"
    assert data.prosjekter[0]["Id"] == "P20001"
    assert len({k["Id"] for k in data.kunder}) == 30


def test_same_rng_seed_same_data_and_other_seed_other_data() -> None:
    size = SeedSize(3, 20, 20)
    assert generate(size, 5) == generate(size, 5)
    assert generate(size, 5).kunder != generate(size, 6).kunder


def test_org_numbers_have_a_valid_mod11_check_digit_and_some_are_empty() -> None:
    kunder = generate(SeedSize(0, 500, 0), 1).kunder
    numbers = [k["Organisasjonsnummer"] for k in kunder]
    assert "" in numbers
    assert all(is_valid_org_number(n) for n in numbers if n)
    assert is_valid_org_number("923609016")  # a real one
    assert not is_valid_org_number("923609017")
    assert mod11_check_digit("92360901") == 6


def test_kunder_look_real() -> None:
    kunder = generate(SeedSize(0, 300, 0), 1).kunder
    pairs = set(TOWNS)
    for kunde in kunder:
        assert (kunde["Postnr"], kunde["Poststed"]) in pairs
        assert kunde["Navn"].split()[-1] in {"AS", "ASA", "ANS", "DA", "SA"}
        for phone in (kunde["Telefon"], kunde["Mobil"]):
            assert phone == "" or PHONE.fullmatch(phone)
        assert kunde["Epost"] == "" or re.fullmatch(r"[a-z]+@[a-z0-9]+\.no", kunde["Epost"])
        assert (kunde["LevPostNr"] == "") == (kunde["LevPoststed"] == "")
    assert {k["Aktiv"] for k in kunder} == {True, False}
    assert any(k["Url"] == "" for k in kunder) and any(k["Url"] for k in kunder)


def test_prosjekter_reference_existing_records_and_dates_have_the_right_offset() -> None:
    data = generate(SeedSize(5, 40, 300), 2)
    kunde_ids = {k["Id"] for k in data.kunder}
    avdeling_ids = {a["Id"] for a in data.avdelinger}
    assert any(p["KundeId"] is None for p in data.prosjekter)
    assert {p["Avsluttet"] for p in data.prosjekter} == {True, False}
    offsets = set()
    for prosjekt in data.prosjekter:
        assert prosjekt["KundeId"] is None or prosjekt["KundeId"] in kunde_ids
        assert prosjekt["AvdelingId"] is None or prosjekt["AvdelingId"] in avdeling_ids
        assert (prosjekt["AvsluttetDato"] is not None) == prosjekt["Avsluttet"]
        for name in ("StartDato", "FerdigDato", "AvsluttetDato", "BestillingsDato"):
            value = prosjekt[name]
            if value is None:
                continue
            moment = datetime.fromisoformat(value)
            assert value[10:19] == "T00:00:00"
            summer = moment.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
            offsets.add(value[-6:])
            # Norway's summer time runs from the last Sunday of March to the last Sunday of October
            assert summer == (date(moment.year, 4, 1) <= moment.date() <= date(moment.year, 10, 24)) or (
                moment.month in (3, 10)
            )
    assert offsets == {"+01:00", "+02:00"}


def test_oslo_midnight_offsets() -> None:
    assert oslo_midnight(date(2024, 3, 1)) == "2024-03-01T00:00:00+01:00"
    assert oslo_midnight(date(2024, 7, 1)) == "2024-07-01T00:00:00+02:00"
    assert oslo_midnight(date(2024, 3, 31)) == "2024-03-31T00:00:00+01:00"  # switches at 02:00 that day
    assert oslo_midnight(date(2024, 4, 1)) == "2024-04-01T00:00:00+02:00"


def test_seeded_stamps_are_in_both_forms(sandbox: Sandbox) -> None:
    avdeling = sandbox.tidsbanken.records("Avdeling")[0]
    kunde = sandbox.tidsbanken.records("Kunde")[0]
    assert avdeling["SistEndretDato"].endswith("Z")
    assert kunde["SistEndretDato"][-6:] in ("+01:00", "+02:00")
    assert len(sandbox.tidsbanken.records("Kunde")) == 10
    assert sandbox.custompms.records("customers") == []


def test_live_writes_come_after_the_seed(sandbox: Sandbox) -> None:
    newest = sandbox.tidsbanken.records("Kunde")[-1]
    written = sandbox.tidsbanken.edit("Kunde", "K10001", Navn="Endret AS")
    assert datetime.fromisoformat(written["SistEndretDato"]) > datetime.fromisoformat(newest["SistEndretDato"])
    assert sandbox.tidsbanken.records("Kunde")[-1]["Id"] == "K10001"


def test_a_large_seed_is_fast() -> None:
    started = time.monotonic()
    data = generate(SeedSize(avdelinger=20, kunder=20_000, prosjekter=5_000), 1)
    assert len(data.kunder) == 20_000
    assert time.monotonic() - started < 3.0


def test_seed_size_is_keyed_by_entity_name_with_defaults_for_the_others() -> None:
    size = SeedSize(counts={"Kunde": 7, "prosjekt": 2})
    assert size.counts == {"Avdeling": 20, "Kunde": 7, "Prosjekt": 2}
    assert size["kunde"] == 7
    data = generate(size, 1)
    assert (len(data.avdelinger), len(data.kunder), len(data.prosjekter)) == (20, 7, 2)


def test_the_old_names_are_aliases_of_the_entity_counts() -> None:
    keyed = SeedSize(counts={"Avdeling": 1, "Kunde": 2, "Prosjekt": 3})
    assert SeedSize(1, 2, 3) == keyed == SeedSize(avdelinger=1, kunder=2, prosjekter=3)
    assert (keyed.avdelinger, keyed.kunder, keyed.prosjekter) == (1, 2, 3)


def test_unknown_entities_and_negative_counts_are_refused() -> None:
    with pytest.raises(KeyError, match="Avdeling, Kunde, Prosjekt"):
        SeedSize(counts={"Ansatt": 1})
    with pytest.raises(ValueError, match="negative"):
        SeedSize(counts={"Kunde": -1})
