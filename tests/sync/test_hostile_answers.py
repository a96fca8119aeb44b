"""Hostile answers from an API, end to end through `mapsync apply` against the emulators: each fails the one
dataflow that met it with one clear line, the other dataflows of the run still sync, nothing half-read is
trusted, and a run without the fault converges with no duplicates."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_expect import assert_in_sync, assert_no_duplicates
from sync_harness import FLOWS, Harness, Run, all_links

from mapsync.sandbox import Faults
from mapsync.sandbox.faults import gzip_bomb


@pytest.fixture
def hs(make_harness: Callable[..., Harness], sqlite_url: str) -> Harness:
    """These answers come over real connections: the emulators on sockets."""
    return make_harness(sqlite_url, socket=True)


AVDELING = "/ansatt/avdeling"  # the Tidsbanken listing (and reads) of the first dataflow, avdeling-customer
FAILED_FLOW, OTHER_FLOW = "avdeling-customer", "kunde-customer"


def assert_only_the_first_dataflow_failed(h: Harness, run: Run, message: str) -> None:
    assert run.exit_code == 1, run.output
    failed = run.counts(FAILED_FLOW)
    assert failed["status"] == "failed", failed
    assert any(message in error for error in failed["errors"]), failed["errors"]
    assert message in run.stderr
    assert "Traceback" not in run.output
    other = run.counts(OTHER_FLOW)
    assert other["status"] == "ok", other
    assert other["created"] == len(h.sb.tidsbanken.records("Kunde"))
    # Nothing of the failed listing is trusted: no cursor, no link.
    assert h.store().get_cursor(FAILED_FLOW, "source") is None
    assert h.links(FAILED_FLOW) == {}


def assert_converges(h: Harness) -> None:
    h.sb.set_faults(Faults())
    h.converge(attempts=3)
    assert_no_duplicates(h.sb)
    assert_in_sync(h.sb, all_links(h))
    settled = h.writes()
    assert h.apply("--full").exit_code == 0
    assert h.writes() == settled


def test_a_trickled_answer_is_cut_by_the_request_deadline(hs: Harness) -> None:
    # httpx's timeout is per read: a byte every 0.3 s never trips a 30 s read timeout, only the total deadline.
    hs.set_connection("tidsbanken", request_deadline=1, max_retries=0)
    hs.sb.tidsbanken.faults = Faults(rate_trickle=1.0, trickle_seconds=0.3, paths=(AVDELING,))
    run = hs.apply()
    assert_only_the_first_dataflow_failed(hs, run, "GET /ansatt/avdeling: the answer did not finish within "
                                                   "request_deadline 1s (1 attempt)")
    assert_converges(hs)


def test_a_gzip_bomb_is_refused_at_the_size_cap_in_bounded_memory(hs: Harness) -> None:
    hs.set_connection("tidsbanken", max_answer_bytes=1024 * 1024)
    bomb_size = 200 * 1024 * 1024
    gzip_bomb(bomb_size)  # built (and cached) before measuring: the emulator's work is not the client's
    hs.sb.tidsbanken.faults = Faults(rate_gzip_bomb=1.0, gzip_bomb_bytes=bomb_size, paths=(AVDELING,))
    tracemalloc.start()
    try:
        run = hs.apply()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_only_the_first_dataflow_failed(hs, run, "the answer is larger than max_answer_bytes (1048576 bytes, "
                                                   "after decompression)")
    # Inflated whole, the bomb would take 200 MB (twice that while httpx joins it); refused at 1 MiB it
    # never holds more than the cap and a decompression step.
    assert peak < 40 * 1024 * 1024, f"peak traced memory {peak / 2**20:.0f} MiB"
    assert run.report is not None
    assert run.report["requests"]["tidsbanken"]["GET"] >= 1
    assert_converges(hs)


def test_json_nested_too_deeply_fails_that_listing_only(hs: Harness) -> None:
    hs.converge()
    links_before = all_links(hs)
    cursors_before = {flow: hs.store().get_cursor(flow, "source") for flow in FLOWS}
    customers_before = len(hs.sb.custompms.records("customers"))
    kunde = hs.sb.tidsbanken.records("Kunde")[0]
    hs.sb.tidsbanken.edit("Kunde", kunde["Id"], Navn="Dypt Nestet AS")
    hs.sb.tidsbanken.faults = Faults(rate_deep_json=1.0, paths=(AVDELING,))

    run = hs.apply("--full")  # a full scan whose listing fails must neither unlink nor delete anything
    assert run.exit_code == 1, run.output
    failed = run.counts(FAILED_FLOW)
    assert failed["status"] == "failed"
    assert any("tidsbanken: GET /ansatt/avdeling -> 200: the answer is nested too deeply to read" in error
               for error in failed["errors"]), failed["errors"]
    assert "Traceback" not in run.output
    assert run.counts(OTHER_FLOW)["status"] == "ok"
    assert run.counts(OTHER_FLOW)["updated"] == 1
    assert all_links(hs)[FAILED_FLOW] == links_before[FAILED_FLOW]
    assert hs.store().get_cursor(FAILED_FLOW, "source") == cursors_before[FAILED_FLOW]
    assert len(hs.sb.custompms.records("customers")) == customers_before
    assert run.counts(FAILED_FLOW)["deleted"] == run.counts(FAILED_FLOW)["unlinked"] == 0
    assert_converges(hs)


def test_a_redirect_names_its_status_and_host_but_never_its_query(hs: Harness) -> None:
    secret = "session-token-0123456789"
    hs.sb.tidsbanken.faults = Faults(rate_redirect=1.0, redirect_to=f"https://login.elsewhere.test/sso?t={secret}",
                                     paths=(AVDELING,))
    run = hs.apply()
    assert_only_the_first_dataflow_failed(
        hs, run, "tidsbanken: GET /ansatt/avdeling -> 302: the server answered with a redirect (302) to host "
                 "login.elsewhere.test; mapsync does not follow redirects: check base_url")
    assert "not valid JSON" not in run.output
    assert secret not in run.output
    assert "/sso" not in run.output
    assert_converges(hs)


# -- TLS ---------------------------------------------------------------------------------------------------


class _CountingTlsServer(http.server.ThreadingHTTPServer):
    """An HTTPS server with a self-signed certificate that counts the connections it accepts."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.accepted = 0

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        self.accepted += 1
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client refuses the certificate: the handshake fails here too, as it should


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[_CountingTlsServer]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _CountingTlsServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_refused_certificate_fails_at_once_with_a_clear_message(hs: Harness,
                                                                  tls_server: _CountingTlsServer) -> None:
    hs.set_connection("tidsbanken", base_url=f"https://127.0.0.1:{tls_server.server_address[1]}")
    run = hs.apply("--dataflow", FAILED_FLOW)
    assert run.exit_code == 1, run.output
    failed = run.counts(FAILED_FLOW)
    assert failed["status"] == "failed"
    assert any("TLS certificate verification failed for host 127.0.0.1: self-signed certificate" in error
               for error in failed["errors"]), failed["errors"]
    assert "Traceback" not in run.output
    assert run.report is not None
    assert run.report["requests"]["tidsbanken"] == {"GET": 1}  # not retried as if it were transient
    assert tls_server.accepted == 1
