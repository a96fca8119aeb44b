"""The worker's HTTP endpoint: `/healthz`, `/readyz`, `/metrics` and `POST /trigger/DATAFLOW`.

The standard library's ThreadingHTTPServer on a daemon thread: each request is small and answered from
memory, except `/readyz`, which asks the state store and every connection (bounded by a short timeout).
It listens on loopback unless another host is written explicitly, logs nothing per request, and never
shows a traceback to a client.

Triggers are off unless a token is set; a request must then carry `Authorization: Bearer TOKEN`, compared
in constant time. The token is checked before the dataflow's name, so a stranger learns no names.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from mapsync.errors import MapsyncError
from mapsync.observe.metrics import Metrics
from mapsync.redact import redact_text
from mapsync.spec.model import Workspace

DEFAULT_HOST = "127.0.0.1"  # `:9100` listens on loopback: another host must be written out
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request before it is dropped
MAX_BODY = 64 * 1024  # a trigger's body is ignored; a larger one is refused unread
READY_TIMEOUT = 5.0  # seconds /readyz waits for the state store and each connection
TEXT = "text/plain; charset=utf-8"
POLL_INTERVAL = 0.1  # seconds close() may wait for the serving thread to notice

Ready = Callable[[], list[str]]
Trigger = Callable[[str], "str | None"]


class EndpointError(MapsyncError):
    """The endpoint cannot listen where it was told to."""


@dataclass(frozen=True)
class _Routes:
    metrics: Metrics
    ready: Ready
    trigger: Trigger
    dataflows: frozenset[str]
    token: str | None


class Endpoint:
    """A running endpoint; `close()` stops it and frees its port."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        """The host and port it listens on (the real port when asked for port 0)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPV6]:PORT` or `:PORT` (loopback) as (host, port)."""
    host, colon, port_text = listen.strip().rpartition(":")
    if not colon or not port_text.isdigit() or int(port_text) > 65535:
        raise EndpointError(f"listen: expected HOST:PORT (e.g. 127.0.0.1:9100), got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or DEFAULT_HOST, int(port_text)


def serve(listen: str, *, metrics: Metrics, ready: Ready, trigger: Trigger, dataflows: Collection[str],
          token: str | None) -> Endpoint:
    """Start the endpoint on `listen` ("HOST:PORT"; port 0 picks a free one) in a daemon thread."""
    host, port = parse_listen(listen)
    routes = _Routes(metrics, ready, trigger, frozenset(dataflows), token or None)
    handler = type("EndpointHandler", (_Handler,), {"routes": routes})
    server_class = _V6Server if _is_ipv6(host) else _QuietServer
    try:
        server = server_class((host, port), handler)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise EndpointError(f"cannot listen on {listen}: {reason}") from None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL},
                              name=f"mapsync-endpoint-{port}", daemon=True)
    thread.start()
    return Endpoint(server, thread)


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-answer is its own business: no traceback on stderr."""


class _V6Server(_QuietServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    routes: _Routes
    server_version = "mapsync"
    sys_version = ""
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr (a scrape every few seconds would drown the worker's own logs)."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._answer(200, "ok")
        elif path == "/readyz":
            self._readyz()
        elif path == "/metrics":
            self._metrics()
        elif path.startswith("/trigger/"):
            self._answer(405, "use POST", {"Allow": "POST"})
        else:
            self._answer(404, "not found: try /healthz, /readyz, /metrics or POST /trigger/DATAFLOW")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/trigger/"):
            self._trigger(unquote(path.removeprefix("/trigger/")))
        elif path in ("/healthz", "/readyz", "/metrics"):
            self._answer(405, "use GET", {"Allow": "GET"})
        else:
            self._answer(404, "not found")

    def _readyz(self) -> None:
        try:
            problems = self.routes.ready()
        except Exception as exc:  # a readiness check is a question: its failure is an answer, not a crash
            problems = [redact_text(str(exc) or type(exc).__name__)]
        if problems:
            self._answer(503, "\n".join(problems))
        else:
            self._answer(200, "ready")

    def _metrics(self) -> None:
        body, content_type = self.routes.metrics.render()
        self._send(200, body, content_type)

    def _trigger(self, name: str) -> None:
        if not self._drain_body():
            return
        routes = self.routes
        if routes.token is None:
            self._answer(403, "triggers are off: set trigger_token in the run: section of mapsync.yaml")
            return
        if not _bearer_matches(self.headers.get("Authorization"), routes.token):
            self._answer(401, "a trigger needs the header Authorization: Bearer TOKEN (the run: trigger_token)",
                         {"WWW-Authenticate": 'Bearer realm="mapsync"'})
            return
        if name not in routes.dataflows:
            self._answer(404, f"unknown dataflow {name!r}")
            return
        try:
            refused = routes.trigger(name)
        except MapsyncError as exc:
            self._answer(503, redact_text(str(exc)))
            return
        except Exception:  # never a traceback to a client
            self._answer(500, "internal error")
            return
        if refused is None:
            self._answer(202, f"accepted: {name}")
        else:
            self._answer(409, refused)

    def _drain_body(self) -> bool:
        """Read (and ignore) the request's body; refuse one too large to read."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._answer(413, f"a trigger takes no body (at most {MAX_BODY} bytes are read)")
            return False
        self.rfile.read(length)
        return True

    def _answer(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, (text + "\n").encode("utf-8"), TEXT, headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def _bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, credential = (header or "").strip().partition(" ")
    # compare_digest runs in time independent of where the strings differ; a wrong scheme still compares.
    matches = hmac.compare_digest(credential.strip().encode("utf-8"), token.encode("utf-8"))
    return scheme.lower() == "bearer" and matches


# -- readiness ---------------------------------------------------------------------------------------


def readiness(workspace: Workspace, *, timeout: float = READY_TIMEOUT) -> Ready:
    """A check for /readyz: the state store answers a read, and every connection answers (one cheap
    request each, as `mapsync validate --online` makes), all within `timeout` seconds."""

    def ready() -> list[str]:
        checks: dict[str, Callable[[], None]] = {"state": lambda: _check_state(workspace.state_url)}
        for name, settings in workspace.connections.items():
            checks[name] = _connection_check(name, settings, timeout)
        return _run_bounded(checks, timeout, (workspace.state_url,))

    return ready


def _check_state(url: str) -> None:
    from mapsync.state import open_store

    store = open_store(url)
    try:
        store.get_cursor("readyz", "source")  # any read: the store answers and its schema is known
    finally:
        store.close()


def _connection_check(name: str, settings: Mapping[str, Any], timeout: float) -> Callable[[], None]:
    # One attempt, as short as the probe: a retried or slow answer is an unready system.
    bounded = {**settings, "max_retries": 0, "timeout": min(float(settings.get("timeout", timeout)), timeout),
               "request_deadline": min(float(settings.get("request_deadline", timeout)), timeout)}

    def check() -> None:
        from mapsync.connectors import create_connector

        connector = create_connector(name, bounded)
        try:
            connector.check()
        finally:
            connector.close()

    return check


def _run_bounded(checks: Mapping[str, Callable[[], None]], timeout: float, urls: tuple[str, ...]) -> list[str]:
    """Run the checks side by side; the problems found, one line each (a check still running at the
    timeout is one; its daemon thread ends on its own, bounded by the connection's shortened deadline)."""
    problems: dict[str, str] = {}
    threads = [threading.Thread(target=_note_problem, args=(name, check, problems, urls), daemon=True,
                                name=f"mapsync-readyz-{name}") for name, check in checks.items()]
    for thread in threads:
        thread.start()
    ends = time.monotonic() + timeout
    for name, thread in zip(checks, threads, strict=True):
        thread.join(max(0.0, ends - time.monotonic()))
        if thread.is_alive():
            problems.setdefault(name, f"{name}: no answer within {timeout:g}s")
    return [problems[name] for name in checks if name in problems]


def _note_problem(name: str, check: Callable[[], None], problems: dict[str, str], urls: tuple[str, ...]) -> None:
    try:
        check()
    except Exception as exc:  # every failure is a reason not to be ready, told in one line
        message = redact_text(str(exc).strip() or type(exc).__name__, *urls).replace("\n", " ")
        problems[name] = message if message.startswith(f"{name}:") else f"{name}: {message}"


__all__ = ["DEFAULT_HOST", "MAX_BODY", "POLL_INTERVAL", "READY_TIMEOUT", "REQUEST_TIMEOUT", "TEXT", "Endpoint",
           "EndpointError", "Ready", "Trigger", "parse_listen", "readiness", "serve"]
