"""Incremental planning: which messages' activity a run must fetch, and which it may skip.

The result of every run is still the full table; the plan only avoids calls whose answer
cannot have changed. It rests on these assumptions about Listrak, each with a way out:

1. **Counters move with events.** ``WSMessageActivity`` is re-read for every message on every
   run (one call per list and date window), and a message's opens, reads, clicks, unsubscribes
   or bounces are re-fetched only when its ``OpenCount``, ``ReadCount``, ``ClickCount``,
   ``RemoveCount`` or ``DeliverCount`` (sends minus bounces) moved since the run that last
   fetched them (the stream table's ``Stream.counter``). Off: ``trust_counters=False``.
2. **A send finishes.** Recipients (``message_sends``) and everything else are fetched on every
   run while a message is younger than ``send_settle_hours``; after that its recipient list is
   taken as final. Set ``send_settle_hours`` high to keep re-reading.
3. **Anything else** (a counter that does not move for some kind of event, an event Listrak
   reports very late without touching counters) is caught by a periodic full refresh every
   ``full_recheck_days`` (0: every run is a full refresh), and by ``--full-refresh``.

A changed message's stream is re-fetched whole and replaces that message's rows (dlt merge on
``MsgID``), so a late event can never be doubled or lost at a window boundary.

The plan's memory is a small JSON-able dict kept in dlt's source state, which dlt commits in
the same load as the rows: a run that dies leaves the previous state with the previous rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from listrak_sync.streams import STREAMS, Stream

STATE_VERSION = 1
SETTLED = "settled"
# The message columns a plan reads: the key, the send date, and every stream's counter.
PLAN_COLUMNS = ("MsgID", "SendDate", *sorted({s.counter for s in STREAMS if s.counter}))


@dataclass(frozen=True)
class RunMode:
    """Whether this run replaces everything or merges what changed, and why."""

    full: bool
    reason: str


def choose_mode(
    state: Mapping[str, Any],
    *,
    start_date: datetime,
    list_ids: Sequence[int],
    now: datetime,
    full_refresh: bool,
    full_recheck_days: float,
) -> RunMode:
    """Decide between a full refresh and an incremental run.

    Args:
        state: the plan state left by the last successful run (empty on the first).
        start_date: this run's start date.
        list_ids: the lists this run replicates.
        now: the current time (UTC, naive).
        full_refresh: the user asked for a full refresh.
        full_recheck_days: days between periodic full refreshes; 0 means always.

    Returns:
        The mode, with a reason for the logs.
    """
    if full_refresh:
        return RunMode(True, "full refresh requested")
    if not state or state.get("version") != STATE_VERSION:
        return RunMode(True, "first run")
    if state.get("start_date") != start_date.isoformat():
        return RunMode(True, "the start date changed")
    if sorted(state.get("list_ids", [])) != sorted(list_ids):
        return RunMode(True, "the set of lists changed")
    last_full = datetime.fromisoformat(state.get("last_full_refresh", "1970-01-01T00:00:00"))
    if full_recheck_days <= 0 or now - last_full >= timedelta(days=full_recheck_days):
        return RunMode(True, f"periodic full re-check (every {full_recheck_days:g} days)")
    return RunMode(False, "incremental")


def new_state(*, start_date: datetime, list_ids: Sequence[int], now: datetime) -> dict[str, Any]:
    """The state a full refresh starts from: no message known yet."""
    return {
        "version": STATE_VERSION,
        "start_date": start_date.isoformat(),
        "list_ids": sorted(list_ids),
        "last_full_refresh": now.isoformat(timespec="seconds"),
        "messages": {},
    }


class Planner:
    """Decides per (stream, message) whether to fetch, and records what was fetched.

    Args:
        state: the plan state (mutated in place as fetches are recorded).
        messages: this run's message rows (``MsgID``, ``SendDate`` and the counters).
        now: the current time (UTC, naive).
        trust_counters: skip a message's stream while its counter stands still.
        send_settle_hours: age after which a message's recipients are final.
    """

    def __init__(
        self,
        state: dict[str, Any],
        messages: Iterable[Mapping[str, Any]],
        *,
        now: datetime,
        trust_counters: bool = True,
        send_settle_hours: float = 24.0,
    ) -> None:
        self.state = state
        self.known: dict[str, dict[str, Any]] = state.setdefault("messages", {})
        self.rows = {int(row["MsgID"]): row for row in messages}
        self.trust_counters = trust_counters
        self.settle_before = now - timedelta(hours=send_settle_hours)

    def to_fetch(self, stream: Stream) -> list[int]:
        """The message IDs whose ``stream`` rows must be fetched this run."""
        return [msg_id for msg_id in self.rows if self._needs(stream, msg_id)]

    def _needs(self, stream: Stream, msg_id: int) -> bool:
        seen = self.known.get(str(msg_id), {})
        if stream.name not in seen:
            return True
        if not seen.get(SETTLED):
            return True
        if stream.counter is None:
            return False
        return not self.trust_counters or seen[stream.name] != self.rows[msg_id][stream.counter]

    def record(self, stream: Stream, msg_ids: Iterable[int]) -> None:
        """Remember that ``stream`` was fetched for ``msg_ids`` at this run's counters."""
        for msg_id in msg_ids:
            row = self.rows[msg_id]
            entry = self.known.setdefault(str(msg_id), {})
            entry[stream.name] = row[stream.counter] if stream.counter else True
            send_date = row["SendDate"]
            if isinstance(send_date, datetime):
                entry[SETTLED] = send_date.replace(tzinfo=None) < self.settle_before

    def forget_missing(self) -> None:
        """Drop messages that no longer exist (the messages table no longer holds them)."""
        for key in [k for k in self.known if int(k) not in self.rows]:
            del self.known[key]
