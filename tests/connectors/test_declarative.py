"""The generic connector on definitions other than the shipped two: each paging kind, timestamp formats,
the error shape, a version in the body, and what it puts on the wire (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mapsync.connectors.declarative import DeclarativeConnector, load_definition_file
from mapsync.errors import PagingError, PreconditionFailedError, RefusedError

ENTITY_SCHEMA = {
    "title": "Crm Contact", "type": "object", "x-key": "uid", "x-modified": "changed",
    "x-server-fields": ["uid", "changed", "rev"],
    "properties": {"uid": {"type": "string"}, "name": {"type": "string"}, "changed": {"type": "string"},
                   "rev": {"type": "integer"}},
}


def definition(tmp_path: Path, listing: dict[str, Any], **entity: Any) -> Any:
    raw = {
        "name": "crm", "title": "Crm",
        "settings": {"properties": {"base_url": {"type": "string"}, "key": {"type": "string", "x-secret": True}}},
        "connection": {"headers": {"X-Key": "${key}"}},
        "errors": {"message": "problem.title", "fields": "problem.invalid[].{field: name, message: reason}"},
        "entities": {"Contact": {"schema": "contact.json", "list": {"path": "/contacts", "records": "items",
                                                                   **listing}, **entity}},
    }
    (tmp_path / "crm.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "contact.json").write_text(json.dumps(ENTITY_SCHEMA))
    loaded, errors = load_definition_file(tmp_path / "crm.yaml", "crm.yaml")
    assert errors == []
    return loaded


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Callable[..., tuple[DeclarativeConnector, list[httpx.Request]]]]:
    made: list[DeclarativeConnector] = []

    def make(listing: dict[str, Any], answer: Callable[[httpx.Request], httpx.Response], page_size: int = 2,
             **entity: Any) -> tuple[DeclarativeConnector, list[httpx.Request]]:
        seen: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return answer(request)

        connector = DeclarativeConnector("crm", definition(tmp_path, listing, **entity),
                                         {"type": "definition", "base_url": "https://crm.test", "key": "K-1",
                                          "page_size": page_size}, transport=httpx.MockTransport(handle))
        made.append(connector)
        return connector, seen

    yield make
    for connector in made:
        connector.close()


def contact(uid: str, changed: str = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    return {"uid": uid, "name": f"Contact {uid}", "changed": changed, "rev": 1}


def test_offset_paging_with_a_unix_inclusive_filter(connect) -> None:
    pages = {"0": [contact("1"), contact("2")], "2": [contact("3")]}
    crm, seen = connect(
        {"paging": {"kind": "offset", "size_param": "limit", "offset_param": "offset"},
         "incremental": {"param": "modified_after", "timestamp": {"format": "unix"}, "overlap": 10}},
        lambda request: httpx.Response(200, json={"items": pages[request.url.params["offset"]]}))
    assert [c.id for c in crm.list_changes("Contact", "2024-05-01T10:00:10.500Z")] == ["1", "2", "3"]
    assert [dict(r.url.params) for r in seen] == [
        {"modified_after": "1714557600", "limit": "2", "offset": "0"},
        {"modified_after": "1714557600", "limit": "2", "offset": "2"},
    ]
    assert seen[0].headers["X-Key"] == "K-1"


def test_page_number_paging_ends_on_a_short_page(connect) -> None:
    crm, seen = connect({"paging": {"kind": "page_number", "size_param": "per_page", "page_param": "page"}},
                        lambda request: httpx.Response(200, json={"items": [contact(request.url.params["page"])]
                                                                   * (2 if request.url.params["page"] == "1" else 0)}))
    assert [c.id for c in crm.list_changes("Contact", None)] == ["1", "1"]
    assert [r.url.params["page"] for r in seen] == ["1", "2"]


def test_next_link_in_the_link_header_and_in_the_body(connect) -> None:
    def by_header(request: httpx.Request) -> httpx.Response:
        if "page" in request.url.params:
            return httpx.Response(200, json={"items": [contact("2")]})
        return httpx.Response(200, json={"items": [contact("1")]},
                              headers={"Link": '</contacts?page=2>; rel="next"'})

    crm, seen = connect({"paging": {"kind": "next_link"}}, by_header)
    assert [c.id for c in crm.list_changes("Contact", None)] == ["1", "2"]
    assert str(seen[1].url) == "https://crm.test/contacts?page=2"

    crm, _ = connect({"paging": {"kind": "next_link", "next": "links.next"}},
                     lambda request: httpx.Response(200, json={"items": [contact("1")],
                                                               "links": {"next": "https://evil.test/steal"}}))
    with pytest.raises(PagingError, match="another host"):
        list(crm.list_changes("Contact", None))


def test_a_malformed_page_is_a_paging_error(connect) -> None:
    crm, _ = connect({}, lambda request: httpx.Response(200, json={"items": {"not": "a list"}}))
    with pytest.raises(PagingError, match="expected a list of records at `items`"):
        list(crm.list_changes("Contact", None))


def test_error_shape_names_the_refused_fields(connect) -> None:
    problem = {"problem": {"title": "invalid contact", "invalid": [{"name": "name", "reason": "too long"}]}}
    crm, _ = connect({}, lambda request: httpx.Response(422, json=problem),
                     create={"path": "/contacts"})
    with pytest.raises(RefusedError) as info:
        crm.create("Contact", {"name": "x" * 300}, idempotency_key="k")
    assert "invalid contact" in str(info.value)
    assert [(f.field, f.message) for f in info.value.field_errors] == [("name", "too long")]


def test_version_in_the_body_and_412_on_someone_elses_change(connect) -> None:
    stored = {"uid": "c1", "name": "Changed elsewhere", "changed": "2024-05-01T10:00:00Z", "rev": 3}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(412, json={"problem": {"title": "stale"}})
        return httpx.Response(200, json=stored)

    crm, seen = connect({}, answer, update={"method": "PUT", "path": "/contacts/{id}", "body": "whole"},
                        concurrency={"version": "rev", "body_field": "rev"})
    with pytest.raises(PreconditionFailedError):
        crm.update("Contact", "c1", {"name": "Mine"}, current=contact("c1"))
    put, reread = seen
    assert json.loads(put.content) == {"name": "Mine", "rev": 1}
    assert (reread.method, reread.url.path) == ("GET", "/contacts/c1")


def test_a_whole_record_update_reads_the_record_only_when_not_given(connect) -> None:
    crm, seen = connect({}, lambda request: httpx.Response(200, json=contact("c1")),
                        update={"method": "PUT", "path": "/contacts/{id}", "body": "whole"})
    crm.update("Contact", "c1", {"name": "New"}, current={})
    assert [r.method for r in seen] == ["GET", "PUT"]
    assert json.loads(seen[1].content) == {"name": "New"}


def test_a_patch_reads_first_only_for_the_version_it_must_match(connect) -> None:
    answer = lambda request: httpx.Response(200, json=contact("c1"))  # noqa: E731
    crm, seen = connect({}, answer, update={"method": "PATCH", "path": "/contacts/{id}"})
    crm.update("Contact", "c1", {"name": "New"}, current={})
    assert [r.method for r in seen] == ["PATCH"]

    crm, seen = connect({}, answer, update={"method": "PATCH", "path": "/contacts/{id}"},
                        concurrency={"version": "rev", "header": "If-Match"})
    crm.update("Contact", "c1", {"name": "New"}, current={})
    assert [r.method for r in seen] == ["GET", "PATCH"] and seen[1].headers["If-Match"] == "1"


@pytest.mark.parametrize(("header", "expected"), [
    ("Thu, 26 Nov 2026 13:16:58 GMT", "2026-11-26T13:16:58+00:00"),
    ("Thursday, 26-Nov-26 13:16:58 GMT", "2026-11-26T13:16:58+00:00"),  # the obsolete RFC 850 form
    ("not a date", None),
    ("", None),
    ("Thu, 26 Nov 2026 13:16:58 -0000", None),  # no zone to trust: as good as none
])
def test_the_servers_clock_is_read_from_its_date_header(header: str, expected: str | None) -> None:
    from mapsync.connectors.declarative.reading import server_time

    response = httpx.Response(200, headers={"Date": header} if header else {})
    moment = server_time(response)
    assert (moment.isoformat() if moment else None) == expected
