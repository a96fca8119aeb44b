"""What `mapsync links` does to the state store: unlink, relink, resolve manual conflicts.

Each change also queues the record for the next run (a dead-letter entry is exactly that: a record the
next run reads again by id), so the pair is merged afresh instead of waiting for an edit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mapsync.errors import PlanError
from mapsync.state.base import DeadLetter, Link, StateStore
from mapsync.sync.history import operator_entry, resolve_changes
from mapsync.sync.link_rules import LinkRules


def _requeue(store: StateStore, dataflow: str, source_id: str, reason: str) -> None:
    stamp = datetime.now(UTC).isoformat()
    store.add_dead_letter(DeadLetter(dataflow, "target", source_id, reason, None, first_failed_at=stamp,
                                     last_failed_at=stamp))


def unlink(store: StateStore, dataflow: str, source_id: str) -> Link:
    link = store.link_by_source(dataflow, source_id)
    if link is None:
        raise PlanError(f"{dataflow}: no link for source id {source_id!r}")
    with store.transaction():
        store.delete_link(dataflow, source_id)
        store.remove_conflicts(dataflow, source_id)
        store.remove_dead_letter(dataflow, "target", source_id)
        store.add_history([operator_entry(link, "unlink", "unlinked by hand (mapsync links unlink)")])
    return link


def relink(rules: LinkRules, source_id: str, target_id: str) -> Link:
    """Link a source record to another (or a first) target record; the next run merges the pair.

    Both records are read first and the pair checked (see LinkRules): a typo must never make one
    dataflow overwrite another's record. The pair has no common history, so every property that differs
    is settled by the conflict policy.
    """
    store, dataflow = rules.store, rules.name
    rules.check_pair(source_id, target_id)
    with store.transaction():
        store.delete_link(dataflow, source_id)
        store.remove_conflicts(dataflow, source_id)
        link = Link(dataflow, source_id, target_id, updated_at=datetime.now(UTC).isoformat())
        store.put_link(link)
        # A retired entry naming either record would otherwise relink it elsewhere when it comes back.
        store.drop_retired(dataflow, source_ids=[source_id], target_ids=[target_id])
        _requeue(store, dataflow, source_id, "relinked by hand: merged on the next run")
        store.add_history([operator_entry(link, "relink", "relinked by hand (mapsync links relink): merged on the "
                                                          "next run")])
    return link


def resolve(store: StateStore, dataflow: str, source_id: str, use: str, prop: str | None = None) -> int:
    """Settle manual conflicts of one pair in favour of `use` ("source" or "target"); returns how many."""
    link = store.link_by_source(dataflow, source_id)
    conflicts = [c for c in store.iter_conflicts(dataflow)
                 if c.source_id == source_id and (prop is None or c.prop == prop)]
    if link is None or not conflicts:
        raise PlanError(f"{dataflow}: no conflict recorded for source id {source_id!r}"
                        + (f" on {prop!r}" if prop else ""))
    for conflict in conflicts:
        # Make the losing side look unchanged since the last sync: the winner's value then flows to it.
        if use == "source":
            link.target_values[conflict.prop] = conflict.target_value
        else:
            link.source_values[conflict.prop] = conflict.source_value
    remaining = [c for c in store.iter_conflicts(dataflow) if c.source_id == source_id and c not in conflicts]
    with store.transaction():
        link.state = "conflict" if remaining else "ok"
        store.put_link(link)
        store.remove_conflicts(dataflow, source_id)
        for conflict in remaining:
            store.add_conflict(conflict)
        _requeue(store, dataflow, source_id, f"conflict resolved by hand for the {use}: synced on the next run")
        store.add_history([operator_entry(link, "resolve", f"conflict resolved by hand for the {use} (mapsync links "
                                                           "resolve): written on the next run",
                                          resolve_changes(conflicts, use))])
    return len(conflicts)


def failed_letter(store: StateStore, dataflow: str, record_id: str) -> DeadLetter:
    """The ledger entry of a failed record named by either side's id; PlanError when there is none."""
    link = store.link_by_source(dataflow, record_id) or store.link_by_target(dataflow, record_id)
    ids = {record_id} if link is None else {record_id, link.source_id, link.target_id}
    for letter in store.iter_dead_letters(dataflow):
        if letter.record_id in ids:
            return letter
    raise PlanError(f"{dataflow}: no failed record {record_id!r} (see `mapsync links failed`)")


def _create_may_have_happened(store: StateStore, letter: DeadLetter) -> bool:
    """Whether the record's create was sent and its outcome is unknown (a timeout, a dropped connection, a
    5xx, a 409/429): its pending entry must then stay, or a later create would make a duplicate."""
    if store.get_pending(letter.dataflow, letter.side, letter.record_id) is None:
        return False
    refused = letter.status is not None and 400 <= letter.status < 500 and letter.status not in {408, 409, 425, 429}
    return not refused


def dismiss(store: StateStore, dataflow: str, record_id: str) -> DeadLetter:
    """Take a failed record out of the ledger: no run retries it until it changes again.

    A create the other system refused (a 4xx) made nothing, so its pending entry goes too; a create whose
    outcome is unknown is refused here: only a retry with its idempotency key can tell, without a duplicate.
    """
    letter = failed_letter(store, dataflow, record_id)
    if _create_may_have_happened(store, letter):
        status = "no answer" if letter.status is None else f"answer {letter.status}"
        raise PlanError(f"{dataflow}: cannot dismiss {record_id!r}: its create may have been made ({status}); "
                        f"only a retry can find out without making a duplicate: `mapsync links retry "
                        f"{dataflow} {record_id}`")
    with store.transaction():
        store.remove_dead_letter(dataflow, letter.side, letter.record_id)
        store.remove_pending(dataflow, letter.side, letter.record_id)
    return letter
