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
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from listrak_sync.config import PRODUCTION_ENDPOINT, Settings
from listrak_sync.extract import ACTIVITY_STREAMS, Extractor, arrow_schema, column_ints
from listrak_sync.incremental import PLAN_COLUMNS, Planner, RunMode, choose_mode, new_state
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

    Returns:
        A dlt source with one resource per stream, restricted to ``settings.tables`` if set.
    """
    run = _Run(extractor or Extractor(client, settings), settings, full_refresh, on_mode, full_refresh_reason)

    @dlt.source(name=SOURCE_NAME, max_table_nesting=0, root_key=False)
    def _listrak() -> list[DltResource]:
        return _resources(run)

    source = _listrak()
    if settings.tables:
        source = source.with_resources(*settings.tables)
    return source


class _Run:
    """What the resources of one run share: the extractor, the mode, and the plan state.

    The mode is decided when the list of lists arrives (a changed set of lists forces a full
    refresh) from the plan state dlt keeps in its source state; see :mod:`listrak_sync.incremental`.
    """

    def __init__(
        self,
        extractor: Extractor,
        settings: Settings,
        full_refresh: bool,
        on_mode: Callable[[RunMode], None] | None = None,
        full_refresh_reason: str | None = None,
    ) -> None:
        self.on_mode = on_mode
        self.full_refresh_reason = full_refresh_reason
        self.extractor = extractor
        self.settings = settings
        self.full_refresh = full_refresh
        self.mode = RunMode(True, "not decided")
        self.planner: Planner | None = None
        self.fetch: dict[str, list[int]] = {}
        self.plan: dict[str, Any] = {}
        self.now = extractor.now()

    def decide(self, list_ids: list[int]) -> None:
        state = dlt.current.source_state()
        previous = state.get("plan") or {}
        self.mode = choose_mode(
            previous,
            start_date=self.settings.start_date,
            list_ids=list_ids,
            now=self.now,
            full_refresh=self.full_refresh,
            full_recheck_days=self.settings.full_recheck_days,
        )
        if self.mode.full and self.full_refresh_reason:
            self.mode = RunMode(True, self.full_refresh_reason)
        log.info("Run mode: %s (%s)", "full refresh" if self.mode.full else "incremental", self.mode.reason)
        if self.on_mode:
            self.on_mode(self.mode)
        if self.mode.full:
            self.plan = new_state(start_date=self.settings.start_date, list_ids=list_ids, now=self.now)
        else:
            self.plan = copy.deepcopy(dict(previous))
        state["plan"] = self.plan

    def plan_messages(self, messages: pa.Table) -> None:
        self.planner = Planner(
            self.plan,
            messages.select(list(PLAN_COLUMNS)).to_pylist(),
            now=self.now,
            trust_counters=self.settings.trust_counters,
            send_settle_hours=self.settings.send_settle_hours,
        )
        self.planner.forget_missing()
        # Decided once for every stream before any is recorded: recording one stream may mark
        # a message settled, which must not change what another stream of this run fetches.
        all_ids = column_ints(messages, "MsgID")
        self.fetch = {s.name: all_ids if self.mode.full else self.planner.to_fetch(s) for s in ACTIVITY_STREAMS}
        # Every per-message request of this run is known now: tell the progress display.
        selected = [s for s in ACTIVITY_STREAMS if not self.settings.tables or s.name in self.settings.tables]
        self.extractor.progress.add_units(sum(len(self.fetch[s.name]) for s in selected))


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
    if parent is None:
        return dlt.resource(_lists_rows(stream, run), **hints)
    if stream.name == "messages":
        return dlt.transformer(_messages_rows(stream, run), data_from=parent, **hints)
    if stream.name == "subscribed_contacts":
        return dlt.transformer(_contacts_rows(stream, run), data_from=parent, **hints)
    return dlt.transformer(_activity_rows(stream, run), data_from=parent, **hints)


def _lists_rows(stream: Stream, run: _Run) -> Iterator[pa.Table]:
    table = run.extractor.lists()
    run.decide(column_ints(table, "ListID"))
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
        tables = [run.extractor.messages(list_id) for list_id in column_ints(lists, "ListID")]
        # One table for all lists, so the activity transformers see every message at once and
        # can keep the whole concurrency budget busy.
        table = pa.concat_tables(tables) if tables else _empty(stream)
        run.plan_messages(table)
        yield table

    return messages


def _contacts_rows(stream: Stream, run: _Run) -> Any:
    def subscribed_contacts(lists: pa.Table) -> Iterator[pa.Table]:
        yield _empty(stream)
        for list_id in column_ints(lists, "ListID"):
            yield from run.extractor.subscribed_contacts(list_id)

    return subscribed_contacts


def _activity_rows(stream: Stream, run: _Run) -> Any:
    def activity(messages: pa.Table) -> Iterator[Any]:
        assert run.planner is not None, "messages are planned before their activity"
        # In an incremental run, only messages whose rows can have changed; each one's rows
        # are replaced whole.
        msg_ids = run.fetch[stream.name]
        if run.mode.full:
            hints = dlt.mark.make_hints(write_disposition="replace")
        else:
            hints = dlt.mark.make_hints(
                write_disposition={"disposition": "merge", "strategy": "delete-insert"}, merge_key="MsgID"
            )
        yield dlt.mark.with_hints(_empty(stream), hints)
        for _, table in run.extractor.message_activity([stream], msg_ids, announced=True):
            yield table
        refused = run.extractor.refused_messages()
        run.planner.record(stream, [m for m in msg_ids if m not in refused])

    return activity
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
        options: any further :class:`~listrak_sync.config.Settings` field by name.

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
