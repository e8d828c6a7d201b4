"""The simulator's synthetic Listrak account on a virtual clock.

An :class:`Account` is a pure function of ``(seed, scale)``; the clock (:attr:`Account.now`)
only decides what is visible: lists created, messages sent, events that happened, contacts
subscribed and not yet removed, all at or before ``now``. Data exists from :data:`EPOCH` to a
year after :data:`DEFAULT_NOW`, so moving the clock forward shows new subscribers, new
messages, and late events on old messages (reaction delays have a long tail up to ~30 days).

Rules the data follows (tests and ground truth rely on them):

- Recipients of a message are the list's subscriptions with AdditionDate <= SendDate, minus
  contacts who unsubscribed through an earlier message of the list (even if their RemovalDate
  is later). Test messages go to the first three of those and have no unsubscribes.
- Every event is strictly after its message's SendDate. A bounced recipient has no opens,
  reads or clicks for that message; an unsubscriber never bounces on that message. Reads
  follow opens and clicks follow the first open. A contact who unsubscribes through message M
  has RemovalDate after M's SendDate and leaves ``subscribed_contacts`` once ``now`` >=
  RemovalDate; its AdditionDate in the unsubscribe row is its subscription date.
- Counters of a message (WSMessageActivity) count the events visible at ``now``:
  DeliverCount = sends - bounces; OpenCount, ReadCount, ClickCount, RemoveCount = the number
  of open, read, click, unsubscribe events; ClickerCount = distinct clickers;
  RepeatClickerCount = clickers with more than one click; NewClickerCount = clickers whose
  subscription is newer than the list's previous non-test message (this is the first
  message they were sent); each XPercent = round(100 * X / DeliverCount, 2), 0 if nothing
  was delivered (ClickerPercent uses ClickerCount). Orders follow some clicks:
  ConversionCount = orders so far, OrderTotal = their sum (cents exact),
  AverageOrderValue = round(OrderTotal / ConversionCount, 2), or 0.
- Dates are naive; most have whole seconds, some whole milliseconds.

Rows are plain dicts keyed by the column names of :mod:`listrak_sync.streams`, shared with the
account's caches: treat them as read-only. Events are generated per message on demand and kept
in a least-recently-used cache bounded by a number of rows, so a large account is served
without ever holding all its events. The caches are thread-safe (a race only repeats
deterministic work); moving the clock while another thread queries is the caller's to order.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, overload

from listrak_sync.errors import ConfigError
from listrak_sync.simulator.events import EVENT_STREAMS, MessageEvents, MessageSummary, generate_events
from listrak_sync.simulator.generate import (
    DEFAULT_NOW,
    EPOCH,
    HORIZON,
    SCALES,
    ContactList,
    Message,
    Scale,
    build_account,
    from_us,
    to_us,
)
from listrak_sync.streams import STREAM_NAMES, get_stream

__all__ = ["DEFAULT_NOW", "EPOCH", "EVENT_STREAMS", "HORIZON", "SCALES", "Account", "Scale"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class RowsView(Sequence[dict]):
    """A read-only window ``rows[start:stop]`` of a cached row list, without copying it."""

    __slots__ = ("_rows", "_start", "_stop")

    def __init__(self, rows: list[dict], start: int = 0, stop: int | None = None) -> None:
        self._rows, self._start = rows, start
        self._stop = len(rows) if stop is None else max(start, stop)

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, index: int) -> dict: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict]: ...
    def __getitem__(self, index: int | slice) -> dict | list[dict]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return self._rows[self._start + start:self._start + stop:step]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._rows[self._start + index]

    def __iter__(self) -> Iterator[dict]:
        for i in range(self._start, self._stop):
            yield self._rows[i]

    def __repr__(self) -> str:
        return f"RowsView({len(self)} rows)"


class _SizedLRU(Generic[_K, _V]):
    """Least-recently-used cache bounded by the total ``size`` of its entries."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[_K, tuple[_V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _K) -> _V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: _K, value: _V, size: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= old[1]
            self._entries[key] = (value, size)
            self.used += size
            # The newest entry stays even when it alone is over budget.
            while self.used > self.budget and len(self._entries) > 1:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.used -= evicted


class Account:
    """A deterministic synthetic Listrak account on a virtual clock.

    Args:
        seed: any int; the same seed and scale give the same account in every process.
        scale: a name from :data:`SCALES` or an explicit :class:`Scale`.
        now: the initial clock time (naive); :data:`DEFAULT_NOW` if omitted.
        cache_rows: how many event rows (compact or as dicts) the per-message cache may hold.

    Raises:
        ConfigError: ``scale`` names no known scale.
    """

    def __init__(self, seed: int = 1, scale: str | Scale = "small", now: datetime | None = None,
                 cache_rows: int = 2_000_000) -> None:
        if isinstance(scale, str):
            if scale not in SCALES:
                raise ConfigError(f"Unknown simulator scale {scale!r}; choose one of {', '.join(SCALES)}.")
            scale = SCALES[scale]
        self.seed = seed
        self.scale = scale
        data = build_account(seed, scale)
        self._lists: list[ContactList] = data.lists
        self._lists_by_id = {lst.list_id: lst for lst in data.lists}
        self._people = data.people
        self._messages_by_id: dict[int, Message] = data.messages_by_id
        self._events: _SizedLRU[int, MessageEvents] = _SizedLRU(cache_rows)
        self._summaries: _SizedLRU[int, MessageSummary] = _SizedLRU(4 * cache_rows)
        self._subscribed: _SizedLRU[tuple[int, int, int, int], list[dict]] = _SizedLRU(64)
        self._now = now or DEFAULT_NOW
        self._now_us = to_us(self._now)

    # -- clock ---------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The virtual clock: nothing dated after it exists yet."""
        return self._now

    def set_now(self, now: datetime) -> None:
        """Move the clock to ``now`` (forward, or back for tests)."""
        self._now, self._now_us = now, to_us(now)

    def advance(self, days: float) -> None:
        """Move the clock forward by ``days`` (fractions allowed)."""
        self.set_now(self._now + timedelta(days=days))

    @property
    def cached_rows(self) -> int:
        """Event rows currently held by the per-message cache (bounded by ``cache_rows``)."""
        return self._events.used

    # -- lists and messages --------------------------------------------------------------

    def list_ids(self) -> list[int]:
        """IDs of the lists that exist at ``now``, in creation-index order."""
        return [lst.list_id for lst in self._lists if lst.create_us <= self._now_us]

    def lists(self) -> list[dict]:
        """WSContactList rows of the lists that exist at ``now``."""
        return [lst.row for lst in self._lists if lst.create_us <= self._now_us]

    def messages(self, list_id: int, start: datetime, end: datetime,
                 include_test: bool = True) -> list[dict]:
        """WSMessageActivity rows with SendDate in [start, end] and <= now, counters as of now.

        Returns an empty list for an unknown list.
        """
        lst = self._lists_by_id.get(list_id)
        if lst is None:
            return []
        lo = bisect_left(lst.send_us, to_us(start))
        hi = bisect_right(lst.send_us, min(to_us(end), self._now_us))
        return [self._message_row(msg) for msg in lst.messages[lo:hi] if include_test or not msg.is_test]

    def message_list_id(self, msg_id: int) -> int | None:
        """The list of message ``msg_id``, or None if no such message has been sent by ``now``."""
        msg = self._messages_by_id.get(msg_id)
        if msg is None or msg.send_us > self._now_us:
            return None
        return self._lists[msg.list_index].list_id

    def _message_row(self, msg: Message) -> dict[str, Any]:
        row: dict[str, Any] = {
            "ListID": self._lists[msg.list_index].list_id,
            "MsgID": msg.msg_id,
            "Subject": msg.subject,
            "SendDate": from_us(msg.send_us),
        }
        row.update(self._summary(msg).counters(self._now_us))
        return row

    # -- events --------------------------------------------------------------------------

    def events(self, stream: str, msg_id: int, start: datetime | None = None,
               end: datetime | None = None) -> Sequence[dict]:
        """Rows of a message event stream visible at ``now`` with cursor date in [start, end].

        ``message_sends`` ignores the dates: every recipient of a sent message. Rows come in a
        stable order (event time, then generation order); empty for a message not sent by now.

        Raises:
            KeyError: ``stream`` is not one of :data:`EVENT_STREAMS`.
        """
        if stream not in EVENT_STREAMS:
            raise KeyError(f"{stream!r} is not a message event stream")
        msg = self._messages_by_id.get(msg_id)
        if msg is None or msg.send_us > self._now_us:
            return RowsView([])
        events = self._message_events(msg)
        if not events.has_rows(stream):
            events.rows(stream, self._lists[msg.list_index], self._people)
            self._events.put(msg.msg_id, events, events.size)  # re-weigh: rows now take memory
        rows, times = events.rows(stream, self._lists[msg.list_index], self._people)
        if stream == "message_sends":
            return RowsView(rows)
        lo = 0 if start is None else bisect_left(times, to_us(start))
        top = self._now_us if end is None else min(self._now_us, to_us(end))
        return RowsView(rows, lo, bisect_right(times, top))

    def _message_events(self, msg: Message) -> MessageEvents:
        events = self._events.get(msg.msg_id)
        if events is None:
            events = generate_events(self.seed, self.scale, self._lists[msg.list_index], msg)
            self._events.put(msg.msg_id, events, events.size)
        return events

    def _summary(self, msg: Message) -> MessageSummary:
        summary = self._summaries.get(msg.msg_id)
        if summary is None:
            summary = self._message_events(msg).summary
            self._summaries.put(msg.msg_id, summary, summary.size)
        return summary

    # -- contacts ------------------------------------------------------------------------

    def subscribed_contacts(self, list_id: int, start: datetime, end: datetime) -> Sequence[dict]:
        """WSContactSubscriptionInfo rows of contacts subscribed at ``now``, AdditionDate in [start, end].

        Ordered by AdditionDate (then a fixed order); empty for an unknown list.
        """
        lst = self._lists_by_id.get(list_id)
        if lst is None:
            return RowsView([])
        start_us, end_us, now_us = to_us(start), min(to_us(end), self._now_us), self._now_us
        key = (list_id, start_us, end_us, now_us)
        rows = self._subscribed.get(key)
        if rows is None:
            lo, hi = bisect_left(lst.sub_add_us, start_us), bisect_right(lst.sub_add_us, end_us)
            removal = lst.sub_removal_us
            rows = [lst.sub_rows[s] for s in range(lo, hi) if removal[s] > now_us]
            self._subscribed.put(key, rows, 1)
        return RowsView(rows)

    # -- ground truth --------------------------------------------------------------------

    def ground_truth(self, table: str, start_date: datetime,
                     list_ids: Iterable[int] | None = None) -> list[dict]:
        """The rows a correct connector's ``table`` holds after a full run from ``start_date``.

        Args:
            table: one of the nine stream names.
            start_date: the connector's start date; filters messages (SendDate) and
                subscribed contacts (AdditionDate), not lists.
            list_ids: the lists the API user may see; None means all.

        Returns:
            Rows keyed by ``Stream.table_columns`` (the stamped MsgID/ListID included).

        Raises:
            KeyError: ``table`` is not a stream name.
        """
        get_stream(table)  # raises KeyError for an unknown table
        allowed = self._allowed_lists(list_ids)
        if table == "lists":
            return [dict(lst.row) for lst in allowed]
        if table == "subscribed_contacts":
            return [{"ListID": lst.list_id, **row} for lst in allowed
                    for row in self.subscribed_contacts(lst.list_id, start_date, self._now)]
        messages = [msg for lst in allowed for msg in self._sent_since(lst, start_date)]
        if table == "messages":
            return [self._message_row(msg) for msg in messages]
        return [{"MsgID": msg.msg_id, **row} for msg in messages for row in self.events(table, msg.msg_id)]

    def expected_tables(self, start_date: datetime,
                        list_ids: Iterable[int] | None = None) -> dict[str, list[dict]]:
        """:meth:`ground_truth` of all nine tables, keyed by table name."""
        ids = None if list_ids is None else list(list_ids)
        return {name: self.ground_truth(name, start_date, ids) for name in STREAM_NAMES}

    def _allowed_lists(self, list_ids: Iterable[int] | None) -> list[ContactList]:
        visible = [lst for lst in self._lists if lst.create_us <= self._now_us]
        if list_ids is None:
            return visible
        wanted = set(list_ids)
        return [lst for lst in visible if lst.list_id in wanted]

    def _sent_since(self, lst: ContactList, start_date: datetime) -> list[Message]:
        lo = bisect_left(lst.send_us, to_us(start_date))
        return lst.messages[lo:bisect_right(lst.send_us, self._now_us)]
