"""Per-message events of the synthetic account, generated on demand and independent of the clock.

:func:`generate_events` draws every event a message will ever have (sends, bounces, opens,
reads, clicks, unsubscribes, and the orders behind its conversion counters) as compact tuples
sorted by event time in microseconds since EPOCH. :class:`MessageEvents` turns one stream into
row dicts the first time it is asked for, keeping a parallel list of times so that the caller
can cut the part visible at any clock time with ``bisect``. :class:`MessageSummary` keeps only
the sorted times the activity counters need, so counters as of any clock time cost a few
bisections.

Every event is strictly after the message's SendDate. Per contact, repeat opens, reads and
clicks have strictly increasing times (at least a second apart), so no two events of one stream
of one message are equal in every field.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from listrak_sync.simulator.generate import (
    US,
    ContactList,
    Message,
    People,
    Scale,
    derive_rng,
    event_delay_us,
    from_us,
)

# (dateTime values, string-typed event dates): internal us -> the datetime a row holds.
DateConverters = tuple[Callable[[int], datetime], Callable[[int], datetime]]

EVENT_STREAMS = (
    "message_bounces",
    "message_clicks",
    "message_opens",
    "message_reads",
    "message_sends",
    "message_unsubs",
)

_BOUNCES = (
    ("Hard Bounce", "550 5.1.1 <{email}>: Recipient address rejected: User unknown", False),
    ("Hard Bounce", "550 5.1.2 Host unknown & domain not found", False),
    ("Soft Bounce", "452 4.2.2 Mailbox full; try again later", True),
    ("Soft Bounce", "421 4.7.0 Temporary deferral <too many connections>", True),
    ("Block", "554 5.7.1 Message rejected as spam; see https://postmaster.example.net/?code=7&lang=en", True),
)


@dataclass
class MessageSummary:
    """Sorted event times (us) behind a message's WSMessageActivity counters."""

    sends: int
    bounces: array
    opens: array
    reads: array
    clicks: array
    unsubs: array
    clicker_first: array
    clicker_second: array
    new_clicker_first: array
    orders: array
    order_cents_cumulative: list[int]
    # First open and first read of each contact, for unique counters (filled only when asked for).
    first_opens: array | None = None
    first_reads: array | None = None

    @property
    def size(self) -> int:
        return sum(len(a) for a in (self.bounces, self.opens, self.reads, self.clicks, self.unsubs,
                                    self.clicker_first, self.clicker_second, self.new_clicker_first,
                                    self.orders))

    def counters(self, now_us: int, unique: frozenset[str] = frozenset()) -> dict[str, int | float]:
        """The WSMessageActivity counters as of ``now_us`` (rules in :mod:`.data`'s docstring).

        ``unique`` names the counters (``OpenCount``, ``ReadCount``, ``ClickCount``) that count
        contacts rather than events; ``first_opens``/``first_reads`` must be set for the first two.
        """
        def seen(times: array | None) -> int:
            assert times is not None, "unique counters need first_opens/first_reads"
            return bisect_right(times, now_us)

        delivered = self.sends - seen(self.bounces)
        removes = seen(self.unsubs)
        opens = seen(self.first_opens if "OpenCount" in unique else self.opens)
        reads = seen(self.first_reads if "ReadCount" in unique else self.reads)
        clickers = seen(self.clicker_first)
        conversions = seen(self.orders)
        total = self.order_cents_cumulative[conversions] / 100

        def percent(count: int) -> float:
            return round(100 * count / delivered, 2) if delivered else 0.0

        return {
            "DeliverCount": delivered,
            "RemoveCount": removes,
            "RemovePercent": percent(removes),
            "OpenCount": opens,
            "OpenPercent": percent(opens),
            "ReadCount": reads,
            "ReadPercent": percent(reads),
            "ClickCount": clickers if "ClickCount" in unique else seen(self.clicks),
            "ClickerCount": clickers,
            "RepeatClickerCount": seen(self.clicker_second),
            "NewClickerCount": seen(self.new_clicker_first),
            "ClickerPercent": percent(clickers),
            "OrderTotal": total,
            "ConversionCount": conversions,
            "AverageOrderValue": round(total / conversions, 2) if conversions else 0.0,
        }


@dataclass
class MessageEvents:
    """All events of one message as compact tuples ``(time_us, subscription, ...)``, sorted."""

    recipients: list[int]
    links: tuple[tuple[str, str], ...]
    compact: dict[str, list[tuple]]
    summary: MessageSummary
    _rows: dict[str, tuple[list[dict], array]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Events held, counting materialized rows again (the cache's unit of memory)."""
        events = len(self.recipients) + sum(len(v) for v in self.compact.values())
        return events + sum(len(rows) for rows, _ in self._rows.values())

    def has_rows(self, stream: str) -> bool:
        """Whether ``stream``'s row dicts are already built."""
        return stream in self._rows

    def rows(self, stream: str, lst: ContactList, people: People,
             dates: DateConverters = (from_us, from_us)) -> tuple[list[dict], array]:
        """Row dicts of ``stream`` in event-time order, and their times in us (empty for sends).

        ``dates`` turn internal times into the dateTime values and the string-typed event dates
        the rows hold (the service's wall clock; see :mod:`.wallclock`).
        """
        cached = self._rows.get(stream)
        if cached is None:
            cached = self._rows[stream] = _materialize(stream, self, lst, people, dates)
        return cached


def generate_events(seed: int, scale: Scale, lst: ContactList, msg: Message) -> MessageEvents:
    """Draw every event ``msg`` will ever have (a pure function of its arguments)."""
    rng = derive_rng(seed, "events", msg.msg_id)
    recipients = lst.recipients(msg)
    unsubscribing = {sub for sub, _, _ in msg.unsubs}
    engagement, added = lst.sub_engagement, lst.sub_add_us
    send_s = msg.send_us // US * US
    n_links = len(msg.links)
    bounces: list[tuple] = []
    opens: list[tuple] = []
    reads: list[tuple] = []
    clicks: list[tuple] = []
    clickers: list[tuple[int, int, bool]] = []  # (first click, second click or 0, is new)
    orders: list[tuple[int, int, int]] = []  # (time, cents, subscription)
    rand = rng.random  # int(rand() * n) below: twice as fast as randrange on this hot path

    def millis() -> int:
        f = rand()
        return (1 + int(f * 8325)) * 1000 if f < 0.12 else 0

    p_bounce = scale.bounce_rate
    p_open = (1 - p_bounce) * scale.open_rate
    read_rate, repeat_open_rate = scale.read_rate, scale.repeat_open_rate
    click_rate, repeat_click_rate = scale.click_rate, scale.repeat_click_rate
    n_reasons = len(_BOUNCES)
    for sub in recipients:
        u = rand()
        if u < p_bounce and sub not in unsubscribing:
            reason = int(rand() * n_reasons)
            delay = 1 + int(rand() * 1800) if rand() < 0.9 else 1800 + int(rand() * 3 * 86400)
            count = 1 + int(rand() * 4) if _BOUNCES[reason][2] else 1
            bounces.append((send_s + delay * US + millis(), sub, reason, count))
            continue
        if u >= p_bounce + p_open * engagement[sub]:
            continue
        open_s = send_s + event_delay_us(rng)
        open_times, last_read = [], 0
        while True:
            open_times.append(open_s)
            opens.append((open_s + millis(), sub))
            if rand() < read_rate:
                last_read = max(open_s + (2 + int(rand() * 240)) * US, last_read + US)
                reads.append((last_read + millis(), sub))
            if rand() >= repeat_open_rate:
                break
            open_s += (1 + int(rng.expovariate(1 / 21600))) * US
        if rand() >= click_rate * min(2.0, engagement[sub]):
            continue
        force_repeat = not clickers  # every message with clicks has one contact clicking a link twice
        link = int(rand() * n_links)
        click_s = open_times[int(rand() * len(open_times))] + (3 + int(rand() * 900)) * US
        times = [click_s]
        clicks.append((click_s + millis(), sub, link))
        while force_repeat or rand() < repeat_click_rate:
            if not force_repeat:
                link = int(rand() * n_links)
            force_repeat = False
            click_s += (1 + int(rng.expovariate(1 / 7200))) * US
            times.append(click_s)
            clicks.append((click_s + millis(), sub, link))
        is_new = added[sub] > msg.prev_regular_send_us
        clickers.append((times[0], times[1] if len(times) > 1 else 0, is_new))
        if rand() < scale.conversion_rate:
            order_s = times[0] + (60 + int(rand() * 2 * 86400)) * US
            orders.append((order_s, int(rng.lognormvariate(8.3, 0.7)), sub))
    unsubs = sorted((removal, sub, method) for sub, removal, method in msg.unsubs)
    for events in (bounces, opens, reads, clicks):
        events.sort()
    orders.sort()
    cumulative = [0]
    for _, cents, _ in orders:
        cumulative.append(cumulative[-1] + cents)
    summary = MessageSummary(
        sends=len(recipients),
        bounces=_times(bounces),
        opens=_times(opens),
        reads=_times(reads),
        clicks=_times(clicks),
        unsubs=_times(unsubs),
        clicker_first=array("q", sorted(c[0] for c in clickers)),
        clicker_second=array("q", sorted(c[1] for c in clickers if c[1])),
        new_clicker_first=array("q", sorted(c[0] for c in clickers if c[2])),
        orders=_times(orders),
        order_cents_cumulative=cumulative,
    )
    compact = {
        "orders": orders,  # not a stream: the REST activity's per-contact orderTotal reads it
        "message_bounces": bounces,
        "message_clicks": clicks,
        "message_opens": opens,
        "message_reads": reads,
        "message_unsubs": unsubs,
    }
    return MessageEvents(recipients, msg.links, compact, summary)


def _times(events: list[tuple]) -> array:
    return array("q", [e[0] for e in events])


def first_times(events: list[tuple]) -> array:
    """Times of each contact's first event among time-sorted ``(time, subscription, ...)`` tuples."""
    seen: set[int] = set()
    firsts = array("q")
    for event in events:
        if event[1] not in seen:
            seen.add(event[1])
            firsts.append(event[0])
    return firsts


def refresh_summary(events: MessageEvents) -> None:
    """Recompute the summary's open and read times after events were added to ``compact``."""
    events.summary.opens = _times(events.compact["message_opens"])
    events.summary.reads = _times(events.compact["message_reads"])


def _materialize(stream: str, events: MessageEvents, lst: ContactList, people: People,
                 dates: DateConverters) -> tuple[list[dict], array]:
    person, ids, emails = lst.sub_person, people.contact_ids, people.emails
    if stream == "message_sends":
        return [{"EmailAddress": emails[person[s]]} for s in events.recipients], array("q")
    compact = events.compact[stream]
    times = _times(compact)
    date_time, dt = dates  # dt: string-typed event dates (OpenDate, ...)
    rows: list[dict]
    if stream == "message_opens":
        rows = [{"ContactID": ids[person[s]], "EmailAddress": emails[person[s]], "OpenDate": dt(t)}
                for t, s in compact]
    elif stream == "message_reads":
        rows = [{"ContactID": ids[person[s]], "EmailAddress": emails[person[s]], "ReadDate": dt(t)}
                for t, s in compact]
    elif stream == "message_clicks":
        msg_links = events.links
        rows = [{"ContactID": ids[person[s]], "EmailAddress": emails[person[s]],
                 "LinkDescription": msg_links[k][0], "LinkUrl": msg_links[k][1], "ClickDate": dt(t)}
                for t, s, k in compact]
    elif stream == "message_bounces":
        rows = []
        for t, s, reason, count in compact:
            email = emails[person[s]]
            kind, detail, _ = _BOUNCES[reason]
            rows.append({"ContactID": ids[person[s]], "EmailAddress": email, "BounceReason": kind,
                         "BounceDetail": detail.format(email=email), "BounceDate": dt(t),
                         "BounceCount": count})
    elif stream == "message_unsubs":
        added = lst.sub_add_us
        rows = [{"ContactID": ids[person[s]], "EmailAddress": emails[person[s]],
                 "AdditionDate": date_time(added[s]), "RemovalDate": date_time(t), "RemovalMethod": method}
                for t, s, method in compact]
    else:
        raise KeyError(f"{stream!r} is not a message event stream")
    return rows, times

