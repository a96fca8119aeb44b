"""The dataflow document (`mapsync docs`): the seed document's structure, property tables from the mappings."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

from mapsync.spec.model import DataflowSpec, Row, Workspace

INTRODUCTION = (
    "This document describes the dataflows that mapsync runs from {source} to {target}: which records are "
    "linked, how they are kept in sync, and which properties travel between the two systems. It is "
    "generated from the mapping files by ``mapsync docs``, so it always says what the mappings do; use it "
    "as a checklist when testing the integration."
)


def _underline(text: str, char: str) -> str:
    return char * len(text)


def _title(text: str) -> list[str]:
    return [_underline(text, "="), text, _underline(text, "=")]


def _heading(text: str) -> list[str]:
    return [text, _underline(text, "-")]


def data_type(row: Row, workspace: Workspace) -> str:
    if row.type != "reference":
        return row.type
    ref = workspace.dataflows.get(row.dataflow or "")
    if ref is None:
        return "reference"
    return f"reference to the {ref.target.entity} linked to that {ref.source.entity}"


def direction(row: Row, spec: DataflowSpec) -> str:
    """Which way a row's values travel, in words: "both ways", "only to Custompms", "only to Tidsbanken"."""
    if row.flows_forward and row.flows_back:
        return "both ways"
    side = spec.target if row.flows_forward else spec.source
    return f"only to {side.system.capitalize()}"


def _section(spec: DataflowSpec, workspace: Workspace) -> list[str]:
    src, tgt = spec.source.label, spec.target.label
    lines = [*_heading(spec.heading)]
    sentence = f"Every {src} will be synchronized with a {tgt}"
    if spec.constants:
        sentence += " (" + ", ".join(f"``{k}: {v}``" for k, v in spec.constants.items()) + ")"
    lines.append(sentence + ".")
    lines.append("")
    if spec.description:
        lines += [" ".join(spec.description.split()), ""]
    lines += [_kept_in_sync(spec), ""]
    lines += _how_linked(spec)
    lines.append(f"The following properties are synchronized between a {src} and a {tgt}:")
    lines += ["", ".. list-table::", "   :header-rows: 1", "",
              f"   * - {src} Property", f"     - {tgt} Property", f"     - {spec.target.system.capitalize()} Data Type",
              "     - Direction"]
    for row in spec.rows:
        lines += [f"   * - {row.source}", f"     - {row.target}", f"     - {data_type(row, workspace)}",
                  f"     - {direction(row, spec)}"]
    lines += [""]
    lines += _notes(spec)
    lines += [""]
    return lines


def _kept_in_sync(spec: DataflowSpec) -> str:
    """The seed's promise, made only of the rows that keep it: one-way rows follow one side."""
    src, tgt = spec.source.label, spec.target.label
    ways = {direction(row, spec) for row in spec.rows}
    opening = f"Once a link between a {src} and a {tgt} is established"
    if ways == {"both ways"}:
        return f"{opening}, it will keep in sync between the two systems, regardless of where it is edited."
    clauses = []
    if "both ways" in ways:
        clauses.append('the properties marked "both ways" keep in sync between the two systems, regardless of '
                       "where they are edited")
    for side, other in ((spec.target, spec.source), (spec.source, spec.target)):
        way = f"only to {side.system.capitalize()}"
        if way in ways:
            clauses.append(f'those marked "{way}" are copied from the {other.label} to the {side.label}, and '
                           f"edits made to them in {side.system.capitalize()} are not copied back")
    return f"{opening}, " + "; ".join(clauses) + "."


def _notes(spec: DataflowSpec) -> list[str]:
    """A bullet per computed or described row: its expression, the way back, and its description."""
    notes = [_note(row, spec) for row in spec.rows if row.source_path is None or row.description]
    if not notes:
        return []
    return ["Notes on the properties:", "", *(f"* {note}" for note in notes), ""]


def _note(row: Row, spec: DataflowSpec) -> str:
    source_system = spec.source.system.capitalize()
    if row.source_path is not None:
        text = f"``{row.source_path}`` to ``{row.target}``"
    else:
        text = f"``{row.target}`` is computed from the {spec.source.label} as ``{row.source}``"
    if row.description:
        text += ": " + " ".join(row.description.split()).rstrip(".") + "."
    else:
        text += "."
    if row.source_path is None and row.flows_back and row.reverse:
        sets = ", ".join(f"``{path}`` to ``{expression}``" for path, expression in row.reverse)
        text += f" Edited in {spec.target.system.capitalize()}, it sets {sets} in {source_system}."
    elif row.source_path is None:
        text += f" It is not written back to {source_system}."
    return text


def _how_linked(spec: DataflowSpec) -> list[str]:
    src, tgt = spec.source.label, spec.target.label
    creates = {"target": f"A {src} with no linked {tgt} gets a new {tgt}",
               "source": f"A {tgt} with no linked {src} gets a new {src}",
               "both": "A record with no partner gets one created on the other side",
               "none": "mapsync creates no records in this dataflow; it only links and updates"}[spec.create]
    text = creates + "."
    if spec.match:
        keys = " or ".join(" and ".join(f"``{k}``" for k in keys) for keys in spec.match)
        text += f" Before creating, existing records with the same {keys} are linked instead."
    refs = [r for r in spec.rows if r.type == "reference"]
    if refs:
        text += (" A record waits until the records it refers to ("
                 + ", ".join(f"``{r.source}``" for r in refs) + ") are linked.")
    text += (f" Conflicting edits on both sides are settled by ``{spec.conflicts}``; a record deleted on one "
             f"side is handled by ``{spec.delete_policy}``.")
    return [text, ""]


def render(workspace: Workspace, source_system: str, target_system: str, generated: datetime) -> str:
    specs = [s for s in workspace.dataflows.values()
             if (s.source.system, s.target.system) == (source_system, target_system)]
    source, target = source_system.capitalize(), target_system.capitalize()
    lines = [*_title(f"{source} to {target} Dataflow"), "", f"Generated: {generated:%Y-%m-%d %H:%M:%S}", ""]
    lines += [*_heading("Introduction"), "", INTRODUCTION.format(source=source, target=target), "", ""]
    for spec in specs:
        lines += _section(spec, workspace)
    return "\n".join(lines).rstrip() + "\n"


def write_docs(workspace: Workspace, out_dir: Path, generated: datetime) -> list[Path]:
    """One document per (source system, target system) pair, e.g. tidsbanken-custompms.rst."""
    pairs: dict[tuple[str, str], None] = defaultdict(lambda: None)
    for spec in workspace.dataflows.values():
        pairs[(spec.source.system, spec.target.system)] = None
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source, target in pairs:
        path = out_dir / f"{source}-{target}.rst"
        path.write_text(render(workspace, source, target, generated), encoding="utf-8")
        written.append(path)
    return written
