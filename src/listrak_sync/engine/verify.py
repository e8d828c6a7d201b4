"""Verification: the destination's rows against the service's own counters, per message.

Every ``messages`` row carries the service's totals. :func:`compare` holds each message's
activity rows in the destination against them, within the incremental contract
(docs/incremental.md, docs/verify.md):

- A **check** ties one counter to what the destination can count for a message: its rows in
  a table, or its distinct contacts (``EmailAddress``). ``DeliverCount`` is checked as
  ``message_sends`` minus ``message_bounces``. The checks are the cells of one table
  (:data:`~listrak_sync.engine.verify_sources.CORRESPONDENCES`): the SOAP counters and, with
  REST credentials, the REST summaries and the REST activity rows as second sources.
- A counter has two plausible **readings** (docs/listrak-api.md §12.17): it counts events (the
  rows) or unique contacts. Unless a setting pins one, the reading is the one the account's
  settled messages fit (:func:`infer_reading`); where both fit equally, either value agrees;
  where neither fits most messages, the counter cannot prove anything and is not checked.
- A message the next run fetches anyway (its counter moved since its last fetch, it was sent
  within the lookback, its counter moved shortly before that fetch, it is new to the plan, or
  the stream is replaced next run) is **behind** when it disagrees: allowed by the contract.
  A message the plan says was fetched at the counter it shows now, and whose rows still
  disagree, is **off**: the only outcome that makes ``verify`` fail.
- Rows of a message the service no longer lists are held against 0: behind when the next run
  removes them (the plan or the ``messages`` table knows the message), off otherwise.
- A REST source's disagreement is excused as the SOAP counters' is (the rows are re-read next
  run); the loaded REST activity also when it may itself trail the service (``rest_pending``).

Pure: no I/O. The adapter reads the messages (one ``messages`` read), the destination's counts
(one GROUP BY per table) and the plan, and hands them here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from listrak_sync.engine.plan import Planner, stream_modes
from listrak_sync.engine.verify_sources import (
    CHECKS,
    COUNTERS,
    EVENTS,
    REST_ACTIVITY,
    REST_CHECKS,
    SOAP_COUNTERS,
    UNIQUE,
    Check,
    parse_readings,
)
from listrak_sync.streams import STREAMS_BY_NAME

BOTH, NEITHER = "both", "neither"
AGREES, BEHIND, OFF, UNCHECKED = "agrees", "behind", "off", "not checked"
# Reasons the next run fetches a message whose rows may trail its counter (Planner.reasons);
# a list recheck does not excuse a disagreement: those rows were fetched at this counter.
_REFETCH_EXCUSES = ("new to the plan", "sent within the lookback", "counter moved",
                    "counter moved shortly before the last fetch", "recipients not yet final")

# Per table in the destination, per message: (rows, distinct contacts).
Counts = Mapping[str, Mapping[int, tuple[int, int]]]
# Per REST source, per message: its values (SUMMARY_COLUMNS or ACTIVITY_COLUMNS).
RestValues = Mapping[str, Mapping[int, Mapping[str, int]]]


@dataclass(frozen=True)
class Reading:
    """Which reading a counter's data fits, over the messages the next run does not re-read.

    Attributes:
        counter: the counter.
        fits: ``events``, ``unique``, ``both`` or ``neither`` (``unknown``: nothing settled).
        used: the reading the checks apply (``events``, ``unique``, ``both``: either value
            agrees, or ``neither``: not checked).
        pinned: set by ``counter_reading`` rather than inferred.
        settled: messages that took part.
        events_fit: of them, how many the events reading fits.
        unique_fit: how many the unique reading fits.
    """

    counter: str
    fits: str
    used: str
    pinned: bool
    settled: int
    events_fit: int
    unique_fit: int


def infer_reading(counter: str, pairs: Sequence[tuple[int, int, int]], pinned: str | None = None) -> Reading:
    """The reading of ``counter`` from ``(counter, events value, unique value)`` of settled messages.

    A reading fits when it explains at least half of them; the one explaining more wins, and
    equal counts mean both fit (the data cannot tell them apart, e.g. one unsubscribe per
    contact). A few damaged messages do not flip the reading.
    """
    events_fit = sum(1 for value, by_events, _ in pairs if by_events == value)
    unique_fit = sum(1 for value, _, by_unique in pairs if by_unique == value)
    settled = len(pairs)
    if not settled:
        fits = "unknown"
    elif max(events_fit, unique_fit) * 2 < settled:
        fits = NEITHER
    elif events_fit == unique_fit:
        fits = BOTH
    else:
        fits = EVENTS if events_fit > unique_fit else UNIQUE
    used = pinned or (BOTH if fits == "unknown" else fits)
    return Reading(counter, fits, used, pinned is not None, settled, events_fit, unique_fit)


@dataclass(frozen=True)
class MessageCheck:
    """One message against one check (a row of the history table)."""

    list_id: int
    msg_id: int
    subject: str | None
    counter: str
    table: str
    reading: str
    counter_value: int
    rows: int
    contacts: int
    difference: int
    status: str
    reason: str
    source: str = SOAP_COUNTERS  # what the rows are held against (verify_sources.SOURCES)


@dataclass
class Verification:
    """What :func:`compare` found."""

    results: list[MessageCheck] = field(default_factory=list)
    readings: dict[str, Reading] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)  # check name -> why not checked

    def with_status(self, status: str) -> list[MessageCheck]:
        return [r for r in self.results if r.status == status]

    @property
    def off(self) -> list[MessageCheck]:
        return self.with_status(OFF)

    @property
    def ok(self) -> bool:
        """Every difference is within the contract."""
        return not self.off

    def repair_units(self) -> set[tuple[str, int]]:
        """``(table, MsgID)`` of every off message, both tables of a two-table check."""
        checks = {(c.source, c.label, c.table): c for c in CHECKS + REST_CHECKS}
        units = set()
        for result in self.off:
            check = checks.get((result.source, result.counter, result.table))
            for table in check.tables if check else (result.table,):
                units.add((table, result.msg_id))
        return units

    def as_dict(self) -> dict[str, Any]:
        messages = {(r.list_id, r.msg_id) for r in self.results if r.status != UNCHECKED}
        return {
            "ok": self.ok,
            "messages_checked": len(messages),
            "checks": len(self.results),
            "counts": {s: len(self.with_status(s)) for s in (AGREES, BEHIND, OFF, UNCHECKED)},
            "sources": {source: {s: sum(1 for r in self.results if r.source == source and r.status == s)
                                 for s in (AGREES, BEHIND, OFF, UNCHECKED)}
                        for source in dict.fromkeys(r.source for r in self.results)},
            "readings": {k: asdict(v) for k, v in sorted(self.readings.items())},
            "unchecked": self.unchecked,
            "off": [asdict(r) for r in worst(self.off, limit=None)],
            "behind": [asdict(r) for r in worst(self.with_status(BEHIND), limit=None)],
        }


def worst(results: Iterable[MessageCheck], limit: int | None = 10) -> list[MessageCheck]:
    """Largest differences first (then by table and message, so the order is stable)."""
    ranked = sorted(results, key=lambda r: (-abs(r.difference), r.table, r.counter, r.msg_id))
    return ranked if limit is None else ranked[:limit]


def pending_fetches(
    plan: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    *,
    tables: Iterable[str],
    now: datetime,
    start: datetime,
    lookback_hours: float,
    send_settle_hours: float,
) -> dict[str, dict[int, str]]:
    """Per table, the messages the next run re-reads whose rows may trail their counter, and why.

    The engine's own :class:`~listrak_sync.engine.plan.Planner` decides, on a copy of the plan,
    without the periodic recheck (a recheck re-reads rows that were complete at their fetch).
    """
    streams = [STREAMS_BY_NAME[t] for t in tables]
    plan_copy = copy.deepcopy(dict(plan))
    modes = stream_modes(plan_copy, streams, start=start, full_refresh=False)
    planner = Planner(plan_copy, messages, modes=modes, now=now, start=start, lookback_hours=lookback_hours,
                      send_settle_hours=send_settle_hours, full_recheck_days=math.inf)
    pending: dict[str, dict[int, str]] = {}
    for stream in streams:
        mode = modes[stream.name]
        reasons = planner.reasons(stream)
        pending[stream.name] = {m: r for m, r in reasons.items() if mode.full or r in _REFETCH_EXCUSES}
    return pending


def compare(
    messages: Sequence[Mapping[str, Any]],
    counts: Counts,
    pending: Mapping[str, Mapping[int, str]],
    *,
    pinned: Mapping[str, str] | None = None,
    vanished: Mapping[int, int] | None = None,
    rest: RestValues | None = None,
    rest_pending: Mapping[int, str] | None = None,
) -> Verification:
    """Hold the destination's counts against the fresh counters (and, given ``rest``, the REST values).

    Args:
        messages: this read's message rows (``ListID``, ``MsgID``, ``Subject`` and the counters).
        counts: per table in the destination, per message, (rows, distinct contacts); a table
            missing here is not replicated, and its checks are skipped.
        pending: :func:`pending_fetches`.
        pinned: counter to reading, from the ``counter_reading`` setting.
        vanished: message to list of the messages the next run removes (the plan's and the
            ``messages`` table's, no longer listed).
        rest: per REST source (``message_summaries``, ``message_activity``), per message, its
            values; None: no REST credentials, no REST check. A source missing here was not read.
        rest_pending: messages whose loaded REST activity may trail the service, and why
            (:func:`~listrak_sync.engine.verify_rest.activity_pending`).

    Returns:
        Every message's result per check, and each counter's reading.
    """
    pinned = dict(pinned or {})
    vanished = dict(vanished or {})
    found = Verification()
    listed = {int(m["MsgID"]) for m in messages}
    sources: dict[str, Mapping[int, Mapping[str, int]]] = {}
    if rest is not None:
        sources = dict(rest)
    for check in CHECKS + (REST_CHECKS if rest is not None else ()):
        missing = [t for t in check.tables if t not in counts]
        if check.source != SOAP_COUNTERS and check.source not in sources:
            missing.append(check.source)
        if missing:
            found.unchecked[check.name] = f"{', '.join(missing)} not replicated"
            continue

        def value_of(row: Mapping[str, Any], check: Check = check) -> int | None:
            if check.source == SOAP_COUNTERS:
                return int(row[check.counter])
            values = sources[check.source].get(int(row["MsgID"]))
            return None if values is None else int(values[check.counter])

        def excuse(msg_id: int, check: Check = check) -> str:
            rows_due = next((pending.get(t, {}).get(msg_id, "") for t in check.tables
                             if pending.get(t, {}).get(msg_id)), "")
            if rows_due or check.source != REST_ACTIVITY:
                return rows_due
            return (rest_pending or {}).get(msg_id, "")

        values = [(m, value_of(m), *_values(check, counts, int(m["MsgID"]))) for m in messages]
        if check.reading is not None:
            used = check.reading
        else:
            settled = [(v, e, u) for m, v, e, u in values if v is not None and not excuse(int(m["MsgID"]))]
            reading = found.readings[check.counter] = infer_reading(check.counter, settled,
                                                                    pinned.get(check.counter))
            used = reading.used
            if used == NEITHER:
                found.unchecked[check.name] = (f"{check.counter} fits neither reading ({reading.events_fit} events, "
                                               f"{reading.unique_fit} unique of {reading.settled}); pin "
                                               "counter_reading")
        for row, value, by_events, by_unique in values:
            msg_id = int(row["MsgID"])
            if value is None:
                found.results.append(MessageCheck(
                    int(row["ListID"]), msg_id, row.get("Subject"), check.label, check.table, used, 0, by_events,
                    by_unique, 0, UNCHECKED, f"no {check.source} row for this message", check.source))
                continue
            found.results.append(_judge(check, used, int(row["ListID"]), msg_id, row.get("Subject"),
                                        value, by_events, by_unique, excuse(msg_id)))
        if check.source != SOAP_COUNTERS:
            continue  # rows of unlisted messages are the SOAP counters' checks to judge
        orphans = sorted({m for t in check.tables for m in counts[t]} - listed)
        for msg_id in orphans:
            by_events, by_unique = _values(check, counts, msg_id)
            removed = msg_id in vanished
            why = ("vanished: the next run removes its rows" if removed
                   else "rows of a message the service does not list")
            found.results.append(_judge(check, used, vanished.get(msg_id, 0), msg_id, None, 0, by_events,
                                        by_unique, why if removed else "", orphan_reason=why))
    return found


def _values(check: Check, counts: Counts, msg_id: int) -> tuple[int, int]:
    rows, contacts = counts[check.table].get(msg_id, (0, 0))[:2]
    if check.minus is not None:
        minus_rows, minus_contacts = counts[check.minus].get(msg_id, (0, 0))[:2]
        rows, contacts = rows - minus_rows, contacts - minus_contacts
    return rows, contacts


def _judge(check: Check, reading: str, list_id: int, msg_id: int, subject: str | None, value: int,
           by_events: int, by_unique: int, excuse: str, orphan_reason: str = "") -> MessageCheck:
    candidates = {EVENTS: [by_events], UNIQUE: [by_unique], BOTH: [by_events, by_unique],
                  NEITHER: [by_events, by_unique]}[reading]
    difference = min((c - value for c in candidates), key=abs)
    if reading == NEITHER:
        status, reason = UNCHECKED, f"{check.counter} fits neither reading"
    elif difference == 0:
        status, reason = AGREES, ""
    elif excuse:
        status, reason = BEHIND, excuse
    else:
        status = OFF
        more = "more" if difference > 0 else "fewer"
        reason = orphan_reason or (f"fetched at this {check.counter}, yet {more}" if check.source == SOAP_COUNTERS
                                   else f"the rows are settled, yet hold {more} than {check.source} says")
    return MessageCheck(list_id, msg_id, subject, check.label, check.table, reading, value, by_events, by_unique,
                        difference, status, reason, check.source)


__all__ = [
    "AGREES",
    "BEHIND",
    "CHECKS",
    "COUNTERS",
    "REST_CHECKS",
    "OFF",
    "UNCHECKED",
    "Check",
    "MessageCheck",
    "Reading",
    "Verification",
    "compare",
    "infer_reading",
    "parse_readings",
    "pending_fetches",
    "worst",
]
