"""The stream table: every fact about the nine Listrak streams, in one place.

Everything else reads this module: the SOAP client's envelopes, the extractors, the dlt
source, the Singer catalog, the simulator's responses, the table reference in docs/tables.md and the
tests. Column order is the XML element order of the item type (docs/listrak-api.md §5), so the
simulator writes items in exactly this order; the parent key that we stamp on child rows
(``MsgID``/``ListID``, not part of the SOAP item) comes first in :attr:`Stream.table_columns`.
"""

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


class RequestKind(str, enum.Enum):
    """The request shapes of the operations we call (docs/listrak-api.md §4)."""

    COLLECTION = "collection"  # no parameters, not paged
    LIST_WINDOW = "list_window"  # ListID, StartDate, EndDate, IncludeTestMessages, WSException
    MESSAGE_RANGE_PAGED = "message_range_paged"  # MsgID, StartDate, EndDate, Page
    MESSAGE_PAGED = "message_paged"  # MsgID, Page, WSException
    LIST_RANGE_PAGED = "list_range_paged"  # ListID, StartDate, EndDate, Page


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

    @property
    def result_element(self) -> str:
        return f"{self.operation}Result"

    @property
    def paged(self) -> bool:
        return self.request in (
            RequestKind.MESSAGE_RANGE_PAGED,
            RequestKind.MESSAGE_PAGED,
            RequestKind.LIST_RANGE_PAGED,
        )

    @property
    def table_columns(self) -> tuple[Column, ...]:
        """Columns as stored: the stamped parent key (if any) first, then the item's fields."""
        own = {c.name for c in self.columns}
        stamped = (self.parent_key,) if self.parent_key and self.parent_key.name not in own else ()
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


def _c(name: str, type_: ColumnType, description: str, *path: str, nullable: bool = True) -> Column:
    return Column(name, type_, description, tuple(path), nullable)


INT, T, B, F, TS = ColumnType.INT, ColumnType.TEXT, ColumnType.BOOL, ColumnType.FLOAT, ColumnType.TIMESTAMP

MSG_ID = _c("MsgID", INT, "The message's ID.", nullable=False)
LIST_ID = _c("ListID", INT, "The list's ID.", nullable=False)
CONTACT_ID = _c("ContactID", T, "The contact's ID (an opaque string).")
EMAIL = _c("EmailAddress", T, "The contact's email address.")

STREAMS: tuple[Stream, ...] = (
    Stream(
        name="lists",
        description="Contact lists the API user may access, with their settings.",
        operation="GetContactListCollection",
        item_element="WSContactList",
        request=RequestKind.COLLECTION,
        key=("ListID",),
        columns=(
            LIST_ID,
            _c("ListName", T, "The list's name."),
            _c("CreateDate", TS, "When the list was created.", nullable=False),
            _c("FromName", T, "Default sender name for messages to the list."),
            _c("FromEmail", T, "Default sender email address."),
            _c("EnableRemovalLink", B, "Whether messages carry an unsubscribe link.", nullable=False),
            _c("EnableBrowserLink", B, "Whether messages carry a view-in-browser link.", nullable=False),
            _c("bounceHandling", INT, "How bounces are handled (integer code).", nullable=False),
            _c("EnableDoubleOptin", B, "Whether double opt-in is on.", nullable=False),
            _c("EnableListHygiene", B, "Whether list hygiene is on.", nullable=False),
            _c("VmtaID", INT, "ID of the list's TCP/IP pool (Vmta).", "Vmta", "VmtaID"),
            _c("VmtaDescription", T, "Description of the list's TCP/IP pool.", "Vmta", "Description"),
            _c("ShowEmailList", B, "Undocumented list flag.", nullable=False),
            _c("ShowAdvancedPersonalization", B, "Whether advanced personalization shows.", nullable=False),
            _c("BounceUnsubscribeCount", INT, "Bounces allowed before automatic unsubscribe.", nullable=False),
            _c("DomainAliasLink", T, "Alias domain used for links."),
            _c("DomainAliasEmail", T, "Alias domain used for email."),
            _c("EnableRSS", B, "Whether RSS is on.", nullable=False),
            _c("EnableGoogleAnalytics", B, "Whether Google Analytics tracking is on.", nullable=False),
            Column("GoogleTrackingDomains", ColumnType.TEXT_LIST, "Domains tracked by Google Analytics."),
            _c("EnableInternationalization", B, "Whether internationalization is on.", nullable=False),
            _c("EnableDynamicContent", B, "Whether dynamic content is on.", nullable=False),
            _c("EnableListRemoveHeader", B, "Whether messages carry unsubscribe headers.", nullable=False),
        ),
    ),
    Stream(
        name="messages",
        description="One row per message sent to a list, with its delivery and activity counters.",
        operation="ReportListMessageActivity",
        item_element="WSMessageActivity",
        request=RequestKind.LIST_WINDOW,
        key=("MsgID",),
        parent="lists",
        parent_key=LIST_ID,
        cursor="SendDate",
        has_ws_exception=True,
        columns=(
            LIST_ID,
            MSG_ID,
            _c("Subject", T, "The message's subject line."),
            _c("SendDate", TS, "When the message was sent.", nullable=False),
            _c("DeliverCount", INT, "Messages delivered.", nullable=False),
            _c("RemoveCount", INT, "Unsubscribes from this message.", nullable=False),
            _c("RemovePercent", F, "Unsubscribes as a percentage of deliveries.", nullable=False),
            _c("OpenCount", INT, "Opens of this message.", nullable=False),
            _c("OpenPercent", F, "Opens as a percentage of deliveries.", nullable=False),
            _c("ReadCount", INT, "Reads of this message.", nullable=False),
            _c("ReadPercent", F, "Reads as a percentage of deliveries.", nullable=False),
            _c("ClickCount", INT, "Clicks on links in this message.", nullable=False),
            _c("ClickerCount", INT, "Unique contacts who clicked.", nullable=False),
            _c("RepeatClickerCount", INT, "Contacts who clicked more than once.", nullable=False),
            _c("NewClickerCount", INT, "Contacts who clicked for the first time.", nullable=False),
            _c("ClickerPercent", F, "Clickers as a percentage of deliveries.", nullable=False),
            _c("OrderTotal", F, "Total of orders attributed to the message.", nullable=False),
            _c("ConversionCount", INT, "Conversions attributed to the message.", nullable=False),
            _c("AverageOrderValue", F, "Average value of attributed orders.", nullable=False),
        ),
    ),
    Stream(
        name="message_bounces",
        description="One row per bounce of a message.",
        operation="ReportRangeMessageContactBounces",
        item_element="WSContactBounce",
        request=RequestKind.MESSAGE_RANGE_PAGED,
        key=("MsgID", "EmailAddress"),
        parent="messages",
        parent_key=MSG_ID,
        cursor="BounceDate",
        event=True,
        counter="DeliverCount",
        columns=(
            CONTACT_ID,
            EMAIL,
            _c("BounceReason", T, "Why the message bounced."),
            _c("BounceDetail", T, "The receiving server's bounce detail."),
            _c("BounceDate", TS, "When the bounce happened."),
            _c("BounceCount", INT, "The contact's bounce count.", nullable=False),
        ),
    ),
    Stream(
        name="message_clicks",
        description="One row per click on a link in a message (repeat clicks are separate rows).",
        operation="ReportRangeMessageContactClick",
        item_element="WSContactClick",
        request=RequestKind.MESSAGE_RANGE_PAGED,
        key=("MsgID", "EmailAddress"),
        parent="messages",
        parent_key=MSG_ID,
        cursor="ClickDate",
        event=True,
        counter="ClickCount",
        columns=(
            CONTACT_ID,
            EMAIL,
            _c("LinkDescription", T, "The clicked link's description."),
            _c("LinkUrl", T, "The clicked link's URL."),
            _c("ClickDate", TS, "When the click happened."),
        ),
    ),
    Stream(
        name="message_opens",
        description="One row per open of a message.",
        operation="ReportRangeMessageContactOpen",
        item_element="WSContactOpen",
        request=RequestKind.MESSAGE_RANGE_PAGED,
        key=("MsgID", "EmailAddress"),
        parent="messages",
        parent_key=MSG_ID,
        cursor="OpenDate",
        event=True,
        counter="OpenCount",
        columns=(CONTACT_ID, EMAIL, _c("OpenDate", TS, "When the open happened.")),
    ),
    Stream(
        name="message_reads",
        description="One row per read of a message.",
        operation="ReportRangeMessageContactRead",
        item_element="WSContactRead",
        request=RequestKind.MESSAGE_RANGE_PAGED,
        key=("MsgID", "EmailAddress"),
        parent="messages",
        parent_key=MSG_ID,
        cursor="ReadDate",
        event=True,
        counter="ReadCount",
        columns=(CONTACT_ID, EMAIL, _c("ReadDate", TS, "When the read happened.")),
    ),
    Stream(
        name="message_sends",
        description="One row per recipient a message was sent to.",
        operation="ReportMessageContactSent",
        item_element="WSMessageRecipient",
        request=RequestKind.MESSAGE_PAGED,
        key=("MsgID", "EmailAddress"),
        parent="messages",
        parent_key=MSG_ID,
        cursor="SendDate",
        has_ws_exception=True,
        event=True,
        columns=(EMAIL,),
    ),
    Stream(
        name="message_unsubs",
        description="One row per unsubscribe that came from a message.",
        operation="ReportRangeMessageContactRemoval",
        item_element="WSContactRemovalInfo",
        request=RequestKind.MESSAGE_RANGE_PAGED,
        key=("MsgID", "EmailAddress"),
        parent="messages",
        parent_key=MSG_ID,
        cursor="RemovalDate",
        event=True,
        counter="RemoveCount",
        columns=(
            CONTACT_ID,
            EMAIL,
            _c("AdditionDate", TS, "When the contact first subscribed.", nullable=False),
            _c("RemovalDate", TS, "When the contact unsubscribed.", nullable=False),
            _c("RemovalMethod", T, "How the contact unsubscribed."),
        ),
    ),
    Stream(
        name="subscribed_contacts",
        description="Contacts currently subscribed to each list.",
        operation="ReportRangeSubscribedContacts",
        item_element="WSContactSubscriptionInfo",
        request=RequestKind.LIST_RANGE_PAGED,
        key=("ContactID", "ListID"),
        parent="lists",
        parent_key=LIST_ID,
        cursor="AdditionDate",
        columns=(
            CONTACT_ID,
            EMAIL,
            _c("AdditionDate", TS, "When the contact was added to the list.", nullable=False),
            _c("AdditionMethod", T, "How the contact was added."),
        ),
    ),
)

STREAMS_BY_NAME: dict[str, Stream] = {s.name: s for s in STREAMS}
STREAM_NAMES: tuple[str, ...] = tuple(STREAMS_BY_NAME)


def get_stream(name: str) -> Stream:
    """Return the stream called ``name``.

    Raises:
        KeyError: no such stream.
    """
    return STREAMS_BY_NAME[name]


def children_of(parent: str) -> tuple[Stream, ...]:
    """The streams whose rows are fetched per row of ``parent``."""
    return tuple(s for s in STREAMS if s.parent == parent)
