"""Arrow tables as the dlt source hands them on: typed columns, JSON lists, batches, delete markers."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from listrak_sync.engine.plan import DELETED_COLUMN
from listrak_sync.engine.sync import newest_events
from listrak_sync.extract import arrow_schema
from listrak_sync.streams import ColumnType, Stream

_DLT_TYPES: dict[ColumnType, str] = {
    ColumnType.INT: "bigint",
    ColumnType.TEXT: "text",
    ColumnType.BOOL: "bool",
    ColumnType.FLOAT: "double",
    ColumnType.TIMESTAMP: "timestamp",
    ColumnType.TEXT_LIST: "json",
    ColumnType.JSON: "json",  # JSON text already (rest/parse.py)
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


def empty_table(stream: Stream) -> pa.Table:
    """A table of ``stream``'s columns with no rows."""
    return arrow_schema(stream).empty_table()


def lists_as_json(stream: Stream, table: pa.Table) -> pa.Table:
    """Text-list columns as JSON text: every dlt destination loads that as its json type."""
    for column in stream.table_columns:
        if column.type is ColumnType.TEXT_LIST:
            index = table.schema.get_field_index(column.name)
            encoded = pa.array([None if v is None else json.dumps(v) for v in table.column(index).to_pylist()],
                               pa.string())
            table = table.set_column(index, pa.field(column.name, pa.string()), encoded)
    return table


# Rows handed to dlt at a time. dlt checks every yielded item against the schema, and most
# messages have a few rows: yielding per message cost ~20% of a medium run's CPU (~4,000 items).
# 50,000 held about 15 MiB more of the extract's peak than 20,000, for 3% less CPU.
BATCH_ROWS = 20_000


def in_batches(
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
        return table if marker is None else with_marker(table, marker)

    for table in tables:
        batch.append(table)
        rows += table.num_rows
        if rows >= BATCH_ROWS:
            yield flush()
            batch, rows = [], 0
    if batch:
        yield flush()
    return latest


def per_table_batches(pages: Iterable[tuple[str, pa.Table]]) -> Iterator[tuple[str, pa.Table]]:
    """The ``(table name, page)`` pairs of many tables, each table's pages joined into batches of
    about :data:`BATCH_ROWS` rows; what is left of every table comes at the end, in the order
    the tables first appeared."""
    held: dict[str, list[pa.Table]] = {}
    rows: dict[str, int] = {}
    for name, page in pages:
        held.setdefault(name, []).append(page)
        rows[name] = rows.get(name, 0) + page.num_rows
        if rows[name] >= BATCH_ROWS:
            yield name, pa.concat_tables(held.pop(name))
            rows[name] = 0
    for name, tables in held.items():
        yield name, pa.concat_tables(tables)


def markers(stream: Stream, key: str, ids: Sequence[int], **given: Sequence[Any]) -> pa.Table:
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
    return with_marker(pa.Table.from_arrays(columns, schema=schema), True)


_PLACEHOLDER = {pa.int64().id: 0, pa.string().id: "", pa.bool_().id: False, pa.float64().id: 0.0,
                pa.timestamp("us", tz="UTC").id: 0}


def with_marker(table: pa.Table, deleted: bool) -> pa.Table:
    """``table`` with the delete-marker column, ``deleted`` in every row."""
    return table.append_column(pa.field(DELETED_COLUMN, pa.bool_()),
                               pa.repeat(pa.scalar(deleted, pa.bool_()), table.num_rows))


__all__ = ["BATCH_ROWS", "dlt_columns", "empty_table", "in_batches", "lists_as_json", "markers", "per_table_batches",
           "with_marker"]
