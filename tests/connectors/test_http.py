"""The shared HTTP layer against httpx.MockTransport: retries, Retry-After, backoff, errors, counters."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from http_kit import SECRET, answers

from mapsync.connectors.http import (
    BACKOFF_CAP,
    RETRY_AFTER_CAP,
    HttpClient,
    HttpSettings,
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
    settings = HttpSettings.from_settings({"timeout": 5, "page_size": 250, "rate_limit": 2})
    assert settings == HttpSettings(timeout=5.0, max_retries=5, rate_limit=2.0, concurrency=8, page_size=250)
    assert HttpSettings.from_settings({}) == HttpSettings()


def test_rate_limit_spaces_requests_through_the_injected_sleep(make_client, sleeps) -> None:
    client = make_client(lambda request: httpx.Response(200, json={}), rate_limit=5)
    for _ in range(3):
        client.request("GET", "/x")
    # A token every 0.2 s: the second request waits about 0.2 s, the third about 0.4 s.
    assert len(sleeps) == 2
    assert sleeps[0] == pytest.approx(0.2, abs=0.05)
    assert sleeps[1] == pytest.approx(0.4, abs=0.05)


def test_paths_merge_with_base_url_as_httpx_merges_them_once_per_path(sleeps, monkeypatch) -> None:
    seen: list[httpx.URL] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={})

    base = "https://api.example.test/v2"
    paths = ["/customers", "customers/a%2Fb?x=1 2", "https://other.example.test/next?page=2", "/customers"]
    with HttpClient("custompms", base, headers={}, settings=HttpSettings(), transport=httpx.MockTransport(handle),
                    sleep=sleeps) as client, httpx.Client(base_url=base) as plain:
        merges = 0
        copy_with = httpx.URL.copy_with

        def counted(url: httpx.URL, **changes: object) -> httpx.URL:
            nonlocal merges
            merges += "raw_path" in changes
            return copy_with(url, **changes)

        monkeypatch.setattr(httpx.URL, "copy_with", counted)
        for path in paths:
            client.request("GET", path)
        monkeypatch.undo()
        assert seen == [plain.build_request("GET", path).url for path in paths]
    assert merges == 2  # the repeated relative path is merged once; an absolute URL never


def test_fixed_auth_headers_are_sent_without_an_auth_flow_per_request(sleeps, monkeypatch) -> None:
    from mapsync.connectors.auth import HeaderAuth

    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    monkeypatch.setattr(HeaderAuth, "auth_flow", lambda *_: pytest.fail("an auth flow ran"))
    auth = HeaderAuth({"Authorization": "Bearer T-1", "x-api-key": "K-2"})
    with HttpClient("custompms", "https://api.example.test", headers={"x-api-key": "overridden"}, auth=auth,
                    settings=HttpSettings(), transport=httpx.MockTransport(handle), sleep=sleeps) as client:
        client.request("POST", "/customers", json={}, headers={"Idempotency-Key": "k"})
    assert (seen[0].headers["Authorization"], seen[0].headers["x-api-key"]) == ("Bearer T-1", "K-2")
    assert seen[0].headers["Idempotency-Key"] == "k"
