"""The dlt source: one resource per stream of the stream table.

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
import json
import logging
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from listrak_sync.engine.plan import DELETED_COLUMN, RunMode, StreamMode
from listrak_sync.engine.sync import Policy, SyncEngine, newest_events
from listrak_sync.extract import ACTIVITY_STREAMS, Extractor, arrow_schema, column_ints
from listrak_sync.settings import PRODUCTION_ENDPOINT, Settings
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import STREAMS, ColumnType, Stream

SOURCE_NAME = "listrak"
log = logging.getLogger(__name__)

_DLT_TYPES: dict[ColumnType, str] = {
    ColumnType.INT: "bigint",
    ColumnType.TEXT: "text",
    ColumnType.BOOL: "bool",
    ColumnType.FLOAT: "double",
    ColumnType.TIMESTAMP: "timestamp",
    ColumnType.TEXT_LIST: "json",
}


def dlt_columns(stream: Stream) -> TTableSchemaColumns:
    """dlt column hints for ``stream``: types, nullability, the documented key, descriptions."""
    columns: TTableSchemaColumns = {}
    for column in stream.table_columns:
        hint: TColumnSchema = {
            "name": column.name,
            "data_type": _DLT_TYPES[column.type],  # type: ignore[typeddict-item]
            "nullable": column.nullable,
            "description": column.description,
        }
        if column.type is ColumnType.TIMESTAMP:
            hint["timezone"] = True
        columns[column.name] = hint
    return columns


def _empty(stream: Stream) -> pa.Table:
    return arrow_schema(stream).empty_table()


def build_source(
    settings: Settings,
    client: ListrakClient,
    *,
    extractor: Extractor | None = None,
    full_refresh: bool = False,
    full_refresh_reason: str | None = None,
    on_mode: Callable[[RunMode], None] | None = None,
    known_messages: Mapping[int, int] | None = None,
) -> DltSource:
    """Build the Listrak dlt source from explicit settings and a client.

    This is the seam the CLI and the tests use: the caller keeps the client (and its request
    counters) and the extractor (and its list of skipped objects).

    Args:
        settings: validated settings.
        client: the SOAP client to use.
        extractor: an extractor over ``client``; made here when not given.
        full_refresh: replace every table even where an incremental run would do.
        full_refresh_reason: why ``full_refresh`` is forced (for the summary), if not the user's request.
        on_mode: told the run's mode (full or incremental, and why) once it is decided.
        known_messages: message ID to list ID of what the destination holds, so that messages
            that vanished lose their rows even where the plan does not know them.

    Returns:
        A dlt source with one resource per stream, restricted to ``settings.tables`` if set.
        With ``settings.list_ids`` (a list shard) every table is merged per list and per
        message: the run replaces exactly its lists' rows and leaves other lists' rows alone.
    """
    run = _Run(extractor or Extractor(client, settings), settings, full_refresh, on_mode, full_refresh_reason,
               known_messages)

    @dlt.source(name=SOURCE_NAME, max_table_nesting=0, root_key=False)
    def _listrak() -> list[DltResource]:
        return _resources(run)

    source = _listrak()
    if settings.tables:
        source = source.with_resources(*settings.tables)
    return source


class _Run:
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
    ) -> None:
        self.on_mode = on_mode
        self.known_messages = known_messages
        # A list shard owns only its lists' rows: every table is merged, never replaced.
        self.shard = settings.list_ids
        self.full_refresh_reason = full_refresh_reason
        self.extractor = extractor
        self.settings = settings
        self.full_refresh = full_refresh
        self.start = extractor.clock.instant(settings.start_date)
        self.streams = [s for s in ACTIVITY_STREAMS if not settings.tables or s.name in settings.tables]
        self._engine: SyncEngine | None = None
        self.fetch: dict[str, list[int]] = {}
        self.vanished: list[int] = []

    @property
    def engine(self) -> SyncEngine:
        assert self._engine is not None, "the lists come first"
        return self._engine

    @property
    def modes(self) -> dict[str, StreamMode]:
        return self.engine.modes

    def decide(self) -> None:
        # Worked on a copy, handed back stream by stream as each one is through; dlt stores it
        # only with a completed load.
        plan = copy.deepcopy(dict(dlt.current.source_state().get("plan") or {}))
        self._engine = SyncEngine(
            plan, policy=Policy.from_settings(self.settings), streams=self.streams, start=self.start,
            full_refresh=self.full_refresh, full_refresh_reason=self.full_refresh_reason,
            known_messages=self.known_messages, lists=self.shard,
        )
        self.extractor.client.learn_page_sizes(self.engine.page_sizes(self.extractor.now()))
        mode = self.engine.mode if self.streams else RunMode(True, self.full_refresh_reason or "replace")
        log.info("Run mode: %s (%s)", "full refresh" if mode.full else "incremental", mode.reason)
        if self.on_mode:
            self.on_mode(mode)

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
        units = self.engine.plan_activity(messages, self.extractor.now())
        self.fetch = {s.name: [u.parent for u in units if u.stream is s] for s in self.streams}
        self.vanished = self.engine.vanished()
        self.extractor.progress.add_units(len(units))

    def stream_done(self, stream: Stream | None = None) -> None:
        """Close ``stream``'s part of the plan (if any) and hand the plan to dlt's state."""
        if stream is not None:
            refused_lists = {e.object_id for e in self.extractor.skipped if e.kind == "list" and e.object_id}
            self.engine.finish(stream, self.extractor.refused_messages(), refused_lists)
        self.engine.remember_page_sizes(self.extractor.client.page_size_bounds(), self.extractor.now())
        dlt.current.source_state()["plan"] = self.engine.plan


def _resources(run: _Run) -> list[DltResource]:
    by_name: dict[str, DltResource] = {}
    for stream in STREAMS:
        parent = by_name.get(stream.parent) if stream.parent else None
        by_name[stream.name] = _resource(stream, run, parent)
    return list(by_name.values())


def _resource(stream: Stream, run: _Run, parent: DltResource | None) -> DltResource:
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


def _lists_rows(stream: Stream, run: _Run) -> Iterator[pa.Table]:
    table = run.extractor.lists()
    run.decide()
    yield _json_encode_lists(stream, table)


def _json_encode_lists(stream: Stream, table: pa.Table) -> pa.Table:
    """Text-list columns as JSON text: every dlt destination loads that as its json type."""
    for column in stream.table_columns:
        if column.type is ColumnType.TEXT_LIST:
            index = table.schema.get_field_index(column.name)
            encoded = pa.array([None if v is None else json.dumps(v) for v in table.column(index).to_pylist()],
                               pa.string())
            table = table.set_column(index, pa.field(column.name, pa.string()), encoded)
    return table


def _messages_rows(stream: Stream, run: _Run) -> Any:
    def messages(lists: pa.Table) -> Iterator[pa.Table]:
        tables = run.messages(column_ints(lists, "ListID"))
        # One table for all lists, so the activity transformers see every message at once and
        # can keep the whole concurrency budget busy.
        table = pa.concat_tables(tables) if tables else _empty(stream)
        run.plan_messages(table)
        # One item only: each item a parent yields runs every activity transformer once more.
        yield pa.concat_tables(_per_list(stream, run, lists, [table]))

    return messages


def _contacts_rows(stream: Stream, run: _Run) -> Any:
    def subscribed_contacts(lists: pa.Table) -> Iterator[pa.Table]:
        pages = run.extractor.subscribed_contacts_of(column_ints(lists, "ListID"))
        yield from _per_list(stream, run, lists, itertools.chain([_empty(stream)], pages))
        run.stream_done()

    return subscribed_contacts


def _per_list(stream: Stream, run: _Run, lists: pa.Table, tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The tables as they are, or in a shard run: a marker per list first, then the rows."""
    if not run.shard:
        yield from tables
        return
    list_ids = column_ints(lists, "ListID")
    # Negative message IDs keep the markers apart under the messages table's primary key.
    yield _markers(stream, "ListID", list_ids, MsgID=[-i for i in list_ids])
    for table in tables:
        yield _with_marker(table, False)


def _activity_rows(stream: Stream, run: _Run) -> Any:
    def activity(messages: pa.Table) -> Iterator[Any]:
        msg_ids = run.fetch[stream.name]
        if run.modes[stream.name].full and not run.shard:
            yield dlt.mark.with_hints(_empty(stream), dlt.mark.make_hints(write_disposition="replace"))
            tables = run.extractor.message_activity([stream], msg_ids, announced=True)
            latest = yield from _passing(stream, (table for _, table in tables))
        else:
            # Each fetched or vanished message's rows are replaced whole: a delete marker per
            # message clears them (also when the new fetch has no rows), then the rows land.
            hints = dlt.mark.make_hints(
                write_disposition={"disposition": "merge", "strategy": "delete-insert"}, merge_key="MsgID"
            )
            yield dlt.mark.with_hints(_markers(stream, "MsgID", [*msg_ids, *run.vanished]), hints)
            tables = run.extractor.message_activity([stream], msg_ids, announced=True)
            latest = yield from _passing(stream, (table for _, table in tables), marker=False)
        refused = run.extractor.refused_messages()
        run.engine.record(stream, [m for m in msg_ids if m not in refused], latest)
        run.stream_done(stream)

    return activity


# Rows handed to dlt at a time. dlt checks every yielded item against the schema, and most
# messages have a few rows: yielding per message cost ~20% of a medium run's CPU (~4,000 items).
# 50,000 held about 15 MiB more of the extract's peak than 20,000, for 3% less CPU.
BATCH_ROWS = 20_000


def _passing(
    stream: Stream, tables: Iterator[pa.Table], marker: bool | None = None
) -> Generator[pa.Table, None, dict[int, Any]]:
    """Yield the tables in batches of about :data:`BATCH_ROWS` rows (with a delete-marker
    column of ``marker`` unless it is None), and return each message's newest event date."""
    latest: dict[int, Any] = {}
    batch: list[pa.Table] = []
    rows = 0

    def flush() -> pa.Table:
        table = pa.concat_tables(batch)
        newest_events(stream, table, latest)  # a message's pages can fall into more than one batch
        return table if marker is None else _with_marker(table, marker)

    for table in tables:
        batch.append(table)
        rows += table.num_rows
        if rows >= BATCH_ROWS:
            yield flush()
            batch, rows = [], 0
    if batch:
        yield flush()
    return latest


def _markers(stream: Stream, key: str, ids: Sequence[int], **given: Sequence[Any]) -> pa.Table:
    """One delete-marker row per ``key`` value (and ``given`` columns); other required
    columns hold placeholders, never stored."""
    schema = arrow_schema(stream)
    values = {key: ids, **given}
    columns = []
    for field in schema:
        if field.name in values:
            columns.append(pa.array(values[field.name], field.type))
        elif field.nullable:
            columns.append(pa.nulls(len(ids), field.type))
        else:
            columns.append(pa.array([_PLACEHOLDER[field.type.id]] * len(ids), field.type))
    return _with_marker(pa.Table.from_arrays(columns, schema=schema), True)


_PLACEHOLDER = {pa.int64().id: 0, pa.string().id: "", pa.bool_().id: False, pa.float64().id: 0.0,
                pa.timestamp("us", tz="UTC").id: 0}


def _with_marker(table: pa.Table, deleted: bool) -> pa.Table:
    return table.append_column(pa.field(DELETED_COLUMN, pa.bool_()),
                               pa.repeat(pa.scalar(deleted, pa.bool_()), table.num_rows))


@dlt.source(name=SOURCE_NAME, max_table_nesting=0, root_key=False)
def listrak_source(
    username: str = dlt.secrets.value,
    password: str = dlt.secrets.value,
    start_date: str = dlt.config.value,
    endpoint: str = PRODUCTION_ENDPOINT,
    concurrency: int = 8,
    list_ids: Sequence[int] | None = None,
    full_refresh: bool = False,
    options: dict[str, Any] | None = None,
) -> list[DltResource]:
    """The Listrak source for your own dlt pipelines.

    Credentials resolve the dlt way (``.dlt/secrets.toml`` ``[sources.listrak]``, or the
    environment variables ``SOURCES__LISTRAK__USERNAME`` / ``SOURCES__LISTRAK__PASSWORD``).

    Args:
        username: the Listrak API user.
        password: its password (a secret: never logged).
        start_date: earliest data to replicate, ``MM/DD/YYYY`` or ``YYYY-MM-DD``.
        endpoint: the SOAP endpoint (production, a proxy, or the bundled simulator).
        concurrency: most requests in flight at once.
        list_ids: replicate only these lists (default: every list the user can see).
        full_refresh: replace every table even where an incremental run would do.
        options: any further :class:`~listrak_sync.settings.Settings` field by name.

    Returns:
        Nine resources, one per table; use ``.with_resources(...)`` to pick some.

    Raises:
        ConfigError: a setting is missing or malformed.
    """
    settings = Settings.from_mapping(
        {
            **(options or {}),
            "username": username,
            "password": password,
            "start_date": start_date,
            "endpoint": endpoint,
            "concurrency": concurrency,
            "list_ids": list_ids,
        }
    )
    return _resources(_Run(Extractor(ListrakClient(settings), settings), settings, full_refresh))


__all__ = ["build_source", "dlt_columns", "listrak_source"]
