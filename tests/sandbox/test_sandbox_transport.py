"""The emulators as plain handlers: `handle(request)` and `transport()` answer in process exactly as the
socket server does, with the faults drawn the same way."""

from __future__ import annotations

import httpx
import pytest

from mapsync.sandbox import CustompmsEmulator, Faults, Sandbox, TidsbankenEmulator
from mapsync.sandbox._http import Request

PMS_AUTH = {"Authorization": "Bearer sandbox-pms-token"}


def test_handle_is_a_plain_function_of_the_request() -> None:
    pms = CustompmsEmulator()
    pms.create("customers", {"name": "Acme"})
    request = Request("GET", "/api/v1/customers", {"limit": "5"}, {"authorization": "Bearer sandbox-pms-token"}, b"")
    response = pms.handle(request)
    assert response.status == 200
    assert [record["name"] for record in response.body["data"]] == ["Acme"]
    assert pms.requests == {}  # handle() is below counting and faults; exchange() counts


def test_the_transport_answers_as_the_socket_does(empty_sandbox: Sandbox) -> None:
    empty_sandbox.custompms.create("customers", {"name": "Acme"})
    in_process = CustompmsEmulator()
    in_process.create("customers", {"name": "Acme"})
    with httpx.Client(transport=in_process.transport(), base_url="http://pms.test") as client:
        local = client.post("/api/v1/customers", json={"name": 5, "colour": "red"}, headers=PMS_AUTH)
    remote = httpx.post(f"{empty_sandbox.custompms.url}/api/v1/customers", json={"name": 5, "colour": "red"},
                        headers=PMS_AUTH)
    assert (local.status_code, local.json()) == (remote.status_code, remote.json())
    assert local.json()["errors"] == [
        {"field": "name", "message": "expected string, got integer"},
        {"field": "colour", "message": "unknown property"},
    ]
    assert in_process.requests[("POST", "/api/v1/customers")] == 1
    assert [entry.status for entry in in_process.write_log] == [422]


def test_a_dropped_connection_in_process_is_what_httpx_sees_from_a_server_that_hangs_up() -> None:
    tb = TidsbankenEmulator(faults=Faults(rate_drop_after_write=1.0))
    auth = {"tb-key": tb.api_key, "Ocp-Apim-Subscription-Key": tb.subscription_key}
    with httpx.Client(transport=tb.transport(), base_url="http://tb.test") as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/prosjekt/Kunde", json={"Id": "K1", "Navn": "Acme"}, headers=auth)
        assert client.get("/prosjekt/Kunde", headers=auth).status_code == 200  # reads are not dropped
    assert tb.get("Kunde", "K1") is not None  # stored; only the answer was lost
    assert tb.faults_injected == {"drop_after_write": 1}


def test_answers_instead_of_the_request_are_given_in_process_too() -> None:
    pms = CustompmsEmulator(faults=Faults(rate_429=1.0, retry_after=3))
    with httpx.Client(transport=pms.transport(), base_url="http://pms.test") as client:
        response = client.get("/api/v1/customers", headers=PMS_AUTH)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "3")
