"""The planner's reading of both sides: the target scanned first (what changed there, what is unlinked),
then the source, page by page; records queued last time read again by id; target-only changes."""

from __future__ import annotations

from collections.abc import Iterator

from mapsync.connectors.base import Change, resume_point
from mapsync.errors import ConnectorError, MappingError
from mapsync.mapping.paths import get_path, split
from mapsync.state.base import Link
from mapsync.sync._plan_base import PlannerBase
from mapsync.sync._readahead import ReadAhead
from mapsync.sync.actions import Action, ActionKind
from mapsync.sync.merge import merge
from mapsync.sync.scan import CHUNK, TargetSeen, chunked, modified_of


class SidesMixin(PlannerBase):
    """Scans each side and turns what changed into actions."""

    # -- target side ------------------------------------------------------------------------------------

    def _wants_unlinked_targets(self) -> bool:
        return bool(self.spec.match) or self.spec.create in {"source", "both"}

    def _open_listings(self) -> None:
        """Both sides' listings, from their cursors, read ahead from now on (see _readahead)."""
        self._target_since = None if self.full else self.store.get_cursor(self.name, "target")
        self._source_since = None if self.full else self.store.get_cursor(self.name, "source")
        self._target_listing = ReadAhead(self.target.list_changes(self.spec.target.entity, self._target_since),
                                         f"{self.name}-target")
        self._source_listing = ReadAhead(self.source.list_changes(self.spec.source.entity, self._source_since),
                                         f"{self.name}-source")

    def _close_listings(self) -> None:
        for listing in (getattr(self, "_target_listing", None), getattr(self, "_source_listing", None)):
            if listing is not None:
                listing.close()

    def _scan_target(self) -> None:
        cursor = self._target_since
        for chunk in self._target_listing.chunks():
            # One lookup of change markers per page; whole links only for linked records that moved.
            markers = self.store.target_markers(self.name, [c.id for c in chunk])
            moved = [c.id for c in chunk if c.id in markers and not self._target_unchanged(c, markers[c.id])]
            links = {link.target_id: link for link in self.store.get_links(self.name, target_ids=moved)}
            for change in chunk:
                cursor = max(cursor or change.modified, change.modified)
                if change.id not in markers:
                    self._see_target(change, None)
                elif change.id in links:
                    self._see_target(change, links[change.id])
            self._note_retired_targets([c for c in chunk if c.id not in markers and c.record is not None
                                        and not c.deleted and self.mapper.owns_target(c.record)
                                        and self._target_in_scope(c.record)])
        self.scan.target_cursor = resume_point(self._target_listing.listing, cursor)

    def _target_unchanged(self, change: Change, marker: str | None) -> bool:
        """A linked target record listed with the marker its link holds (unchanged since the last sync, or
        mapsync's own write read back), and no target filter to hold it to: nothing to see."""
        return (marker == change.modified and not change.deleted and change.record is not None
                and not self._linked_targets_held())

    def _see_target(self, change: Change, link: Link | None) -> None:
        if change.deleted or change.record is None:
            if link is not None:
                self.scan.deletes.extend(self._deletion(link, gone="target"))
                self._target_gone.add(link.source_id)
            return
        if not self.mapper.owns_target(change.record):
            return
        if link is None:
            if self._wants_unlinked_targets() and self._target_in_scope(change.record):
                self.scan.unlinked_targets[change.id] = change.record
            return
        if not self._linked_target_stays(link, change.record):
            return  # left target_where: the delete policy decides, as for a deleted record
        if link.target_version != change.modified:
            self.scan.target_changed[change.id] = TargetSeen(change.record, change.modified)

    # -- source side ------------------------------------------------------------------------------------

    def _scan_source(self, handled: set[str]) -> Iterator[Action]:
        since = self._source_since
        full_scan = since is None
        cursor = since
        self._start_tail(since)
        for chunk in self._source_listing.chunks():
            for change in chunk:
                self._note_listed(change)
            # Listed again as the last complete run saw them: passed over before any lookup (see _plan_tail).
            passed = {c.id for c in chunk if self._seen_unchanged(c)}
            fresh = [c for c in chunk if c.id not in passed]
            links = {link.source_id: link for link in self.store.get_links(self.name, source_ids=[c.id for c in fresh])}
            self._prefetch_references(fresh)
            self._prefetch_retired([c.id for c in fresh if c.id not in links and not c.deleted])
            for change in chunk:
                cursor = max(cursor or change.modified, change.modified)
                if change.id in handled:
                    continue  # the overlap window or a page boundary repeated it
                handled.add(change.id)
                if change.id in passed:
                    continue
                link = links.get(change.id)
                if change.deleted or change.record is None:
                    if link is not None:
                        self._source_gone(link)
                    continue
                if link is not None and self._settled(change, link):
                    yield Action(ActionKind.UNCHANGED, self.name, change.id, link.target_id)
                    continue
                yield from self._plan_source_record(change.record, change.modified, link)
            self._prune_tail(cursor)
        self.scan.source_cursor = resume_point(self._source_listing.listing, cursor)
        self.scan.full_source = full_scan
        if full_scan:
            self._notice_disappeared_sources(handled)

    def _prefetch_references(self, chunk: list[Change]) -> None:
        for row in self.spec.rows:
            if row.dataflow and row.source_path:
                parts = split(row.source_path)
                ids = {str(v) for c in chunk if c.record and (v := get_path(c.record, parts)) not in (None, "")}
                self.links.prefetch(row.dataflow, ids)

    def _notice_disappeared_sources(self, seen: set[str]) -> None:
        gone = [source_id for source_id in self.store.iter_linked_source_ids(self.name) if source_id not in seen]
        for chunk in chunked(gone, CHUNK):  # whole links only for the few that disappeared
            for link in self.store.get_links(self.name, source_ids=chunk):
                self._source_gone(link)

    def _source_gone(self, link: Link) -> None:
        deletion = self._deletion(link, gone="source")
        if deletion:
            self.scan.deletes.extend(deletion)
            self._source_disappeared.add(link.target_id)

    def _retries(self, handled: set[str]) -> Iterator[Action]:
        """Records that failed or waited last time, and creates a crash may have cut short: read by id."""
        for source_id in sorted(self._queued - handled):
            handled.add(source_id)
            try:
                record = self.source.read(self.spec.source.entity, source_id)
            except ConnectorError as exc:
                yield self._fail(source_id, None, f"could not read it for a retry: {exc}", exc.status)
                continue
            link = self.store.link_by_source(self.name, source_id)
            if record is None:
                yield Action(ActionKind.DROP, self.name, source_id, link.target_id if link else None,
                             reason="gone from the source since it failed")
                continue
            if link is not None and link.target_id not in self.scan.target_changed:
                self._refresh_target(link)
            yield from self._plan_source_record(record, modified_of(self.spec.source_schema, record) or "", link)

    def _refresh_target(self, link: Link) -> None:
        try:
            record = self.target.read(self.spec.target.entity, link.target_id)
        except ConnectorError:
            return
        if record is not None:
            self.scan.target_changed[link.target_id] = TargetSeen(
                record, modified_of(self.spec.target_schema, record) or "")

    # -- target-only changes ----------------------------------------------------------------------------

    def _target_only_changes(self) -> Iterator[Action]:
        remaining = self.scan.target_changed
        for chunk in chunked(list(remaining), CHUNK):
            links = {link.target_id: link for link in self.store.get_links(self.name, target_ids=chunk)}
            for target_id in chunk:
                seen = remaining.pop(target_id)
                link = links.get(target_id)
                if link is None or target_id in self._source_disappeared:
                    continue  # no partner (any more): nothing to write it to
                if link.state == "conflict":
                    # Likewise the other way: the source's side of a manual conflict is not in the link.
                    try:
                        record = self.source.read(self.spec.source.entity, link.source_id)
                    except ConnectorError as exc:
                        yield self._fail(link.source_id, target_id, f"could not read it: {exc}", exc.status)
                        continue
                    if record is not None:
                        remaining[target_id] = seen
                        yield from self._plan_source_record(
                            record, modified_of(self.spec.source_schema, record) or "", link)
                        continue
                try:
                    target_values = self.mapper.project_target(seen.record)
                except MappingError as exc:
                    yield self._fail(link.source_id, target_id, f"cannot read the target: {exc}", None)
                    continue
                result = merge(self.spec.rows, base_source=link.source_values, base_target=link.target_values,
                               source=link.source_values, target=target_values, policy=self.spec.conflicts,
                               newer="target")
                yield self._pair_action(link, result, source_record=None, source_values=link.source_values,
                                        target_record=seen.record, target_values=target_values,
                                        source_modified=link.source_version)
    def _list_unlinked_targets(self) -> None:
        for chunk in chunked(self.target.list_changes(self.spec.target.entity, None), CHUNK):
            linked = {link.target_id for link in self.store.get_links(self.name, target_ids=[c.id for c in chunk])}
            for change in chunk:
                if change.record is not None and not change.deleted and change.id not in linked \
                        and self.mapper.owns_target(change.record) and self._target_in_scope(change.record):
                    self.scan.unlinked_targets[change.id] = change.record
