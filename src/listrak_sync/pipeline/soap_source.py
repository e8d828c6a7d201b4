"""The SOAP resources of the dlt source: one per stream of the stream table.

``lists`` is the root; ``messages`` and ``subscribed_contacts`` are transformers of it, and the
six per-message activity tables are transformers of ``messages``. Selection works the dlt way
(``listrak_source(...).with_resources("message_clicks")``): dlt still runs the parents a
selected child needs, but loads only what was selected.

Every resource yields Arrow tables typed from the stream table, and always at least one (maybe
empty) table, so that a stream that has no rows any more still replaces its table.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract.resource import DltResource

from listrak_sync.engine.plan import DELETED_COLUMN, RunMode, StreamMode
from listrak_sync.engine.sync import Policy, SyncEngine, WorkUnit
from listrak_sync.extract import ACTIVITY_STREAMS, Extractor, column_ints
from listrak_sync.pipeline.checkpoint import Checkpoint
from listrak_sync.pipeline.destinations import can_merge, messages_held
from listrak_sync.pipeline.held import rows_held
from listrak_sync.pipeline.rows import dlt_columns, empty_table, in_batches, lists_as_json, markers, with_marker
from listrak_sync.settings import Settings
from listrak_sync.streams import STREAMS, Stream

log = logging.getLogger(__name__)

# A repair's choice of (table, MsgID) pairs from the messages just read and the plan.
RepairChoice = Callable[[pa.Table, Mapping[str, Any]], Collection[tuple[str, int]]]


class SoapRun:
    """What the resources of one run share: the extractor and the engine's plan.

    The engine (:class:`~listrak_sync.engine.sync.SyncEngine`) is made when the list of lists
    arrives, from the plan dlt keeps in its source state; its work units are planned once the
    messages are read. This class only carries the plan between dlt's state and the engine.
    """

    def __init__(
        self,
        extractor: Extractor,
        settings: Settings,
        full_refresh: bool,
        on_mode: Callable[[RunMode], None] | None = None,
        full_refresh_reason: str | None = None,
        known_messages: Mapping[int, int] | None = None,
        owns_client: bool = False,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.on_mode = on_mode
        self.known_messages = known_messages
        self.owns_client = owns_client
        self._running: set[str] = set()
        # A list shard owns only its lists' rows: every table is merged, never replaced.
        self.shard = settings.list_ids
        self.full_refresh_reason = full_refresh_reason
        self.extractor = extractor
        self.settings = settings
        self.full_refresh = full_refresh
        self.start = settings.start_date
        self.streams = [s for s in ACTIVITY_STREAMS if not settings.tables or s.name in settings.tables]
        self._engine: SyncEngine | None = None
        self.vanished: list[int] = []
        self.repair: RepairChoice | None = None

    @property
    def engine(self) -> SyncEngine:
        assert self._engine is not None, "the lists come first"
        return self._engine

    @property
    def modes(self) -> dict[str, StreamMode]:
        return self.engine.modes

    def decide(self) -> None:
        if self.known_messages is None:
            self._ask_destination()
        self._running = set(dlt.current.source().selected_resources)
        # Worked on a copy, handed back stream by stream as each one is through; dlt stores it
        # only with a completed load.
        plan = copy.deepcopy(dict(dlt.current.source_state().get("plan") or {}))
        self._engine = SyncEngine(
            plan, policy=Policy.from_settings(self.settings), streams=self.streams, start=self.start,
            full_refresh=self.full_refresh, full_refresh_reason=self.full_refresh_reason,
            known_messages=self.known_messages, lists=self.shard,
        )
        self.extractor.client.learn_page_sizes(self.engine.page_sizes(self.extractor.now()))
        mode = self.engine.mode
        log.info("Run mode: %s (%s)", "full refresh" if mode.full else "incremental", mode.reason)
        if self.on_mode:
            self.on_mode(mode)

    def _ask_destination(self) -> None:
        """What :func:`~listrak_sync.pipeline.runner.replicate` learns before a run, learnt here
        when the source runs in someone else's pipeline: whether the destination can merge
        (if not, every run replaces its tables), and which messages it holds."""
        pipeline = dlt.current.pipeline()
        factory = pipeline.destination
        if factory is None:  # extracted without a destination: nothing to ask
            return
        if not can_merge(factory):
            if not self.full_refresh:
                self.full_refresh = True
                self.full_refresh_reason = (f"the {factory.destination_name} destination cannot merge, "
                                            "so every run replaces its tables")
            self.known_messages = {}
            return
        self.known_messages = messages_held(pipeline)

    def refused_messages_held(self) -> set[int]:
        """The messages the service refused this run, and those of the lists it refused."""
        lists = self.extractor.refused_lists()
        held = {m for m, list_id in (self.known_messages or {}).items() if list_id in lists}
        return held | self.extractor.refused_messages()

    def kept(self, stream: Stream, column: str, ids: Iterable[int]) -> Iterator[pa.Table]:
        """Rows the destination holds of objects the service refused this run (``column`` in
        ``ids``): loaded again, so that a table replaced whole keeps them (refused is not gone)."""
        ids = sorted(set(ids))
        if not ids:
            return
        pipeline = dlt.current.pipeline()
        if pipeline.destination is None or not can_merge(pipeline.destination):
            return
        table = rows_held(pipeline, stream, column, ids)
        if table is not None:
            log.info("Kept %d %s rows of refused %s %s", table.num_rows, stream.name,
                     "lists" if column == "ListID" else "messages", ", ".join(map(str, ids)))
            yield table

    def finished(self, resource: str) -> None:
        """One resource is through; the last one closes a client this run made itself."""
        self._running.discard(resource)
        if self.owns_client and not self._running:
            self.extractor.client.close()

    def messages(self, list_ids: Sequence[int]) -> list[pa.Table]:
        """The lists' messages, asked concurrently and only as far back as the engine says."""
        now = self.extractor.now()
        reaches = self.engine.message_reaches(list_ids, now)
        tables = self.extractor.messages_of(list_ids, reaches)
        for list_id, table in zip(list_ids, tables, strict=True):
            if not self.extractor.refused_list(list_id):
                self.engine.record_messages(list_id, table, reaches[list_id], now)
        return tables

    def plan_messages(self, messages: pa.Table) -> None:
        stored = self.checkpoint.stored if self.checkpoint else set()
        units = self.engine.plan_activity(messages, self.extractor.now(), only=self.repair,
                                          refused_lists=self.extractor.refused_lists(), stored=stored)
        self.vanished = self.engine.vanished()
        self.extractor.progress.add_units(len(units))

    def stream_done(self, stream: Stream | None = None) -> None:
        """Close ``stream``'s part of the plan (if any) and hand the plan to dlt's state."""
        if stream is not None:
            self.engine.finish(stream, self.extractor.skipped_messages(), self.extractor.skipped_lists())
        self.engine.remember_page_sizes(self.extractor.client.page_size_bounds(), self.extractor.now())
        dlt.current.source_state()["plan"] = self.engine.plan


def soap_resources(run: SoapRun) -> list[DltResource]:
    by_name: dict[str, DltResource] = {}
    for stream in STREAMS:
        parent = by_name.get(stream.parent) if stream.parent else None
        by_name[stream.name] = _resource(stream, run, parent)
    return list(by_name.values())


def _resource(stream: Stream, run: SoapRun, parent: DltResource | None) -> DltResource:
    hints: dict[str, Any] = {
        "name": stream.name,
        "table_name": stream.name,
        "write_disposition": "replace",
        # Event tables are keyed (MsgID, EmailAddress) in the contract, but that key is not unique
        # (two clicks are two rows), so dlt must not treat it as a primary key.
        "primary_key": [] if stream.event else list(stream.key),
        "columns": dlt_columns(stream),
    }
    if stream.parent == "messages" or (run.shard and stream.name in _PER_LIST):
        hints["columns"][DELETED_COLUMN] = {"name": DELETED_COLUMN, "data_type": "bool", "nullable": True,
                                            "hard_delete": True,
                                            "description": "Delete marker of incremental merges; never true."}
    if run.shard and stream.parent != "messages":
        hints["write_disposition"] = {"disposition": "merge", "strategy": "delete-insert"}
        hints["merge_key"] = "ListID"
    if parent is None:
        return dlt.resource(_lists_rows(stream, run), **hints)
    if stream.name == "messages":
        return dlt.transformer(_messages_rows(stream, run), data_from=parent, **hints)
    if stream.name == "subscribed_contacts":
        return dlt.transformer(_contacts_rows(stream, run), data_from=parent, **hints)
    return dlt.transformer(_activity_rows(stream, run), data_from=parent, **hints)


# Tables a shard run clears per list (a marker row per list), so a list that has no messages or
# subscribers any more loses its old ones.
_PER_LIST = ("messages", "subscribed_contacts")


def _lists_rows(stream: Stream, run: SoapRun) -> Iterator[pa.Table]:
    try:
        table = run.extractor.lists()
        run.decide()
        yield lists_as_json(stream, table)
    finally:
        run.finished(stream.name)


def _messages_rows(stream: Stream, run: SoapRun) -> Any:
    def messages(lists: pa.Table) -> Iterator[pa.Table]:
        try:
            tables = run.messages(column_ints(lists, "ListID"))
            # One table for all lists, so the activity transformers see every message at once
            # and can keep the whole concurrency budget busy.
            table = pa.concat_tables(tables) if tables else empty_table(stream)
            run.plan_messages(table)
            # One item only: each item a parent yields runs every activity transformer once more.
            yield pa.concat_tables(_per_list(stream, run, lists, [table]))
        finally:
            run.finished(stream.name)

    return messages


def _contacts_rows(stream: Stream, run: SoapRun) -> Any:
    def subscribed_contacts(lists: pa.Table) -> Iterator[pa.Table]:
        try:
            pages = run.extractor.subscribed_contacts_of(column_ints(lists, "ListID"))
            yield from _per_list(stream, run, lists, itertools.chain([empty_table(stream)], pages))
            run.stream_done()
        finally:
            run.finished(stream.name)

    return subscribed_contacts


def _per_list(stream: Stream, run: SoapRun, lists: pa.Table, tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The rows of the lists, then what keeps a refused list's rows (refused is not gone).

    A run of every list replaces the table: the refused lists' rows are read back and loaded
    again. A shard run merges per list: a marker per list clears its old rows, and a refused
    list gets none, so its rows stay.
    """
    if not run.shard:
        seen: set[int] = set()
        for table in tables:
            seen.update(pc.unique(table.column("ListID")).to_pylist())
            yield table
        yield from run.kept(stream, "ListID", run.extractor.refused_lists() - seen)
        return
    for table in tables:
        yield with_marker(table, False)
    refused = run.extractor.refused_lists()
    list_ids = [i for i in column_ints(lists, "ListID") if i not in refused]
    # Negative message IDs keep the markers apart under the messages table's primary key.
    yield markers(stream, "ListID", list_ids, MsgID=[-i for i in list_ids])


def _activity_rows(stream: Stream, run: SoapRun) -> Any:
    def activity(messages: pa.Table) -> Iterator[Any]:
        try:
            units = run.engine.units_of(stream)
            msg_ids = [unit.parent for unit in units]
            tables = _unit_tables(stream, run, units)
            if run.modes[stream.name].full and not run.shard:
                yield dlt.mark.with_hints(empty_table(stream), dlt.mark.make_hints(write_disposition="replace"))
                latest = yield from in_batches(stream, tables)
                yield from run.kept(stream, "MsgID", run.refused_messages_held())
            else:
                # Each fetched or vanished message's rows are replaced whole: a delete marker per
                # message clears them (also when the new fetch has no rows), and the rows land.
                # Markers go last, once it is known which messages the service refused: a refused
                # message has neither, so its rows stay (refused is not gone).
                hints = dlt.mark.make_hints(
                    write_disposition={"disposition": "merge", "strategy": "delete-insert"}, merge_key="MsgID"
                )
                yield dlt.mark.with_hints(markers(stream, "MsgID", []), hints)
                latest = yield from in_batches(stream, tables, marker=False)
                refused = run.extractor.refused_messages()
                yield markers(stream, "MsgID", [*(m for m in msg_ids if m not in refused), *run.vanished])
            refused = run.extractor.skipped_messages()
            run.engine.record(stream, [m for m in msg_ids if m not in refused], latest,
                              run.extractor.short_counts(stream))
            run.stream_done(stream)
        finally:
            run.finished(stream.name)

    return activity


def _unit_tables(stream: Stream, run: SoapRun, units: Sequence[WorkUnit]) -> Iterator[pa.Table]:
    """The rows of ``units``: those an interrupted run kept served from its checkpoint, the rest
    fetched (and kept in this run's checkpoint as each unit finishes)."""
    checkpoint, progress = run.checkpoint, run.extractor.progress
    to_fetch = [u for u in units if not u.stored]
    if checkpoint is None:
        pages = run.extractor.activity_units([(u.stream, u.parent, u.start) for u in to_fetch], announced=True)
        yield from (table for _, _, table in pages if table is not None)
        return
    for _, kept in checkpoint.tables(stream.name, [u.key for u in units if u.stored]):
        progress.unit_resumed(stream.name, sum(t.num_rows for t in kept))
        yield from kept
    keys = {u.parent: u.key for u in to_fetch}
    pages = run.extractor.activity_units([(u.stream, u.parent, u.start) for u in to_fetch], announced=True)
    for _, msg_id, table in pages:
        if table is not None:
            checkpoint.add(keys[msg_id], table)
            yield table
        elif msg_id not in run.extractor.refused_messages():
            checkpoint.done(keys[msg_id])


__all__ = ["RepairChoice", "SoapRun", "soap_resources"]
