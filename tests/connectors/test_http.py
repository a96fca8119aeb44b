"""The shared HTTP layer against httpx.MockTransport: retries, Retry-After, backoff, errors, counters."""

from __future__ import annotations

import gc
import gzip
import json
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from mapsync.connectors.http import (
    BACKOFF_CAP,
    MAX_JSON_DEPTH,
    RETRY_AFTER_CAP,
    HttpClient,
    HttpSettings,
    RunDeadline,
    RunDeadlineError,
    full_jitter_backoff,
    retry_after_seconds,
)
from mapsync.errors import (
    AuthError,
    ConflictError,
    ConnectorError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitError,
    RefusedError,
    ServerError,
    TransportError,
)
from mapsync.sandbox.faults import deep_json, gzip_bomb

SECRET = "s3cr3t-key-value"
Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps(list[float]):
    """An injected sleep that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., HttpClient]]:
    clients: list[HttpClient] = []

    def make(handler: Handler, **settings: float | int | None) -> HttpClient:
        client = HttpClient(
            "tidsbanken",
            "https://api.example.test",
            headers={"tb-key": SECRET},
            settings=HttpSettings(**settings),  # type: ignore[arg-type]
            auth_hint="check TIDSBANKEN_API_KEY",
            secrets=[SECRET],
            transport=httpx.MockTransport(handler),
            sleep=sleeps,
            backoff=lambda attempt: 0.01 * (attempt + 1),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def answers(*responses: httpx.Response | Exception) -> Handler:
    """A handler that plays the given answers in order (an exception is raised as if on the wire)."""
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handle


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
def test_transient_status_is_retried_until_it_succeeds(make_client, sleeps, status: int) -> None:
    client = make_client(answers(httpx.Response(status), httpx.Response(status), httpx.Response(200, json={})))
    assert client.request("GET", "/x").status_code == 200
    assert client.request_counts() == {"GET": 3}
    assert sleeps == [0.01, 0.02]


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")],
)
def test_transport_errors_are_retried_also_for_writes(make_client, exc: Exception) -> None:
    client = make_client(answers(exc, httpx.Response(201, json={"Id": "1"})))
    assert client.request("POST", "/x", json={"Id": "1"}).status_code == 201
    assert client.request_counts() == {"POST": 2}


def test_transport_error_after_max_retries(make_client) -> None:
    client = make_client(answers(*[httpx.ConnectError("refused")] * 3), max_retries=2)
    with pytest.raises(TransportError) as info:
        client.request("GET", "/ansatt/avdeling", params={"$top": 1})
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert "3 attempts" in str(info.value)
    assert "$top" not in str(info.value)
    assert client.request_counts() == {"GET": 3}


@pytest.mark.parametrize(("status", "error"), [(429, RateLimitError), (503, ServerError), (502, ServerError)])
def test_transient_status_after_max_retries_raises_mapped_error(make_client, status, error) -> None:
    client = make_client(answers(*[httpx.Response(status, json={"error": "busy"})] * 3), max_retries=2)
    with pytest.raises(error) as info:
        client.request("GET", "/x")
    assert info.value.status == status
    assert "busy" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422])
def test_other_4xx_is_never_retried(make_client, status: int) -> None:
    client = make_client(answers(httpx.Response(status)))
    with pytest.raises(ConnectorError):
        client.request("POST", "/x", json={})
    assert client.request_counts() == {"POST": 1}


def test_retry_after_seconds_is_honoured(make_client, sleeps) -> None:
    client = make_client(answers(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200)))
    client.request("GET", "/x")
    assert sleeps == [3.0]


def test_retry_after_http_date_is_honoured(make_client, sleeps) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    client = make_client(answers(httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200)))
    client.request("GET", "/x")
    assert 3.0 < sleeps[0] <= 5.0


def test_retry_after_parsing() -> None:
    now = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("100000") == RETRY_AFTER_CAP
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds("Wed, 01 May 2024 10:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Wed, 01 May 2024 09:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_full_jitter_backoff_bounds() -> None:
    assert full_jitter_backoff(0, rng=lambda lo, hi: hi) == pytest.approx(0.2)
    assert full_jitter_backoff(3, rng=lambda lo, hi: hi) == pytest.approx(1.6)
    assert full_jitter_backoff(30, rng=lambda lo, hi: hi) == BACKOFF_CAP
    assert full_jitter_backoff(2, rng=lambda lo, hi: lo) == 0.0
    for attempt in range(12):
        assert 0.0 <= full_jitter_backoff(attempt) <= BACKOFF_CAP


def test_auth_error_names_the_setting_and_hides_the_secret(make_client) -> None:
    body = {"error": f"invalid tb-key {SECRET}"}
    client = make_client(answers(httpx.Response(401, json=body)))
    with pytest.raises(AuthError) as info:
        client.request("GET", "/ansatt/avdeling", params={"$top": 1})
    message = str(info.value)
    assert message.startswith("tidsbanken: GET /ansatt/avdeling -> 401: the server refused the credentials")
    assert "invalid tb-key ***" in message
    assert "TIDSBANKEN_API_KEY" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (412, PreconditionFailedError),
        (400, RefusedError),
        (422, RefusedError),
        (500, ServerError),
        (418, ConnectorError),
    ],
)
def test_error_mapping(make_client, status: int, error: type[ConnectorError]) -> None:
    client = make_client(answers(httpx.Response(status, json={"error": "why"})), max_retries=0)
    with pytest.raises(error) as info:
        client.request("PUT", "/prosjekt/Kunde")
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.method == "PUT"
    assert info.value.path == "/prosjekt/Kunde"
    assert "why" in str(info.value)


def test_validation_error_carries_field_errors(make_client) -> None:
    body = {"errors": [{"field": "name", "message": "is required"}, {"field": "email", "message": "bad"}]}
    client = make_client(answers(httpx.Response(422, json=body)))
    with pytest.raises(RefusedError) as info:
        client.request("POST", "/api/v1/customers", json={})
    assert [(f.field, f.message) for f in info.value.field_errors] == [("name", "is required"), ("email", "bad")]
    assert "name: is required" in str(info.value)


def test_plain_text_error_body_is_quoted_briefly(make_client) -> None:
    client = make_client(answers(httpx.Response(400, text="<html>" + "x" * 1000 + "</html>")))
    with pytest.raises(RefusedError) as info:
        client.request("GET", "/x")
    assert len(str(info.value)) < 400


def test_malformed_json_is_a_connector_error(make_client) -> None:
    client = make_client(answers(httpx.Response(200, text="{not json")))
    response = client.request("GET", "/x")
    with pytest.raises(ConnectorError, match="not valid JSON"):
        client.json(response)


def test_headers_are_sent_and_counts_are_per_method(make_client) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = make_client(handle)
    client.request("GET", "/a")
    client.request("POST", "/a", json={}, headers={"Idempotency-Key": "k1"})
    client.request("PATCH", "/a", json={})
    assert seen[0].headers["tb-key"] == SECRET
    assert seen[1].headers["Idempotency-Key"] == "k1"
    assert client.request_counts() == {"GET": 1, "POST": 1, "PATCH": 1}


def test_plus_of_an_offset_travels_as_percent_2b(make_client) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": []})

    client = make_client(handle)
    client.request("GET", "/prosjekt/Kunde", params={"$filter": "SistEndretDato gt 2024-05-01T12:00:00+02:00"})
    raw = seen[0].url.raw_path.decode()
    assert "%2B02%3A00" in raw
    assert "+02" not in raw
    assert seen[0].url.params["$filter"] == "SistEndretDato gt 2024-05-01T12:00:00+02:00"


def test_writes_in_flight_are_bounded(make_client) -> None:
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    gate = threading.Event()

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        gate.wait(0.05)
        with lock:
            in_flight -= 1
        return httpx.Response(200, json={})

    client = make_client(handle, concurrency=2)
    threads = [threading.Thread(target=client.request, args=("POST", "/x")) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert client.request_counts() == {"POST": 6}


def test_http_settings_from_block() -> None:
    settings = HttpSettings.from_settings({"timeout": 5, "page_size": 9999, "rate_limit": 2})
    assert settings == HttpSettings(timeout=5.0, max_retries=5, rate_limit=2.0, concurrency=8, page_size=500)
    assert HttpSettings.from_settings({}) == HttpSettings()


def test_rate_limit_spaces_requests_through_the_injected_sleep(make_client, sleeps) -> None:
    client = make_client(lambda request: httpx.Response(200, json={}), rate_limit=5)
    for _ in range(3):
        client.request("GET", "/x")
    # A token every 0.2 s: the second request waits about 0.2 s, the third about 0.4 s.
    assert len(sleeps) == 2
    assert sleeps[0] == pytest.approx(0.2, abs=0.05)
    assert sleeps[1] == pytest.approx(0.4, abs=0.05)


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
