"""Serves any handler on a socket: `SocketServer(exchange)` runs one HTTP/1.1 server thread on loopback
and carries out the outcome of each request, including what only a connection can do (close without an
answer, trickle the body)."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from mapsync.sandbox._http import Request, Response, parse_query
from mapsync.sandbox._injector import Outcome

Exchange = Callable[[Request], Outcome]


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of parallel clients must not be refused at connect

    def __init__(self, address: tuple[str, int], exchange: Exchange) -> None:
        self.exchange = exchange
        self._open: set[socket.socket] = set()
        self._open_changed = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (timeouts, retries under faults) is normal here, not worth
        # a traceback on stderr; anything else is an emulator bug and is shown.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._open_changed:
            self._open.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._open_changed:
            self._open.discard(connection)
            self._open_changed.notify_all()

    def close_open_connections(self, wait: float) -> None:
        """Wake handler threads parked on idle keep-alive connections so they close their sockets."""
        with self._open_changed:
            for connection in list(self._open):
                with contextlib.suppress(OSError):  # already closed by the peer
                    connection.shutdown(socket.SHUT_RDWR)
            self._open_changed.wait_for(lambda: not self._open, timeout=wait)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY, headers and body in two segments meet the client's delayed ACK: +40 ms.
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection is closed after this many seconds

    def _http_server(self) -> _HttpServer:
        return cast(_HttpServer, self.server)

    def setup(self) -> None:
        super().setup()
        self._http_server().track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._http_server().untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests and the CLI would drown in access logs

    def do_GET(self) -> None:
        outcome = self._http_server().exchange(self._read_request())
        if outcome.response is None:
            self.close_connection = True  # the client sees the server disconnect
        else:
            self._write(outcome.response, trickle=outcome.trickle)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_request(self) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        return Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_query(parts.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )

    def _write(self, response: Response, *, trickle: float) -> None:
        """Headers at once, then the body: whole, or a byte at a time after a `trickle` seconds' pause each."""
        payload, headers = response.payload()
        if "Date" in headers:  # the emulator's own clock, which a test may have set
            self.log_request(response.status)
            self.send_response_only(response.status)
            self.send_header("Server", self.version_string())
        else:
            self.send_response(response.status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not trickle:
            if payload:
                self.wfile.write(payload)
            return
        self.wfile.flush()
        for index in range(len(payload)):
            time.sleep(trickle)
            self.wfile.write(payload[index:index + 1])  # raises once the client has hung up


class SocketServer:
    """One handler served on host:port (0 picks a free port) by a daemon thread, until `stop()`."""

    def __init__(self, exchange: Exchange, *, host: str = "127.0.0.1", port: int = 0, name: str = "") -> None:
        self._httpd = _HttpServer((host, port), exchange)
        self.host = host
        self.port = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},  # how quickly stop() returns
            name=f"{name or 'sandbox'}:{self.port}", daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_open_connections(wait=2.0)
        self._thread.join()


__all__ = ["Exchange", "SocketServer"]
