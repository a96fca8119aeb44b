"""Connector definitions: the shipped ones, a workspace's own (`type: definition`) checked at file:line, the
connection settings they imply, and Python connectors as entry-point plugins."""

from __future__ import annotations

import json
import shutil
from importlib import metadata, resources
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from mapsync import connectors
from mapsync.connectors import create_connector, known_types, settings_schema
from mapsync.connectors.declarative import load_definition_file, loading, shipped_definition, shipped_systems
from mapsync.connectors.declarative.checks import entity_schema_problem, jmespath_problem, json_schema_problems
from mapsync.errors import SpecError, SpecErrors
from mapsync.spec._yaml import load_document
from mapsync.spec.loader import load_workspace

SCHEMAS = Path(str(resources.files("mapsync.schemas")))
PMS_DEFINITION = (SCHEMAS / "custompms" / "connector.yaml").read_text()


def test_every_shipped_system_is_a_definition_and_a_type() -> None:
    assert shipped_systems() == ["custompms", "tidsbanken"]
    assert {"custompms", "tidsbanken", "definition"} <= set(known_types())
    tidsbanken = shipped_definition("tidsbanken")
    assert tidsbanken.title == "Tidsbanken" and set(tidsbanken.entities) == {"Avdeling", "Kunde", "Prosjekt"}
    assert tidsbanken.secret_settings == ("api_key", "subscription_key")
    assert tidsbanken.entities["Kunde"].update is not None and tidsbanken.entities["Kunde"].update.whole
    assert shipped_definition("custompms").entities["Customer"].info.can_delete


@pytest.mark.parametrize("system", ["custompms", "tidsbanken"])
def test_a_shipped_definition_has_no_problem_at_all(system: str) -> None:
    """Every check a workspace's definition gets, a duplicate key included (shipped_definition would raise)."""
    doc, errors = load_document(SCHEMAS / system / "connector.yaml", system)
    assert doc is not None and errors == []
    definition, problems = loading.check_definition(doc, lambda name: loading._shipped_schema(system, name))
    assert problems == [] and definition is not None and definition.name == system


def test_a_broken_shipped_definition_says_whose_file_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SCHEMAS, tmp_path / "schemas")
    broken = tmp_path / "schemas" / "tidsbanken" / "connector.yaml"
    text = broken.read_text()
    broken.write_text(text.replace("kind: keyset", "kind: keyset_paging", 1))
    monkeypatch.setattr(loading, "resources", type("Resources", (), {"files": staticmethod(
        lambda package: tmp_path / "schemas")}))
    with pytest.raises(SpecErrors) as info:
        loading.shipped_definition.__wrapped__("tidsbanken")  # past the cache: nothing leaks into other tests
    line = text.splitlines().index(next(x for x in text.splitlines() if "kind: keyset" in x)) + 1
    errors = str(info.value).splitlines()
    assert errors[0] == (
        f"mapsync/schemas/tidsbanken/connector.yaml:{line}: entities.Avdeling.list.paging.kind: 'keyset_paging' is "
        "not one of ['none', 'offset', 'page_number', 'cursor', 'next_link', 'keyset'] (mapsync's own tidsbanken "
        "definition is broken: reinstall mapsync, or report it if that does not help)")
    assert len(errors) == 3 and all("mapsync's own tidsbanken definition is broken" in e for e in errors)  # merged


def test_settings_schema_follows_the_definition() -> None:
    tb = settings_schema("tidsbanken")
    assert tb["required"] == ["type", "base_url", "api_key", "subscription_key"]
    assert tb["properties"]["page_size"]["minimum"] == 2  # keyset paging asks for its anchor again
    assert tb["properties"]["page_size"]["maximum"] == 500
    assert "overlap" in settings_schema("custompms")["properties"]


def workspace_with(tmp_path: Path, definition: str, *, block: str = "") -> Path:
    """A workspace whose `crm` connection is `type: definition` (a copy of Custompms' entity schemas)."""
    folder = tmp_path / "connectors"
    folder.mkdir()
    (folder / "crm.yaml").write_text(definition)
    for name in ("customer.json", "project.json"):
        shutil.copy(SCHEMAS / "custompms" / name, folder / name)
    (tmp_path / "mapsync.yaml").write_text(
        "state: sqlite:///s.db\nmappings: []\nconnections:\n  crm:\n    type: definition\n"
        f"    definition: connectors/crm.yaml\n    base_url: http://crm.test\n    token: t\n{block}")
    return tmp_path / "mapsync.yaml"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # files are named relative to the current folder


def load_errors(config: Path) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_workspace(config)
    return str(info.value).splitlines()


def test_a_workspace_definition_loads_and_names_its_system(tmp_path: Path) -> None:
    config = workspace_with(tmp_path, PMS_DEFINITION.replace("name: custompms", "name: crm"))
    workspace = load_workspace(config)
    settings = workspace.connections["crm"]
    assert settings["system"] == "crm" and Path(settings["definition"]).is_absolute()
    connector = create_connector("crm", settings, transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json={"data": [], "next_cursor": None})))
    try:
        assert set(connector.entities()) == {"Customer", "Project"}
        assert list(connector.list_changes("Customer", None)) == []
    finally:
        connector.close()


def test_errors_in_a_definition_are_reported_at_their_line(tmp_path: Path) -> None:
    broken = (PMS_DEFINITION
              .replace("paging: {kind: cursor,", "paging: {kind: keyset,")
              .replace("    read: {path: \"/api/v1/customers/{id}\"}", "    read: {path: \"/api/v1/customers/{key}\"}")
              .replace("    token: ${token}", "    token: ${tokn}"))
    lines = PMS_DEFINITION.splitlines()
    errors = load_errors(workspace_with(tmp_path, broken))
    auth_line = lines.index("    token: ${token}") + 1
    paging_line = next(i for i, line in enumerate(lines, 1) if "paging: {kind: cursor" in line)
    read_line = lines.index("    read: {path: \"/api/v1/customers/{id}\"}") + 1
    project_line = lines.index("  Project:") + 3
    assert errors == [
        f"connectors/crm.yaml:{auth_line}: connection.auth.token: ${{tokn}} names no setting "
        "(settings: base_url, token)",
        # the keys of the cursor paging it was are left over
        f"connectors/crm.yaml:{paging_line}: entities.Customer.list.paging.cursor_param: keyset paging ignores "
        "`cursor_param` (it serves cursor paging)",
        f"connectors/crm.yaml:{paging_line}: entities.Customer.list.paging.next: keyset paging ignores `next` "
        "(it serves cursor and next_link paging)",
        f"connectors/crm.yaml:{paging_line}: entities.Customer.list.paging: keyset paging needs `offset_param`",
        f"connectors/crm.yaml:{paging_line}: entities.Customer.list.paging.kind: keyset paging re-anchors through the "
        "incremental filter: it needs an `incremental` filter with `comparison: strict`",
        f"connectors/crm.yaml:{read_line}: entities.Customer.read.path: unknown placeholder {{key}} "
        "(use {id} or {id:odata})",
        # the Project listing merges the Customer one (`<<: *list`): its paging is wrong too
        f"connectors/crm.yaml:{project_line}: entities.Project.list.paging.cursor_param: keyset paging ignores "
        "`cursor_param` (it serves cursor paging)",
        f"connectors/crm.yaml:{project_line}: entities.Project.list.paging.next: keyset paging ignores `next` "
        "(it serves cursor and next_link paging)",
        f"connectors/crm.yaml:{project_line}: entities.Project.list.paging: keyset paging needs `offset_param`",
        f"connectors/crm.yaml:{project_line}: entities.Project.list.paging.kind: keyset paging re-anchors through "
        "the incremental filter: it needs an `incremental` filter with `comparison: strict`",
    ]


def test_schema_errors_in_a_definition_and_a_missing_entity_schema(tmp_path: Path) -> None:
    broken = PMS_DEFINITION.replace("    schema: project.json", "    schema: nowhere.json").replace(
        "      records: data", "      records: data\n      recrods: data")
    errors = load_errors(workspace_with(tmp_path, broken))
    lines = broken.splitlines()
    customer = lines.index("      recrods: data") + 1
    project = lines.index("  Project:") + 3  # its listing merges the Customer one (`<<: *list`): wrong in both
    schema = lines.index("    schema: nowhere.json") + 1
    unknown_key = [f"connectors/crm.yaml:{line}: entities.{entity}.list.recrods: unknown key 'recrods' (allowed: "
                   "deleted, incremental, paging, params, path, records)"
                   for line, entity in ((customer, "Customer"), (project, "Project"))]
    # a schema error does not hide the problems the schema cannot see
    assert errors == [unknown_key[0], f"connectors/crm.yaml:{schema}: entities.Project.schema: no entity schema file "
                      "'nowhere.json' beside the definition", unknown_key[1]]
    (tmp_path / "again").mkdir()
    errors = load_errors(workspace_with(tmp_path / "again", PMS_DEFINITION.replace("schema: project.json",
                                                                                     "schema: nowhere.json")))
    assert len(errors) == 1
    assert errors[0].endswith("entities.Project.schema: no entity schema file 'nowhere.json' beside the definition")


def test_the_connection_block_is_checked_against_the_definitions_settings(tmp_path: Path) -> None:
    errors = load_errors(workspace_with(tmp_path, PMS_DEFINITION, block="    colour: red\n    page_size: 501\n"))
    assert any("mapsync.yaml:9: connections.crm.colour: unknown key 'colour'" in e for e in errors), errors
    assert any("connections.crm.page_size: 501 is greater than the maximum of 500" in e for e in errors), errors


def test_a_missing_definition_file_is_named(tmp_path: Path) -> None:
    config = workspace_with(tmp_path, PMS_DEFINITION)
    config.write_text(config.read_text().replace("connectors/crm.yaml", "connectors/none.yaml"))
    assert load_errors(config) == ["mapsync.yaml:6: connections.crm.definition: no connector definition file "
                                   "'connectors/none.yaml'"]


def test_a_definition_file_is_read_with_bounds(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(12)))
    definition, errors = load_definition_file(path, "bomb.yaml")
    assert definition is None and errors and all("bomb.yaml" in str(e) for e in errors)


@pytest.mark.parametrize(("expression", "problem"), [
    ("data", None),
    ("items[?deleted_at != null] | length(@)", None),
    ("data[", "invalid JMESPath expression 'data[': it ends too early (an unclosed bracket or a missing operand?)"),
    ("a..b", "invalid JMESPath expression 'a..b': unexpected '.' at character 3"),
    ("\"@odata.etag", "invalid JMESPath expression '\"@odata.etag': unclosed \" delimiter at character 1"),
    ("a[" + "9" * 5000 + "]", "a number in it is too long"),
    ("(" * 3000 + "a" + ")" * 3000, "is nested more than 50 levels deep"),
    ("a" + ".a" * 60, None),  # a long path is flat
    ("!" * 60 + "a", "is nested more than 50 levels deep"),
    ("lenght(data)", "unknown JMESPath function lenght() (known: abs, avg,"),
    ("length(a, b)", "JMESPath function length() takes 1 argument, not 2"),
    ("not_null()", "JMESPath function not_null() takes at least 1 argument, not 0"),
])
def test_a_definitions_jmespath_is_checked_before_it_runs(expression: str, problem: str | None) -> None:
    found = jmespath_problem(expression)
    assert found == problem if problem is None else (found is not None and problem in found), found
    assert found is None or "\n" not in found


def test_json_schemas_inside_a_definition_are_checked() -> None:
    assert list(json_schema_problems({"type": "string", "pattern": "^[a-z]+$"})) == []
    assert list(json_schema_problems({"type": "string", "pattern": "["})) == [
        (("pattern",), "not a regular expression: '['")]
    assert list(json_schema_problems({"properties": {"a": {"type": ["string", "text"]}}})) == [
        (("properties", "a", "type"), "unknown type ['string', 'text'] (known: array, boolean, integer, null, "
                                      "number, object, string)")]
    schema = {"type": "object", "x-key": "id", "x-modified": "at", "properties": {"id": {}, "at": {}}}
    assert entity_schema_problem(schema) is None
    assert entity_schema_problem({**schema, "x-modified": "changed"}) == (
        "the entity schema's `x-modified` names 'changed', which is not one of its properties")
    assert entity_schema_problem({**schema, "x-server-fields": "id"}) == (
        "the entity schema's `x-server-fields` must be a list of its properties (those the server sets)")
    assert entity_schema_problem({**schema, "properties": {**schema["properties"], "n": {"minimum": "1"}}}) == (
        "the entity schema is not a valid JSON Schema at properties.n.minimum: '1' is not of type 'number'")


def test_a_connection_with_a_broken_settings_pattern_is_refused_at_the_definition(tmp_path: Path) -> None:
    """Without the check, checking the connection block against the definition's settings raised re.error."""
    broken = PMS_DEFINITION.replace("token: {type: string, minLength: 1,", "token: {type: string, pattern: '[',")
    line = broken.splitlines().index(next(x for x in broken.splitlines() if "pattern: '['" in x)) + 1
    assert load_errors(workspace_with(tmp_path, broken)) == [
        f"connectors/crm.yaml:{line}: settings.properties.token.pattern: not a regular expression: '['"]


# -- plugins ------------------------------------------------------------------------------------------

class PluginConnector:
    SETTINGS_SCHEMA: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"type": {"const": "erp-plugin"}},
                                       "additionalProperties": False}

    def __init__(self, name: str, settings: Any, *, transport: Any = None) -> None:
        self.name = name


def test_a_python_connector_is_loaded_from_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    good = metadata.EntryPoint("erp-plugin", f"{__name__}:PluginConnector", "mapsync.connectors")
    bad = metadata.EntryPoint("broken-plugin", "no_such_module_here:Thing", "mapsync.connectors")
    monkeypatch.setattr(metadata, "entry_points", lambda group: [good, bad] if group == "mapsync.connectors" else [])
    monkeypatch.setattr(connectors, "_plugins_loaded", False)
    try:
        assert "erp-plugin" in known_types()
        assert create_connector("erp", {"type": "erp-plugin"}).name == "erp"
        assert settings_schema("erp-plugin")["additionalProperties"] is False
        with pytest.raises(SpecError, match=r"broken-plugin.*could not be loaded: ModuleNotFoundError"):
            create_connector("x", {"type": "broken-plugin"})
    finally:
        for name in ("erp-plugin",):
            connectors._factories.pop(name, None)
            connectors._schemas.pop(name, None)
        connectors._broken_plugins.pop("broken-plugin", None)


def test_the_connector_schema_describes_every_key() -> None:
    schema = json.loads((SCHEMAS / "connector.schema.json").read_text())
    missing: list[str] = []

    def walk(node: Any, path: str) -> None:
        """Every key a definition may hold: each property's schema, through nested objects and $defs."""
        if not isinstance(node, dict):
            return
        for key, child in (node.get("properties") or {}).items():
            if "description" not in child and "$ref" not in child and "const" not in child:
                missing.append(f"{path}.{key}")
            walk(child, f"{path}.{key}")
        walk(node.get("additionalProperties"), f"{path}.*")
        walk(node.get("items"), f"{path}[]")

    for name, definition in schema["$defs"].items():
        walk(definition, f"$defs.{name}")
    walk(schema, "")
    assert missing == []
