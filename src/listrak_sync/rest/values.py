"""Values a REST request names by id (contacts' profile fields, ``Stream.values_from``).

The API returns a contact's profile-field values only for the field ids the request names
(``segmentationFieldIds``), and takes at most 30 per request (REST.md §4.2). A list with more
fields is read once per batch of ids; the later batches' values are merged into the first
batch's items by the item's own key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from listrak_sync.streams import Stream


def value_batches(stream: Stream, values: tuple[int, ...]) -> list[tuple[str, str]]:
    """The query parameter of each request (at most ``values_from[3]`` ids each); none when
    there are no ids to name."""
    if not stream.values_from or not values:
        return []
    param, most = stream.values_from[2], stream.values_from[3]
    return [(param, ",".join(map(str, values[i:i + most]))) for i in range(0, len(values), most)]


def values_column(stream: Stream) -> str:
    """The JSON column a ``values_from`` stream's values arrive in."""
    return next(c.name for c in stream.columns if c.type.value == "json")


def own_key(stream: Stream, item: Mapping[str, Any]) -> tuple[Any, ...]:
    """An item's key within its parent: the stream's key less the route's ids."""
    path = {c.name for c in stream.path_keys}
    return tuple(item.get(k) for k in stream.key if k not in path)


def merge_values(stream: Stream, items: list[dict[str, Any]],
                 extra: dict[tuple[Any, ...], list[Any]]) -> list[dict[str, Any]]:
    """``items`` with the values of the later batches (``extra``, by :func:`own_key`) appended."""
    column = values_column(stream)
    return [{**item, column: [*(item.get(column) or []), *extra.get(own_key(stream, item), [])]}
            for item in items]


__all__ = ["merge_values", "own_key", "value_batches", "values_column"]
