"""The stream table: every fact about every Listrak stream, SOAP and REST, in one place.

Everything else reads this package: the two clients, the extractors, the dlt source, the
Singer catalog, the simulator's answers, the table reference in docs/tables.md and the tests.

- :data:`STREAMS`: the nine SOAP streams, the contract every hosted connector offers
  (:mod:`.soap`). Most of the code was built around them, and they stay the default set.
- :data:`REST_STREAMS`: what the REST Email API adds (:mod:`.rest`), read when REST
  credentials are set.
- :data:`ALL_STREAMS`: both; :func:`get_stream` finds any of them by name.
"""

from __future__ import annotations

from listrak_sync.streams.model import NAMESPACE, Column, ColumnType, RequestKind, Stream
from listrak_sync.streams.rest import REST_STREAMS
from listrak_sync.streams.soap import SOAP_STREAMS

STREAMS: tuple[Stream, ...] = SOAP_STREAMS
ALL_STREAMS: tuple[Stream, ...] = SOAP_STREAMS + REST_STREAMS
STREAMS_BY_NAME: dict[str, Stream] = {s.name: s for s in STREAMS}
STREAM_NAMES: tuple[str, ...] = tuple(STREAMS_BY_NAME)
REST_TABLE_NAMES: tuple[str, ...] = tuple(s.name for s in REST_STREAMS if s.stored)
_ALL_BY_NAME: dict[str, Stream] = {s.name: s for s in ALL_STREAMS}
assert len(_ALL_BY_NAME) == len(ALL_STREAMS), "stream names are unique across both APIs"


def get_stream(name: str) -> Stream:
    """Return the stream called ``name`` (SOAP or REST).

    Raises:
        KeyError: no such stream.
    """
    return _ALL_BY_NAME[name]


def children_of(parent: str) -> tuple[Stream, ...]:
    """The streams whose rows are fetched per row of ``parent``."""
    return tuple(s for s in ALL_STREAMS if s.parent == parent)


__all__ = [
    "ALL_STREAMS",
    "NAMESPACE",
    "REST_STREAMS",
    "REST_TABLE_NAMES",
    "STREAMS",
    "STREAMS_BY_NAME",
    "STREAM_NAMES",
    "Column",
    "ColumnType",
    "RequestKind",
    "Stream",
    "children_of",
    "get_stream",
]
