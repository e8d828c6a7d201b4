"""The Singer catalog of the tap, built from the stream table, and selection read back from one.

Discovery needs no network: every stream of :mod:`listrak_sync.streams` becomes one catalog
entry shaped as ``singer-io/tap-listrak`` 1.3.1 shapes it, so an existing catalog, state and
target keep working:

- the same stream ids and property names; the list's TCP/IP pool is one nested object ``Vmta``
  (``{"VmtaID", "Description"}``, from the flattened columns' ``Column.path``) and
  ``GoogleTrackingDomains`` an array of strings;
- key properties in tap-listrak's order, the parent's ID first (``subscribed_contacts``:
  ``ListID, ContactID``; the stream table, and so the dlt tables, keep ``ContactID, ListID``);
- every property nullable (``["null", ...]``), whatever the service guarantees;
- the dates the WSDL types ``s:string`` (``ClickDate``, ``OpenDate``, ``ReadDate``,
  ``BounceDate``: :func:`text_dates`, read from the bundled WSDL) are plain strings, emitted as
  the service sent them; with ``typed_event_dates`` they are ``date-time`` like the other dates;
- metadata: ``inclusion: automatic`` on every property and on the parent streams ``lists`` and
  ``messages``, ``available`` on the other streams; ``selected-by-default`` everywhere.

Selection follows the Singer convention (as the Meltano SDK reads it), with one difference: an
explicit ``selected`` wins, at the stream or field level, even where the metadata says
``automatic``; otherwise ``selected-by-default``. So ``lists``, ``messages`` and any non-key
field can be deselected (tap-listrak 1.3.1 always emitted them); key properties, and the parent
ID stamped on child rows, are always emitted. Legacy ``--properties`` files, which mark
``"selected": true`` on the entry or its schema, are read the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from lxml import etree

from listrak_sync.errors import ConfigError
from listrak_sync.streams import STREAMS, STREAMS_BY_NAME, Column, ColumnType, Stream

log = logging.getLogger(__name__)

REPLICATION_METHOD = "FULL_TABLE"
# tap-listrak marks the parent streams automatic ("critical parent streams").
PARENT_STREAMS = frozenset(s.parent for s in STREAMS if s.parent)
_XSD = "http://www.w3.org/2001/XMLSchema"

_JSON_TYPES: dict[ColumnType, dict[str, Any]] = {
    ColumnType.INT: {"type": "integer"},
    ColumnType.TEXT: {"type": "string"},
    ColumnType.BOOL: {"type": "boolean"},
    ColumnType.FLOAT: {"type": "number"},
    ColumnType.TIMESTAMP: {"type": "string", "format": "date-time"},
    ColumnType.TEXT_LIST: {"type": "array", "items": {"type": "string"}},
    # The one JSON column (contacts' profile-field values) is a list of objects; records carry it
    # decoded from the JSON text the table holds.
    ColumnType.JSON: {"type": "array", "items": {"type": "object"}},
}


def property_name(column: Column) -> str:
    """The top-level record property a column lands in (``Vmta`` for the flattened pool)."""
    return column.path[0]


def record_properties(stream: Stream) -> tuple[str, ...]:
    """The stream's record properties in column order (nested groups once, at their first column)."""
    return tuple(dict.fromkeys(property_name(c) for c in stream.table_columns))


def automatic_properties(stream: Stream) -> frozenset[str]:
    """Properties always emitted: the key, and the stamped parent key that joins to the parent."""
    names = set(stream.key)
    if stream.parent_key is not None:
        names.add(stream.parent_key.name)
    return frozenset(names)


def key_properties(stream: Stream) -> list[str]:
    """The stream's key in tap-listrak's order: the parent's ID first (``["ListID", "ContactID"]``)."""
    key = list(stream.key)
    parent = stream.parent_key.name if stream.parent_key is not None else None
    if parent in key:
        key.remove(parent)
        key.insert(0, parent)
    return key


@cache
def text_dates() -> frozenset[tuple[str, str]]:
    """``(stream, column)`` of the timestamp columns that the bundled WSDL types ``s:string``.

    The stream table types them as timestamps, so the dlt tables hold instants; tap-listrak
    emitted the text the service sent, and so does this tap unless ``typed_event_dates`` is on.
    """
    wsdl = etree.fromstring(
        (resources.files("listrak_sync.soap") / "IntegrationService.wsdl").read_bytes(),
        etree.XMLParser(resolve_entities=False, no_network=True),
    )
    found = set()
    for stream in STREAMS:
        item = wsdl.find(f".//{{{_XSD}}}complexType[@name='{stream.item_element}']")
        if item is None:
            continue
        for element in item.iter(f"{{{_XSD}}}element"):
            prefix, _, local = (element.get("type") or "").rpartition(":")
            column = next((c for c in stream.columns if c.path == (element.get("name"),)), None)
            if (column is not None and column.type is ColumnType.TIMESTAMP
                    and local == "string" and element.nsmap.get(prefix or None) == _XSD):
                found.add((stream.name, column.name))
    return frozenset(found)


@cache
def stream_as_sent(stream: Stream) -> Stream:
    """``stream`` with its :func:`text_dates` typed as text: parsing it keeps what the service sent."""
    names = {column for name, column in text_dates() if name == stream.name}
    if not names:
        return stream
    columns = tuple(
        dataclasses.replace(c, type=ColumnType.TEXT) if c.name in names else c for c in stream.columns
    )
    return dataclasses.replace(stream, columns=columns)


def _column_schema(column: Column, as_text: bool) -> dict[str, Any]:
    base = _JSON_TYPES[ColumnType.TEXT if as_text else column.type]
    return {**base, "type": ["null", base["type"]], "description": column.description}


def json_schema(stream: Stream, *, typed_event_dates: bool = False) -> dict[str, Any]:
    """The JSON schema of one stream's records.

    Args:
        stream: a stream of the stream table.
        typed_event_dates: type the :func:`text_dates` as ``date-time`` too.

    Returns:
        An object schema: one property per record property, every one nullable
        (``["null", ...]``), as tap-listrak's; timestamps are ``string`` with
        ``format: date-time``, except the dates sent as text, which are plain strings.
    """
    as_text = set() if typed_event_dates else {c for name, c in text_dates() if name == stream.name}
    properties: dict[str, Any] = {}
    for column in stream.table_columns:
        schema = _column_schema(column, column.name in as_text)
        if len(column.path) == 1:
            properties[column.name] = schema
            continue
        group = properties.setdefault(
            column.path[0],
            {"type": ["null", "object"], "additionalProperties": False, "properties": {}},
        )
        group["properties"][column.path[1]] = schema
    return {"type": "object", "additionalProperties": False, "properties": properties}


def stream_metadata(stream: Stream) -> list[dict[str, Any]]:
    """Singer metadata of one stream: the stream breadcrumb first, then one per property."""
    root: dict[str, Any] = {
        "inclusion": "automatic" if stream.name in PARENT_STREAMS else "available",
        "selected-by-default": True,
        "table-key-properties": key_properties(stream),
        "forced-replication-method": REPLICATION_METHOD,
    }
    if stream.parent:
        root["parent-tap-stream-id"] = stream.parent
    entries: list[dict[str, Any]] = [{"breadcrumb": [], "metadata": root}]
    for name in record_properties(stream):
        entries.append(
            {"breadcrumb": ["properties", name], "metadata": {"inclusion": "automatic", "selected-by-default": True}}
        )
    return entries


def discover(*, typed_event_dates: bool = False) -> dict[str, Any]:
    """The catalog ``tap-listrak --discover`` prints: every stream, nothing fetched.

    Args:
        typed_event_dates: the ``typed_event_dates`` setting (see :func:`json_schema`).

    Returns:
        ``{"streams": [...]}`` with ``tap_stream_id``, ``stream``, ``key_properties``,
        ``schema`` and ``metadata`` per stream, in stream-table order.
    """
    return {
        "streams": [
            {
                "tap_stream_id": stream.name,
                "stream": stream.name,
                "key_properties": key_properties(stream),
                "schema": json_schema(stream, typed_event_dates=typed_event_dates),
                "metadata": stream_metadata(stream),
            }
            for stream in STREAMS
        ]
    }


@dataclass(frozen=True)
class Selection:
    """What the catalog asks for: per selected stream, the record properties to emit."""

    properties: Mapping[str, tuple[str, ...]]

    @classmethod
    def everything(cls) -> Selection:
        """Every stream with every property (the run without a catalog)."""
        return cls({s.name: record_properties(s) for s in STREAMS})

    @property
    def streams(self) -> frozenset[str]:
        return frozenset(self.properties)

    def __contains__(self, name: object) -> bool:
        return name in self.properties


def read_selection(catalog: Any, offered: Mapping[str, Stream] | None = None) -> Selection:
    """Read stream and field selection from a ``--catalog`` or legacy ``--properties`` document.

    Streams the catalog does not hold are not selected; stream ids we do not know are logged
    and ignored (a catalog may come from a newer or older tap).

    Args:
        catalog: the parsed JSON document.
        offered: the streams the tap offers by stream id, in catalog order (default: the nine
            SOAP streams; the 2.x mode's are :data:`listrak_sync.singer.rest_mode.OFFERED`).

    Returns:
        The selection.

    Raises:
        ConfigError: the document is not a Singer catalog (no ``streams`` list, an entry
            without a stream id).
    """
    if not isinstance(catalog, Mapping) or not isinstance(catalog.get("streams"), list):
        raise ConfigError('The catalog is not a Singer catalog: expected a JSON object with a "streams" list.')
    chosen: dict[str, tuple[str, ...]] = {}
    for entry in catalog["streams"]:
        if not isinstance(entry, Mapping):
            raise ConfigError("The catalog holds a stream entry that is not a JSON object.")
        stream_id = entry.get("tap_stream_id") or entry.get("stream")
        if not isinstance(stream_id, str):
            raise ConfigError("A catalog stream entry has no tap_stream_id.")
        streams = STREAMS_BY_NAME if offered is None else offered
        stream = streams.get(stream_id)
        if stream is None:
            log.warning("Ignoring unknown stream %r in the catalog.", stream_id)
            continue
        by_breadcrumb = _metadata_by_breadcrumb(entry.get("metadata"))
        if _stream_selected(entry, by_breadcrumb.get(())):
            chosen[stream_id] = _selected_properties(stream, entry, by_breadcrumb)
    # The tap's order (the stream table's), whatever order the catalog lists them in.
    order = [s.name for s in STREAMS] if offered is None else list(offered)
    return Selection({name: chosen[name] for name in order if name in chosen})


def _metadata_by_breadcrumb(metadata: Any) -> dict[tuple[str, ...], Mapping[str, Any]]:
    out: dict[tuple[str, ...], Mapping[str, Any]] = {}
    if not isinstance(metadata, list):
        return out
    for item in metadata:
        if isinstance(item, Mapping) and isinstance(item.get("metadata"), Mapping):
            out[tuple(item.get("breadcrumb") or ())] = item["metadata"]
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _explicit(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _stream_selected(entry: Mapping[str, Any], root: Mapping[str, Any] | None) -> bool:
    schema = _mapping(entry.get("schema"))
    for decided in (
        _explicit(_mapping(root).get("selected")),
        _explicit(entry.get("selected")),  # legacy --properties
        _explicit(schema.get("selected")),  # legacy --properties
    ):
        if decided is not None:
            return decided
    root = _mapping(root)
    by_default = _explicit(root.get("selected-by-default"))
    if by_default is not None:
        return by_default
    return root.get("inclusion") == "automatic"


def _selected_properties(
    stream: Stream, entry: Mapping[str, Any], by_breadcrumb: Mapping[tuple[str, ...], Mapping[str, Any]]
) -> tuple[str, ...]:
    automatic = automatic_properties(stream)
    legacy = _mapping(_mapping(entry.get("schema")).get("properties"))
    chosen = []
    for name in record_properties(stream):
        if name in automatic:
            chosen.append(name)
            continue
        field = by_breadcrumb.get(("properties", name), {})
        legacy_field = _mapping(legacy.get(name))
        decided = _explicit(field.get("selected"))
        if decided is None:
            decided = _explicit(legacy_field.get("selected"))
        if decided is None:
            decided = _explicit(field.get("selected-by-default"))
        if decided is None or decided:
            chosen.append(name)
    return tuple(chosen)


def selected_schema(stream: Stream, properties: tuple[str, ...], *, typed_event_dates: bool = False) -> dict[str, Any]:
    """The stream's JSON schema restricted to the selected properties (what SCHEMA carries)."""
    full = json_schema(stream, typed_event_dates=typed_event_dates)
    keep = set(properties)
    full["properties"] = {k: v for k, v in full["properties"].items() if k in keep}
    return full


__all__ = [
    "PARENT_STREAMS",
    "REPLICATION_METHOD",
    "Selection",
    "automatic_properties",
    "discover",
    "json_schema",
    "key_properties",
    "read_selection",
    "record_properties",
    "selected_schema",
    "stream_as_sent",
    "stream_metadata",
    "text_dates",
]
