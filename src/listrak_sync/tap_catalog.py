"""The Singer catalog of the tap, built from the stream table, and selection read back from one.

Discovery needs no network: every stream of :mod:`listrak_sync.streams` becomes one catalog
entry with the stream id, key properties and property names that ``singer-io/tap-listrak``
used, so an existing catalog, state and target keep working. Two shapes differ from our own
table columns, as the original tap's schemas have them: the list's TCP/IP pool is one nested
object ``Vmta`` (``{"VmtaID", "Description"}``, from the flattened columns' ``Column.path``), and
``GoogleTrackingDomains`` is an array of strings.

Selection follows the Singer convention (as the Meltano SDK reads it): an explicit
``selected`` wins, at the stream or field level; otherwise ``selected-by-default``; key
properties are ``automatic`` and always emitted. Legacy ``--properties`` files, which mark
``"selected": true`` on the entry or its schema, are read the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from listrak_sync.errors import ConfigError
from listrak_sync.streams import STREAMS, STREAMS_BY_NAME, Column, ColumnType, Stream

log = logging.getLogger(__name__)

REPLICATION_METHOD = "FULL_TABLE"

_JSON_TYPES: dict[ColumnType, dict[str, Any]] = {
    ColumnType.INT: {"type": "integer"},
    ColumnType.TEXT: {"type": "string"},
    ColumnType.BOOL: {"type": "boolean"},
    ColumnType.FLOAT: {"type": "number"},
    ColumnType.TIMESTAMP: {"type": "string", "format": "date-time"},
    ColumnType.TEXT_LIST: {"type": "array", "items": {"type": "string"}},
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


def _column_schema(column: Column) -> dict[str, Any]:
    base = _JSON_TYPES[column.type]
    types = ["null", base["type"]] if column.nullable else [base["type"]]
    schema: dict[str, Any] = {**base, "type": types}
    schema["description"] = column.description
    return schema


def json_schema(stream: Stream) -> dict[str, Any]:
    """The JSON schema of one stream's records.

    Args:
        stream: a stream of the stream table.

    Returns:
        An object schema: one property per record property, nullable (``["null", ...]``)
        where the column is; timestamps are ``string`` with ``format: date-time``.
    """
    properties: dict[str, Any] = {}
    for column in stream.table_columns:
        if len(column.path) == 1:
            properties[column.name] = _column_schema(column)
            continue
        group = properties.setdefault(
            column.path[0],
            {"type": ["null", "object"], "additionalProperties": False, "properties": {}},
        )
        group["properties"][column.path[1]] = _column_schema(column)
    return {"type": "object", "additionalProperties": False, "properties": properties}


def stream_metadata(stream: Stream) -> list[dict[str, Any]]:
    """Singer metadata of one stream: the stream breadcrumb first, then one per property."""
    root: dict[str, Any] = {
        "inclusion": "available",
        "selected-by-default": True,
        "table-key-properties": list(stream.key),
        "forced-replication-method": REPLICATION_METHOD,
    }
    if stream.parent:
        root["parent-tap-stream-id"] = stream.parent
    entries: list[dict[str, Any]] = [{"breadcrumb": [], "metadata": root}]
    automatic = automatic_properties(stream)
    for name in record_properties(stream):
        inclusion = "automatic" if name in automatic else "available"
        entries.append(
            {"breadcrumb": ["properties", name], "metadata": {"inclusion": inclusion, "selected-by-default": True}}
        )
    return entries


def discover() -> dict[str, Any]:
    """The catalog ``tap-listrak --discover`` prints: every stream, nothing fetched.

    Returns:
        ``{"streams": [...]}`` with ``tap_stream_id``, ``stream``, ``key_properties``,
        ``schema`` and ``metadata`` per stream, in stream-table order.
    """
    return {
        "streams": [
            {
                "tap_stream_id": stream.name,
                "stream": stream.name,
                "key_properties": list(stream.key),
                "schema": json_schema(stream),
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


def read_selection(catalog: Any) -> Selection:
    """Read stream and field selection from a ``--catalog`` or legacy ``--properties`` document.

    Streams the catalog does not hold are not selected; stream ids we do not know are logged
    and ignored (a catalog may come from a newer or older tap).

    Args:
        catalog: the parsed JSON document.

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
        stream = STREAMS_BY_NAME.get(stream_id)
        if stream is None:
            log.warning("Ignoring unknown stream %r in the catalog.", stream_id)
            continue
        by_breadcrumb = _metadata_by_breadcrumb(entry.get("metadata"))
        if _stream_selected(entry, by_breadcrumb.get(())):
            chosen[stream.name] = _selected_properties(stream, entry, by_breadcrumb)
    # Stream-table order, whatever order the catalog lists them in.
    return Selection({s.name: chosen[s.name] for s in STREAMS if s.name in chosen})


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


def selected_schema(stream: Stream, properties: tuple[str, ...]) -> dict[str, Any]:
    """The stream's JSON schema restricted to the selected properties (what SCHEMA carries)."""
    full = json_schema(stream)
    keep = set(properties)
    full["properties"] = {k: v for k, v in full["properties"].items() if k in keep}
    return full


__all__ = [
    "REPLICATION_METHOD",
    "Selection",
    "automatic_properties",
    "discover",
    "json_schema",
    "read_selection",
    "record_properties",
    "selected_schema",
    "stream_metadata",
]
