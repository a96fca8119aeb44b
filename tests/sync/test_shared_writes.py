"""Two rows writing the same property: the row marked `wins: true` writes it, the other gives that write up."""

from __future__ import annotations

from typing import Any

import yaml
from sync_harness import Harness

COMPUTED_MOBILE = {"source": "Mobil || Telefon", "target": "mobile", "type": "string",
                   "reverse": {"Mobil": "mobile", "Telefon": "mobile"},
                   "description": "The mobile number, or the phone number when there is none."}


def share_telefon(h: Harness, *, winner: str) -> None:
    """kunde-customer with a computed mobile row whose reverse also writes Telefon; `winner` row wins."""
    path = h.ws / "mappings" / "kunde-customer.yaml"
    rows: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))["properties"]
    rows = [dict(COMPUTED_MOBILE) if row["target"] == "mobile" else row for row in rows]
    for row in rows:
        if row["target"] == winner:
            row["wins"] = True
    h.set_mapping("kunde-customer", properties=rows)


def a_kunde_with_both_numbers(h: Harness) -> dict[str, Any]:
    return next(k for k in h.sb.tidsbanken.records("Kunde") if k.get("Telefon") and k.get("Mobil"))


def test_the_losing_row_does_not_write_the_shared_field(hs: Harness) -> None:
    share_telefon(hs, winner="phone")
    assert hs.cli("validate").exit_code == 0
    assert hs.apply().exit_code == 0
    kunde = a_kunde_with_both_numbers(hs)
    customer_id = hs.links("kunde-customer")[kunde["Id"]]
    hs.sb.custompms.edit("customers", customer_id, mobile="+47 999 99 999")

    run = hs.apply()

    assert run.exit_code == 0, run.output
    after = hs.sb.tidsbanken.get("Kunde", kunde["Id"])
    assert after is not None
    assert after["Mobil"] == "+47 999 99 999"
    assert after["Telefon"] == kunde["Telefon"]  # the computed row's reverse gave Telefon up
    customer = hs.sb.custompms.get("customers", customer_id)
    assert customer is not None and customer["phone"] == kunde["Telefon"]
    # Settled: the next run has nothing to write.
    writes = hs.writes()
    assert hs.apply().exit_code == 0
    assert hs.writes() == writes


def test_the_winning_reverse_writes_the_shared_field(hs: Harness) -> None:
    share_telefon(hs, winner="mobile")
    assert hs.apply().exit_code == 0
    kunde = a_kunde_with_both_numbers(hs)
    customer_id = hs.links("kunde-customer")[kunde["Id"]]
    hs.sb.custompms.edit("customers", customer_id, mobile="+47 999 99 999")

    assert hs.apply().exit_code == 0

    after = hs.sb.tidsbanken.get("Kunde", kunde["Id"])
    assert after is not None
    assert (after["Mobil"], after["Telefon"]) == ("+47 999 99 999", "+47 999 99 999")


def test_two_rows_sharing_a_field_without_a_winner_are_refused(hs: Harness) -> None:
    share_telefon(hs, winner="nobody")
    run = hs.cli("validate")
    assert run.exit_code == 2
    assert "kunde-customer.yaml:" in run.stderr
    assert "both write Tidsbanken Kunde property 'Telefon'" in run.stderr
