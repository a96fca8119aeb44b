"""The auth kinds of a connector definition, against a real in-process token endpoint and API
(httpx.MockTransport handlers) that count the token requests and check every credential."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from mapsync.connectors.auth import (
    OAuth2ClientCredentials,
    auth_hint,
    auth_secrets,
    auth_setting_names,
    build_auth,
)
from mapsync.connectors.http import HttpClient, HttpSettings
from mapsync.errors import AuthError, ServerError, SpecError, TransportError

SECRET = "s3cr3t-Cl1ent-Secret"
SETTINGS = {"base_url": "https://api.ledgerly.test/v2", "client_id": "mapsync", "client_secret": SECRET}
OAUTH: dict[str, Any] = {"kind": "oauth2_client_credentials", "token_url": "https://login.ledgerly.test/oauth/token",
                         "client_id": "${client_id}", "client_secret": "${client_secret}", "scope": "contacts"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LedgerlyAuthServer:
    """A token endpoint issuing numbered tokens, and an API that accepts only tokens it may still honour."""

    def __init__(self, *, expires_in: Any = 3600, body: str = "form", client_auth: str = "body") -> None:
        self.expires_in = expires_in
        self.body = body
        self.client_auth = client_auth
        self.token_requests = 0
        self.api_requests = 0
        self.revoked: set[str] = set()
        self.token_status = 200
        self.token_answer: Any = None  # a fixed answer instead of a token
        self.seen_bodies: list[bytes] = []
        self._lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "login.ledgerly.test":
            return self._token(request)
        with self._lock:
            self.api_requests += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token.startswith("tok-") or token in self.revoked:
            return httpx.Response(401, json={"error": "invalid or expired token"})
        return httpx.Response(200, json={"data": [], "echo": request.content.decode() or None})

    def _token(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.token_requests += 1
            number = self.token_requests
            self.seen_bodies.append(request.content)
        if self.token_status != 200 or self.token_answer is not None:
            return httpx.Response(self.token_status, json=self.token_answer)
        fields = self._fields(request)
        client_id, client_secret = self._client(request, fields)
        if (client_id, client_secret) != ("mapsync", SECRET) or fields.get("grant_type") != "client_credentials":
            return httpx.Response(401, json={"error": "invalid_client",
                                             "error_description": f"unknown client or secret {client_secret}"})
        answer: dict[str, Any] = {"access_token": f"tok-{number}", "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return httpx.Response(200, json=answer)

    def _fields(self, request: httpx.Request) -> dict[str, str]:
        if self.body == "json":
            assert request.headers["Content-Type"] == "application/json"
            return dict(json.loads(request.content))
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}

    def _client(self, request: httpx.Request, fields: dict[str, str]) -> tuple[str | None, str | None]:
        if self.client_auth == "basic":
            assert "client_secret" not in fields
            encoded = request.headers.get("Authorization", "").removeprefix("Basic ")
            user, _, password = base64.b64decode(encoded).decode().partition(":")
            return user, password
        return fields.get("client_id"), fields.get("client_secret")


@pytest.fixture
def server() -> LedgerlyAuthServer:
    return LedgerlyAuthServer()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def oauth(server: LedgerlyAuthServer, clock: FakeClock | None = None, **changes: Any) -> OAuth2ClientCredentials:
    built = build_auth({**OAUTH, **changes}, SETTINGS, transport=server.transport(), connection="ledgerly")
    assert isinstance(built, OAuth2ClientCredentials)
    if clock is not None:
        built._clock = clock  # the token's lifetime measured on a clock the test moves
    built._sleep = lambda seconds: None
    return built


@pytest.fixture
def api(server: LedgerlyAuthServer, clock: FakeClock) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=SETTINGS["base_url"], transport=server.transport(), auth=oauth(server, clock)) as client:
        yield client


def test_the_token_is_fetched_once_and_reused(api: httpx.Client, server: LedgerlyAuthServer) -> None:
    for _ in range(5):
        assert api.get("/contacts").status_code == 200
    assert (server.token_requests, server.api_requests) == (1, 5)


def test_a_token_is_fetched_again_shortly_before_it_expires(
    api: httpx.Client, server: LedgerlyAuthServer, clock: FakeClock
) -> None:
    api.get("/contacts")
    clock.now += 3600 - 31  # still more than REFRESH_BEFORE (30 s) left
    api.get("/contacts")
    assert server.token_requests == 1
    clock.now += 2  # less than 30 s left: fetched before the API could refuse it
    api.get("/contacts")
    assert (server.token_requests, server.api_requests) == (2, 3)


def test_a_short_lived_token_is_kept_for_half_its_lifetime(server: LedgerlyAuthServer, clock: FakeClock) -> None:
    server.expires_in = "20"  # a string, as some servers send it
    with httpx.Client(transport=server.transport(), auth=oauth(server, clock)) as client:
        client.get("https://api.ledgerly.test/v2/contacts")
        clock.now += 9
        client.get("https://api.ledgerly.test/v2/contacts")
        assert server.token_requests == 1
        clock.now += 1
        client.get("https://api.ledgerly.test/v2/contacts")
        assert server.token_requests == 2


def test_a_refused_token_is_fetched_again_once_and_the_request_sent_again(
    api: httpx.Client, server: LedgerlyAuthServer
) -> None:
    api.get("/contacts")
    server.revoked.add("tok-1")  # revoked early, before its expiry
    answer = api.post("/contacts", json={"name": "Fjord AS"})
    assert answer.status_code == 200
    assert json.loads(answer.json()["echo"]) == {"name": "Fjord AS"}  # the body was sent again whole
    assert (server.token_requests, server.api_requests) == (2, 3)


def test_a_second_401_is_the_apis_answer(api: httpx.Client, server: LedgerlyAuthServer) -> None:
    server.revoked.update({"tok-1", "tok-2", "tok-3"})
    assert api.get("/contacts").status_code == 401
    assert (server.token_requests, server.api_requests) == (2, 2)


def test_threads_share_one_token(server: LedgerlyAuthServer) -> None:
    auth = oauth(server)
    with httpx.Client(transport=server.transport(), auth=auth) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: client.get("https://api.ledgerly.test/v2/c").status_code, range(40)))
    assert statuses == [200] * 40
    assert server.token_requests == 1


def test_threads_refused_together_fetch_one_new_token(server: LedgerlyAuthServer) -> None:
    auth = oauth(server)
    with httpx.Client(transport=server.transport(), auth=auth) as client, ThreadPoolExecutor(8) as pool:
        client.get("https://api.ledgerly.test/v2/c")
        server.revoked.add("tok-1")
        statuses = list(pool.map(lambda _: client.get("https://api.ledgerly.test/v2/c").status_code, range(40)))
    assert statuses == [200] * 40
    assert server.token_requests == 2


def test_a_token_without_expires_in_is_kept_until_refused(
    server: LedgerlyAuthServer, clock: FakeClock
) -> None:
    server.expires_in = None
    with httpx.Client(transport=server.transport(), auth=oauth(server, clock)) as client:
        client.get("https://api.ledgerly.test/v2/c")
        clock.now += 10 * 86400
        client.get("https://api.ledgerly.test/v2/c")
        assert server.token_requests == 1


@pytest.mark.parametrize(("body", "client_auth"), [("form", "body"), ("json", "body"), ("form", "basic"),
                                                   ("json", "basic")])
def test_token_request_shapes(body: str, client_auth: str) -> None:
    server = LedgerlyAuthServer(body=body, client_auth=client_auth)
    with httpx.Client(transport=server.transport(), auth=oauth(server, body=body, client_auth=client_auth)) as client:
        assert client.get("https://api.ledgerly.test/v2/c").status_code == 200
    assert server.token_requests == 1
    assert (b"contacts" in server.seen_bodies[0]) and (b"client_credentials" in server.seen_bodies[0])
    assert (SECRET.encode() in server.seen_bodies[0]) == (client_auth == "body")


def test_a_relative_token_url_is_resolved_against_base_url(server: LedgerlyAuthServer) -> None:
    settings = {**SETTINGS, "base_url": "https://login.ledgerly.test/api"}
    auth = build_auth({**OAUTH, "token_url": "/oauth/token"}, settings, transport=server.transport())
    with httpx.Client(transport=server.transport(), auth=auth) as client:
        assert client.get("https://api.ledgerly.test/v2/c").status_code == 200
    assert server.token_requests == 1


def test_refused_client_credentials_name_the_settings_never_the_secret(server: LedgerlyAuthServer) -> None:
    wrong = {**SETTINGS, "client_secret": SECRET + "-old"}
    auth = build_auth(OAUTH, wrong, transport=server.transport(), connection="ledgerly")
    with httpx.Client(transport=server.transport(), auth=auth) as client, pytest.raises(AuthError) as raised:
        client.get("https://api.ledgerly.test/v2/c")
    message = str(raised.value)
    assert message == ("ledgerly: POST login.ledgerly.test/oauth/token -> 401: the token endpoint refused the client "
                       "credentials (invalid_client: unknown client or secret ***); check the settings client_id, "
                       "client_secret")
    assert SECRET not in message


def test_an_answer_without_a_token_is_an_auth_error(server: LedgerlyAuthServer) -> None:
    server.token_answer = {"token_type": "Bearer"}
    with httpx.Client(transport=server.transport(), auth=oauth(server)) as client, pytest.raises(AuthError) as raised:
        client.get("https://api.ledgerly.test/v2/c")
    assert "holds no access_token" in str(raised.value)


def test_a_failing_token_endpoint_is_tried_three_times(server: LedgerlyAuthServer) -> None:
    server.token_status, server.token_answer = 503, {"error": "maintenance"}
    with httpx.Client(transport=server.transport(), auth=oauth(server)) as client, pytest.raises(ServerError) as raised:
        client.get("https://api.ledgerly.test/v2/c")
    assert server.token_requests == 3
    assert str(raised.value) == ("ledgerly: POST login.ledgerly.test/oauth/token -> 503: the token endpoint failed "
                                 "(maintenance)")


def test_a_token_endpoint_that_does_not_answer() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    auth = build_auth(OAUTH, SETTINGS, transport=httpx.MockTransport(refuse))
    assert isinstance(auth, OAuth2ClientCredentials)
    auth._sleep = lambda seconds: None
    with httpx.Client(transport=httpx.MockTransport(refuse), auth=auth) as client, pytest.raises(TransportError):
        client.get("https://api.ledgerly.test/v2/c")


def test_the_shared_http_client_reports_a_refused_token_as_one_line(server: LedgerlyAuthServer) -> None:
    """Through HttpClient (retries, counters), a refusing token endpoint is an AuthError, not retried."""
    wrong = {**SETTINGS, "client_secret": "wrong-secret-value"}
    auth = build_auth(OAUTH, wrong, transport=server.transport(), connection="ledgerly")
    http = HttpClient("ledgerly", SETTINGS["base_url"], headers={}, settings=HttpSettings(), auth=auth,
                      transport=server.transport())
    with http, pytest.raises(AuthError) as raised:
        http.request("GET", "/contacts")
    assert "wrong-secret-value" not in str(raised.value)
    assert (server.token_requests, server.api_requests) == (1, 0)


# -- the simple kinds ------------------------------------------------------------------------------------


def echo_headers(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=dict(request.headers))


def headers_sent(auth: httpx.Auth | None) -> dict[str, str]:
    with httpx.Client(transport=httpx.MockTransport(echo_headers), auth=auth) as client:
        return dict(client.get("https://api.test/x").json())


def test_api_key_headers() -> None:
    auth = build_auth({"kind": "api_key", "headers": {"tb-key": "${api_key}", "Ocp-Apim-Subscription-Key":
                                                       "${subscription_key}", "x-api-version": "2"}},
                      {"api_key": "k-1", "subscription_key": "sub-2"})
    sent = headers_sent(auth)
    assert (sent["tb-key"], sent["ocp-apim-subscription-key"], sent["x-api-version"]) == ("k-1", "sub-2", "2")


def test_bearer_token() -> None:
    assert headers_sent(build_auth({"kind": "bearer"}, {"token": "t-9"}))["authorization"] == "Bearer t-9"
    custom = build_auth({"kind": "bearer", "token": "${pat}", "header": "X-Token", "prefix": "Token"}, {"pat": "p"})
    assert headers_sent(custom)["x-token"] == "Token p"


def test_basic() -> None:
    sent = headers_sent(build_auth({"kind": "basic", "username": "${user}"}, {"user": "ola", "password": "pw:1"}))
    assert sent["authorization"] == "Basic " + base64.b64encode(b"ola:pw:1").decode()


def test_no_auth_block() -> None:
    assert build_auth(None, {}) is None and build_auth({}, {}) is None


def test_a_missing_setting_is_named() -> None:
    with pytest.raises(SpecError) as raised:
        build_auth({"kind": "bearer", "token": "${token}"}, {"token": ""}, connection="crm")
    assert str(raised.value) == "auth.token: connection 'crm' has no setting 'token' (or it is empty)"


def test_hint_and_secrets_name_the_settings_read() -> None:
    assert auth_setting_names(OAUTH) == ["client_id", "client_secret"]
    assert auth_setting_names({"kind": "basic"}) == ["username", "password"]
    assert auth_hint({"kind": "bearer"}) == "check the setting token"
    assert auth_secrets(OAUTH, SETTINGS) == ["mapsync", SECRET]
