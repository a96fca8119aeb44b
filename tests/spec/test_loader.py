"""load_workspace and MappingChecker: the broken-input corpus (one test id per case) and the good paths.

Each folder under corpus/ is a complete small workspace with one thing broken (a few break several) and
an expected.txt listing every problem it must report, one per line, as `file:line: fragment` (`-` for
no line). Nothing else may be reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mapsync.errors import SpecError, SpecErrors
from mapsync.spec._yaml import parse_document
from mapsync.spec.checker import MappingChecker
from mapsync.spec.loader import find_config, load_workspace
from mapsync.spec.model import DataflowSpec, Workspace

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CORPUS = HERE / "corpus"
CASES = sorted(p for p in CORPUS.iterdir() if (p / "expected.txt").is_file())
# A fixed environment: nothing the corpus or the reference workspace reads is set, so defaults apply.
ENV: dict[str, str] = {"MAPSYNC_UNRELATED": "1"}
CONNECTIONS: dict[str, dict[str, Any]] = {"tidsbanken": {"type": "tidsbanken"}, "custompms": {"type": "custompms"}}

_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+|-): (?P<fragment>.+)$")


@dataclass(frozen=True)
class Expected:
    file: str
    line: int | None
    fragment: str

    def matches(self, error: SpecError) -> bool:
        loc = error.location
        return (loc is not None and Path(loc.file) == Path(self.file) and loc.line == self.line
                and self.fragment in error.message)

    def __str__(self) -> str:
        return f"{self.file}:{'-' if self.line is None else self.line}: {self.fragment}"


def read_expected(case: Path) -> list[Expected]:
    found = []
    for text in (case / "expected.txt").read_text(encoding="utf-8").splitlines():
        if not text.strip() or text.startswith("#"):
            continue
        match = _LINE.match(text)
        assert match, f"{case.name}/expected.txt: bad line {text!r}"
        line = None if match["line"] == "-" else int(match["line"])
        found.append(Expected(match["file"], line, match["fragment"]))
    return found


def unmatched(expected: list[Expected], errors: list[SpecError]) -> tuple[list[Expected], list[SpecError]]:
    """Pairs each expectation with one reported error; returns what is left over on both sides."""
    left = list(errors)
    missing = []
    for item in expected:
        hit = next((e for e in left if item.matches(e)), None)
        if hit is None:
            missing.append(item)
        else:
            left.remove(hit)
    return missing, left


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 35


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_corpus(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(case)  # file names are shown relative to the current folder
    expected = read_expected(case)
    if not expected:
        load_workspace(case / "mapsync.yaml", env=ENV)
        return
    with pytest.raises(SpecErrors) as info:
        load_workspace(case / "mapsync.yaml", env=ENV)
    errors = info.value.errors
    missing, extra = unmatched(expected, errors)
    report = "\n".join(str(e) for e in errors)
    assert not missing, f"not reported: {[str(m) for m in missing]}\nreported:\n{report}"
    assert not extra, "reported but not expected:\n" + "\n".join(str(e) for e in extra)
    assert len(errors) == len(expected)
    # Every problem is one line: file:line: key path: message.
    for error in errors:
        assert "\n" not in str(error)
        assert "Traceback" not in str(error)


# -- the reference workspace ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference() -> Workspace:
    return load_workspace(REPO / "mapsync.yaml", env=ENV)


def test_reference_workspace_is_valid(reference: Workspace) -> None:
    assert set(reference.dataflows) == {"avdeling-customer", "kunde-customer", "prosjekt-project"}
    assert sum(len(spec.rows) for spec in reference.dataflows.values()) == 7 + 15 + 10
    assert reference.root == REPO
    assert reference.config_file == REPO / "mapsync.yaml"


def test_referenced_dataflows_come_first(reference: Workspace) -> None:
    names = list(reference.dataflows)
    assert names.index("prosjekt-project") > names.index("kunde-customer")
    assert names.index("prosjekt-project") > names.index("avdeling-customer")
    assert [s.name for s in reference.ordered(["prosjekt-project", "kunde-customer"])] == [
        n for n in names if n in {"prosjekt-project", "kunde-customer"}]
    assert reference.ordered() == list(reference.dataflows.values())


def test_reference_specs(reference: Workspace) -> None:
    kunde = reference.dataflows["kunde-customer"]
    assert kunde.source.label == "Tidsbanken Kunde"
    assert kunde.target.label == "Custompms Customer"
    assert kunde.heading == "Tidsbanken Kunde to Custompms Customer"
    assert kunde.constants == {"kind": "customer"}
    assert kunde.match == [["organization_number"], ["name", "postal_address.postal_code"]]
    assert (kunde.conflicts, kunde.delete_policy, kunde.delete_max_share) == ("source-wins", "unlink", 0.1)
    assert kunde.timezone == "Europe/Oslo"
    assert kunde.rows[0].source_path == "Navn"
    assert kunde.rows[0].line == 16
    assert len(kunde.examples) == 2
    assert kunde.examples[0].line == 32
    assert kunde.source_schema["title"] == "Tidsbanken Kunde"
    prosjekt = reference.dataflows["prosjekt-project"]
    assert prosjekt.references == {"kunde-customer", "avdeling-customer"}
    assert prosjekt.examples[0].links == {"kunde-customer": {"K10001": "c-000001"},
                                          "avdeling-customer": {"A101": "c-000002"}}


def test_environment_fills_the_connections() -> None:
    workspace = load_workspace(REPO / "mapsync.yaml", env={"CUSTOMPMS_TOKEN": "from-env",
                                                          "CUSTOMPMS_URL": "https://pms.example"})
    assert workspace.connections["custompms"]["token"] == "from-env"
    assert workspace.connections["custompms"]["base_url"] == "https://pms.example"
    assert workspace.connections["tidsbanken"]["api_key"] == "sandbox-tb-key"


def test_sqlite_state_is_relative_to_the_config(reference: Workspace) -> None:
    assert reference.state_url == "sqlite:///" + str((REPO / ".mapsync/state.db").resolve())


@pytest.mark.parametrize(("state", "expected"), [
    ("postgresql://sync@db:5432/mapsync", "postgresql://sync@db:5432/mapsync"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite:////var/lib/mapsync/state.db", "sqlite:////var/lib/mapsync/state.db"),
])
def test_state_urls(state: str, expected: str) -> None:
    workspace = load_workspace(REPO / "mapsync.yaml", env={"MAPSYNC_STATE": state})
    assert workspace.state_url == expected


def test_config_from_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert find_config(None) == REPO / "mapsync.yaml"
    assert set(load_workspace(env=ENV).dataflows) == {"avdeling-customer", "kunde-customer", "prosjekt-project"}


def test_config_given_as_a_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert len(load_workspace(str(REPO / "mapsync.yaml"), env=ENV).dataflows) == 3


def test_errors_are_sorted_by_file_and_line(monkeypatch: pytest.MonkeyPatch) -> None:
    case = CORPUS / "problems-in-several-files"
    monkeypatch.chdir(case)
    with pytest.raises(SpecErrors) as info:
        load_workspace(case / "mapsync.yaml", env=ENV)
    keys = [e.sort_key() for e in info.value.errors]
    assert keys == sorted(keys)
    assert str(info.value).splitlines() == [str(e) for e in info.value.errors]


def test_error_text_names_file_line_and_key_path(monkeypatch: pytest.MonkeyPatch) -> None:
    case = CORPUS / "bad-conflict-policy"
    monkeypatch.chdir(case)
    with pytest.raises(SpecErrors) as info:
        load_workspace(case / "mapsync.yaml", env=ENV)
    assert str(info.value).startswith("mappings/kunde-customer.yaml:8: conflicts: 'source_wins' is not one of")


def test_secrets_are_not_in_the_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    case = CORPUS / "config-unknown-connection-key"
    monkeypatch.chdir(case)
    with pytest.raises(SpecErrors) as info:
        load_workspace(case / "mapsync.yaml", env={"TIDSBANKEN_API_KEY": "s3cret-key-value"})
    assert "s3cret-key-value" not in str(info.value)


# -- MappingChecker on its own ----------------------------------------------------------------------

BASE = """\
dataflow: custom
source: {connection: tidsbanken, entity: Kunde}
target: {connection: custompms, entity: Customer}
properties:
"""


def check(rows: str, extra: str = "") -> tuple[DataflowSpec | None, list[SpecError]]:
    doc, syntax = parse_document(BASE + rows + extra, "custom.yaml")
    assert doc is not None, syntax
    errors: list[SpecError] = []
    spec = MappingChecker(doc, CONNECTIONS, errors).build()
    return spec, [*syntax, *errors]


def test_defaults() -> None:
    spec, errors = check("  - {source: Navn, target: name, type: string}\n")
    assert errors == []
    assert spec is not None
    assert (spec.create, spec.conflicts, spec.delete_policy, spec.delete_max_share) == (
        "target", "source-wins", "unlink", 0.1)
    assert (spec.timezone, spec.match, spec.constants, spec.examples, spec.title) == ("Europe/Oslo", [], {}, [], "")


def test_title_is_the_heading() -> None:
    spec, errors = check("  - {source: Navn, target: name, type: string}\n", "title: Kunder til kunder\n")
    assert errors == []
    assert spec is not None
    assert spec.heading == "Kunder til kunder"


def test_computed_rows_with_reverse_or_one_way_are_fine() -> None:
    spec, errors = check(
        "  - source: \"join(' ', [Navn, Poststed])\"\n"
        "    target: name\n"
        "    type: string\n"
        "    reverse: {Navn: name, Poststed: postal_address.city}\n"
        "  - {source: \"join('', ['https://', Url])\", target: website, type: string, direction: forward}\n"
        "  - {source: Epost, target: email, type: string, direction: reverse}\n")
    assert errors == []
    assert spec is not None
    computed, one_way, back = spec.rows
    assert computed.source_path is None
    assert computed.reverse == (("Navn", "name"), ("Poststed", "postal_address.city"))
    assert (computed.flows_forward, computed.flows_back) == (True, True)
    assert (one_way.flows_forward, one_way.flows_back) == (True, False)
    assert (back.flows_forward, back.flows_back) == (False, True)


def test_a_nested_source_path_is_plain() -> None:
    spec, errors = check("  - {source: \"Navn\", target: name, type: string}\n")
    assert errors == []
    assert spec is not None
    assert spec.rows[0].source_path == "Navn"


def test_a_broken_mapping_that_cannot_be_read_further_yields_no_spec() -> None:
    doc, _ = parse_document("dataflow: x\nproperties: []\n", "m.yaml")
    assert doc is not None
    errors: list[SpecError] = []
    assert MappingChecker(doc, CONNECTIONS, errors).build() is None
    messages = sorted(e.message for e in errors)
    assert any("'source' is a required property" in m for m in messages)
    assert any("'target' is a required property" in m for m in messages)


def test_an_empty_mapping_file() -> None:
    doc, _ = parse_document("", "empty.yaml")
    assert doc is not None
    errors: list[SpecError] = []
    assert MappingChecker(doc, CONNECTIONS, errors).build() is None
    assert [str(e) for e in errors] == [
        "empty.yaml:1: a mapping file must be a mapping of keys (dataflow, source, target, properties)"]
