"""One send of a message to one contact, and the REST rows and totals built from sends.

A :class:`Send` holds every event that send will ever have, as internal times (us since
EPOCH), whatever the clock; :func:`activity_item` and :func:`totals` cut what is visible at
a clock time. List messages get their sends from the SOAP events (:mod:`.world`), so both APIs
tell one story; conversation and transactional messages get generated ones (:mod:`.extras`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ABUSE_METHOD = "Spam Complaint"


@dataclass
class Send:
    """Everything that happens to one send (times in internal us, sorted)."""

    send_us: int
    sub: int  # the subscription (index into the list's subscriptions)
    opens: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    clicks: list[int] = field(default_factory=list)
    bounce: tuple[int, str] | None = None  # (time, reason)
    unsub: tuple[int, str] | None = None  # (time, method)
    orders: list[tuple[int, int]] = field(default_factory=list)  # (time, cents)
    resend_key: str | None = None

    def first_activity(self, top_us: int) -> int | None:
        """The first event at or before ``top_us`` (None: none yet)."""
        times = [t for t in (self.opens[:1] + self.reads[:1] + self.clicks[:1]) if t <= top_us]
        for event in (self.bounce, self.unsub):
            if event is not None and event[0] <= top_us:
                times.append(event[0])
        return min(times) if times else None


@dataclass(frozen=True)
class Contact:
    """What a row needs to know about the contact of a send."""

    email: str
    external_id: str | None


def _seen(times: Iterable[int], top_us: int) -> int:
    return sum(1 for t in times if t <= top_us)


def activity_item(send: Send, contact: Contact, top_us: int, now_us: int, wall: Callable[[int], datetime],
                  text: Callable[[Any], Any], transactional: bool = False) -> dict[str, Any]:
    """The MessageActivity (or TransactionalMessageActivity) item of ``send``.

    Events count once visible (at or before ``top_us``: the clock minus the profile's event
    delay); orders at once (``now_us``), as the SOAP counters do. ``text`` turns an unset
    string into what the profile writes.
    """
    first = send.first_activity(top_us)
    bounced = send.bounce is not None and send.bounce[0] <= top_us
    unsubscribed = send.unsub is not None and send.unsub[0] <= top_us
    cents = sum(c for t, c in send.orders if t <= now_us)
    item: dict[str, Any] = {
        "abuse": unsubscribed and send.unsub is not None and send.unsub[1] == ABUSE_METHOD,
        "activityDate": None if first is None else wall(first),
        "bounce": bounced,
        "bounceReason": text(send.bounce[1] if bounced and send.bounce else None),
        "click": _seen(send.clicks, top_us) > 0,
        "clickCount": _seen(send.clicks, top_us),
        "emailAddress": contact.email,
        "open": _seen(send.opens, top_us) > 0,
        "orderTotal": cents / 100,
        "read": _seen(send.reads, top_us) > 0,
        "sendDate": wall(send.send_us),
        "unsubscribe": unsubscribed,
        "visitDate": None,
        "externalContactID": text(contact.external_id),
    }
    if transactional:
        item["resendKey"] = text(send.resend_key)
    return item


def totals(sends: Iterable[Send], now_us: int) -> dict[str, Any]:
    """MessageSummary totals of generated sends at ``now_us``: unique opens, reads, bounces and
    unsubscribes (per send), every click, every order (REST.md §10.11's default)."""
    counts = dict.fromkeys(("bounce", "click", "open", "read", "sent", "unsub", "visit", "orders"), 0)
    cents = 0
    for send in sends:
        if send.send_us > now_us:
            continue
        counts["sent"] += 1
        counts["open"] += bool(send.opens and send.opens[0] <= now_us)
        counts["read"] += bool(send.reads and send.reads[0] <= now_us)
        clicks = _seen(send.clicks, now_us)
        counts["click"] += clicks
        counts["visit"] += clicks > 0
        counts["bounce"] += send.bounce is not None and send.bounce[0] <= now_us
        counts["unsub"] += send.unsub is not None and send.unsub[0] <= now_us
        for t, c in send.orders:
            if t <= now_us:
                counts["orders"] += 1
                cents += c
    return summary_item(counts["bounce"], counts["click"], counts["orders"], counts["open"], counts["read"],
                        cents, counts["sent"], counts["unsub"], counts["visit"])


def summary_item(bounces: int, clicks: int, conversions: int, opens: int, reads: int, cents: int, sent: int,
                 unsubs: int, visits: int) -> dict[str, Any]:
    """A MessageSummary item in model order (revenue from whole cents)."""
    revenue = cents / 100
    return {
        "averageOrderValue": round(revenue / conversions, 2) if conversions else 0.0,
        "bounceCount": bounces,
        "clickCount": clicks,
        "conversionCount": conversions,
        "openCount": opens,
        "passAlongCount": 0,
        "readCount": reads,
        "revenue": revenue,
        "sentCount": sent,
        "unsubscribeCount": unsubs,
        "visitCount": visits,
    }
