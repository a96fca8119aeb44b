"""Fault injection, latency, request counting and the Sandbox's lifecycle."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

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
    faults = Faults(rate_429=0.2, rate_503=0.2, rate_drop=0.2, rate_drop_after_write=0.2, rate_slow=0.2, seed=1)
    rng = faults.new_rng()
    drawn = {draw_fault(faults, rng) for _ in range(200)}
    assert drawn == set(Fault) - {Fault.NONE}
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
