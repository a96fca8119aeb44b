"""Fault injection, latency, request counting and the Sandbox's lifecycle."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner

from mapsync.cli import sandbox_cmd
from mapsync.cli._app import cli
from mapsync.sandbox import Fault, Faults, Sandbox, SeedSize
from mapsync.sandbox.faults import draw_fault

DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)
ClientFor = Callable[[Sandbox, str], httpx.Client]


def test_429_with_retry_after(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    empty_sandbox.set_faults(Faults(rate_429=1.0, retry_after=3))
    for system, path in (("tidsbanken", "/prosjekt/Kunde"), ("custompms", "/api/v1/customers")):
        response = client_for(empty_sandbox, system).get(path)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json() == {"error": "rate limited"}


def test_503(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    empty_sandbox.custompms.faults = Faults(rate_503=1.0)
    response = client_for(empty_sandbox, "custompms").get("/api/v1/customers")
    assert response.status_code == 503
    assert "error" in response.json()
    # the other server is untouched
    assert client_for(empty_sandbox, "tidsbanken").get("/prosjekt/Kunde").status_code == 200


def test_drop_closes_without_answer_and_handles_nothing(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    empty_sandbox.set_faults(Faults(rate_drop=1.0))
    client = client_for(empty_sandbox, "tidsbanken")
    with pytest.raises(DROPPED):
        client.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "A"})
    assert empty_sandbox.tidsbanken.records("Kunde") == []
    empty_sandbox.set_faults(Faults())
    assert client.get("/prosjekt/Kunde").status_code == 200  # the client reconnects


def test_drop_after_write_performs_the_write(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    empty_sandbox.set_faults(Faults(rate_drop_after_write=1.0))
    pms = client_for(empty_sandbox, "custompms")
    with pytest.raises(DROPPED):
        pms.post("/api/v1/customers", json={"name": "A"}, headers={"Idempotency-Key": "k"})
    assert len(empty_sandbox.custompms.records("customers")) == 1
    assert pms.get("/api/v1/customers").status_code == 200  # reads are answered
    empty_sandbox.set_faults(Faults())
    retried = pms.post("/api/v1/customers", json={"name": "A"}, headers={"Idempotency-Key": "k"})
    assert retried.status_code == 200
    assert len(empty_sandbox.custompms.records("customers")) == 1


def test_slow_and_latency(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    client = client_for(empty_sandbox, "tidsbanken")
    empty_sandbox.set_faults(Faults(rate_slow=1.0, slow_seconds=0.3))
    started = time.monotonic()
    assert client.get("/prosjekt/Kunde").status_code == 200
    assert time.monotonic() - started >= 0.3
    empty_sandbox.set_faults(Faults(latency=0.2))
    started = time.monotonic()
    assert client.get("/prosjekt/Kunde").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_seeded_faults_are_reproducible(make_sandbox: Callable[..., Sandbox], client_for: ClientFor) -> None:
    def statuses() -> list[int]:
        sandbox = make_sandbox(faults=Faults(rate_429=0.5, retry_after=0, seed=7))
        client = client_for(sandbox, "custompms")
        return [client.get("/api/v1/customers").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert {200, 429} == set(first)


def test_injected_faults_are_counted_by_kind(make_sandbox: Callable[..., Sandbox], client_for: ClientFor) -> None:
    sandbox = make_sandbox(faults=Faults(rate_429=0.5, retry_after=0, seed=7))
    client = client_for(sandbox, "custompms")
    statuses = [client.get("/api/v1/customers").status_code for _ in range(20)]
    assert sandbox.custompms.faults_injected == {"429": statuses.count(429)}
    assert sandbox.tidsbanken.faults_injected == {}
    sandbox.custompms.reset_counts()
    assert sandbox.custompms.faults_injected == {}


def test_draw_follows_the_rates() -> None:
    faults = Faults(rate_429=0.1, rate_503=0.1, rate_drop=0.1, rate_drop_after_write=0.1, rate_slow=0.1,
                    rate_trickle=0.1, rate_gzip_bomb=0.1, rate_deep_json=0.1, rate_redirect=0.1, seed=1)
    rng = faults.new_rng()
    drawn = {draw_fault(faults, rng) for _ in range(400)}
    assert drawn == set(Fault)  # NONE included: the rates add up to 0.9
    assert draw_fault(Faults(), rng) is Fault.NONE
    with pytest.raises(ValueError):
        Faults(rate_429=1.5)
    with pytest.raises(ValueError):
        Faults(rate_429=0.6, rate_503=0.6)


def test_direct_calls_ignore_faults(empty_sandbox: Sandbox) -> None:
    empty_sandbox.set_faults(Faults(rate_drop=1.0, latency=5))
    empty_sandbox.tidsbanken.put("Kunde", {"Id": "K1", "Navn": "A"})
    empty_sandbox.custompms.create("customers", {"name": "A"})
    assert empty_sandbox.tidsbanken.request_count == 0


def test_every_request_is_counted(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    client = client_for(empty_sandbox, "tidsbanken")
    client.get("/prosjekt/Kunde", params={"$top": 5})
    client.get("/prosjekt/Kunde")
    client.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "A"})
    empty_sandbox.set_faults(Faults(rate_429=1.0))
    client.get("/prosjekt/Kunde('K1')")
    with httpx.Client(base_url=empty_sandbox.tidsbanken.url) as anonymous:
        anonymous.get("/ansatt/avdeling")  # a 401 counts too
    assert empty_sandbox.tidsbanken.request_count == 5
    assert empty_sandbox.tidsbanken.requests == {
        ("GET", "/prosjekt/Kunde"): 2,
        ("POST", "/prosjekt/Kunde"): 1,
        ("GET", "/prosjekt/Kunde('K1')"): 1,
        ("GET", "/ansatt/avdeling"): 1,
    }
    assert empty_sandbox.custompms.request_count == 0
    empty_sandbox.tidsbanken.reset_counts()
    assert empty_sandbox.tidsbanken.request_count == 0


def test_parallel_requests_are_served_and_counted(sandbox: Sandbox) -> None:
    headers = {"tb-key": sandbox.tidsbanken.api_key, "Ocp-Apim-Subscription-Key": sandbox.tidsbanken.subscription_key}

    def fetch(_: int) -> int:
        with httpx.Client(base_url=sandbox.tidsbanken.url, headers=headers) as client:
            return sum(client.get("/prosjekt/Kunde").status_code == 200 for _ in range(25))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(fetch, range(8))) == 200
    assert sandbox.tidsbanken.request_count == 200


def test_env_and_lifecycle() -> None:
    sandbox = Sandbox(seed=SeedSize(1, 2, 3), tidsbanken_api_key="k", custompms_token="t")
    with pytest.raises(RuntimeError):
        _ = sandbox.tidsbanken.url
    assert len(sandbox.tidsbanken.records("Prosjekt")) == 3  # direct access works before start
    with sandbox as started:
        env = started.env()
        assert env["TIDSBANKEN_URL"].startswith("http://127.0.0.1:")
        assert env["TIDSBANKEN_API_KEY"] == "k"
        assert env["TIDSBANKEN_SUBSCRIPTION_KEY"] == "sandbox-subscription-key"
        assert env["CUSTOMPMS_URL"] == started.custompms.url
        assert env["CUSTOMPMS_TOKEN"] == "t"
        # an idle keep-alive connection must not keep stop() waiting (nor leak a socket)
        client = httpx.Client(base_url=started.custompms.url, headers={"Authorization": "Bearer t"})
        assert client.get("/api/v1/customers").status_code == 200
    assert not sandbox.tidsbanken.running
    client.close()


# -- hostile answers ---------------------------------------------------------------------------------------


def test_trickle_sends_the_body_a_byte_at_a_time(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    client = client_for(empty_sandbox, "custompms")
    whole = client.get("/api/v1/customers").content
    empty_sandbox.set_faults(Faults(rate_trickle=1.0, trickle_seconds=0.01))
    with client.stream("GET", "/api/v1/customers") as response:
        assert response.status_code == 200
        pieces = list(response.iter_raw())
    assert b"".join(pieces) == whole
    assert len(pieces) > 1
    assert empty_sandbox.custompms.faults_injected == {"trickle": 1}


def test_gzip_bomb_is_small_on_the_wire_and_huge_inflated(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    size = 20 * 1024 * 1024
    empty_sandbox.set_faults(Faults(rate_gzip_bomb=1.0, gzip_bomb_bytes=size))
    with client_for(empty_sandbox, "tidsbanken").stream("GET", "/prosjekt/Kunde") as response:
        assert response.headers["Content-Encoding"] == "gzip"
        wire = b"".join(response.iter_raw())
    assert len(wire) < size // 500
    inflated = zlib.decompress(wire, zlib.MAX_WBITS | 16)
    assert len(inflated) == size
    assert json.loads(inflated) == {}


def test_deep_json_cannot_be_parsed_recursively(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    empty_sandbox.set_faults(Faults(rate_deep_json=1.0, deep_json_depth=50_000))
    response = client_for(empty_sandbox, "tidsbanken").get("/prosjekt/Kunde")
    assert response.status_code == 200
    assert response.content == b"[" * 50_000 + b"]" * 50_000
    with pytest.raises(RecursionError):
        response.json()


def test_redirect_points_elsewhere_and_handles_nothing(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    empty_sandbox.set_faults(Faults(rate_redirect=1.0, redirect_to="http://other.invalid/x?session=s"))
    response = client_for(empty_sandbox, "tidsbanken").post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "A"})
    assert response.status_code == 302
    assert response.headers["Location"] == "http://other.invalid/x?session=s"
    assert empty_sandbox.tidsbanken.records("Kunde") == []


def test_paths_narrow_where_faults_happen(empty_sandbox: Sandbox, client_for: ClientFor) -> None:
    empty_sandbox.set_faults(Faults(rate_503=1.0, paths=("/ansatt/avdeling",)))
    client = client_for(empty_sandbox, "tidsbanken")
    assert client.get("/ansatt/avdeling").status_code == 503
    assert client.get("/ansatt/avdeling('A1')").status_code == 503
    assert client.get("/prosjekt/Kunde").status_code == 200
    assert empty_sandbox.tidsbanken.faults_injected == {"503": 2}


def test_sandbox_command_exposes_the_hostile_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Faults] = []

    def describe(sandbox: Sandbox) -> str:
        seen.append(sandbox.tidsbanken.faults)
        return ""

    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sandbox_cmd, "describe", describe)
    monkeypatch.setattr(sandbox_cmd, "wait_for_interrupt", interrupt)
    result = CliRunner().invoke(cli, [
        "sandbox", "--tidsbanken-port", "0", "--custompms-port", "0", "--empty",
        "--rate-trickle", "0.1", "--trickle-seconds", "0.5", "--rate-gzip-bomb", "0.2", "--gzip-bomb-bytes", "1000",
        "--rate-deep-json", "0.3", "--rate-redirect", "0.4", "--redirect-to", "http://x.invalid/",
        "--fault-path", "/ansatt", "--fault-path", "/api/v1/projects",
    ])
    assert result.exit_code == 0, result.output
    faults = seen[0]
    assert (faults.rate_trickle, faults.trickle_seconds, faults.rate_gzip_bomb, faults.gzip_bomb_bytes) == \
        (0.1, 0.5, 0.2, 1000)
    assert (faults.rate_deep_json, faults.rate_redirect, faults.redirect_to) == (0.3, 0.4, "http://x.invalid/")
    assert faults.paths == ("/ansatt", "/api/v1/projects")
    refused = CliRunner().invoke(cli, ["sandbox", "--tidsbanken-port", "0", "--custompms-port", "0",
                                       "--rate-deep-json", "0.6", "--rate-redirect", "0.6"])
    assert refused.exit_code == 2
    assert "add up to more than 1" in refused.output
