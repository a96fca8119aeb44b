"""What the connectors put on the wire, checked against httpx.MockTransport (paths, headers, bodies)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mapsync.connectors import create_connector
from mapsync.connectors.base import Connector
from mapsync.errors import ConflictError, ConnectorError, PagingError

Handler = Callable[[httpx.Request], httpx.Response]
TB = {"type": "tidsbanken", "base_url": "https://tb.test", "api_key": "K-123", "subscription_key": "S-456"}
PMS = {"type": "custompms", "base_url": "https://pms.test", "token": "T-789"}


class Recorder:
    """Records requests and answers each from a function of the request."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@pytest.fixture
def connect() -> Iterator[Callable[..., Connector]]:
    made: list[Connector] = []

    def make(settings: dict[str, Any], handler: Handler, **extra: Any) -> Connector:
        connector = create_connector(settings["type"], {**settings, **extra}, transport=httpx.MockTransport(handler))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def odata(*records: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"@odata.context": "x/$metadata#Kunde", "value": list(records)})


def kunde(rid: str, stamp: str = "2024-05-01T12:00:00.123+02:00") -> dict[str, Any]:
    return {"Id": rid, "Navn": f"Kunde {rid}", "SistEndretDato": stamp, "OpprettetDato": stamp}


def test_tidsbanken_headers_and_list_query(connect) -> None:
    recorder = Recorder(lambda request: odata(kunde("1")))
    tb = connect(TB, recorder, page_size=50)
    changes = list(tb.list_changes("Kunde", "2024-05-01T10:00:00.000Z"))
    assert [c.id for c in changes] == ["1"]
    assert changes[0].modified == "2024-05-01T10:00:00.123Z"
    request = recorder.requests[0]
    assert request.url.path == "/prosjekt/Kunde"
    assert request.headers["tb-key"] == "K-123"
    assert request.headers["Ocp-Apim-Subscription-Key"] == "S-456"
    assert request.headers["x-api-version"] == "3.0"
    assert request.headers["Accept"] == "application/json"
    params = request.url.params
    # The default overlap reaches back a minute before the cursor.
    assert params["$filter"] == "SistEndretDato gt 2024-05-01T09:59:00.000Z"
    assert (params["$top"], params["$skip"], params["$select"]) == ("50", "0", "*")


def test_tidsbanken_keyset_query_keeps_the_offset_encoded(connect) -> None:
    pages = [
        odata(kunde("1"), kunde("2", "2024-05-01T12:00:01.500+02:00")),
        odata(kunde("2", "2024-05-01T12:00:01.500+02:00")),
    ]
    recorder = Recorder(lambda request: pages.pop(0))
    tb = connect(TB, recorder, page_size=2)
    assert [c.id for c in tb.list_changes("Kunde", None)] == ["1", "2"]
    first, second = recorder.requests
    assert "$filter" not in first.url.params
    assert second.url.params["$filter"] == "SistEndretDato gt 2024-05-01T12:00:01.499+02:00"
    assert second.url.params["$skip"] == "0"  # the anchor: the last record read is asked for again
    # As the contract writes it: `$` kept, spaces as %20 (never `+`, which some servers read as a space
    # and others as a plus), the offset's `+` as %2B.
    assert b"?$filter=SistEndretDato%20gt%202024-05-01T12:00:01.499%2B02:00&$top=2" in second.url.raw_path


def test_tidsbanken_read_paths(connect) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/prosjekt/Kunde("):
            return httpx.Response(200, json=kunde("O'Neil"))
        return odata()

    recorder = Recorder(answer)
    tb = connect(TB, recorder)
    assert tb.read("Kunde", "O'Neil") == kunde("O'Neil")
    assert tb.read("Prosjekt", "a'b") is None
    assert tb.read("Avdeling", "A1") is None
    kunde_req, prosjekt_req, avdeling_req = recorder.requests
    assert kunde_req.url.raw_path == b"/prosjekt/Kunde('O''Neil')"
    assert prosjekt_req.url.path == "/prosjekt/Prosjekt"
    assert prosjekt_req.url.params["$filter"] == "Id eq 'a''b'"
    assert avdeling_req.url.path == "/ansatt/avdeling"


def test_tidsbanken_read_404_is_none(connect) -> None:
    tb = connect(TB, lambda request: httpx.Response(404, json={"error": "no such Kunde"}))
    assert tb.read("Kunde", "nope") is None


def test_tidsbanken_create_drops_nulls_and_server_fields(connect) -> None:
    recorder = Recorder(
        lambda request: httpx.Response(201, json={**json.loads(request.content), "SistEndretDato": "x"})
    )
    tb = connect(TB, recorder)
    record = {"Navn": "A", "Epost": None, "SistEndretDato": "old", "OpprettetDato": "old"}
    stored = tb.create("Kunde", record, idempotency_key="key-1")
    assert recorder.bodies() == [{"Navn": "A", "Id": "key-1"}]
    assert recorder.requests[0].url.path == "/prosjekt/Kunde"
    assert stored["Id"] == "key-1"


def conflict_then(stored: dict[str, Any]) -> Recorder:
    """409 to every POST; the stored record to every read."""
    return Recorder(lambda request: httpx.Response(409, json={"error": "exists"}) if request.method == "POST"
                    else odata(stored))


def test_tidsbanken_create_conflict_holding_what_was_sent_is_our_earlier_create(connect) -> None:
    stored = {"Id": "A1", "Navn": "new", "Adresse": "", "Synlig": True, "SistEndretDato": "2024-05-01T10:00:00Z"}
    recorder = conflict_then(stored)
    tb = connect(TB, recorder)
    assert tb.create("Avdeling", {"Id": "A1", "Navn": "new", "Adresse": None}, idempotency_key="k") == stored
    assert [r.url.path for r in recorder.requests] == ["/ansatt/Avdeling", "/ansatt/avdeling"]


def test_tidsbanken_create_conflict_with_other_values_is_a_real_conflict(connect) -> None:
    recorder = conflict_then({"Id": "A1", "Navn": "someone else's", "SistEndretDato": "2024-05-01T10:00:00Z"})
    tb = connect(TB, recorder)
    with pytest.raises(ConflictError, match="409: the record exists already"):
        tb.create("Avdeling", {"Id": "A1", "Navn": "new"}, idempotency_key="k")
    assert [r.method for r in recorder.requests] == ["POST", "GET"]


def test_tidsbanken_create_conflict_compares_dates_by_instant(connect) -> None:
    stored = {"Id": "P1", "Navn": "p", "StartDato": "2024-03-01T00:00:00.000+01:00",
              "SistEndretDato": "2024-05-01T12:00:00+02:00"}
    tb = connect(TB, conflict_then(stored))
    sent = {"Id": "P1", "Navn": "p", "StartDato": "2024-03-01T00:00:00+01:00"}
    assert tb.create("Prosjekt", sent, idempotency_key="k") == stored


def test_tidsbanken_create_conflict_without_record_raises(connect) -> None:
    tb = connect(TB, lambda r: httpx.Response(409) if r.method == "POST" else odata())
    with pytest.raises(ConflictError):
        tb.create("Prosjekt", {"Id": "P1", "Navn": "p"}, idempotency_key="k")


def test_tidsbanken_update_styles(connect) -> None:
    recorder = Recorder(lambda request: httpx.Response(200, json=json.loads(request.content)))
    tb = connect(TB, recorder)
    current = {"Id": "K1", "Navn": "old", "Telefon": "1", "SistEndretDato": "s", "OpprettetDato": "o"}
    tb.update("Kunde", "K1", {"Navn": "new"}, current=current)
    tb.update("Avdeling", "A/1", {"Navn": "new", "Avdelingsleder": None}, current={"Id": "A/1"})
    put, patch = recorder.requests
    assert (put.method, put.url.path) == ("PUT", "/prosjekt/Kunde")
    assert recorder.bodies()[0] == {"Id": "K1", "Navn": "new", "Telefon": "1"}
    assert (patch.method, patch.url.raw_path) == ("PATCH", b"/ansatt/Avdeling/A%2F1")
    assert recorder.bodies()[1] == {"Navn": "new", "Avdelingsleder": None}


def test_tidsbanken_has_no_delete(connect) -> None:
    tb = connect(TB, lambda request: httpx.Response(500))
    assert tb.entities()["Kunde"].can_delete is False
    with pytest.raises(ConnectorError, match="no delete"):
        tb.delete("Kunde", "K1")
    assert tb.request_counts() == {}


def test_tidsbanken_check(connect) -> None:
    recorder = Recorder(lambda request: odata())
    connect(TB, recorder).check()
    assert recorder.requests[0].url.path == "/ansatt/avdeling"
    assert recorder.requests[0].url.params["$top"] == "1"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"values": []}', b'{"value": [{"Id": "1"}]}', b'{"value": [{"Id": "1", "SistEndretDato": "x"}]}'],
)
def test_tidsbanken_malformed_page(connect, body: bytes) -> None:
    tb = connect(TB, lambda request: httpx.Response(200, content=body))
    with pytest.raises(ConnectorError) as info:
        list(tb.list_changes("Kunde", None))
    assert "Traceback" not in str(info.value)


def test_custompms_list_follows_cursors_and_tombstones(connect) -> None:
    pages = [
        {"data": [{"id": "c1", "name": "a", "updated_at": "2024-05-01T10:00:00Z"}], "next_cursor": "n1"},
        {"data": [{"id": "c2", "deleted": True, "updated_at": "2024-05-01T10:00:01.5Z"}], "next_cursor": None},
    ]
    recorder = Recorder(lambda request: httpx.Response(200, json=pages.pop(0)))
    pms = connect(PMS, recorder, page_size=1)
    changes = list(pms.list_changes("Customer", "2024-05-01T10:00:00Z"))
    assert [(c.id, c.deleted, c.record is None, c.modified) for c in changes] == [
        ("c1", False, False, "2024-05-01T10:00:00.000Z"),
        ("c2", True, True, "2024-05-01T10:00:01.500Z"),
    ]
    first, second = recorder.requests
    assert first.headers["Authorization"] == "Bearer T-789"
    assert dict(first.url.params) == {
        "updated_since": "2024-05-01T10:00:00.000Z",
        "limit": "1",
        "include_deleted": "true",
    }
    assert second.url.params["cursor"] == "n1"


def test_custompms_full_scan_omits_updated_since(connect) -> None:
    recorder = Recorder(lambda request: httpx.Response(200, json={"data": [], "next_cursor": None}))
    assert list(connect(PMS, recorder).list_changes("Project", None)) == []
    assert "updated_since" not in recorder.requests[0].url.params
    assert recorder.requests[0].url.path == "/api/v1/projects"


def test_custompms_repeated_cursor_is_a_paging_error(connect) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        rid = request.url.params.get("cursor", "start")
        return httpx.Response(
            200, json={"data": [{"id": rid, "updated_at": "2024-05-01T10:00:00Z"}], "next_cursor": "same"}
        )

    with pytest.raises(PagingError, match="twice"):
        list(connect(PMS, answer).list_changes("Customer", None))


def test_custompms_writes(connect) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(404 if "gone" in request.url.path else 204)
        if request.method == "GET":
            return httpx.Response(404, json={"error": "no such customer"})
        return httpx.Response(201 if request.method == "POST" else 200, json={"id": "c1", "version": 2})

    recorder = Recorder(answer)
    pms = connect(PMS, recorder)
    pms.create("Customer", {"name": "A", "id": "x", "version": 9, "email": None}, idempotency_key="idem-1")
    pms.update("Customer", "c1", {"name": "B", "updated_at": "x"}, current={"id": "c1", "version": 1})
    pms.delete("Customer", "c1")
    pms.delete("Customer", "gone")
    assert pms.read("Customer", "c9") is None
    post, patch, delete, _, _ = recorder.requests
    assert post.headers["Idempotency-Key"] == "idem-1"
    assert recorder.bodies()[0] == {"name": "A", "email": None}
    assert (patch.method, patch.url.path, patch.headers["If-Match"]) == ("PATCH", "/api/v1/customers/c1", "1")
    assert recorder.bodies()[1] == {"name": "B"}
    assert delete.method == "DELETE"
    assert pms.request_counts() == {"POST": 1, "PATCH": 1, "DELETE": 2, "GET": 1}
    assert pms.entities()["Customer"].can_delete is True


def test_tidsbanken_put_sends_only_the_entitys_own_properties(connect) -> None:
    recorder = Recorder(lambda request: httpx.Response(200, json=json.loads(request.content)))
    tb = connect(TB, recorder)
    current = {"Id": "P1", "Navn": "old", "KundeNavn": "expanded by the server", "@odata.etag": "W/1",
               "SistEndretDato": "s", "OpprettetDato": "o"}
    tb.update("Prosjekt", "P1", {"Navn": "new"}, current=current)
    assert recorder.bodies()[0] == {"Id": "P1", "Navn": "new"}



@pytest.mark.parametrize(("expression", "data"), [
    ("version", {"version": 3}), ("version", {"other": 1}), ("version", [1]), ("version", None),
    ("value", {"value": [{"id": "a"}]}), ('"odd name"', {"odd name": "x"}), ("a.b", {"a": {"b": 2}}),
    ("value[0].id", {"value": [{"id": "a"}]}), ("[", {}),
])
def test_search_answers_as_jmespath_and_reads_a_single_field_without_it(monkeypatch, expression: str,
                                                                         data: Any) -> None:
    import jmespath
    from jmespath.parser import ParsedResult

    from mapsync.connectors.declarative.requests import search

    try:
        parsed: Any = jmespath.compile(expression)
        expected = parsed.search(data)
    except jmespath.exceptions.JMESPathError:
        parsed, expected = None, None
    if parsed is not None and parsed.parsed["type"] == "field":  # a field is read without the interpreter
        monkeypatch.setattr(ParsedResult, "search", lambda *_: pytest.fail("the interpreter was asked"))
    assert search(expression, data) == expected
