"""load_workspace and MappingChecker: the broken-input corpus (one test id per case) and the good paths.

Each case in corpus/ is a small patch against the reference workspace with one thing broken (a few break
several) and the exact messages it must report, in order (see corpus_cases.py). Nothing else may be reported.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from spec.corpus_cases import CASE_NAMES, CorpusError, build_workspace, load_case, materialize

from mapsync.errors import SpecError, SpecErrors
from mapsync.spec._yaml import parse_document
from mapsync.spec.checker import MappingChecker
from mapsync.spec.loader import find_config, load_workspace
from mapsync.spec.model import DataflowSpec, Workspace

HERE = Path(__file__).parent
REPO = HERE.parents[1]
# A fixed environment: nothing the corpus or the reference workspace reads is set, so defaults apply.
ENV: dict[str, str] = {"MAPSYNC_UNRELATED": "1"}
CONNECTIONS: dict[str, dict[str, Any]] = {"tidsbanken": {"type": "tidsbanken"}, "custompms": {"type": "custompms"}}


def corpus_errors(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  env: dict[str, str] | None = None) -> SpecErrors:
    config = materialize(name, tmp_path)
    monkeypatch.chdir(config.parent)  # file names are shown relative to the current folder
    with pytest.raises(SpecErrors) as info:
        load_workspace(config, env=ENV if env is None else env)
    return info.value


def test_the_corpus_is_big_enough() -> None:
    assert len(CASE_NAMES) >= 35


@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = list(load_case(name).expected)
    if not expected:
        config = materialize(name, tmp_path)
        monkeypatch.chdir(config.parent)
        load_workspace(config, env=ENV)
        return
    errors = corpus_errors(name, tmp_path, monkeypatch).errors
    assert [str(e) for e in errors] == expected
    # Every problem is one line: file:line: key path: message.
    for error in errors:
        assert "\n" not in str(error)
        assert "Traceback" not in str(error)


def test_every_case_says_what_it_is_about() -> None:
    assert all(load_case(name).description for name in CASE_NAMES)


def test_a_replacement_that_no_longer_matches_names_the_case(tmp_path: Path) -> None:
    case = load_case("bad-conflict-policy")
    stale = replace(case, files={"mappings/kunde-customer.yaml": {
        "replace": [{"old": "conflicts: sourcewins", "new": "conflicts: x"}]}})
    with pytest.raises(CorpusError, match=r"corpus case 'bad-conflict-policy': mappings/kunde-customer.yaml: "
                                          r"replacement 1: 'conflicts: sourcewins' occurs 0 times"):
        build_workspace(stale, tmp_path)


def test_a_replacement_must_match_exactly_once(tmp_path: Path) -> None:
    ambiguous = replace(load_case("bad-conflict-policy"), files={"mappings/kunde-customer.yaml": {
        "replace": [{"old": "type: string", "new": "type: text"}]}})
    with pytest.raises(CorpusError, match=r"occurs \d+ times, not exactly once"):
        build_workspace(ambiguous, tmp_path)


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


def test_errors_are_sorted_by_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors = corpus_errors("problems-in-several-files", tmp_path, monkeypatch)
    keys = [e.sort_key() for e in errors.errors]
    assert keys == sorted(keys)
    assert str(errors).splitlines() == [str(e) for e in errors.errors]


def test_error_text_names_file_line_and_key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors = corpus_errors("bad-conflict-policy", tmp_path, monkeypatch)
    assert str(errors).startswith("mappings/kunde-customer.yaml:8: conflicts: 'source_wins' is not one of")


def test_secrets_are_not_in_the_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    errors = corpus_errors("config-unknown-connection-key", tmp_path, monkeypatch,
                           env={"TIDSBANKEN_API_KEY": "s3cret-key-value"})
    assert "s3cret-key-value" not in str(errors)


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
