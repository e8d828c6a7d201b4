"""The REST side of ``verify``: the second sources the SOAP event tables are held against.

With REST credentials (``settings.has_rest``), :mod:`listrak_sync.pipeline.verify` also reads:

- the REST summary of every message it checks, fresh, through the REST client (one
  ``/Summary`` request per message: the service's totals now, beside the SOAP counters read
  at the same moment);
- the REST activity the last run loaded (``message_activity``), aggregated per message with
  one ``GROUP BY``: re-reading it would cost a REST run's activity pages;
- the REST plan of that run, which says whose loaded activity may trail the service
  (:func:`~listrak_sync.engine.verify_sources.activity_pending`).

What each value is held against is :data:`~listrak_sync.engine.verify_sources.CORRESPONDENCES`'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from listrak_sync.engine.verify_sources import ACTIVITY_COLUMNS, REST_ACTIVITY, SUMMARY_COLUMNS
from listrak_sync.errors import ObjectSkippedError
from listrak_sync.streams import get_stream

SUMMARY_ROUTE = get_stream("message_summaries").route or ""


def loaded_activity(pipeline: dlt.Pipeline) -> dict[int, dict[str, int]] | None:
    """Per message, :data:`ACTIVITY_COLUMNS` summed over the loaded ``message_activity`` rows
    (a flag: the rows it is true in; ``*``: the rows). None: the table is not in the dataset."""
    naming = pipeline.default_schema.naming
    table = naming.normalize_table_identifier(REST_ACTIVITY)
    if table not in pipeline.default_schema.tables:
        return None
    with pipeline.sql_client() as client:
        def column(name: str) -> str:
            return str(client.escape_column_name(naming.normalize_identifier(name)))

        flag_type = {c: pipeline.default_schema.tables[table]["columns"].get(naming.normalize_identifier(c), {})
                     .get("data_type") for c in ACTIVITY_COLUMNS if c != "*"}
        sums = ["COUNT(*)" if c == "*" else
                f"SUM(CASE WHEN {column(c)} THEN 1 ELSE 0 END)" if flag_type[c] == "bool" else
                f"SUM({column(c)})" for c in ACTIVITY_COLUMNS]
        query = (f"SELECT {column('messageId')}, {', '.join(sums)} "  # noqa: S608
                 f"FROM {client.make_qualified_table_name(table)} GROUP BY {column('messageId')}")
        try:
            rows = client.execute_sql(query) or []
        except DatabaseUndefinedRelation:
            return None
    return {int(r[0]): {c: int(v or 0) for c, v in zip(ACTIVITY_COLUMNS, r[1:], strict=True)}
            for r in rows if r[0] is not None}


def fresh_summaries(client: Any, messages: Sequence[Mapping[str, Any]], concurrency: int,
                    cache: dict[int, dict[str, int] | None]) -> dict[int, dict[str, int]]:
    """Per message, :data:`SUMMARY_COLUMNS` of its REST summary, read now (one request each).

    A message the REST API does not know (404) has none. ``cache`` keeps what was read, so a
    second comparison (after ``--repair``) asks nothing again.
    """
    def read(row: Mapping[str, Any]) -> tuple[int, dict[str, int] | None]:
        msg_id = int(row["MsgID"])
        try:
            item = client.get(SUMMARY_ROUTE, {"listId": int(row["ListID"]), "messageId": msg_id})
        except ObjectSkippedError:
            return msg_id, None
        if not isinstance(item, Mapping):
            return msg_id, None
        return msg_id, {c: int(item.get(c) or 0) for c in SUMMARY_COLUMNS}

    wanted = [row for row in messages if int(row["MsgID"]) not in cache]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for msg_id, values in pool.map(read, wanted):
            cache[msg_id] = values
    return {m: v for m, v in cache.items() if v is not None}


__all__ = ["fresh_summaries", "loaded_activity"]
