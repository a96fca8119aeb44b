"""How a connector definition's `auth:` block authenticates every request: an `httpx.Auth`.

    auth = build_auth({"kind": "bearer", "token": "${token}"}, settings)   # settings: the connection block
    httpx.Client(base_url=..., auth=auth)

Kinds: `api_key` (headers), `bearer`, `basic` and `oauth2_client_credentials`. Every value may hold
`${setting}` placeholders, filled from the connection's settings in mapsync.yaml; that is where secrets
come from, and the names of those settings are what an error tells the user to check. No message ever
holds a secret: the client secret and tokens are masked in whatever a token endpoint answers.

OAuth2 client credentials: the token is fetched from the token endpoint on first use, kept until shortly
before its `expires_in` ends, and fetched again when the API answers 401 (once per request: a second 401
is the API's answer). One instance is shared by the connector's worker threads; a lock makes sure that
only one of them fetches a token while the others wait for it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from mapsync.errors import AuthError, ConnectorError, ServerError, SpecError, TransportError

KINDS = ("api_key", "bearer", "basic", "oauth2_client_credentials")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
REFRESH_BEFORE = 30.0  # seconds before expiry a token is fetched again (at most half its lifetime)
TOKEN_ATTEMPTS = 3  # a token endpoint that does not answer, or answers 5xx/429, is tried this often
TOKEN_BACKOFF = 0.2  # seconds before the second attempt; doubled for each further one


def build_auth(
    auth: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
    *,
    transport: httpx.BaseTransport | None = None,
    connection: str = "",
    timeout: float = 30.0,
) -> httpx.Auth | None:
    """The `httpx.Auth` for a definition's `auth:` block (None when there is none), with every
    `${setting}` filled from `settings`. `transport` carries the token requests of OAuth2 (tests pass the
    in-process one); `connection` names the connection in error messages."""
    if not auth:
        return None
    kind = auth.get("kind")
    values = _Settings(settings, connection)
    if kind == "api_key":
        headers = {str(name): values.fill(str(value), f"auth.headers.{name}")
                   for name, value in dict(auth.get("headers") or {}).items()}
        return HeaderAuth(headers)
    if kind == "bearer":
        token = values.fill(str(auth.get("token", "${token}")), "auth.token")
        return HeaderAuth({str(auth.get("header", "Authorization")): f"{auth.get('prefix', 'Bearer')} {token}"})
    if kind == "basic":
        username = values.fill(str(auth.get("username", "${username}")), "auth.username")
        password = values.fill(str(auth.get("password", "${password}")), "auth.password")
        return httpx.BasicAuth(username, password)
    if kind == "oauth2_client_credentials":
        return OAuth2ClientCredentials(_token_request(auth, values), transport=transport, timeout=timeout)
    raise SpecError(f"auth.kind: {kind!r} is not one of {', '.join(KINDS)}")


def auth_setting_names(auth: Mapping[str, Any] | None) -> list[str]:
    """The connection settings an `auth:` block reads, in order of first use (for "check these" hints)."""
    return _unique(PLACEHOLDER.findall(" ".join(_strings(_with_defaults(auth or {})))))


def auth_hint(auth: Mapping[str, Any] | None) -> str:
    """What to check when the server refuses the credentials, e.g. "check the settings token"."""
    names = auth_setting_names(auth)
    return f"check the setting{'s' if len(names) > 1 else ''} {', '.join(names)}" if names else ""


def auth_secrets(auth: Mapping[str, Any] | None, settings: Mapping[str, Any]) -> list[str]:
    """The values of the settings an `auth:` block reads, to be masked wherever a message might quote them."""
    return [str(settings[name]) for name in auth_setting_names(auth) if settings.get(name)]


class HeaderAuth(httpx.Auth):
    """Fixed headers on every request: API keys, or a bearer token that does not expire."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)  # HttpClient sends them as its own, with no auth flow per request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers)
        yield request


@dataclass(frozen=True)
class TokenRequest:
    """Everything needed to ask the token endpoint for a token, and to say what to check if it refuses."""

    url: str
    client_id: str
    client_secret: str
    scope: str | None
    body: str  # "form" or "json"
    client_auth: str  # "body" or "basic"
    check: str  # the settings to name when the endpoint refuses, e.g. "client_id, client_secret"
    connection: str
    extra: Mapping[str, str]  # further parameters of the token request (an audience, a resource)

    def build(self) -> httpx.Request:
        fields = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {}), **self.extra}
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic":
            pair = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            fields |= {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.body == "json":
            content = json.dumps(fields).encode()
            headers["Content-Type"] = "application/json"
        else:
            content = urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return httpx.Request("POST", self.url, headers=headers, content=content)


@dataclass(frozen=True)
class _Token:
    value: str
    fresh_until: float | None  # monotonic seconds; None: until the API refuses it


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth2 client credentials: a cached bearer token, fetched again before expiry and on a 401."""

    requires_request_body = True  # a request refused with 401 is sent again: its body must be replayable

    def __init__(
        self,
        token_request: TokenRequest,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._token_request = token_request
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        self._owns_transport = transport is None
        self._timeout = httpx.Timeout(timeout)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self.tokens_fetched = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._token_after_refusal(token)}"
            yield request

    def close(self) -> None:
        """Close the token endpoint's connections (only when this object opened them)."""
        if self._owns_transport:
            self._transport.close()

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or self._expired(self._token):
                self._token = self._fetch()
            return self._token.value

    def _token_after_refusal(self, refused: str) -> str:
        # Another thread may have fetched a new token since this one was refused: use it, fetch no other.
        with self._lock:
            if self._token is None or self._token.value == refused:
                self._token = self._fetch()
            return self._token.value

    def _expired(self, token: _Token) -> bool:
        return token.fresh_until is not None and self._clock() >= token.fresh_until

    def _fetch(self) -> _Token:
        started = self._clock()
        answer = self._answer()
        self.tokens_fetched += 1
        return self._read_token(answer, started)

    def _answer(self) -> httpx.Response:
        """The token endpoint's answer (2xx), after a few tries for failures another try may mend."""
        for attempt in range(TOKEN_ATTEMPTS):
            last = attempt == TOKEN_ATTEMPTS - 1
            try:
                response = self._send()
            except httpx.TransportError as exc:
                if last:
                    raise self._error(TransportError, f"no answer after {TOKEN_ATTEMPTS} attempts "
                                      f"({type(exc).__name__})") from None
            else:
                if response.is_success:
                    return response
                if not (response.status_code in (429, 502, 503, 504) and not last):
                    raise self._refusal(response)
            self._sleep(TOKEN_BACKOFF * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self) -> httpx.Response:
        request = self._token_request.build()
        request.extensions["timeout"] = self._timeout.as_dict()
        response = self._transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response

    def _read_token(self, response: httpx.Response, started: float) -> _Token:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self._error(AuthError, "the token endpoint's answer holds no access_token", response.status_code)
        lifetime = _seconds(body.get("expires_in")) if isinstance(body, dict) else None
        if lifetime is None:
            return _Token(token, None)
        return _Token(token, started + lifetime - min(REFRESH_BEFORE, lifetime / 2))

    def _refusal(self, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        said = self._mask(_oauth_error(response))
        said = f" ({said})" if said else ""
        if status >= 500:
            return self._error(ServerError, f"the token endpoint failed{said}", status)
        return self._error(AuthError, f"the token endpoint refused the client credentials{said}; "
                                      f"check {self._token_request.check}", status)

    def _error(self, kind: type[ConnectorError], reason: str, status: int | None = None) -> ConnectorError:
        url = httpx.URL(self._token_request.url)
        return kind(reason, connection=self._token_request.connection, method="POST",
                    path=f"{url.host}{url.path}", status=status)

    def _mask(self, text: str) -> str:
        secret = self._token_request.client_secret
        return text.replace(secret, "***") if secret else text


def _token_request(auth: Mapping[str, Any], values: _Settings) -> TokenRequest:
    secret_template = str(auth.get("client_secret", "${client_secret}"))
    id_template = str(auth.get("client_id", "${client_id}"))
    names = _unique(PLACEHOLDER.findall(f"{id_template} {secret_template}")) or ["client_id", "client_secret"]
    scope = auth.get("scope")
    return TokenRequest(
        url=_token_url(values.fill(str(auth["token_url"]), "auth.token_url"), values.base_url()),
        client_id=values.fill(id_template, "auth.client_id"),
        client_secret=values.fill(secret_template, "auth.client_secret"),
        scope=None if scope is None else values.fill(str(scope), "auth.scope"),
        body=str(auth.get("body", "form")),
        client_auth=str(auth.get("client_auth", "body")),
        check=f"the setting{'s' if len(names) > 1 else ''} {', '.join(names)}",
        connection=values.connection,
        extra={str(key): values.fill(str(value), f"auth.params.{key}")
               for key, value in dict(auth.get("params") or {}).items()},
    )


def _token_url(url: str, base_url: str | None) -> str:
    """An absolute token URL as it is; a relative one against the connection's base_url."""
    if httpx.URL(url).is_absolute_url:
        return url
    if not base_url:
        raise SpecError(f"auth.token_url: {url!r} is relative, and the connection has no base_url")
    return str(httpx.URL(base_url).join(url))


class _Settings:
    """The connection's settings, as the placeholders of an `auth:` block read them."""

    def __init__(self, settings: Mapping[str, Any], connection: str) -> None:
        self._settings = settings
        self.connection = connection

    def fill(self, template: str, key: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match[1]
            found = self._settings.get(name)
            if found is None or found == "":
                where = f"connection {self.connection!r}" if self.connection else "the connection"
                raise SpecError(f"{key}: {where} has no setting {name!r} (or it is empty)")
            return str(found)

        return PLACEHOLDER.sub(value, template)

    def base_url(self) -> str | None:
        found = self._settings.get("base_url")
        return None if found is None else str(found)


def _with_defaults(auth: Mapping[str, Any]) -> dict[str, Any]:
    """The block with the settings each kind reads when the definition does not say."""
    defaults: dict[str, dict[str, str]] = {
        "bearer": {"token": "${token}"},
        "basic": {"username": "${username}", "password": "${password}"},
        "oauth2_client_credentials": {"client_id": "${client_id}", "client_secret": "${client_secret}"},
    }
    return {**defaults.get(str(auth.get("kind")), {}), **auth}


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _seconds(value: Any) -> float | None:
    """`expires_in` as seconds: a number, or a number in a string (some servers send one)."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _oauth_error(response: httpx.Response) -> str:
    """RFC 6749's `error` and `error_description`, or the start of whatever else the endpoint said."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return " ".join(response.text.split())[:200]
    if not isinstance(body, dict):
        return ""
    words = [str(body[key]) for key in ("error", "error_description") if isinstance(body.get(key), str)]
    return ": ".join(words)[:300]


__all__ = [
    "KINDS",
    "HeaderAuth",
    "OAuth2ClientCredentials",
    "TokenRequest",
    "auth_hint",
    "auth_secrets",
    "auth_setting_names",
    "build_auth",
]
