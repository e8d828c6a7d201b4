"""The Arrow types of the stream table's columns, the same for the SOAP and the REST parser."""

from __future__ import annotations

import pyarrow as pa

from listrak_sync.streams import Column, ColumnType, Stream

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.INT: pa.int64(),
    ColumnType.TEXT: pa.string(),
    ColumnType.BOOL: pa.bool_(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    ColumnType.TEXT_LIST: pa.list_(pa.string()),
    # JSON text (compact, as json.dumps writes it): every dlt destination loads it as its json type.
    ColumnType.JSON: pa.string(),
}


def arrow_schema(stream: Stream) -> pa.Schema:
    """The Arrow schema of a stream's table: ``stream.table_columns`` in order.

    INT→int64, TEXT→string, BOOL→bool, FLOAT→float64, TIMESTAMP→timestamp[us, UTC],
    TEXT_LIST→list<string>, JSON→string (JSON text); nullability from :attr:`Column.nullable`.
    """
    return pa.schema([_field(c) for c in stream.table_columns])


def item_schema(stream: Stream) -> pa.Schema:
    """The Arrow schema of the items as the service returns them (no stamped parent key)."""
    return pa.schema([_field(c) for c in stream.columns])


def _field(column: Column) -> pa.Field:
    return pa.field(column.name, ARROW_TYPES[column.type], nullable=column.nullable)


__all__ = ["ARROW_TYPES", "arrow_schema", "item_schema"]
