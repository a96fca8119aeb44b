"""`mapsync docs` says which way each row flows, explains computed rows, and promises two-way sync only of
the rows that keep it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from mapsync.cli._app import _register_commands, cli

REPO = Path(__file__).parents[2]
CLEAN_ENV: dict[str, str | None] = {name: None for name in (
    "MAPSYNC_CONFIG", "MAPSYNC_STATE", "TIDSBANKEN_URL", "TIDSBANKEN_API_KEY", "TIDSBANKEN_SUBSCRIPTION_KEY",
    "CUSTOMPMS_URL", "CUSTOMPMS_TOKEN")}
TWO_WAY_PROMISE = "it will keep in sync between the two systems, regardless of where it is edited."
CHANGED_ROWS: dict[str, dict[str, Any]] = {
    "postal_address.line1": {"source": "join(' ', [Gateadresse, Postadresse])", "target": "postal_address.line1",
                             "type": "string", "reverse": {"Gateadresse": "postal_address.line1"},
                             "description": "Street and post box on one line"},
    "mobile": {"source": "Mobil || Telefon", "target": "mobile", "type": "string", "direction": "forward",
               "description": "The mobile number, or the phone number when there is none."},
    "website": {"source": "Url", "target": "website", "type": "string", "direction": "forward"},
    "email": {"source": "Epost", "target": "email", "type": "string", "direction": "reverse"},
}

_register_commands()


def section(text: str, heading: str) -> str:
    start = text.index(f"{heading}\n")
    end = text.find("\n\n\n", start)
    return text[start:] if end < 0 else text[start:end]


def table_rows(text: str) -> dict[str, list[str]]:
    """Each row of the section's list-table, by its target property: [source, target, type, direction]."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("   * - "):
            rows.append([line[len("   * - "):]])
        elif line.startswith("     - ") and rows:
            rows[-1].append(line[len("     - "):])
    return {row[1]: row for row in rows}


def docs_of(tmp_path: Path) -> str:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    shutil.copy(REPO / "mapsync.yaml", workspace / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", workspace / "mappings")
    path = workspace / "mappings" / "kunde-customer.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["properties"] = [CHANGED_ROWS.get(row["target"], row) for row in data["properties"]]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = CliRunner(env=CLEAN_ENV).invoke(cli, ["--config", str(workspace / "mapsync.yaml"), "docs",
                                                   "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    return (tmp_path / "out" / "tidsbanken-custompms.rst").read_text(encoding="utf-8")


def test_each_row_says_which_way_it_flows(tmp_path: Path) -> None:
    kunde = section(docs_of(tmp_path), "Tidsbanken Kunde to Custompms Customer")
    rows = table_rows(kunde)
    assert rows["Custompms Customer Property"][3] == "Direction"
    assert rows["name"][3] == "both ways"
    assert rows["postal_address.line1"][3] == "both ways"
    assert rows["mobile"][3] == "only to Custompms"
    assert rows["website"][3] == "only to Custompms"
    assert rows["email"][3] == "only to Tidsbanken"


def test_the_two_way_promise_is_made_only_of_two_way_rows(tmp_path: Path) -> None:
    text = docs_of(tmp_path)
    kunde = section(text, "Tidsbanken Kunde to Custompms Customer")
    assert TWO_WAY_PROMISE not in kunde
    assert 'the properties marked "both ways" keep in sync between the two systems, regardless of where they ' \
           "are edited" in kunde
    assert 'those marked "only to Custompms" are copied from the Tidsbanken Kunde to the Custompms Customer, ' \
           "and edits made to them in Custompms are not copied back" in kunde
    assert 'those marked "only to Tidsbanken" are copied from the Custompms Customer to the Tidsbanken Kunde' in kunde
    # A dataflow whose rows all flow both ways keeps the seed's sentence.
    assert TWO_WAY_PROMISE in section(text, "Tidsbanken Avdeling to Custompms Customer")


def test_computed_rows_show_expression_reverse_and_description(tmp_path: Path) -> None:
    kunde = section(docs_of(tmp_path), "Tidsbanken Kunde to Custompms Customer")
    assert ("* ``postal_address.line1`` is computed from the Tidsbanken Kunde as "
            "``join(' ', [Gateadresse, Postadresse])``: Street and post box on one line. Edited in Custompms, "
            "it sets ``Gateadresse`` to ``postal_address.line1`` in Tidsbanken.") in kunde
    assert ("* ``mobile`` is computed from the Tidsbanken Kunde as ``Mobil || Telefon``: The mobile number, or "
            "the phone number when there is none. It is not written back to Tidsbanken.") in kunde
