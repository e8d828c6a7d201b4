"""Writing Listrak items as XML text, fast, in the exact element order of the stream table.

Responses are built as strings rather than element trees: a 2,500-row page must cost the
server only a few milliseconds, so that benchmarks measure the client. Each stream gets one
precompiled :class:`ItemWriter` whose element order is the order of ``Stream.columns`` (the
XML order, REFERENCE.md §5), with the flattened ``VmtaID``/``VmtaDescription`` columns nested
back under ``<Vmta>`` via ``Column.xml_path`` and ``GoogleTrackingDomains`` written as repeated
siblings. Null optional values are omitted (minOccurs=0, not nillable).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from listrak_sync.streams import Column, ColumnType, Stream

Row = Mapping[str, Any]
_FieldWriter = Callable[[Row], str]

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
    value = _INVALID.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def format_datetime(value: datetime) -> str:
    """Format a naive datetime as Listrak does: ``YYYY-MM-DDTHH:MM:SS[.fff]``, no time zone.

    Fractional seconds appear only when non-zero, as 1-3 digits with trailing zeros trimmed
    (the .NET serializer's habit, REFERENCE.md §6).
    """
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    millis = value.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text


def format_float(value: float) -> str:
    """Format a double in xsd:double lexical form."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    return repr(float(value))


def format_value(value: Any, type_: ColumnType) -> str:
    """Format one scalar value of a column type as element text (escaped)."""
    if type_ is ColumnType.BOOL:
        return "true" if value else "false"
    if type_ is ColumnType.INT:
        return str(int(value))
    if type_ is ColumnType.FLOAT:
        return format_float(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    return escape_text(str(value))


def _scalar_writer(column: Column, tag: str) -> _FieldWriter:
    name, type_ = column.name, column.type
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"

    def write(row: Row) -> str:
        value = row.get(name)
        if value is None:
            return ""
        return open_tag + format_value(value, type_) + close_tag

    return write


def _list_writer(column: Column) -> _FieldWriter:
    name = column.name
    open_tag, close_tag = f"<{name}>", f"</{name}>"

    def write(row: Row) -> str:
        values = row.get(name) or ()
        return "".join(open_tag + escape_text(str(v)) + close_tag for v in values if v is not None)

    return write


def _nested_writer(parent: str, columns: list[Column]) -> _FieldWriter:
    children = [_scalar_writer(c, c.path[1]) for c in columns]
    first = columns[0].name  # the nested element exists only when its first (required) child does
    open_tag, close_tag = f"<{parent}>", f"</{parent}>"

    def write(row: Row) -> str:
        if row.get(first) is None:
            return ""
        return open_tag + "".join(w(row) for w in children) + close_tag

    return write


class ItemWriter:
    """Writes rows of one item type (``<WSContactOpen>…</WSContactOpen>``) as XML text."""

    def __init__(self, item_element: str, columns: Iterable[Column]) -> None:
        """Compile a writer for ``item_element`` whose children follow ``columns`` in order.

        Args:
            item_element: the item's element name, e.g. ``WSContactOpen``.
            columns: the item's columns in XML order; a column whose ``path`` has two parts is
                nested under an element named by the first part.
        """
        self.item_element = item_element
        self._open, self._close = f"<{item_element}>", f"</{item_element}>"
        self._fields: list[_FieldWriter] = []
        pending: list[Column] = []
        for column in columns:
            if pending and (len(column.path) == 1 or column.path[0] != pending[0].path[0]):
                self._fields.append(_nested_writer(pending[0].path[0], pending))
                pending = []
            if len(column.path) > 1:
                pending.append(column)
            elif column.type is ColumnType.TEXT_LIST:
                self._fields.append(_list_writer(column))
            else:
                self._fields.append(_scalar_writer(column, column.name))
        if pending:
            self._fields.append(_nested_writer(pending[0].path[0], pending))

    def item(self, row: Row) -> str:
        """Return one ``<Item>…</Item>`` element for ``row``."""
        return self._open + "".join([w(row) for w in self._fields]) + self._close

    def items(self, rows: Iterable[Row]) -> str:
        """Return the concatenated item elements for ``rows``."""
        fields, open_tag, close_tag = self._fields, self._open, self._close
        return "".join([open_tag + "".join([w(row) for w in fields]) + close_tag for row in rows])

    def array(self, element: str, rows: Iterable[Row]) -> str:
        """Return ``<element>items</element>``, or ``<element />`` when there are no rows."""
        body = self.items(rows)
        return f"<{element}>{body}</{element}>" if body else f"<{element} />"


def stream_writer(stream: Stream) -> ItemWriter:
    """The item writer for one stream of the stream table."""
    return ItemWriter(stream.item_element, stream.columns)
