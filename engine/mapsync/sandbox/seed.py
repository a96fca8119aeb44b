"""Deterministic, realistic Norwegian sample data for the Tidsbanken emulator.

Company names like "Fjordbygg AS", real postal-code/town pairs, organisation numbers with a valid
mod-11 check digit, "+47" phone numbers, empty strings where a value is unknown (as in real exports),
and projects that reference existing customers and departments. The same `rng_seed` always gives
the same data; 100,000 customers take about a second.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import TypeVar

from mapsync.sandbox._http import JsonObject
from mapsync.sandbox._time import format_utc_millis, from_micros, to_micros
from mapsync.sandbox.tidsbanken import OSLO

SEEDED_ENTITIES = ("Avdeling", "Kunde", "Prosjekt")  # in the order they are generated (references last)
DEFAULT_COUNTS: Mapping[str, int] = MappingProxyType({"Avdeling": 20, "Kunde": 200, "Prosjekt": 500})


class SeedSize:
    """How many records of each Tidsbanken entity to seed, keyed by entity name:
    `SeedSize(counts={"Kunde": 200})`; an entity left out gets its default count.

    `avdelinger`, `kunder` and `prosjekter` (positional or by keyword, and as attributes) are the old
    names of the same counts, kept as aliases for one release.
    """

    __slots__ = ("_counts",)

    def __init__(
        self,
        avdelinger: int | None = None,
        kunder: int | None = None,
        prosjekter: int | None = None,
        *,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        merged = dict(DEFAULT_COUNTS)
        for entity, count in (counts or {}).items():
            merged[_entity_name(entity)] = count
        for entity, alias in zip(SEEDED_ENTITIES, (avdelinger, kunder, prosjekter), strict=True):
            if alias is not None:
                merged[entity] = alias
        if min(merged.values()) < 0:
            raise ValueError("seed sizes must not be negative")
        self._counts = merged

    @property
    def counts(self) -> dict[str, int]:
        """A copy: every seeded entity and its count."""
        return dict(self._counts)

    def __getitem__(self, entity: str) -> int:
        return self._counts[_entity_name(entity)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeedSize) and other._counts == self._counts

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._counts.items())))

    def __repr__(self) -> str:
        return f"SeedSize(counts={self._counts!r})"

    # The old names, for one release.
    @property
    def avdelinger(self) -> int:
        return self._counts["Avdeling"]

    @property
    def kunder(self) -> int:
        return self._counts["Kunde"]

    @property
    def prosjekter(self) -> int:
        return self._counts["Prosjekt"]


def _entity_name(entity: str) -> str:
    """The seeded entity's name, whatever its case; a KeyError naming the known ones otherwise."""
    for name in SEEDED_ENTITIES:
        if name.lower() == entity.lower():
            return name
    raise KeyError(f"cannot seed {entity!r}: the seeded entities are {', '.join(SEEDED_ENTITIES)}")


@dataclass
class SeedData:
    avdelinger: list[JsonObject] = field(default_factory=list)
    kunder: list[JsonObject] = field(default_factory=list)
    prosjekter: list[JsonObject] = field(default_factory=list)


# Real Norwegian postal codes and the town each belongs to.
TOWNS: tuple[tuple[str, str], ...] = (
    ("0150", "Oslo"), ("0250", "Oslo"), ("0468", "Oslo"), ("0560", "Oslo"), ("0661", "Oslo"),
    ("5003", "Bergen"), ("5020", "Bergen"), ("5057", "Bergen"), ("7010", "Trondheim"),
    ("7030", "Trondheim"), ("4006", "Stavanger"), ("4010", "Stavanger"), ("9008", "Tromsø"),
    ("4610", "Kristiansand"), ("3015", "Drammen"), ("1606", "Fredrikstad"), ("2317", "Hamar"),
    ("8006", "Bodø"), ("6002", "Ålesund"), ("2609", "Lillehammer"), ("3110", "Tønsberg"),
    ("3211", "Sandefjord"), ("5527", "Haugesund"), ("3724", "Skien"), ("1530", "Moss"),
    ("2000", "Lillestrøm"), ("1337", "Sandvika"), ("4306", "Sandnes"), ("6413", "Molde"),
    ("9405", "Harstad"), ("8514", "Narvik"), ("2815", "Gjøvik"), ("1708", "Sarpsborg"),
    ("3611", "Kongsberg"), ("4836", "Arendal"), ("3510", "Hønefoss"),
)
STREETS = (
    "Storgata", "Kongens gate", "Dronningens gate", "Strandgata", "Industriveien", "Kirkegata",
    "Sjøgata", "Parkveien", "Fjordveien", "Skolegata", "Torggata", "Havnegata", "Markveien",
    "Løkkeveien", "Elvegata", "Bryggeveien", "Nedre Slottsgate", "Bjørkeveien", "Granveien",
    "Fabrikkgata", "Stasjonsveien", "Møllergata", "Tollbugata", "Verftsgata",
)
NAME_STEMS = (
    "Fjord", "Nordlys", "Vestland", "Fjell", "Havbris", "Midnattsol", "Bjørke", "Granitt", "Polar",
    "Sølv", "Skog", "Elve", "Kyst", "Tinde", "Berg", "Stein", "Lyng", "Furu", "Norr", "Aurora",
    "Viken", "Trøndelag", "Lofot", "Vidde", "Brygge", "Nordkapp", "Sjø", "Dal", "Ask", "Eik",
)
TRADES_JOINED = (
    "bygg", "elektro", "rør", "transport", "data", "maskin", "marin", "handel", "design", "tak",
    "mur", "montasje", "service", "kraft", "vekst",
)
TRADES_SPACED = (
    "Regnskap", "Eiendom", "Consulting", "Advokatfirma", "Arkitekter", "Entreprenør", "Rørleggerservice",
    "Bilverksted", "Trafikkskole", "Renhold", "Regnskapskontor", "IT", "Energi", "Sjømat", "Logistikk",
)
COMPANY_FORMS = ("AS", "AS", "AS", "AS", "AS", "ASA", "ANS", "DA", "SA")
DEPARTMENTS = (
    "Salg", "Service", "Prosjekt", "Drift", "Lager", "Kundesenter", "Montasje", "Teknisk", "Marked",
)
STAFF_DEPARTMENTS = ("Administrasjon", "Økonomi", "HR", "IT-avdelingen", "Innkjøp", "Ledelse")
PROJECT_KINDS = (
    "Rehabilitering", "Ombygging", "Vedlikeholdsavtale", "Serviceavtale", "Nytt kontorbygg",
    "Oppgradering", "Installasjon", "Rådgivning", "Årsoppgjør", "Innføring av nytt system", "Montering",
    "Utskifting av tak", "Energimerking", "Tilstandsvurdering",
)
INTERNAL_PROJECTS = (
    "Internt: Kompetanseheving", "Internt: HMS", "Internt: Kontordrift", "Internt: Salgsarbeid",
    "Internt: Sykefravær og ferie", "Internt: Utvikling",
)
ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
T = TypeVar("T")

# Seeded records were written between these instants, long before any live write.
SEED_START = to_micros(datetime(2022, 1, 1, tzinfo=UTC))
SEED_END = to_micros(datetime(2025, 1, 1, tzinfo=UTC))
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "é": "e"})
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def mod11_check_digit(first_eight: str) -> int | None:
    """The check digit of a Norwegian organisation number, or None when none exists (remainder 1)."""
    remainder = sum(map(operator.mul, ORG_WEIGHTS, map(int, first_eight))) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


def is_valid_org_number(text: str) -> bool:
    return len(text) == 9 and text.isdigit() and mod11_check_digit(text[:8]) == int(text[8])


def org_number(rng: random.Random) -> str:
    while True:
        first_eight = str(80_000_000 + int(rng.random() * 20_000_000))  # they start with 8 or 9
        check = mod11_check_digit(first_eight)
        if check is not None:
            return f"{first_eight}{check}"


def oslo_midnight(day: date) -> str:
    """Local midnight in Norway with that day's offset: +01:00 in winter, +02:00 in summer."""
    return datetime(day.year, day.month, day.day, tzinfo=OSLO).isoformat()


def oslo_millis(micros: int) -> str:
    return from_micros(micros).astimezone(OSLO).isoformat(timespec="milliseconds")


class _Generator:
    """Draws from one seeded generator. `pick` and `between` scale a single random() instead of
    random.choice/randrange, which are several times slower: that matters for 100,000 records."""

    def __init__(self, rng_seed: int) -> None:
        self.rng = random.Random(rng_seed)
        self._random = self.rng.random

    def chance(self, share: float) -> bool:
        return self._random() < share

    def pick(self, options: tuple[T, ...] | list[T]) -> T:
        return options[int(self._random() * len(options))]

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return low + int(self._random() * (high - low))

    def stamps(self) -> tuple[int, int]:
        """(created, modified) in milliseconds, the record edited some time after it was created."""
        created = self.between(SEED_START, SEED_END - 86_400_000_000) // 1000 * 1000
        modified = min(created + self.between(0, 400 * 86_400_000) * 1000, SEED_END)
        return created, modified

    def street(self) -> str:
        number = self.between(1, 120)
        letter = self.pick(("", "", "", "", "A", "B", "C"))
        return f"{self.pick(STREETS)} {number}{letter}"

    def company_name(self, town: str) -> str:
        stem = self.pick(NAME_STEMS)
        # Both styles are common: "Fjordbygg AS" and "Nordlys Regnskap AS".
        base = stem + self.pick(TRADES_JOINED) if self.chance(0.5) else f"{stem} {self.pick(TRADES_SPACED)}"
        if self.chance(0.3):
            base = f"{base} {town}"
        return f"{base} {self.pick(COMPANY_FORMS)}"

    def landline(self) -> str:
        digits = f"{self.between(2, 8)}{self.between(1_000_000, 10_000_000)}"
        return f"+47 {digits[0:2]} {digits[2:4]} {digits[4:6]} {digits[6:8]}"

    def mobile(self) -> str:
        digits = f"{self.pick((4, 9))}{self.between(10_000_000, 100_000_000)}"
        return f"+47 {digits[0:3]} {digits[3:5]} {digits[5:8]}"

    def kunde(self, number: int) -> JsonObject:
        postnr, poststed = self.pick(TOWNS)
        name = self.company_name(poststed)
        domain = _NOT_ALNUM.sub("", name.lower().translate(_ASCII).rsplit(" ", 1)[0]) + ".no"
        has_delivery = self.chance(0.35)
        lev_postnr, lev_poststed = self.pick(TOWNS) if has_delivery else ("", "")
        created, modified = self.stamps()
        return {
            "Id": f"K{10_000 + number}",
            "Navn": name,
            "Organisasjonsnummer": org_number(self.rng) if self.chance(0.88) else "",
            "Gateadresse": self.street(),
            "Postadresse": f"Postboks {self.between(1, 900)}" if self.chance(0.2) else "",
            "Postnr": postnr,
            "Poststed": poststed,
            "Leveringsadresse": self.street() if has_delivery else "",
            "Leveringsadresse2": f"{self.between(1, 5)}. etasje" if has_delivery and self.chance(0.3) else "",
            "LevPostNr": lev_postnr,
            "LevPoststed": lev_poststed,
            "Telefon": self.landline() if self.chance(0.75) else "",
            "Mobil": self.mobile() if self.chance(0.5) else "",
            "Epost": f"{self.pick(('post', 'firmapost', 'faktura', 'kontakt'))}@{domain}"
            if self.chance(0.85) else "",
            "Url": f"https://www.{domain}" if self.chance(0.6) else "",
            "Aktiv": self.chance(0.9),
            "OpprettetDato": oslo_millis(created),
            "SistEndretDato": oslo_millis(modified),
        }

    def avdeling(self, number: int, company_org: str) -> JsonObject:
        postnr, poststed = self.pick(TOWNS)
        name = self.pick(STAFF_DEPARTMENTS) if self.chance(0.2) else f"{self.pick(DEPARTMENTS)} {poststed}"
        created, modified = self.stamps()
        return {
            "Id": f"A{100 + number}",
            "Navn": name,
            "Adresse": self.street() if self.chance(0.85) else "",
            "Postnr": postnr,
            "Poststed": poststed,
            # Departments of one company share its organisation number; some leave it blank.
            "Organisasjonsnr": company_org if self.chance(0.7) else "",
            "Avdelingsleder": self.between(1001, 1400) if self.chance(0.8) else None,
            "Synlig": self.chance(0.9),
            "OpprettetDato": format_utc_millis(created),
            "SistEndretDato": format_utc_millis(modified),
        }

    def prosjekt(self, number: int, kunde_ids: list[str], avdeling_ids: list[str]) -> JsonObject:
        internal = self.chance(0.08)
        kunde_id = None if internal or not kunde_ids or self.chance(0.05) else self.pick(kunde_ids)
        avdeling_id = self.pick(avdeling_ids) if avdeling_ids and self.chance(0.9) else None
        start = date(2021, 6, 1) + timedelta(days=self.between(0, 1300))
        closed = self.chance(0.3)
        due = start + timedelta(days=self.between(14, 400)) if self.chance(0.7) else None
        name = self.pick(INTERNAL_PROJECTS) if internal else f"{self.pick(PROJECT_KINDS)} {self.street()}"
        created, modified = self.stamps()
        return {
            "Id": f"P{20_000 + number}",
            "Navn": name,
            "KundeId": kunde_id,
            "AvdelingId": avdeling_id,
            "AnsvarligId": self.between(1001, 1400) if self.chance(0.85) else None,
            "StartDato": oslo_midnight(start) if self.chance(0.9) else None,
            "FerdigDato": oslo_midnight(due) if due else None,
            "AvsluttetDato": oslo_midnight(start + timedelta(days=self.between(30, 500))) if closed else None,
            "BestillingsDato": oslo_midnight(start - timedelta(days=self.between(1, 60)))
            if self.chance(0.5) else None,
            "Avsluttet": closed,
            "InterntProsjekt": internal,
            "OpprettetDato": oslo_millis(created),
            "SistEndretDato": oslo_millis(modified),
        }


def generate(size: SeedSize, rng_seed: int = 1) -> SeedData:
    """The sample data for `size`; the same rng_seed always gives the same records."""
    gen = _Generator(rng_seed)
    company_org = org_number(gen.rng)
    data = SeedData()
    data.avdelinger = [gen.avdeling(i + 1, company_org) for i in range(size["Avdeling"])]
    data.kunder = [gen.kunde(i + 1) for i in range(size["Kunde"])]
    kunde_ids = [k["Id"] for k in data.kunder]
    avdeling_ids = [a["Id"] for a in data.avdelinger]
    data.prosjekter = [gen.prosjekt(i + 1, kunde_ids, avdeling_ids) for i in range(size["Prosjekt"])]
    return data


__all__ = [
    "DEFAULT_COUNTS",
    "SEEDED_ENTITIES",
    "TOWNS",
    "SeedData",
    "SeedSize",
    "generate",
    "is_valid_org_number",
    "mod11_check_digit",
    "org_number",
    "oslo_midnight",
]
