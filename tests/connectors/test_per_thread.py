"""A connection pool per thread (connectors/_per_thread.py): each thread sends through a pool of its own, a
thread that ends hands its pool to the next one, closing closes them all; HttpClient uses it on a real
socket, where no transport is given."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mapsync.connectors import http
from mapsync.connectors._per_thread import PerThreadTransport
from mapsync.connectors.http import HttpClient, HttpSettings
from mapsync.sandbox import Sandbox


class Pool(httpx.MockTransport):
    """Stands in for one thread's connection pool: answers with its own number, remembers being closed."""

    def __init__(self, number: int) -> None:
        super().__init__(lambda _: httpx.Response(200, json={"pool": number}))
        self.closed = False

    def close(self) -> None:
        self.closed = True


def in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """`work` in `count` threads running at the same time; their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        results[index] = [work() for _ in range(3)]
        barrier.wait()  # every thread holds its pool until all have sent

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_each_thread_has_a_pool_of_its_own_and_an_ended_threads_pool_is_reused() -> None:
    made: list[Pool] = []

    def make() -> Pool:
        made.append(Pool(len(made)))
        return made[-1]

    transport = PerThreadTransport(make)
    client = httpx.Client(transport=transport, base_url="http://pools.test")

    def pool_used() -> int:
        return int(client.get("/x").json()["pool"])

    first = in_threads(4, pool_used)
    assert sorted(used[0] for used in first) == [0, 1, 2, 3]
    assert all(len(set(used)) == 1 for used in first)  # a thread keeps its pool
    second = in_threads(3, pool_used)  # new threads: the ended ones' pools, no new one
    assert {used[0] for used in second} <= {0, 1, 2, 3}
    assert transport.pools == 4
    client.close()
    assert all(pool.closed for pool in made)


def test_http_client_sends_through_a_pool_per_thread_on_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[PerThreadTransport] = []

    class Recorded(PerThreadTransport):
        def __init__(self, make: Callable[[], httpx.BaseTransport]) -> None:
            super().__init__(make)
            made.append(self)

    monkeypatch.setattr(http, "PerThreadTransport", Recorded)
    with Sandbox(seed=None) as sandbox:
        env = sandbox.env()
        client = HttpClient("custompms", env["CUSTOMPMS_URL"],
                            headers={"Authorization": f"Bearer {env['CUSTOMPMS_TOKEN']}"}, settings=HttpSettings())
        with client:
            answers = in_threads(4, lambda: client.request("GET", "/api/v1/customers").status_code)
            assert [transport.pools for transport in made] == [4]
        assert answers == [[200] * 3] * 4
