"""The baseline of bench/compare.py: a competent hand-written one-way client, Tidsbanken -> Custompms.

    .venv/bin/python -m bench.client STATE.db   (reads TIDSBANKEN_* and CUSTOMPMS_* from the environment)

It does the job of the three reference dataflows (Avdeling -> Customer, Kunde -> Customer, Prosjekt ->
Project, with the property conversions of mappings/*.yaml) the way a careful engineer would write it by hand:
httpx, one thread pool at the given concurrency for the writes, a SQLite file of id pairs (and a digest of
the body last written, so an unchanged record costs no write), and an updated-since filter per entity.

What it skips, because a one-way client does not need it: reading Custompms at all (matching, conflicts,
echoes, deletes), retries (the bench injects no faults), locks, a dead-letter ledger, history. What it keeps,
like mapsync: it creates, updates and keeps ids; a Prosjekt's Kunde and Avdeling are translated through
the id pairs, so the flows run in that order; the cursor overlaps by one millisecond because Tidsbanken's
`gt` is strict (the contract), and the digest makes the repeated records free.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

OSLO = ZoneInfo("Europe/Oslo")
Record = dict[str, Any]
Links = dict[str, dict[str, str]]  # flow -> source id -> target id, for the references of one page
Convert = Callable[[Record, Links], Record]


def _text(value: Any) -> str | None:
    """Tidsbanken's "" is Custompms's null."""
    return None if value == "" else value


def _day(value: str | None) -> str | None:
    """A local midnight with offset as the calendar day in Europe/Oslo."""
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(OSLO).date().isoformat()


def avdeling_body(record: Record, links: Links) -> Record:
    return {
        "kind": "department",
        "name": _text(record["Navn"]),
        "postal_address": {"line1": _text(record["Adresse"]), "postal_code": _text(record["Postnr"]),
                           "city": _text(record["Poststed"])},
        "organization_number": _text(record["Organisasjonsnr"]),
        "manager_employee_id": record["Avdelingsleder"],
        "active": record["Synlig"],
    }


def kunde_body(record: Record, links: Links) -> Record:
    return {
        "kind": "customer",
        "name": _text(record["Navn"]),
        "organization_number": _text(record["Organisasjonsnummer"]),
        "postal_address": {"line1": _text(record["Gateadresse"]), "line2": _text(record["Postadresse"]),
                           "postal_code": _text(record["Postnr"]), "city": _text(record["Poststed"])},
        "delivery_address": {"line1": _text(record["Leveringsadresse"]),
                             "line2": _text(record["Leveringsadresse2"]),
                             "postal_code": _text(record["LevPostNr"]), "city": _text(record["LevPoststed"])},
        "phone": _text(record["Telefon"]),
        "mobile": _text(record["Mobil"]),
        "email": _text(record["Epost"]),
        "website": _text(record["Url"]),
        "active": record["Aktiv"],
    }


def prosjekt_body(record: Record, links: Links) -> Record:
    kunde, avdeling = record["KundeId"], record["AvdelingId"]
    return {
        "name": _text(record["Navn"]),
        "customer_id": links["kunde"][kunde] if kunde else None,  # KeyError: the Kunde is not synced
        "department_id": links["avdeling"][avdeling] if avdeling else None,
        "manager_employee_id": record["AnsvarligId"],
        "start_date": _day(record["StartDato"]),
        "due_date": _day(record["FerdigDato"]),
        "closed_date": _day(record["AvsluttetDato"]),
        "order_date": _day(record["BestillingsDato"]),
        "closed": record["Avsluttet"],
        "internal": record["InterntProsjekt"],
    }


@dataclass(frozen=True)
class Flow:
    name: str
    list_path: str  # Tidsbanken
    resource: str  # Custompms
    convert: Convert
    references: dict[str, str] = field(default_factory=dict)  # source property -> flow of its links


FLOWS = (
    Flow("avdeling", "/ansatt/avdeling", "customers", avdeling_body),
    Flow("kunde", "/prosjekt/Kunde", "customers", kunde_body),
    Flow("prosjekt", "/prosjekt/Prosjekt", "projects", prosjekt_body,
         {"KundeId": "kunde", "AvdelingId": "avdeling"}),
)


@dataclass(frozen=True)
class ClientSettings:
    tidsbanken_url: str
    tidsbanken_api_key: str
    tidsbanken_subscription_key: str
    custompms_url: str
    custompms_token: str
    state: Path
    concurrency: int = 16
    page_size: int = 500

    @classmethod
    def from_env(cls, env: dict[str, str], state: Path, **options: int) -> ClientSettings:
        return cls(env["TIDSBANKEN_URL"], env["TIDSBANKEN_API_KEY"], env["TIDSBANKEN_SUBSCRIPTION_KEY"],
                   env["CUSTOMPMS_URL"], env["CUSTOMPMS_TOKEN"], state, **options)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


SCHEMA = """
CREATE TABLE IF NOT EXISTS links (flow TEXT, source_id TEXT, target_id TEXT NOT NULL, digest TEXT NOT NULL,
                                  PRIMARY KEY (flow, source_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (flow TEXT PRIMARY KEY, stamp TEXT NOT NULL);
"""


class IdPairs:
    """The SQLite file: source id -> target id and the digest of the body last written; one cursor per flow."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def lookup(self, flow: str, ids: list[str]) -> dict[str, tuple[str, str]]:
        """One query per page: the target id and digest of each source id already linked."""
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT source_id, target_id, digest FROM links WHERE flow = ? "
                               f"AND source_id IN ({marks})", [flow, *ids])
        return {source: (target, digest) for source, target, digest in rows}

    def save(self, flow: str, rows: list[tuple[str, str, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO links VALUES (?, ?, ?, ?)",
                                [(flow, *row) for row in rows])

    def cursor(self, flow: str) -> str | None:
        row = self.db.execute("SELECT stamp FROM cursors WHERE flow = ?", (flow,)).fetchone()
        return None if row is None else str(row[0])

    def move_cursor(self, flow: str, stamp: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (flow, stamp))


def _digest(body: Record) -> str:
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=12).hexdigest()


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Client:
    """One run of the three flows; `transports` serve the emulators in process (tests)."""

    def __init__(self, settings: ClientSettings,
                 transports: tuple[httpx.BaseTransport, httpx.BaseTransport] | None = None) -> None:
        self.settings = settings
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
        tb_transport, pms_transport = transports or (None, None)
        self.tidsbanken = httpx.Client(
            base_url=settings.tidsbanken_url, timeout=60, transport=tb_transport,
            headers={"tb-key": settings.tidsbanken_api_key, "x-api-version": "3.0",
                     "Ocp-Apim-Subscription-Key": settings.tidsbanken_subscription_key})
        self.custompms = httpx.Client(base_url=settings.custompms_url, timeout=60, limits=limits,
                                      transport=pms_transport,
                                      headers={"Authorization": f"Bearer {settings.custompms_token}"})
        self.pairs = IdPairs(settings.state)

    def close(self) -> None:
        self.tidsbanken.close()
        self.custompms.close()
        self.pairs.close()

    def run(self) -> dict[str, Counts]:
        counts: dict[str, Counts] = {}
        with ThreadPoolExecutor(self.settings.concurrency) as pool:
            for flow in FLOWS:  # in order: a Prosjekt needs the links of its Kunde and Avdeling
                counts[flow.name] = self._sync_flow(flow, pool)
        return counts

    def _pages(self, flow: Flow) -> Iterator[list[Record]]:
        """The records changed since the cursor, a page at a time ($skip: nobody else writes Tidsbanken)."""
        cursor = self.pairs.cursor(flow.name)
        params: dict[str, str | int] = {"$top": self.settings.page_size, "$select": "*"}
        if cursor is not None:  # `gt` is strict: overlap by one millisecond, the digest skips the repeats
            params["$filter"] = f"SistEndretDato gt {(_stamp(cursor) - timedelta(milliseconds=1)).isoformat()}"
        skip = 0
        while True:
            response = self.tidsbanken.get(flow.list_path, params={**params, "$skip": skip})
            response.raise_for_status()
            page: list[Record] = response.json()["value"]
            if page:
                yield page
            if len(page) < self.settings.page_size:
                return
            skip += len(page)

    def _sync_flow(self, flow: Flow, pool: ThreadPoolExecutor) -> Counts:
        counts = Counts()
        in_flight: deque[list[Future[tuple[str, str, str]]]] = deque()
        newest: tuple[datetime, str] | None = None
        for page in self._pages(flow):
            in_flight.append(self._submit_page(flow, page, pool, counts))
            last = page[-1]["SistEndretDato"]  # listings are ordered by SistEndretDato
            newest = (_stamp(last), last)
            if len(in_flight) > 1:  # the next page is read while this one's writes run; memory stays flat
                self._record(flow, in_flight.popleft())
        while in_flight:
            self._record(flow, in_flight.popleft())
        if newest is not None:
            self.pairs.move_cursor(flow.name, newest[1])
        return counts

    def _submit_page(self, flow: Flow, page: list[Record], pool: ThreadPoolExecutor,
                     counts: Counts) -> list[Future[tuple[str, str, str]]]:
        known = self.pairs.lookup(flow.name, [record["Id"] for record in page])
        links = self._references(flow, page)
        futures = []
        for record in page:
            body = flow.convert(record, links)
            digest = _digest(body)
            pair = known.get(record["Id"])
            if pair is None:
                counts.created += 1
                futures.append(pool.submit(self._create, flow, record["Id"], body, digest))
            elif pair[1] != digest:
                counts.updated += 1
                futures.append(pool.submit(self._update, flow, record["Id"], pair[0], body, digest))
            else:
                counts.unchanged += 1
        return futures

    def _references(self, flow: Flow, page: list[Record]) -> Links:
        """The target ids of the records this page refers to, one query per referenced flow."""
        links: Links = {}
        for prop, other in flow.references.items():
            ids = sorted({record[prop] for record in page if record[prop]})
            links[other] = {source: target for source, (target, _) in self.pairs.lookup(other, ids).items()}
        return links

    def _create(self, flow: Flow, source_id: str, body: Record, digest: str) -> tuple[str, str, str]:
        response = self.custompms.post(f"/api/v1/{flow.resource}", json=body,
                                       headers={"Idempotency-Key": f"{flow.name}:{source_id}"})
        response.raise_for_status()
        return source_id, str(response.json()["id"]), digest

    def _update(self, flow: Flow, source_id: str, target_id: str, body: Record,
                digest: str) -> tuple[str, str, str]:
        self.custompms.patch(f"/api/v1/{flow.resource}/{target_id}", json=body).raise_for_status()
        return source_id, target_id, digest

    def _record(self, flow: Flow, futures: list[Future[tuple[str, str, str]]]) -> None:
        self.pairs.save(flow.name, [future.result() for future in futures])


def sync(settings: ClientSettings,
         transports: tuple[httpx.BaseTransport, httpx.BaseTransport] | None = None) -> dict[str, Counts]:
    """One run of the client: every flow, in order; the counts per flow."""
    client = Client(settings, transports)
    try:
        return client.run()
    finally:
        client.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.client STATE.db", file=sys.stderr)
        return 2
    counts = sync(ClientSettings.from_env(dict(os.environ), Path(argv[0])))
    for name, flow_counts in counts.items():
        print(f"{name:10} {flow_counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
