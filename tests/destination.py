"""Read replicated tables back from DuckDB or PostgreSQL and compare them with ground truth."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import duckdb

from listrak_sync.cli.docs import column_name
from listrak_sync.streams import ColumnType, Stream, get_stream

EXPECTED_DUCKDB_TYPES = {
    ColumnType.INT: "BIGINT",
    ColumnType.TEXT: "VARCHAR",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.FLOAT: "DOUBLE",
    ColumnType.TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
    ColumnType.TEXT_LIST: "JSON",
}
EXPECTED_POSTGRES_TYPES = {
    ColumnType.INT: "bigint",
    ColumnType.TEXT: "character varying",
    ColumnType.BOOL: "boolean",
    ColumnType.FLOAT: "double precision",
    ColumnType.TIMESTAMP: "timestamp with time zone",
    ColumnType.TEXT_LIST: "jsonb",
}


def _value(column_type: ColumnType, value: Any) -> Any:
    if value is None:
        return None
    if column_type is ColumnType.TIMESTAMP and isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    if column_type is ColumnType.TEXT_LIST:
        items = json.loads(value) if isinstance(value, str) else value
        return tuple(items or ())
    if column_type is ColumnType.JSON:  # stored as JSON text; the truth holds the parsed value
        return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
    return value


def normalize(stream: Stream, rows: list[dict[str, Any]], *, listrak_names: bool) -> Counter[tuple[Any, ...]]:
    """Rows as a multiset of tuples in table-column order, values made comparable."""
    out: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        key = (lambda c: c.name) if listrak_names else (lambda c: column_name(c.name))
        out[tuple(_value(c.type, row.get(key(c))) for c in stream.table_columns)] += 1
    return out


def read_duckdb(path: str, dataset: str, table: str) -> list[dict[str, Any]]:
    with duckdb.connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        catalog = con.execute("SELECT current_database()").fetchone()[0]
        # catalog-qualified: the file may share the dataset's name (e.g. listrak.duckdb, listrak)
        cursor = con.execute(f'SELECT * FROM "{catalog}"."{dataset}"."{table}"')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def duckdb_types(path: str, dataset: str, table: str) -> dict[str, str]:
    with duckdb.connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [dataset, table],
        ).fetchall()
    return {name: kind for name, kind in rows if not name.startswith("_dlt")}


def assert_matches_truth(table: str, actual: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """Row for row, as multisets: nothing missing, nothing extra, nothing doubled."""
    stream = get_stream(table)
    got = normalize(stream, actual, listrak_names=False)
    want = normalize(stream, truth, listrak_names=True)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{table}: {sum(missing.values())} rows missing, {sum(extra.values())} unexpected; "
        f"e.g. missing {list(missing)[:2]} extra {list(extra)[:2]}"
    )
    assert sum(got.values()) == len(truth)


def expected_types(stream: Stream, mapping: dict[ColumnType, str]) -> dict[str, str]:
    return {column_name(c.name): mapping[c.type] for c in stream.table_columns}
