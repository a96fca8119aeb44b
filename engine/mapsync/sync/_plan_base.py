"""The planner's state for one dataflow and run, shared by the parts it is made of (see planner.py).

Each part is a mixin on PlannerBase; the methods one part calls in another are declared here for the type
checker only, so every part type-checks on its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mapsync.connectors.base import Change
from mapsync.mapping.paths import get_path, split
from mapsync.state.base import Link, RetiredLink, ScanTail
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.context import DataflowContext, UsesContext
from mapsync.sync.link_rules import LinkRules, Rival
from mapsync.sync.merge import MergeResult
from mapsync.sync.scan import Scan

if TYPE_CHECKING:
    from mapsync.sync._plan_deletes import GuardState


class PlannerBase(UsesContext):
    """What one dataflow's plan remembers while it streams: the scan's findings and what the ledger, the
    pending creates and the retired links said when it started."""

    def __init__(self, ctx: DataflowContext, *, full: bool = False, plan_only: bool = False,
                 max_delete_share: float | None = None, only_ids: list[str] | None = None,
                 rivals: tuple[Rival, ...] = ()) -> None:
        self.ctx = ctx
        self.rules = LinkRules(ctx, rivals)  # which target records may be matched or relinked
        self.full = full
        self.only_ids = only_ids  # plan just these records (either side's id), read by id; see _planned_by_id
        self.plan_only = plan_only
        self.max_delete_share = max_delete_share  # the operator's share for this run, over the mapping's
        self.scan = Scan()
        self._match_index: dict[tuple[str, ...], dict[tuple[Any, ...], list[str]]] | None = None
        self._claimed: dict[str, str] = {}  # target id -> the source id that matched it in this run
        self._queued: set[str] = set()
        self._pending: dict[tuple[str, str], str] = {}  # (side, record id) -> idempotency key
        self._queued_targets: set[str] = set()
        self._target_gone: set[str] = set()  # source ids whose linked target record was deleted
        # Policy recreate: the source records whose target was deleted, as listed (else read by id).
        self._survivors: dict[str, tuple[dict[str, Any], str]] = {}
        # (dataflow, source id) of a reference with no link -> (its retired link's gone side, whether it exists)
        self._references_gone: dict[tuple[str, str], tuple[str | None, bool | None]] = {}
        self._ledger: dict[str, str] = {}  # source id -> its reason in the ledger (a note is written once)
        self._source_disappeared: set[str] = set()  # target ids whose source is gone: the delete policy decides
        self._guard: GuardState | None = None
        # Retired links (see _relink_source): looked up a chunk at a time, only when the dataflow has any.
        self._has_retired = False
        self._retired: dict[str, RetiredLink | None] = {}  # source id -> its entry (None: looked up, none)
        self._retired_targets: dict[str, tuple[RetiredLink, dict[str, Any]]] = {}  # listed, unlinked, named
        self._retired_resolved: set[str] = set()  # source ids of entries relinked or found dead in this run
        # Filters (_plan_filters): pairs whose target_where could not be evaluated wait, reported once.
        self._scope_held: set[str] = set()  # their source ids
        self._scope_failures: list[Action] = []

    def _source_id(self, record: dict[str, Any]) -> str:
        key = str(self.spec.source_schema.get("x-key", "id"))
        return str(record.get(key))

    def _label(self, record: dict[str, Any]) -> str:
        first = self.spec.rows[0].source_path
        return str(get_path(record, split(first)) or "") if first else ""

    def _fail(self, source_id: str | None, target_id: str | None, reason: str, status: int | None,
              label: str = "") -> Action:
        return Action(ActionKind.FAIL, self.name, source_id, target_id, label=label, reason=reason, status=status)

    if TYPE_CHECKING:  # defined by the parts, called across them
        def _plan_source_record(self, record: dict[str, Any], modified: str, link: Link | None
                                ) -> Iterator[Action]: ...

        def _pair_action(self, link: Link, result: MergeResult, *, source_record: dict[str, Any] | None,
                         source_values: dict[str, Any], target_record: dict[str, Any] | None,
                         target_values: dict[str, Any], source_modified: str | None,
                         kind: ActionKind | None = None) -> Action: ...

        def _refresh_target(self, link: Link) -> None: ...

        def _list_unlinked_targets(self) -> None: ...

        def _plan_unlinked(self, source_id: str, record: dict[str, Any], modified: str,
                           values: dict[str, Any]) -> Iterator[Action]: ...

        def _creates_back(self) -> Iterator[Action]: ...

        def _deletion(self, link: Link, gone: str, why: str | None = None) -> list[Action]: ...

        def _source_in_scope(self, record: Mapping[str, Any]) -> bool: ...

        def _target_in_scope(self, record: Mapping[str, Any]) -> bool: ...

        def _outside_scope(self, source_id: str, record: dict[str, Any], link: Link | None
                           ) -> list[Action] | None: ...

        def _linked_targets_held(self) -> bool: ...

        def _open_listings(self) -> None: ...

        def _close_listings(self) -> None: ...

        def _linked_target_stays(self, link: Link, record: dict[str, Any]) -> bool: ...

        def _left_scope_of_pair(self, source: dict[str, Any], target: dict[str, Any]) -> tuple[str, str] | None: ...

        def _guarded_deletes(self) -> Iterator[Action]: ...

        def _prefetch_retired(self, source_ids: list[str]) -> None: ...

        def _retired_source(self, source_id: str) -> RetiredLink | None: ...

        def _note_retired_targets(self, unlinked: list[Change]) -> None: ...

        def _relink_source(self, entry: RetiredLink, record: dict[str, Any], modified: str,
                           values: dict[str, Any]) -> Action | None: ...

        def _relink_target(self, target_id: str, record: dict[str, Any]) -> Action | None: ...

        def _kept_apart(self, entry: RetiredLink) -> bool: ...

        def _start_tail(self, since: str | None) -> None: ...

        def _note_listed(self, change: Change) -> None: ...

        def _prune_tail(self, cursor: str | None) -> None: ...

        def _seen_unchanged(self, change: Change) -> bool: ...

        def _settled(self, change: Change, link: Link) -> bool: ...

        def _tail_to_keep(self, cursor: str | None) -> ScanTail: ...
