"""The one exception tree of mapsync.

    MapsyncError                      every error mapsync raises on purpose
    ├── SpecError                     a problem in mapsync.yaml or a mapping file: file, line, key path
    │   └── SpecErrors                several SpecErrors reported at once
    ├── MappingError                  a value that does not fit its row (type, format): property, value
    ├── ConnectorError                a request that failed: method, URL path, status (never a secret)
    │   ├── TransportError            no answer: connection refused or dropped, timeout (after retries)
    │   ├── AuthError                 401/403: wrong or missing credentials
    │   ├── NotFoundError             404
    │   ├── ConflictError             409: the record exists already
    │   ├── PreconditionFailedError   412: the record changed since it was read
    │   ├── RefusedError              400/422: the server refused the body; field errors attached
    │   ├── RateLimitError            429 (after retries)
    │   ├── ServerError               5xx (after retries)
    │   └── PagingError               the server sent the same page twice, or a malformed page
    ├── StateError                    the state store failed or is at an unknown schema version
    │   ├── LockHeldError             another run holds the lock
    │   └── LockLostError             the run's lock was lost mid-run (connection dropped, taken over)
    └── PlanError                     the sync cannot be planned (unknown dataflow, guard tripped, ...)

The CLI maps them to exit codes: SpecError -> 2, everything else -> 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class MapsyncError(Exception):
    """Base of every error mapsync raises on purpose."""


@dataclass(frozen=True)
class Location:
    """Where in a YAML file something stands: file, 1-based line, and key path like rows[3].type."""

    file: str
    line: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return where


class SpecError(MapsyncError):
    """One problem in a config or mapping file."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        key = f"{self.location.path}: " if self.location.path else ""
        return f"{self.location}: {key}{self.message}"

    def sort_key(self) -> tuple[str, int, str]:
        loc = self.location
        return (loc.file, loc.line or 0, self.message) if loc else ("", 0, self.message)


class SpecErrors(SpecError):
    """Every problem found in a workspace, reported at once."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors = sorted(errors, key=SpecError.sort_key)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class MappingError(MapsyncError):
    """A value that does not fit the row it passes through."""

    def __init__(self, message: str, *, prop: str = "", value: object = None) -> None:
        self.prop = prop
        self.value = value
        super().__init__(f"{prop}: {message}" if prop else message)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ConnectorError(MapsyncError):
    """A request to a system failed. Carries method, URL path and status; never headers or secrets."""

    def __init__(
        self,
        message: str,
        *,
        connection: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        field_errors: Sequence[FieldError] = (),
    ) -> None:
        self.reason = message
        self.connection = connection
        self.method = method
        self.path = path
        self.status = status
        self.field_errors = tuple(field_errors)
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.connection:
            parts.append(f"{self.connection}:")
        if self.method:
            parts.append(f"{self.method} {self.path}")
        if self.status is not None:
            parts.append(f"-> {self.status}")
        head = " ".join(parts)
        detail = self.reason
        if self.field_errors:
            detail += " (" + "; ".join(str(f) for f in self.field_errors) + ")"
        return f"{head}: {detail}" if head else detail


class TransportError(ConnectorError):
    pass


class AuthError(ConnectorError):
    pass


class NotFoundError(ConnectorError):
    pass


class ConflictError(ConnectorError):
    pass


class PreconditionFailedError(ConnectorError):
    pass


class RefusedError(ConnectorError):
    pass


class RateLimitError(ConnectorError):
    pass


class ServerError(ConnectorError):
    pass


class PagingError(ConnectorError):
    pass


class StateError(MapsyncError):
    """The state store failed, or holds a schema newer than this mapsync knows."""


class LockHeldError(StateError):
    """Another run holds the lock on this state."""


class LockLostError(StateError):
    """The run's lock stopped being ours while it ran (its connection dropped, or another run took it
    over): the run must write nothing more."""


class PlanError(MapsyncError):
    """The sync cannot be planned or carried out as asked."""


__all__ = [
    "AuthError",
    "ConflictError",
    "ConnectorError",
    "FieldError",
    "Location",
    "LockHeldError",
    "LockLostError",
    "MappingError",
    "MapsyncError",
    "NotFoundError",
    "PagingError",
    "PlanError",
    "PreconditionFailedError",
    "RateLimitError",
    "RefusedError",
    "ServerError",
    "SpecError",
    "SpecErrors",
    "StateError",
    "TransportError",
]
