"""Response parsing: hardened XML, SOAP faults, WSException, and items straight into Arrow.

This is the hot path. A page of items becomes one Python list per column (by element local
name, so the element order the service uses does not matter), then one typed Arrow array per
column through Arrow's vectorized casts; Python only parses a value itself when Arrow cannot
(US-style dates, 7 fractional digits, zone suffixes), and a value neither can read raises
:class:`UnreadableValueError` (not retried: the same page holds the same value) naming the
field, never dropping it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
from lxml import etree

from listrak_sync.errors import MalformedResponseError, UnreadableValueError
from listrak_sync.soap.characters import replace_forbidden
from listrak_sync.streams import NAMESPACE, Column, ColumnType, Stream
from listrak_sync.time import ServiceClock
from listrak_sync.wire.dates import parse_service_datetime, parse_service_instant, read_datetime
from listrak_sync.wire.tables import ARROW_TYPES, arrow_schema, item_schema

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_TRUTHY = ("true", "1")

# Arrow parses these from strings without zone; the service's zone is applied afterwards, by
# ServiceClock's one daylight-saving rule (listrak_sync.time).
_CAST_TYPES: dict[ColumnType, pa.DataType] = {**ARROW_TYPES, ColumnType.TIMESTAMP: pa.timestamp("us")}

# DTDs make entity expansion ("billion laughs") and external entities possible; the service
# never sends one, so none is loaded, resolved or fetched, and a document with one is refused.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, collect_ids=False
)
_DTD_REFUSED = "The response carries a DTD, which SOAP forbids; it was refused unread."


@dataclass(frozen=True)
class SoapFault:
    """A SOAP fault as the service sent it: code local name (``Client``/``Server``), text, detail."""

    code: str
    text: str
    detail: str


def parse_xml(body: bytes) -> etree._Element:
    """Parse a response body with the hardened parser.

    Raises:
        MalformedResponseError: not well-formed (truncated, empty, not XML) or carries a DTD.
    """
    return parse_answer(body)[0]


def parse_answer(body: bytes) -> tuple[etree._Element, int]:
    """Parse a response body, replacing characters XML 1.0 forbids (see
    :mod:`listrak_sync.soap.characters`): the root, and how many characters were replaced.

    Raises:
        MalformedResponseError: not well-formed even so (truncated, empty, not XML) or carries a DTD.
    """
    # SOAP forbids a DTD, and XmlSerializer escapes "<" in text, so this cannot hit a value.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MalformedResponseError(_DTD_REFUSED)
    replaced = 0
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        repaired, replaced = replace_forbidden(body)
        try:
            if not replaced:
                raise
            root = etree.fromstring(repaired, _PARSER)
        except etree.XMLSyntaxError:
            raise MalformedResponseError(
                f"The response is not well-formed XML ({exc}); it may be truncated.") from None
    if root is None:
        raise MalformedResponseError("The response body is empty.")
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise MalformedResponseError(_DTD_REFUSED)
    return root, replaced


def body_payload(root: etree._Element) -> etree._Element:
    """The first element inside ``soap:Body``: the response wrapper or a ``Fault``.

    Raises:
        MalformedResponseError: not a SOAP envelope, or an empty body.
    """
    if root.tag not in (f"{{{SOAP11_ENV}}}Envelope", f"{{{SOAP12_ENV}}}Envelope"):
        raise MalformedResponseError(f"The response is not a SOAP envelope (root element {_local(root.tag)!r}).")
    for child in root:
        if _local(child.tag) == "Body":
            for payload in child:
                if isinstance(payload.tag, str):
                    return payload
    raise MalformedResponseError("The SOAP response has an empty or missing Body.")


def find_fault(payload: etree._Element) -> SoapFault | None:
    """The fault in a body payload (SOAP 1.1 or 1.2 shape), or ``None`` if it is no fault."""
    if _local(payload.tag) != "Fault":
        return None
    if payload.tag == f"{{{SOAP12_ENV}}}Fault":
        code = payload.findtext(f"{{{SOAP12_ENV}}}Code/{{{SOAP12_ENV}}}Value") or ""
        text = payload.findtext(f"{{{SOAP12_ENV}}}Reason/{{{SOAP12_ENV}}}Text") or ""
        detail_element = payload.find(f"{{{SOAP12_ENV}}}Detail")
    else:
        code = _child_text(payload, "faultcode") or ""
        text = _child_text(payload, "faultstring") or ""
        detail_element = _child(payload, "detail")
    detail = " ".join(_text(detail_element).split()) if detail_element is not None else ""
    return SoapFault(code=code.rpartition(":")[2].strip(), text=text.strip(), detail=detail)


def response_wrapper(payload: etree._Element, operation: str) -> etree._Element:
    """Check that the payload is ``<operation>Response`` and return it.

    Raises:
        MalformedResponseError: the body holds some other element.
    """
    if _local(payload.tag) != f"{operation}Response":
        raise MalformedResponseError(
            f"Expected {operation}Response in the SOAP body, got {_local(payload.tag)!r}."
        )
    return payload


def ws_exception(wrapper: etree._Element) -> str | None:
    """The description of a non-nil in-band ``WSException`` (docs/listrak-api.md §8.2), else ``None``."""
    element = _child(wrapper, "WSException")
    if element is None or element.get(XSI_NIL) in _TRUTHY:
        return None
    if not any(isinstance(child.tag, str) for child in element):
        return None  # an empty <WSException/> carries no error (XmlSerializer writes DateTime for a real one)
    description = (_child_text(element, "Description") or "").strip()
    method = (_child_text(element, "SoapMethod") or "").strip()
    text = description or "the service reported an error without a description"
    return f"{text} (in {method})" if method else text


def read_items(wrapper: etree._Element, stream: Stream, source_timezone: str = "UTC") -> pa.Table:
    """Read the items of a response wrapper into a typed table of ``stream.columns``.

    An empty or missing ``…Result`` gives zero rows; a missing optional element gives null.

    Args:
        wrapper: the ``<Operation>Response`` element.
        stream: the stream whose items these are.
        source_timezone: the zone the service's zone-less datetimes are read in
            (:class:`~listrak_sync.time.ServiceClock`'s rule where a wall time is ambiguous).

    Raises:
        UnreadableValueError: a required element is missing or empty, repeats, or a value cannot
            be read (not retried: the same answer comes back).
    """
    result = _child(wrapper, stream.result_element)
    plan = _plan(stream)
    qualified, name = f"{{{NAMESPACE}}}{stream.item_element}", stream.item_element
    items = [] if result is None else [i for i in result if i.tag == qualified or _local(i.tag) == name]
    values = _flat_columns(items, plan) if plan.flat else _general_columns(_without_nil(items), plan)
    clock = ServiceClock(source_timezone)
    arrays = [_to_arrow(stream, column, column_values, clock)
              for column, column_values in zip(stream.columns, values, strict=True)]
    return pa.Table.from_arrays(arrays, schema=item_schema(stream))


@dataclass(frozen=True)
class _Plan:
    width: int
    index: dict[str, int]  # local name of a direct child -> column
    nested: dict[str, dict[str, int]]  # local name of a nested element -> its children -> column
    lists: frozenset[int]
    expected_tags: tuple[str, ...]  # the qualified tags of a complete item, in order

    @property
    def flat(self) -> bool:
        return not self.nested and not self.lists


_PLANS: dict[tuple[Column, ...], _Plan] = {}


def _plan(stream: Stream) -> _Plan:
    plan = _PLANS.get(stream.columns)
    if plan is None:
        index: dict[str, int] = {}
        nested: dict[str, dict[str, int]] = {}
        for position, column in enumerate(stream.columns):
            if len(column.path) == 1:
                index[column.path[0]] = position
            else:
                nested.setdefault(column.path[0], {})[column.path[1]] = position
        lists = frozenset(i for i, c in enumerate(stream.columns) if c.type is ColumnType.TEXT_LIST)
        tags = tuple(f"{{{NAMESPACE}}}{c.name}" for c in stream.columns)
        plan = _PLANS[stream.columns] = _Plan(len(stream.columns), index, nested, lists, tags)
    return plan


def _flat_columns(items: list[etree._Element], plan: _Plan) -> list[list[Any]]:
    """Columns of a stream without nested or repeated elements; "" marks an empty element."""
    width, count = plan.width, len(items)
    children = [child for item in items for child in item]
    tags = [child.tag for child in children]
    texts = [child.text for child in children]
    if len(children) == width * count and tags == list(plan.expected_tags) * count:
        # Every item complete and in order (the common case): columns are strided slices.
        columns = [texts[j::width] for j in range(width)]
        return [[("" if v is None else v) for v in col] if None in col else col for col in columns]
    items = _without_nil(items)  # a nil item has no children, so the lists above hold none of it
    count = len(items)
    rows = [row for row, item in enumerate(items) for _ in range(len(item))]
    columns = [[None] * count for _ in range(width)]
    index = plan.index
    for row, tag, text in zip(rows, tags, texts, strict=True):
        position = index.get(_local(tag)) if isinstance(tag, str) else None
        if position is None:
            continue  # comments, and elements newer than our WSDL
        column = columns[position]
        if column[row] is not None:
            raise UnreadableValueError(f"Item {row + 1} repeats the element {_local(tag)!r}.")
        column[row] = "" if text is None else text
    return columns


def _without_nil(items: list[etree._Element]) -> list[etree._Element]:
    # Only a childless item can be xsi:nil; asking every item for the attribute costs more.
    return [item for item in items if len(item) or item.get(XSI_NIL) not in _TRUTHY]


def _general_columns(items: list[etree._Element], plan: _Plan) -> list[list[Any]]:
    """Columns of a stream with nested (Vmta) or repeated (GoogleTrackingDomains) elements."""
    count = len(items)
    columns: list[list[Any]] = [
        [[] for _ in range(count)] if j in plan.lists else [None] * count for j in range(plan.width)
    ]
    for row, item in enumerate(items):
        for child in item:
            if not isinstance(child.tag, str):
                continue
            name = _local(child.tag)
            if name in plan.nested:
                inner = plan.nested[name]
                for grandchild in child:
                    if isinstance(grandchild.tag, str) and _local(grandchild.tag) in inner:
                        columns[inner[_local(grandchild.tag)]][row] = grandchild.text or ""
                continue
            position = plan.index.get(name)
            if position is None:
                continue
            if position in plan.lists:
                columns[position][row].append(child.text or "")
            elif columns[position][row] is not None:
                raise UnreadableValueError(f"Item {row + 1} repeats the element {name!r}.")
            else:
                columns[position][row] = child.text or ""
    return columns


def _to_arrow(stream: Stream, column: Column, values: list[Any], clock: ServiceClock) -> pa.Array:
    kind, given = column.type, values
    if kind in (ColumnType.TEXT, ColumnType.TEXT_LIST):
        array = pa.array(values, ARROW_TYPES[kind])
    else:
        if "" in values:  # an empty element holds no number, flag or date
            values = [None if v == "" else v for v in values]
        try:
            array = pa.array(values, pa.string()).cast(_CAST_TYPES[kind])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            array = _python_array(stream, column, values, clock)
        else:
            if kind is ColumnType.TIMESTAMP:
                array = clock.instants(array)
    if not column.nullable and array.null_count:
        row = array.is_null().to_pylist().index(True) + 1
        how = "an empty" if given[row - 1] == "" else "no"
        raise UnreadableValueError(
            f"{stream.operation} returned item {row} with {how} {column.name}, a field it always carries. "
            "Please report it with the operation name."
        )
    return array


def _python_array(stream: Stream, column: Column, values: list[Any], clock: ServiceClock) -> pa.Array:
    """The values Arrow cannot cast, parsed one by one; dates as instants (see :func:`_instants`)."""
    parsed = [_python_value(stream, column, v) for v in values]
    if column.type is ColumnType.TIMESTAMP:
        return _instants(parsed, clock)
    return pa.array(parsed, _CAST_TYPES[column.type])


def _instants(values: list[datetime | None], clock: ServiceClock) -> pa.Array:
    """Wall times by the clock's one rule; a value that carried its own zone is that instant."""
    walls = [None if v is None or v.tzinfo else v for v in values]
    array = clock.instants(pa.array(walls, _CAST_TYPES[ColumnType.TIMESTAMP]))
    if walls == values:
        return array
    return pa.array([w if v is None or v.tzinfo is None else v.astimezone(timezone.utc)
                     for v, w in zip(values, array.to_pylist(), strict=True)], ARROW_TYPES[ColumnType.TIMESTAMP])


_INT64 = (-(2**63), 2**63 - 1)
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
def _python_value(stream: Stream, column: Column, value: str | None) -> Any:
    if value is None:
        return None
    text = value.strip()
    try:
        if column.type is ColumnType.INT:
            number = int(text)
            if not _INT64[0] <= number <= _INT64[1]:
                raise UnreadableValueError(
                    f"{stream.operation} returned {column.name}={value!r}, which is beyond a 64-bit whole "
                    "number. Please report it with the operation name.")
            return number
        if column.type is ColumnType.FLOAT:
            return float(text)
        if column.type is ColumnType.BOOL:
            return _BOOLS[text.lower()]
        return read_datetime(text)
    except (ValueError, KeyError):
        raise UnreadableValueError(
            f"{stream.operation} returned {column.name}={value!r}, which is not a valid "
            f"{_DESCRIBE[column.type]}. Please report it with the operation name."
        ) from None


_DESCRIBE = {
    ColumnType.INT: "whole number",
    ColumnType.FLOAT: "number",
    ColumnType.BOOL: "true/false value",
    ColumnType.TIMESTAMP: "date/time (expected YYYY-MM-DDTHH:MM:SS[.fff] or M/D/YYYY h:mm:ss AM/PM)",
}


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _child(parent: etree._Element, local_name: str) -> etree._Element | None:
    for child in parent:
        if _local(child.tag) == local_name:
            return child
    return None


def _child_text(parent: etree._Element, local_name: str) -> str | None:
    child = _child(parent, local_name)
    return None if child is None else _text(child)


def _text(element: etree._Element) -> str:
    return "".join(str(part) for part in element.itertext())


__all__ = [
    "ARROW_TYPES",
    "SoapFault",
    "arrow_schema",
    "body_payload",
    "find_fault",
    "item_schema",
    "parse_service_datetime",
    "parse_service_instant",
    "parse_answer",
    "parse_xml",
    "read_items",
    "response_wrapper",
    "ws_exception",
]
