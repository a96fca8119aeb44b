"""Hostile answers through the HTTP layer: size cap, deadlines, redirects, deep JSON, the run's deadline."""

from __future__ import annotations

import gc
import gzip
import json
import time
import weakref
import zlib
from collections.abc import Iterator

import httpx
import pytest
from http_kit import SECRET, Handler, answers

from mapsync.connectors.http import (
    MAX_JSON_DEPTH,
    HttpSettings,
    RunDeadline,
    RunDeadlineError,
)
from mapsync.errors import (
    ConnectorError,
    RefusedError,
    TransportError,
)
from mapsync.sandbox.faults import deep_json, gzip_bomb

# -- hostile answers: size cap, deadline, redirects, deep JSON, the run's deadline ------------------------


class Chunks(httpx.SyncByteStream):
    """An answer body arriving in pieces, optionally with a pause before each (a trickling server)."""

    def __init__(self, chunks: list[bytes], pause: float = 0.0) -> None:
        self.chunks = chunks
        self.pause = pause

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            time.sleep(self.pause)
            yield chunk


def streamed(body: bytes, *, encoding: str | None = None, pause: float = 0.0, size: int = 16 * 1024
             ) -> Handler:
    headers = {"Content-Encoding": encoding} if encoding else {}
    pieces = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    return lambda request: httpx.Response(200, headers=headers, stream=Chunks(pieces, pause))


def test_a_gzip_bomb_stops_at_the_cap_and_is_not_retried(make_client) -> None:
    bomb = gzip_bomb(50 * 1024 * 1024)
    client = make_client(streamed(bomb, encoding="gzip"), max_answer_bytes=1024 * 1024)
    with pytest.raises(ConnectorError) as info:
        client.request("GET", "/ansatt/avdeling")
    assert type(info.value) is ConnectorError
    assert str(info.value) == ("tidsbanken: GET /ansatt/avdeling -> 200: the answer is larger than max_answer_bytes "
                               "(1048576 bytes, after decompression); stopped reading it")
    assert client.request_counts() == {"GET": 1}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate", None])
def test_encoded_answers_are_decoded(make_client, encoding: str | None) -> None:
    body = json.dumps({"value": [{"Id": str(i), "Navn": "x" * 50} for i in range(2000)]}).encode()
    if encoding == "gzip":
        wire = gzip.compress(body)
    elif encoding == "deflate":
        wire = zlib.compress(body)
    elif encoding == "raw deflate":
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        wire = compressor.compress(body) + compressor.flush()
    else:
        wire = body
    header = "deflate" if encoding == "raw deflate" else encoding
    client = make_client(streamed(wire, encoding=header, size=1000), max_answer_bytes=len(body))
    response = client.request("GET", "/x")
    assert response.content == body
    assert "Content-Encoding" not in response.headers
    assert client.json(response)["value"][1999]["Id"] == "1999"


def test_an_answer_one_byte_over_the_cap_is_refused(make_client) -> None:
    client = make_client(streamed(b"x" * 101, size=7), max_answer_bytes=100)
    with pytest.raises(ConnectorError, match="larger than max_answer_bytes"):
        client.request("GET", "/x")


def test_an_unknown_encoding_is_refused(make_client) -> None:
    client = make_client(streamed(b"\x00\x01", encoding="br"))
    with pytest.raises(ConnectorError, match="unsupported Content-Encoding 'br'"):
        client.request("GET", "/x")


def test_a_broken_gzip_body_is_a_connector_error(make_client) -> None:
    client = make_client(streamed(b"not gzip at all", encoding="gzip"))
    with pytest.raises(ConnectorError, match="compressed body is broken"):
        client.request("GET", "/x")


def test_a_trickled_answer_is_cut_by_the_request_deadline_and_retried_like_a_timeout(make_client, sleeps) -> None:
    # Ten pieces, 0.05 s apart: at least 0.5 s in all, far past the 0.1 s deadline.
    client = make_client(streamed(b"x" * 10, pause=0.05, size=1), request_deadline=0.1, max_retries=1)
    with pytest.raises(TransportError) as info:
        client.request("GET", "/ansatt/avdeling", params={"$top": 1})
    assert str(info.value) == ("tidsbanken: GET /ansatt/avdeling: the answer did not finish within request_deadline "
                               "0.1s (2 attempts)")
    assert client.request_counts() == {"GET": 2}
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_names_status_and_host_only_and_is_not_retried(make_client, status: int) -> None:
    location = f"https://login.example.org/sso?token={SECRET}&next=/x"
    client = make_client(answers(httpx.Response(status, headers={"Location": location})))
    with pytest.raises(ConnectorError) as info:
        client.request("GET", "/prosjekt/Kunde")
    message = str(info.value)
    assert message == (f"tidsbanken: GET /prosjekt/Kunde -> {status}: the server answered with a redirect ({status}) "
                       "to host login.example.org; mapsync does not follow redirects: check base_url")
    assert info.value.status == status
    assert client.request_counts() == {"GET": 1}


def test_a_relative_redirect_names_the_same_host_and_one_without_location_says_so(make_client) -> None:
    client = make_client(answers(httpx.Response(302, headers={"Location": "/elsewhere"}), httpx.Response(304)))
    with pytest.raises(ConnectorError, match=r"redirect \(302\) to host api\.example\.test;"):
        client.request("GET", "/x")
    with pytest.raises(ConnectorError, match="redirect \\(304\\) without a Location"):
        client.request("GET", "/x")


def test_json_nested_too_deeply_is_a_connector_error(make_client) -> None:
    client = make_client(streamed(deep_json(100_000)))
    response = client.request("GET", "/ansatt/avdeling")
    with pytest.raises(ConnectorError) as info:
        client.json(response)
    assert str(info.value) == ("tidsbanken: GET /ansatt/avdeling -> 200: the answer is nested too deeply to read "
                               "(more than 64 levels)")


def test_json_deeper_than_records_ever_nest_is_refused_even_when_it_parses(make_client) -> None:
    def nested(depth: int) -> bytes:
        return b'{"value": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    client = make_client(answers(httpx.Response(200, content=nested(MAX_JSON_DEPTH)),
                                 httpx.Response(200, content=nested(MAX_JSON_DEPTH + 1))))
    assert client.json(client.request("GET", "/x"))["value"]
    with pytest.raises(ConnectorError, match="nested too deeply"):
        client.json(client.request("GET", "/x"))


def test_brackets_inside_texts_are_not_nesting(make_client) -> None:
    # Far more brackets than levels: the count cannot clear this answer, the walk of the parsed value does.
    shallow = json.dumps({"value": [{"Navn": "[{" * 100}, {"Navn": "]}" * 100}]}).encode()
    client = make_client(answers(httpx.Response(200, content=shallow)))
    assert client.json(client.request("GET", "/x"))["value"][0]["Navn"] == "[{" * 100


def test_scalar_answers_have_no_depth(make_client) -> None:
    client = make_client(answers(*(httpx.Response(200, content=body) for body in (b'"[[["', b"42", b"null"))))
    assert [client.json(client.request("GET", "/x")) for _ in range(3)] == ["[[[", 42, None]


def test_an_error_page_nested_too_deeply_is_still_reported(make_client) -> None:
    client = make_client(answers(httpx.Response(422, content=deep_json(100_000))))
    with pytest.raises(RefusedError, match="the server refused the record"):
        client.request("POST", "/x", json={})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_run_deadline_stops_requests_and_caps_waits(make_client, sleeps) -> None:
    clock = FakeClock()
    client = make_client(answers(httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200)))
    client.run_deadline = RunDeadline(5, clock=clock)
    assert client.request("GET", "/x").status_code == 200
    assert sleeps == [5.0]  # the 30 s Retry-After, cut to what is left of the run
    clock.now += 5
    with pytest.raises(RunDeadlineError, match=r"^the run reached --max-duration 5s$"):
        client.request("GET", "/x")
    assert client.request_counts() == {"GET": 2}  # the last one was never sent


def test_answers_hold_no_reference_cycle(make_client) -> None:
    returned: list[weakref.ref[httpx.Response]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, stream=Chunks([b'{"value": []}']))
        returned.append(weakref.ref(response))
        return response

    client = make_client(handle)
    gc.disable()
    try:
        answer = weakref.ref(client.request("GET", "/x"))
        assert answer() is None, "the answer waits for the cyclic garbage collector"
        assert returned[0]() is None, "the streamed response waits for the cyclic garbage collector"
    finally:
        gc.enable()


def test_new_settings_are_read_from_the_block() -> None:
    settings = HttpSettings.from_settings({"request_deadline": 7, "max_answer_bytes": 1000})
    assert (settings.request_deadline, settings.max_answer_bytes) == (7.0, 1000)
    assert (HttpSettings().request_deadline, HttpSettings().max_answer_bytes) == (120.0, 64 * 1024 * 1024)


def test_the_depth_walk_finds_one_deep_record_among_many_shallow_ones() -> None:
    from mapsync.connectors._answer import nested_deeper_than

    shallow = [{"id": str(n), "address": {"line1": "x", "tags": ["a"]}, "n": n} for n in range(300)]
    page = {"data": shallow, "next": None}  # 4 levels: page, data, record, address (tags: 5)
    assert not nested_deeper_than(page, 5)
    assert nested_deeper_than(page, 4)
    deep: list[object] = []
    inner = deep
    for _ in range(10):
        inner.append([])
        inner = inner[-1]  # type: ignore[assignment]
    page["data"] = [*shallow[:150], {"id": "deep", "payload": deep}, *shallow[150:]]
    assert nested_deeper_than(page, 12)  # 3 levels to the record, 11 in payload
    assert not nested_deeper_than(page, 14)
