"""Fuzzing the answers a server controls: malformed JSON, wrong types, missing keys, huge pages.

Each must end in a ConnectorError (one clear message naming method and path), never another exception;
and a sync run meeting them must not half-write its state: no link without a record behind it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapsync.connectors import create_connector
from mapsync.errors import ConnectorError
from mapsync.sandbox import Sandbox, SeedSize
from mapsync.spec.loader import load_workspace
from mapsync.state import open_store
from mapsync.sync.runner import SyncRun

REPO = Path(__file__).resolve().parents[2]
TB = {"type": "tidsbanken", "base_url": "https://tb.test", "api_key": "K", "subscription_key": "S",
      "max_retries": 0}
PMS = {"type": "custompms", "base_url": "https://pms.test", "token": "T", "max_retries": 0}

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    st.dictionaries(st.sampled_from(["value", "data", "next_cursor", "@odata.context", "Id", "id"]), json_values,
                    max_size=4).map(lambda v: json.dumps(v).encode()),
    st.lists(st.dictionaries(st.sampled_from(["Id", "id", "SistEndretDato", "updated_at", "deleted", "Navn"]),
                             json_values, max_size=5), max_size=5)
    .map(lambda records: json.dumps({"value": records, "data": records, "next_cursor": None}).encode()),
)
statuses = st.sampled_from([200, 200, 200, 201, 204, 400, 404, 409, 412, 418, 422, 500])


def _connector(settings: dict[str, Any], status: int, body: bytes) -> Any:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    return create_connector(settings["type"], settings, transport=transport)


def _exercise(connector: Any, entity: str) -> None:
    for call in (lambda: list(connector.list_changes(entity, None)),
                 lambda: connector.read(entity, "1"),
                 lambda: connector.create(entity, {"Navn": "x", "name": "x"}, idempotency_key="k1"),
                 lambda: connector.update(entity, "1", {"Navn": "y", "name": "y"},
                                          current={"Id": "1", "id": "1", "version": 1, "Navn": "x"})):
        try:
            call()
        except ConnectorError as exc:
            message = str(exc)
            assert "\n" not in message and message, message
            assert "K" not in message.split(":", maxsplit=1)[0] or "tidsbanken" in message or "custompms" in message


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, body=bodies)
def test_tidsbanken_answers_end_in_connector_errors_only(status: int, body: bytes) -> None:
    connector = _connector(TB, status, body)
    try:
        _exercise(connector, "Kunde")
    finally:
        connector.close()


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, body=bodies)
def test_custompms_answers_end_in_connector_errors_only(status: int, body: bytes) -> None:
    connector = _connector(PMS, status, body)
    try:
        _exercise(connector, "Customer")
    finally:
        connector.close()


def test_a_huge_page_is_streamed_not_refused() -> None:
    records = [{"Id": f"K{i}", "Navn": "x", "SistEndretDato": "2024-05-01T12:00:00.000+02:00"} for i in range(5000)]
    body = json.dumps({"@odata.context": "x", "value": records}).encode()
    served = {"done": False}

    def answer(request: httpx.Request) -> httpx.Response:
        if served["done"]:
            return httpx.Response(200, json={"@odata.context": "x", "value": []})
        served["done"] = True
        return httpx.Response(200, content=body)

    connector = create_connector("tidsbanken", TB, transport=httpx.MockTransport(answer))
    try:
        assert len({change.id for change in connector.list_changes("Kunde", None)}) == 5000
    finally:
        connector.close()


def test_garbage_create_answers_leave_no_half_written_state(tmp_path: Path) -> None:
    """Custompms answers every create with 200 and a body that is no record: nothing may be linked."""
    shutil.copy(REPO / "mapsync.yaml", tmp_path / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    with Sandbox(seed=SeedSize(2, 4, 4), rng_seed=3) as sandbox:
        env = sandbox.env() | {"MAPSYNC_STATE": f"sqlite:///{tmp_path / 'state.db'}"}
        workspace = load_workspace(tmp_path / "mapsync.yaml", env=env)

        def garbage(request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                return httpx.Response(200, content=b'{"data": [1, 2, 3]}')
            return httpx.Response(200, json={"data": [], "next_cursor": None})

        pms = create_connector("custompms", workspace.connections["custompms"] | {"max_retries": 0},
                               transport=httpx.MockTransport(garbage))
        with SyncRun(workspace, connectors={"custompms": pms}) as run:
            report = run.apply()
        pms.close()
        assert report.status != "ok"
        assert report.total.created == 0 and report.total.failed > 0
        store = open_store(workspace.state_url)
        try:
            assert list(store.iter_links()) == []
            assert {d.dataflow for d in store.iter_dead_letters()} >= {"avdeling-customer", "kunde-customer"}
        finally:
            store.close()
