"""The shape of a stream: its columns, keys, parent, and how it is requested (SOAP or REST)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

NAMESPACE = "http://webservices.listrak.com/v31/"


class ColumnType(str, enum.Enum):
    """Logical column types; each maps to one Arrow type, one dlt type and one JSON schema."""

    INT = "int"
    TEXT = "text"
    BOOL = "bool"
    FLOAT = "float"
    TIMESTAMP = "timestamp"
    TEXT_LIST = "text_list"
    JSON = "json"  # a nested JSON value (REST: a contact's profile-field values), stored as JSON


class RequestKind(str, enum.Enum):
    """The request shapes of the operations we call (docs/listrak-api.md §4; REST: docs/rest-api.md)."""

    COLLECTION = "collection"  # no parameters, not paged
    LIST_WINDOW = "list_window"  # ListID, StartDate, EndDate, IncludeTestMessages, WSException
    MESSAGE_RANGE_PAGED = "message_range_paged"  # MsgID, StartDate, EndDate, Page
    MESSAGE_PAGED = "message_paged"  # MsgID, Page, WSException
    LIST_RANGE_PAGED = "list_range_paged"  # ListID, StartDate, EndDate, Page
    REST = "rest"  # GET Stream.route with its path ids, Stream.query, and a cursor where paged


@dataclass(frozen=True)
class Column:
    """One column of a stream.

    ``xml_path`` is the path of the value below the item element; it differs from
    ``(name,)`` only for the nested ``Vmta`` of a list, which we flatten.
    """

    name: str
    type: ColumnType
    description: str
    xml_path: tuple[str, ...] = ()
    nullable: bool = True

    @property
    def path(self) -> tuple[str, ...]:
        return self.xml_path or (self.name,)


@dataclass(frozen=True)
class Stream:
    """One Listrak stream: how to request it, what comes back, and how it is keyed."""

    name: str
    description: str
    operation: str
    item_element: str
    request: RequestKind
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    parent: str | None = None
    parent_key: Column | None = None
    cursor: str | None = None
    has_ws_exception: bool = False
    event: bool = False
    # The WSMessageActivity counter that moves whenever this stream gains rows for a message:
    # an incremental run skips a message's stream while its counter stands still.
    counter: str | None = None
    # Whether that counter counts this stream's rows, as events or as contacts (docs/listrak-api.md
    # §12.17): either way a full read of a message holds at least as many rows as the counter.
    counter_counts_rows: bool = False
    # Which API serves the stream: "soap" (v31 IntegrationService) or "rest" (Email API v1).
    api: str = "soap"
    # REST only. The route below the API base (``/List/{listId}/Contact``); its ``{names}`` are
    # the parent objects' ids, stamped on every row as :attr:`path_keys`.
    route: str | None = None
    # REST only: the route pages with ``cursor``/``count`` (the client follows a cursor anywhere).
    rest_paged: bool = False
    # REST only: fixed query parameters, and one pass per value of ``passes`` (name, values).
    query: tuple[tuple[str, str], ...] = ()
    passes: tuple[str, tuple[str, ...]] | None = None
    # REST only: a route per item for its full record (``/List/{listId}/Message/{messageId}``).
    detail_route: str | None = None
    # REST only: columns taken from the parent's row, not the answer (a summary's subject).
    from_parent: tuple[str, ...] = ()
    # REST only: the query parameter that filters on :attr:`cursor` (``startDate``), if any.
    date_param: str | None = None
    # REST only: the route's ids, stamped on each row in route order (``listId``, ``messageId``).
    path_keys: tuple[Column, ...] = ()
    # False for a stream read only as the parent of others (REST lists and messages): no table.
    stored: bool = True
    # REST only: values asked for by id (contacts' profile fields), as (source stream, its id
    # column, query parameter, most ids per request). The list's source rows are read first;
    # more ids than one request takes cost one more request each batch, merged on the key.
    values_from: tuple[str, str, str, int] | None = None
    # REST only: the stream's name in PyPI's tap-listrak 2.x (the Singer tap's 2.x mode offers it
    # under that name), and the key properties it emits there where they are not :attr:`key`
    # (``()``: none, as 2.x declared for activity).
    legacy_name: str | None = None
    legacy_key: tuple[str, ...] | None = None

    @property
    def result_element(self) -> str:
        return f"{self.operation}Result"

    @property
    def paged(self) -> bool:
        if self.api == "rest":
            return self.rest_paged
        return self.request in (
            RequestKind.MESSAGE_RANGE_PAGED,
            RequestKind.MESSAGE_PAGED,
            RequestKind.LIST_RANGE_PAGED,
        )

    @property
    def table_columns(self) -> tuple[Column, ...]:
        """Columns as stored: the stamped parent keys (if any) first, then the item's fields."""
        own = {c.name for c in self.columns}
        keys = self.path_keys or ((self.parent_key,) if self.parent_key else ())
        stamped = tuple(c for c in keys if c.name not in own)
        return stamped + self.columns

    @property
    def natural_key(self) -> tuple[str, ...]:
        """The key that never collapses two distinct rows.

        For event streams (one row per click, open, ...) that is every column: two clicks by
        one contact on one message differ at least in link or time. For entity streams it is
        the documented key.
        """
        if self.event:
            return tuple(c.name for c in self.table_columns)
        return self.key

    def column(self, name: str) -> Column:
        for c in self.table_columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


