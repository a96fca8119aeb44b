"""Secrets out of sight: every place a URL can hold one, in URLs that parse and in URLs that do not."""

from __future__ import annotations

import pytest

from mapsync.redact import redact_text, redact_url

# (url, what it must show, the secrets that must not show)
URLS = [
    ("postgresql://u:hunter2@h:5432/db?schema=s", "postgresql://u:***@h:5432/db?schema=s", ["hunter2"]),
    ("postgresql://u@h/db", "postgresql://u@h/db", []),
    ("postgresql://u@h/db?password=hunter2&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require",
     ["hunter2"]),
    ("postgresql://u@h/db?sslmode=require&PassWord=a1&passwd=a2&pwd=a3&sslpassword=a4&secret=a5&token=a6"
     "&api_key=a7&key=a8",
     "postgresql://u@h/db?sslmode=require&PassWord=***&passwd=***&pwd=***&sslpassword=***&secret=***"
     "&token=***&api_key=***&key=***", ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"]),
    ("postgresql://u@h/db?pass%77ord=hunter2", "postgresql://u@h/db?pass%77ord=***", ["hunter2"]),
    # URLs that do not parse, or not as libpq reads them
    ("postgresql://u:hunter2@h:badport/db", "postgresql://u:***@h:badport/db", ["hunter2"]),
    ("postgresql://u:hunter2[@h/db", "postgresql://u:***@h/db", ["hunter2"]),
    ("postgresql://u:hun ter2@h/db", "postgresql://u:***@h/db", ["hun ter2"]),
    ("postgresql://u:p@ss/w?rd@h/db?sslmode=x", "postgresql://u:***@h/db?sslmode=x", ["p@ss", "w?rd"]),
    ("postgresql://u:pa?s=s@h/db", "postgresql://u:***@h/db", ["pa?s=s"]),
    ("postgresql://a@b:hunter2@h/db", "postgresql://a@b:***@h/db", ["hunter2"]),
    # nothing secret: left exactly as it was
    ("postgresql://h:5432/db?user=me@server", "postgresql://h:5432/db?user=me@server", []),
    ("sqlite:///var/lib/mapsync/state.db", "sqlite:///var/lib/mapsync/state.db", []),
    ("sqlite:///:memory:", "sqlite:///:memory:", []),
]


@pytest.mark.parametrize(("url", "shown", "secrets"), URLS, ids=[u for u, _, _ in URLS])
def test_redact_url_hides_every_secret(url: str, shown: str, secrets: list[str]) -> None:
    assert redact_url(url) == shown
    assert not [secret for secret in secrets if secret in redact_url(url)]


@pytest.mark.parametrize(("text", "url", "shown"), [
    # libpq quoting a piece of the password on its own
    ('unexpected spaces found in "hun ter2", use percent-encoded spaces', "postgresql://u:hun ter2@h/db",
     'unexpected spaces found in "***", use percent-encoded spaces'),
    ('invalid integer value "hunter2x" for connection option "port"', "postgresql://u:pw@h:hunter2x/db",
     'invalid integer value "hunter2x" for connection option "port"'),
    # a URL or a key=value conninfo quoted in a message
    ("cannot use postgresql://u:hunter2@h/db?token=abc: refused", "",
     "cannot use postgresql://u:***@h/db?token=***: refused"),
    ("invalid connection option host=h password=hunter2 password='two words'", "",
     "invalid connection option host=h password=*** password=***"),
    # a short secret is hidden where it stands alone, not inside other words
    ("pw: bad pw for upwards", "postgresql://u:pw@h/db", "***: bad *** for upwards"),
])
def test_redact_text_hides_secrets_quoted_in_messages(text: str, url: str, shown: str) -> None:
    assert redact_text(text, *([url] if url else [])) == shown
