"""Mapping throughput: the declarative Kunde -> Customer mapping against a hand-written function.

    .venv/bin/python -m bench.mapping

Both turn the same 50,000 Tidsbanken Kunde records into Custompms Customer records (checked equal for
every record first); each is timed five times, the runs alternating, and the best run counts. The figure
that matters is the ratio declarative / hand-written (target: at least 0.5). `run()` returns the figures
for bench/__main__.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mapsync.mapping.mapper import Mapper
from mapsync.spec.loader import load_workspace

RECORDS = 50_000
REPEAT = 5
TARGET_RATIO = 0.5
REPO = Path(__file__).resolve().parent.parent

Record = dict[str, Any]

_NAMES = ("Fjordbygg", "Nordlys Regnskap", "Vestland Elektro", "Bakeriet på hjørnet", "Åsane Rør", "Polar Frakt",
          "Kystverft", "Mølla Kafé", "Tindeklatring", "Berg & Sønn")
_FORMS = ("AS", "ASA", "ENK", "DA", "")
_STREETS = ("Strandkaien", "Karl Johans gate", "Storgata", "Kongens gate", "Bryggen", "Sjøgata")
_PLACES = (("5003", "Bergen"), ("0154", "Oslo"), ("7010", "Trondheim"), ("4006", "Stavanger"), ("9008", "Tromsø"))


def kunde_records(count: int = RECORDS, seed: int = 20240301) -> list[Record]:
    """Realistic Kunde records: varied values, "" for the ones left empty, as Tidsbanken sends them."""
    rng = random.Random(seed)
    records = []
    for n in range(count):
        name = f"{rng.choice(_NAMES)} {rng.choice(_FORMS)}".strip()
        postnr, poststed = rng.choice(_PLACES)
        has_delivery = rng.random() < 0.4
        lev_postnr, lev_poststed = rng.choice(_PLACES) if has_delivery else ("", "")
        slug = name.lower().replace(" ", "").replace("&", "og")
        records.append({
            "Id": f"K{n:06}",
            "Navn": name,
            "Organisasjonsnummer": str(rng.randint(900_000_000, 999_999_999)) if rng.random() < 0.8 else "",
            "Gateadresse": f"{rng.choice(_STREETS)} {rng.randint(1, 120)}" if rng.random() < 0.9 else "",
            "Postadresse": f"Postboks {rng.randint(1, 999)}" if rng.random() < 0.3 else "",
            "Postnr": postnr,
            "Poststed": poststed,
            "Leveringsadresse": f"{rng.choice(_STREETS)} {rng.randint(1, 120)}" if has_delivery else "",
            "Leveringsadresse2": "Port 3" if has_delivery and rng.random() < 0.2 else "",
            "LevPostNr": lev_postnr,
            "LevPoststed": lev_poststed,
            "Telefon": f"+47 {rng.randint(20_000_000, 79_999_999)}" if rng.random() < 0.7 else "",
            "Mobil": f"+47 {rng.randint(90_000_000, 99_999_999)}" if rng.random() < 0.5 else "",
            "Epost": f"post@{slug}.no" if rng.random() < 0.8 else "",
            "Url": f"https://{slug}.no" if rng.random() < 0.5 else "",
            "Aktiv": rng.random() < 0.9,
            "SistEndretDato": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:00:00+02:00",
        })
    return records


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else value


def hand_written(record: Record) -> Record:
    """What a developer would write for this one dataflow, without mapsync."""
    get = record.get
    return {
        "kind": "customer",
        "name": _text(get("Navn")),
        "organization_number": _text(get("Organisasjonsnummer")),
        "postal_address": {
            "line1": _text(get("Gateadresse")),
            "line2": _text(get("Postadresse")),
            "postal_code": _text(get("Postnr")),
            "city": _text(get("Poststed")),
        },
        "delivery_address": {
            "line1": _text(get("Leveringsadresse")),
            "line2": _text(get("Leveringsadresse2")),
            "postal_code": _text(get("LevPostNr")),
            "city": _text(get("LevPoststed")),
        },
        "phone": _text(get("Telefon")),
        "mobile": _text(get("Mobil")),
        "email": _text(get("Epost")),
        "website": _text(get("Url")),
        "active": get("Aktiv"),
    }


def _once(convert: Callable[[Record], Record], records: list[Record]) -> float:
    started = time.perf_counter()
    for record in records:
        convert(record)
    return time.perf_counter() - started


def _best_of_both(first: Callable[[Record], Record], second: Callable[[Record], Record],
                  records: list[Record]) -> tuple[float, float]:
    """The best of REPEAT runs of each; the runs alternate, so a busy moment hits both alike."""
    best_first = best_second = float("inf")
    for _ in range(REPEAT):
        best_first = min(best_first, _once(first, records))
        best_second = min(best_second, _once(second, records))
    return best_first, best_second


def kunde_mapper() -> Mapper:
    workspace = load_workspace(REPO / "mapsync.yaml", env={})
    return Mapper(workspace.dataflows["kunde-customer"])


def run(count: int = RECORDS) -> dict[str, Any]:
    records = kunde_records(count)
    mapper = kunde_mapper()
    declarative = mapper.forward
    for index, record in enumerate(records):
        if declarative(record) != hand_written(record):
            raise SystemExit(f"record {index} maps differently:\n{declarative(record)}\n{hand_written(record)}")
    declarative_s, hand_s = _best_of_both(declarative, hand_written, records)
    ratio = hand_s / declarative_s
    return {
        "records": count,
        "declarative records/s": round(count / declarative_s),
        "hand-written records/s": round(count / hand_s),
        "ratio declarative/hand-written": round(ratio, 3),
        "target ratio": TARGET_RATIO,
        "meets target": ratio >= TARGET_RATIO,
    }


def main() -> None:
    figures = run()
    print(f"records:                       {figures['records']:,}")
    print(f"declarative (Mapper.forward):  {figures['declarative records/s']:,} records/s")
    print(f"hand-written function:         {figures['hand-written records/s']:,} records/s")
    print(f"ratio declarative/hand-written: {figures['ratio declarative/hand-written']:.3f} "
          f"(target >= {TARGET_RATIO}{', met' if figures['meets target'] else ', NOT met'})")


if __name__ == "__main__":
    main()
