"""The incremental plan: per (stream, message), fetch or not, and why; and the contract it keeps.

Adapters do not call this module: they ask :class:`listrak_sync.engine.sync.SyncEngine`, which
turns these decisions into work units. Every instant here is an aware UTC ``datetime``
(:mod:`listrak_sync.time`).

**The contract of an incremental run** (docs/incremental.md), with ``L = lookback_hours``:

- ``lists``, ``messages`` and ``subscribed_contacts`` are re-read and replaced whole every run:
  always exact. A message that vanished (deleted, or its list withdrawn or refused) loses its
  activity rows in the same load (a delete marker per message, :data:`DELETED_COLUMN`).
- A message's activity stream is re-read whole, replacing that message's rows, when: it is new
  to the plan; it was sent less than ``L`` ago; its counter differs from the one read at its
  last fetch; its counter moved less than ``L`` before its last fetch (events counted but not
  yet visible then); its list's periodic recheck is due (every ``full_recheck_days``);
  ``trust_counters`` is off. ``message_sends`` has no counter: re-read while younger than
  ``max(send_settle_hours, L)`` and at the recheck.
- So what may lag, and until the list's next recheck (at most ``full_recheck_days``): an event
  that moves no counter (a repeat open or read when the counters count contacts) on a message
  older than ``L``, and an event that becomes visible more than ``L`` after its counter moved
  (or, for the first load of a message, after the load, when nothing else happened on that
  message in the ``L`` before it).
- A counter is only trusted for events up to the request end of the fetch that recorded it:
  counters are read before, and activity requests end after, so nothing counted is left out.

**The plan** is keyed per list, so that a run over some lists can keep the others' plan; dlt
keeps it in its source state under ``plan``, the tap packed in STATE (:mod:`.state`)::

    {"version": 2,
     "streams": {"message_opens": {"start": "2020-01-01T00:00:00+00:00"}, ...},
     "lists": {"12": {"checked": {"message_opens": 1718000000, ...},
                      "messages": {"812": {"message_opens": [counter, moved_at, fetched_at]}},
                      "reach": [...]}},            # :mod:`.reach`
     "pages": {"ReportRangeMessageContactOpen": [2500, 1718000000]}}   # SyncEngine.page_sizes

Times in the per-message entries are epoch seconds (compact); ``moved_at`` 0 means "no movement
known".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from listrak_sync.streams import STREAMS, Stream
from listrak_sync.time import utc

PLAN_VERSION = 2
# Rows with this column true delete every row of their MsgID in a merge and are never stored.
DELETED_COLUMN = "_dlt_deleted"
# The message columns a plan reads: list, key, send date, and every stream's counter.
PLAN_COLUMNS = ("ListID", "MsgID", "SendDate", *sorted({s.counter for s in STREAMS if s.counter}))


@dataclass(frozen=True)
class StreamMode:
    """Whether one stream is replaced whole this run, or merged per message, and why."""

    full: bool
    reason: str


@dataclass(frozen=True)
class RunMode:
    """The run's mode as the summary shows it: full when every loaded stream is replaced."""

    full: bool
    reason: str


def stream_modes(
    plan: Mapping[str, Any],
    streams: Iterable[Stream],
    *,
    start: datetime,
    full_refresh: bool,
    full_refresh_reason: str | None = None,
) -> dict[str, StreamMode]:
    """Decide per activity stream between replacing its table and merging what changed.

    Args:
        plan: the plan left by the last completed load (empty on the first run).
        streams: the activity streams this run loads.
        start: the start date as an instant.
        full_refresh: replace every table (``--full-refresh``, or a destination that cannot merge).
        full_refresh_reason: why ``full_refresh`` is forced, if not the user's request.

    Returns:
        Stream name to mode.
    """
    modes: dict[str, StreamMode] = {}
    known = plan.get("streams", {}) if plan.get("version") == PLAN_VERSION else {}
    for stream in streams:
        entry = known.get(stream.name)
        if full_refresh:
            modes[stream.name] = StreamMode(True, full_refresh_reason or "full refresh requested")
        elif not entry:
            modes[stream.name] = StreamMode(True, "first run")
        elif entry.get("start") != start.isoformat():
            modes[stream.name] = StreamMode(True, "the start date changed")
        else:
            modes[stream.name] = StreamMode(False, "incremental")
    return modes


def run_mode(modes: Mapping[str, StreamMode]) -> RunMode:
    """One line for the summary: ``incremental`` or ``full refresh: <reason>``."""
    full = [m for m in modes.values() if m.full]
    if modes and len(full) == len(modes):
        return RunMode(True, full[0].reason)
    if full:
        names = ", ".join(sorted(n for n, m in modes.items() if m.full))
        return RunMode(False, f"incremental ({names} replaced: {full[0].reason})")
    return RunMode(False, "incremental")


def current_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """``plan``, emptied in place first if another plan version wrote it (its entries mean
    something else)."""
    if plan.get("version") != PLAN_VERSION:
        plan.clear()
        plan.update(version=PLAN_VERSION, streams={}, lists={})
    return plan


def _epoch(moment: datetime) -> int:
    return math.floor(utc(moment).timestamp())


class Planner:
    """Decides per (stream, message) whether to fetch, and records what was fetched.

    Args:
        plan: the plan state; mutated in place (see the module docstring for its shape).
        messages: this run's message rows (:data:`PLAN_COLUMNS`), read before any activity.
        modes: each activity stream's mode this run.
        now: when the counters were read (aware).
        start: the start date as an instant (kept per stream).
        lookback_hours: the horizon ``L`` of the contract.
        send_settle_hours: age after which a message's recipients are final.
        full_recheck_days: days between a list's rechecks (0: every run).
        trust_counters: skip a message's stream while its counter stands still.
        known_messages: message ID to list ID of the messages the destination holds now: any
            of them this run no longer lists, within ``lists``, has vanished (the plan alone
            may not know them, e.g. after another shard's or another pipeline's load).
        lists: the lists of a list shard (default: every list; the run owns the whole dataset).
        refused_lists: lists the service refused this run: their messages are not listed, but
            not gone either, so they keep their rows and their plan.
    """

    def __init__(
        self,
        plan: dict[str, Any],
        messages: Iterable[Mapping[str, Any]],
        *,
        modes: Mapping[str, StreamMode],
        now: datetime,
        start: datetime,
        lookback_hours: float,
        send_settle_hours: float,
        full_recheck_days: float,
        trust_counters: bool = True,
        known_messages: Mapping[int, int] | None = None,
        lists: Iterable[int] | None = None,
        refused_lists: Iterable[int] = (),
    ) -> None:
        self.plan = current_plan(plan)
        self.refused_lists = set(refused_lists)
        self.modes = dict(modes)
        self.now = _epoch(now)
        self.start = start.isoformat()
        self.lookback = lookback_hours * 3600
        self.settle = max(send_settle_hours * 3600, self.lookback)
        self.recheck = full_recheck_days * 86400
        self.trust_counters = trust_counters
        self.rows: dict[int, Mapping[str, Any]] = {int(r["MsgID"]): r for r in messages}
        self.list_of = {msg_id: int(row["ListID"]) for msg_id, row in self.rows.items()}
        self.shard = set(lists) if lists is not None else None
        self.known_messages = dict(known_messages or {})
        for name, mode in self.modes.items():
            if mode.full:  # a replaced table forgets what the plan knew about it
                for entry in self.plan["lists"].values():
                    entry.get("checked", {}).pop(name, None)
                    for seen in entry.get("messages", {}).values():
                        seen.pop(name, None)

    # -- decisions ---------------------------------------------------------------------------------

    def rechecked_lists(self, stream: Stream) -> set[int]:
        """Lists whose every message is re-read for ``stream`` this run (periodic recheck)."""
        due = set()
        for list_id in set(self.list_of.values()):
            checked = self._list(list_id).get("checked", {}).get(stream.name)
            if checked is None or self.recheck <= 0 or self.now - checked >= self.recheck:
                due.add(list_id)
        return due

    def reasons(self, stream: Stream) -> dict[int, str]:
        """Each message whose ``stream`` rows must be fetched this run (in send order), and why."""
        if self.modes[stream.name].full:
            return dict.fromkeys(self.rows, self.modes[stream.name].reason)
        rechecked = self.rechecked_lists(stream)
        found: dict[int, str] = {}
        for msg_id in self.rows:
            # The message's own reason first: a recheck fetches at the counter it shows, but a
            # message the plan does not know (or whose counter moved) says more than that.
            reason = self._needs(stream, msg_id) or ("list recheck due" if self.list_of[msg_id] in rechecked else None)
            if reason:
                found[msg_id] = reason
        return found

    def last_fetch(self, stream: Stream, msg_id: int) -> datetime | None:
        """When ``stream`` was last fetched for the message, if the plan knows."""
        seen = self._seen(stream, msg_id)
        return None if seen is None else datetime.fromtimestamp(seen[2], timezone.utc)

    def _seen(self, stream: Stream, msg_id: int) -> list[int] | None:
        entry = self._list(self.list_of[msg_id]).get("messages", {}).get(str(msg_id), {})
        seen: list[int] | None = entry.get(stream.name)
        return seen

    def _needs(self, stream: Stream, msg_id: int) -> str | None:
        row = self.rows[msg_id]
        seen = self._seen(stream, msg_id)
        if seen is None:
            return "new to the plan"
        if not self.trust_counters:
            return "counters not trusted"
        counter, moved_at, fetched_at = seen
        sent = _epoch(row["SendDate"])
        if stream.counter is None:
            return "recipients not yet final" if self.now - sent < self.settle else None
        if self.now - sent < self.lookback:
            return "sent within the lookback"
        if counter != row[stream.counter]:
            return "counter moved"
        # Counted before the last fetch, but perhaps not yet visible to it.
        if moved_at and fetched_at - moved_at < self.lookback:
            return "counter moved shortly before the last fetch"
        return None

    def vanished(self) -> list[int]:
        """Messages the plan or the destination knows that this run no longer lists (their rows go),
        but those of lists refused this run."""
        known = {int(k): int(list_key) for list_key, entry in self.plan["lists"].items()
                 for k in entry.get("messages", {})}
        known.update(self.known_messages)
        return sorted(m for m, list_id in known.items() if m not in self.rows and list_id not in self.refused_lists
                      and (self.shard is None or list_id in self.shard))

    # -- records -----------------------------------------------------------------------------------

    def record(self, stream: Stream, msg_ids: Iterable[int], latest_event: Mapping[int, datetime],
               short: Mapping[int, int] | None = None) -> None:
        """Remember that ``stream`` was fetched for ``msg_ids`` with this run's counters.

        Args:
            stream: the activity stream.
            msg_ids: messages fetched completely (not refused).
            latest_event: per message, the newest event date among the fetched rows.
            short: messages whose rows fell short of their counter, and how many came: recorded
                at that count, below the counter, so the next run reads them again.
        """
        for msg_id in msg_ids:
            row = self.rows[msg_id]
            entry = self._list(self.list_of[msg_id], create=True).setdefault("messages", {})
            seen = entry.setdefault(str(msg_id), {})
            counter = row[stream.counter] if stream.counter else 0
            if short and msg_id in short:
                counter = short[msg_id]
            previous = seen.get(stream.name)
            if previous is None:
                # First sight: the counter's history is unknown. Recent activity means events
                # may still be in flight, so the message stays "moved" for one more horizon.
                latest = latest_event.get(msg_id) or row["SendDate"]
                moved_at = self.now if counter and self.now - _epoch(latest) < self.lookback else 0
            else:
                moved_at = self.now if previous[0] != counter else previous[1]
            seen[stream.name] = [counter, moved_at, self.now]

    def finish(self, stream: Stream, refused_messages: set[int], refused_lists: set[int], *,
               stamp_rechecks: bool = True) -> None:
        """Close one stream's part of the plan once its rows are all handed over.

        Vanished messages and lists lose this stream's entries (their rows were deleted in the
        same load); lists that were rechecked in full, and not refused, are stamped.

        Args:
            stream: the activity stream that is done.
            refused_messages: messages the service refused this run (no recheck counted).
            refused_lists: lists the service refused this run.
            stamp_rechecks: stamp the lists rechecked in full (not after a repair of some messages).
        """
        current = set(self.list_of.values())
        lists = self.plan["lists"]
        for list_key in [k for k in lists if int(k) not in self.refused_lists]:
            entry = lists[list_key]
            messages = entry.get("messages", {})
            for key in [k for k in messages if int(k) not in self.rows]:
                messages[key].pop(stream.name, None)
                if not messages[key]:
                    del messages[key]
            if int(list_key) not in current:
                entry.get("checked", {}).pop(stream.name, None)
                if not messages and not entry.get("checked") and not entry.get("reach"):
                    del lists[list_key]
        due = set() if not stamp_rechecks else current if self.modes[stream.name].full else \
            self.rechecked_lists(stream)
        blocked = refused_lists | {self.list_of[m] for m in refused_messages if m in self.list_of}
        for list_id in due - blocked:
            self._list(list_id, create=True).setdefault("checked", {})[stream.name] = self.now
        self.plan["streams"][stream.name] = {"start": self.start}

    def _list(self, list_id: int, create: bool = False) -> dict[str, Any]:
        lists = self.plan["lists"]
        if create:
            return lists.setdefault(str(list_id), {})
        return lists.get(str(list_id), {})


__all__ = [
    "DELETED_COLUMN",
    "PLAN_COLUMNS",
    "PLAN_VERSION",
    "Planner",
    "RunMode",
    "StreamMode",
    "current_plan",
    "run_mode",
    "stream_modes",
]
