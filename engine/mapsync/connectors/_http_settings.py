"""The transport settings every connection block accepts (timeout, retries, page size, answer limits).

mapsync.yaml is checked against HTTP_SETTINGS_PROPERTIES when it is loaded, so HttpSettings only reads
values already known to be in range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_PAGE_SIZE = 500
DEFAULT_MAX_PAGES = 100_000  # a sanity cap: 10 million records at the default page size


@dataclass(frozen=True)
class HttpSettings:
    """The transport knobs of one connection block in mapsync.yaml."""

    timeout: float = 30.0
    max_retries: int = 5
    rate_limit: float | None = None
    concurrency: int = 8
    page_size: int = 100
    request_deadline: float = 120.0
    max_answer_bytes: int = 64 * 1024 * 1024
    max_pages: int = DEFAULT_MAX_PAGES

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HttpSettings:
        rate = settings.get("rate_limit")
        return cls(
            timeout=float(settings.get("timeout", cls.timeout)),
            max_retries=int(settings.get("max_retries", cls.max_retries)),
            rate_limit=None if rate is None else float(rate),
            concurrency=int(settings.get("concurrency", cls.concurrency)),
            page_size=int(settings.get("page_size", cls.page_size)),
            request_deadline=float(settings.get("request_deadline", cls.request_deadline)),
            max_answer_bytes=int(settings.get("max_answer_bytes", cls.max_answer_bytes)),
            max_pages=int(settings.get("max_pages", cls.max_pages)),
        )


# The settings every connection block accepts, as JSON Schema properties; connectors add their own.
HTTP_SETTINGS_PROPERTIES: dict[str, Any] = {
    "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds per request."},
    "max_retries": {"type": "integer", "minimum": 0, "description": "Retries of a transient failure."},
    "rate_limit": {"type": "number", "exclusiveMinimum": 0, "description": "Requests per second."},
    "concurrency": {"type": "integer", "minimum": 1, "description": "Writes in flight."},
    "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "description": "Page size."},
    "request_deadline": {"type": "number", "exclusiveMinimum": 0,
                         "description": "Seconds one request may take in all, its answer included."},
    "max_answer_bytes": {"type": "integer", "minimum": 1,
                         "description": "Largest answer accepted, in bytes after decompression."},
    "max_pages": {"type": "integer", "minimum": 1,
                  "description": "Pages one listing may take before it is stopped as endless."},
}
