"""What ``verify`` holds the SOAP event tables against: one table of correspondences.

A **source** is a second count of a message's events that the service gives:

- ``messages``: the SOAP ``messages`` counters (``OpenCount``, ...), read fresh.
- ``message_summaries``: the REST summary of the message (``openCount``, ...), read fresh,
  one ``/Summary`` request per message (REST.md §4.6).
- ``message_activity``: the REST activity rows the last run loaded, one per recipient with
  flags and ``clickCount`` (REST.md §4.5), aggregated per message.

:data:`CORRESPONDENCES` says, per SOAP table, which value of each source counts its rows
(REST.md §6). Every :class:`Check` is one cell of it; nothing else names a metric. A fresh
counter's reading (events or unique contacts) is uncertain (REST.md §10.11) and is inferred or
pinned by ``counter_reading``, the same for either API (REST counters by their own names, so
``openCount`` and ``OpenCount`` are read apart). An activity aggregate's reading is fixed by
what it adds up: a flag counts contacts, ``clickCount`` adds up clicks.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

EVENTS, UNIQUE, AUTO = "events", "unique", "auto"
READINGS = (EVENTS, UNIQUE)
SOAP_COUNTERS, REST_SUMMARY, REST_ACTIVITY = "messages", "message_summaries", "message_activity"
SOURCES = (SOAP_COUNTERS, REST_SUMMARY, REST_ACTIVITY)
REST_SOURCES = (REST_SUMMARY, REST_ACTIVITY)

# Per SOAP table (minus a table subtracted): the value of each source that should equal its
# rows or contacts. A counter name is a column of that source (fresh, its reading inferred);
# an activity value is (column or "*", reading fixed), summed per message: a flag counts the
# contacts it is true for, clickCount the clicks, "*" the recipients.
#   SOAP rows                           messages          message_summaries   message_activity
CORRESPONDENCES: tuple[tuple[str, str | None, str | None, str | None, tuple[str, str] | None], ...] = (
    ("message_bounces", None,            None,            "bounceCount",      ("bounce", UNIQUE)),
    ("message_clicks", None,             "ClickCount",    "clickCount",       ("clickCount", EVENTS)),
    ("message_clicks", None,             "ClickerCount",  None,               ("click", UNIQUE)),
    ("message_opens", None,              "OpenCount",     "openCount",        ("open", UNIQUE)),
    ("message_reads", None,              "ReadCount",     "readCount",        ("read", UNIQUE)),
    ("message_sends", None,              None,            "sentCount",        ("*", UNIQUE)),
    # Deliveries are sends that did not bounce (docs/listrak-api.md §5.5).
    ("message_sends", "message_bounces", "DeliverCount",  None,               None),
    ("message_unsubs", None,             "RemoveCount",   "unsubscribeCount", ("unsubscribe", UNIQUE)),
)


@dataclass(frozen=True)
class Check:
    """One cell of :data:`CORRESPONDENCES`: a source's value against a SOAP table, per message.

    Attributes:
        counter: the source's column (``OpenCount``, ``openCount``, ``open``, ``*``).
        table: the SOAP table counted.
        minus: a table whose count is subtracted (``DeliverCount`` = sends - bounces).
        source: :data:`SOURCES`.
        reading: fixed by definition (activity aggregates), or None: inferred or pinned.
    """

    counter: str
    table: str
    minus: str | None = None
    source: str = SOAP_COUNTERS
    reading: str | None = None

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table,) if self.minus is None else (self.table, self.minus)

    @property
    def label(self) -> str:
        """The source's value as a user reads it: ``OpenCount``, ``openCount``, ``count(open)``."""
        if self.source != REST_ACTIVITY:
            return self.counter
        return {"*": "count(*)", "clickCount": "sum(clickCount)"}.get(self.counter, f"count({self.counter})")

    @property
    def name(self) -> str:
        rows = self.table if self.minus is None else f"{self.table}-{self.minus}"
        return f"{rows}.{self.counter}" if self.source == SOAP_COUNTERS else f"{rows}.{self.source}.{self.label}"


def _checks(source: str) -> tuple[Check, ...]:
    column = SOURCES.index(source) + 2
    checks = []
    for row in CORRESPONDENCES:
        cell = row[column]
        if isinstance(cell, tuple):
            checks.append(Check(cell[0], row[0], row[1], source, cell[1]))
        elif cell:
            checks.append(Check(cell, row[0], row[1], source))
    return tuple(sorted(checks, key=lambda c: (c.table, c.counter)))


CHECKS: tuple[Check, ...] = _checks(SOAP_COUNTERS)
REST_CHECKS: tuple[Check, ...] = _checks(REST_SUMMARY) + _checks(REST_ACTIVITY)
COUNTERS: tuple[str, ...] = tuple(sorted({c.counter for c in CHECKS + REST_CHECKS if c.reading is None}))
SUMMARY_COLUMNS: tuple[str, ...] = tuple(c.counter for c in REST_CHECKS if c.source == REST_SUMMARY)
ACTIVITY_COLUMNS: tuple[str, ...] = tuple(c.counter for c in REST_CHECKS if c.source == REST_ACTIVITY)


def parse_readings(value: str | Mapping[str, str] | None) -> dict[str, str]:
    """The ``counter_reading`` setting: ``auto``, ``events``, ``unique``, or ``Counter=reading`` pairs.

    Counters are named as their API names them: ``OpenCount`` (SOAP), ``openCount`` (REST).

    Returns:
        Counter to pinned reading (only the pinned ones).

    Raises:
        ValueError: an unknown counter or reading (the message names the valid ones).
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        text = value.strip()
        if text in (AUTO, ""):
            return {}
        if text in READINGS:
            return dict.fromkeys(COUNTERS, text)
        items = [(part.partition("=")[0], part.partition("=")[2]) for part in text.split(",")]
    pinned = {}
    for counter, reading in items:
        counter, reading = str(counter).strip(), str(reading).strip()
        if counter not in COUNTERS:
            raise ValueError(f"unknown counter {counter!r} (valid: {', '.join(COUNTERS)})")
        if reading not in (*READINGS, AUTO):
            raise ValueError(f"unknown reading {reading!r} for {counter} (valid: events, unique, auto)")
        if reading != AUTO:
            pinned[counter] = reading
    return pinned


def activity_pending(
    rest_plan: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    start: datetime,
    lookback_hours: float,
    full_recheck_days: float,
    zone: str,
) -> dict[int, str]:
    """Messages whose loaded REST activity may trail the service, and why.

    The REST plan (:mod:`listrak_sync.engine.rest_plan`) re-reads a message's activity when it
    is new, sent within the lookback, or its list's recheck is due; between rechecks the loaded
    rows of older messages stand still, within the contract. So the loaded activity is held to
    the rows only where the last REST run read it: its list was rechecked then, or the message
    was within the lookback of that run.

    Args:
        rest_plan: the REST plan of the last complete load (empty: never loaded).
        messages: this read's message rows (``ListID``, ``MsgID``, ``SendDate``).
        now: the REST service's clock (aware).
        start, lookback_hours, full_recheck_days, zone: the run's settings.
    """
    from listrak_sync.engine.rest_plan import RestPlanner  # the REST side's plan
    from listrak_sync.streams import get_stream

    if not rest_plan.get("lists"):
        return {int(m["MsgID"]): "no REST run has loaded message_activity" for m in messages}
    planner = RestPlanner(copy.deepcopy(dict(rest_plan)), start=start, now=now, lookback_hours=lookback_hours,
                          full_recheck_days=full_recheck_days, zone=zone)
    planner.begin({int(m["ListID"]) for m in messages})
    read_at = rest_plan.get("read_at")
    lookback = lookback_hours * 3600
    stream = get_stream("rest_messages")
    pending = {}
    for row in messages:
        list_id, msg_id, sent = int(row["ListID"]), int(row["MsgID"]), row.get("SendDate")
        due = planner.message_due(list_id, stream, {"messageId": msg_id, "sendDate": sent})
        if due:
            pending[msg_id] = f"REST activity re-read next run: {due}"
            continue
        checked = rest_plan["lists"].get(str(list_id), {}).get("checked")
        recent = isinstance(sent, datetime) and read_at is not None and read_at - sent.timestamp() < lookback
        if checked != read_at and not recent:
            pending[msg_id] = "REST activity read before the last run: re-read at the list's recheck"
    return pending


__all__ = ["ACTIVITY_COLUMNS", "CHECKS", "CORRESPONDENCES", "COUNTERS", "REST_ACTIVITY", "REST_CHECKS", "REST_SOURCES",
           "REST_SUMMARY", "SOAP_COUNTERS", "SOURCES", "SUMMARY_COLUMNS", "Check", "activity_pending", "parse_readings"]
