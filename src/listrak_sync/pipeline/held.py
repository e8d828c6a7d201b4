"""Rows the destination holds, read back so that a run replacing a table keeps them.

Refused is not gone: a list or a message the service refuses in one run (a permission slip in
Listrak's UI, a passing fault) is still listed, and its rows stay. A run that replaces a table
whole (a first load, a full refresh, ``messages`` and ``subscribed_contacts`` every run) reads
the refused objects' rows back from the destination and loads them again with the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import dlt
import pyarrow as pa
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from listrak_sync.soap.parse import arrow_schema
from listrak_sync.streams import Stream


def rows_held(pipeline: dlt.Pipeline, stream: Stream, column: str, ids: Sequence[int]) -> pa.Table | None:
    """The rows of ``stream``'s table whose ``column`` is one of ``ids``, as the stream's Arrow
    table; None if there are none or the destination has no such table (or is not SQL)."""
    return rows_matching(pipeline, stream, [{column: int(i)} for i in ids])


def rows_matching(pipeline: dlt.Pipeline, stream: Stream,
                  matches: Sequence[Mapping[str, int | str]]) -> pa.Table | None:
    """The rows of ``stream``'s table that agree with one of ``matches`` (column name to value,
    ``{"listId": 12, "messageId": 7}``), as the stream's Arrow table; None if there are none or
    the destination has no such table (or is not SQL)."""
    if not matches or not pipeline.default_schema_name:
        return None
    naming = pipeline.default_schema.naming
    schema = arrow_schema(stream)
    names = ", ".join(naming.normalize_identifier(name) for name in schema.names)
    where = " OR ".join("(" + " AND ".join(f"{naming.normalize_identifier(k)} = {_literal(v)}"
                                           for k, v in sorted(match.items())) + ")" for match in matches)
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(naming.normalize_table_identifier(stream.name))
            rows = client.execute_sql(f"SELECT {names} FROM {table} WHERE {where}")  # noqa: S608
    except (DatabaseUndefinedRelation, NotImplementedError, AttributeError):
        return None
    if not rows:
        return None
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays([pa.array(_values(values, field), field.type)
                                 for values, field in zip(columns, schema, strict=True)], schema=schema)


def _values(values: Sequence[Any], field: pa.Field) -> Sequence[Any]:
    # A JSON column comes back parsed from some destinations (PostgreSQL jsonb); it is kept as text.
    if pa.types.is_string(field.type) and any(v is not None and not isinstance(v, str) for v in values):
        return [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
    return values


def _literal(value: int | str) -> str:
    if isinstance(value, int):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


__all__ = ["rows_held", "rows_matching"]
