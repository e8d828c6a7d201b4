"""Writing Listrak items as XML text, fast, in the exact element order of the stream table.

Responses are built as strings rather than element trees: a 2,500-row page must cost the
server only a few milliseconds, so that benchmarks measure the client. Each stream gets one
precompiled :class:`ItemWriter` whose element order is the order of ``Stream.columns`` (the
XML order, docs/listrak-api.md §5), with the flattened ``VmtaID``/``VmtaDescription`` columns nested
back under ``<Vmta>`` via ``Column.xml_path`` and ``GoogleTrackingDomains`` written as repeated
siblings. Null optional values are omitted (minOccurs=0, not nillable).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listrak_sync.streams import Column, ColumnType, Stream

Row = Mapping[str, Any]

# Characters XML 1.0 cannot carry at all (dropped), plus the three that must be escaped, plus
# CR, which a parser would otherwise normalise to LF.
_NEEDS_WORK = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_text(value: str) -> str:
    """Return ``value`` safe to place between XML tags.

    Args:
        value: any Python string.

    Returns:
        The string with ``&``, ``<``, ``>`` and CR escaped and XML-invalid characters removed.
    """
    if _NEEDS_WORK.search(value) is None:
        return value
    if _INVALID.search(value) is not None:
        value = _INVALID.sub("", value)
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    return value


def format_datetime(value: datetime) -> str:
    """Format a naive datetime as Listrak does: ``YYYY-MM-DDTHH:MM:SS[.fff]``, no time zone.

    Fractional seconds appear only when non-zero, as 1-3 digits with trailing zeros trimmed
    (the .NET serializer's habit, docs/listrak-api.md §6).
    """
    if value.microsecond < 1000:
        return value.isoformat(timespec="seconds")
    return value.isoformat(timespec="milliseconds").rstrip("0")


def format_float(value: float) -> str:
    """Format a double in xsd:double lexical form."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(float(value))


def _format_text(value: Any) -> str:
    if isinstance(value, datetime):  # string-typed dates (OpenDate, ...) arrive as datetimes
        return format_datetime(value)
    return escape_text(value if isinstance(value, str) else str(value))


def _format_timestamp(value: Any) -> str:
    return format_datetime(value) if isinstance(value, datetime) else escape_text(str(value))


_FORMATTERS: dict[ColumnType, Callable[[Any], str]] = {
    ColumnType.BOOL: lambda value: "true" if value else "false",
    ColumnType.INT: lambda value: str(int(value)),
    ColumnType.FLOAT: format_float,
    ColumnType.TIMESTAMP: _format_timestamp,
    ColumnType.TEXT: _format_text,
    ColumnType.TEXT_LIST: _format_text,
}


def format_value(value: Any, type_: ColumnType) -> str:
    """Format one scalar value of a column type as element text (escaped)."""
    return _FORMATTERS[type_](value)


# Field kinds of the render loop. Plain strings and datetimes, the bulk of every page, are
# handled inline; a function call per field would double the cost of a 2,500-row page.
_TEXT, _DATETIME, _OTHER, _REPEATED, _NESTED = range(5)


@dataclass(frozen=True)
class _Field:
    name: str  # the row key; for a nested element, the key that decides whether it exists
    kind: int
    open_tag: str
    close_tag: str
    format: Callable[[Any], str]
    children: tuple[_Field, ...] = ()


def _field(column: Column, tag: str, formats: Mapping[str, Callable[[Any], str]]) -> _Field:
    if column.name in formats:
        return _Field(column.name, _OTHER, f"<{tag}>", f"</{tag}>", formats[column.name])
    kind = {ColumnType.TEXT: _TEXT, ColumnType.TIMESTAMP: _DATETIME, ColumnType.TEXT_LIST: _REPEATED}
    return _Field(column.name, kind.get(column.type, _OTHER), f"<{tag}>", f"</{tag}>", _FORMATTERS[column.type])


def _nested(parent: str, columns: list[Column]) -> _Field:
    children = tuple(_field(c, c.path[1], {}) for c in columns)
    return _Field(columns[0].name, _NESTED, f"<{parent}>", f"</{parent}>", str, children)


def _render_fields(row: Row, fields: tuple[_Field, ...], append: Callable[[str], None]) -> None:
    search = _NEEDS_WORK.search
    for field in fields:
        value = row.get(field.name)
        if value is None:
            continue
        kind = field.kind
        if kind == _TEXT and type(value) is str:
            text = value if search(value) is None else escape_text(value)
        elif kind == _DATETIME and type(value) is datetime:
            text = value.isoformat() if value.microsecond < 1000 else format_datetime(value)
        elif kind == _REPEATED:
            for item in value:
                if item is not None:
                    append(field.open_tag + field.format(item) + field.close_tag)
            continue
        elif kind == _NESTED:
            append(field.open_tag)
            _render_fields(row, field.children, append)
            append(field.close_tag)
            continue
        else:
            text = field.format(value)
        append(field.open_tag + text + field.close_tag)


class ItemWriter:
    """Writes rows of one item type (``<WSContactOpen>…</WSContactOpen>``) as XML text."""

    def __init__(self, item_element: str, columns: Iterable[Column],
                 formats: Mapping[str, Callable[[Any], str]] | None = None) -> None:
        """Compile a writer for ``item_element`` whose children follow ``columns`` in order.

        Args:
            item_element: the item's element name, e.g. ``WSContactOpen``.
            columns: the item's columns in XML order; a column whose ``path`` has two parts is
                nested under an element named by the first part (which is written only when
                the first nested column has a value).
            formats: text formatters that replace the column type's, by column name (their
                output must already be escaped).
        """
        formats = formats or {}
        self.item_element = item_element
        self._open, self._close = f"<{item_element}>", f"</{item_element}>"
        fields: list[_Field] = []
        pending: list[Column] = []
        for column in columns:
            if pending and (len(column.path) == 1 or column.path[0] != pending[0].path[0]):
                fields.append(_nested(pending[0].path[0], pending))
                pending = []
            if len(column.path) > 1:
                pending.append(column)
            else:
                fields.append(_field(column, column.path[0], formats))
        if pending:
            fields.append(_nested(pending[0].path[0], pending))
        self._fields = tuple(fields)

    def item(self, row: Row) -> str:
        """Return one ``<Item>…</Item>`` element for ``row``."""
        return self.items((row,))

    def items(self, rows: Iterable[Row]) -> str:
        """Return the concatenated item elements for ``rows``."""
        parts: list[str] = []
        append, fields = parts.append, self._fields
        for row in rows:
            append(self._open)
            _render_fields(row, fields, append)
            append(self._close)
        return "".join(parts)

    def array(self, element: str, rows: Iterable[Row]) -> str:
        """Return ``<element>items</element>``, or ``<element />`` when there are no rows."""
        body = self.items(rows)
        return f"<{element}>{body}</{element}>" if body else f"<{element} />"


def stream_writer(stream: Stream, formats: Mapping[str, Callable[[Any], str]] | None = None) -> ItemWriter:
    """The item writer for one stream of the stream table (``formats`` as for :class:`ItemWriter`)."""
    return ItemWriter(stream.item_element, stream.columns, formats)
