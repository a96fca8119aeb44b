"""Secrets out of sight: the one place that hides them in URLs and in the text of errors.

A state URL (or any URL a person configured) may carry a secret in two places: the password of its
userinfo (`postgresql://user:secret@host/db`) and a query parameter (`?password=secret`, `&token=...`).
`redact_url` replaces each with `***` working on the text itself, not on a parse of it, so it also
covers URLs that do not parse (a bad port, a stray `[`, an unencoded `@` or `?` in the password), which
are exactly the ones that end up in error messages.

`redact_text` cleans a message that may quote such a URL or a libpq `key=value` string, or echo a
secret on its own (libpq says `unexpected spaces found in "the password"`): pass the URLs whose
secrets it must look for.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# Query parameters (and libpq keywords) whose value is a secret, compared case-insensitively.
SECRET_KEYS = frozenset({
    "access_token", "api_key", "apikey", "client_secret", "key", "pass", "passwd", "password", "pwd",
    "secret", "sslpassword", "token",
})

# scheme://user:password@ : the user holds no ":" or "/"; the password runs to the last "@" before the
# query (found below), so an unencoded "@", "/", "?" or "#" in it is still covered.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/]*:)(?P<rest>.*)", re.DOTALL)
_PARAM = re.compile(r"(?P<head>[?&](?P<key>[^=&?]*)=)(?P<value>[^&]*)")
# a URL quoted inside a message: up to white space or a closing quote
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")
# libpq's key=value conninfo: password=secret or password='se cret' (not the punctuation after it)
_KEYWORD = re.compile(r"(?P<head>\b(?P<key>[A-Za-z_]+)\s*=\s*)"
                      r"(?P<value>'(?:[^'\\]|\\.)*'|[^\s&;'\"]*[^\s&;'\":,.)])")


def _is_secret(key: str) -> bool:
    return unquote(key).strip().lower() in SECRET_KEYS


def _query_start(url: str) -> int:
    """Where the query begins: the last "?" followed by something like key=value (a "?" that only
    stands in a password is followed by no "="); len(url) when there is none."""
    at = url.rfind("?")
    while at >= 0:
        if "=" in url[at:]:
            return at
        at = url.rfind("?", 0, at)
    return len(url)


def _password_span(url: str) -> tuple[int, int] | None:
    match = _USERINFO.match(url)
    if match is None:
        return None
    start = match.end("head")
    query = _query_start(url)
    end = url.rfind("@", start, query)
    if end < 0 and "/" not in url[start:query]:
        end = url.rfind("@", start)  # the "?" was in the password after all (a host:port/path has a "/")
    return (start, end) if end >= start else None


def redact_url(url: str) -> str:
    """`url` with its userinfo password and every secret query parameter replaced by ***."""
    span = _password_span(url)
    if span is not None:
        start, end = span
        url = url[:start] + MASK + url[end:]
    return _PARAM.sub(lambda m: m["head"] + MASK if _is_secret(m["key"]) and m["value"] else m[0], url)


def secrets_of(url: str) -> list[str]:
    """The secrets `url` carries, as written and percent-decoded, longest first."""
    found: set[str] = set()
    span = _password_span(url)
    if span is not None and span[1] > span[0]:
        found.add(url[span[0]:span[1]])
    for match in _PARAM.finditer(url):
        if _is_secret(match["key"]) and match["value"]:
            found.add(match["value"])
    found |= {unquote(secret) for secret in found}
    found |= {unquote(secret.replace("+", " ")) for secret in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def _redact_quoted_url(match: re.Match[str]) -> str:
    url = match[0].rstrip(":,.;)")  # the punctuation of the sentence around it
    return redact_url(url) + match[0][len(url):]


def redact_text(text: str, *urls: str) -> str:
    """`text` with the secrets of `urls` hidden wherever they appear, and every URL or `key=value`
    secret it quotes redacted."""
    for secret in (s for url in urls for s in secrets_of(url)):
        # A short secret is hidden only where it stands alone, so "pw" does not mangle every word.
        pattern = re.escape(secret) if len(secret) >= 4 else rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"
        text = re.sub(pattern, MASK, text)
    text = _URL_IN_TEXT.sub(_redact_quoted_url, text)
    return _KEYWORD.sub(lambda m: m["head"] + MASK if _is_secret(m["key"]) else m[0], text)


__all__ = ["MASK", "SECRET_KEYS", "redact_text", "redact_url", "secrets_of"]
