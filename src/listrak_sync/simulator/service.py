"""The simulator's SOAP application: the v31 operations over a synthetic :class:`Account`.

Transport-free: :meth:`IntegrationService.parse` and :meth:`IntegrationService.execute` turn
request bytes into response bytes; :mod:`listrak_sync.simulator.server` puts HTTP, latency
and injected faults around them.

Behaviour (docs/listrak-api.md §4, §7, §8, §11):

- Response wrappers hold exactly the children §4 lists: the Range operations and
  GetContactListCollection one ``<Op>Result``; ReportListMessageActivity,
  ReportMessageContactSent and GetAccountVmtaCollection the Result then
  ``<WSException xsi:nil="true" />``; GetContactList a single ``<WSContactList>``.
- Paged operations are 1-based with ``page_size`` items a page; a page past the end is an
  empty ``<Op>Result />``. ``Page`` below 1 is a ``soap:Client`` fault ("Page must be 1 or
  greater."). GetContactListCollection and ReportListMessageActivity are not paged.
- Range bounds are inclusive; ReportListMessageActivity filters on SendDate, the Range
  contact reports on each event's date, ReportRangeSubscribedContacts on AdditionDate.
  Missing parameters take the ASMX defaults (0, false, 0001-01-01).
- A ListID or MsgID the user may not see, or that does not exist at the clock's time, is a
  ``soap:Client`` fault (HTTP 500) whose text holds ``[AccessDenied]``, e.g.
  ``[AccessDenied] ListID 123 is not available to this user.`` The real service's text for
  this case is unknown (docs/listrak-api.md §12.10); clients must not depend on this wording, only
  on it being a client fault that names no login token.

That is the friendly :class:`~.profile.Profile`. Its knobs change: the range bounds and the
clock (the account applies them), the string-date format, the page size per operation, an
empty page as an omitted Result, login/refusal/Page faults as ``soap:Server`` with the ASMX
prefix "Server was unable to process request. ---> ", refusals in-band for the operations
with a WSException (HTTP 200, no Result, a WSException whose Description holds the
``[AccessDenied]`` text), and strict Content-Type/SOAPAction checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from listrak_sync.simulator.access import AccessControl, AuthFault, User
from listrak_sync.simulator.envelope import (
    SoapFault,
    SoapRequest,
    parse_bool,
    parse_datetime,
    parse_request,
    response_envelope,
)
from listrak_sync.simulator.profile import ASMX_PREFIX, STRING_DATE_COLUMNS, Profile
from listrak_sync.simulator.render import ItemWriter, escape_text, format_datetime, stream_writer
from listrak_sync.simulator.stats import Stats
from listrak_sync.simulator.wallclock import format_us_date
from listrak_sync.streams import STREAMS, Column, ColumnType, RequestKind, Stream, get_stream

ACCESS_DENIED = "AccessDenied"
DEFAULT_PAGE_SIZE = 2500
WS_EXCEPTION_NIL = '<WSException xsi:nil="true" />'
T = TypeVar("T")
_ASMX_MIN_DATE = datetime(1, 1, 1)

CHARACTER_SETS: tuple[tuple[int, str], ...] = (
    (1, "us-ascii"),
    (2, "iso-8859-1"),
    (3, "utf-8"),
    (4, "windows-1252"),
    (5, "shift_jis"),
)

_CHARSET_WRITER = ItemWriter(
    "WSCharacterSet",
    (Column("CharacterSetID", ColumnType.INT, "ID"), Column("Name", ColumnType.TEXT, "Name")),
)
_VMTA_WRITER = ItemWriter(
    "WSVmta",
    (
        Column("VmtaID", ColumnType.INT, "ID"),
        Column("VmtaDescription", ColumnType.TEXT, "Description", ("Description",)),
    ),
)

Handler = Callable[[SoapRequest, User], str]


class _Refused(Exception):
    """A ListID or MsgID the user may not read; becomes a fault or an in-band WSException."""


class IntegrationService:
    """The v31 ``IntegrationService`` operations, served from one account; thread-safe."""

    def __init__(
        self,
        account: Any,
        access: AccessControl,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        stats: Stats | None = None,
    ) -> None:
        """Serve ``account``.

        Args:
            account: a :class:`listrak_sync.simulator.data.Account` (or any object with its
                methods); its ``profile`` (friendly if it has none) is the service's too.
            access: who may call, and which lists each user sees.
            page_size: items per page of the paged operations (the profile may scale it per
                operation).
            stats: counters to update (a new :class:`Stats` if omitted).

        Raises:
            ValueError: ``page_size`` is below 1.
        """
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        self.account = account
        self.access = access
        self.page_size = page_size
        self.stats = stats or Stats()
        self.profile: Profile = getattr(account, "profile", None) or Profile.friendly()
        clock = getattr(account, "clock", None)
        self._to_local = None if clock is None or clock.utc else clock.to_local
        # Account calls are serialised: the data model is not promised to be thread-safe, and
        # clock moves must not interleave with a query. Rendering happens outside the lock.
        self.account_lock = threading.RLock()
        formats = {}
        if self.profile.event_date_format == "us":
            formats = dict.fromkeys(STRING_DATE_COLUMNS, format_us_date)
        self._writers = {s.operation: stream_writer(s, formats) for s in STREAMS}
        self._handlers: dict[str, Handler] = {s.operation: self._stream_handler(s) for s in STREAMS}
        self._handlers.update(
            GetContactList=self._get_contact_list,
            GetCharacterSetCollection=self._get_character_sets,
            GetAccountVmtaCollection=self._get_vmtas,
        )

    @property
    def operations(self) -> tuple[str, ...]:
        """Names of the implemented operations."""
        return tuple(self._handlers)

    def parse(self, body: bytes, content_type: str | None, soap_action: str | None) -> SoapRequest:
        """Parse and route a request (see :func:`envelope.parse_request`).

        Raises:
            SoapFault: a client fault for a malformed or unknown request.
        """
        return parse_request(body, content_type, soap_action, self._handlers, strict=self.profile.strict_http)

    def execute(self, request: SoapRequest, client_ip: str) -> bytes:
        """Authenticate and run one parsed request.

        Args:
            request: the parsed request.
            client_ip: the caller's address, checked against the IP allowlist.

        Returns:
            The response envelope's bytes (HTTP 200).

        Raises:
            SoapFault: a fault to send with HTTP 500 (login refused, access denied, bad values).
        """
        try:
            user = self.access.authenticate(request, client_ip)
        except AuthFault as fault:
            self.stats.auth_failure(fault.token)
            if self.profile.fault_style == "client":
                raise
            raise self._fault(fault.message, request) from None
        children = self._handlers[request.operation](request, user)
        return response_envelope(request.version, request.operation, children)

    # -- operations ---------------------------------------------------------------------------

    def _stream_handler(self, stream: Stream) -> Handler:
        kind = stream.request
        if kind is RequestKind.COLLECTION:
            return lambda request, user: self._lists(stream, request, user)
        if kind is RequestKind.LIST_WINDOW:
            return lambda request, user: self._list_window(stream, request, user)
        return lambda request, user: self._paged(stream, request, user)

    def _lists(self, stream: Stream, request: SoapRequest, user: User) -> str:
        with self.account_lock:
            rows = [row for row in self.account.lists() if user.may_see(row["ListID"])]
        return self._result(stream, request, rows)

    def _list_window(self, stream: Stream, request: SoapRequest, user: User) -> str:
        # Values are read before access is checked: ASMX deserialises a request before the
        # method runs, so a malformed value is reported even for a refused list.
        start, end = self._date(request, "StartDate"), self._date(request, "EndDate")
        include_test = _bool(request, "IncludeTestMessages")
        try:
            list_id = self._allowed_list(request, user)
        except _Refused as refused:
            return self._refusal(stream, request, str(refused))
        self.stats.object_request(stream.operation, list_id)
        with self.account_lock:
            rows = self.account.messages(list_id, start, end, include_test) if start <= end else []
        return self._result(stream, request, rows)

    def _paged(self, stream: Stream, request: SoapRequest, user: User) -> str:
        page = _int(request, "Page")
        dated = stream.request is not RequestKind.MESSAGE_PAGED
        start, end = _ASMX_MIN_DATE, _ASMX_MIN_DATE
        if dated:
            start, end = self._date(request, "StartDate"), self._date(request, "EndDate")
        if page < 1:
            raise self._fault("Page must be 1 or greater.", request)
        size = self.profile.page_size(stream.operation, self.page_size)
        first = (page - 1) * size
        try:
            if stream.request is RequestKind.LIST_RANGE_PAGED:
                list_id = self._allowed_list(request, user)
            else:
                msg_id = self._allowed_message(request, user)
        except _Refused as refused:
            return self._refusal(stream, request, str(refused))
        self.stats.object_request(stream.operation, list_id if stream.request is RequestKind.LIST_RANGE_PAGED
                                  else msg_id)
        with self.account_lock:
            if stream.request is RequestKind.LIST_RANGE_PAGED:
                rows = self.account.subscribed_contacts(list_id, start, end) if start <= end else ()
            elif not dated:
                rows = self.account.events(stream.name, msg_id)
            else:
                rows = self.account.events(stream.name, msg_id, start, end) if start <= end else ()
            rows = rows[first : first + size]
        return self._result(stream, request, rows)

    def _get_contact_list(self, request: SoapRequest, user: User) -> str:
        try:
            list_id = self._allowed_list(request, user)
        except _Refused as refused:
            raise self._denied(request, str(refused)) from None
        with self.account_lock:
            row = next(r for r in self.account.lists() if r["ListID"] == list_id)
        self.stats.rows(request.operation, 1)
        return self._writers[get_stream("lists").operation].item(row)

    def _get_character_sets(self, request: SoapRequest, user: User) -> str:
        rows = [{"CharacterSetID": cid, "Name": name} for cid, name in CHARACTER_SETS]
        self.stats.rows(request.operation, len(rows))
        return _CHARSET_WRITER.array(f"{request.operation}Result", rows)

    def _get_vmtas(self, request: SoapRequest, user: User) -> str:
        with self.account_lock:
            lists = self.account.lists()
        vmtas = {row["VmtaID"]: row.get("VmtaDescription") for row in lists if row.get("VmtaID") is not None}
        rows = [{"VmtaID": vid, "VmtaDescription": vmtas[vid]} for vid in sorted(vmtas)]
        self.stats.rows(request.operation, len(rows))
        return _VMTA_WRITER.array(f"{request.operation}Result", rows) + WS_EXCEPTION_NIL

    # -- helpers ------------------------------------------------------------------------------

    def _result(self, stream: Stream, request: SoapRequest, rows: Sequence[Any]) -> str:
        self.stats.rows(request.operation, len(rows))
        if not rows and self.profile.empty_result == "omitted":
            result = ""
        else:
            result = self._writers[stream.operation].array(stream.result_element, rows)
        return result + WS_EXCEPTION_NIL if stream.has_ws_exception else result

    def _allowed_list(self, request: SoapRequest, user: User) -> int:
        list_id = _int(request, "ListID")
        with self.account_lock:
            exists = list_id in self.account.list_ids()
        if not exists or not user.may_access(list_id):
            raise _Refused(f"ListID {list_id} is not available to this user.")
        return list_id

    def _allowed_message(self, request: SoapRequest, user: User) -> int:
        msg_id = _int(request, "MsgID")
        with self.account_lock:
            list_id = self.account.message_list_id(msg_id)
        if list_id is None or not user.may_access(list_id):
            raise _Refused(f"MsgID {msg_id} is not available to this user.")
        return msg_id

    def _refusal(self, stream: Stream, request: SoapRequest, detail: str) -> str:
        """The answer to a refused ID: a fault, or (in-band) no Result and a filled WSException."""
        if not (self.profile.in_band_refusals and stream.has_ws_exception):
            raise self._denied(request, detail)
        self.stats.access_denied()
        with self.account_lock:
            now = getattr(self.account, "service_now", None) or self.account.now
        return (f"<WSException><SoapMethod>{request.operation}</SoapMethod>"
                f"<DateTime>{format_datetime(now)}</DateTime>"
                f"<Description>{escape_text(f'[{ACCESS_DENIED}] {detail}')}</Description></WSException>")

    def _denied(self, request: SoapRequest, detail: str) -> SoapFault:
        self.stats.access_denied()
        return self._fault(f"[{ACCESS_DENIED}] {detail}", request)

    def _fault(self, message: str, request: SoapRequest) -> SoapFault:
        """A fault raised inside an operation, as the profile's ``fault_style`` shapes it."""
        if self.profile.fault_style == "asmx":
            return SoapFault(ASMX_PREFIX + message, client=False, version=request.version)
        return SoapFault(message, version=request.version)

    def _date(self, request: SoapRequest, name: str) -> datetime:
        return _param(request, name, lambda text: parse_datetime(text, self._to_local), _ASMX_MIN_DATE)


def _unreadable(request: SoapRequest, name: str, text: str) -> SoapFault:
    return SoapFault(
        f"Server was unable to read request. ---> {name}: the value {text!r} is not in a correct format.",
        version=request.version,
    )


def _param(request: SoapRequest, name: str, parse: Callable[[str], T], missing: T) -> T:
    # ASMX fills a missing element with its type's default (0, false, DateTime.MinValue).
    text = request.params.get(name)
    if text is None:
        return missing
    try:
        return parse(text)
    except ValueError:
        raise _unreadable(request, name, text) from None


def _int(request: SoapRequest, name: str) -> int:
    return _param(request, name, lambda text: int(text.strip()), 0)


def _bool(request: SoapRequest, name: str) -> bool:
    return _param(request, name, parse_bool, False)
