"""Load mapsync.yaml and every mapping file, and report every problem at once."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

from mapsync.errors import Location, SpecError, SpecErrors
from mapsync.spec._env import interpolate
from mapsync.spec._schema_errors import schema_errors
from mapsync.spec._yaml import Document, load_document
from mapsync.spec.checker import MappingChecker
from mapsync.spec.entities import format_schema
from mapsync.spec.model import DataflowSpec, Workspace
from mapsync.spec.run_settings import read_run_settings

CONFIG_NAME = "mapsync.yaml"
DEFAULT_STATE = "sqlite:///.mapsync/state.db"
DEFAULT_MAPPINGS = ("mappings/*.yaml",)


def find_config(path: str | os.PathLike[str] | None) -> Path:
    if path:
        return Path(path)
    return Path.cwd() / CONFIG_NAME


def display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_workspace(config: str | os.PathLike[str] | None = None,
                   env: Mapping[str, str] | None = None) -> Workspace:
    """The whole workspace, validated; raises SpecErrors listing every problem found."""
    errors: list[SpecError] = []
    workspace = _load(find_config(config), os.environ if env is None else env, errors)
    if errors or workspace is None:
        raise SpecErrors(errors)
    return workspace


def _load(config_file: Path, env: Mapping[str, str], errors: list[SpecError]) -> Workspace | None:
    if not config_file.exists():
        errors.append(SpecError(
            f"no workspace config: {display_name(config_file)} not found (run mapsync in the folder "
            "holding mapsync.yaml, or pass --config PATH)", Location(display_name(config_file))))
        return None
    doc, syntax = load_document(config_file, display_name(config_file))
    errors.extend(syntax)
    if doc is None:
        return None
    if not isinstance(doc.data, dict):
        errors.append(doc.error((), "the workspace config must be a mapping of keys (state, mappings, connections)"))
        return None
    errors.extend(schema_errors(doc, format_schema("config.schema.json")))
    data, env_errors = interpolate(doc, env)
    errors.extend(env_errors)
    unset = {e.location.path for e in env_errors if e.location}
    connections, broken = _check_connections(doc, data, errors, unset, config_file.parent)
    state_url = _check_state(doc, data, config_file.parent, errors)
    unloaded: set[str] = set()
    specs = _load_mappings(doc, data, config_file.parent, connections, errors, broken=broken, unloaded=unloaded)
    ordered = _dependency_order(specs, errors, unloaded)
    run = read_run_settings(doc, data, list(ordered), errors, unloaded)
    return Workspace(config_file.parent, config_file, state_url, connections, ordered, run=run,
                     history_keep_days=_history_keep_days(data))


# -- config -----------------------------------------------------------------------------------------

def _history_keep_days(data: dict[str, Any]) -> int:
    """`history: {keep_days}` (the schema has checked it is a whole number of days, 1 or more)."""
    history = data.get("history")
    days = history.get("keep_days") if isinstance(history, dict) else None
    return days if isinstance(days, int) and not isinstance(days, bool) and days > 0 else 90


def _check_connections(doc: Document, data: dict[str, Any], errors: list[SpecError],
                       unset: set[str], root: Path) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The usable connections, and the names of those configured but unusable (already reported)."""
    from mapsync.connectors import is_known_type, known_types, settings_schema

    connections: dict[str, dict[str, Any]] = {}
    broken: set[str] = set()
    defined: dict[str, tuple[str, Path]] = {}  # system name -> the connection and file that define it
    raw = data.get("connections")
    if not isinstance(raw, dict):
        return connections, broken
    for name, settings in raw.items():
        if not isinstance(settings, dict) or not isinstance(settings.get("type"), str):
            broken.add(name)
            continue
        kind = settings["type"]
        if not is_known_type(kind):
            errors.append(doc.error(("connections", name, "type"),
                                    f"unknown connector type {kind!r} (known: {', '.join(known_types())})"))
            broken.add(name)
            continue
        resolved, schema = (_definition_of(doc, name, settings, root, errors, defined=defined) if kind == "definition"
                            else (settings, settings_schema(kind)))
        if resolved is None or schema is None:
            broken.add(name)
            continue
        # A key whose ${VAR} is unset is reported once, for the variable, not again for its empty value.
        found = schema_errors(doc, schema, base=("connections", name), data=settings)
        found += _settings_problems(doc, name, settings)
        errors.extend(e for e in found if not (e.location and e.location.path in unset))
        connections[name] = resolved
    return connections, broken


def _definition_of(doc: Document, name: str, settings: dict[str, Any], root: Path, errors: list[SpecError], *,
                   defined: dict[str, tuple[str, Path]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """`type: definition`: read and check the workspace's definition file (its problems at its own lines).
    Answers the block as the connector reads it (the file's path made absolute, `system` the name the
    definition gives its system) and the JSON Schema the user's block must meet; None when unusable."""
    from mapsync.connectors.declarative import definition_settings_schema, load_definition_file
    from mapsync.spec.entities import register_system

    relative = settings.get("definition")
    if not isinstance(relative, str) or not relative.strip():
        errors.append(doc.error(("connections", name, "type" if relative is None else "definition"),
                                "a `type: definition` connection needs `definition: <file>` "
                                "(relative to mapsync.yaml)"))
        return None, None
    path = root / relative
    if not path.is_file():
        problem = (f"{relative!r} is a folder, not a connector definition file" if path.is_dir()
                   else f"no connector definition file {relative!r}")
        errors.append(doc.error(("connections", name, "definition"), problem))
        return None, None
    definition, problems = load_definition_file(path, display_name(path))
    errors.extend(problems)
    if definition is None:
        return None, None
    other = defined.setdefault(definition.name, (name, path.resolve()))
    if other[1] != path.resolve():
        # Entity schemas are known by system name: a second file under the same name would replace the first's.
        errors.append(doc.error(("connections", name, "definition"),
                                f"{relative!r} names its system {definition.name!r}, as the definition of connection "
                                f"{other[0]!r} does: give each definition its own `name`"))
        return None, None
    register_system(definition.name, {entity: dict(e.info.schema) for entity, e in definition.entities.items()})
    resolved = {**settings, "definition": str(path.resolve()), "system": definition.name}
    return resolved, definition_settings_schema(definition)


MAX_SETTING = 1e9  # seconds, requests per second, retries: beyond this a number is a slip, and overflows


def _settings_problems(doc: Document, name: str, settings: dict[str, Any]) -> list[SpecError]:
    """What the schema cannot say: the connector will turn numbers into floats and base_url into a URL."""
    problems: list[SpecError] = []
    for key, value in settings.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and not _sane_number(value):
            problems.append(doc.error(("connections", name, key), f"{key} must be a finite number up to "
                                                                  f"{MAX_SETTING:,.0f}"))
    url = settings.get("base_url")
    problem = _url_problem(url) if isinstance(url, str) and url else None
    if problem:
        # the URL itself is not quoted: it may carry credentials (https://user:secret@host)
        problems.append(doc.error(("connections", name, "base_url"), f"not a usable URL: {problem}"))
    return problems


def _url_problem(url: str) -> str | None:
    """Why httpx would refuse `url` as a base URL, found with the standard library's parser (importing httpx
    would double the start-up time of `mapsync validate`)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "it holds a space or a control character"
    try:
        parsed = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        return str(exc)
    try:
        _ = parsed.port
    except ValueError:
        return f"Invalid port: {parsed.netloc.rpartition(':')[2]!r}"
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        return "it must start with http:// or https:// and name a host"
    return None


def _sane_number(value: float) -> bool:
    try:
        return math.isfinite(float(value)) and abs(value) <= MAX_SETTING
    except OverflowError:  # an integer too large for a float
        return False


def _check_state(doc: Document, data: dict[str, Any], root: Path, errors: list[SpecError]) -> str:
    from mapsync.state import STORES

    known_schemes = sorted(STORES)
    url = data.get("state", DEFAULT_STATE)
    if not isinstance(url, str):
        return DEFAULT_STATE
    scheme = url.split(":", 1)[0]
    if scheme not in known_schemes:
        errors.append(doc.error(("state",), f"unknown state store {scheme!r} (known: {', '.join(known_schemes)})"))
        return url
    if scheme == "sqlite" and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url[len("sqlite:///"):]
        if rest != ":memory:":
            url = "sqlite:///" + str((root / rest).resolve())
    return url


# -- mappings ---------------------------------------------------------------------------------------

def _mapping_files(doc: Document, data: dict[str, Any], root: Path, errors: list[SpecError]) -> tuple[list[Path], bool]:
    """The mapping files, and whether some match could not be read as one (then its dataflow is unknown)."""
    globs = data.get("mappings", list(DEFAULT_MAPPINGS))
    if not isinstance(globs, list):
        return [], False
    unreadable = False
    files: list[Path] = []
    for index, pattern in enumerate(globs):
        if not isinstance(pattern, str):
            continue
        problem = _glob_problem(pattern)
        found: list[Path] = []
        try:
            found = [] if problem else sorted(root.glob(pattern))
        except (ValueError, IndexError, OSError):  # pathlib's ways of refusing a pattern (absolute ones never get here)
            problem = f"{pattern!r} is not a usable glob pattern (write e.g. 'mappings/*.yaml')"
        matched = [p for p in found if p.is_file()]
        if not problem and not matched:
            problem = _nothing_matched(pattern, found)
        if problem:
            errors.append(doc.error(("mappings", index), problem))
        for path in found:
            why = _not_a_mapping_file(path)
            if why:
                errors.append(doc.error(("mappings", index), f"{display_name(path)} {why}"))
                unreadable = True
        files.extend(p for p in matched if p not in files)
    return files, unreadable


def _not_a_mapping_file(path: Path) -> str | None:
    """Why a match named like a mapping file cannot be one (other folders under a wildcard are passed over)."""
    if path.suffix not in {".yaml", ".yml"} or path.is_file():
        return None
    if path.is_dir():
        return "is a folder, not a mapping file"
    return "is not a regular file (a pipe, socket or device)"


def _glob_problem(pattern: str) -> str | None:
    """Why a `mappings:` glob is refused before it is tried: it must stay inside the workspace folder."""
    if not pattern.strip():
        return "an empty glob matches nothing (write e.g. 'mappings/*.yaml')"
    if PurePosixPath(pattern).is_absolute() or PureWindowsPath(pattern).is_absolute() or pattern.startswith("~"):
        return (f"{pattern!r} is an absolute path: globs are relative to mapsync.yaml, so the workspace "
                "can move (write e.g. 'mappings/*.yaml')")
    if ".." in PurePosixPath(pattern.replace("\\", "/")).parts:
        return f"{pattern!r} leaves the workspace through '..': keep mapping files in the folder of mapsync.yaml"
    return None


def _nothing_matched(pattern: str, found: list[Path]) -> str:
    if any(_not_a_mapping_file(p) for p in found):
        return ""  # each is reported by name
    if found and all(p.is_dir() for p in found):
        return (f"{pattern!r} names a folder, not mapping files (write e.g. "
                f"'{pattern.rstrip('/')}/*.yaml')")
    if found:
        return f"{pattern!r} matches no regular file (only special files such as pipes or devices)"
    return f"no mapping file matches {pattern!r}"


def _load_mappings(doc: Document, data: dict[str, Any], root: Path, connections: dict[str, dict[str, Any]],
                   errors: list[SpecError], *, broken: Collection[str] = (),
                   unloaded: set[str] | None = None) -> list[tuple[DataflowSpec, Document]]:
    """Every mapping that could be read. `unloaded` gets the dataflow names of those that could not ("*"
    for a file unreadable as a whole), so that references to them are not reported again as unknown."""
    specs: list[tuple[DataflowSpec, Document]] = []
    seen: dict[str, str] = {}
    unloaded = set() if unloaded is None else unloaded
    paths, unreadable = _mapping_files(doc, data, root, errors)
    if unreadable:
        unloaded.add("*")
    for path in paths:
        mdoc, syntax = load_document(path, display_name(path))
        errors.extend(syntax)
        if mdoc is None:
            unloaded.add("*")
            continue
        spec = MappingChecker(mdoc, connections, errors, broken).build()
        if spec is None:
            name = mdoc.data.get("dataflow") if isinstance(mdoc.data, dict) else None
            unloaded.add(name if isinstance(name, str) else "*")
            continue
        if spec.name in seen:
            errors.append(mdoc.error(("dataflow",), f"dataflow {spec.name!r} is already defined in {seen[spec.name]}"))
            continue
        seen[spec.name] = mdoc.file
        specs.append((spec, mdoc))
    return specs


def _dependency_order(specs: list[tuple[DataflowSpec, Document]], errors: list[SpecError],
                      unloaded: Collection[str] = ()) -> dict[str, DataflowSpec]:
    by_name = {spec.name: (spec, doc) for spec, doc in specs}
    for spec, _ in specs:
        spec.referenced_sources = {name: by_name[name][0].source for name in spec.references if name in by_name}
    for spec, doc in specs:
        for index, row in enumerate(spec.rows):
            if row.dataflow and row.dataflow not in by_name and row.dataflow not in unloaded and "*" not in unloaded:
                known = ", ".join(sorted(by_name)) or "none"
                errors.append(doc.error(("properties", index, "dataflow"),
                                        f"reference to unknown dataflow {row.dataflow!r} (known: {known})"))
    ordered: dict[str, DataflowSpec] = {}
    visiting: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(name: str) -> None:
        if name in ordered or name not in by_name:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name):], name]
            if frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                spec, doc = by_name[visiting[-1]]
                index = next(i for i, r in enumerate(spec.rows) if r.dataflow == name)
                errors.append(doc.error(("properties", index, "dataflow"),
                                        f"reference cycle: {' -> '.join(cycle)}"))
            return
        visiting.append(name)
        for ref in sorted(by_name[name][0].references):
            visit(ref)
        visiting.pop()
        ordered[name] = by_name[name][0]

    for spec, _ in specs:
        visit(spec.name)
    return ordered
