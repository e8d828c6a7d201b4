"""Extraction: the nine streams as Arrow tables, with date windows, pages and concurrency.

The extractor knows which requests make up a stream (date windows for messages, pages for
everything per message or per list) and stamps the parent key (``MsgID``/``ListID``) on rows
that do not carry it. It never retries or classifies errors (the client does); it only
decides that a refused list or message, or one whose pages never end, is skipped, recorded in
:attr:`Extractor.skipped` and logged, while the rest goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from listrak_sync.errors import (
    ConfigError,
    EndlessPagesError,
    ObjectRefusedError,
    ObjectSkippedError,
    ShortOfCounterError,
    no_lists_visible,
)
from listrak_sync.progress import RunProgress
from listrak_sync.settings import Settings
from listrak_sync.soap.client import ListrakClient
from listrak_sync.soap.parse import arrow_schema
from listrak_sync.streams import RequestKind, Stream, children_of, get_stream
from listrak_sync.time import ServiceClock, date_windows, utc
from listrak_sync.walk import Skips, Walk, rows_since, walk_concurrently

log = logging.getLogger(__name__)

LISTS = get_stream("lists")
MESSAGES = get_stream("messages")
SUBSCRIBED_CONTACTS = get_stream("subscribed_contacts")
ACTIVITY_STREAMS: tuple[Stream, ...] = children_of("messages")
# The message counter that best predicts how many rows a stream has per message: its own
# counter, else deliveries (sends have none). Only an order hint: largest first teaches the
# client each operation's page size early (ListrakClient.iter_pages), so that fewer objects
# need a final empty page. Nothing depends on the counters being right.
# One activity work unit as the extractor takes it: (stream, MsgID, start; None: the start date).
ActivityUnit = tuple[Stream, int, "datetime | None"]


@dataclass(frozen=True)
class MessageReach:
    """Where one list's messages request begins, and whether one window covers the range.

    Attributes:
        ask_from: the instant to ask from (the start date, or the end of the list's quiet past).
        one_window: ask for ``[ask_from, now]`` in one request instead of ``interval_days`` windows.
    """

    ask_from: datetime
    one_window: bool = False


_SIZE_HINTS = {stream.name: stream.counter or "DeliverCount" for stream in ACTIVITY_STREAMS}


def request_params(stream: Stream, object_id: int, start: datetime, end: datetime) -> dict[str, Any]:
    """The parameters (without ``Page``) that ask for ``stream`` of one list or message."""
    key = "MsgID" if stream.request in (RequestKind.MESSAGE_RANGE_PAGED, RequestKind.MESSAGE_PAGED) else "ListID"
    params: dict[str, Any] = {key: object_id}
    if stream.request is not RequestKind.MESSAGE_PAGED:  # ReportMessageContactSent has no dates
        params.update(StartDate=start, EndDate=end)
    return params


def column_ints(table: pa.Table, column: str) -> list[int]:
    """The integer values of ``column`` (list or message IDs), as Python ints."""
    return [int(v) for v in table.column(column).to_pylist()]


class Extractor:
    """Reads the streams of one account through a :class:`ListrakClient`.

    Args:
        client: the SOAP client.
        settings: start date, window length, list filter, concurrency, source time zone.
        now: the current time, aware (default: the service's clock,
            :meth:`ListrakClient.service_now`, not this machine's); requests end at this
            clock's reading when they are made.
        progress: counters to report rows and work units into (default: a private one, in
            :attr:`progress`). A work unit is one (activity stream, message) pair or one list's
            subscribed contacts; it is counted as planned when its batch starts and as done
            when its rows are handed to the caller (or it was refused).
    """

    def __init__(
        self,
        client: ListrakClient,
        settings: Settings,
        *,
        now: Callable[[], datetime] | None = None,
        progress: RunProgress | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.progress = progress if progress is not None else RunProgress()
        self._skips = Skips()
        self.skipped: list[ObjectSkippedError] = self._skips.errors
        self._now = now or client.service_now
        self.clock = ServiceClock(settings.source_timezone)
        self._lock = threading.Lock()
        self._counters: dict[int, dict[str, Any]] = {}

    # -- lists and messages ----------------------------------------------------------------------

    def lists(self) -> pa.Table:
        """The lists the API user can see, filtered to ``settings.list_ids`` if given.

        Raises:
            NoListsVisibleError: the user sees no list at all (for every adapter alike: a run,
                the tap and ``check`` all stop with its one line and exit 3).
            ConfigError: a requested list ID is not visible to the user (the message lists the
                visible ones).
        """
        table = self.client.fetch(LISTS)
        if table.num_rows == 0:
            raise no_lists_visible(self.settings.username)
        wanted = self.settings.list_ids
        if wanted is None:
            self.progress.add_rows(LISTS.name, table.num_rows)
            return table
        visible = column_ints(table, "ListID")
        unknown = [list_id for list_id in wanted if list_id not in visible]
        if unknown:
            raise ConfigError(
                f"List ID(s) {', '.join(map(str, unknown))} are not visible to Listrak user "
                f"{self.settings.username!r}. Visible lists: {', '.join(map(str, visible)) or 'none'}. "
                "Fix list_ids, or grant the user access under Manage > Accounts > User Manager."
            )
        table = table.filter(pc.is_in(table.column("ListID"), pa.array(wanted, pa.int64())))
        self.progress.add_rows(LISTS.name, table.num_rows)
        return table

    def messages(self, list_id: int, start: datetime | None = None, *, reach: MessageReach | None = None) -> pa.Table:
        """Messages sent to one list from ``start`` (default: the start date) until now.

        A refused list gives an empty table and is recorded in :attr:`skipped`.

        Args:
            list_id: the list.
            start: an instant (aware: a naive value raises TypeError); default: the start date.
            reach: ask from ``reach.ask_from`` only, in one window if it says so
                (:mod:`listrak_sync.engine.reach`); rows are still those from ``start`` on.
        """
        since = self._since(start)
        first, end = self._range(reach.ask_from if reach else start)
        days = self.settings.interval_days
        windows = [(first, end)] if reach and reach.one_window else date_windows(first, end, days)
        tables = []
        try:
            for window_start, window_end in windows:
                params = request_params(MESSAGES, list_id, window_start, window_end)
                tables.append(self.client.fetch(MESSAGES, scope=("list", list_id), **params))
        except ObjectRefusedError as exc:
            self._skips.add(exc)
            return arrow_schema(MESSAGES).empty_table()
        if not tables:
            return arrow_schema(MESSAGES).empty_table()
        table = rows_since(_first_per_key(pa.concat_tables(tables), "MsgID"), "SendDate", since)
        self.progress.add_rows(MESSAGES.name, table.num_rows)
        self._remember_counters(table)
        return table

    def messages_of(
        self, list_ids: Sequence[int], reaches: Mapping[int, MessageReach | None] | None = None
    ) -> list[pa.Table]:
        """:meth:`messages` of several lists, asked concurrently; the tables in ``list_ids`` order.

        A message ID is the service's own, unique in the account: were one listed under several
        lists, only its row of the last of them is kept (counted as a repeated row).

        Raises:
            The errors of :meth:`messages`; the calls not yet started are dropped.
        """
        reaches = reaches or {}
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="listrak-messages")
        try:
            futures = [pool.submit(self.messages, list_id, reach=reaches.get(list_id)) for list_id in list_ids]
            return self._each_message_once([future.result() for future in futures])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _each_message_once(self, tables: list[pa.Table]) -> list[pa.Table]:
        later = pa.array([], pa.int64())
        once = []
        for table in reversed(tables):
            again = pc.is_in(table.column("MsgID"), value_set=later)
            if pc.any(again).as_py():
                kept = table.filter(pc.invert(again))
                self.client.stats.count_repeated(MESSAGES.name, table.num_rows - kept.num_rows)
                table = kept
            once.append(table)
            later = pa.concat_arrays([later, table.column("MsgID").combine_chunks()])
        return once[::-1]

    def refused_list(self, list_id: int) -> bool:
        """Whether the service refused ``list_id`` in this run."""
        return list_id in self._skips.ids("list", ObjectRefusedError)

    def _remember_counters(self, table: pa.Table) -> None:
        names = sorted({*_SIZE_HINTS.values(), *(s.counter for s in ACTIVITY_STREAMS if s.counter), "SendDate"})
        rows = zip(column_ints(table, "MsgID"), *(table.column(n).to_pylist() for n in names), strict=True)
        with self._lock:
            for msg_id, *values in rows:
                self._counters[msg_id] = dict(zip(names, values, strict=True))

    def _largest_first(self, stream: Stream, msg_ids: Sequence[int]) -> list[int]:
        """``msg_ids`` by ``stream``'s size hint, largest first (unknown ones last, in order)."""
        hint = _SIZE_HINTS[stream.name]
        with self._lock:
            sizes = {m: self._counters.get(m, {}).get(hint) for m in msg_ids}
        return sorted(msg_ids, key=lambda m: -(sizes[m] or -1))

    def subscribed_contacts(self, list_id: int, start: datetime | None = None) -> Iterator[pa.Table]:
        """Contacts subscribed to one list with an addition date from ``start`` on, page by page.

        Args:
            list_id: the list.
            start: as for :meth:`messages`.

        Yields:
            Tables with ``ListID`` stamped. A refused list yields nothing and is recorded.
        """
        return self.subscribed_contacts_of([list_id], start)

    def subscribed_contacts_of(self, list_ids: Sequence[int], start: datetime | None = None) -> Iterator[pa.Table]:
        """:meth:`subscribed_contacts` of several lists, fetched concurrently, pages interleaved."""
        since, (first, end) = self._since(start), self._range(start)
        self.progress.add_units(len(list_ids))

        def walk(list_id: int) -> Walk:
            params = request_params(SUBSCRIBED_CONTACTS, list_id, first, end)
            pages = self.client.iter_pages(SUBSCRIBED_CONTACTS, scope=("list", list_id), **params)
            return Walk(SUBSCRIBED_CONTACTS, list_id, pages, since=("AdditionDate", since))

        for _, page in self._walk(walk(list_id) for list_id in list_ids):
            yield page

    # -- per-message activity --------------------------------------------------------------------

    def message_activity(
        self,
        streams: Sequence[Stream],
        msg_ids: Sequence[int],
        start: datetime | None = None,
        *,
        announced: bool = False,
    ) -> Iterator[tuple[Stream, pa.Table]]:
        """Every (stream, message) pair, fetched concurrently under one bounded limit.

        At most ``settings.concurrency`` workers run, and only a small window of pages is
        asked for at a time however many messages there are and however large each is, so
        memory does not grow with the largest message. Pages come back in the caller's thread
        as they arrive, those of different messages interleaved. An error other than a refusal
        stops the other tasks and is raised here; a refused message is skipped and recorded
        (Listrak refuses an object at its first page; were it to refuse one later, the pages
        before would have been yielded). Given a sequence, each stream's messages start largest
        first by their counters from :meth:`messages` (a hint only).

        Args:
            streams: activity streams (children of ``messages``).
            msg_ids: the messages.
            start: start of the event date range (default: the start date); sends ignore dates.
            announced: the caller already told :attr:`progress` about these work units.

        Yields:
            ``(stream, table)`` per non-empty page, ``MsgID`` stamped.

        Raises:
            ValueError: a stream that is not a message activity stream.
        """
        units: Iterable[ActivityUnit]
        if isinstance(msg_ids, Sequence):
            units = [(stream, msg_id, start) for stream in streams for msg_id in msg_ids]
        else:  # a lazy iterable: its units are asked for (and planned) as they are queued
            units = ((stream, msg_id, start) for msg_id in msg_ids for stream in streams)
        for stream, _, page in self.activity_units(units, announced=announced):
            if page is not None:
                yield stream, page

    def activity_units(
        self, units: Iterable[ActivityUnit], *, announced: bool = False
    ) -> Iterator[tuple[Stream, int, pa.Table | None]]:
        """Like :meth:`message_activity`, for units that each have their own start.

        Args:
            units: (stream, message, start) triples; a ``None`` start is the start date.
                Given a sequence, each stream's messages start largest first by their counters
                from :meth:`messages` (a hint only); a lazy iterable is taken in its order.
            announced: the caller already told :attr:`progress` about these work units.

        Yields:
            ``(stream, msg_id, table)`` per non-empty page, and ``(stream, msg_id, None)`` once
            a unit is over: every page of it was yielded before, or it was refused (then it is
            in :meth:`refused_messages`).

        Raises:
            ValueError: a stream that is not a message activity stream.
        """
        if isinstance(units, Sequence):
            for stream, _, _ in units:
                _check_activity(stream)
            if not announced:
                self.progress.add_units(len(units))
            order = {(s.name, m): i for s, ids in self._hinted(units).items() for i, m in enumerate(ids)}
            units = sorted(units, key=lambda u: order[(u[0].name, u[1])])
        else:
            units = self._planned_one_by_one(units, announced)
        ranges: dict[datetime | None, tuple[datetime, datetime]] = {}

        def walks() -> Iterator[Walk]:
            for stream, msg_id, start in units:
                if start not in ranges:  # one EndDate for the units of one start
                    ranges[start] = self._range(start)
                yield self._activity_walk(stream, msg_id, *ranges[start], start)

        for walk, page in self._walk(walks(), report_done=True):
            yield walk.stream, walk.object_id, page

    def _hinted(self, units: Sequence[ActivityUnit]) -> dict[Stream, list[int]]:
        by_stream: dict[Stream, list[int]] = {}
        for stream, msg_id, _ in units:
            by_stream.setdefault(stream, []).append(msg_id)
        return {stream: self._largest_first(stream, ids) for stream, ids in by_stream.items()}

    def _planned_one_by_one(self, units: Iterable[ActivityUnit], announced: bool) -> Iterator[ActivityUnit]:
        for unit in units:
            _check_activity(unit[0])
            if not announced:
                self.progress.add_units(1)
            yield unit

    def _walk(self, walks: Iterable[Walk], report_done: bool = False) -> Iterator[tuple[Walk, pa.Table | None]]:
        return walk_concurrently(walks, workers=self.settings.concurrency, progress=self.progress,
                                 on_skipped=self._skips.add, report_done=report_done)

    def _activity_walk(self, stream: Stream, msg_id: int, first: datetime, end: datetime,
                       start: datetime | None = None) -> Walk:
        params = request_params(stream, msg_id, first, end)
        hint = _SIZE_HINTS[stream.name]
        with self._lock:
            known = self._counters.get(msg_id, {})
        counted = known.get(hint)
        counter = (hint, int(counted)) if counted is not None else None
        sent = known.get("SendDate")
        # Only a read from the message's first event holds every row its counter counts.
        whole = start is None or (sent is not None and utc(start) <= utc(sent))
        at_least = counter[1] if counter and stream.counter_counts_rows and whole else None
        return Walk(stream, msg_id, self.client.iter_pages(stream, scope=("message", msg_id), counter=counter,
                                                           at_least=at_least, **params))

    # -- helpers ----------------------------------------------------------------------------------

    def _since(self, start: datetime | None) -> datetime:
        return utc(start or self.settings.start_date)

    def _range(self, start: datetime | None) -> tuple[datetime, datetime]:
        """StartDate and EndDate of a request from ``start`` until now, as service wall times.

        Widened at both ends (:meth:`ServiceClock.request_range`); callers filter by ``start``.
        """
        return self.clock.request_range(self._since(start), self.now())

    def now(self) -> datetime:
        """The extractor's clock (the injected one, or the service's), aware UTC.

        Raises:
            TypeError: the injected clock gave a naive value.
        """
        return utc(self._now())

    def refused_messages(self) -> set[int]:
        """IDs of the messages the service refused so far (their rows were not fetched)."""
        return self._skips.ids("message", ObjectRefusedError)

    def refused_lists(self) -> set[int]:
        """IDs of the lists the service refused so far."""
        return self._skips.ids("list", ObjectRefusedError)

    def skipped_messages(self) -> set[int]:
        """IDs of the messages skipped so far: refused, or with pages that never ended. Not all
        their rows are in, so the plan does not move for them."""
        return self._skips.ids("message", (ObjectRefusedError, EndlessPagesError))

    def skipped_lists(self) -> set[int]:
        """IDs of the lists skipped so far (as :meth:`skipped_messages`)."""
        return self._skips.ids("list", (ObjectRefusedError, EndlessPagesError))

    def short_counts(self, stream: Stream) -> dict[int, int]:
        """The messages whose ``stream`` rows fell short of their counter, and how many came."""
        return {e.object_id: e.fetched for e in self.short if e.stream == stream.name and e.object_id is not None}

    @property
    def short(self) -> list[ShortOfCounterError]:
        """The messages whose rows fell short of their counters (read again next run)."""
        return self._skips.short

    @property
    def incomplete(self) -> list[EndlessPagesError]:
        """The objects whose pages never ended: the run is incomplete."""
        return self._skips.incomplete


def _check_activity(stream: Stream) -> None:
    if stream not in ACTIVITY_STREAMS:
        raise ValueError(f"{stream.name} is not a per-message activity stream")


def _first_per_key(table: pa.Table, key: str) -> pa.Table:
    """Rows whose ``key`` was not seen in an earlier row (window boundaries can repeat a row)."""
    seen: set[Any] = set()
    keep = []
    for position, value in enumerate(table.column(key).to_pylist()):
        if value not in seen:
            seen.add(value)
            keep.append(position)
    return table if len(keep) == table.num_rows else table.take(pa.array(keep, pa.int64()))


__all__ = [
    "ACTIVITY_STREAMS",
    "ActivityUnit",
    "Extractor",
    "MessageReach",
    "arrow_schema",
    "date_windows",
    "request_params",
]
