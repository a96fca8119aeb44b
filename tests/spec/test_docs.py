"""The dataflow document (`mapsync docs`): the seed's structure, property tables from the mappings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from mapsync.docs import data_type, direction, render, write_docs
from mapsync.spec.loader import load_workspace
from mapsync.spec.model import Workspace

REPO = Path(__file__).parents[2]
COMMITTED = REPO / "docs" / "dataflows" / "tidsbanken-custompms.rst"
WHEN = datetime(2024, 9, 10, 15, 43, 43)
SECTIONS = {
    "Tidsbanken Avdeling to Custompms Customer": "avdeling-customer",
    "Tidsbanken Kunde to Custompms Customer": "kunde-customer",
    "Tidsbanken Prosjekt to Custompms Project": "prosjekt-project",
}


@pytest.fixture(scope="module")
def workspace() -> Workspace:
    return load_workspace(REPO / "mapsync.yaml", env={})


@pytest.fixture(scope="module")
def document(workspace: Workspace) -> str:
    return render(workspace, "tidsbanken", "custompms", WHEN)


def without_generated(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("Generated: ")]


def list_tables(text: str) -> list[list[list[str]]]:
    """Each list-table as rows of cells."""
    tables: list[list[list[str]]] = []
    rows: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith(".. list-table::"):
            rows = []
            tables.append(rows)
        elif rows is not None and line.startswith("   * - "):
            rows.append([line[len("   * - "):]])
        elif rows is not None and line.startswith("     - "):
            rows[-1].append(line[len("     - "):])
        elif rows is not None and line and not line.startswith("   "):
            rows = None
    return tables


def test_the_committed_document_is_up_to_date(document: str) -> None:
    # Regenerate with `mapsync docs` when this fails: the document must say what the mappings do.
    assert without_generated(document) == without_generated(COMMITTED.read_text(encoding="utf-8"))


def test_title_and_generated_line(document: str) -> None:
    lines = document.splitlines()
    assert lines[:3] == ["=" * 32, "Tidsbanken to Custompms Dataflow", "=" * 32]
    assert "Generated: 2024-09-10 15:43:43" in lines
    assert document.endswith("\n")
    assert not document.endswith("\n\n")


def test_sections_in_dependency_order(document: str) -> None:
    lines = document.splitlines()
    headings = [lines[i] for i in range(len(lines) - 1)
                if lines[i + 1] and set(lines[i + 1]) == {"-"} and len(lines[i + 1]) == len(lines[i])]
    assert headings == ["Introduction", *SECTIONS]


def test_each_section_has_a_table_with_one_row_per_property(document: str, workspace: Workspace) -> None:
    tables = list_tables(document)
    assert len(tables) == 3
    for (heading, name), table in zip(SECTIONS.items(), tables, strict=True):
        spec = workspace.dataflows[name]
        source, target = heading.split(" to ")
        assert table[0] == [f"{source} Property", f"{target} Property", "Custompms Data Type", "Direction"]
        assert table[1:] == [[row.source, row.target, data_type(row, workspace), direction(row, spec)]
                             for row in spec.rows]


def test_the_tables_say_what_the_contract_says(document: str) -> None:
    kunde = list_tables(document)[1]
    assert ["Leveringsadresse2", "delivery_address.line2", "string", "both ways"] in kunde
    prosjekt = list_tables(document)[2]
    assert ["KundeId", "customer_id", "reference to the Customer linked to that Kunde", "both ways"] in prosjekt
    assert ["AvdelingId", "department_id", "reference to the Customer linked to that Avdeling",
            "both ways"] in prosjekt
    assert ["StartDato", "start_date", "date", "both ways"] in prosjekt


def test_the_seeds_confidentiality_wording_is_absent(document: str) -> None:
    for phrase in ("intellectual property", "confidential", "NDA", "Sesam", "without written permission"):
        assert phrase.lower() not in document.lower()


def test_constants_matching_and_waiting_are_explained(document: str) -> None:
    assert "(``kind: customer``)" in document
    assert "(``kind: department``)" in document
    assert "``organization_number`` or ``name`` and ``postal_address.postal_code``" in document
    assert "waits until the records it refers to (``KundeId``, ``AvdelingId``) are linked" in document


def test_write_docs(tmp_path: Path, workspace: Workspace) -> None:
    written = write_docs(workspace, tmp_path / "out", WHEN)
    assert written == [tmp_path / "out" / "tidsbanken-custompms.rst"]
    assert written[0].read_text(encoding="utf-8") == render(workspace, "tidsbanken", "custompms", WHEN)


def test_a_pair_with_no_dataflows_has_only_the_introduction(workspace: Workspace) -> None:
    text = render(workspace, "custompms", "tidsbanken", WHEN)
    assert "Custompms to Tidsbanken Dataflow" in text
    assert ".. list-table::" not in text
