"""Singer messages on stdout: SCHEMA, RECORD and STATE lines made from the extractor's Arrow tables.

One :class:`SingerWriter` owns the output stream and is used from one thread only (the tap's
main thread, which consumes the extractor's concurrent iterator), so every message is one whole
line and lines never interleave. It writes a table's records as one block and flushes at
every STATE, so a target that checkpoints on STATE has received every record before it.

Timestamp columns are RFC 3339 in UTC with microseconds and ``Z`` (``2024-01-31T08:00:00.000000Z``),
the form singer-python writes; a date read as text (the event dates the service sends as
``s:string``, see ``catalog.stream_as_sent``) goes out as that text. A list's pool columns
are re-nested into the ``Vmta`` object the original tap's schema has.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc

from listrak_sync.streams import ColumnType, Stream

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"  # Arrow's %S carries the fraction at the column's unit (us)


def _column_values(table: pa.Table, name: str, decode: bool = False) -> list[Any]:
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = pc.strftime(column, format=RFC3339)
    values = column.to_pylist()
    # A JSON column (REST contacts' profile-field values) is JSON text in the table.
    return [None if v is None else json.loads(v) for v in values] if decode else values


def iter_records(table: pa.Table, stream: Stream, properties: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The rows of one extracted table as Singer records, property by property.

    Args:
        table: a table of ``stream`` as the extractor yields it (columns named as the stream table).
        stream: its stream.
        properties: the record properties to emit, in order (see ``catalog.record_properties``).

    Returns:
        One dict per row; nested properties (``Vmta``) are an object, or ``None`` when every
        part is absent.
    """
    if table.num_rows == 0:
        return
    flat: list[tuple[str, list[Any]]] = []
    nested: list[tuple[str, list[tuple[str, list[Any]]]]] = []
    for name in properties:
        parts = [c for c in stream.table_columns if c.path[0] == name]
        if len(parts) == 1 and len(parts[0].path) == 1:
            flat.append((name, _column_values(table, parts[0].name, parts[0].type is ColumnType.JSON)))
        else:
            nested.append((name, [(c.path[1], _column_values(table, c.name)) for c in parts]))
    order = list(properties)
    for i in range(table.num_rows):
        record: dict[str, Any] = {name: values[i] for name, values in flat}
        for name, members in nested:
            value = {key: values[i] for key, values in members}
            record[name] = value if any(v is not None for v in value.values()) else None
        yield {name: record[name] for name in order} if nested else record


class SingerWriter:
    """Writes Singer messages, one JSON object per line, to a text stream (normally stdout)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.records_written: dict[str, int] = {}
        self.last_state: dict[str, Any] | None = None

    def _line(self, message: dict[str, Any]) -> str:
        return json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n"

    def schema(self, stream: str, schema: dict[str, Any], key_properties: Sequence[str]) -> None:
        """Write a SCHEMA message (before any RECORD of that stream)."""
        self._out.write(
            self._line({"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": list(key_properties)})
        )
        self.records_written.setdefault(stream, 0)

    def records(self, stream: str, records: Iterator[dict[str, Any]]) -> int:
        """Write RECORD messages, as one block; returns how many."""
        lines = [self._line({"type": "RECORD", "stream": stream, "record": r}) for r in records]
        if lines:
            self._out.write("".join(lines))
        self.records_written[stream] = self.records_written.get(stream, 0) + len(lines)
        return len(lines)

    def state(self, value: dict[str, Any]) -> None:
        """Write a STATE message and flush, so everything before it has reached the target."""
        self._out.write(self._line({"type": "STATE", "value": value}))
        self._out.flush()
        self.last_state = value


__all__ = ["RFC3339", "SingerWriter", "iter_records"]
