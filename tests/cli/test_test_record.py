"""`mapsync test --record DATAFLOW:ID`: one live record (from the emulators, over HTTP) mapped both ways,
with its linked partner; nothing written. 0 when shown, 1 when it cannot be read or a row fails on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mapsync.cli._app import _register_commands, cli
from mapsync.sandbox import Sandbox

REPO = Path(__file__).parents[2]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_register_commands()


@pytest.fixture
def ws(tmp_path: Path, sandbox: Sandbox) -> Path:
    shutil.copy(REPO / "mapsync.yaml", tmp_path / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    return tmp_path


def run(ws: Path, sandbox: Sandbox, *args: str) -> Result:
    env = {**sandbox.env(), "MAPSYNC_STATE": f"sqlite:///{ws / 'state.db'}", "MAPSYNC_CONFIG": None}
    return CliRunner(env=env).invoke(cli, ["--config", str(ws / "mapsync.yaml"), *args])


def writes(sandbox: Sandbox) -> int:
    return sum(n for server in (sandbox.tidsbanken, sandbox.custompms)
               for (method, _), n in server.requests.items() if method in WRITES)


def test_an_unlinked_source_record_shows_what_a_create_would_send(ws: Path, sandbox: Sandbox) -> None:
    kunde = sandbox.tidsbanken.records("Kunde")[0]
    result = run(ws, sandbox, "test", "--record", f"kunde-customer:{kunde['Id']}")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"kunde-customer: Tidsbanken Kunde {kunde['Id']} (source)\n  read from Tidsbanken Kunde:\n")
    assert f'    "Navn": "{kunde["Navn"]}",' in out
    assert "  mapped to Custompms Customer (what a create there would send):\n" in out
    assert '    "kind": "customer",' in out
    assert f'    "name": "{kunde["Navn"]}",' in out
    assert "  not linked to a Custompms Customer yet\n" in out
    assert out.endswith("nothing was written\n")
    assert writes(sandbox) == 0


def test_a_linked_pair_shows_the_partner_the_way_back_and_the_differences(ws: Path, sandbox: Sandbox) -> None:
    assert run(ws, sandbox, "apply").exit_code == 0
    kunde = sandbox.tidsbanken.records("Kunde")[0]
    customer = next(c for c in sandbox.custompms.records("customers") if c["name"] == kunde["Navn"])
    sandbox.custompms.edit("customers", customer["id"], phone="+47 99 99 99 99")
    before = writes(sandbox)

    result = run(ws, sandbox, "test", "--record", f"kunde-customer:{kunde['Id']}")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"  linked Custompms Customer {customer['id']}, now:\n" in out
    assert (f"  mapped back to Tidsbanken Kunde (what Custompms Customer {customer['id']} would write):\n"
            in out)
    assert '    "Telefon": "+47 99 99 99 99",' in out
    assert f"  differs from Custompms Customer {customer['id']}" in out
    assert f'    phone: {_json(kunde["Telefon"] or None)} here, "+47 99 99 99 99" there\n' in out

    from_target = run(ws, sandbox, "test", "--record", f"kunde-customer:target:{customer['id']}")
    assert from_target.exit_code == 0, from_target.output
    assert from_target.stdout.startswith(f"kunde-customer: Custompms Customer {customer['id']} (target)\n")
    assert f"  linked Tidsbanken Kunde {kunde['Id']}, now:\n" in from_target.stdout
    assert f'    phone: "+47 99 99 99 99" here, {_json(kunde["Telefon"] or None)} there\n' in from_target.stdout
    assert writes(sandbox) == before


def test_an_expression_that_fails_on_the_record_is_shown_and_exits_1(ws: Path, sandbox: Sandbox) -> None:
    assert run(ws, sandbox, "apply").exit_code == 0
    path = ws / "mappings" / "kunde-customer.yaml"
    path.write_text(path.read_text().replace(
        "  - {source: Telefon,             target: phone,                        type: string}",
        "  - {source: \"abs(Navn)\", target: phone, type: string, direction: forward}"))
    kunde = next(k for k in sandbox.tidsbanken.records("Kunde") if k["Telefon"])
    result = run(ws, sandbox, "test", "--record", f"kunde-customer:{kunde['Id']}")
    assert result.exit_code == 1, result.output
    assert "  mapped to Custompms Customer (what a create there would send):\n    error: " in result.stdout
    assert "mappings/kunde-customer.yaml" in result.stdout
    assert "  linked Custompms Customer " in result.stdout  # shown still, but not compared
    assert "in sync" not in result.stdout and "differs" not in result.stdout


def test_a_record_that_does_not_exist_exits_1(ws: Path, sandbox: Sandbox) -> None:
    result = run(ws, sandbox, "test", "--record", "kunde-customer:NOPE")
    assert result.exit_code == 1
    assert result.stderr == ("error: kunde-customer: Tidsbanken Kunde 'NOPE' not found "
                             "(through connection 'tidsbanken')\n")


@pytest.mark.parametrize(("ref", "message"), [
    ("kunde-customer", "'kunde-customer' is not DATAFLOW:ID (or DATAFLOW:target:ID for a target record)"),
    ("kunder:K1", "unknown dataflow 'kunder' (known: avdeling-customer, kunde-customer, prosjekt-project)"),
])
def test_a_malformed_reference_is_a_usage_error(ws: Path, sandbox: Sandbox, ref: str, message: str) -> None:
    result = run(ws, sandbox, "test", "--record", ref)
    assert result.exit_code == 2
    assert message in result.stderr


def _json(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
