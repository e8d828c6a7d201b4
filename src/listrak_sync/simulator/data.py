"""The simulator's synthetic Listrak account on a virtual clock.

An :class:`Account` is a pure function of ``(seed, scale, profile)``; the clock (:attr:`Account.now`)
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

The rules above describe the friendly :class:`~.profile.Profile`. Other profiles change what
is visible and how it looks, always consistently between the query methods and
:meth:`Account.ground_truth` (see :mod:`.profile`, :mod:`.mutations`, :mod:`.wallclock`):
rows hold dates on the service's wall clock (and string-typed event dates cut to whole seconds
in the US format); date arguments of the query methods are wall times, their bounds follow
``range_bounds``; events appear ``event_delay_hours`` after their time (counters count them at
once); OpenCount/ReadCount/ClickCount may count contacts instead of events; deleted messages,
a withdrawn list, and resubscribed contacts come and go with the clock.

Rows are plain dicts keyed by the column names of :mod:`listrak_sync.streams`, shared with the
account's caches: treat them as read-only. Events are generated per message on demand and kept
in a least-recently-used cache bounded by a number of rows, so a large account is served
without ever holding all its events. The caches are thread-safe (a race only repeats
deterministic work); moving the clock while another thread queries is the caller's to order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from listrak_sync.errors import ConfigError
from listrak_sync.simulator.cache import RowsView, SizedLRU
from listrak_sync.simulator.events import EVENT_STREAMS, MessageEvents, MessageSummary, generate_events
from listrak_sync.simulator.generate import (
    DEFAULT_NOW,
    EPOCH,
    HORIZON,
    HOUR,
    SCALES,
    ContactList,
    Message,
    Scale,
    build_account,
    to_us,
)
from listrak_sync.simulator.mutations import plan_changes, shape_events
from listrak_sync.simulator.profile import Profile
from listrak_sync.simulator.wallclock import WallClock
from listrak_sync.streams import STREAM_NAMES, get_stream

__all__ = ["DEFAULT_NOW", "EPOCH", "EVENT_STREAMS", "HORIZON", "SCALES", "Account", "Profile", "RowsView", "Scale"]


class Account:
    """A deterministic synthetic Listrak account on a virtual clock.

    Args:
        seed: any int; the same seed and scale give the same account in every process.
        scale: a name from :data:`SCALES` or an explicit :class:`Scale`.
        now: the initial clock time (naive, internal); :data:`DEFAULT_NOW` if omitted.
        cache_rows: how many event rows (compact or as dicts) the per-message cache may hold.
        profile: which variant of each uncertain fact to play; :meth:`Profile.friendly` if omitted.

    Raises:
        ConfigError: ``scale`` names no known scale.
    """

    def __init__(self, seed: int = 1, scale: str | Scale = "small", now: datetime | None = None,
                 cache_rows: int = 2_000_000, profile: Profile | None = None) -> None:
        if isinstance(scale, str):
            if scale not in SCALES:
                raise ConfigError(f"Unknown simulator scale {scale!r}; choose one of {', '.join(SCALES)}.")
            scale = SCALES[scale]
        self.seed = seed
        self.scale = scale
        self.profile = profile or Profile.friendly()
        data = build_account(seed, scale)
        self.changes = plan_changes(seed, data, self.profile)
        self.clock = WallClock(self.profile.service_timezone, self.profile.event_date_format)
        self._dates = (self.clock.wall_converter(), self.clock.wall_converter(string_date=True))
        flags = (("OpenCount", self.profile.unique_open_count), ("ReadCount", self.profile.unique_read_count),
                 ("ClickCount", self.profile.unique_click_count))
        self._unique = frozenset(name for name, on in flags if on)
        self._delay_us = round(self.profile.event_delay_hours * HOUR)
        self._lists: list[ContactList] = data.lists
        self._lists_by_id = {lst.list_id: lst for lst in data.lists}
        self._people = data.people
        self._messages_by_id: dict[int, Message] = data.messages_by_id
        self._list_rows = {lst.list_id: self._wall_row(lst.row, CreateDate=lst.create_us) for lst in data.lists}
        self._sub_rows = {lst.list_id: self._sub_rows_of(lst) for lst in data.lists}
        self._events: SizedLRU[int, MessageEvents] = SizedLRU(cache_rows)
        self._summaries: SizedLRU[int, MessageSummary] = SizedLRU(4 * cache_rows)
        self._subscribed: SizedLRU[tuple[int, int, int, int], list[dict]] = SizedLRU(64)
        self._now = now or DEFAULT_NOW
        self._now_us = to_us(self._now)

    def _wall_row(self, row: dict, **dates: int) -> dict:
        if self.clock.utc:
            return row
        return {**row, **{name: self.clock.wall(us) for name, us in dates.items()}}

    def _sub_rows_of(self, lst: ContactList) -> list[dict]:
        return [self._wall_row(row, AdditionDate=added) for row, added in zip(lst.sub_rows, lst.sub_add_us,
                                                                              strict=True)]

    # -- clock ---------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The virtual clock (internal time): nothing dated after it exists yet."""
        return self._now

    @property
    def service_now(self) -> datetime:
        """The clock as the service's wall clock shows it (equal to :attr:`now` in UTC)."""
        return self.clock.wall(self._now_us)

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

    def _window(self, start: datetime | None, end: datetime | None) -> tuple[int, int]:
        """Internal [low, high] times (inclusive) of a request's wall-time StartDate/EndDate."""
        bounds = self.profile.range_bounds
        low = -(2**62) if start is None else self.clock.internal_us(start) + (bounds == "exclusive")
        high = 2**62 if end is None else self.clock.internal_us(end) - (bounds != "inclusive")
        return low, high

    # -- lists and messages --------------------------------------------------------------

    def _visible(self, lst: ContactList) -> bool:
        return lst.create_us <= self._now_us and not self.changes.withdrawn(lst.list_id, self._now_us)

    def list_ids(self) -> list[int]:
        """IDs of the lists the API user has at ``now``, in creation-index order."""
        return [lst.list_id for lst in self._lists if self._visible(lst)]

    def lists(self) -> list[dict]:
        """WSContactList rows of the lists the API user has at ``now``."""
        return [self._list_rows[lst.list_id] for lst in self._lists if self._visible(lst)]

    def messages(self, list_id: int, start: datetime, end: datetime,
                 include_test: bool = True) -> list[dict]:
        """WSMessageActivity rows with SendDate in [start, end] and <= now, counters as of now.

        ``start`` and ``end`` are service wall times; which of them is included follows the
        profile's ``range_bounds`` (both, in the friendly profile). Deleted messages are left
        out; an unknown or withdrawn list gives an empty list.
        """
        lst = self._lists_by_id.get(list_id)
        if lst is None or self.changes.withdrawn(list_id, self._now_us):
            return []
        low, high = self._window(start, end)
        lo = bisect_left(lst.send_us, low)
        hi = bisect_right(lst.send_us, min(high, self._now_us))
        return [self._message_row(msg) for msg in lst.messages[lo:hi]
                if (include_test or not msg.is_test) and not self.changes.deleted(msg.msg_id, self._now_us)]

    def message_list_id(self, msg_id: int) -> int | None:
        """The list of message ``msg_id``, or None if it was not sent by ``now`` or its list is withdrawn."""
        msg = self._messages_by_id.get(msg_id)
        if msg is None or msg.send_us > self._now_us:
            return None
        list_id = self._lists[msg.list_index].list_id
        return None if self.changes.withdrawn(list_id, self._now_us) else list_id

    def _message_row(self, msg: Message) -> dict[str, Any]:
        row: dict[str, Any] = {
            "ListID": self._lists[msg.list_index].list_id,
            "MsgID": msg.msg_id,
            "Subject": msg.subject,
            "SendDate": self._dates[0](msg.send_us),
        }
        row.update(self._summary(msg).counters(self._now_us, self._unique))
        return row

    # -- events --------------------------------------------------------------------------

    def events(self, stream: str, msg_id: int, start: datetime | None = None,
               end: datetime | None = None) -> Sequence[dict]:
        """Rows of a message event stream visible at ``now`` with cursor date in [start, end].

        Dates and bounds as for :meth:`messages` (None: unbounded); an event is visible from
        ``event_delay_hours`` after its time. ``message_sends`` ignores the dates: every
        recipient of a sent message. Rows come in a stable order (event time, then generation
        order); empty for a message not sent by now, deleted, or of a withdrawn list.

        Raises:
            KeyError: ``stream`` is not one of :data:`EVENT_STREAMS`.
        """
        if stream not in EVENT_STREAMS:
            raise KeyError(f"{stream!r} is not a message event stream")
        msg = self._messages_by_id.get(msg_id)
        if msg is None or self.message_list_id(msg_id) is None or self.changes.deleted(msg_id, self._now_us):
            return RowsView([])
        lst = self._lists[msg.list_index]
        events = self._message_events(msg)
        if not events.has_rows(stream):
            events.rows(stream, lst, self._people, self._dates)
            self._events.put(msg.msg_id, events, events.size)  # re-weigh: rows now take memory
        rows, times = events.rows(stream, lst, self._people, self._dates)
        if stream == "message_sends":
            return RowsView(rows)
        low, high = self._window(start, end)
        top = min(high, self._now_us - self._delay_us)
        return RowsView(rows, bisect_left(times, low), bisect_right(times, top))

    def _message_events(self, msg: Message) -> MessageEvents:
        events = self._events.get(msg.msg_id)
        if events is None:
            events = generate_events(self.seed, self.scale, self._lists[msg.list_index], msg)
            shape_events(self.seed, self.scale, events, msg, self.profile)
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

        Dates and bounds as for :meth:`messages`. Ordered by AdditionDate (then a fixed order);
        empty for an unknown or withdrawn list.
        """
        lst = self._lists_by_id.get(list_id)
        if lst is None or self.changes.withdrawn(list_id, self._now_us):
            return RowsView([])
        low, high = self._window(start, end)
        return RowsView(self._subscribed_rows(lst, low, min(high, self._now_us)))

    def _subscribed_rows(self, lst: ContactList, low: int, high: int) -> list[dict]:
        now_us = self._now_us
        key = (lst.list_id, low, high, now_us)
        rows = self._subscribed.get(key)
        if rows is not None:
            return rows
        lo, hi = bisect_left(lst.sub_add_us, low), bisect_right(lst.sub_add_us, high)
        removal, source = lst.sub_removal_us, self._sub_rows[lst.list_id]
        comebacks = self.changes.resubscribed.get(lst.list_id)
        if not comebacks:
            rows = [source[s] for s in range(lo, hi) if removal[s] > now_us]
        elif self.profile.resubscribe_addition_date == "original":
            back = lst.sub_resub_us
            rows = [source[s] for s in range(lo, hi) if removal[s] > now_us or back[s] <= now_us]
        else:  # a resubscribed contact is listed under the date it came back
            added = lst.sub_add_us
            dated = [(added[s], s, source[s]) for s in range(lo, hi) if removal[s] > now_us]
            dated += [(time, sub, {**source[sub], "AdditionDate": self.clock.wall(time)})
                      for time, sub in comebacks if low <= time <= high]
            rows = [row for _, _, row in sorted(dated, key=lambda item: item[:2])]
        self._subscribed.put(key, rows, 1)
        return rows

    # -- ground truth --------------------------------------------------------------------

    def ground_truth(self, table: str, start_date: datetime,
                     list_ids: Iterable[int] | None = None) -> list[dict]:
        """The rows a correct connector's ``table`` holds after a full run from ``start_date``.

        What a perfect client reading everything visible at ``now`` holds, under the profile:
        values exactly as the service writes them (wall-clock dates), deleted messages and
        withdrawn lists gone, events only once they are visible, resubscribed contacts back.

        Args:
            table: one of the nine stream names.
            start_date: the connector's start date, a service wall time; filters messages
                (SendDate) and subscribed contacts (AdditionDate) inclusively, not lists.
            list_ids: the lists the API user may see; None means all.

        Returns:
            Rows keyed by ``Stream.table_columns`` (the stamped MsgID/ListID included).

        Raises:
            KeyError: ``table`` is not a stream name.
        """
        get_stream(table)  # raises KeyError for an unknown table
        allowed = self._allowed_lists(list_ids)
        start_us = self.clock.internal_us(start_date)
        if table == "lists":
            return [dict(self._list_rows[lst.list_id]) for lst in allowed]
        if table == "subscribed_contacts":
            return [{"ListID": lst.list_id, **row} for lst in allowed
                    for row in self._subscribed_rows(lst, start_us, self._now_us)]
        messages = [msg for lst in allowed for msg in self._sent_since(lst, start_us)]
        if table == "messages":
            return [self._message_row(msg) for msg in messages]
        return [{"MsgID": msg.msg_id, **row} for msg in messages for row in self.events(table, msg.msg_id)]

    def rest_ground_truth(self, table: str, start_date: datetime) -> list[dict]:
        """The rows a correct client's REST ``table`` holds after a full run from ``start_date``.

        Keyed by ``get_stream(table).table_columns``; conventions in :mod:`.rest.truth`.

        Raises:
            KeyError: ``table`` is not a REST stream.
        """
        from listrak_sync.simulator.rest.truth import rest_ground_truth

        return rest_ground_truth(self.rest_world, table, start_date)

    @property
    def rest_world(self) -> Any:
        """The REST view of this account (built on first use; :mod:`.rest.world`)."""
        world = self.__dict__.get("_rest_world")
        if world is None:
            from listrak_sync.simulator.rest.profile import RestProfile
            from listrak_sync.simulator.rest.world import RestWorld

            world = self._rest_world = RestWorld(self, RestProfile.for_profile(self.profile))
        return world

    def expected_tables(self, start_date: datetime,
                        list_ids: Iterable[int] | None = None) -> dict[str, list[dict]]:
        """:meth:`ground_truth` of all nine tables, keyed by table name."""
        ids = None if list_ids is None else list(list_ids)
        return {name: self.ground_truth(name, start_date, ids) for name in STREAM_NAMES}

    def _allowed_lists(self, list_ids: Iterable[int] | None) -> list[ContactList]:
        visible = [lst for lst in self._lists if self._visible(lst)]
        if list_ids is None:
            return visible
        wanted = set(list_ids)
        return [lst for lst in visible if lst.list_id in wanted]

    def _sent_since(self, lst: ContactList, start_us: int) -> list[Message]:
        lo = bisect_left(lst.send_us, start_us)
        sent = lst.messages[lo:bisect_right(lst.send_us, self._now_us)]
        return [msg for msg in sent if not self.changes.deleted(msg.msg_id, self._now_us)]
