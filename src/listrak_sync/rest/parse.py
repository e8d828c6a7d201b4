"""REST items (JSON objects) into Arrow tables typed per the stream table.

::

    to_table(stream, items, ids, parent)   one row per item, columns ``stream.table_columns``:
                                           the route's ids stamped first, ``from_parent``
                                           columns copied from the parent's row, the rest
                                           read from the item by its JSON name
    request_date(instant, zone)            an instant as a date parameter: the service's wall
                                           time ``YYYY-MM-DDTHH:MM:SS``, as it writes dates

How values are read (REST.md §3.2, §10.7; unknown fields are ignored, a missing field is null):

- int: a JSON integer, or a number with no fraction (``12.0``), or digits in a string;
- float: any JSON number (whole numbers come without a decimal point too), or one in a string;
- bool: ``true``/``false``, or those words or ``0``/``1``;
- text: as given: ``""`` stays ``""`` and ``null`` stays null, because the service itself is
  undecided between them (§10.7) and neither may be guessed into the other; a number or
  other JSON value becomes its JSON text (``Content.contentType`` comes as ``0`` or a string);
- timestamp: ``YYYY-MM-DDTHH:MM:SS`` with or without a fraction (any digits), ``Z`` or an
  offset. Without a zone it is the service's wall time in ``source_timezone`` and becomes an
  aware UTC instant by :class:`~listrak_sync.time.ServiceClock`'s one daylight-saving rule,
  as SOAP dates do. ``0001-01-01T00:00:00``, .NET's unset DateTime, is null;
- JSON: stored as compact JSON text (``json.dumps``), null as null.

A value that cannot be read raises :class:`UnreadableValueError` naming the stream, the field
and the value: never dropped, never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from listrak_sync.errors import UnreadableValueError
from listrak_sync.streams import Column, ColumnType, Stream
from listrak_sync.time import ServiceClock, utc
from listrak_sync.wire.dates import read_datetime
from listrak_sync.wire.tables import ARROW_TYPES, arrow_schema

_WALLS = pa.timestamp("us")
_UNSET_YEAR = 1  # .NET's default DateTime, 0001-01-01T00:00:00: a value type's "unset"


class _Unreadable(ValueError):
    pass


def to_table(stream: Stream, items: list[dict[str, Any]], ids: Mapping[str, Any],
             parent: Mapping[str, Any] | None = None, *, zone: str = "UTC") -> pa.Table:
    """The items of one page of ``stream`` as a table of ``stream.table_columns``.

    Args:
        stream: a REST stream of the stream table.
        items: the page's items, as the API sent them.
        ids: the route's ids (``{"listId": 12, "messageId": 7}``), stamped on every row in the
            columns of ``stream.path_keys``.
        parent: the parent's row (as the API sent it, or as typed here), for the
            ``stream.from_parent`` columns.
        zone: ``Settings.source_timezone``, the zone of the service's zone-less dates.

    Raises:
        UnreadableValueError: a value of the wrong type, a date in no known form, or a path id
            or parent value that a non-null column lacks.
    """
    stamped = {c.name for c in stream.path_keys}
    inherited = set(stream.from_parent)
    clock = ServiceClock(zone)
    arrays = []
    for column in stream.table_columns:
        if column.name in stamped:
            value = ids.get(column.name)
            if value is None:
                raise UnreadableValueError(f"{stream.name}: the route's id {column.name} was not given.")
            values = [value] * len(items)
        elif column.name in inherited:
            values = [(parent or {}).get(column.name)] * len(items)
        else:
            values = [item.get(column.name) for item in items]
        arrays.append(_array(stream, column, values, clock))
    return pa.Table.from_arrays(arrays, schema=arrow_schema(stream))


def request_date(instant: datetime, zone: str = "UTC") -> str:
    """``instant`` as a date parameter (``startDate``): the service's wall time, whole seconds, no zone.

    The API writes dates that way (REST.md §3.6: the form shown to work), and is assumed to read
    them on the same clock as it writes them.
    """
    return ServiceClock(zone).wall(utc(instant)).replace(microsecond=0).isoformat()


def _array(stream: Stream, column: Column, values: list[Any], clock: ServiceClock) -> pa.Array:
    try:
        if column.type is ColumnType.TIMESTAMP:
            array = _timestamps(values, clock)
        else:
            array = pa.array([None if v is None else _READERS[column.type](v) for v in values],
                             ARROW_TYPES[column.type])
    except _Unreadable as exc:
        raise UnreadableValueError(
            f"{stream.name}: field {column.name} holds {str(exc.args[0])[:80]!r}, which is not a "
            f"{_KINDS[column.type]}.") from None
    if not column.nullable and array.null_count:
        raise UnreadableValueError(f"{stream.name}: field {column.name} is null or missing, though it never may be.")
    return array


def _timestamps(values: list[Any], clock: ServiceClock) -> pa.Array:
    # Wall times are converted as one column (a list of aware datetimes back and forth through
    # Arrow cost a fifth of a REST run's CPU on medium); the few dates with a zone fill the gaps.
    walls: list[datetime | None] = [None] * len(values)
    aware: list[datetime | None] | None = None
    for index, value in enumerate(values):
        if value is None:
            continue
        moment = _moment(value)
        if moment is None:
            continue
        if moment.tzinfo is None:
            walls[index] = moment
        else:
            if aware is None:
                aware = [None] * len(values)
            aware[index] = moment.astimezone(timezone.utc).replace(tzinfo=None)
    instants = clock.instants(pa.array(walls, _WALLS))
    if aware is not None:
        instants = pc.coalesce(instants, pa.array(aware, _WALLS).cast(ARROW_TYPES[ColumnType.TIMESTAMP]))
    return instants


def _moment(value: Any) -> datetime | None:
    moment: datetime | None
    if isinstance(value, datetime):  # a parent's row already typed here
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        moment = _api_form(text)
        if moment is None:
            try:
                moment = read_datetime(text)
            except ValueError:
                raise _Unreadable(value) from None
    else:
        raise _Unreadable(value)
    return None if moment.year == _UNSET_YEAR else moment


def _api_form(text: str) -> datetime | None:
    """The REST API's own form (``2024-07-01T08:00:00.123``, maybe with a zone) through the C
    parser, or None for any other form (or a Python that reads fewer ISO forms)."""
    if text[10:11] != "T":
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Unreadable(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise _Unreadable(value)


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Unreadable(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _Unreadable(value) from None
    raise _Unreadable(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "0", "1"):
        return value.strip().lower() in ("true", "1")
    raise _Unreadable(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Unreadable(value)
    return [item if isinstance(item, str) else json.dumps(item) for item in value]


_READERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.INT: _int,
    ColumnType.FLOAT: _float,
    ColumnType.BOOL: _bool,
    ColumnType.TEXT: _text,
    ColumnType.JSON: _json,
    ColumnType.TEXT_LIST: _text_list,
}
_KINDS = {
    ColumnType.INT: "whole number",
    ColumnType.FLOAT: "number",
    ColumnType.BOOL: "true/false value",
    ColumnType.TEXT: "text",
    ColumnType.JSON: "JSON value",
    ColumnType.TEXT_LIST: "list of text",
    ColumnType.TIMESTAMP: "date/time (expected YYYY-MM-DDTHH:MM:SS[.fffffff][Z|+hh:mm])",
}


__all__ = ["request_date", "to_table"]
