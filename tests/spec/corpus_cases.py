"""The broken-input corpus: each case is a small patch against the reference workspace, kept as data.

A case is `corpus/<name>.yaml`, applied to a fresh copy of the reference workspace (the repository's
mapsync.yaml and mappings/), so a case cannot drift from the mappings it breaks:

    description: what is broken, in a sentence
    base: small-workspace        # optional: a patch in corpus/bases/ applied first, in the same format
    files:
      mappings/kunde-customer.yaml:
        replace:                 # each `old` must occur exactly once in the file as it is at that point
          - {old: "conflicts: source-wins", new: "conflicts: source_wins"}
      mappings/extra.yaml: {add: "whole text\n"}
      mappings/again.yaml: {copy: mappings/kunde-customer.yaml}   # a file of the workspace, as it is
      connectors/customer.json: {from_repo: schemas/custompms/customer.json}   # a file of the repository
      mappings/prosjekt-project.yaml: {remove: true}
    expected:                    # every message load_workspace reports, exactly and in order
      - "mappings/kunde-customer.yaml:8: conflicts: 'source_wins' is not one of [...]"

Any text (`old`, `new`, `add`) may instead be a list of pieces, each a string or `{repeat: text, times: n}`,
so a huge or deeply nested file is a short recipe rather than a stored blob; `encoding: latin-1` writes a
file in another encoding than UTF-8. A replacement that no longer matches (the reference changed) raises
CorpusError naming the case, the file and the replacement.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CORPUS = HERE / "corpus"
BASES = CORPUS / "bases"
CASE_NAMES = sorted(p.stem for p in CORPUS.glob("*.yaml"))

_CASE_KEYS = {"description", "base", "files", "expected"}
_FILE_KEYS = {"replace", "add", "copy", "from_repo", "remove", "encoding"}


class CorpusError(Exception):
    """A corpus case that cannot be applied to the reference workspace as it is now."""


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    expected: tuple[str, ...]
    files: dict[str, dict[str, Any]]
    base: str | None = None


def load_case(name: str) -> Case:
    data = _read_patch(CORPUS / f"{name}.yaml", name)
    expected = data.get("expected") or []
    if not isinstance(expected, list) or not all(isinstance(line, str) for line in expected):
        raise CorpusError(f"corpus case {name!r}: expected must be a list of messages")
    return Case(name, str(data.get("description", "")), tuple(expected), data.get("files") or {},
                data.get("base"))


def build_workspace(case: Case, folder: Path) -> Path:
    """Writes the case's workspace into folder (a copy of the reference, then the patches); returns its config."""
    shutil.copy(REPO / "mapsync.yaml", folder / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", folder / "mappings")
    if case.base is not None:
        base = _read_patch(BASES / f"{case.base}.yaml", case.name)
        _apply(base.get("files") or {}, folder, f"{case.name} (base {case.base})")
    _apply(case.files, folder, case.name)
    return folder / "mapsync.yaml"


def _read_patch(path: Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise CorpusError(f"corpus case {name!r}: {path.relative_to(HERE)} not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not set(data) <= _CASE_KEYS:
        raise CorpusError(f"corpus case {name!r}: {path.name} must be a mapping of {sorted(_CASE_KEYS)}")
    return data


def _apply(files: dict[str, dict[str, Any]], folder: Path, name: str) -> None:
    for relative, edit in files.items():
        if not isinstance(edit, dict) or not set(edit) <= _FILE_KEYS:
            raise CorpusError(f"corpus case {name!r}: {relative}: an edit is a mapping of {sorted(_FILE_KEYS)}")
        path = folder / relative
        if edit.get("remove"):
            if not path.is_file():
                raise CorpusError(f"corpus case {name!r}: {relative}: cannot remove, the reference has no such file")
            path.unlink()
            continue
        encoding = edit.get("encoding", "utf-8")
        if "add" in edit:
            text = expand(edit["add"])
        elif "copy" in edit:
            text = _read_text(folder / edit["copy"], f"corpus case {name!r}: {relative}: copy")
        elif "from_repo" in edit:
            text = _read_text(REPO / edit["from_repo"], f"corpus case {name!r}: {relative}: from_repo")
        elif path.is_file():
            text = path.read_text(encoding="utf-8")
        else:
            raise CorpusError(f"corpus case {name!r}: {relative}: the reference has no such file to edit")
        for number, replacement in enumerate(edit.get("replace") or [], start=1):
            text = _replace_once(text, replacement, f"corpus case {name!r}: {relative}: replacement {number}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode(encoding))


def _read_text(path: Path, where: str) -> str:
    if not path.is_file():
        raise CorpusError(f"{where}: the workspace has no file {path.name}")
    return path.read_text(encoding="utf-8")


def _replace_once(text: str, replacement: dict[str, Any], where: str) -> str:
    old, new = expand(replacement["old"]), expand(replacement["new"])
    count = text.count(old) if old else 0
    if count != 1:
        # Loud on purpose: the reference workspace changed under the case, which must be brought up to date.
        raise CorpusError(f"{where}: {old[:80]!r} occurs {count} times, not exactly once (did the reference change?)")
    return text.replace(old, new, 1)


def expand(text: str | list[Any]) -> str:
    """A text, or the concatenation of its pieces (strings and `{repeat: text, times: n}` recipes)."""
    if isinstance(text, str):
        return text
    return "".join(piece if isinstance(piece, str) else piece["repeat"] * piece["times"] for piece in text)


def materialize(name: str, parent: Path) -> Path:
    """Builds case `name` in parent/name (the folder name shows in no message); returns its mapsync.yaml."""
    folder = parent / name
    folder.mkdir(parents=True)
    return build_workspace(load_case(name), folder)
