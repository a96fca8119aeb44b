"""What the soak and the reliability scenarios check after a run: records lost, duplicated and wrong.

Written against the emulators' own data and the state store, projected through the mapping (so a
property row added to a mapping is checked without a change here):
- lost: a Tidsbanken record the sync should carry that has no partner;
- duplicated: a Custompms record of a dataflow that is linked twice or not at all;
- wrong: a linked property whose two sides disagree, or a link to a record that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mapsync.mapping.mapper import Mapper
from mapsync.sandbox import Sandbox
from mapsync.spec.model import Workspace
from mapsync.state import StateStore, open_store
from mapsync.sync.lookup import StoreLinks

RESOURCES = {"Customer": "customers", "Project": "projects"}


@dataclass
class Audit:
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.wrong)


def audit(sandbox: Sandbox, workspace: Workspace, state_url: str, *, expected_unsynced: Iterable[str] = ()) -> Audit:
    """Compare both emulators with the links; `expected_unsynced` are source ids the scenario means to fail."""
    result = Audit()
    skip = set(expected_unsynced)
    store = open_store(state_url)
    try:
        lookup = StoreLinks(store)
        for spec in workspace.dataflows.values():
            _audit_dataflow(Mapper(spec), sandbox, store, lookup, skip=skip, result=result)
    finally:
        store.close()
    return result


def _audit_dataflow(mapper: Mapper, sandbox: Sandbox, store: StateStore, lookup: StoreLinks, *, skip: set[str],
                    result: Audit) -> None:
    spec = mapper.spec
    name = spec.name
    targets = {r["id"]: r for r in sandbox.custompms.records(RESOURCES[spec.target.entity]) if mapper.owns_target(r)}
    times_linked: dict[str, int] = {}
    linked_sources: set[str] = set()
    for link in store.iter_links(name):
        times_linked[link.target_id] = times_linked.get(link.target_id, 0) + 1
        linked_sources.add(link.source_id)
        if link.source_id in skip:
            continue
        source = sandbox.tidsbanken.get(spec.source.entity, link.source_id)
        target = targets.get(link.target_id)
        if source is None or target is None:
            result.wrong += 1
            result.problems.append(f"{name}: link {link.source_id} -> {link.target_id} to a missing record")
            continue
        _compare(name, link.source_id, mapper.project_source(source, lookup), mapper.project_target(target), result)
    unlinked = [t for t in targets if t not in times_linked]
    doubled = [t for t, n in times_linked.items() if n > 1]
    result.duplicated += len(unlinked) + len(doubled)
    if unlinked or doubled:
        result.problems.append(f"{name}: unlinked {unlinked[:5]}, linked twice {doubled[:5]}")
    key = str(spec.source_schema.get("x-key", "Id"))
    missing = [str(r[key]) for r in sandbox.tidsbanken.records(spec.source.entity)
               if str(r[key]) not in linked_sources and str(r[key]) not in skip]
    result.lost += len(missing)
    if missing:
        result.problems.append(f"{name}: no partner for {spec.source.entity} {missing[:5]}")


def _compare(name: str, source_id: str, want: dict[str, Any], got: dict[str, Any], result: Audit) -> None:
    for prop, value in want.items():
        if value != got.get(prop):
            result.wrong += 1
            result.problems.append(f"{name}: {source_id}.{prop}: {value!r} != {got.get(prop)!r}")
